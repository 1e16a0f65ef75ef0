//! Carrying out what a scheduler callback returned, as one transaction.
//!
//! Two phases. *Plan* reads the core's state (and the store) and turns the
//! callback's output into store operations plus a list of effects; nothing
//! changes yet. *Apply* then carries out the effects in the order the
//! scheduler gave them: what only the core sees (offers consumed, tasks
//! registered, filters, suppression, timers) at once, and what others see
//! (launches sent to agents, statuses passed back to the scheduler, the
//! submitter's answer) once the operations have committed.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use tonic::Status;
use wasmesos_allocator::Filter;
use wasmesos_api::proto::{self, TaskState, master_message};
use wasmesos_api::{AgentId, FrameworkId, OfferId, Resources, TaskId, TenantId, now_ms};
use wasmesos_schedhost::{CallbackOutput, Command, Event, LogLevel, TaskLaunch};
use wasmesos_store::Op;

use super::{ActiveTask, After, ClusterEvent, Core, CoreMsg, Counters, TaskKey};
use crate::commit::{CommitError, put};
use crate::framework::{Context, Delivery, PendingSubmit};
use crate::{jobs, keys};

/// Most timers one framework may have armed.
const MAX_TIMERS: usize = 1000;
/// Callback durations kept per framework, for its latency figures.
pub(super) const LATENCY_SAMPLES: usize = 1024;

/// A task accepted for launch.
struct Planned {
    key: TaskKey,
    active: ActiveTask,
}

/// What to do once the callback's transaction has committed.
enum Effect {
    Launch {
        agent: AgentId,
        offers: Vec<OfferId>,
        tasks: Vec<Planned>,
    },
    /// Launches refused before reaching an agent (recorded as ERROR).
    Refused(Vec<proto::Task>),
    Decline(Vec<OfferId>, Duration),
    Hold(Vec<OfferId>, Duration),
    Kill(TaskKey),
    Reconcile(Vec<proto::Task>),
    Suppress,
    Revive,
    SetTimer(String, Duration),
    CancelTimer(String),
}

#[derive(Default)]
struct Plan {
    ops: Vec<Op>,
    effects: Vec<Effect>,
    /// Offers consumed by launches so far in this callback.
    used: HashSet<OfferId>,
    /// Task ids launched so far in this callback.
    launched: HashSet<TaskKey>,
    /// Jobs changed by this callback, by store key.
    jobs: BTreeMap<String, proto::Job>,
    /// Refusals the scheduler is not told of by a status update (a status
    /// for a task id in use would describe the task that holds it), for the
    /// framework's log.
    notes: Vec<String>,
}

