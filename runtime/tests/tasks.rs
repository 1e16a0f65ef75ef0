//! Tasks run end to end through the public API: WAT modules written here,
//! compiled, instantiated in a fresh sandbox and run. Every limit is tested
//! as a pair: obeyed and violated.

mod common;

use common::*;
use std::time::Duration;
use wasmesos_api::Digest;
use wasmesos_runtime::{
    CancellationToken, Exit, InstantiateError, LogStart, Metering, ProgramKind, RuntimeError,
};

// ---------------------------------------------------------------- exits

#[tokio::test]
async fn returning_from_start_is_exit_zero() {
    let rt = runtime();
    let program = compile(&rt, &module(r#"(func (export "_start"))"#));
    assert_eq!(program.kind(), ProgramKind::Module);
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["task"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert!(outcome.exit.is_success());
    assert_eq!(outcome.exit.message(), "exited with code 0");
}

#[tokio::test]
async fn proc_exit_codes_zero_and_non_zero() {
    let rt = runtime();
    for code in [0, 3] {
        let program = compile(
            &rt,
            &module(&format!(
                r#"(func (export "_start") (call $proc_exit (i32.const {code})))"#
            )),
        );
        let dir = TaskDir::new();
        let outcome = run(&rt, &program, dir.spec(&["task"])).await;
        assert_eq!(outcome.exit, Exit::Exited(code));
        assert_eq!(outcome.exit.exit_code(), Some(code));
        assert_eq!(outcome.exit.is_success(), code == 0);
    }
    let dir = TaskDir::new();
    let program = compile(
        &rt,
        &module(r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#),
    );
    let outcome = run(&rt, &program, dir.spec(&["task"])).await;
    assert_eq!(outcome.exit.message(), "exited with code 3");
}

// ------------------------------------------------------- args, env, stdio

const ECHO_ARGS_AND_ENV: &str = r#"
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
    (drop (call $args_get (i32.const 200) (i32.const 1024)))
    (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 104)))
    (drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))
    (drop (call $environ_get (i32.const 200) (i32.const 2048)))
    (call $print (i32.const 2) (i32.const 2048) (i32.load (i32.const 104))))
"#;

#[tokio::test]
async fn args_and_env_are_exactly_the_specs() {
    let rt = runtime();
    let program = compile(&rt, &module(ECHO_ARGS_AND_ENV));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["job.1", "one", "two words"]);
    spec.env = vec![("A".into(), "1".into()), ("B".into(), "x y".into())];
    let outcome = run(&rt, &program, spec).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(dir.stdout_text(), "job.1\0one\0two words\0");
    // Nothing of the agent's own environment (PATH, HOME, …) leaks in.
    assert_eq!(dir.stderr_text(), "A=1\0B=x y\0");
    assert_eq!(outcome.usage.stdout_bytes, 20);
    assert_eq!(outcome.usage.stderr_bytes, 10);
}

