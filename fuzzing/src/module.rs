//! The module loading path: bytes a tenant uploads as a task module or
//! deploys as a scheduler component.
//!
//! Each input meets the same checks it would in a cluster: the master's
//! upload validation, then the agent runtime's compile and WASI link (on
//! the engine a task would get), then the scheduler host's compile and
//! world check. None may panic or hang, and neither loader may accept what
//! the upload check refused: the master must not turn away a module an
//! agent or the scheduler host would run. (The converse is allowed: a valid
//! library without `_start` is stored, and refused with a reason when a
//! task or a deployment uses it.)

use std::sync::OnceLock;

use wasmesos_api::Digest;
use wasmesos_runtime::{Metering, Runtime, RuntimeConfig};
use wasmesos_schedhost::{SchedHost, SchedHostConfig};

struct Loaders {
    runtime: Runtime,
    schedhost: SchedHost,
}

fn loaders() -> &'static Loaders {
    static LOADERS: OnceLock<Loaders> = OnceLock::new();
    LOADERS.get_or_init(|| Loaders {
        // The agent's and the master's defaults: the pooling allocator's
        // limits are part of what a module is checked against.
        runtime: Runtime::new(RuntimeConfig::default()).expect("the default runtime starts"),
        schedhost: SchedHost::new(SchedHostConfig::default())
            .expect("the default scheduler host starts"),
    })
}

/// What each loader said about one input.
#[derive(Debug)]
pub struct Verdicts {
    /// The master's upload check.
    pub upload: Result<(), String>,
    /// The agent runtime (detect, validate, compile, link).
    pub task: Result<(), String>,
    /// The scheduler host (compile, world and version check).
    pub scheduler: Result<(), String>,
}

/// Runs `data` through every loader; panics on a finding.
pub fn check(data: &[u8]) -> Verdicts {
    let l = loaders();
    let upload = wasmesos_master::validate_module(data, "").map(drop);
    // Both engines are exercised, chosen by the input so a run covers both.
    let metering = if data.len().is_multiple_of(2) {
        Metering::EpochOnly
    } else {
        Metering::Fuel
    };
    let digest = Digest::of(data);
    let task = l.runtime.compile(&digest, data, metering).map(drop);
    // Each input is new: keep the program cache from holding them all.
    l.runtime.forget(&digest);
    let scheduler = l.schedhost.compile(data).map(drop);

    if let (Err(refused), Ok(())) = (&upload, &task) {
        panic!("the runtime runs a module the master refuses to store: {refused}");
    }
    if let (Err(refused), Ok(())) = (&upload, &scheduler) {
        panic!("the scheduler host loads a component the master refuses to store: {refused}");
    }
    Verdicts {
        upload: upload.map_err(|e| e.to_string()),
        task: task.map_err(|e| e.to_string()),
        scheduler: scheduler.map_err(|e| e.to_string()),
    }
}

/// Starting inputs: valid modules and components of each kind, and the
/// near misses a fuzzer mutates toward (text, truncation, a wrong version,
/// a library without `_start`, a component of the wrong world).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let wat = |text: &str| wat::parse_str(text).expect("seed WAT parses");
    let command = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (import "wasi_snapshot_preview1" "fd_write"
            (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "hello\n")
        (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 6))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (call $exit (i32.const 3))))"#);
    let mut truncated = command.clone();
    truncated.truncate(command.len() / 2);
    let mut version_2 = command.clone();
    version_2[4] = 2;
    vec![
        ("command", command),
        ("truncated", truncated),
        ("version 2", version_2),
        ("empty module", wat("(module)")),
        (
            "library",
            wat(r#"(module (func (export "add") (param i32 i32) (result i32)
                (i32.add (local.get 0) (local.get 1))))"#),
        ),
        (
            "foreign import",
            wat(r#"(module (import "env" "f" (func)) (func (export "_start") (call 0)))"#),
        ),
        (
            "big memory and table",
            wat(r#"(module (memory 65536) (table 10000000 funcref)
                (func (export "_start")))"#),
        ),
        ("empty component", wat("(component)")),
        (
            "component with a core module",
            wat(
                r#"(component (core module $m (func (export "f"))) (core instance (instantiate $m)))"#,
            ),
        ),
        ("text", b"(module (func (export \"_start\")))".to_vec()),
        ("nothing", Vec::new()),
        ("magic only", b"\0asm".to_vec()),
    ]
}