impl Core {
    pub(super) async fn callback_done(
        &mut self,
        fw_id: FrameworkId,
        delivery: Delivery,
        output: CallbackOutput,
    ) -> Result<(), CommitError> {
        let Some(fw) = self.frameworks.get_mut(&fw_id) else {
            return Ok(());
        };
        fw.callbacks += 1;
        fw.fuel_total += output.fuel_used;
        fw.callback_micros_total += output.elapsed.as_micros().min(u64::MAX as u128) as u64;
        if fw.latencies.len() >= LATENCY_SAMPLES {
            fw.latencies.pop_front();
        }
        fw.latencies
            .push_back(output.elapsed.as_micros().min(u32::MAX as u128) as u32);
        let tenant = fw.tenant.clone();
        let name = fw.record.name.clone();
        log_output(&name, &delivery.event, &output);
        for line in &output.logs {
            self.framework_log(&fw_id, level_name(line.level), line.message.clone());
        }
        for reason in &output.rejected {
            self.framework_log(&fw_id, "warn", format!("command rejected: {reason}"));
        }

        let mut plan = Plan::default();
        let prefix = keys::fw_kv_prefix(&tenant, &fw_id);
        for (key, value) in &output.kv_writes {
            plan.ops.push(match value {
                Some(v) => Op::Put {
                    key: format!("{prefix}{key}"),
                    value: v.clone(),
                    lease: None,
                },
                None => Op::Delete {
                    key: format!("{prefix}{key}"),
                },
            });
        }
        if let (Context::Submit(p), Some(Ok(_)) | None) = (&delivery.context, &output.reply) {
            self.plan_job(&tenant, &fw_id, p, &mut plan);
        }
        let context_offers: HashSet<OfferId> = match &delivery.context {
            Context::Offers(ids) => ids.iter().cloned().collect(),
            _ => HashSet::new(),
        };
        for command in output.commands {
            self.plan_command(&fw_id, &tenant, &context_offers, command, &mut plan)
                .await?;
        }
        for (key, job) in &plan.jobs {
            plan.ops.push(put(key.clone(), job));
        }

        let mut visible: Vec<After> = Vec::new();
        for effect in plan.effects {
            if let Some(after) = self.apply_effect(&fw_id, effect) {
                visible.push(after);
            }
        }
        for note in std::mem::take(&mut plan.notes) {
            self.framework_log(&fw_id, "warn", note);
        }
        self.lapse(&fw_id, context_offers);
        self.allocation_pending = true;
        let jobs: Vec<proto::Job> = plan.jobs.into_values().collect();
        let (submit, message) = match delivery.context {
            Context::Submit(p) => (Some(p), None),
            Context::Message(reply) => (None, Some(reply)),
            _ => (None, None),
        };
        let reply = output.reply;
        self.write(plan.ops, move |core| {
            if let Some(to) = message {
                let _ = to.send(match reply.clone() {
                    Some(Ok(body)) => Ok(proto::SendMessageResponse { body }),
                    Some(Err(refusal)) => Err(Status::failed_precondition(format!(
                        "framework {name} refused the message: {refusal}"
                    ))),
                    None => Ok(proto::SendMessageResponse::default()),
                });
            }
            for after in visible {
                after(core);
            }
            for job in jobs {
                core.publish(ClusterEvent::Job(job));
            }
            if let Some(p) = submit {
                let answer = match reply {
                    Some(Err(refusal)) => Err(Status::invalid_argument(format!(
                        "framework {name} refused the job: {refusal}"
                    ))),
                    _ => Ok(proto::SubmitResponse {
                        job_id: p.job.job_id.clone(),
                        created: true,
                        job: Some(p.job.clone()),
                    }),
                };
                core.answer_submit(*p, answer);
            }
        });
        Ok(())
    }

    /// A framework gave up on an event: its offers lapse, a submitter hears
    /// why.
    pub(super) fn callback_abandoned(
        &mut self,
        fw_id: &FrameworkId,
        delivery: Delivery,
        reason: &str,
    ) {
        let name = self
            .frameworks
            .get(fw_id)
            .map(|f| f.record.name.clone())
            .unwrap_or_else(|| fw_id.to_string());
        let delivery_name = delivery.event.name();
        tracing::error!(framework = %name, event = delivery_name, "event abandoned: {reason}");
        match delivery.context {
            Context::Offers(ids) => self.lapse(fw_id, ids.into_iter().collect()),
            Context::Submit(p) => {
                let status = Status::unavailable(format!(
                    "framework {name}'s scheduler failed: {reason}; the job was not created, try again"
                ));
                self.answer_submit(*p, Err(status));
            }
            Context::Message(reply) => {
                let _ = reply.send(Err(Status::unavailable(format!(
                    "framework {name}'s scheduler failed on the message: {reason}"
                ))));
            }
            Context::None => {}
        }
        self.framework_log(
            fw_id,
            "error",
            format!("{} abandoned: {reason}", delivery_name),
        );
    }

    /// The job record (and idempotency key) of an accepted submission.
    fn plan_job(&self, tenant: &TenantId, fw: &FrameworkId, p: &PendingSubmit, plan: &mut Plan) {
        if !p.idempotency_key.is_empty() {
            plan.ops.push(Op::Put {
                key: keys::idempotency(tenant, fw, &p.idempotency_key),
                value: p.job.job_id.as_bytes().to_vec(),
                lease: None,
            });
        }
        // The highest number handed out so far (not this job's): numbers are
        // reserved at submission, and commits may land out of order.
        plan.ops.push(super::recover::seq_op("job", self.seq.job));
        if let Ok(id) = wasmesos_api::JobId::new(p.job.job_id.clone()) {
            plan.jobs.insert(keys::job(tenant, &id), p.job.clone());
        }
    }

