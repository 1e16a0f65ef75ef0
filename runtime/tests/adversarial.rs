//! Hostile tasks, written as WAT: each ends in its expected state with a
//! clear message, and a normal task run right after on the same runtime
//! succeeds (the runtime, its pool and its engines are unharmed).

mod common;

use common::*;
use std::time::Duration;
use wasmesos_api::Digest;
use wasmesos_runtime::{Exit, Metering, Runtime, RuntimeError};

const HELLO: &str = r#"
  (data (i32.const 4096) "hi\n")
  (func (export "_start") (call $print (i32.const 1) (i32.const 4096) (i32.const 3)))
"#;

/// Runs a well-behaved task on both engines of `rt` and checks it works.
async fn a_normal_task_still_runs(rt: &Runtime) {
    for metering in Metering::ALL {
        let program = compile_for(rt, &module(HELLO), metering);
        let dir = TaskDir::new();
        let mut spec = dir.spec(&["hello"]);
        if metering == Metering::Fuel {
            spec.fuel = Some(1_000_000);
        }
        let outcome = run(rt, &program, spec).await;
        assert_eq!(outcome.exit, Exit::Exited(0), "{metering}");
        assert_eq!(dir.stdout_text(), "hi\n");
    }
}

#[tokio::test]
async fn infinite_loop_times_out_runs_out_of_fuel_or_is_killed() {
    let rt = runtime();
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);

    let dir = TaskDir::new();
    let mut spec = dir.spec(&["spin"]);
    spec.timeout = Some(Duration::from_millis(100));
    let outcome = run(&rt, &compile(&rt, &spin), spec).await;
    assert_eq!(outcome.exit.message(), "timed out after 100ms");

    let dir = TaskDir::new();
    let mut spec = dir.spec(&["spin"]);
    spec.fuel = Some(5_000_000);
    let outcome = run(&rt, &compile_fuel(&rt, &spin), spec).await;
    assert_eq!(outcome.exit.message(), "fuel exhausted after 5000000 units");

    a_normal_task_still_runs(&rt).await;
}

#[tokio::test]
async fn memory_bomb_is_refused_page_by_page() {
    // Grows one page at a time until refused, then traps.
    let bomb = module(
        r#"(func (export "_start")
             (loop $l
               (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
             unreachable)"#,
    );
    for rt in [runtime(), on_demand_runtime()] {
        let dir = TaskDir::new();
        let mut spec = dir.spec(&["bomb"]);
        spec.mem_bytes = 4 << 20;
        let outcome = run(&rt, &compile(&rt, &bomb), spec).await;
        assert_eq!(outcome.exit, Exit::MemoryExceeded { limit: 4 << 20 });
        assert_eq!(outcome.exit.message(), "memory limit 4MiB exceeded");
        assert_eq!(outcome.usage.peak_mem_bytes, 4 << 20);
        a_normal_task_still_runs(&rt).await;
    }
}

#[tokio::test]
async fn table_bomb_counts_against_the_memory_cap() {
    let rt = runtime();
    let wat = format!(
        r#"(module {IMPORTS}
             (memory (export "memory") 1)
             (table $t 1 funcref)
             (func (export "_start")
               (loop $l
                 (br_if $l (i32.ne (table.grow $t (ref.null func) (i32.const 1000))
                                   (i32.const -1))))
               unreachable))"#
    );
    let dir = TaskDir::new();
    let mut spec = dir.spec(&["tables"]);
    spec.mem_bytes = 128 << 10;
    let outcome = run(&rt, &compile(&rt, &wat), spec).await;
    assert_eq!(outcome.exit, Exit::MemoryExceeded { limit: 128 << 10 });
    a_normal_task_still_runs(&rt).await;
}

#[tokio::test]
async fn deep_recursion_through_host_calls_is_a_stack_overflow() {
    let rt = runtime();
    // Every frame is large and calls into WASI, so the overflow can come
    // while the host runs on the task's stack.
    let deep = module(
        r#"(func $down (param $n i64) (local i64 i64 i64 i64 i64 i64 i64 i64)
             (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
             (call $down (i64.add (local.get $n) (i64.const 1))))
           (func (export "_start") (call $down (i64.const 0)))"#,
    );
    let dir = TaskDir::new();
    let outcome = run(&rt, &compile(&rt, &deep), dir.spec(&["deep"])).await;
    assert_eq!(outcome.exit, Exit::Trapped("stack overflow".into()));
    assert_eq!(outcome.exit.message(), "trapped: stack overflow");
    a_normal_task_still_runs(&rt).await;
}

