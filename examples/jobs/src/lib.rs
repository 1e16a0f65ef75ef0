//! The built-in jobs framework: a FIFO batch scheduler, as a WebAssembly
//! component for the master to host. Clients submit jobs (`wasmesos
//! submit`); it queues them durably in `state` ([`queue`]), launches them
//! on offers packing as many as fit, and retries failed attempts (`JOB.N`)
//! up to a job's `max_attempts`. The decisions live in [`scheduler`], over
//! the SDK's `Host` trait so they are unit-tested natively; this file only
//! binds them to the real imports. `builtin/` builds and embeds it.

pub mod queue;
pub mod scheduler;

use wasmesos_sdk::{
    Command, Guest, HostError, Imports, Message, Offer, Registration, Reply, TaskStatus,
};

struct Jobs;

/// A refused write leaves the callback half done: trap, so that the master
/// drops its transaction and delivers the event again.
fn commit<T>(outcome: Result<T, HostError>) -> T {
    outcome.unwrap_or_else(|e| {
        wasmesos_sdk::log::error(&format!("jobs scheduler: {e}"));
        panic!("jobs scheduler: {e}")
    })
}

impl Guest for Jobs {
    fn registered(_info: Registration) -> Vec<Command> {
        commit(scheduler::registered(&mut Imports))
    }

    fn offers(offers: Vec<Offer>) -> Vec<Command> {
        commit(scheduler::offers(&mut Imports, &offers))
    }

    fn offer_rescinded(_offer_id: String) -> Vec<Command> {
        // Offers are never held, so there is nothing to forget.
        Vec::new()
    }

    fn status_update(status: TaskStatus) -> Vec<Command> {
        commit(scheduler::status_update(&mut Imports, &status))
    }

    fn message(msg: Message) -> Result<Reply, String> {
        commit(scheduler::message(&mut Imports, &msg))
    }

    fn agent_lost(_agent_id: String) -> Vec<Command> {
        // Each of the agent's tasks also gets a `lost` status update.
        Vec::new()
    }

    fn timer(_id: String) -> Vec<Command> {
        Vec::new()
    }
}

wasmesos_sdk::export_scheduler!(Jobs);