    async fn plan_command(
        &self,
        fw: &FrameworkId,
        tenant: &TenantId,
        context_offers: &HashSet<OfferId>,
        command: Command,
        plan: &mut Plan,
    ) -> Result<(), CommitError> {
        match command {
            Command::Launch { offer_ids, tasks } => {
                self.plan_launch(fw, tenant, context_offers, offer_ids, tasks, plan)
                    .await?
            }
            Command::Decline { offer_ids, refuse } => {
                plan.effects.push(Effect::Decline(offer_ids, refuse))
            }
            Command::Hold {
                offer_ids,
                duration,
            } => plan
                .effects
                .push(Effect::Hold(offer_ids, duration.min(self.cfg.max_hold))),
            Command::Kill(task) => plan.effects.push(Effect::Kill((fw.clone(), task))),
            Command::Reconcile(ids) => {
                let answers = self.reconcile_answers(fw, tenant, ids).await?;
                plan.effects.push(Effect::Reconcile(answers));
            }
            Command::Suppress => plan.effects.push(Effect::Suppress),
            Command::Revive => plan.effects.push(Effect::Revive),
            Command::SetTimer { id, after } => plan.effects.push(Effect::SetTimer(id, after)),
            Command::CancelTimer(id) => plan.effects.push(Effect::CancelTimer(id)),
        }
        Ok(())
    }

    /// Checks a launch against the offers it names and records its tasks
    /// as STAGING (or ERROR, with the reason, when they cannot run).
    async fn plan_launch(
        &self,
        fw: &FrameworkId,
        tenant: &TenantId,
        context_offers: &HashSet<OfferId>,
        offer_ids: Vec<OfferId>,
        tasks: Vec<TaskLaunch>,
        plan: &mut Plan,
    ) -> Result<(), CommitError> {
        let fw_entry = &self.frameworks[fw];
        let mut refused = Vec::new();
        let offers = self.check_offers(fw, context_offers, &offer_ids, plan);
        let (agent, mut left) = match offers {
            Ok(v) => v,
            Err(reason) => {
                for t in tasks {
                    if let Some(r) = self.refuse(fw, tenant, &t, None, &reason, plan).await? {
                        refused.push(r);
                    }
                }
                plan.effects.push(Effect::Refused(refused));
                return Ok(());
            }
        };
        plan.used.extend(offer_ids.iter().cloned());
        let hostname = self.agents[&agent].record.hostname.clone();
        let mut accepted = Vec::new();
        for t in tasks {
            let key = (fw.clone(), t.task_id.clone());
            let taken = self.tasks.contains_key(&key)
                || plan.launched.contains(&key)
                || self
                    .committer
                    .read_raw(&keys::task(tenant, fw, &t.task_id))
                    .await?
                    .is_some();
            let reason = if taken {
                Some("the task id is already in use".to_string())
            } else if t.resources.mem_bytes == 0 {
                Some("the task asks for no memory; every task needs a memory cap (resources.mem-bytes)".to_string())
            } else if !left.contains(&t.resources) {
                Some(format!(
                    "the task needs {} but its offers have only {} left",
                    t.resources, left
                ))
            } else if self
                .modules
                .stat(tenant, &t.module_digest)
                .await
                .map_err(|e| CommitError::Corrupt {
                    key: t.module_digest.to_string(),
                    reason: e.to_string(),
                })?
                .is_none()
            {
                Some(format!(
                    "module {} has not been uploaded by tenant {tenant}",
                    t.module_digest
                ))
            } else {
                None
            };
            let job = self.job_of(fw, tenant, &t.task_id, plan).await?;
            let reason = reason.or_else(|| match &job {
                Some((_, j)) if j.state().is_terminal() => Some(format!(
                    "job {} is already {}",
                    j.job_id,
                    wasmesos_api::job_state_name(j.state())
                )),
                _ => None,
            });
            if let Some(reason) = reason {
                if let Some(r) = self
                    .refuse(fw, tenant, &t, Some(&agent), &reason, plan)
                    .await?
                {
                    refused.push(r);
                }
                continue;
            }
            left = left.saturating_sub(&t.resources);
            let key = (fw.clone(), t.task_id.clone());
            let mut record = proto::Task {
                task_id: t.task_id.to_string(),
                tenant: tenant.to_string(),
                framework_id: fw.to_string(),
                framework_name: fw_entry.record.name.clone(),
                job_id: job
                    .as_ref()
                    .map(|(_, j)| j.job_id.clone())
                    .unwrap_or_default(),
                name: t.name.clone(),
                agent_id: agent.to_string(),
                spec: Some(task_spec(&t)),
                created_ms: now_ms(),
                ..Default::default()
            };
            record.set_state(TaskState::Staging);
            if let Some((job_key, mut j)) = job {
                jobs::on_launch(&mut j, &record);
                plan.jobs.insert(job_key, j);
            }
            plan.ops
                .push(put(keys::task(tenant, fw, &t.task_id), &record));
            plan.launched.insert(key.clone());
            tracing::debug!(task = %t.task_id, agent = %agent, host = %hostname, "launching");
            accepted.push(Planned {
                key,
                active: ActiveTask {
                    record,
                    tenant: tenant.clone(),
                    agent: agent.clone(),
                    resources: t.resources.clone(),
                    kill_requested: false,
                },
            });
        }
        plan.effects.push(Effect::Refused(refused));
        plan.effects.push(Effect::Launch {
            agent,
            offers: offer_ids,
            tasks: accepted,
        });
        Ok(())
    }

