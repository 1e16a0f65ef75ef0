//! The simulated cluster: agents, outstanding offers, decline filters,
//! suppression, tasks and the jobs they are attempts of, timers and the
//! framework's committed key-value state, on a clock only the script moves.
//!
//! It mirrors the master's bookkeeping (`master/src/core`: `allocation`,
//! `callbacks`, `status`, and `master/src/jobs.rs`) without its I/O: an
//! agent's free resources are its total less running tasks less
//! outstanding offers, and allocation runs the real allocator over them.
//! Carrying out a callback's commands lives in `apply`.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmesos_allocator::{AgentView, Config, Filter, FrameworkView, Snapshot, allocate_with_total};
use wasmesos_api::proto::{JobState, TaskState};
use wasmesos_api::{AgentId, FrameworkId, OfferId, Resources, TaskId};

use crate::event::{Offer, TaskStatus};

/// What each agent has unless told otherwise: cpus:4,mem:8GiB,disk:10GiB.
pub fn default_agent_resources() -> Resources {
    Resources::new(4.0, 8 << 30, 10 << 30)
}

/// One agent of the simulated cluster, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSpec {
    pub id: AgentId,
    pub resources: Resources,
    pub attributes: Vec<(String, String)>,
}

impl AgentSpec {
    /// `agent-N` with `resources`.
    pub fn numbered(n: usize, resources: Resources) -> Self {
        Self {
            id: AgentId::new(format!("agent-{n}")).expect("agent-N is a valid id"),
            resources,
            attributes: Vec::new(),
        }
    }
}

/// An agent and what is in use on it.
#[derive(Clone, Debug)]
pub struct SimAgent {
    pub id: AgentId,
    pub hostname: String,
    pub total: Resources,
    /// Held by active tasks.
    pub allocated: Resources,
    pub attributes: Vec<(String, String)>,
}

/// An offer outstanding to the framework.
#[derive(Clone, Debug)]
pub struct SimOffer {
    pub agent: AgentId,
    pub resources: Resources,
    /// When a hold expires (simulated ms); `None` while not held.
    pub held_until_ms: Option<u64>,
}

/// A task the scheduler launched, or tried to.
#[derive(Clone, Debug)]
pub struct SimTask {
    pub id: TaskId,
    pub name: String,
    pub agent: Option<AgentId>,
    pub resources: Resources,
    pub state: TaskState,
    pub message: String,
    pub exit_code: Option<i32>,
    pub result: Option<Vec<u8>>,
    /// False for a launch the harness refused (recorded as ERROR).
    pub launched: bool,
    /// The job it is an attempt of (`JOB.N` of a submitted job).
    pub job: Option<String>,
    /// Simulated ms of its last change.
    pub changed_ms: u64,
    /// Launch order.
    pub(crate) seq: u64,
}

/// A submitted job, its state following its attempts as in the master.
#[derive(Clone, Debug)]
pub struct SimJob {
    pub id: String,
    pub max_attempts: u32,
    pub state: JobState,
    pub attempts: Vec<TaskId>,
    pub exit_code: Option<i32>,
    pub message: String,
}

/// A timer the scheduler set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timer {
    pub(crate) fire_ms: u64,
    pub(crate) seq: u64,
}

/// Something that comes due at a simulated time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Due {
    /// A held offer's hold expires: it is rescinded.
    Hold(OfferId),
    Timer(String),
}

/// The whole simulated state. Read it through the accessors; the harness
/// changes it.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) framework: FrameworkId,
    pub(crate) role: String,
    /// Wall-clock ms at simulated time 0, for timestamps.
    pub(crate) start_ms: u64,
    pub(crate) now_ms: u64,
    pub(crate) agents: BTreeMap<AgentId, SimAgent>,
    pub(crate) offers: BTreeMap<OfferId, SimOffer>,
    pub(crate) filters: Vec<Filter>,
    pub(crate) suppressed: bool,
    pub(crate) tasks: BTreeMap<TaskId, SimTask>,
    pub(crate) jobs: BTreeMap<String, SimJob>,
    pub(crate) timers: BTreeMap<String, Timer>,
    /// The framework's state as committed.
    pub(crate) kv: BTreeMap<String, Vec<u8>>,
    pub(crate) next_job: u64,
    next_offer: u64,
    next_seq: u64,
    round: u64,
}

