//! The steps of a script, as they are written (one JSON object with one
//! key each) and checked before anything runs. What each does is in the
//! module docs of [`crate::harness`]; carrying them out is `execute`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use wasmesos_api::proto::TaskState;
use wasmesos_api::{AgentId, Digest, Resources, TaskId};

use super::script::AgentEntry;
use super::values::{Dur, JobStateName, Res, Size, StateName, TERMINAL};

/// One thing the script does. See the module docs for each.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Submit(Submit),
    Message(MessageStep),
    Offer(OfferTarget),
    Run(Run),
    Status(StatusStep),
    FinishAll(StateName),
    Advance(Dur),
    AgentLost(AgentId),
    AddAgent(AgentEntry),
    Restart(bool),
    Expect(Box<Expect>),
}

impl Step {
    /// The step's key, as written in scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Submit(_) => "submit",
            Step::Message(_) => "message",
            Step::Offer(_) => "offer",
            Step::Run(_) => "run",
            Step::Status(_) => "status",
            Step::FinishAll(_) => "finish_all",
            Step::Advance(_) => "advance",
            Step::AgentLost(_) => "agent_lost",
            Step::AddAgent(_) => "add_agent",
            Step::Restart(_) => "restart",
            Step::Expect(_) => "expect",
        }
    }

    /// Checks what the types alone cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Step::Submit(s) => s.validate(),
            Step::Message(m) if m.body.is_some() && m.json.is_some() => {
                Err("give the message either \"body\" (text) or \"json\", not both".into())
            }
            Step::FinishAll(StateName(s)) if !s.is_terminal() => Err(format!(
                "finish_all takes a terminal state ({TERMINAL}), not {}",
                s.name().to_lowercase()
            )),
            Step::Status(s) if s.state.0 == TaskState::Staging => {
                Err("a status cannot go back to staging".into())
            }
            Step::Run(r) if r.rounds == 0 => Err("run needs at least 1 round".into()),
            Step::Restart(false) => Err("restart takes true: {\"restart\": true}".into()),
            Step::Expect(e) if **e == Expect::default() => {
                Err("expect names nothing to check (e.g. {\"expect\": {\"running\": 3}})".into())
            }
            _ => Ok(()),
        }
    }
}

/// A job submission, built into a "submit" message as the master builds it.
/// Defaults are `wasmesos submit`'s: 0.1 cpus, 64 MiB, 1 attempt.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Submit {
    /// Default: the next `job-N`, as the master numbers jobs.
    pub job_id: Option<String>,
    pub name: Option<String>,
    /// The module's digest ("sha256:…"); default: a fixed placeholder (the
    /// harness runs no tasks, so any digest will do).
    pub module: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cpus: Option<f64>,
    pub mem: Option<Size>,
    pub disk: Option<Size>,
    /// All at once, instead of cpus/mem/disk: "cpus:0.5,mem:64MiB".
    pub resources: Option<Res>,
    #[serde(alias = "max_attempts")]
    pub attempts: Option<u32>,
    /// Higher runs first (sent only when set, as the master does).
    pub priority: Option<i32>,
    pub fuel: Option<u64>,
    pub timeout: Option<Dur>,
    pub log_limit: Option<Size>,
    /// Submit this many identical jobs (each its own `job-N`).
    pub count: Option<u32>,
}

/// The module digest of submissions that name none.
pub fn placeholder_module() -> Digest {
    Digest::of(b"wasmesos harness placeholder task")
}

