//! Hosts framework schedulers: WebAssembly components implementing the
//! `wasmesos:scheduler@0.1.0` world (`wit/scheduler.wit`), run inside the
//! master.
//!
//! Each framework gets its own wasmtime store with a memory cap; every
//! callback runs with a fuel budget and a wall-time limit (epoch
//! interruption, yielding to other work every tick). A callback is
//! event → commands: [`SchedulerInstance::call`] takes an [`Event`] and
//! returns a [`CallbackOutput`] holding the [`Command`]s, the reply to a
//! message, and the durable key-value writes and log lines the callback made.
//! The master commits all of that as one store transaction; when the commit
//! fails, or a callback traps, it throws the instance away and instantiates
//! the scheduler again from its committed state.
//!
//! Neighbours: the master drives this crate (offers from the allocator in,
//! commands out); the guest side of the same WIT is `sdk/`. This is the only
//! crate that runs `bindgen!` over `wit/`.

mod bindings;
mod config;
mod error;
mod event;
pub mod harness;
mod host;
mod instance;
mod state;
mod stderr;

pub use config::SchedHostConfig;
pub use error::{CallbackError, LoadError};
pub use event::{Command, Event, Limits, Message, Offer, Registration, TaskLaunch, TaskStatus};
pub use host::{InstanceLimits, SUPPORTED_WORLDS, SchedHost, SchedulerComponent};
pub use instance::{CallbackOutput, SchedulerInstance};
pub use state::{KvWrite, LogLevel, LogLine, MAX_KEY_BYTES, MAX_VALUE_BYTES};
