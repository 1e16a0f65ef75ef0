//! Helpers shared by the runtime's integration tests: a small runtime, task
//! directories with logs, and WAT snippets for WASI preview 1.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmesos_api::Digest;
use wasmesos_runtime::{
    CancellationToken, InstantiateError, LogFile, Metering, PoolingConfig, Program, RunOutcome,
    RunSpec, Runtime, RuntimeConfig,
};

/// Every WASI import the test modules use (imports come first in WAT).
pub const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
"#;

/// Helper functions. Memory layout: 0..16 scratch for iovecs, 100..108
/// sizes, 200.. argv pointers, 400.. a poll subscription, 1024.. argv
/// strings, 2048.. environment strings, 4096.. data.
pub const HELPERS: &str = r#"
  ;; Writes memory[ptr..ptr+len] to fd.
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Sleeps for `ns` nanoseconds on the monotonic clock.
  (func $sleep (param $ns i64)
    (i64.store (i32.const 400) (i64.const 0))        ;; userdata
    (i32.store8 (i32.const 408) (i32.const 0))       ;; tag: clock
    (i32.store (i32.const 416) (i32.const 1))        ;; clock id: monotonic
    (i64.store (i32.const 424) (local.get $ns))      ;; timeout
    (i64.store (i32.const 432) (i64.const 0))        ;; precision
    (i32.store16 (i32.const 440) (i32.const 0))      ;; flags: relative
    (drop (call $poll_oneoff (i32.const 400) (i32.const 512) (i32.const 1) (i32.const 600))))

  ;; Loads argv; returns the pointer of argv[1] and stores its length at 104.
  (func $arg1 (result i32)
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
    (drop (call $args_get (i32.const 200) (i32.const 1024)))
    ;; len(argv[1]) = end of buffer - 1 (its NUL) - its start, for exactly two args
    (i32.store (i32.const 104)
      (i32.sub (i32.sub (i32.add (i32.const 1024) (i32.load (i32.const 104))) (i32.const 1))
               (i32.load (i32.const 204))))
    (i32.load (i32.const 204)))

  ;; path_open(preopen 3, path, rights) -> errno; the new fd at 300.
  (func $open (param $ptr i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (call $path_open (i32.const 3) (i32.const 0) (local.get $ptr) (local.get $len)
      (local.get $oflags) (local.get $rights) (local.get $rights) (i32.const 0) (i32.const 300)))
"#;

/// A module with one page of memory, the helpers and `body`.
pub fn module(body: &str) -> String {
    format!("(module\n{IMPORTS}\n(memory (export \"memory\") 1)\n{HELPERS}\n{body}\n)")
}

/// Binary of a WAT text.
pub fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("test WAT parses")
}

/// A runtime sized for tests: pools of 8 tasks (per engine) of at most
/// 64 MiB.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_memory_bytes: 64 << 20,
        pooling: Some(PoolingConfig::with_max_tasks(8)),
        metered_pooling: Some(PoolingConfig::with_max_tasks(8)),
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// The same without the pooling allocator.
pub fn on_demand_runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_memory_bytes: 64 << 20,
        pooling: None,
        metered_pooling: None,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// Compiled for the epoch-only engine (tasks without a fuel limit).
pub fn compile(rt: &Runtime, wat: &str) -> Program {
    compile_for(rt, wat, Metering::EpochOnly)
}

/// Compiled for the fuel engine (tasks with a fuel limit).
pub fn compile_fuel(rt: &Runtime, wat: &str) -> Program {
    compile_for(rt, wat, Metering::Fuel)
}

pub fn compile_for(rt: &Runtime, wat: &str, metering: Metering) -> Program {
    let bytes = wasm(wat);
    rt.compile(&Digest::of(&bytes), &bytes, metering)
        .expect("test program compiles")
}

/// A task's directory: `sandbox/`, `stdout`, `stderr`.
pub struct TaskDir {
    pub root: tempfile::TempDir,
    pub stdout: LogFile,
    pub stderr: LogFile,
}

impl TaskDir {
    pub fn new() -> TaskDir {
        TaskDir::with_cap(1 << 20)
    }

    pub fn with_cap(cap: u64) -> TaskDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sandbox")).unwrap();
        let stdout = LogFile::create(&root.path().join("stdout"), cap).unwrap();
        let stderr = LogFile::create(&root.path().join("stderr"), cap).unwrap();
        TaskDir {
            root,
            stdout,
            stderr,
        }
    }

    pub fn sandbox(&self) -> PathBuf {
        self.root.path().join("sandbox")
    }

    pub fn spec(&self, args: &[&str]) -> RunSpec {
        RunSpec {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            sandbox: Some(self.sandbox()),
            mem_bytes: 16 << 20,
            fuel: None,
            cpu: None,
            timeout: Some(Duration::from_secs(60)),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
    }

    pub fn stdout_text(&self) -> String {
        read(&self.root.path().join("stdout"))
    }

    pub fn stderr_text(&self) -> String {
        read(&self.root.path().join("stderr"))
    }
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

/// Instantiates and runs to the end; an instantiation failure of the task's
/// own making is its outcome.
pub async fn run(rt: &Runtime, program: &Program, spec: RunSpec) -> RunOutcome {
    match rt.instantiate(program, spec).await {
        Ok(instance) => instance.run(CancellationToken::new()).await,
        Err(InstantiateError::Task(outcome)) => outcome,
        Err(e) => panic!("instantiate failed: {e}"),
    }
}
