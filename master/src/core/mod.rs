//! The master's core: the one owner of the cluster's live state (agents,
//! frameworks, active tasks, outstanding offers), driven by messages in one
//! loop. Every change is written to the store before anyone is told of it:
//! the core updates its own state at once and hands the change to the write
//! pipeline (`commit::Pipeline`), and whatever others would see — an
//! acknowledgement, a launch, a reply — waits in `pending` until that change
//! has committed. Many changes share one durable commit that way, and the
//! loop never waits on the disk.
//!
//! Submodules hold one concern each: `agents` (attach, heartbeat, loss),
//! `status` (task status updates and job state), `callbacks` (carrying out
//! a scheduler's commands), `allocation` (snapshot → allocator → offers),
//! `submit` (submissions and kills), `query` (read-only views), `recover`
//! (start-up from the store), `roles` (weights and quotas), `drain`
//! (draining agents), `tenancy` (tenants and tokens), `audit` (who did
//! what).

mod agents;
mod allocation;
mod audit;
mod callbacks;
pub(crate) mod counters;
mod drain;
mod lifecycle;
mod query;
mod recover;
mod roles;
mod status;
mod submit;
mod tenancy;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot};
use tonic::Status;
use wasmesos_allocator::Filter;
use wasmesos_api::proto::{self, MasterMessage, master_message};
use wasmesos_api::{AgentId, FrameworkId, OfferId, Principal, Resources, TaskId, TenantId};
use wasmesos_schedhost::{CallbackOutput, SchedHost, SchedulerComponent};
use wasmesos_store::Op;

use crate::commit::{CommitError, Committed, Committer, Pipeline};
use crate::config::MasterConfig;
use crate::framework::{Delivery, FrameworkActor};
use crate::modules::ModuleStore;
use crate::tenancy::Registry;

pub(crate) use counters::Counters;
pub(crate) use lifecycle::MAX_MESSAGE_BYTES;
pub(crate) use query::{AGENT_TASKS, AgentFilter, ClusterSummary, FrameworkMetrics, Query};
pub(crate) use recover::read_seq;
#[cfg(test)]
pub(crate) use recover::seq_op as seq_op_for_tests;
pub(crate) use submit::ResolvedTask;
pub(crate) use tenancy::public as public_token;

/// A task is known by its framework and its id.
pub(crate) type TaskKey = (FrameworkId, TaskId);

/// A change others may want to follow (`WatchJob`, the UI).
#[derive(Clone, Debug)]
pub enum ClusterEvent {
    Task(proto::Task),
    Job(proto::Job),
}

/// Sends master messages to one connected agent.
pub(crate) type AgentTx = mpsc::UnboundedSender<Result<MasterMessage, Status>>;

/// Where an agent's attach is answered.
pub(crate) type AttachReply = oneshot::Sender<Result<AgentId, Status>>;

/// Work that waits for a change to commit.
pub(super) type After = Box<dyn FnOnce(&mut Core) + Send + Sync>;

