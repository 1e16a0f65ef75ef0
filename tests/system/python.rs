//! The Python scheduler example (`examples/python`, built into an ~18 MB
//! component by `scripts/build-python.sh` with componentize-py) deployed
//! into a real master: a large component deploys without holding up the
//! master, then queues, launches and retries jobs like the Rust ones.
//!
//! The figures it prints (deploy time, the master's memory) are for people;
//! nothing here asserts on them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{Cluster, Run, eventually, wasmesos};

/// The component, built outside cargo (componentize-py is a Python tool).
fn component() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests/python-scheduler.wasm")
        .canonicalize()
        .unwrap_or_else(|_| {
            panic!(
                "target/guests/python-scheduler.wasm is missing: run ./scripts/build-python.sh \
                 (./scripts/test.sh does, after ./scripts/setup.sh installs componentize-py)"
            )
        });
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

/// The pid of the cluster's master process (found by its data dir).
fn master_pid(c: &Cluster) -> Option<u32> {
    let data_dir = c.dir.path().join("master").display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.get(1) == Some(&b"master".as_slice()) && args.contains(&data_dir.as_bytes()))
            .then_some(pid)
    })
}

/// A process's resident set size, in MiB (None off Linux).
fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn show_mib(v: Option<f64>) -> String {
    v.map_or("?".into(), |m| format!("{m:.0} MiB"))
}

#[test]
fn the_python_scheduler_deploys_and_runs_jobs() {
    let wasm = component();
    let size = std::fs::metadata(&wasm).unwrap().len();
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let pid = master_pid(&c);
    // Warm the master up with one job of the built-in framework first, so
    // that the memory figures compare like with like.
    let warm = c.run(&["submit", &hello, "--wait"]);
    assert_eq!(warm.code, 0, "{warm:?}");
    let rss_before = rss_mib(pid);

    // Deploy in the background; meanwhile the master keeps serving: jobs of
    // the built-in framework run while the component compiles.
    let started = Instant::now();
    let deploy = {
        let master = c.master.clone();
        let wasm = wasm.display().to_string();
        std::thread::spawn(move || {
            let r = wasmesos(
                Some(&master),
                &["framework", "deploy", &wasm, "--name", "py", "--role", "py"],
            );
            (r, started.elapsed())
        })
    };
    let mut probes: Vec<Duration> = Vec::new();
    while !deploy.is_finished() {
        let t = Instant::now();
        let r = c.run(&["submit", &hello, "--wait"]);
        assert_eq!(r.code, 0, "a job while the component compiles: {r:?}");
        probes.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (deployed, took): (Run, Duration) = deploy.join().unwrap();
    assert_eq!(deployed.code, 0, "{deployed:?}");
    assert!(deployed.stdout.contains("deployed py"), "{deployed:?}");
    let rss_after = rss_mib(pid);
    let slowest = probes.iter().max().copied().unwrap_or_default();
    eprintln!(
        "python scheduler: {:.1} MiB component; `framework deploy` took {:.1} s \
         (upload + compile; the master says: {}); master RSS {} before, {} after; \
         {} jobs ran meanwhile, slowest submit-to-exit {} ms",
        size as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        deployed.stdout.trim(),
        show_mib(rss_before),
        show_mib(rss_after),
        probes.len(),
        slowest.as_millis(),
    );

    let status = c.run(&["framework", "send", "py", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains(r#""lang": "python""#), "{status:?}");
    assert!(status.stdout.contains(r#""queued": 0"#), "{status:?}");

    // Jobs queued without waiting, then one followed to its end.
    let mut jobs = Vec::new();
    for i in 0..3 {
        let arg = format!("queued-{i}");
        let r = c.run(&["submit", &hello, "--framework", "py", "--", &arg]);
        assert_eq!(r.code, 0, "{r:?}");
        jobs.push((r.stdout.trim().to_string(), arg));
    }
    let waited = c.run(&[
        "submit",
        &hello,
        "--framework",
        "py",
        "--wait",
        "--env",
        "FROM=python",
        "--",
        "followed",
    ]);
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(waited.stdout.contains("hello from wasmesos!"), "{waited:?}");
    assert!(waited.stdout.contains("arg: followed"), "{waited:?}");
    assert!(waited.stdout.contains("env: FROM=python"), "{waited:?}");
    for (job, arg) in &jobs {
        let task = format!("{job}.1");
        c.wait_for_state(&task, "FINISHED");
        let logs = c.run(&["logs", &task]);
        assert!(logs.stdout.contains(&format!("arg: {arg}")), "{logs:?}");
    }

    // A failing job is retried as JOB.2, then given up on.
    let failing = c.run(&[
        "submit",
        &hello,
        "--framework",
        "py",
        "--attempts",
        "2",
        "--",
        "--exit",
        "3",
    ]);
    assert_eq!(failing.code, 0, "{failing:?}");
    let job = failing.stdout.trim().to_string();
    c.wait_for_state(&format!("{job}.1"), "FAILED");
    c.wait_for_state(&format!("{job}.2"), "FAILED");

    // Everything is over: the summary is empty again and no callback failed
    // (a Python scheduler fits the host's memory cap and budgets).
    eventually("the python scheduler's queue to empty", || {
        let r = c.run(&["framework", "send", "py", "status"]);
        (r.stdout.contains(r#""queued": 0"#) && r.stdout.contains(r#""running": 0"#)).then_some(())
    });
    let show = c.run(&["framework", "show", "py"]);
    assert!(show.stdout.contains("(0 failed)"), "{show:?}");
    assert!(
        show.stdout.contains(&format!("job {job}: {job}.2 failed")),
        "{show:?}"
    );
    eprintln!("python scheduler after its jobs:\n{}", show.stdout);
}
