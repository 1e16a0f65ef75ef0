//! Integration tests of the scheduler host against real components: the
//! built-in jobs scheduler and the `chaos` fixture (both from `examples/`,
//! embedded by `wasmesos-builtin`). One test binary, one module per topic,
//! so the components are compiled by one build and the tests share helpers.
//!
//! - [`jobs`]: the jobs scheduler's life cycle through the host — submit,
//!   launch, decline, retry, refusal, re-instantiation from committed state.
//! - [`limits`]: time, fuel, memory, traps and stack overflow end a callback
//!   with the right [`CallbackError`](wasmesos_schedhost::CallbackError),
//!   poison that instance only, and leave other instances unaffected.
//! - [`state`]: the `state` and `log` imports — own writes visible, writes
//!   returned for commit, the quota and the per-callback log cap.
//! - [`load`]: what `compile` refuses (garbage, core modules, components of
//!   another world) and why.
//! - [`harness`]: the offline harness runs the jobs and chaos schedulers
//!   against a simulated cluster from scripts, and records what they did.

mod common;
mod harness;
mod jobs;
mod limits;
mod load;
mod state;
