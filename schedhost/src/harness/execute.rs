//! Carrying out the steps of a script on the [`Harness`]: each turns into
//! events for the scheduler (queued, then delivered by the caller in
//! order) and changes to the simulated cluster, as the master and agents
//! would make them.

use std::time::Duration;

use wasmesos_api::proto::TaskState;
use wasmesos_api::{AgentId, OfferId, TaskId};

use super::cluster::Due;
use super::driver::{Delivery, Harness};
use super::error::HarnessError;
use super::expect;
use super::json::compact;
use super::step::{Expect, Finish, OfferTarget, Run, StatusStep, Step, Submit};
use crate::event::{Event, Message};

/// Who sends scripted messages (the master's loopback admin).
const SENDER: &str = "admin";
/// Timers and hold expiries one `advance` may fire: a timer that re-arms
/// itself with no delay would otherwise never let the clock move.
const MAX_FIRINGS: usize = 100_000;

impl Harness {
    pub(crate) async fn execute(&mut self, step: &Step) -> Result<(), HarnessError> {
        match step {
            Step::Submit(s) => self.submit(s).await,
            Step::Message(m) => {
                let event = Event::Message(Message {
                    kind: m.kind.clone(),
                    sender: m.sender.clone().unwrap_or_else(|| SENDER.to_string()),
                    body: m.body_bytes(),
                });
                self.queue.push_back(Delivery::plain(event));
                Ok(())
            }
            Step::Offer(target) => {
                let only = match target {
                    OfferTarget::All => None,
                    OfferTarget::Agents(ids) => {
                        for id in ids {
                            self.known_agent(id, "offer")?;
                        }
                        Some(ids.as_slice())
                    }
                };
                self.offer_round(only, false).await.map(|_| ())
            }
            Step::Run(r) => self.run_rounds(r).await,
            Step::Status(s) => self.status(s),
            Step::FinishAll(state) => {
                self.finish_active(state.0);
                Ok(())
            }
            Step::Advance(d) => self.advance(d.0).await,
            Step::AgentLost(id) => self.agent_lost(id),
            Step::AddAgent(entry) => {
                let spec = super::cluster::AgentSpec {
                    id: entry
                        .id
                        .clone()
                        .unwrap_or_else(|| self.cluster.unused_agent_id()),
                    resources: entry
                        .resources
                        .clone()
                        .unwrap_or_else(|| self.config.agent_resources.clone()),
                    attributes: entry.attributes.clone(),
                };
                if let Err(reason) = self.cluster.add_agent(&spec) {
                    return Err(self.step_error("add_agent", reason));
                }
                self.note(format!(
                    "agent {} added ({})",
                    spec.id,
                    compact(&spec.resources)
                ));
                Ok(())
            }
            Step::Restart(_) => self.restart().await,
            Step::Expect(e) => self.expect(e),
        }
    }

    fn step_error(&self, kind: &'static str, reason: String) -> HarnessError {
        HarnessError::Step {
            step: self.step.unwrap_or(0),
            kind,
            reason,
        }
    }

    fn known_agent(&self, id: &AgentId, kind: &'static str) -> Result<(), HarnessError> {
        if self.cluster.agents.contains_key(id) {
            return Ok(());
        }
        let known: Vec<&str> = self.cluster.agents.keys().map(AgentId::as_str).collect();
        Err(self.step_error(
            kind,
            format!("no agent {id} (agents: {})", known.join(", ")),
        ))
    }

    async fn submit(&mut self, s: &Submit) -> Result<(), HarnessError> {
        for _ in 0..s.count.unwrap_or(1) {
            let id = match &s.job_id {
                Some(id) => id.clone(),
                None => {
                    self.cluster.next_job += 1;
                    format!("job-{}", self.cluster.next_job)
                }
            };
            if self.cluster.jobs.contains_key(&id) {
                return Err(self.step_error("submit", format!("job {id} was already submitted")));
            }
            let event = Event::Message(Message {
                kind: "submit".to_string(),
                sender: SENDER.to_string(),
                body: s.body(&id),
            });
            self.queue.push_back(Delivery {
                event,
                offers: Vec::new(),
                job: Some((id, s.max_attempts())),
            });
            self.drain().await?;
        }
        Ok(())
    }