#[tokio::test]
async fn stdout_flood_is_capped_and_never_fills_the_disk() {
    let rt = runtime();
    // Writes 1 KiB chunks to stdout forever.
    let flood = module(
        r#"(func (export "_start")
             (loop $l
               (call $print (i32.const 1) (i32.const 8192) (i32.const 1024))
               (br $l)))"#,
    );
    let dir = TaskDir::with_cap(64 << 10);
    let mut spec = dir.spec(&["flood"]);
    spec.timeout = Some(Duration::from_millis(300));
    let outcome = run(&rt, &compile(&rt, &flood), spec).await;
    assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_millis(300)));
    assert_eq!(outcome.usage.stdout_bytes, 64 << 10);
    assert!(outcome.usage.log_bytes_dropped > 0, "{:?}", outcome.usage);
    let on_disk = std::fs::metadata(dir.root.path().join("stdout")).unwrap();
    assert_eq!(on_disk.len(), 64 << 10);
    a_normal_task_still_runs(&rt).await;
}

/// WASI calls to make links, on top of the usual imports.
const LINK_IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
"#;

/// A module with the usual imports and helpers, the link imports and `body`.
fn linking_module(body: &str) -> String {
    format!(
        "(module\n{IMPORTS}\n{LINK_IMPORTS}\n(memory (export \"memory\") 1)\n{HELPERS}\n{body}\n)"
    )
}

#[tokio::test]
async fn links_the_task_makes_cannot_escape_its_sandbox() {
    let rt = runtime();
    // Makes the symlink `link` -> argv[1], then opens `link` for reading; exits with the errno
    // of whichever failed, 0 if both worked.
    let wat = linking_module(
        r#"(data (i32.const 4096) "link")
           (func (export "_start") (local $p i32) (local $err i32)
             (local.set $p (call $arg1))
             (local.set $err
               (call $path_symlink (local.get $p) (i32.load (i32.const 104))
                                   (i32.const 3) (i32.const 4096) (i32.const 4)))
             (if (local.get $err)
               (then (call $proc_exit (local.get $err))))
             ;; path_open with LOOKUP_SYMLINK_FOLLOW: the link is followed.
             (call $proc_exit
               (call $path_open (i32.const 3) (i32.const 1) (i32.const 4096) (i32.const 4)
                 (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 300))))"#,
    );
    let program = compile(&rt, &wat);
    for target in ["/etc/passwd", "../secret", "../../../../etc/passwd"] {
        let dir = TaskDir::new();
        std::fs::write(dir.root.path().join("secret"), b"secret").unwrap();
        let outcome = run(&rt, &program, dir.spec(&["link", target])).await;
        let code = outcome
            .exit
            .exit_code()
            .unwrap_or_else(|| panic!("{target}: {:?}", outcome.exit));
        assert_ne!(code, 0, "a symlink to {target} opened outside the sandbox");
    }
    // A symlink inside the sandbox works.
    let dir = TaskDir::new();
    std::fs::write(dir.sandbox().join("inside"), b"ok").unwrap();
    let outcome = run(&rt, &program, dir.spec(&["link", "inside"])).await;
    assert_eq!(outcome.exit, Exit::Exited(0));

    // Hard links to files outside cannot be made.
    let hard = linking_module(
        r#"(data (i32.const 4096) "link")
           (func (export "_start") (local $p i32)
             (local.set $p (call $arg1))
             (call $proc_exit
               (call $path_link (i32.const 3) (i32.const 0) (local.get $p) (i32.load (i32.const 104))
                                (i32.const 3) (i32.const 4096) (i32.const 4))))"#,
    );
    let program = compile(&rt, &hard);
    let dir = TaskDir::new();
    std::fs::write(dir.root.path().join("secret"), b"secret").unwrap();
    let outcome = run(&rt, &program, dir.spec(&["link", "../secret"])).await;
    assert_ne!(outcome.exit.exit_code(), Some(0));
    assert!(!dir.sandbox().join("link").exists());
    a_normal_task_still_runs(&rt).await;
}

#[tokio::test]
async fn imports_the_agent_does_not_provide_are_refused_before_running() {
    let rt = runtime();
    let cases = [
        (
            r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#,
            "launch_missiles",
        ),
        // A WASI function with the wrong signature.
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                       (func (export "_start")))"#,
            "fd_write",
        ),
        // A WASI 0.2 component importing an interface no agent offers.
        (
            r#"(component
                 (import "wasmesos:secret/keys@1.0.0" (instance (export "get" (func (result u32)))))
                 (core module $m (func (export "run") (result i32) (i32.const 0)))
                 (core instance $i (instantiate $m))
                 (func $run (result (result)) (canon lift (core func $i "run")))
                 (instance $r (export "run" (func $run)))
                 (export "wasi:cli/run@0.2.0" (instance $r)))"#,
            "wasmesos:secret/keys",
        ),
    ];
    for (wat, what) in cases {
        let bytes = wasm(wat);
        for metering in Metering::ALL {
            let err = rt
                .compile(&Digest::of(&bytes), &bytes, metering)
                .unwrap_err();
            assert!(matches!(err, RuntimeError::Unsupported(_)), "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
    }
    a_normal_task_still_runs(&rt).await;
}