/// What the core is asked to do.
pub(crate) enum CoreMsg {
    AgentAttach {
        register: proto::RegisterAgent,
        conn: u64,
        tx: AgentTx,
        reply: AttachReply,
    },
    AgentHeartbeat {
        agent: AgentId,
        conn: u64,
    },
    AgentStatus {
        agent: AgentId,
        conn: u64,
        update: proto::StatusUpdate,
    },
    AgentDetached {
        agent: AgentId,
        conn: u64,
    },
    /// Send a message to an agent (log requests).
    ToAgent {
        agent: AgentId,
        msg: master_message::Msg,
        reply: oneshot::Sender<Result<(), Status>>,
    },
    Submit {
        principal: Principal,
        request: proto::SubmitRequest,
        reply: oneshot::Sender<Result<proto::SubmitResponse, Status>>,
    },
    Kill {
        principal: Principal,
        target: ResolvedTask,
        reply: oneshot::Sender<Result<proto::KillTaskResponse, Status>>,
    },
    /// A scheduler callback returned; commit and carry out its output.
    CallbackDone {
        framework: FrameworkId,
        delivery: Delivery,
        output: Box<CallbackOutput>,
    },
    /// A framework gave up on an event (its scheduler kept failing).
    CallbackAbandoned {
        framework: FrameworkId,
        delivery: Delivery,
        reason: String,
    },
    /// A framework's scheduler changed health ("running", "failed: ...").
    FrameworkHealth {
        framework: FrameworkId,
        healthy: bool,
        status: String,
    },
    /// A line for a framework's log from its actor (failures, upgrades).
    FrameworkLog {
        framework: FrameworkId,
        level: &'static str,
        message: String,
    },
    Deploy {
        principal: Principal,
        request: proto::DeployFrameworkRequest,
        reply: oneshot::Sender<Result<proto::Framework, Status>>,
    },
    Upgrade {
        principal: Principal,
        request: proto::UpgradeFrameworkRequest,
        component: SchedulerComponent,
        reply: oneshot::Sender<Result<proto::Framework, Status>>,
    },
    /// A framework's actor has tried its new scheduler.
    Upgraded {
        framework: FrameworkId,
        record: proto::Framework,
        outcome: Result<(), String>,
        reply: oneshot::Sender<Result<proto::Framework, Status>>,
    },
    Remove {
        principal: Principal,
        name: String,
        reply: oneshot::Sender<Result<proto::RemoveFrameworkResponse, Status>>,
    },
    SendMessage {
        principal: Principal,
        request: proto::SendMessageRequest,
        reply: oneshot::Sender<Result<proto::SendMessageResponse, Status>>,
    },
    Timer {
        framework: FrameworkId,
        id: String,
        generation: u64,
    },
    Query(Query),
    SetRole {
        principal: Principal,
        request: proto::SetRoleRequest,
        reply: oneshot::Sender<Result<proto::Role, Status>>,
    },
    DrainAgent {
        principal: Principal,
        request: proto::DrainAgentRequest,
        reply: oneshot::Sender<Result<proto::Agent, Status>>,
    },
    UndrainAgent {
        principal: Principal,
        request: proto::UndrainAgentRequest,
        reply: oneshot::Sender<Result<proto::Agent, Status>>,
    },
    CreateTenant {
        principal: Principal,
        request: proto::CreateTenantRequest,
        reply: oneshot::Sender<Result<proto::Tenant, Status>>,
    },
    SetTenantLimits {
        principal: Principal,
        request: proto::SetTenantLimitsRequest,
        reply: oneshot::Sender<Result<proto::Tenant, Status>>,
    },
    /// Append to the audit log.
    Audit(proto::AuditEntry),
    CreateToken {
        principal: Principal,
        request: proto::CreateTokenRequest,
        reply: oneshot::Sender<Result<proto::CreateTokenResponse, Status>>,
    },
    RevokeToken {
        principal: Principal,
        id: String,
        reply: oneshot::Sender<Result<proto::Token, Status>>,
    },
}

/// How the rest of the master talks to the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::UnboundedSender<CoreMsg>,
    events: broadcast::Sender<ClusterEvent>,
    pub(crate) epoch: u64,
    /// Read by `/metrics` without asking the core.
    pub(crate) counters: Arc<Counters>,
}

impl CoreHandle {
    pub(crate) fn send(&self, msg: CoreMsg) -> Result<(), Status> {
        self.tx
            .send(msg)
            .map_err(|_| Status::unavailable("the master is shutting down"))
    }

    /// Sends a message built around a reply channel and awaits the reply.
    pub(crate) async fn ask<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<T, Status>>) -> CoreMsg,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(build(tx))?;
        rx.await
            .map_err(|_| Status::unavailable("the master is shutting down"))?
    }

    /// Asks the core a read-only question.
    pub(crate) async fn query<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(CoreMsg::Query(build(tx)))?;
        rx.await
            .map_err(|_| Status::unavailable("the master is shutting down"))
    }

    /// Follows task and job changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }
}

pub(crate) struct AgentConn {
    id: u64,
    tx: AgentTx,
}