impl Submit {
    fn validate(&self) -> Result<(), String> {
        if self.resources.is_some()
            && (self.cpus.is_some() || self.mem.is_some() || self.disk.is_some())
        {
            return Err("give either \"resources\" or \"cpus\"/\"mem\"/\"disk\", not both".into());
        }
        if self.count.unwrap_or(1) > 1 && self.job_id.is_some() {
            return Err("\"count\" submits several jobs: it cannot take one \"job_id\"".into());
        }
        if let Some(cpus) = self.cpus
            && !(cpus.is_finite() && cpus >= 0.0)
        {
            return Err(format!("cpus must be a non-negative number, got {cpus}"));
        }
        if let Some(m) = &self.module {
            Digest::parse(m).map_err(|e| e.to_string())?;
        }
        if let Some(id) = &self.job_id {
            wasmesos_api::JobId::new(id.clone()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// What each attempt asks of an offer.
    pub fn task_resources(&self) -> Resources {
        match &self.resources {
            Some(Res(r)) => r.clone(),
            None => Resources::new(
                self.cpus.unwrap_or(0.1),
                self.mem.map_or(64 << 20, |Size(s)| s),
                self.disk.map_or(0, |Size(s)| s),
            ),
        }
    }

    /// The most attempts the job gets (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.attempts.unwrap_or(1).max(1)
    }

    /// The "submit" message body, field for field as the master's
    /// `submission_json` writes it.
    pub fn body(&self, job_id: &str) -> Vec<u8> {
        let r = self.task_resources();
        let module = self
            .module
            .clone()
            .unwrap_or_else(|| placeholder_module().to_string());
        let mut body = serde_json::json!({
            "job_id": job_id,
            "name": self.name.clone().unwrap_or_else(|| job_id.to_string()),
            "max_attempts": self.max_attempts(),
            "task": {
                "module_digest": module,
                "args": self.args,
                "env": self.env,
                "resources": {
                    "cpus_milli": r.cpus_milli,
                    "mem_bytes": r.mem_bytes,
                    "disk_bytes": r.disk_bytes,
                    "scalars_milli": r.scalars_milli,
                },
                "limits": {
                    "fuel": self.fuel.unwrap_or(0),
                    "timeout_ms": self.timeout.map_or(0, |Dur(d)| d.as_millis() as u64),
                    "log_bytes": self.log_limit.map_or(0, |Size(s)| s),
                },
            },
        });
        if let Some(p) = self.priority.filter(|p| *p != 0) {
            body["priority"] = p.into();
        }
        body.to_string().into_bytes()
    }
}

/// A message as `wasmesos framework send` delivers it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageStep {
    #[serde(default = "user_kind")]
    pub kind: String,
    /// The body as text.
    pub body: Option<String>,
    /// The body as JSON (sent encoded).
    pub json: Option<Value>,
    pub sender: Option<String>,
}

fn user_kind() -> String {
    "user".to_string()
}

impl MessageStep {
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body, &self.json) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(json)) => json.to_string().into_bytes(),
            (None, None) => Vec::new(),
        }
    }
}

/// Which agents an allocation round covers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum OfferTarget {
    All,
    Agents(Vec<AgentId>),
}

impl TryFrom<Value> for OfferTarget {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let bad = || "offer takes \"all\" or a list of agent ids, like [\"agent-1\"]".to_string();
        match v {
            Value::String(s) if s == "all" => Ok(OfferTarget::All),
            Value::Array(ids) => ids
                .into_iter()
                .map(|id| match id {
                    Value::String(s) => AgentId::new(s).map_err(|e| e.to_string()),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()
                .map(OfferTarget::Agents),
            _ => Err(bad()),
        }
    }
}

/// Rounds of: allocate, then end every active task, then advance the clock.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// The clock advance after each round.
    #[serde(default = "one_second")]
    pub every: Dur,
    /// How each active task ends after a round: a terminal state, or
    /// "none" to leave tasks running.
    #[serde(default)]
    pub finish: Finish,
}

fn default_rounds() -> u32 {
    100
}

fn one_second() -> Dur {
    Dur(Duration::from_secs(1))
}

/// How `run` ends tasks.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Finish {
    None,
    State(TaskState),
}

impl Default for Finish {
    fn default() -> Self {
        Finish::State(TaskState::Finished)
    }
}

impl TryFrom<String> for Finish {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "none" {
            return Ok(Finish::None);
        }
        match TaskState::parse(&s) {
            Some(state) if state.is_terminal() => Ok(Finish::State(state)),
            _ => Err(format!(
                "finish takes a terminal state ({TERMINAL}) or \"none\", not {s:?}"
            )),
        }
    }
}

/// A task status the script reports, as an agent would.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusStep {
    pub task: TaskId,
    pub state: StateName,
    /// Default: 0 for finished, 1 for failed, none otherwise.
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The task's result payload, as text.
    pub result: Option<String>,
}

/// Assertions on the simulated cluster and the record so far. Every field
/// set is checked; all failures are reported together.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Tasks active (staging, starting or running).
    pub running: Option<usize>,
    /// Each of these tasks was launched (at any point so far).
    pub launched: Option<Vec<TaskId>>,
    /// None of these tasks was launched.
    pub not_launched: Option<Vec<TaskId>>,
    /// Task states by id.
    pub tasks: Option<BTreeMap<String, StateName>>,
    /// Job states by id; "*" means every job.
    pub jobs: Option<BTreeMap<String, JobStateName>>,
    /// No task holds resources and no offer is outstanding.
    pub all_free: Option<bool>,
    pub suppressed: Option<bool>,
    /// Invalid commands so far (launches refused plus commands that did
    /// not convert). Setting it also means invalid commands alone no
    /// longer fail the run.
    pub invalid: Option<usize>,
    /// Failed callbacks so far (traps, limits). Setting it also means
    /// failures alone no longer fail the run.
    pub failures: Option<usize>,
    /// Committed state: a string (the exact value), JSON (the value parsed
    /// as JSON), or null (absent).
    pub kv: Option<BTreeMap<String, Value>>,
    /// The last message's reply body, exactly.
    pub reply: Option<String>,
    /// Text the last message's refusal contains.
    pub refused: Option<String>,
    /// Text some log line so far contains.
    pub log: Option<String>,
    /// The timers set and not yet fired, by id.
    pub timers: Option<Vec<String>>,
    /// Offers held now.
    pub held: Option<usize>,
}
