//! The guest-side SDK for wasmesos framework schedulers written in Rust.
//!
//! A scheduler is a WebAssembly component (built for `wasm32-wasip2`) that
//! implements the `scheduler` world of `wit/scheduler.wit`; the master hosts
//! it (`schedhost/` on the other side of the contract). This crate holds the
//! one `wit_bindgen::generate!` over `wit/` ([`bindings`]) and what makes
//! writing a scheduler pleasant: [`Resources`] arithmetic, a [`Host`] trait
//! over the imports with typed JSON state (and an in-memory [`MemoryHost`]
//! so decision logic is unit-testable natively), command constructors
//! ([`cmd`]) and the job [`Submission`] format. The bundled schedulers in
//! `examples/` use it; `builtin/` builds and embeds them.
//!
//! ```no_run
//! use wasmesos_sdk::{Command, Guest, Message, Offer, Registration, Reply, TaskStatus, cmd};
//!
//! struct Idle;
//!
//! impl Guest for Idle {
//!     fn registered(_: Registration) -> Vec<Command> {
//!         vec![cmd::suppress()]
//!     }
//!     fn offers(offers: Vec<Offer>) -> Vec<Command> {
//!         vec![cmd::decline(offers.into_iter().map(|o| o.id).collect(), 60.0)]
//!     }
//!     fn offer_rescinded(_: String) -> Vec<Command> {
//!         Vec::new()
//!     }
//!     fn status_update(_: TaskStatus) -> Vec<Command> {
//!         Vec::new()
//!     }
//!     fn message(_: Message) -> Result<Reply, String> {
//!         Err("this scheduler takes no messages".into())
//!     }
//!     fn agent_lost(_: String) -> Vec<Command> {
//!         Vec::new()
//!     }
//!     fn timer(_: String) -> Vec<Command> {
//!         Vec::new()
//!     }
//! }
//!
//! wasmesos_sdk::export_scheduler!(Idle);
//! ```

pub mod cmd;
mod host;
pub mod log;
mod resources;
mod submission;

pub use host::{Host, HostError, Imports, MemoryHost};
pub use submission::{
    Submission, SubmittedLimits, SubmittedResources, SubmittedTask, parse_task_id,
};

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
