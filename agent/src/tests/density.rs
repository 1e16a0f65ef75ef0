//! 10,000 sleeping tasks at once through the task manager, with the
//! process's memory mappings, open files and RSS printed. Ignored by
//! default (it takes a while and wants the machine):
//!
//! `cargo test -p wasmesos-agent --release -- --ignored --nocapture ten_thousand`

use std::time::{Duration, Instant};

use wasmesos_api::proto::{Limits, TaskState};

use super::{Agent, Setup, sleeper};

/// Memory mappings, open files and resident memory of this process.
fn figures() -> (usize, usize, u64) {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    (maps, fds, rss_kib)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "launches 10,000 tasks; run with --ignored --nocapture"]
async fn ten_thousand_sleeping_tasks_fit() {
    let n: u32 = std::env::var("SLEEPERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let limits = wasmesos_runtime::capacity::HostLimits::of_this_process();
    let before = figures();
    let mut agent = Agent::new(Setup {
        threads: 2,
        max_tasks: n,
        max_metered_tasks: 0,
        slot_bytes: 1 << 30,
        ..Setup::default()
    });
    let pooled = figures();
    // Long enough to outlast the launches: they are killed once measured.
    let digest = agent.module(&sleeper(600_000));
    let started = Instant::now();
    for i in 0..n {
        agent.launch(&format!("s{i}"), &digest, 0.001, Limits::default());
    }
    for i in 0..n {
        agent.until(&format!("s{i}"), TaskState::Running).await;
    }
    let launched = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = figures();
    for i in 0..n {
        agent.tasks.kill("fw", &format!("s{i}"));
    }
    for i in 0..n {
        let end = agent.until_end(&format!("s{i}")).await;
        assert_eq!(end.state(), TaskState::Killed, "{}", end.message);
    }
    println!(
        "sleepers={n} launched_ms={} limits max_map_count={:?} open_files={:?}\n\
         maps: start={} pools={} sleeping={} per_task={:.2}\n\
         fds: start={} sleeping={} per_task={:.2}\n\
         rss_mib: start={} pools={} sleeping={} per_task_kib={:.1}",
        launched.as_millis(),
        limits.max_map_count,
        limits.open_files,
        before.0,
        pooled.0,
        during.0,
        (during.0 - pooled.0) as f64 / f64::from(n),
        before.1,
        during.1,
        (during.1 - pooled.1) as f64 / f64::from(n),
        before.2 / 1024,
        pooled.2 / 1024,
        during.2 / 1024,
        (during.2 - pooled.2) as f64 / f64::from(n),
    );
}
