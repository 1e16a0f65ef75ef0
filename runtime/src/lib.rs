//! Everything that executes a task on an agent.
//!
//! A task is a WebAssembly program: a WASI preview 1 core module
//! (`wasm32-wasip1`, run from `_start`) or a WASI 0.2 command component
//! (`wasm32-wasip2`, run through `wasi:cli/run`). The [`Runtime`] owns one
//! wasmtime engine (Cranelift, fuel metering, epoch interruption, the pooling
//! allocator), an epoch ticker thread and a cache of compiled [`Program`]s by
//! digest. [`Runtime::instantiate`] gives each task a fresh store and WASI
//! context — its arguments and environment exactly, an empty stdin,
//! stdout/stderr into capped [`LogFile`]s, its sandbox directory as `/`, no
//! network — and [`Instance::run`] runs it under its memory, fuel and time
//! limits until it exits, traps, runs out of something, times out or is
//! killed, yielding a [`RunOutcome`].
//!
//! Neighbours: the agent (`wasmesos-agent`) calls this crate to compile
//! modules it fetched, launch and kill tasks and stream their logs; this
//! crate never talks to the master or the network. Shared vocabulary
//! ([`Digest`](wasmesos_api::Digest), size formatting) comes from
//! `wasmesos-api`.

mod engine;
mod error;
mod limits;
mod logs;
mod program;
mod run;
mod runtime;
mod sandbox;

pub use engine::{PoolingConfig, RuntimeConfig};
pub use error::{InstantiateError, RuntimeError};
pub use logs::{LogFile, LogFollower, LogStart};
pub use program::{CacheStats, Program, ProgramKind, detect_kind};
pub use run::{Exit, Instance, RunOutcome, RunSpec, Usage};
pub use runtime::Runtime;
/// Re-exported so callers need not depend on `tokio-util` for
/// [`Instance::run`].
pub use tokio_util::sync::CancellationToken;
