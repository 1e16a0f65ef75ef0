//! Running tasks in executor processes: the same `wasmesos` binary started
//! with a hidden `executor` subcommand, which runs one task at a time with
//! this crate exactly as the agent does in-process, so every limit and
//! message is the same — and, with cgroups, the kernel holds the whole
//! process to the task's cpu and memory too.
//!
//! [`protocol`]: the length-prefixed JSON messages over the executor's
//! stdin/stdout. [`serve`]: the executor's side. [`pool`]: the agent's
//! side, a pool of pre-started executors reused across tasks, each in its
//! own reusable cgroup ([`crate::cgroups`]).

pub mod pool;
pub mod protocol;
mod serve;

pub use pool::{ExecutorPool, Job, PoolConfig, Ran};
pub use protocol::{RunRequest, Settings};
pub use serve::{FLUSH_EVERY, serve, serve_stdio};

use crate::cgroups::CgroupError;
use crate::error::RuntimeError;
use std::path::PathBuf;

/// What went wrong with an executor (as opposed to the task it ran).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor program could not be started.
    #[error("cannot start the executor process {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The executor and the agent misunderstood each other, or one went
    /// away mid-conversation.
    #[error("executor: {0}")]
    Protocol(String),
    /// The task could not be set up in the executor (its module, its
    /// sandbox, a full pool): the executor's reason.
    #[error("{0}")]
    Refused(String),
    /// The executor's cgroup could not be made or given the task's limits.
    #[error("executor cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    /// The executor could not build its runtime.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The executor's own I/O.
    #[error("executor I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The pool has been shut down.
    #[error("the executor pool is shut down")]
    Closed,
}
