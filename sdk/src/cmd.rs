//! Constructors for the commands a callback returns, and for replies to
//! messages, so that `vec![cmd::revive()]` reads like what it asks for.

use serde::Serialize;

use crate::{Command, Decline, Hold, Launch, Reply, TaskInfo, Timer};

/// Launch `tasks` on one offer.
pub fn launch(offer_id: &str, tasks: Vec<TaskInfo>) -> Command {
    launch_on(vec![offer_id.to_string()], tasks)
}

/// Launch `tasks` on several offers, all from the same agent.
pub fn launch_on(offer_ids: Vec<String>, tasks: Vec<TaskInfo>) -> Command {
    Command::Launch(Launch { offer_ids, tasks })
}

/// Give offers back; the same agents' resources are not offered again for
/// `refuse_seconds`.
pub fn decline(offer_ids: Vec<String>, refuse_seconds: f64) -> Command {
    Command::Decline(Decline {
        offer_ids,
        refuse_seconds,
    })
}

/// Keep offers past the end of the callback, for at most `seconds`.
pub fn hold(offer_ids: Vec<String>, seconds: f64) -> Command {
    Command::Hold(Hold { offer_ids, seconds })
}

/// Kill a task of this framework.
pub fn kill(task_id: &str) -> Command {
    Command::Kill(task_id.to_string())
}

/// Ask for the latest status of these tasks; an empty list asks for all of
/// the framework's non-terminal tasks.
pub fn reconcile(task_ids: Vec<String>) -> Command {
    Command::Reconcile(task_ids)
}

/// Stop offers until [`revive`].
pub fn suppress() -> Command {
    Command::Suppress
}

/// Send offers again and clear all decline filters.
pub fn revive() -> Command {
    Command::Revive
}

/// Call the `timer` callback with `id` after `after_ms`.
pub fn set_timer(id: &str, after_ms: u64) -> Command {
    Command::SetTimer(Timer {
        id: id.to_string(),
        after_ms,
    })
}

pub fn cancel_timer(id: &str) -> Command {
    Command::CancelTimer(id.to_string())
}

/// A reply with an empty body: for a submission, "accepted".
pub fn accept(commands: Vec<Command>) -> Reply {
    Reply {
        body: Vec::new(),
        commands,
    }
}

/// A reply whose body is `value` as JSON.
pub fn reply_json<T: Serialize + ?Sized>(value: &T, commands: Vec<Command>) -> Reply {
    Reply {
        // Serialising plain data to a Vec cannot fail; an empty body is the
        // harmless fallback should a custom Serialize impl refuse.
        body: serde_json::to_vec(value).unwrap_or_default(),
        commands,
    }
}