    /// The agent and total resources of a launch's offers, or why they
    /// cannot be used.
    fn check_offers(
        &self,
        fw: &FrameworkId,
        context_offers: &HashSet<OfferId>,
        offer_ids: &[OfferId],
        plan: &Plan,
    ) -> Result<(AgentId, Resources), String> {
        if offer_ids.is_empty() {
            return Err("the launch names no offers".into());
        }
        let held = &self.frameworks[fw].offers;
        let mut agent: Option<&AgentId> = None;
        let mut total = Resources::empty();
        let mut seen = HashSet::new();
        for id in offer_ids {
            if !seen.insert(id) {
                return Err(format!("offer {id} is named twice"));
            }
            let usable = !plan.used.contains(id)
                && (context_offers.contains(id) || held.get(id).is_some_and(|h| h.is_some()));
            let offer = self.offers.get(id).filter(|o| usable && &o.framework == fw);
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
        if self.agents.get(&agent).is_none_or(|a| a.conn.is_none()) {
            return Err(format!("agent {agent} is disconnected"));
        }
        Ok((agent, total))
    }

    /// The job a task named `JOB.N` is an attempt of, if that job belongs
    /// to this framework.
    async fn job_of(
        &self,
        fw: &FrameworkId,
        tenant: &TenantId,
        task: &TaskId,
        plan: &Plan,
    ) -> Result<Option<(String, proto::Job)>, CommitError> {
        let Some(job_id) = task.job() else {
            return Ok(None);
        };
        let key = keys::job(tenant, &job_id);
        let job = match plan.jobs.get(&key) {
            Some(j) => Some(j.clone()),
            None => self.committer.read::<proto::Job>(&key).await?,
        };
        Ok(job
            .filter(|j| j.framework_id == fw.as_str())
            .map(|j| (key, j)))
    }

    /// Records a task that cannot be launched as ERROR — unless its id is
    /// taken, in which case the existing record is left alone and the
    /// refusal goes to the framework's log only.
    async fn refuse(
        &self,
        fw: &FrameworkId,
        tenant: &TenantId,
        t: &TaskLaunch,
        agent: Option<&AgentId>,
        reason: &str,
        plan: &mut Plan,
    ) -> Result<Option<proto::Task>, CommitError> {
        let key = (fw.clone(), t.task_id.clone());
        let store_key = keys::task(tenant, fw, &t.task_id);
        let taken = self.tasks.contains_key(&key)
            || plan.launched.contains(&key)
            || self.committer.read_raw(&store_key).await?.is_some();
        let mut record = proto::Task {
            task_id: t.task_id.to_string(),
            tenant: tenant.to_string(),
            framework_id: fw.to_string(),
            framework_name: self.frameworks[fw].record.name.clone(),
            name: t.name.clone(),
            agent_id: agent.map(|a| a.to_string()).unwrap_or_default(),
            spec: Some(task_spec(t)),
            created_ms: now_ms(),
            finished_ms: now_ms(),
            message: reason.to_string(),
            ..Default::default()
        };
        record.set_state(TaskState::Error);
        tracing::warn!(task = %t.task_id, "launch refused: {reason}");
        if taken {
            plan.notes.push(format!(
                "launch of {} refused: the task id is already in use (ids are unique within a framework)",
                t.task_id
            ));
            return Ok(None);
        }
        plan.launched.insert(key);
        plan.ops.push(put(store_key, &record));
        Ok(Some(record))
    }

    /// Current states of the framework's tasks, for `reconcile`.
    async fn reconcile_answers(
        &self,
        fw: &FrameworkId,
        tenant: &TenantId,
        ids: Vec<TaskId>,
    ) -> Result<Vec<proto::Task>, CommitError> {
        if ids.is_empty() {
            return Ok(self
                .tasks
                .iter()
                .filter(|((f, _), _)| f == fw)
                .map(|(_, t)| t.record.clone())
                .collect());
        }
        let mut out = Vec::new();
        for id in ids {
            let key = (fw.clone(), id.clone());
            let record = match self.tasks.get(&key) {
                Some(t) => Some(t.record.clone()),
                None => self.committer.read(&keys::task(tenant, fw, &id)).await?,
            };
            out.push(record.unwrap_or_else(|| {
                let mut r = proto::Task {
                    task_id: id.to_string(),
                    message: "the master knows no such task".into(),
                    ..Default::default()
                };
                r.set_state(TaskState::Lost);
                r
            }));
        }
        Ok(out)
    }

    /// Carries out what only the core sees now; returns what others see,
    /// to run once the callback's changes have committed.
    fn apply_effect(&mut self, fw_id: &FrameworkId, effect: Effect) -> Option<After> {
        let fw = fw_id.clone();
        match effect {
            Effect::Launch {
                agent,
                offers,
                tasks,
            } => return self.apply_launch(fw_id, agent, offers, tasks),
            Effect::Refused(records) => {
                for r in &records {
                    self.task_counts.add(r.state());
                    let line = format!("launch of {} refused: {}", r.task_id, r.message);
                    self.framework_log(fw_id, "warn", line);
                }
                return Some(Box::new(move |core: &mut Core| {
                    for r in records {
                        core.publish(ClusterEvent::Task(r.clone()));
                        core.notify_framework(&fw, &r, false);
                    }
                }));
            }
            Effect::Decline(ids, refuse) => {
                Counters::add(&self.counters.offers_declined, ids.len() as u64);
                for id in ids {
                    self.return_offer(fw_id, &id, Some(refuse));
                }
            }
            Effect::Hold(ids, duration) => self.hold(fw_id, ids, duration),
            Effect::Kill(key) => {
                if let Some(task) = self.tasks.get_mut(&key) {
                    task.kill_requested = true;
                    return Some(Box::new(move |core: &mut Core| core.send_kill(&key)));
                }
            }
            Effect::Reconcile(records) => {
                return Some(Box::new(move |core: &mut Core| {
                    for r in records {
                        core.notify_framework(&fw, &r, true);
                    }
                }));
            }
            Effect::Suppress => {
                if let Some(fw) = self.frameworks.get_mut(fw_id) {
                    fw.suppressed = true;
                }
            }
            Effect::Revive => {
                if let Some(fw) = self.frameworks.get_mut(fw_id) {
                    fw.suppressed = false;
                    fw.filters.clear();
                }
            }
            Effect::SetTimer(id, after) => self.set_timer(fw_id, id, after),
            Effect::CancelTimer(id) => {
                if let Some(fw) = self.frameworks.get_mut(fw_id) {
                    fw.timers.remove(&id);
                }
            }
        }
        None
    }

    /// Registers the tasks and consumes their offers now; the launch goes
    /// to the agent once the task records have committed.
    fn apply_launch(
        &mut self,
        fw_id: &FrameworkId,
        agent: AgentId,
        offers: Vec<OfferId>,
        tasks: Vec<Planned>,
    ) -> Option<After> {
        let mut used = Resources::empty();
        let mut launches = Vec::new();
        let mut records = Vec::new();
        for p in tasks {
            used += &p.active.resources;
            launches.push(proto::TaskLaunch {
                tenant: p.active.tenant.to_string(),
                framework_id: fw_id.to_string(),
                task_id: p.key.1.to_string(),
                spec: p.active.record.spec.clone(),
            });
            records.push(p.active.record.clone());
            self.task_counts.add(p.active.record.state());
            Counters::add(&self.counters.tasks_launched, 1);
            if let Some(a) = self.agents.get_mut(&agent) {
                a.tasks.insert(p.key.clone());
                a.allocated += &p.active.resources;
            }
            if let Some(fw) = self.frameworks.get_mut(fw_id) {
                fw.allocated += &p.active.resources;
                fw.tasks_running += 1;
            }
            self.tasks.insert(p.key, p.active);
        }
        // The offers are consumed; what the tasks did not take goes back,
        // filtered for this framework as Mesos does for an accept.
        let mut offered = Resources::empty();
        for id in &offers {
            if let Some(o) = self.offers.get(id) {
                offered += &o.resources;
            }
            self.remove_offer(fw_id, id);
        }
        let remainder = offered.saturating_sub(&used);
        if !remainder.is_empty() {
            self.add_filter(fw_id, &agent, remainder, self.cfg.default_refuse);
        }
        if launches.is_empty() {
            return None;
        }
        Some(Box::new(move |core: &mut Core| {
            for r in records {
                core.publish(ClusterEvent::Task(r));
            }
            let launch = master_message::Msg::Launch(proto::LaunchTasks { tasks: launches });
            if let Err(e) = core.send_to_agent(&agent, launch) {
                // The agent's stream broke meanwhile: its tasks are
                // reconciled (as LOST) when it returns or times out.
                tracing::warn!(agent = %agent, "launch not sent: {}", e.message());
            }
        }))
    }

    /// Asks a task's agent to kill it (re-sent if the agent reconnects).
    pub(super) fn send_kill(&self, key: &TaskKey) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        let _ = self.send_to_agent(
            &task.agent,
            master_message::Msg::Kill(proto::KillTaskOrder {
                framework_id: key.0.to_string(),
                task_id: key.1.to_string(),
            }),
        );
    }

