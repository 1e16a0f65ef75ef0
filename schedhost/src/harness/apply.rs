//! Carrying out one completed callback's commands on the simulated cluster,
//! in the order the scheduler returned them, with the master's rules
//! (`master/src/core/callbacks.rs`):
//!
//! - a launch must name offers that are outstanding to this callback (or
//!   held), unused so far, all of one agent; each task must ask for memory,
//!   fit in what its offers have left, use an unused task id, and not be an
//!   attempt of a job that already ended. A refused task is recorded as
//!   invalid and answered with an ERROR status update. The offers of a
//!   launch are consumed; what its tasks did not take is filtered for the
//!   default refuse time, as Mesos does for an accept;
//! - declines filter the declined resources for their refuse time;
//! - holds are capped in time and count; kills end a task KILLED;
//!   reconcile answers with the tasks' states (unknown ones LOST);
//! - revive clears every filter; timers are capped in number;
//! - offers of the callback that were neither used nor held lapse with the
//!   default filter.
//!
//! Launched tasks go to RUNNING at once (an agent's STARTING is skipped).

use std::collections::HashSet;

use wasmesos_api::proto::TaskState;
use wasmesos_api::{AgentId, OfferId, Resources, TaskId};

use super::cluster::{Cluster, SimTask, Timer, job_on_launch};
use super::config::HarnessConfig;
use super::json::compact;
use super::record::{Invalid, LaunchOutcome};
use crate::event::{Command, Event, TaskLaunch};

/// What carrying out a callback's commands did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) launches: Vec<LaunchOutcome>,
    pub(crate) invalid: Vec<Invalid>,
    pub(crate) notes: Vec<String>,
    pub(crate) lapsed: Vec<OfferId>,
    /// Status updates for the scheduler, to deliver next, in order.
    pub(crate) events: Vec<Event>,
}

impl Cluster {
    /// Carries out `commands` of a callback that was handed the offers
    /// `context`.
    pub(crate) fn apply(
        &mut self,
        config: &HarnessConfig,
        context: &[OfferId],
        commands: &[Command],
    ) -> Applied {
        let mut out = Applied::default();
        let mut used: HashSet<OfferId> = HashSet::new();
        for (index, command) in commands.iter().enumerate() {
            match command {
                Command::Launch { offer_ids, tasks } => {
                    let launch = Launch {
                        index,
                        offer_ids,
                        tasks,
                    };
                    self.launch(config, context, &mut used, launch, &mut out);
                }
                Command::Decline { offer_ids, refuse } => {
                    for id in offer_ids {
                        if !self.return_offer(id, *refuse) {
                            out.notes.push(format!(
                                "decline of {id} ignored: no such offer outstanding"
                            ));
                        }
                    }
                }
                Command::Kill(task) => self.kill(task, &mut out),
                Command::Reconcile(ids) => self.reconcile(ids, &mut out),
                Command::Suppress => self.suppressed = true,
                Command::Revive => {
                    self.suppressed = false;
                    self.filters.clear();
                }
                Command::Hold {
                    offer_ids,
                    duration,
                } => {
                    if *duration > config.max_hold {
                        out.notes.push(format!(
                            "hold of {:?} capped at {:?}",
                            duration, config.max_hold
                        ));
                    }
                    let until = self.now_ms + duration.min(&config.max_hold).as_millis() as u64;
                    for id in offer_ids {
                        self.hold(id, until, config.max_held_offers, &mut out);
                    }
                }
                Command::SetTimer { id, after } => {
                    if self.timers.len() >= config.max_timers && !self.timers.contains_key(id) {
                        out.notes.push(format!(
                            "timer {id} refused: {} timers are already set",
                            config.max_timers
                        ));
                    } else {
                        let timer = Timer {
                            fire_ms: self.now_ms + after.as_millis() as u64,
                            seq: self.next_seq(),
                        };
                        self.timers.insert(id.clone(), timer);
                    }
                }
                Command::CancelTimer(id) => {
                    self.timers.remove(id);
                }
            }
        }
        for id in context {
            let lapses = self
                .offers
                .get(id)
                .is_some_and(|o| o.held_until_ms.is_none());
            if lapses {
                self.return_offer(id, config.default_refuse);
                out.lapsed.push(id.clone());
            }
        }
        out
    }