#[tokio::test]
async fn stdin_is_empty() {
    let rt = runtime();
    // fd_read(0) into 4096..4196; exit with errno * 1000 + bytes read.
    let program = compile(
        &rt,
        &module(
            r#"(func (export "_start") (local $err i32)
                 (i32.store (i32.const 0) (i32.const 4096))
                 (i32.store (i32.const 4) (i32.const 100))
                 (local.set $err (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
                 (call $proc_exit (i32.add (i32.mul (local.get $err) (i32.const 1000))
                                           (i32.load (i32.const 8)))))"#,
        ),
    );
    let dir = TaskDir::new();
    assert_eq!(
        run(&rt, &program, dir.spec(&["cat"])).await.exit,
        Exit::Exited(0)
    );
}

const HELLO: &str = r#"
  (data (i32.const 4096) "hi\n")
  (data (i32.const 4112) "oops\n")
  (func (export "_start")
    (call $print (i32.const 1) (i32.const 4096) (i32.const 3))
    (call $print (i32.const 2) (i32.const 4112) (i32.const 5)))
"#;

#[tokio::test]
async fn stdout_and_stderr_are_captured_separately() {
    let rt = runtime();
    let program = compile(&rt, &module(HELLO));
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["hello"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(dir.stdout_text(), "hi\n");
    assert_eq!(dir.stderr_text(), "oops\n");
    assert!(dir.stdout.is_closed() && dir.stderr.is_closed());
    assert_eq!(outcome.usage.log_bytes_dropped, 0);
}

fn print_hundred() -> String {
    module(&format!(
        r#"(data (i32.const 4096) "{}")
           (func (export "_start") (call $print (i32.const 1) (i32.const 4096) (i32.const 100)))"#,
        "x".repeat(100)
    ))
}

#[tokio::test]
async fn log_cap_obeyed() {
    let rt = runtime();
    let program = compile(&rt, &print_hundred());
    let dir = TaskDir::with_cap(100);
    let outcome = run(&rt, &program, dir.spec(&["chatty"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(dir.stdout_text().len(), 100);
    assert_eq!(outcome.usage.stdout_bytes, 100);
    assert_eq!(outcome.usage.log_bytes_dropped, 0);
}

#[tokio::test]
async fn log_cap_exceeded_keeps_the_start_and_counts_the_rest() {
    let rt = runtime();
    let program = compile(&rt, &print_hundred());
    let dir = TaskDir::with_cap(10);
    let outcome = run(&rt, &program, dir.spec(&["chatty"])).await;
    // Output beyond the cap never fails the task.
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(dir.stdout_text(), "x".repeat(10));
    assert_eq!(outcome.usage.stdout_bytes, 10);
    assert_eq!(outcome.usage.log_bytes_dropped, 90);
}

/// Prints "first", waits (sleeping in poll_oneoff) until the file `go`
/// appears in its sandbox, prints "second".
const WAIT_FOR_GO: &str = r#"
  (data (i32.const 4096) "first\n")
  (data (i32.const 4112) "second\n")
  (data (i32.const 4128) "go")
  (func (export "_start")
    (call $print (i32.const 1) (i32.const 4096) (i32.const 6))
    (block $found
      (loop $wait
        (br_if $found (i32.eqz (call $open (i32.const 4128) (i32.const 2) (i32.const 0) (i64.const 2))))
        (call $sleep (i64.const 5000000))
        (br $wait)))
    (call $print (i32.const 1) (i32.const 4112) (i32.const 7)))
"#;

#[tokio::test]
async fn follower_sees_output_while_running_and_ends_with_the_task() {
    let rt = runtime();
    let program = compile(&rt, &module(WAIT_FOR_GO));
    let dir = TaskDir::new();
    let mut follower = dir.stdout.follower();
    let instance = rt
        .instantiate(&program, dir.spec(&["waiter"]))
        .await
        .unwrap();
    let task = tokio::spawn(instance.run(CancellationToken::new()));

    assert_eq!(follower.next_chunk().await.unwrap().unwrap(), b"first\n");
    assert!(!task.is_finished(), "the task waits for `go`");
    std::fs::write(dir.sandbox().join("go"), b"").unwrap();
    assert_eq!(follower.next_chunk().await.unwrap().unwrap(), b"second\n");
    assert_eq!(follower.next_chunk().await.unwrap(), None);
    assert_eq!(task.await.unwrap().exit, Exit::Exited(0));

    // A finished log read back from disk, whole or its tail.
    let from_disk = wasmesos_runtime::LogFollower::open(
        dir.stdout.path().expect("a file log"),
        LogStart::Tail(7),
    )
    .unwrap()
    .read_to_end()
    .await
    .unwrap();
    assert_eq!(from_disk, b"second\n");
}

// --------------------------------------------------------------- memory

/// Grows memory by `pages`; traps if refused unless `survive`.
fn grow(pages: u32, survive: bool) -> String {
    let on_refusal = if survive {
        "(call $proc_exit (i32.const 0))"
    } else {
        "unreachable"
    };
    module(&format!(
        r#"(func (export "_start")
             (if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1))
               (then {on_refusal})))"#
    ))
}

#[tokio::test]
async fn memory_growth_within_the_cap_succeeds() {
    for rt in [runtime(), on_demand_runtime()] {
        let program = compile(&rt, &grow(8, false));
        let dir = TaskDir::new();
        let mut spec = dir.spec(&["grow"]);
        spec.mem_bytes = 1 << 20; // 16 pages; 1 + 8 fit
        let outcome = run(&rt, &program, spec).await;
        assert_eq!(outcome.exit, Exit::Exited(0));
        assert_eq!(outcome.usage.peak_mem_bytes, 9 * 65536);
    }
}

#[tokio::test]
async fn memory_growth_beyond_the_cap_is_memory_exceeded() {
    for rt in [runtime(), on_demand_runtime()] {
        let program = compile(&rt, &grow(100, false));
        let dir = TaskDir::new();
        let mut spec = dir.spec(&["grow"]);
        spec.mem_bytes = 1 << 20;
        let outcome = run(&rt, &program, spec).await;
        assert_eq!(outcome.exit, Exit::MemoryExceeded { limit: 1 << 20 });
        assert_eq!(outcome.exit.message(), "memory limit 1MiB exceeded");
        assert_eq!(outcome.usage.peak_mem_bytes, 65536);
    }
}

#[tokio::test]
async fn a_refused_growth_the_task_survives_is_not_a_failure() {
    let rt = runtime();
    let program = compile(&rt, &grow(100, true));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["grow"]);
    spec.mem_bytes = 1 << 20;
    assert_eq!(run(&rt, &program, spec).await.exit, Exit::Exited(0));
}

#[tokio::test]
async fn initial_memory_beyond_the_cap_fails_at_instantiation() {
    let rt = runtime();
    let wat = format!("(module {IMPORTS} (memory 32) (func (export \"_start\")))");
    let program = compile(&rt, &wat);
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["big"]);
    spec.mem_bytes = 1 << 20;
    match rt.instantiate(&program, spec).await {
        Err(InstantiateError::Task(outcome)) => {
            assert_eq!(outcome.exit, Exit::MemoryExceeded { limit: 1 << 20 })
        }
        other => panic!("expected a task failure, got {other:?}"),
    }
    // Its logs were closed: followers end.
    assert!(dir.stdout.is_closed());
}

