//! The built-in jobs framework: a batch queue, as a WebAssembly component
//! for the master to host. Clients submit jobs (`wasmesos submit`); it
//! queues them durably in `state` ([`queue`]) by priority, then submission
//! order, launches them on offers packing as many as fit, and retries a
//! failed attempt (`JOB.N`) after a backoff that doubles per attempt, up to
//! the job's `max_attempts` ([`config`]). The decisions live in
//! [`scheduler`], an SDK `Scheduler` over the `Host` trait so they are
//! unit-tested natively; this file only exports it. `builtin/` builds and
//! embeds it. See README.md for its config keys and messages.

pub mod config;
pub mod queue;
pub mod scheduler;

wasmesos_sdk::scheduler!(scheduler::Jobs);