    fn launch(
        &mut self,
        config: &HarnessConfig,
        context: &[OfferId],
        used: &mut HashSet<OfferId>,
        launch: Launch<'_>,
        out: &mut Applied,
    ) {
        let (agent, mut left) = match self.check_offers(context, used, launch.offer_ids) {
            Ok(found) => found,
            Err(reason) => {
                for t in launch.tasks {
                    self.refuse(launch.index, t, None, &reason, out);
                }
                return;
            }
        };
        used.extend(launch.offer_ids.iter().cloned());
        let mut outcome = LaunchOutcome {
            command: launch.index,
            agent: agent.clone(),
            tasks: Vec::new(),
            resources: Resources::empty(),
        };
        for t in launch.tasks {
            let job = t
                .task_id
                .job()
                .map(|j| j.to_string())
                .filter(|j| self.jobs.contains_key(j));
            let reason = if t.resources.mem_bytes == 0 {
                "the task asks for no memory; every task needs a memory cap (resources.mem-bytes)"
                    .to_string()
            } else if !left.contains(&t.resources) {
                format!(
                    "the task needs {} but its offers have only {} left",
                    compact(&t.resources),
                    compact(&left)
                )
            } else if let Some(j) = job.as_ref().map(|j| &self.jobs[j])
                && j.state.is_terminal()
            {
                format!(
                    "job {} is already {}",
                    j.id,
                    wasmesos_api::job_state_name(j.state)
                )
            } else {
                String::new()
            };
            if !reason.is_empty() || self.tasks.contains_key(&t.task_id) {
                self.refuse(launch.index, t, Some(&agent), &reason, out);
                continue;
            }
            left = left.saturating_sub(&t.resources);
            let seq = self.next_seq();
            self.tasks.insert(
                t.task_id.clone(),
                SimTask {
                    id: t.task_id.clone(),
                    name: t.name.clone(),
                    agent: Some(agent.clone()),
                    resources: t.resources.clone(),
                    state: TaskState::Staging,
                    message: String::new(),
                    exit_code: None,
                    result: None,
                    launched: true,
                    job: job.clone(),
                    changed_ms: self.now_ms,
                    seq,
                },
            );
            if let Some(a) = self.agents.get_mut(&agent) {
                a.allocated += &t.resources;
            }
            if let Some(j) = job.and_then(|j| self.jobs.get_mut(&j)) {
                job_on_launch(j, &t.task_id);
            }
            outcome.tasks.push(t.task_id.clone());
            outcome.resources += &t.resources;
        }
        let mut offered = Resources::empty();
        for id in launch.offer_ids {
            if let Some(o) = self.offers.remove(id) {
                offered += &o.resources;
            }
        }
        let remainder = offered.saturating_sub(&outcome.resources);
        self.add_filter(agent, remainder, config.default_refuse);
        for id in &outcome.tasks {
            if let Some(status) = self.transition(id, TaskState::Running, String::new(), None, None)
            {
                out.events.push(Event::StatusUpdate(status));
            }
        }
        out.launches.push(outcome);
    }