#[tokio::test]
async fn a_start_function_runs_under_the_tasks_limits() {
    let rt = runtime();
    // A spinning start function is stopped by the timeout…
    let spin = compile(
        &rt,
        &module(r#"(func $spin (loop $l (br $l))) (start $spin) (func (export "_start"))"#),
    );
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["start"]);
    spec.timeout = Some(Duration::from_millis(100));
    match rt.instantiate(&spin, spec).await {
        Err(InstantiateError::Task(outcome)) => {
            assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_millis(100)))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // …and a trapping one fails the task.
    let trap = compile(
        &rt,
        &module(r#"(func $boom unreachable) (start $boom) (func (export "_start"))"#),
    );
    let dir = TaskDir::new();
    match rt.instantiate(&trap, dir.spec(&["start"])).await {
        Err(InstantiateError::Task(outcome)) => assert_eq!(
            outcome.exit,
            Exit::Trapped("wasm `unreachable` instruction executed".into())
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
}

// ----------------------------------------------------------------- fuel

/// Counts down from `n` in a loop.
fn count(n: u32) -> String {
    module(&format!(
        r#"(func (export "_start") (local $i i32)
             (local.set $i (i32.const {n}))
             (loop $l
               (local.set $i (i32.sub (local.get $i) (i32.const 1)))
               (br_if $l (local.get $i))))"#
    ))
}

const SPIN: &str = r#"(func (export "_start") (loop $l (br $l)))"#;

#[tokio::test]
async fn fuel_budget_obeyed() {
    let rt = runtime();
    let program = compile_fuel(&rt, &count(1000));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["count"]);
    spec.fuel = Some(1_000_000);
    let outcome = run(&rt, &program, spec).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert!(outcome.usage.fuel_consumed > 1000, "{:?}", outcome.usage);
    assert!(outcome.usage.fuel_consumed < 1_000_000);
}

#[tokio::test]
async fn fuel_exhausted() {
    let rt = runtime();
    let program = compile_fuel(&rt, &module(SPIN));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["spin"]);
    spec.fuel = Some(10_000);
    let outcome = run(&rt, &program, spec).await;
    assert_eq!(outcome.exit, Exit::FuelExhausted { consumed: 10_000 });
    assert_eq!(outcome.exit.message(), "fuel exhausted after 10000 units");
    assert_eq!(outcome.usage.fuel_consumed, 10_000);
}