    fn set_timer(&mut self, fw_id: &FrameworkId, id: String, after: Duration) {
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        if fw.timers.len() >= MAX_TIMERS && !fw.timers.contains_key(&id) {
            tracing::warn!(framework = %fw.record.name, "timer {id} refused: {MAX_TIMERS} timers are already set");
            return;
        }
        self.next_timer += 1;
        let generation = self.next_timer;
        fw.timers.insert(id.clone(), generation);
        let me = self.me.clone();
        let framework = fw_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = me.send(CoreMsg::Timer {
                framework,
                id,
                generation,
            });
        });
    }

    pub(super) fn timer_fired(&mut self, fw_id: &FrameworkId, id: String, generation: u64) {
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        if fw.timers.get(&id) != Some(&generation) {
            return; // replaced or cancelled
        }
        fw.timers.remove(&id);
        fw.actor.deliver(Delivery::plain(Event::Timer(id)));
    }

    fn add_filter(
        &mut self,
        fw_id: &FrameworkId,
        agent: &AgentId,
        resources: Resources,
        refuse: Duration,
    ) {
        if refuse.is_zero() {
            return;
        }
        if let Some(fw) = self.frameworks.get_mut(fw_id) {
            let until_ms = now_ms() + refuse.as_millis() as i64;
            fw.filters.push(Filter {
                agent: agent.clone(),
                resources,
                until_ms,
            });
        }
    }

    /// Takes an offer back from a framework: declined (with the scheduler's
    /// filter), lapsed (with the default filter) or expired.
    pub(super) fn return_offer(
        &mut self,
        fw_id: &FrameworkId,
        id: &OfferId,
        refuse: Option<Duration>,
    ) {
        let Some(offer) = self.offers.get(id) else {
            return;
        };
        if &offer.framework != fw_id {
            return;
        }
        let (agent, resources) = (offer.agent.clone(), offer.resources.clone());
        self.remove_offer(fw_id, id);
        let refuse = refuse.unwrap_or(self.cfg.default_refuse);
        self.add_filter(fw_id, &agent, resources, refuse);
        self.allocation_pending = true;
    }

    /// Offers of a finished callback that were neither used nor held lapse.
    pub(super) fn lapse(&mut self, fw_id: &FrameworkId, ids: HashSet<OfferId>) {
        for id in ids {
            let held = self
                .frameworks
                .get(fw_id)
                .and_then(|f| f.offers.get(&id))
                .is_some_and(|h| h.is_some());
            if !held && self.offers.contains_key(&id) {
                Counters::add(&self.counters.offers_declined, 1);
                self.return_offer(fw_id, &id, None);
            }
        }
    }

    fn hold(&mut self, fw_id: &FrameworkId, ids: Vec<OfferId>, duration: Duration) {
        let max = self.cfg.max_held_offers;
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        let deadline = Instant::now() + duration;
        for id in ids {
            let held = fw.offers.values().filter(|h| h.is_some()).count();
            match fw.offers.get_mut(&id) {
                Some(slot) if slot.is_some() || held < max => *slot = Some(deadline),
                Some(_) => tracing::warn!(
                    framework = %fw.record.name,
                    "offer {id} not held: the framework already holds {max} offers"
                ),
                None => {}
            }
        }
    }
}