pub(crate) struct AgentEntry {
    record: proto::Agent,
    conn: Option<AgentConn>,
    /// Held by active tasks.
    allocated: Resources,
    /// Held by outstanding offers.
    offered: Resources,
    last_seen: Instant,
    tasks: HashSet<TaskKey>,
}

pub(crate) struct FrameworkEntry {
    record: proto::Framework,
    tenant: TenantId,
    actor: FrameworkActor,
    allocated: Resources,
    suppressed: bool,
    healthy: bool,
    status: String,
    filters: Vec<Filter>,
    /// Offers outstanding to it, with the hold deadline of held ones.
    offers: HashMap<OfferId, Option<Instant>>,
    timers: HashMap<String, u64>,
    tasks_running: u32,
    callbacks: u64,
    failures: u64,
    log: VecDeque<proto::FrameworkLogLine>,
    /// Durations of recent callbacks, in microseconds.
    latencies: VecDeque<u32>,
    /// Fuel and time of every callback since this master started (for
    /// `/metrics`).
    fuel_total: u64,
    callback_micros_total: u64,
}

pub(crate) struct ActiveTask {
    record: proto::Task,
    tenant: TenantId,
    agent: AgentId,
    resources: Resources,
    /// A kill was asked for; re-sent if the agent reconnects.
    kill_requested: bool,
}

pub(crate) struct OfferEntry {
    framework: FrameworkId,
    agent: AgentId,
    resources: Resources,
}

/// Persisted id counters (`seq/<name>`), bumped in the same transaction as
/// the object they name.
#[derive(Default)]
pub(crate) struct Sequences {
    job: u64,
    agent: u64,
    framework: u64,
    audit: u64,
}

pub(crate) struct Core {
    cfg: Arc<MasterConfig>,
    committer: Committer,
    pipeline: Pipeline,
    /// Sequence number of the last committed change.
    committed: u64,
    /// What waits for changes to commit, in order.
    pending: VecDeque<(u64, After)>,
    modules: ModuleStore,
    host: SchedHost,
    epoch: u64,
    advertise: String,
    started_ms: i64,
    agents: BTreeMap<AgentId, AgentEntry>,
    frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
    /// Roles configured by operators, by name (roles frameworks name
    /// without a record are not here).
    roles: BTreeMap<String, proto::Role>,
    tasks: HashMap<TaskKey, ActiveTask>,
    offers: HashMap<OfferId, OfferEntry>,
    next_offer: u64,
    next_timer: u64,
    seq: Sequences,
    events: broadcast::Sender<ClusterEvent>,
    me: mpsc::UnboundedSender<CoreMsg>,
    allocation_pending: bool,
    round: u64,
    /// Submissions waiting on an in-flight one with the same idempotency
    /// key, by its store key.
    idem_waiters: HashMap<String, Vec<submit::SubmitReply>>,
    counters: Arc<Counters>,
    /// Every task record in the store, by state.
    task_counts: counters::TaskCounts,
    /// Tenants and tokens (shared with request authentication).
    registry: Arc<Registry>,
}

/// Everything the core needs at start.
pub(crate) struct CoreParts {
    pub cfg: Arc<MasterConfig>,
    pub committer: Committer,
    pub modules: ModuleStore,
    pub host: SchedHost,
    pub epoch: u64,
    pub advertise: String,
    pub counters: Arc<Counters>,
    pub registry: Arc<Registry>,
}