#[tokio::test]
async fn unlimited_tasks_on_the_fuel_engine_still_report_fuel() {
    let rt = runtime();
    let program = compile_fuel(&rt, &count(1000));
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["count"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert!(outcome.usage.fuel_consumed > 1000);
}

#[tokio::test]
async fn tasks_on_the_epoch_only_engine_report_no_fuel() {
    let rt = runtime();
    let program = compile(&rt, &count(1000));
    assert_eq!(program.metering(), Metering::EpochOnly);
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["count"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(outcome.usage.fuel_consumed, 0);
}

#[tokio::test]
async fn a_fuel_limit_needs_the_fuel_engine() {
    let rt = runtime();
    let program = compile(&rt, &count(1000));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["count"]);
    spec.fuel = Some(1_000_000);
    match rt.instantiate(&program, spec).await {
        Err(InstantiateError::Runtime(RuntimeError::NeedsFuelEngine)) => {}
        other => panic!("expected NeedsFuelEngine, got {other:?}"),
    }
    assert!(dir.stdout.is_closed());
}

// ----------------------------------------------------------------- time

fn sleep_ms(ms: u64) -> String {
    module(&format!(
        r#"(func (export "_start") (call $sleep (i64.const {})))"#,
        ms * 1_000_000
    ))
}

#[tokio::test]
async fn timeout_obeyed_by_a_sleeping_task() {
    let rt = runtime();
    let program = compile(&rt, &sleep_ms(20));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["nap"]);
    spec.timeout = Some(Duration::from_secs(30));
    assert_eq!(run(&rt, &program, spec).await.exit, Exit::Exited(0));
}

#[tokio::test]
async fn timeout_stops_a_spinning_task() {
    let rt = runtime();
    let program = compile(&rt, &module(SPIN));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["spin"]);
    spec.timeout = Some(Duration::from_millis(100));
    let outcome = run(&rt, &program, spec).await;
    assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_millis(100)));
    assert_eq!(outcome.exit.message(), "timed out after 100ms");
    assert!(outcome.usage.cpu > Duration::ZERO, "{:?}", outcome.usage);
}

#[tokio::test]
async fn timeout_stops_a_task_blocked_in_a_host_call() {
    let rt = runtime();
    let program = compile(&rt, &sleep_ms(60_000));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["nap"]);
    spec.timeout = Some(Duration::from_millis(100));
    let outcome = run(&rt, &program, spec).await;
    assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_millis(100)));
}

