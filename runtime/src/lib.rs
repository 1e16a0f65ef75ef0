//! Everything that executes a task on an agent.
//!
//! A task is a WebAssembly program: a WASI preview 1 core module
//! (`wasm32-wasip1`, run from `_start`) or a WASI 0.2 command component
//! (`wasm32-wasip2`, run through `wasi:cli/run`). The [`Runtime`] owns two
//! wasmtime engines (Cranelift, epoch interruption, pooling allocators): an
//! epoch-only one for most tasks and one with fuel metering for tasks with
//! a fuel limit ([`Metering`]: fuel makes compute-heavy code slower), an
//! epoch ticker thread and a cache of compiled [`Program`]s by digest and
//! engine. [`Runtime::instantiate`] gives each task a fresh store and WASI
//! context — its arguments and environment exactly, an empty stdin,
//! stdout/stderr into capped [`LogFile`]s, its sandbox directory as `/`, no
//! network — and [`Instance::run`] runs it under its memory, fuel, CPU
//! ([`CpuQuota`]) and time limits until it exits, traps, runs out of
//! something, times out or is killed, yielding a [`RunOutcome`] with its
//! usage (CPU time measured per poll on the thread's CPU clock).
//!
//! Tasks run on a [`TaskPool`], a tokio runtime of their own, so that the
//! agent's networking stays responsive however busy they are;
//! [`capacity`] says whether this process's limits (memory mappings, open
//! files) can hold the tasks a configuration allows.
//!
//! Process isolation, optional: [`executor`] runs tasks in child processes
//! (the `wasmesos` binary re-executed as `wasmesos executor`) that use this
//! same crate, kept in a pool and reused, each in a cgroup of its own whose
//! cpu and memory limits [`cgroups`] plans and writes (v2, v1 and hybrid
//! hosts). [`CpuQuota::cfs_quota_us`] gives the same budget in-process and
//! as `cpu.max`.
//!
//! Neighbours: the agent (`wasmesos-agent`) calls this crate to compile
//! modules it fetched, launch and kill tasks and stream their logs; this
//! crate never talks to the master or the network. Shared vocabulary
//! ([`Digest`](wasmesos_api::Digest), size formatting) comes from
//! `wasmesos-api`.

mod cache_dir;
pub mod capacity;
pub mod cgroups;
mod cpu;
mod engine;
mod error;
pub mod executor;
mod limits;
mod logs;
mod pool;
mod program;
mod run;
mod runtime;
mod sandbox;

pub use cpu::CpuQuota;
pub use engine::{Metering, PoolingConfig, RuntimeConfig};
pub use error::{InstantiateError, RuntimeError};
pub use logs::{LogFile, LogFollower, LogStart};
pub use pool::TaskPool;
pub use program::{CacheStats, Program, ProgramKind, detect_kind};
pub use run::{Exit, Instance, RunOutcome, RunSpec, Usage};
pub use runtime::Runtime;
/// Re-exported so callers need not depend on `tokio-util` for
/// [`Instance::run`].
pub use tokio_util::sync::CancellationToken;
