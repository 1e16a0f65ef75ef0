//! Tasks run through the executor pool: in plain child processes (always),
//! and in cgroups when this host lets the test make them (otherwise that
//! part prints `skipped: <why>`).
//!
//! This test binary is its own executor: started with `executor` as its
//! first argument it serves the protocol on stdin/stdout, as
//! `wasmesos executor` does. That is why it has its own `main` (libtest
//! would print to stdout, the executor's channel to the agent).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wasmesos_api::Digest;
use wasmesos_runtime::cgroups::{CgroupLimits, CgroupTree};
use wasmesos_runtime::executor::{
    ExecutorError, ExecutorPool, Job, PoolConfig, Ran, RunRequest, Settings,
};
use wasmesos_runtime::{CancellationToken, Exit, RuntimeConfig};

const MIB: u64 = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("executor") {
        return match wasmesos_runtime::executor::serve_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("executor: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 3] = [
        (
            "plain_processes_run_reuse_and_kill",
            plain_processes_run_reuse_and_kill,
        ),
        ("a_silent_executor_is_killed", a_silent_executor_is_killed),
        ("cgroups_limit_kill_and_reuse", cgroups_limit_kill_and_reuse),
    ];
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("test result: {} passed; {failed} failed", ran - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints "hi" to stdout.
const HI: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Spins until stopped.
const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

/// Grows its memory by 256 MiB and touches every page of it.
const HOG: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32)
    (drop (memory.grow (i32.const 4096)))
    (local.set $i (i32.const 65536))
    (loop $l
      (i32.store8 (local.get $i) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 4096)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 268435456))))))"#;

/// Modules on disk and task directories for one test.
struct Scratch {
    dir: tempfile::TempDir,
    tasks: usize,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
            tasks: 0,
        }
    }

    /// A job running `wat` with a limiter cap of `mem_bytes`.
    fn job(&mut self, wat: &str, mem_bytes: u64, cgroup: CgroupLimits) -> Job {
        let bytes = wat::parse_str(wat).unwrap();
        let digest = Digest::of(&bytes);
        let module = self.dir.path().join(digest.hex());
        std::fs::write(&module, &bytes).unwrap();
        self.tasks += 1;
        let task = self.dir.path().join(format!("task-{}", self.tasks));
        std::fs::create_dir_all(task.join("sandbox")).unwrap();
        Job {
            request: RunRequest {
                digest: digest.to_string(),
                module,
                args: vec!["t".into()],
                env: Vec::new(),
                sandbox: task.join("sandbox"),
                stdout: task.join("stdout"),
                stderr: task.join("stderr"),
                log_bytes: MIB,
                mem_bytes,
                fuel: None,
                timeout: Some(Duration::from_secs(60)),
            },
            cgroup,
        }
    }
}

fn pool_config(idle: usize, compile_cache: &Path) -> PoolConfig {
    let settings = Settings::of(&RuntimeConfig {
        max_memory_bytes: 1 << 30,
        compile_cache_dir: Some(compile_cache.to_path_buf()),
        ..RuntimeConfig::default()
    });
    let mut config = PoolConfig::new(
        std::env::current_exe().unwrap(),
        vec!["executor".into()],
        settings,
        idle,
    );
    config.cancel_grace = Duration::from_secs(10);
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn run(pool: &ExecutorPool, job: Job) -> Ran {
    pool.run(job, &CancellationToken::new(), || {})
        .await
        .expect("the pool runs the job")
}

/// Runs `job`, kills it once it runs, and returns how it ended and how long
/// the kill took.
async fn run_and_kill(pool: &ExecutorPool, job: Job) -> (Ran, Duration) {
    let cancel = CancellationToken::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let killer = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _ = started_rx.await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
            Instant::now()
        })
    };
    let ran = pool
        .run(job, &cancel, move || {
            let _ = started_tx.send(());
        })
        .await
        .expect("the pool runs the job");
    let killed_at = killer.await.unwrap();
    (ran, killed_at.elapsed())
}