#[tokio::test]
async fn kill_through_the_cancel_token() {
    let rt = runtime();
    for wat in [module(SPIN), sleep_ms(60_000)] {
        let program = compile(&rt, &wat);
        let dir = TaskDir::new();
        let instance = rt
            .instantiate(&program, dir.spec(&["victim"]))
            .await
            .unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(instance.run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        let outcome = task.await.unwrap();
        assert_eq!(outcome.exit, Exit::Killed);
        assert_eq!(outcome.exit.message(), "killed");
        assert!(dir.stdout.is_closed());
    }
}

/// On a single-threaded executor a spinning task yields at every epoch
/// tick, so another task runs to completion meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn busy_tasks_yield_to_others() {
    let rt = runtime();
    let spin = compile(&rt, &module(SPIN));
    let hello = compile(&rt, &module(HELLO));
    let spin_dir = TaskDir::new();
    let cancel = CancellationToken::new();
    let spinner = rt
        .instantiate(&spin, spin_dir.spec(&["spin"]))
        .await
        .unwrap();
    let spinner = tokio::spawn(spinner.run(cancel.clone()));
    tokio::task::yield_now().await;

    let dir = TaskDir::new();
    assert_eq!(
        run(&rt, &hello, dir.spec(&["hello"])).await.exit,
        Exit::Exited(0)
    );
    assert!(!spinner.is_finished());
    cancel.cancel();
    assert_eq!(spinner.await.unwrap().exit, Exit::Killed);
}

// ---------------------------------------------------------------- traps

#[tokio::test]
async fn traps_are_classified() {
    let rt = runtime();
    let cases = [
        (
            r#"(func (export "_start") unreachable)"#,
            "wasm `unreachable` instruction executed",
        ),
        (
            r#"(func $f (call $f)) (func (export "_start") (call $f))"#,
            "stack overflow",
        ),
        (
            r#"(func (export "_start") (drop (i32.load (i32.const 70000))))"#,
            "out of bounds memory access",
        ),
        (
            r#"(func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0))))"#,
            "integer divide by zero",
        ),
    ];
    for (body, why) in cases {
        let program = compile(&rt, &module(body));
        let dir = TaskDir::new();
        let outcome = run(&rt, &program, dir.spec(&["trap"])).await;
        assert_eq!(outcome.exit, Exit::Trapped(why.to_string()));
        assert_eq!(outcome.exit.message(), format!("trapped: {why}"));
    }
}

// -------------------------------------------------------------- sandbox

/// Opens argv[1] for reading under the sandbox preopen; exits with the errno.
const OPEN_ARG: &str = r#"
  (func (export "_start") (local $p i32)
    (local.set $p (call $arg1))
    (call $proc_exit (call $open (local.get $p) (i32.load (i32.const 104)) (i32.const 0) (i64.const 2))))
"#;

#[tokio::test]
async fn paths_inside_the_sandbox_open() {
    let rt = runtime();
    let program = compile(&rt, &module(OPEN_ARG));
    for path in ["inside.txt", "sub/../inside.txt", "./inside.txt"] {
        let dir = TaskDir::new();
        std::fs::write(dir.sandbox().join("inside.txt"), b"ok").unwrap();
        std::fs::create_dir(dir.sandbox().join("sub")).unwrap();
        let outcome = run(&rt, &program, dir.spec(&["open", path])).await;
        assert_eq!(outcome.exit, Exit::Exited(0), "{path}");
    }
}