impl Cluster {
    pub(crate) fn new(framework: FrameworkId, role: String, start_ms: u64) -> Self {
        Self {
            framework,
            role,
            start_ms,
            now_ms: 0,
            agents: BTreeMap::new(),
            offers: BTreeMap::new(),
            filters: Vec::new(),
            suppressed: false,
            tasks: BTreeMap::new(),
            jobs: BTreeMap::new(),
            timers: BTreeMap::new(),
            kv: BTreeMap::new(),
            next_job: 0,
            next_offer: 0,
            next_seq: 0,
            round: 0,
        }
    }

    /// Simulated milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn agents(&self) -> impl Iterator<Item = &SimAgent> {
        self.agents.values()
    }

    pub fn agent(&self, id: &str) -> Option<&SimAgent> {
        self.agents.values().find(|a| a.id.as_str() == id)
    }

    /// What allocation may offer of an agent now.
    pub fn free(&self, agent: &AgentId) -> Resources {
        let Some(a) = self.agents.get(agent) else {
            return Resources::empty();
        };
        self.offers
            .values()
            .filter(|o| &o.agent == agent)
            .fold(a.total.saturating_sub(&a.allocated), |free, o| {
                free.saturating_sub(&o.resources)
            })
    }

    pub fn offers(&self) -> impl Iterator<Item = (&OfferId, &SimOffer)> {
        self.offers.iter()
    }

    pub fn held_offers(&self) -> usize {
        self.offers
            .values()
            .filter(|o| o.held_until_ms.is_some())
            .count()
    }

    /// Every task, in launch order.
    pub fn tasks(&self) -> Vec<&SimTask> {
        let mut tasks: Vec<&SimTask> = self.tasks.values().collect();
        tasks.sort_by_key(|t| t.seq);
        tasks
    }

    pub fn task(&self, id: &str) -> Option<&SimTask> {
        self.tasks.values().find(|t| t.id.as_str() == id)
    }

    /// Tasks holding resources (staging, starting, running), in launch order.
    pub fn active_tasks(&self) -> Vec<&SimTask> {
        let mut tasks = self.tasks();
        tasks.retain(|t| t.state.is_active());
        tasks
    }

    pub fn jobs(&self) -> impl Iterator<Item = &SimJob> {
        self.jobs.values()
    }

    pub fn job(&self, id: &str) -> Option<&SimJob> {
        self.jobs.get(id)
    }

    /// The framework's committed key-value state.
    pub fn kv(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.kv
    }

    /// Timer ids set and not yet fired, soonest first.
    pub fn timers(&self) -> Vec<String> {
        let mut timers: Vec<(&String, &Timer)> = self.timers.iter().collect();
        timers.sort_by_key(|(_, t)| (t.fire_ms, t.seq));
        timers.into_iter().map(|(id, _)| id.clone()).collect()
    }

    pub fn suppressed(&self) -> bool {
        self.suppressed
    }

    /// `Ok` when nothing is in use: no active task and no outstanding offer;
    /// otherwise what is.
    pub fn all_free(&self) -> Result<(), String> {
        let mut busy = Vec::new();
        for t in self.active_tasks() {
            let on = t.agent.as_ref().map_or("?", AgentId::as_str);
            busy.push(format!(
                "{} ({}) holds {} on {on}",
                t.id,
                t.state.name(),
                super::json::compact(&t.resources)
            ));
        }
        for (id, o) in &self.offers {
            busy.push(format!(
                "offer {id} of {} ({}) is outstanding",
                o.agent,
                super::json::compact(&o.resources)
            ));
        }
        if busy.is_empty() {
            Ok(())
        } else {
            Err(busy.join("; "))
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(crate) fn add_agent(&mut self, spec: &AgentSpec) -> Result<(), String> {
        if self.agents.contains_key(&spec.id) {
            return Err(format!("agent {} already exists", spec.id));
        }
        self.agents.insert(
            spec.id.clone(),
            SimAgent {
                id: spec.id.clone(),
                hostname: format!("{}.sim", spec.id),
                total: spec.resources.clone(),
                allocated: Resources::empty(),
                attributes: spec.attributes.clone(),
            },
        );
        Ok(())
    }

    /// The first `agent-N` not taken.
    pub(crate) fn unused_agent_id(&self) -> AgentId {
        (1..)
            .map(|n| AgentSpec::numbered(n, Resources::empty()).id)
            .find(|id| !self.agents.contains_key(id))
            .expect("some agent-N is free")
    }

    /// One allocation round over `only` (or every agent), as the master's
    /// `allocate`: agents rotated every round, shares against the whole
    /// cluster, expired filters dropped first.
    pub(crate) fn allocate(&mut self, only: Option<&[AgentId]>) -> Vec<Offer> {
        self.round += 1;
        let now = self.now_ms as i64;
        self.filters.retain(|f| f.until_ms > now);
        let mut views: Vec<AgentView> = self
            .agents
            .values()
            .map(|a| AgentView {
                id: a.id.clone(),
                total: a.total.clone(),
                free: self.free(&a.id),
            })
            .collect();
        let mut total = Resources::empty();
        for v in &views {
            total += &v.total;
        }
        if !views.is_empty() {
            let shift = (self.round as usize) % views.len();
            views.rotate_left(shift);
        }
        if let Some(only) = only {
            views.retain(|v| only.contains(&v.id));
        }
        let mut allocated = Resources::empty();
        for t in self.active_tasks() {
            allocated += &t.resources;
        }
        let snapshot = Snapshot {
            agents: views,
            frameworks: vec![FrameworkView {
                id: self.framework.clone(),
                role: self.role.clone(),
                allocated,
                suppressed: self.suppressed,
                filters: self.filters.clone(),
            }],
            roles: Vec::new(),
            now_ms: now,
        };
        let mut offers = Vec::new();
        for d in allocate_with_total(&snapshot, &total, &Config::default()) {
            self.next_offer += 1;
            let id = OfferId::new(format!("o-{}", self.next_offer)).expect("o-N is a valid id");
            let agent = &self.agents[&d.agent];
            offers.push(Offer {
                id: id.clone(),
                agent_id: d.agent.clone(),
                hostname: agent.hostname.clone(),
                resources: d.resources.clone(),
                attributes: agent.attributes.clone(),
            });
            self.offers.insert(
                id,
                SimOffer {
                    agent: d.agent,
                    resources: d.resources,
                    held_until_ms: None,
                },
            );
        }
        offers
    }

    /// Why a round made no offers, in words.
    pub(crate) fn why_no_offers(&self) -> &'static str {
        if self.agents.is_empty() {
            "no agents"
        } else if self.suppressed {
            "the framework is suppressed"
        } else if self
            .agents
            .keys()
            .all(|a| !Config::default().allocatable(&self.free(a)))
        {
            "nothing free"
        } else {
            "the free resources are filtered (declined or lapsed recently)"
        }
    }

    /// The earliest hold expiry or timer at or before `target`: timers in
    /// the order they fire (then were set), holds first on a tie.
    pub(crate) fn next_due(&self, target: u64) -> Option<(u64, Due)> {
        let hold = self
            .offers
            .iter()
            .filter_map(|(id, o)| o.held_until_ms.map(|t| (t, id)))
            .filter(|(t, _)| *t <= target)
            .min_by_key(|(t, _)| *t)
            .map(|(t, id)| (t, Due::Hold(id.clone())));
        let timer = self
            .timers
            .iter()
            .filter(|(_, t)| t.fire_ms <= target)
            .min_by_key(|(_, t)| (t.fire_ms, t.seq))
            .map(|(id, t)| (t.fire_ms, Due::Timer(id.clone())));
        match (hold, timer) {
            (Some(h), Some(t)) if t.0 < h.0 => Some(t),
            (Some(h), _) => Some(h),
            (None, t) => t,
        }
    }

    /// Takes an offer back; `refuse` filters its resources of that agent
    /// for the framework, as a decline (or lapse) does.
    pub(crate) fn return_offer(&mut self, id: &OfferId, refuse: Duration) -> bool {
        let Some(offer) = self.offers.remove(id) else {
            return false;
        };
        self.add_filter(offer.agent, offer.resources, refuse);
        true
    }

    pub(crate) fn add_filter(&mut self, agent: AgentId, resources: Resources, refuse: Duration) {
        if refuse.is_zero() || resources.is_empty() {
            return;
        }
        self.filters.push(Filter {
            agent,
            resources,
            until_ms: (self.now_ms + refuse.as_millis() as u64) as i64,
        });
    }

    /// Moves an active task to `state`, frees what it held if that ends it,
    /// updates its job, and returns the status the scheduler gets.
    pub(crate) fn transition(
        &mut self,
        id: &TaskId,
        state: TaskState,
        message: String,
        exit_code: Option<i32>,
        result: Option<Vec<u8>>,
    ) -> Option<TaskStatus> {
        let now = self.now_ms;
        let task = self.tasks.get_mut(id).filter(|t| t.state.is_active())?;
        task.state = state;
        task.message = message;
        task.changed_ms = now;
        if exit_code.is_some() {
            task.exit_code = exit_code;
        }
        if result.is_some() {
            task.result = result;
        }
        let task = task.clone();
        if state.is_terminal()
            && let Some(agent) = task.agent.as_ref().and_then(|a| self.agents.get_mut(a))
        {
            agent.allocated = agent.allocated.saturating_sub(&task.resources);
        }
        if let Some(job) = task.job.as_ref().and_then(|j| self.jobs.get_mut(j)) {
            job_on_task(job, &task);
        }
        Some(self.status_of(&task, false))
    }

    /// The status a scheduler is told of `task`.
    pub(crate) fn status_of(&self, task: &SimTask, reconciliation: bool) -> TaskStatus {
        TaskStatus {
            task_id: task.id.clone(),
            state: task.state,
            message: task.message.clone(),
            exit_code: task.exit_code,
            agent_id: task.agent.clone(),
            timestamp_ms: self.start_ms + task.changed_ms,
            result: task.result.clone(),
            reconciliation,
        }
    }
}

/// The master's `jobs::on_launch`: an attempt launched.
pub(crate) fn job_on_launch(job: &mut SimJob, task: &TaskId) {
    if !job.attempts.contains(task) {
        job.attempts.push(task.clone());
    }
    if !job.state.is_terminal() {
        job.state = JobState::Running;
        job.message.clear();
    }
}

/// The master's `jobs::on_task`: an attempt changed state.
fn job_on_task(job: &mut SimJob, task: &SimTask) {
    if job.state.is_terminal() {
        return;
    }
    if !task.state.is_terminal() {
        job.state = JobState::Running;
        return;
    }
    job.exit_code = task.exit_code;
    let attempt = task
        .id
        .as_str()
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .unwrap_or(1);
    let max = job.max_attempts.max(1);
    let (next, message) = match task.state {
        TaskState::Finished => (JobState::Finished, String::new()),
        TaskState::Killed => (JobState::Killed, task.message.clone()),
        state if attempt < max => (
            JobState::Queued,
            format!(
                "attempt {attempt} of {max} {}: {}; retrying",
                state.name(),
                task.message
            ),
        ),
        _ => (JobState::Failed, task.message.clone()),
    };
    job.state = next;
    job.message = message;
}
