//! Errors of the scheduler host. Every message says what was wrong and, where
//! the framework author can act, what to do.

use std::time::Duration;

/// A scheduler component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly binary (no \\0asm header)")]
    NotWasm,
    #[error(
        "this is a core module, not a component: build the scheduler for wasm32-wasip2 (see sdk/ and examples/jobs)"
    )]
    CoreModule,
    #[error("invalid scheduler component: {0}")]
    Invalid(String),
    #[error(
        "the component does not implement the wasmesos:scheduler@0.1.0 world: {0} (build it against wit/scheduler.wit, e.g. with the Rust SDK)"
    )]
    WrongWorld(String),
    #[error(
        "the component targets {found}; this master hosts {supported} (rebuild it against a supported wit/scheduler.wit)"
    )]
    WrongVersion { found: String, supported: String },
    #[error("the scheduler failed while starting: {0}")]
    Start(String),
    #[error("cannot set up the scheduler engine: {0}")]
    Engine(String),
}

/// A callback did not complete. The instance is unusable afterwards: the
/// caller throws it away and instantiates the scheduler again.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{callback} trapped: {message}")]
    Trap {
        callback: &'static str,
        /// What the guest wrote to stderr during the callback (where a
        /// panic's message goes), then wasmtime's account of the trap.
        message: String,
    },
    #[error("{callback} ran past its time limit of {limit:?}")]
    TimedOut {
        callback: &'static str,
        limit: Duration,
    },
    #[error("{callback} used up its fuel budget of {fuel} units")]
    FuelExhausted { callback: &'static str, fuel: u64 },
    #[error("{callback} exceeded the scheduler memory limit of {limit} bytes")]
    MemoryExceeded { callback: &'static str, limit: u64 },
    #[error("the scheduler instance failed earlier and must be re-instantiated")]
    Poisoned,
}
