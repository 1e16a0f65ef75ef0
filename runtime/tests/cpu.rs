//! CPU: time accounted per task, quotas that make `--cpus` hold among the
//! tasks of one pool, and a task pool that keeps the rest of the process
//! responsive while its threads are saturated.
//!
//! Nothing here asserts on speed: only on how CPU is divided and on events
//! happening at all within generous windows. The tests of this file run one
//! at a time, since each wants the machine's cores to itself.

mod common;

use common::*;
use std::time::{Duration, Instant};
use wasmesos_runtime::{
    CancellationToken, CpuQuota, Exit, Program, RunOutcome, RunSpec, Runtime, TaskPool,
};

/// Spins until stopped.
const SPIN: &str = r#"(func (export "_start") (loop $l (br $l)))"#;

/// Sleeps 5 ms, `n` times, then exits 0.
fn naps(n: u32) -> String {
    module(&format!(
        r#"(func (export "_start") (local $i i32)
             (local.set $i (i32.const {n}))
             (loop $l
               (call $sleep (i64.const 5000000))
               (local.set $i (i32.sub (local.get $i) (i32.const 1)))
               (br_if $l (local.get $i))))"#
    ))
}

/// Counts down from `n`.
fn count(n: u32) -> String {
    module(&format!(
        r#"(func (export "_start") (local $i i32)
             (local.set $i (i32.const {n}))
             (loop $l
               (local.set $i (i32.sub (local.get $i) (i32.const 1)))
               (br_if $l (local.get $i))))"#
    ))
}