/// Recovers the core from the store and starts its loop. The loop ends when
/// `shutdown` fires or a commit finds this master fenced out.
pub(crate) async fn start(
    parts: CoreParts,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(CoreHandle, tokio::task::JoinHandle<Result<(), CommitError>>), CommitError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let (commits_tx, commits) = mpsc::unbounded_channel();
    let pipeline = parts.committer.pipeline(commits_tx);
    let handle = CoreHandle {
        tx: tx.clone(),
        events: events.clone(),
        epoch: parts.epoch,
        counters: parts.counters.clone(),
    };
    let mut core = Core {
        cfg: parts.cfg,
        committer: parts.committer,
        pipeline,
        committed: 0,
        pending: VecDeque::new(),
        modules: parts.modules,
        host: parts.host,
        epoch: parts.epoch,
        advertise: parts.advertise,
        started_ms: wasmesos_api::now_ms(),
        agents: BTreeMap::new(),
        frameworks: BTreeMap::new(),
        roles: BTreeMap::new(),
        tasks: HashMap::new(),
        offers: HashMap::new(),
        next_offer: 0,
        next_timer: 0,
        seq: Sequences::default(),
        events,
        me: tx,
        allocation_pending: false,
        round: 0,
        idem_waiters: HashMap::new(),
        counters: parts.counters,
        task_counts: counters::TaskCounts::default(),
        registry: parts.registry,
    };
    core.recover().await?;
    let join = tokio::spawn(async move { core.run(rx, commits, shutdown).await });
    Ok((handle, join))
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<CoreMsg>,
        mut commits: mpsc::UnboundedReceiver<Committed>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), CommitError> {
        let mut tick = tokio::time::interval(self.cfg.allocation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                report = commits.recv() => match report {
                    Some(Committed::Upto(seq)) => self.on_committed(seq),
                    Some(Committed::Failed(e)) => {
                        tracing::error!("a commit failed: {e}; the master stops");
                        return Err(e);
                    }
                    None => break,
                },
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle(msg).await?;
                    // Drain what is already queued before allocating, so a
                    // burst of events coalesces into one allocation pass.
                    while let Ok(msg) = rx.try_recv() {
                        self.handle(msg).await?;
                    }
                }
                _ = tick.tick() => {
                    self.periodic().await?;
                    self.allocation_pending = true;
                }
                _ = shutdown.changed() => break,
            }
            if self.allocation_pending {
                self.allocation_pending = false;
                let started = Instant::now();
                self.allocate();
                self.counters.allocation_rounds.observe(started.elapsed());
            }
        }
        for fw in self.frameworks.values() {
            fw.actor.stop();
        }
        Ok(())
    }

    async fn handle(&mut self, msg: CoreMsg) -> Result<(), CommitError> {
        let result = match msg {
            CoreMsg::AgentAttach {
                register,
                conn,
                tx,
                reply,
            } => self.attach_agent(register, conn, tx, reply).await,
            CoreMsg::AgentHeartbeat { agent, conn } => {
                self.heartbeat(&agent, conn);
                Ok(())
            }
            CoreMsg::AgentStatus {
                agent,
                conn,
                update,
            } => self.status_update(&agent, conn, update).await,
            CoreMsg::AgentDetached { agent, conn } => {
                self.detach_agent(&agent, conn);
                Ok(())
            }
            CoreMsg::ToAgent { agent, msg, reply } => {
                let _ = reply.send(self.send_to_agent(&agent, msg));
                Ok(())
            }
            CoreMsg::Submit {
                principal,
                request,
                reply,
            } => self.submit(principal, request, reply).await,
            CoreMsg::Kill {
                principal,
                target,
                reply,
            } => self.kill(principal, target, reply).await,
            CoreMsg::CallbackDone {
                framework,
                delivery,
                output,
            } => self.callback_done(framework, delivery, *output).await,
            CoreMsg::CallbackAbandoned {
                framework,
                delivery,
                reason,
            } => {
                self.callback_abandoned(&framework, delivery, &reason);
                Ok(())
            }
            CoreMsg::FrameworkHealth {
                framework,
                healthy,
                status,
            } => {
                if let Some(fw) = self.frameworks.get_mut(&framework) {
                    fw.healthy = healthy;
                    fw.status = status;
                    if !healthy {
                        fw.failures += 1;
                        // Its offers went back (the actor abandons them);
                        // withdraw any it was holding too.
                        let held: Vec<OfferId> = fw.offers.keys().cloned().collect();
                        for offer in held {
                            self.remove_offer(&framework, &offer);
                        }
                    }
                    self.allocation_pending = true;
                }
                Ok(())
            }
            CoreMsg::FrameworkLog {
                framework,
                level,
                message,
            } => {
                self.framework_log(&framework, level, message);
                Ok(())
            }
            CoreMsg::Deploy {
                principal,
                request,
                reply,
            } => {
                self.deploy(principal, request, reply);
                Ok(())
            }
            CoreMsg::Upgrade {
                principal,
                request,
                component,
                reply,
            } => {
                self.upgrade(principal, request, component, reply);
                Ok(())
            }
            CoreMsg::Upgraded {
                framework,
                record,
                outcome,
                reply,
            } => {
                self.upgraded(framework, record, outcome, reply);
                Ok(())
            }
            CoreMsg::Remove {
                principal,
                name,
                reply,
            } => self.remove(principal, name, reply).await,
            CoreMsg::SendMessage {
                principal,
                request,
                reply,
            } => {
                self.send_message(principal, request, reply);
                Ok(())
            }
            CoreMsg::Timer {
                framework,
                id,
                generation,
            } => {
                self.timer_fired(&framework, id, generation);
                Ok(())
            }
            CoreMsg::Query(q) => {
                self.answer(q);
                Ok(())
            }
            CoreMsg::SetRole {
                principal,
                request,
                reply,
            } => {
                self.set_role(principal, request, reply);
                Ok(())
            }
            CoreMsg::DrainAgent {
                principal,
                request,
                reply,
            } => {
                self.drain_agent(principal, request, reply);
                Ok(())
            }
            CoreMsg::UndrainAgent {
                principal,
                request,
                reply,
            } => {
                self.undrain_agent(principal, request, reply);
                Ok(())
            }
            CoreMsg::CreateTenant {
                principal,
                request,
                reply,
            } => self.create_tenant(principal, request, reply).await,
            CoreMsg::SetTenantLimits {
                principal,
                request,
                reply,
            } => {
                self.set_tenant_limits(principal, request, reply);
                Ok(())
            }
            CoreMsg::Audit(entry) => {
                self.append_audit(entry);
                Ok(())
            }
            CoreMsg::CreateToken {
                principal,
                request,
                reply,
            } => {
                self.create_token(principal, request, reply);
                Ok(())
            }
            CoreMsg::RevokeToken {
                principal,
                id,
                reply,
            } => {
                self.revoke_token(principal, id, reply);
                Ok(())
            }
        };
        match result {
            Err(CommitError::Fenced) => Err(CommitError::Fenced),
            Err(e) => {
                // A store error fails the one operation (its caller was told);
                // the core keeps serving.
                tracing::error!("core: {e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Hands `ops` to the write pipeline; `after` runs once they (and every
    /// earlier change) have committed. With no ops, `after` still waits for
    /// the changes before it, so effects happen in the order they were made.
    pub(super) fn write(
        &mut self,
        ops: Vec<Op>,
        after: impl FnOnce(&mut Core) + Send + Sync + 'static,
    ) {
        let seq = if ops.is_empty() {
            self.pipeline.last()
        } else {
            self.pipeline.write(ops)
        };
        if seq <= self.committed {
            after(self);
        } else {
            self.pending.push_back((seq, Box::new(after)));
        }
    }

    /// Runs, in order, what waited for changes up to `seq`.
    fn on_committed(&mut self, seq: u64) {
        self.committed = seq;
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, after)) = self.pending.pop_front() {
                after(self);
            }
        }
    }

    /// Once per allocation interval: expire held offers, kill what is left
    /// on agents past their drain deadline, time out agents.
    async fn periodic(&mut self) -> Result<(), CommitError> {
        self.expire_holds();
        self.enforce_drain_deadlines();
        self.check_agents().await
    }

    fn send_to_agent(&self, agent: &AgentId, msg: master_message::Msg) -> Result<(), Status> {
        let entry = self
            .agents
            .get(agent)
            .ok_or_else(|| Status::not_found(format!("no agent {agent}")))?;
        let conn = entry.conn.as_ref().ok_or_else(|| {
            Status::unavailable(format!(
                "agent {agent} is disconnected; try again when it reconnects"
            ))
        })?;
        conn.tx
            .send(Ok(MasterMessage {
                epoch: self.epoch,
                msg: Some(msg),
            }))
            .map_err(|_| Status::unavailable(format!("agent {agent} is disconnecting")))
    }

    fn publish(&self, event: ClusterEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}
