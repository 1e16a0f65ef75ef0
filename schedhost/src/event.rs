//! The host's side of the WIT contract: events delivered to a scheduler and
//! the commands it returns, in the master's own types (newtype ids,
//! [`Resources`], digests). Conversion to and from the generated bindings
//! happens here and only here; a command that does not convert (a bad task
//! id, a malformed digest) is rejected with a reason instead of trapping.

use std::time::Duration;

use wasmesos_api::proto::TaskState;
use wasmesos_api::{AgentId, Digest, FrameworkId, OfferId, Resources, TaskId};

use crate::bindings::wasmesos::scheduler::types as wit;

/// An offer of one agent's resources.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub id: OfferId,
    pub agent_id: AgentId,
    pub hostname: String,
    pub resources: Resources,
    pub attributes: Vec<(String, String)>,
}

/// Handed to `registered`.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub framework_id: FrameworkId,
    pub name: String,
    pub role: String,
    pub config: Vec<(String, String)>,
    pub reregistered: bool,
}

/// A task's new state (or a reconciliation answer).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskStatus {
    pub task_id: TaskId,
    pub state: TaskState,
    pub message: String,
    pub exit_code: Option<i32>,
    pub agent_id: Option<AgentId>,
    pub timestamp_ms: u64,
    pub result: Option<Vec<u8>>,
    pub reconciliation: bool,
}

/// A message for the framework (a submission, or `framework send`).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: String,
    pub sender: String,
    pub body: Vec<u8>,
}

/// One callback's worth of input.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Registered(Registration),
    Offers(Vec<Offer>),
    OfferRescinded(OfferId),
    StatusUpdate(TaskStatus),
    Message(Message),
    AgentLost(AgentId),
    Timer(String),
}

impl Event {
    /// The callback's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Registered(_) => "registered",
            Event::Offers(_) => "offers",
            Event::OfferRescinded(_) => "offer-rescinded",
            Event::StatusUpdate(_) => "status-update",
            Event::Message(_) => "message",
            Event::AgentLost(_) => "agent-lost",
            Event::Timer(_) => "timer",
        }
    }
}

/// Task limits as a scheduler states them (0 = the agent's default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub fuel: u64,
    pub timeout_ms: u64,
    pub log_bytes: u64,
}

/// A task a scheduler wants launched.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskLaunch {
    pub task_id: TaskId,
    pub name: String,
    pub module_digest: Digest,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub resources: Resources,
    pub limits: Limits,
}

/// What a scheduler asks the master to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Launch {
        offer_ids: Vec<OfferId>,
        tasks: Vec<TaskLaunch>,
    },
    Decline {
        offer_ids: Vec<OfferId>,
        refuse: Duration,
    },
    Kill(TaskId),
    Reconcile(Vec<TaskId>),
    Suppress,
    Revive,
    Hold {
        offer_ids: Vec<OfferId>,
        duration: Duration,
    },
    SetTimer {
        id: String,
        after: Duration,
    },
    CancelTimer(String),
}

/// Longest timer id accepted.
const MAX_TIMER_ID: usize = 256;

fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(365.0 * 24.0 * 3600.0))
    } else {
        Duration::ZERO
    }
}

fn ids<T>(
    values: Vec<String>,
    parse: impl Fn(String) -> Result<T, wasmesos_api::IdError>,
) -> Result<Vec<T>, String> {
    values
        .into_iter()
        .map(|v| parse(v).map_err(|e| e.to_string()))
        .collect()
}

impl Command {
    /// Converts a command from the guest, or says why it is malformed.
    pub(crate) fn from_wit(command: wit::Command) -> Result<Command, String> {
        Ok(match command {
            wit::Command::Launch(l) => Command::Launch {
                offer_ids: ids(l.offer_ids, OfferId::new)?,
                tasks: l
                    .tasks
                    .into_iter()
                    .map(TaskLaunch::from_wit)
                    .collect::<Result<_, _>>()?,
            },
            wit::Command::Decline(d) => Command::Decline {
                offer_ids: ids(d.offer_ids, OfferId::new)?,
                refuse: seconds(d.refuse_seconds),
            },
            wit::Command::Kill(t) => Command::Kill(TaskId::new(t).map_err(|e| e.to_string())?),
            wit::Command::Reconcile(ts) => Command::Reconcile(ids(ts, TaskId::new)?),
            wit::Command::Suppress => Command::Suppress,
            wit::Command::Revive => Command::Revive,
            wit::Command::Hold(h) => Command::Hold {
                offer_ids: ids(h.offer_ids, OfferId::new)?,
                duration: seconds(h.seconds),
            },
            wit::Command::SetTimer(t) => {
                if t.id.is_empty() || t.id.len() > MAX_TIMER_ID {
                    return Err(format!(
                        "timer id must be 1 to {MAX_TIMER_ID} bytes, got {}",
                        t.id.len()
                    ));
                }
                Command::SetTimer {
                    id: t.id,
                    after: Duration::from_millis(t.after_ms),
                }
            }
            wit::Command::CancelTimer(id) => Command::CancelTimer(id),
        })
    }

    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Launch { .. } => "launch",
            Command::Decline { .. } => "decline",
            Command::Kill(_) => "kill",
            Command::Reconcile(_) => "reconcile",
            Command::Suppress => "suppress",
            Command::Revive => "revive",
            Command::Hold { .. } => "hold",
            Command::SetTimer { .. } => "set-timer",
            Command::CancelTimer(_) => "cancel-timer",
        }
    }
}