#[tokio::test]
async fn paths_outside_the_sandbox_do_not_open() {
    let rt = runtime();
    let program = compile(&rt, &module(OPEN_ARG));
    for path in ["../x", "/etc/passwd", "../../../../etc/passwd", "escape/x"] {
        let dir = TaskDir::new();
        // `x` exists right next to the sandbox, and a symlink points at it.
        std::fs::write(dir.root.path().join("x"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.root.path(), dir.sandbox().join("escape")).unwrap();
        let outcome = run(&rt, &program, dir.spec(&["open", path])).await;
        let code = outcome.exit.exit_code().expect("exits with the errno");
        assert_ne!(code, 0, "{path} opened outside the sandbox");
    }
}

#[tokio::test]
async fn a_task_without_a_sandbox_has_no_filesystem() {
    let rt = runtime();
    let program = compile(&rt, &module(OPEN_ARG));
    for path in ["inside.txt", "/", "/etc/passwd"] {
        let dir = TaskDir::new();
        std::fs::write(dir.sandbox().join("inside.txt"), b"ok").unwrap();
        let mut spec = dir.spec(&["open", path]);
        spec.sandbox = None;
        let outcome = run(&rt, &program, spec).await;
        let code = outcome.exit.exit_code().expect("exits with the errno");
        assert_ne!(code, 0, "{path} opened without a filesystem");
    }
}

#[tokio::test]
async fn files_created_by_the_task_land_in_its_sandbox() {
    let rt = runtime();
    // O_CREAT, rights fd_write; then write "made" to the new fd.
    let program = compile(
        &rt,
        &module(
            r#"(data (i32.const 4096) "made")
               (func (export "_start") (local $p i32) (local $err i32)
                 (local.set $p (call $arg1))
                 (local.set $err (call $open (local.get $p) (i32.load (i32.const 104)) (i32.const 1) (i64.const 64)))
                 (if (local.get $err) (then (call $proc_exit (local.get $err))))
                 (call $print (i32.load (i32.const 300)) (i32.const 4096) (i32.const 4))
                 (drop (call $fd_close (i32.load (i32.const 300)))))"#,
        ),
    );
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["make", "made.txt"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(
        std::fs::read(dir.sandbox().join("made.txt")).unwrap(),
        b"made"
    );
}

#[tokio::test]
async fn a_missing_sandbox_is_the_agents_error() {
    let rt = runtime();
    let program = compile(&rt, &module(r#"(func (export "_start"))"#));
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["task"]);
    spec.sandbox = Some(dir.root.path().join("nope"));
    match rt.instantiate(&program, spec).await {
        Err(InstantiateError::Runtime(RuntimeError::Sandbox { .. })) => {}
        other => panic!("expected a sandbox error, got {other:?}"),
    }
    assert!(dir.stdout.is_closed());
}

// ------------------------------------------------------- pool capacity

#[tokio::test]
async fn a_full_pool_refuses_more_tasks_until_one_ends() {
    let rt = wasmesos_runtime::Runtime::new(wasmesos_runtime::RuntimeConfig {
        max_memory_bytes: 16 << 20,
        pooling: Some(wasmesos_runtime::PoolingConfig::with_max_tasks(2)),
        metered_pooling: Some(wasmesos_runtime::PoolingConfig::with_max_tasks(2)),
        ..Default::default()
    })
    .unwrap();
    let program = compile(&rt, &module(r#"(func (export "_start"))"#));
    let dirs = [TaskDir::new(), TaskDir::new(), TaskDir::new()];
    let a = rt
        .instantiate(&program, dirs[0].spec(&["a"]))
        .await
        .unwrap();
    let _b = rt
        .instantiate(&program, dirs[1].spec(&["b"]))
        .await
        .unwrap();
    match rt.instantiate(&program, dirs[2].spec(&["c"])).await {
        Err(InstantiateError::Runtime(RuntimeError::AtCapacity(_))) => {}
        other => panic!("expected AtCapacity, got {other:?}"),
    }
    assert_eq!(a.run(CancellationToken::new()).await.exit, Exit::Exited(0));
    let c = rt
        .instantiate(&program, dirs[2].spec(&["c"]))
        .await
        .unwrap();
    assert_eq!(c.run(CancellationToken::new()).await.exit, Exit::Exited(0));
}

// ------------------------------------------------------------- programs

#[test]
fn compiling_a_digest_twice_hits_the_cache() {
    let rt = runtime();
    let bytes = wasm(&module(HELLO));
    let digest = Digest::of(&bytes);
    let epoch = Metering::EpochOnly;
    assert!(rt.cached(&digest, epoch).is_none());
    let first = rt.compile(&digest, &bytes, epoch).unwrap();
    let second = rt.compile(&digest, &bytes, epoch).unwrap();
    assert_eq!(first.digest(), second.digest());
    let stats = rt.cache_stats();
    assert_eq!((stats.compiled, stats.hits, stats.programs), (1, 1, 1));
    assert!(rt.cached(&digest, epoch).is_some());
    // The fuel engine needs its own compile, kept beside the first.
    assert!(rt.cached(&digest, Metering::Fuel).is_none());
    let fuel = rt.compile(&digest, &bytes, Metering::Fuel).unwrap();
    assert_eq!(fuel.metering(), Metering::Fuel);
    let stats = rt.cache_stats();
    assert_eq!((stats.compiled, stats.programs), (2, 2));
    assert!(rt.forget(&digest));
    assert!(rt.cached(&digest, epoch).is_none());
    assert!(rt.cached(&digest, Metering::Fuel).is_none());
}

#[test]
fn concurrent_compiles_of_one_digest_compile_once() {
    let rt = runtime();
    let bytes = wasm(&module(HELLO));
    let digest = Digest::of(&bytes);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| rt.compile(&digest, &bytes, Metering::EpochOnly).unwrap());
        }
    });
    assert_eq!(rt.cache_stats().compiled, 1);
    assert_eq!(rt.cache_stats().hits, 3);
}

#[test]
fn bytes_that_are_not_webassembly() {
    let rt = runtime();
    let bytes = b"#!/bin/sh\necho hi\n";
    let err = rt
        .compile(&Digest::of(bytes), bytes, Metering::EpochOnly)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::NotWasm(_)), "{err}");
    assert!(
        err.to_string().starts_with("not a WebAssembly module"),
        "{err}"
    );
}

