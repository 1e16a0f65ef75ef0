//! The guest-side SDK for wasmesos framework schedulers written in Rust.
//!
//! A scheduler is a WebAssembly component (built for `wasm32-wasip2`) that
//! implements the `scheduler` world of `wit/scheduler.wit`; the master hosts
//! it (`schedhost/` on the other side of the contract). This crate holds the
//! one `wit_bindgen::generate!` over `wit/` ([`bindings`]) and what makes
//! writing a scheduler pleasant:
//!
//! - the [`Scheduler`] trait: every callback has a no-op default, takes
//!   `&mut self` and the host, and returns an [`Outcome`]; export it with
//!   [`scheduler!`];
//! - a [`Host`] trait over the imports with typed JSON state, and an
//!   in-memory [`MemoryHost`] so decision logic is unit-testable natively;
//! - [`Resources`] arithmetic in the host's fixed point, [`parse_size`] and
//!   [`cpus_milli`] for amounts as people write them, and config lookup on
//!   [`Registration`];
//! - a [`Packer`] (and [`pack`]) placing tasks on offers under
//!   [`Constraints`] (spread across agents, at most K per agent,
//!   attributes);
//! - command constructors ([`cmd`]) and the job [`Submission`] format.
//!
//! The bundled schedulers in `examples/` use it; `builtin/` builds and
//! embeds them. The generated [`Guest`] trait and [`export_scheduler!`]
//! remain for authors who want the raw bindings (the `chaos` fixture).
//!
//! ```no_run
//! use wasmesos_sdk::{Host, Offer, Outcome, Packer, Registration, Scheduler, cmd};
//!
//! /// Runs nothing; shows the shape.
//! #[derive(Default)]
//! struct Idle;
//!
//! impl Scheduler for Idle {
//!     fn registered(&mut self, _: &mut impl Host, _: &Registration) -> Outcome {
//!         Ok(vec![cmd::suppress()])
//!     }
//!     fn offers(&mut self, _: &mut impl Host, offers: &[Offer]) -> Outcome {
//!         // Nothing to place: every offer comes back as unused.
//!         let packer = Packer::new(offers);
//!         Ok(packer.finish().commands(60.0))
//!     }
//! }
//!
//! wasmesos_sdk::scheduler!(Idle);
//! ```

pub mod cmd;
mod config;
mod host;
pub mod log;
mod pack;
mod resources;
mod scheduler;
mod submission;
mod units;

pub use host::{Host, HostError, Imports, MemoryHost};
pub use pack::{Constraints, Packed, Packer, pack};
#[doc(hidden)]
pub use scheduler::call as __call;
pub use scheduler::{Error, Outcome, Scheduler};
pub use submission::{
    Submission, SubmittedLimits, SubmittedResources, SubmittedTask, parse_task_id,
};
pub use units::{cpus_milli, parse_size};

/// The bindings generated from `wit/` (world `scheduler`), public so that
/// authors can reach every generated type and the raw imports.
// The status-update export takes a record flattened into 15 arguments.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "scheduler",
        // Exported so that a scheduler crate writes
        // `wasmesos_sdk::export_scheduler!(MySched)`; `$crate` makes the
        // macro find these bindings whatever the author calls this crate.
        pub_export_macro: true,
        export_macro_name: "export_scheduler",
        default_bindings_module: "$crate::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::Guest;
/// Exports a type implementing [`Guest`] as the scheduler component:
/// `wasmesos_sdk::export_scheduler!(MySched);` once, at a crate's root.
pub use bindings::export_scheduler;
pub use bindings::wasmesos::scheduler::types::{
    Command, Decline, Hold, Launch, Level, Limits, Message, Offer, Registration, Reply, Resources,
    TaskInfo, TaskState, TaskStatus, Timer,
};

impl TaskState {
    /// The state's WIT name ("running", "failed", ...), for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Staging => "staging",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Killed => "killed",
            TaskState::Lost => "lost",
            TaskState::Error => "error",
        }
    }

    /// True for the states a task never leaves: finished, failed, killed,
    /// lost and error.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TaskState::Staging | TaskState::Starting | TaskState::Running
        )
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState;

    #[test]
    fn terminal_states() {
        let terminal: Vec<TaskState> = [
            TaskState::Staging,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
            TaskState::Error,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(TaskState::Lost.as_str(), "lost");
        assert_eq!(
            terminal,
            [
                TaskState::Finished,
                TaskState::Failed,
                TaskState::Killed,
                TaskState::Lost,
                TaskState::Error
            ]
        );
    }
}