/// Held by each test while it runs.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Instantiates and runs a task on `pool`.
fn spawn_on(
    pool: &TaskPool,
    rt: &Runtime,
    program: &Program,
    spec: RunSpec,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<RunOutcome> {
    let (rt, program) = (rt.clone(), program.clone());
    pool.spawn(async move {
        let instance = rt.instantiate(&program, spec).await.expect("instantiates");
        instance.run(cancel).await
    })
}

fn with_quota(dir: &TaskDir, milli: u64, timeout: Duration) -> RunSpec {
    let mut spec = dir.spec(&["task"]);
    spec.cpu = CpuQuota::from_milli(milli);
    spec.timeout = Some(timeout);
    spec
}

#[tokio::test]
async fn cpu_time_is_what_the_task_computed_not_what_it_slept() {
    let _serial = serial().await;
    let rt = runtime();
    let busy = compile(&rt, &count(50_000_000));
    let dir = TaskDir::new();
    let outcome = run(&rt, &busy, dir.spec(&["busy"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    let u = outcome.usage;
    assert!(u.cpu > Duration::ZERO, "{u:?}");
    assert!(u.cpu <= u.wall + Duration::from_millis(5), "{u:?}");
    assert_eq!(u.cpu_throttled, Duration::ZERO);

    let sleeper = compile(&rt, &naps(20));
    let dir = TaskDir::new();
    let outcome = run(&rt, &sleeper, dir.spec(&["nap"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    let u = outcome.usage;
    assert!(u.wall >= Duration::from_millis(100), "{u:?}");
    assert!(
        u.cpu < u.wall / 2,
        "a sleeping task was charged its sleep: {u:?}"
    );
}

#[tokio::test]
async fn cpu_quota_obeyed_by_a_task_that_needs_less() {
    let _serial = serial().await;
    let rt = runtime();
    let program = compile(&rt, &count(1000));
    let dir = TaskDir::new();
    let outcome = run(
        &rt,
        &program,
        with_quota(&dir, 100, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(outcome.usage.cpu_throttled, Duration::ZERO);
}

#[tokio::test]
async fn cpu_quota_holds_a_spinning_task_to_its_share() {
    let _serial = serial().await;
    let rt = runtime();
    let pool = TaskPool::new(1).unwrap();
    let program = compile(&rt, &module(SPIN));
    let dir = TaskDir::new();
    let spec = with_quota(&dir, 100, Duration::from_secs(1));
    let outcome = spawn_on(&pool, &rt, &program, spec, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_secs(1)));
    let u = outcome.usage;
    // 0.1 cpu for 1 s is 100 ms, plus one period banked and one tick of
    // overdraft; unthrottled it would be close to the whole second.
    assert!(u.cpu < Duration::from_millis(400), "{u:?}");
    assert!(u.cpu_throttled > Duration::from_millis(300), "{u:?}");
}

#[tokio::test]
async fn cpu_is_divided_by_the_tasks_quotas() {
    let _serial = serial().await;
    let rt = runtime();
    let pool = TaskPool::new(1).unwrap();
    let program = compile(&rt, &module(SPIN));
    let window = Duration::from_millis(1500);
    let (small_dir, big_dir) = (TaskDir::new(), TaskDir::new());
    let small = spawn_on(
        &pool,
        &rt,
        &program,
        with_quota(&small_dir, 100, window),
        CancellationToken::new(),
    );
    let big = spawn_on(
        &pool,
        &rt,
        &program,
        with_quota(&big_dir, 400, window),
        CancellationToken::new(),
    );
    let (small, big) = (small.await.unwrap(), big.await.unwrap());
    assert_eq!(small.exit, Exit::TimedOut(window));
    assert_eq!(big.exit, Exit::TimedOut(window));
    // 4:1. Quotas are caps, not weights: the two together ask for half the
    // thread, so the ratio holds even when a busy host gives the thread
    // much less than a core (a loose bound all the same).
    assert!(
        big.usage.cpu >= small.usage.cpu * 2,
        "0.4 cpu: {:?}, 0.1 cpu: {:?}",
        big.usage,
        small.usage
    );
}

#[tokio::test]
async fn a_busy_task_does_not_starve_a_sleeper() {
    let _serial = serial().await;
    let rt = runtime();
    let pool = TaskPool::new(1).unwrap();
    let stop = CancellationToken::new();
    let spin_dir = TaskDir::new();
    let spin = compile(&rt, &module(SPIN));
    let spinner = spawn_on(&pool, &rt, &spin, spin_dir.spec(&["spin"]), stop.clone());
    let nap_dir = TaskDir::new();
    let napper = compile(&rt, &naps(10));
    let sleeper = spawn_on(
        &pool,
        &rt,
        &napper,
        nap_dir.spec(&["nap"]),
        CancellationToken::new(),
    );
    assert_eq!(sleeper.await.unwrap().exit, Exit::Exited(0));
    assert!(!spinner.is_finished());
    stop.cancel();
    assert_eq!(spinner.await.unwrap().exit, Exit::Killed);
}

/// The agent's heartbeats run on its own runtime; tasks on the pool. With
/// every pool thread spinning, a timer on the other runtime keeps ticking.
#[tokio::test(flavor = "current_thread")]
async fn a_timer_outside_the_pool_ticks_while_the_pool_is_saturated() {
    let _serial = serial().await;
    let rt = runtime();
    let pool = TaskPool::new(2).unwrap();
    let program = compile(&rt, &module(SPIN));
    let stop = CancellationToken::new();
    let dirs: Vec<TaskDir> = (0..4).map(|_| TaskDir::new()).collect();
    let spinners: Vec<_> = dirs
        .iter()
        .map(|d| spawn_on(&pool, &rt, &program, d.spec(&["spin"]), stop.clone()))
        .collect();
    // Let the spinners take the pool's threads.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut heartbeat = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut ticks = 0;
    while started.elapsed() < Duration::from_millis(500) {
        heartbeat.tick().await;
        ticks += 1;
    }
    // About 50 when the host is idle; a starved timer would manage a few.
    assert!(ticks >= 15, "only {ticks} heartbeats in 500 ms");
    assert!(spinners.iter().all(|s| !s.is_finished()));
    stop.cancel();
    for s in spinners {
        let outcome = s.await.unwrap();
        assert_eq!(outcome.exit, Exit::Killed);
        assert!(outcome.usage.cpu > Duration::ZERO, "{:?}", outcome.usage);
    }
}
