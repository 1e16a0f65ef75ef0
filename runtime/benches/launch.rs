//! Launch throughput of the task runtime: instantiate + run of a trivial
//! WASI preview 1 module that prints "hi" to stdout, sequentially and from
//! two concurrent tokio tasks, with the pooling allocator and without.
//!
//! `cargo bench -p wasmesos-runtime --bench launch` (set `LAUNCH_TASKS` to
//! change the number of tasks per row, default 20000). Log files are created
//! before the clock starts, except in the row marked "+ log files", which
//! also creates each task's two log files.
//!
//! Then `LAUNCH_SLEEPERS` tasks (default 10000, 0 to skip) are started at
//! once, each sleeping in `poll_oneoff`, and the process's memory mappings,
//! open files and RSS are reported while they all sleep.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmesos_api::Digest;
use wasmesos_runtime::{
    CancellationToken, Exit, LogFile, Metering, Program, RunSpec, Runtime, RuntimeConfig,
};

const HELLO: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

struct Row {
    name: String,
    tasks: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn main() {
    let tasks: usize = std::env::var("LAUNCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let bytes = wat::parse_str(HELLO).expect("benchmark WAT parses");
    let digest = Digest::of(&bytes);
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = dir.path().join("sandbox");
    std::fs::create_dir(&sandbox).expect("sandbox");
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut rows = Vec::new();
    for pooling in [true, false] {
        let config = RuntimeConfig {
            pooling: if pooling {
                RuntimeConfig::default().pooling
            } else {
                None
            },
            metered_pooling: None,
            ..RuntimeConfig::default()
        };
        let allocator = if pooling { "pooling" } else { "on-demand" };
        let rt = Runtime::new(config).expect("runtime");
        let program = rt
            .compile(&digest, &bytes, Metering::EpochOnly)
            .expect("compiles");
        let bench = Bench {
            rt,
            program,
            sandbox: sandbox.clone(),
            logs: dir.path().to_path_buf(),
        };
        // Warm up: code pages, pool slots, allocator.
        executor.block_on(bench.measure(&format!("{allocator} warm-up"), 1, 1000, false));
        for concurrency in [1usize, 2] {
            let name = format!("{allocator}, {concurrency} concurrent");
            rows.push(executor.block_on(bench.measure(&name, concurrency, tasks, false)));
        }
        if pooling {
            let name = format!("{allocator}, 1 concurrent + log files");
            rows.push(executor.block_on(bench.measure(&name, 1, tasks, true)));
        }
    }

    let sleeper_count: usize = std::env::var("LAUNCH_SLEEPERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);

    println!(
        "{:<36} {:>7} {:>10} {:>9} {:>9}",
        "launch (instantiate + run)", "tasks", "tasks/s", "p50", "p99"
    );
    for mut row in rows {
        row.latencies.sort();
        let pct = |p: f64| {
            let i = ((row.latencies.len() as f64 - 1.0) * p).round() as usize;
            row.latencies[i]
        };
        println!(
            "{:<36} {:>7} {:>10.0} {:>7.1}µs {:>7.1}µs",
            row.name,
            row.tasks,
            row.tasks as f64 / row.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
        );
    }
    if sleeper_count > 0 {
        executor.block_on(sleepers(sleeper_count, dir.path()));
    }
}

const SLEEPER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))
"#;

/// Starts `n` tasks that each sleep 3 s and reports what the process holds
/// while they all sleep.
async fn sleepers(n: usize, dir: &Path) {
    let config = RuntimeConfig {
        max_memory_bytes: 1 << 30,
        pooling: Some(wasmesos_runtime::PoolingConfig::with_max_tasks(n as u32)),
        metered_pooling: None,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config).expect("runtime for sleepers");
    let bytes = wat::parse_str(SLEEPER).expect("sleeper WAT");
    let program = rt
        .compile(&Digest::of(&bytes), &bytes, Metering::EpochOnly)
        .expect("compiles");
    let sandbox = dir.join("sandbox");
    let before = proc_figures();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (stdout, stderr) = log_pair(&rt, dir, "sleepers", i);
        let spec = RunSpec {
            args: vec!["sleeper".into()],
            env: Vec::new(),
            sandbox: Some(sandbox.clone()),
            mem_bytes: 1 << 20,
            fuel: None,
            cpu: None,
            timeout: None,
            stdout,
            stderr,
        };
        let instance = rt.instantiate(&program, spec).await.expect("instantiates");
        tasks.push(tokio::spawn(instance.run(CancellationToken::new())));
    }
    let launched = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = proc_figures();
    for task in tasks {
        assert_eq!(task.await.expect("sleeper").exit, Exit::Exited(0));
    }
    println!(
        "\n{n} concurrent sleeping tasks (pooling, 1 GiB slots): launched in {:.0} ms; \
         memory mappings {} -> {} ({:.1} per task), open files {} -> {}, RSS {} -> {} MiB",
        launched.as_secs_f64() * 1e3,
        before.maps,
        during.maps,
        (during.maps - before.maps) as f64 / n as f64,
        before.fds,
        during.fds,
        before.rss_kib / 1024,
        during.rss_kib / 1024,
    );
}