#[test]
fn invalid_webassembly() {
    let rt = runtime();
    // A valid header followed by a truncated section.
    let bytes = b"\0asm\x01\0\0\0\x01\xff";
    let err = rt
        .compile(&Digest::of(bytes), bytes, Metering::EpochOnly)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
    assert!(err.to_string().starts_with("invalid module: "), "{err}");
    // Failures are not cached: the next attempt compiles again.
    assert!(
        rt.compile(&Digest::of(bytes), bytes, Metering::EpochOnly)
            .is_err()
    );
    assert_eq!(rt.cache_stats().compiled, 2);
}

#[test]
fn modules_that_cannot_run_as_tasks() {
    let rt = runtime();
    let no_start = wasm("(module (func (export \"main\")))");
    let err = rt
        .compile(&Digest::of(&no_start), &no_start, Metering::EpochOnly)
        .unwrap_err();
    assert!(err.to_string().contains("`_start"), "{err}");

    let odd_import =
        wasm("(module (import \"env\" \"launch_missiles\" (func)) (func (export \"_start\")))");
    let err = rt
        .compile(&Digest::of(&odd_import), &odd_import, Metering::EpochOnly)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("launch_missiles"), "{err}");
}

#[test]
fn bytes_must_match_their_digest() {
    let rt = runtime();
    let bytes = wasm(&module(HELLO));
    let err = rt
        .compile(&Digest::of(b"other"), &bytes, Metering::EpochOnly)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::DigestMismatch { .. }), "{err}");
}

// ----------------------------------------------------------- components

/// A WASI 0.2 command component whose `run` returns `ok` or `err`.
fn command_component(ok: bool) -> String {
    let result = if ok { 0 } else { 1 };
    format!(
        r#"(component
             (core module $m (func (export "run") (result i32) (i32.const {result})))
             (core instance $i (instantiate $m))
             (func $run (result (result)) (canon lift (core func $i "run")))
             (instance $run_instance (export "run" (func $run)))
             (export "wasi:cli/run@0.2.0" (instance $run_instance)))"#
    )
}

