//! The master's core: the one owner of the cluster's live state (agents,
//! frameworks, active tasks, outstanding offers), driven by messages in one
//! loop. Every change is written to the store before anyone is told of it;
//! the loop awaits each commit, so what it plans from its state is still
//! true when it applies the result.
//!
//! Submodules hold one concern each: `agents` (attach, heartbeat, loss),
//! `status` (task status updates and job state), `callbacks` (carrying out
//! a scheduler's commands), `allocation` (snapshot → allocator → offers),
//! `submit` (submissions and kills), `query` (read-only views), `recover`
//! (start-up from the store).

mod agents;
mod allocation;
mod callbacks;
mod query;
mod recover;
mod status;
mod submit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot};
use tonic::Status;
use wasmesos_allocator::Filter;
use wasmesos_api::proto::{self, MasterMessage, master_message};
use wasmesos_api::{AgentId, FrameworkId, OfferId, Principal, Resources, TaskId, TenantId};
use wasmesos_schedhost::{CallbackOutput, SchedHost};

use crate::commit::{CommitError, Committer};
use crate::config::MasterConfig;
use crate::framework::{Delivery, FrameworkActor};
use crate::modules::ModuleStore;

pub(crate) use query::Query;
pub(crate) use submit::ResolvedTask;

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

/// What the core is asked to do.
pub(crate) enum CoreMsg {
    AgentAttach {
        register: proto::RegisterAgent,
        conn: u64,
        tx: AgentTx,
        reply: oneshot::Sender<Result<AgentId, Status>>,
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
    /// `done` gets the delivery back if the commit failed (to redeliver).
    CallbackDone {
        framework: FrameworkId,
        delivery: Delivery,
        output: Box<CallbackOutput>,
        done: oneshot::Sender<Result<(), Delivery>>,
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
    Timer {
        framework: FrameworkId,
        id: String,
        generation: u64,
    },
    Query(Query),
}

/// How the rest of the master talks to the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::UnboundedSender<CoreMsg>,
    events: broadcast::Sender<ClusterEvent>,
    pub(crate) epoch: u64,
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
}

pub(crate) struct Core {
    cfg: Arc<MasterConfig>,
    committer: Committer,
    modules: ModuleStore,
    host: SchedHost,
    epoch: u64,
    advertise: String,
    started_ms: i64,
    agents: BTreeMap<AgentId, AgentEntry>,
    frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
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
}

/// Everything the core needs at start.
pub(crate) struct CoreParts {
    pub cfg: Arc<MasterConfig>,
    pub committer: Committer,
    pub modules: ModuleStore,
    pub host: SchedHost,
    pub epoch: u64,
    pub advertise: String,
}

/// Recovers the core from the store and starts its loop. The loop ends when
/// `shutdown` fires or a commit finds this master fenced out.
pub(crate) async fn start(
    parts: CoreParts,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(CoreHandle, tokio::task::JoinHandle<Result<(), CommitError>>), CommitError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let handle = CoreHandle {
        tx: tx.clone(),
        events: events.clone(),
        epoch: parts.epoch,
    };
    let mut core = Core {
        cfg: parts.cfg,
        committer: parts.committer,
        modules: parts.modules,
        host: parts.host,
        epoch: parts.epoch,
        advertise: parts.advertise,
        started_ms: wasmesos_api::now_ms(),
        agents: BTreeMap::new(),
        frameworks: BTreeMap::new(),
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
    };
    core.recover().await?;
    let join = tokio::spawn(async move { core.run(rx, shutdown).await });
    Ok((handle, join))
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<CoreMsg>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), CommitError> {
        let mut tick = tokio::time::interval(self.cfg.allocation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
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
                self.allocate();
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
            } => {
                let result = self.attach_agent(register, conn, tx).await;
                let fenced = matches!(&result, Err(AttachError::Commit(CommitError::Fenced)));
                let _ = reply.send(result.map_err(|e| e.status()));
                if fenced {
                    return Err(CommitError::Fenced);
                }
                Ok(())
            }
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
                done,
            } => self.callback_done(framework, delivery, *output, done).await,
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
                    }
                    self.allocation_pending = true;
                }
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

    /// Once per allocation interval: expire held offers, time out agents.
    async fn periodic(&mut self) -> Result<(), CommitError> {
        self.expire_holds();
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

/// Why an agent could not attach.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

impl AttachError {
    fn status(&self) -> Status {
        match self {
            AttachError::Refused(m) => Status::failed_precondition(m.clone()),
            AttachError::Commit(e) => Status::unavailable(e.to_string()),
        }
    }
}