struct ProcFigures {
    maps: usize,
    fds: usize,
    rss_kib: usize,
}

fn proc_figures() -> ProcFigures {
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
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    ProcFigures { maps, fds, rss_kib }
}

type LogPair = (LogFile, LogFile);

/// Task `i`'s two log files, under `dir/prefix/<i / 1000>/` so that no
/// directory grows huge (as an agent gives each task its own directory).
fn log_pair(rt: &Runtime, dir: &Path, prefix: &str, i: usize) -> LogPair {
    let shard = dir.join(prefix).join((i / 1000).to_string());
    if i.is_multiple_of(1000) {
        std::fs::create_dir_all(&shard).expect("log directory");
    }
    let cap = rt.config().default_log_bytes;
    (
        LogFile::create(&shard.join(format!("{i}.out")), cap).expect("log"),
        LogFile::create(&shard.join(format!("{i}.err")), cap).expect("log"),
    )
}

/// What every launch row shares.
#[derive(Clone)]
struct Bench {
    rt: Runtime,
    program: Program,
    sandbox: PathBuf,
    logs: PathBuf,
}

impl Bench {
    /// Runs `tasks` tasks from `concurrency` tokio tasks and times each
    /// launch; log files are made before the clock starts unless
    /// `create_logs`.
    async fn measure(
        &self,
        name: &str,
        concurrency: usize,
        tasks: usize,
        create_logs: bool,
    ) -> Row {
        let per_worker = tasks / concurrency;
        let prefix = |w: usize| format!("{}.w{w}", name.replace([' ', ',', '+'], "_"));
        let mut prepared: Vec<Option<Vec<LogPair>>> = (0..concurrency)
            .map(|w| {
                (!create_logs).then(|| {
                    let mut pairs: Vec<_> = (0..per_worker)
                        .map(|i| log_pair(&self.rt, &self.logs, &prefix(w), i))
                        .collect();
                    pairs.reverse();
                    pairs
                })
            })
            .collect();
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let bench = self.clone();
                let prefix = prefix(w);
                let prepared = prepared[w].take();
                tokio::spawn(async move { bench.launch_many(&prefix, per_worker, prepared).await })
            })
            .collect();
        let mut latencies = Vec::with_capacity(tasks);
        for worker in workers {
            latencies.extend(worker.await.expect("worker"));
        }
        Row {
            name: name.to_string(),
            tasks: per_worker * concurrency,
            elapsed: started.elapsed(),
            latencies,
        }
    }

    /// Launches `n` tasks one after another (with `prepared` logs, popped
    /// from the end, or logs created on the way); returns each latency.
    async fn launch_many(
        &self,
        prefix: &str,
        n: usize,
        mut prepared: Option<Vec<LogPair>>,
    ) -> Vec<Duration> {
        let mut latencies = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            let (stdout, stderr) = match &mut prepared {
                Some(pairs) => pairs.pop().expect("prepared logs"),
                None => log_pair(&self.rt, &self.logs, prefix, i),
            };
            let spec = RunSpec {
                args: vec!["hello".into()],
                env: Vec::new(),
                sandbox: Some(self.sandbox.clone()),
                mem_bytes: 16 << 20,
                fuel: None,
                cpu: None,
                timeout: None,
                stdout,
                stderr,
            };
            let instance = self
                .rt
                .instantiate(&self.program, spec)
                .await
                .expect("instantiates");
            let outcome = instance.run(CancellationToken::new()).await;
            latencies.push(started.elapsed());
            assert_eq!(outcome.exit, Exit::Exited(0));
            assert_eq!(outcome.usage.stdout_bytes, 3);
        }
        latencies
    }
}