fn task_spec(t: &TaskLaunch) -> proto::TaskSpec {
    proto::TaskSpec {
        module_digest: t.module_digest.to_string(),
        args: t.args.clone(),
        env: t.env.iter().cloned().collect(),
        resources: Some((&t.resources).into()),
        limits: Some(proto::Limits {
            fuel: t.limits.fuel,
            timeout_ms: t.limits.timeout_ms,
            log_bytes: t.limits.log_bytes,
        }),
    }
}

/// Passes a callback's log lines and rejected commands to the master's log.
fn log_output(framework: &str, event: &Event, output: &CallbackOutput) {
    for line in &output.logs {
        let msg = &line.message;
        match line.level {
            LogLevel::Trace => tracing::trace!(framework, "{msg}"),
            LogLevel::Debug => tracing::debug!(framework, "{msg}"),
            LogLevel::Info => tracing::info!(framework, "{msg}"),
            LogLevel::Warn => tracing::warn!(framework, "{msg}"),
            LogLevel::Error => tracing::error!(framework, "{msg}"),
        }
    }
    if output.logs_dropped > 0 {
        tracing::warn!(
            framework,
            "{} log lines dropped (too much logging in one callback)",
            output.logs_dropped
        );
    }
    for reason in &output.rejected {
        tracing::warn!(
            framework,
            callback = event.name(),
            "command rejected: {reason}"
        );
    }
    tracing::trace!(
        framework,
        callback = event.name(),
        fuel = output.fuel_used,
        elapsed_us = output.elapsed.as_micros() as u64,
        commands = output.commands.len(),
        "callback"
    );
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}