    /// One allocation round; false when it made no offers.
    async fn offer_round(
        &mut self,
        only: Option<&[AgentId]>,
        quiet: bool,
    ) -> Result<bool, HarnessError> {
        let offers = self.cluster.allocate(only);
        if offers.is_empty() {
            if !quiet {
                let why = self.cluster.why_no_offers();
                self.note(format!("no offers: {why}"));
            }
            return Ok(false);
        }
        let ids = offers.iter().map(|o| o.id.clone()).collect();
        self.queue.push_back(Delivery {
            event: Event::Offers(offers),
            offers: ids,
            job: None,
        });
        self.drain().await?;
        Ok(true)
    }

    async fn run_rounds(&mut self, r: &Run) -> Result<(), HarnessError> {
        for round in 1..=r.rounds {
            self.offer_round(None, true).await?;
            if let Finish::State(state) = r.finish {
                self.finish_active(state);
                self.drain().await?;
            }
            if self.idle() {
                self.note(format!("run: idle after {round} round(s)"));
                return Ok(());
            }
            self.advance(r.every.0).await?;
        }
        self.note(format!("run: {} round(s) done", r.rounds));
        Ok(())
    }

    /// Nothing more can happen without the script: offers suppressed,
    /// no task running, no timer set.
    fn idle(&self) -> bool {
        self.cluster.suppressed
            && self.cluster.active_tasks().is_empty()
            && self.cluster.timers.is_empty()
            && self.queue.is_empty()
    }