impl TaskLaunch {
    fn from_wit(t: wit::TaskInfo) -> Result<TaskLaunch, String> {
        let task_id = TaskId::new(t.task_id).map_err(|e| e.to_string())?;
        let module_digest =
            Digest::parse(&t.module_digest).map_err(|e| format!("task {task_id}: {e}"))?;
        Ok(TaskLaunch {
            task_id,
            name: t.name,
            module_digest,
            args: t.args,
            env: t.env,
            resources: resources_from_wit(t.resources),
            limits: Limits {
                fuel: t.limits.fuel,
                timeout_ms: t.limits.timeout_ms,
                log_bytes: t.limits.log_bytes,
            },
        })
    }
}

pub(crate) fn resources_from_wit(r: wit::Resources) -> Resources {
    Resources {
        cpus_milli: r.cpus_milli,
        mem_bytes: r.mem_bytes,
        disk_bytes: r.disk_bytes,
        scalars_milli: r
            .scalars_milli
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect(),
    }
}

pub(crate) fn resources_to_wit(r: &Resources) -> wit::Resources {
    wit::Resources {
        cpus_milli: r.cpus_milli,
        mem_bytes: r.mem_bytes,
        disk_bytes: r.disk_bytes,
        scalars_milli: r
            .scalars_milli
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

impl Offer {
    pub(crate) fn to_wit(&self) -> wit::Offer {
        wit::Offer {
            id: self.id.to_string(),
            agent_id: self.agent_id.to_string(),
            hostname: self.hostname.clone(),
            resources: resources_to_wit(&self.resources),
            attributes: self.attributes.clone(),
        }
    }
}

impl Registration {
    pub(crate) fn to_wit(&self) -> wit::Registration {
        wit::Registration {
            framework_id: self.framework_id.to_string(),
            name: self.name.clone(),
            role: self.role.clone(),
            config: self.config.clone(),
            reregistered: self.reregistered,
        }
    }
}

pub(crate) fn task_state_to_wit(state: TaskState) -> wit::TaskState {
    match state {
        TaskState::Unspecified | TaskState::Staging => wit::TaskState::Staging,
        TaskState::Starting => wit::TaskState::Starting,
        TaskState::Running => wit::TaskState::Running,
        TaskState::Finished => wit::TaskState::Finished,
        TaskState::Failed => wit::TaskState::Failed,
        TaskState::Killed => wit::TaskState::Killed,
        TaskState::Lost => wit::TaskState::Lost,
        TaskState::Error => wit::TaskState::Error,
    }
}

impl TaskStatus {
    pub(crate) fn to_wit(&self) -> wit::TaskStatus {
        wit::TaskStatus {
            task_id: self.task_id.to_string(),
            state: task_state_to_wit(self.state),
            message: self.message.clone(),
            exit_code: self.exit_code,
            agent_id: self.agent_id.as_ref().map(|a| a.to_string()),
            timestamp_ms: self.timestamp_ms,
            result: self.result.clone(),
            reconciliation: self.reconciliation,
        }
    }
}

impl Message {
    pub(crate) fn to_wit(&self) -> wit::Message {
        wit::Message {
            kind: self.kind.clone(),
            sender: self.sender.clone(),
            body: self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_task(id: &str, digest: &str) -> wit::TaskInfo {
        wit::TaskInfo {
            task_id: id.to_string(),
            name: "n".to_string(),
            module_digest: digest.to_string(),
            args: vec![],
            env: vec![],
            resources: resources_to_wit(&Resources::new(0.5, 1 << 20, 0)),
            limits: wit::Limits {
                fuel: 0,
                timeout_ms: 0,
                log_bytes: 0,
            },
        }
    }

    #[test]
    fn converts_a_launch() {
        let digest = Digest::of(b"x").to_string();
        let cmd = Command::from_wit(wit::Command::Launch(wit::Launch {
            offer_ids: vec!["o-1".to_string()],
            tasks: vec![wit_task("job-1.1", &digest)],
        }))
        .unwrap();
        match cmd {
            Command::Launch { offer_ids, tasks } => {
                assert_eq!(offer_ids[0].as_str(), "o-1");
                assert_eq!(tasks[0].task_id.as_str(), "job-1.1");
                assert_eq!(tasks[0].resources.cpus_milli, 500);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_commands_with_reasons() {
        let bad_id = Command::from_wit(wit::Command::Launch(wit::Launch {
            offer_ids: vec![],
            tasks: vec![wit_task("a/b", &Digest::of(b"x").to_string())],
        }))
        .unwrap_err();
        assert!(bad_id.contains("a/b"), "{bad_id}");
        let bad_digest = Command::from_wit(wit::Command::Launch(wit::Launch {
            offer_ids: vec![],
            tasks: vec![wit_task("t", "md5:1")],
        }))
        .unwrap_err();
        assert!(bad_digest.contains("task t"), "{bad_digest}");
        assert!(
            Command::from_wit(wit::Command::SetTimer(wit::Timer {
                id: String::new(),
                after_ms: 1
            }))
            .is_err()
        );
    }

    #[test]
    fn odd_durations_clamp_to_zero() {
        let cmd = Command::from_wit(wit::Command::Decline(wit::Decline {
            offer_ids: vec![],
            refuse_seconds: f64::NAN,
        }))
        .unwrap();
        assert_eq!(
            cmd,
            Command::Decline {
                offer_ids: vec![],
                refuse: Duration::ZERO
            }
        );
    }
}
