//! Errors of the runtime itself, as opposed to a task's own failures (which
//! are [`Exit`](crate::Exit)s of a [`RunOutcome`](crate::RunOutcome)).

use crate::run::RunOutcome;
use std::path::PathBuf;

/// What went wrong compiling a program or preparing a task, or with the
/// runtime's own configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime's configuration cannot work.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// The bytes are WebAssembly but do not validate or compile.
    #[error("invalid module: {0}")]
    Invalid(String),
    /// The program imports something this agent does not provide, or lacks
    /// the entry point of a WASI command.
    #[error("cannot run this program: {0}")]
    Unsupported(String),
    /// The bytes do not hash to the digest they were submitted under.
    #[error("module bytes hash to {actual}, not to the expected {expected}: the upload is corrupt")]
    DigestMismatch {
        /// The digest the caller named.
        expected: String,
        /// The digest of the bytes given.
        actual: String,
    },
    /// The compiled-code cache directory could be written by someone other
    /// than the agent's user: loading code from it would run theirs.
    #[error(
        "refusing the compiled-module cache {path}: {reason} (compiled code \
         loaded from it runs with the agent's rights, so only the agent's user may write it)"
    )]
    UnsafeCacheDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it, and the fix.
        reason: String,
    },
    /// The task has a fuel limit but its program was compiled for the
    /// epoch-only engine, which cannot count fuel.
    #[error(
        "the task has a fuel limit but its program was compiled without fuel metering: \
         compile it with Metering::Fuel"
    )]
    NeedsFuelEngine,
    /// This process's limits (memory mappings, open files) cannot hold the
    /// tasks the configuration allows.
    #[error("this machine cannot hold that many tasks: {0}")]
    HostLimits(String),
    /// The task's sandbox directory cannot be opened.
    #[error("cannot open the sandbox directory {path}: {reason}")]
    Sandbox {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Every slot of the pooling allocator is in use: try again when a task
    /// ends, or raise `pooling.max_tasks`.
    #[error("the agent is running as many tasks as its runtime allows ({0}); retry when one ends")]
    AtCapacity(String),
    /// Anything else wasmtime reported while setting up a task.
    #[error("cannot start the task: {0}")]
    Instantiate(String),
}

/// Why [`Runtime::instantiate`](crate::Runtime::instantiate) returned no
/// instance.
#[derive(Debug, thiserror::Error)]
pub enum InstantiateError {
    /// The task itself failed while being set up (its initial memory exceeds
    /// its cap, its start function trapped or ran out of time or fuel): report
    /// this outcome as the task's end (Mesos `TASK_FAILED`).
    #[error("{}", .0.exit)]
    Task(RunOutcome),
    /// The agent could not set the task up (Mesos `TASK_ERROR`, or retry for
    /// [`RuntimeError::AtCapacity`]).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}