    /// The agent and total resources of a launch's offers, or why they
    /// cannot be used.
    fn check_offers(
        &self,
        context: &[OfferId],
        used: &HashSet<OfferId>,
        ids: &[OfferId],
    ) -> Result<(AgentId, Resources), String> {
        if ids.is_empty() {
            return Err("the launch names no offers".into());
        }
        let mut agent: Option<&AgentId> = None;
        let mut total = Resources::empty();
        let mut seen = HashSet::new();
        for id in ids {
            // Named twice, an offer would count twice: refuse it (the
            // master adds such offers up).
            if !seen.insert(id) {
                return Err(format!("offer {id} is named twice"));
            }
            let offer = self.offers.get(id).filter(|o| {
                !used.contains(id) && (context.contains(id) || o.held_until_ms.is_some())
            });
            let Some(offer) = offer else {
                return Err(format!(
                    "offer {id} is not valid: it lapsed, was used or was rescinded"
                ));
            };
            if agent.is_some_and(|a| a != &offer.agent) {
                return Err("a launch may use offers of one agent only".into());
            }
            agent = Some(&offer.agent);
            total += &offer.resources;
        }
        let agent = agent.expect("at least one offer").clone();
        Ok((agent, total))
    }

    /// Records a task that cannot be launched as ERROR, unless its id is
    /// taken (then only the scheduler hears of it, as from the master).
    fn refuse(
        &mut self,
        index: usize,
        t: &TaskLaunch,
        agent: Option<&AgentId>,
        reason: &str,
        out: &mut Applied,
    ) {
        let taken = self.tasks.contains_key(&t.task_id);
        let reason = if taken {
            format!("task id {} is already in use", t.task_id)
        } else {
            reason.to_string()
        };
        let seq = self.next_seq();
        let record = SimTask {
            id: t.task_id.clone(),
            name: t.name.clone(),
            agent: agent.cloned(),
            resources: t.resources.clone(),
            state: TaskState::Error,
            message: reason.clone(),
            exit_code: None,
            result: None,
            launched: false,
            job: None,
            changed_ms: self.now_ms,
            seq,
        };
        out.events
            .push(Event::StatusUpdate(self.status_of(&record, false)));
        if !taken {
            self.tasks.insert(t.task_id.clone(), record);
        }
        out.invalid.push(Invalid {
            command: index,
            task: Some(t.task_id.clone()),
            reason,
        });
    }

    fn kill(&mut self, task: &TaskId, out: &mut Applied) {
        let status = self.transition(
            task,
            TaskState::Killed,
            "killed by the framework".into(),
            None,
            None,
        );
        match status {
            Some(status) => out.events.push(Event::StatusUpdate(status)),
            None => out
                .notes
                .push(format!("kill of {task} ignored: no active task by that id")),
        }
    }

    fn reconcile(&mut self, ids: &[TaskId], out: &mut Applied) {
        let answers: Vec<_> = if ids.is_empty() {
            self.active_tasks()
                .into_iter()
                .map(|t| self.status_of(t, true))
                .collect()
        } else {
            ids.iter()
                .map(|id| match self.tasks.get(id) {
                    Some(t) => self.status_of(t, true),
                    None => {
                        let unknown = SimTask {
                            id: id.clone(),
                            name: String::new(),
                            agent: None,
                            resources: Resources::empty(),
                            state: TaskState::Lost,
                            message: "the master knows no such task".into(),
                            exit_code: None,
                            result: None,
                            launched: false,
                            job: None,
                            changed_ms: self.now_ms,
                            seq: 0,
                        };
                        self.status_of(&unknown, true)
                    }
                })
                .collect()
        };
        out.events
            .extend(answers.into_iter().map(Event::StatusUpdate));
    }

    fn hold(&mut self, id: &OfferId, until_ms: u64, max: usize, out: &mut Applied) {
        let held = self.held_offers();
        match self.offers.get_mut(id) {
            Some(o) if o.held_until_ms.is_some() || held < max => o.held_until_ms = Some(until_ms),
            Some(_) => out.notes.push(format!(
                "offer {id} not held: the framework already holds {max} offers"
            )),
            None => out
                .notes
                .push(format!("hold of {id} ignored: no such offer outstanding")),
        }
    }
}

/// One launch command, by its place in the callback's output.
struct Launch<'a> {
    index: usize,
    offer_ids: &'a [OfferId],
    tasks: &'a [TaskLaunch],
}

#[cfg(test)]
mod tests;