fn plain_processes_run_reuse_and_kill() {
    runtime().block_on(async {
        let mut s = Scratch::new();
        let pool = ExecutorPool::start(pool_config(1, &s.dir.path().join("compiled")), None)
            .await
            .unwrap();
        assert_eq!(pool.idle(), 1);

        let job = s.job(HI, 16 * MIB, CgroupLimits::default());
        let out = job.request.stdout.clone();
        let first = run(&pool, job).await;
        assert_eq!(first.outcome.exit, Exit::Exited(0));
        assert_eq!(first.outcome.usage.stdout_bytes, 3);
        assert_eq!(std::fs::read(&out).unwrap(), b"hi\n");
        let second = run(&pool, s.job(HI, 16 * MIB, CgroupLimits::default())).await;
        assert_eq!(second.pid, first.pid, "the executor is reused");

        // The limiter holds in the executor as in-process, same message.
        let hog = run(&pool, s.job(HOG, 64 * MIB, CgroupLimits::default())).await;
        assert_eq!(hog.outcome.exit.message(), "memory limit 64MiB exceeded");
        assert_eq!(hog.pid, first.pid);

        // Fuel, on the executor's fuel engine.
        let mut job = s.job(SPIN, 16 * MIB, CgroupLimits::default());
        job.request.fuel = Some(1_000_000);
        let fueled = run(&pool, job).await;
        assert_eq!(
            fueled.outcome.exit,
            Exit::FuelExhausted {
                consumed: 1_000_000
            }
        );

        // A kill reaches a busy loop, and the executor lives on.
        let (killed, _) = run_and_kill(&pool, s.job(SPIN, 16 * MIB, CgroupLimits::default())).await;
        assert_eq!(killed.outcome.exit, Exit::Killed);
        assert!(killed.outcome.usage.cpu > Duration::ZERO);
        let after = run(&pool, s.job(HI, 16 * MIB, CgroupLimits::default())).await;
        assert_eq!(
            after.pid, first.pid,
            "a cancelled task does not cost its executor"
        );

        // A module that is not one is refused, and the executor stays.
        let mut bad = s.job(HI, 16 * MIB, CgroupLimits::default());
        std::fs::write(&bad.request.module, b"not wasm").unwrap();
        bad.request.digest = Digest::of(b"not wasm").to_string();
        match pool.run(bad, &CancellationToken::new(), || {}).await {
            Err(ExecutorError::Refused(why)) => {
                assert!(why.contains("not a WebAssembly module"), "{why}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.started(), 1);
        pool.shutdown().await;
        assert_eq!(pool.idle(), 0);
    });
}

/// An "executor" that says it is ready and then never answers again: the
/// pool gives up on it after the task's time limit plus the slack.
fn a_silent_executor_is_killed() {
    runtime().block_on(async {
        let mut s = Scratch::new();
        let ready = r#"{"Ready":{"pid":1}}"#;
        assert_eq!(ready.len(), 0o23);
        let mut config = pool_config(1, &s.dir.path().join("compiled"));
        config.program = "/bin/sh".into();
        config.args = vec![
            "-c".into(),
            format!("printf '\\000\\000\\000\\023{ready}'; exec sleep 600").into(),
        ];
        config.answer_slack = Duration::from_millis(500);
        let pool = ExecutorPool::start(config, None).await.unwrap();
        let mut job = s.job(SPIN, 16 * MIB, CgroupLimits::default());
        job.request.timeout = Some(Duration::from_millis(500));
        let ran = run(&pool, job).await;
        match &ran.outcome.exit {
            Exit::ProcessDied(how) => assert!(how.contains("stopped answering"), "{how}"),
            other => panic!("expected the silent executor to be given up on, got {other:?}"),
        }
        pool.shutdown().await;
    });
}

fn cgroups_limit_kill_and_reuse() {
    let tree = match CgroupTree::create(&format!("test-{}", std::process::id())) {
        Ok(tree) => tree,
        Err(e) => {
            println!("skipped: cgroups are not writable here: {e}");
            return;
        }
    };
    println!("using {}", tree.layout().describe());
    let parents: Vec<PathBuf> = tree.parents().map(PathBuf::from).collect();
    runtime().block_on(async {
        let mut s = Scratch::new();
        let pool = ExecutorPool::start(pool_config(2, &s.dir.path().join("compiled")), Some(tree))
            .await
            .unwrap();
        let half_cpu = CgroupLimits {
            cpus_milli: 500,
            mem_bytes: 256 * MIB,
        };

        // A normal task, twice on the same executor.
        let first = run(&pool, s.job(HI, 16 * MIB, half_cpu)).await;
        assert_eq!(first.outcome.exit, Exit::Exited(0));
        let second = run(&pool, s.job(HI, 16 * MIB, half_cpu)).await;
        assert_eq!(second.outcome.exit, Exit::Exited(0));
        assert_eq!(second.pid, first.pid, "the executor is reused");
        let leaf = leaf_of(&parents, first.pid).expect("the executor is in a leaf cgroup");
        assert_limits_written(&leaf, half_cpu);

        // Memory: the limiter first, as in-process…
        let hog = run(&pool, s.job(HOG, 64 * MIB, half_cpu)).await;
        assert_eq!(hog.outcome.exit.message(), "memory limit 64MiB exceeded");
        // …and the kernel where the limiter would allow more than the
        // cgroup does: the executor is OOM-killed, the task fails saying
        // so, and the pool carries on with a new executor.
        let tight = CgroupLimits {
            cpus_milli: 0,
            mem_bytes: 96 * MIB,
        };
        let oom = run(&pool, s.job(HOG, 1 << 30, tight)).await;
        match &oom.outcome.exit {
            Exit::ProcessDied(how) => assert!(
                how.starts_with("killed by the kernel: cgroup memory limit 96MiB"),
                "{how}"
            ),
            other => panic!("expected the kernel to kill the hog, got {other:?}"),
        }
        let next = run(&pool, s.job(HI, 16 * MIB, half_cpu)).await;
        assert_eq!(next.outcome.exit, Exit::Exited(0));
        assert_ne!(next.pid, oom.pid);

        // CPU: a spinner at a fifth of a cpu is throttled by the kernel,
        // and a kill stops it (its executor lives on).
        let fifth = CgroupLimits {
            cpus_milli: 200,
            mem_bytes: 256 * MIB,
        };
        let (killed, kill_took) = run_and_kill(&pool, s.job(SPIN, 16 * MIB, fifth)).await;
        assert_eq!(killed.outcome.exit, Exit::Killed);
        assert!(
            killed.outcome.usage.cpu_throttled > Duration::ZERO,
            "{:?}",
            killed.outcome.usage
        );
        println!("kill of a throttled busy loop took {kill_took:?}");
        let again = run(&pool, s.job(HI, 16 * MIB, half_cpu)).await;
        assert_eq!(
            again.pid, killed.pid,
            "a cancelled task does not cost its executor"
        );

        pool.shutdown().await;
    });
    for parent in &parents {
        assert!(
            !parent.exists(),
            "{} is removed at shutdown",
            parent.display()
        );
    }
}

/// The leaf cgroup (in the first hierarchy) holding `pid`.
fn leaf_of(parents: &[PathBuf], pid: u32) -> Option<PathBuf> {
    std::fs::read_dir(&parents[0])
        .ok()?
        .flatten()
        .find_map(|e| {
            let procs = std::fs::read_to_string(e.path().join("cgroup.procs")).ok()?;
            procs
                .split_whitespace()
                .any(|p| p == pid.to_string())
                .then(|| e.path())
        })
}

fn assert_limits_written(leaf: &Path, limits: CgroupLimits) {
    let read = |f: &str| std::fs::read_to_string(leaf.join(f)).ok();
    if let Some(max) = read("memory.max") {
        assert_eq!(max.trim(), limits.mem_bytes.to_string());
        let cpu = read("cpu.max").unwrap();
        assert!(cpu.starts_with("50000 100000"), "{cpu}");
    } else {
        let limit = read("memory.limit_in_bytes").unwrap();
        assert_eq!(limit.trim(), limits.mem_bytes.to_string());
    }
}