#[tokio::test]
async fn wasi_command_components_run() {
    let rt = runtime();
    for (ok, exit) in [(true, Exit::Exited(0)), (false, Exit::Exited(1))] {
        let program = compile(&rt, &command_component(ok));
        assert_eq!(program.kind(), ProgramKind::Component);
        let dir = TaskDir::new();
        assert_eq!(run(&rt, &program, dir.spec(&["cmd"])).await.exit, exit);
    }
}

#[test]
fn components_that_are_not_commands_are_refused() {
    let rt = runtime();
    let bytes = wasm("(component)");
    let err = rt
        .compile(&Digest::of(&bytes), &bytes, Metering::EpochOnly)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("wasi:cli/run"), "{err}");
}

/// A WASI 0.2 command component that writes to stdout through
/// `wasi:cli/stdout` and `wasi:io/streams`.
const COMPONENT_HELLO: &str = r#"
(component $C
  (import "wasi:io/error@0.2.0" (instance $io-error
    (export "error" (type (sub resource)))))
  (alias export $io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer $C $error (type $error))
    (type $stream-error-def (variant (case "last-operation-failed" (own $error)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error-def)))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $write (func (param "self" (borrow $output-stream)) (param "contents" (list u8))
                       (result (result (error $stream-error)))))
    (export "[method]output-stream.blocking-write-and-flush" (func (type $write)))))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer $C $output-stream (type $os))
    (export "output-stream" (type $output-stream (eq $os)))
    (export "get-stdout" (func (result (own $output-stream))))))

  (core module $libc (memory (export "memory") 1))
  (core instance $libc (instantiate $libc))
  (core func $get-stdout (canon lower (func $stdout "get-stdout")))
  (core func $write (canon lower (func $streams "[method]output-stream.blocking-write-and-flush")
                      (memory (core memory $libc "memory"))))
  (core module $main
    (import "host" "get-stdout" (func $get-stdout (result i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32)))
    (import "libc" "memory" (memory 1))
    (data (i32.const 16) "hi from a component\n")
    (func (export "run") (result i32)
      (call $write (call $get-stdout) (i32.const 16) (i32.const 20) (i32.const 64))
      (i32.load8_u (i32.const 64))))
  (core instance $host
    (export "get-stdout" (func $get-stdout))
    (export "write" (func $write)))
  (core instance $main (instantiate $main
    (with "host" (instance $host))
    (with "libc" (instance $libc))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
"#;

#[tokio::test]
async fn component_stdout_goes_to_its_log() {
    let rt = runtime();
    let program = compile(&rt, COMPONENT_HELLO);
    let dir = TaskDir::new();
    let outcome = run(&rt, &program, dir.spec(&["cmd"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));
    assert_eq!(dir.stdout_text(), "hi from a component\n");
    assert_eq!(outcome.usage.stdout_bytes, 20);
}

#[test]
fn compiled_code_can_be_kept_on_disk_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let config = || wasmesos_runtime::RuntimeConfig {
        max_memory_bytes: 16 << 20,
        pooling: Some(wasmesos_runtime::PoolingConfig::with_max_tasks(2)),
        compile_cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let bytes = wasm(&module(HELLO));
    let digest = Digest::of(&bytes);
    let first = wasmesos_runtime::Runtime::new(config()).unwrap();
    first.compile(&digest, &bytes, Metering::EpochOnly).unwrap();
    assert!(
        walk(cache.path()) > 0,
        "nothing written to the compile cache"
    );
    drop(first);
    // A restarted runtime loads from the same cache (wasmtime keys it by the
    // bytes and the engine's settings).
    let second = wasmesos_runtime::Runtime::new(config()).unwrap();
    let program = second
        .compile(&digest, &bytes, Metering::EpochOnly)
        .unwrap();
    assert_eq!(program.digest(), &digest);
}

/// Compiled artifacts in a wasmtime cache directory (not its usage
/// counters or cleanup markers).
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else if path.to_string_lossy().contains("/modules/")
                && path.extension().is_none_or(|x| x != "stats")
            {
                1
            } else {
                0
            }
        })
        .sum()
}