    fn status(&mut self, s: &StatusStep) -> Result<(), HarnessError> {
        let Some(task) = self.cluster.tasks.get(&s.task) else {
            let known: Vec<String> = self
                .cluster
                .tasks()
                .iter()
                .map(|t| t.id.to_string())
                .collect();
            return Err(self.step_error(
                "status",
                format!(
                    "no task {} was launched (tasks: {})",
                    s.task,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let state = s.state.0;
        if !task.state.is_active() {
            return Err(self.step_error(
                "status",
                format!("task {} already ended: {}", s.task, task.state.name()),
            ));
        }
        if !state.is_terminal() && (state as i32) <= (task.state as i32) {
            return Err(self.step_error(
                "status",
                format!(
                    "task {} is {}: it cannot go to {}",
                    s.task,
                    task.state.name(),
                    state.name()
                ),
            ));
        }
        let exit_code = s.exit_code.or(default_exit(state));
        let message = s
            .message
            .clone()
            .unwrap_or_else(|| default_message(state, exit_code));
        let result = s.result.clone().map(String::into_bytes);
        self.end(&s.task, state, message, exit_code, result);
        Ok(())
    }

    /// Moves a task to `state` and queues the scheduler's status update.
    fn end(
        &mut self,
        id: &TaskId,
        state: TaskState,
        message: String,
        exit_code: Option<i32>,
        result: Option<Vec<u8>>,
    ) {
        if let Some(status) = self
            .cluster
            .transition(id, state, message, exit_code, result)
        {
            self.queue
                .push_back(Delivery::plain(Event::StatusUpdate(status)));
        }
    }

    /// Ends every active task in `state`, in launch order.
    fn finish_active(&mut self, state: TaskState) {
        let ids: Vec<TaskId> = self
            .cluster
            .active_tasks()
            .iter()
            .map(|t| t.id.clone())
            .collect();
        let exit_code = default_exit(state);
        for id in ids {
            self.end(
                &id,
                state,
                default_message(state, exit_code),
                exit_code,
                None,
            );
        }
    }

    /// Moves the clock forward by `by`, firing timers and expiring holds in
    /// time order, each at its own time.
    pub(crate) async fn advance(&mut self, by: Duration) -> Result<(), HarnessError> {
        let target = self.cluster.now_ms + by.as_millis() as u64;
        let mut fired = 0;
        while let Some((at, due)) = self.cluster.next_due(target) {
            fired += 1;
            if fired > MAX_FIRINGS {
                return Err(self.step_error(
                    "advance",
                    format!(
                        "more than {MAX_FIRINGS} timers and holds came due: a timer that re-arms itself with no delay?"
                    ),
                ));
            }
            self.cluster.now_ms = self.cluster.now_ms.max(at);
            let event = match due {
                Due::Hold(id) => {
                    self.cluster.offers.remove(&id);
                    Event::OfferRescinded(id)
                }
                Due::Timer(id) => {
                    self.cluster.timers.remove(&id);
                    Event::Timer(id)
                }
            };
            self.queue.push_back(Delivery::plain(event));
            self.drain().await?;
        }
        self.cluster.now_ms = target;
        Ok(())
    }

    /// An agent is gone: its held offers are rescinded, its tasks LOST,
    /// and the scheduler told, in the master's order.
    fn agent_lost(&mut self, id: &AgentId) -> Result<(), HarnessError> {
        self.known_agent(id, "agent_lost")?;
        let offers: Vec<(OfferId, bool)> = self
            .cluster
            .offers
            .iter()
            .filter(|(_, o)| &o.agent == id)
            .map(|(oid, o)| (oid.clone(), o.held_until_ms.is_some()))
            .collect();
        for (oid, held) in offers {
            self.cluster.offers.remove(&oid);
            if held {
                self.queue
                    .push_back(Delivery::plain(Event::OfferRescinded(oid)));
            }
        }
        let tasks: Vec<TaskId> = self
            .cluster
            .active_tasks()
            .iter()
            .filter(|t| t.agent.as_ref() == Some(id))
            .map(|t| t.id.clone())
            .collect();
        for task in &tasks {
            self.end(
                task,
                TaskState::Lost,
                format!("agent {id} lost"),
                None,
                None,
            );
        }
        self.cluster.agents.remove(id);
        self.cluster.filters.retain(|f| &f.agent != id);
        self.note(format!("agent {id} lost with {} task(s)", tasks.len()));
        self.queue
            .push_back(Delivery::plain(Event::AgentLost(id.clone())));
        Ok(())
    }

    /// A master restart: the scheduler starts again from its committed
    /// state; offers, filters, suppression and timers (memory only in the
    /// master) are gone; tasks and agents stay. After `registered`, the
    /// scheduler hears where each active task stands (the master's implicit
    /// reconciliation).
    async fn restart(&mut self) -> Result<(), HarnessError> {
        self.instance = None;
        self.cluster.offers.clear();
        self.cluster.filters.clear();
        self.cluster.timers.clear();
        self.cluster.suppressed = false;
        self.note("restart: the scheduler starts again from its committed state; offers, filters and timers are dropped");
        let statuses: Vec<_> = self
            .cluster
            .active_tasks()
            .into_iter()
            .map(|t| self.cluster.status_of(t, true))
            .collect();
        self.queue.extend(
            statuses
                .into_iter()
                .map(|s| Delivery::plain(Event::StatusUpdate(s))),
        );
        self.ensure_started().await.map(|_| ())
    }

    fn expect(&mut self, e: &Expect) -> Result<(), HarnessError> {
        self.failures_expected |= e.failures.is_some();
        self.invalid_expected |= e.invalid.is_some();
        match expect::check(e, &self.cluster, &self.record) {
            Ok(()) => {
                self.note("expect: ok");
                Ok(())
            }
            Err(message) => {
                self.note(format!("expect FAILED: {message}"));
                Err(HarnessError::Expectation {
                    step: self.step.unwrap_or(0),
                    message,
                })
            }
        }
    }
}

/// The exit code a task ending in `state` reports unless told otherwise.
fn default_exit(state: TaskState) -> Option<i32> {
    match state {
        TaskState::Finished => Some(0),
        TaskState::Failed => Some(1),
        _ => None,
    }
}

fn default_message(state: TaskState, exit_code: Option<i32>) -> String {
    match (state, exit_code) {
        (TaskState::Finished | TaskState::Failed, Some(code)) => {
            format!("exited with code {code}")
        }
        (TaskState::Killed, _) => "killed".to_string(),
        (TaskState::Lost, _) => "lost".to_string(),
        (TaskState::Error, _) => "error".to_string(),
        _ => String::new(),
    }
}
