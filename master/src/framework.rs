//! One actor per framework: it owns the framework's scheduler instance and
//! delivers events to it one at a time, in order.
//!
//! For each event the actor calls the scheduler and hands the output to the
//! core, which commits it as one unit (merged with other changes) and holds
//! back its visible effects until then; the actor goes on with the next
//! event meanwhile. When a callback traps, the instance is thrown away, a
//! fresh one is started from the framework's state as the core will have
//! committed it (and told `registered`), and the event is delivered again —
//! up to [`MAX_ATTEMPTS`] times, after which it is abandoned (offers lapse, a
//! submitter gets an error). Repeated failures back off exponentially, so a
//! broken scheduler costs the master little. (A commit that fails stops the
//! whole master; the next one starts every scheduler from what committed.)

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use wasmesos_api::proto;
use wasmesos_api::{Digest, FrameworkId, OfferId, TenantId};
use wasmesos_schedhost::{Event, Registration, SchedHost, SchedulerComponent, SchedulerInstance};

use crate::commit::Committer;
use crate::core::CoreMsg;
use crate::keys;
use crate::modules::ModuleStore;

/// Deliveries of one event, at most.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A submission waiting for its framework's answer.
pub(crate) struct PendingSubmit {
    pub job: proto::Job,
    pub idempotency_key: String,
    pub reply: oneshot::Sender<Result<proto::SubmitResponse, Status>>,
}

/// What the core needs to finish an event's business once its callback
/// returned (or was abandoned).
pub(crate) enum Context {
    None,
    /// The offers this event carried; those not used or held lapse.
    Offers(Vec<OfferId>),
    Submit(Box<PendingSubmit>),
}

/// An event on its way to a scheduler.
pub(crate) struct Delivery {
    pub event: Event,
    pub context: Context,
    pub attempts: u32,
}

impl Delivery {
    pub fn plain(event: Event) -> Self {
        Self::with(event, Context::None)
    }

    pub fn with(event: Event, context: Context) -> Self {
        Self {
            event,
            context,
            attempts: 0,
        }
    }
}

enum ActorMsg {
    Deliver(Delivery),
    Stop,
}

/// Handle to a framework's actor.
pub(crate) struct FrameworkActor {
    tx: mpsc::UnboundedSender<ActorMsg>,
}

impl FrameworkActor {
    /// Queues an event. If the actor has stopped, the delivery is dropped,
    /// which fails any reply channel it carries.
    pub fn deliver(&self, delivery: Delivery) {
        let _ = self.tx.send(ActorMsg::Deliver(delivery));
    }

    pub fn stop(&self) {
        let _ = self.tx.send(ActorMsg::Stop);
    }
}

/// What an actor needs to run its framework.
pub(crate) struct ActorParams {
    pub id: FrameworkId,
    pub tenant: TenantId,
    pub record: proto::Framework,
    pub host: SchedHost,
    pub modules: ModuleStore,
    pub committer: Committer,
    pub core: mpsc::UnboundedSender<CoreMsg>,
}

/// Starts the actor of a framework.
pub(crate) fn spawn(params: ActorParams) -> FrameworkActor {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = Actor {
        p: params,
        rx,
        component: None,
        instance: None,
        retry: VecDeque::new(),
        failures: 0,
        started_before: false,
    };
    tokio::spawn(actor.run());
    FrameworkActor { tx }
}

struct Actor {
    p: ActorParams,
    rx: mpsc::UnboundedReceiver<ActorMsg>,
    component: Option<SchedulerComponent>,
    instance: Option<SchedulerInstance>,
    /// Deliveries to retry before taking new ones.
    retry: VecDeque<Delivery>,
    /// Consecutive failures, for the backoff.
    failures: u32,
    started_before: bool,
}

impl Actor {
    async fn run(mut self) {
        loop {
            if self.instance.is_none() {
                if self.failures > 0 && !self.backoff().await {
                    break;
                }
                if let Err(reason) = self.start().await {
                    self.failures += 1;
                    tracing::error!(framework = %self.p.record.name, "scheduler failed to start: {reason}");
                    self.health(false, format!("failed: {reason}"));
                    self.abandon_queued(&reason);
                    continue;
                }
                self.failures = 0;
                self.health(true, "running".into());
            }
            let delivery = match self.retry.pop_front() {
                Some(d) => d,
                None => match self.rx.recv().await {
                    Some(ActorMsg::Deliver(d)) => d,
                    Some(ActorMsg::Stop) | None => break,
                },
            };
            if let Err((mut delivery, reason)) = self.call(delivery).await {
                self.instance = None;
                self.failures += 1;
                delivery.attempts += 1;
                tracing::warn!(
                    framework = %self.p.record.name,
                    attempt = delivery.attempts,
                    "{reason}"
                );
                self.health(false, format!("restarting: {reason}"));
                if delivery.attempts >= MAX_ATTEMPTS {
                    self.abandon(delivery, &reason);
                } else {
                    self.retry.push_front(delivery);
                }
            }
        }
        tracing::debug!(framework = %self.p.record.name, "framework actor stopped");
    }

    /// Sleeps before a restart; false if told to stop meanwhile.
    async fn backoff(&mut self) -> bool {
        let exp = self.failures.saturating_sub(1).min(16);
        let delay = (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF);
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                msg = self.rx.recv() => match msg {
                    // Offers and submissions must not wait out a long
                    // backoff: a failing scheduler gets them back at once.
                    Some(ActorMsg::Deliver(d)) => self.abandon(d, "the scheduler is restarting after failures"),
                    Some(ActorMsg::Stop) | None => return false,
                },
            }
        }
    }

    /// Compiles (once), instantiates from the committed state, and delivers
    /// `registered`.
    async fn start(&mut self) -> Result<(), String> {
        if self.component.is_none() {
            let digest = Digest::parse(&self.p.record.module_digest).map_err(|e| e.to_string())?;
            let bytes = self
                .p
                .modules
                .read(&self.p.tenant, &digest)
                .await
                .map_err(|e| e.to_string())?;
            let host = self.p.host.clone();
            let component = tokio::task::spawn_blocking(move || host.compile(&bytes))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            self.component = Some(component);
        }
        let kv = load_state(&self.p.committer, &self.p.tenant, &self.p.id).await?;
        let reregistered = self.started_before || !kv.is_empty();
        let component = self.component.as_ref().expect("compiled above");
        let instance = self
            .p
            .host
            .instantiate(component, kv)
            .await
            .map_err(|e| e.to_string())?;
        self.instance = Some(instance);
        self.started_before = true;
        let registered = Delivery::plain(Event::Registered(Registration {
            framework_id: self.p.id.clone(),
            name: self.p.record.name.clone(),
            role: self.p.record.role.clone(),
            config: self
                .p
                .record
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            reregistered,
        }));
        if let Err((_, reason)) = self.call(registered).await {
            self.instance = None;
            return Err(reason);
        }
        Ok(())
    }

    /// One callback, its output handed to the core. On failure the delivery
    /// comes back with the reason.
    async fn call(&mut self, delivery: Delivery) -> Result<(), (Delivery, String)> {
        let Some(instance) = self.instance.as_mut() else {
            return Err((delivery, "the scheduler is not running".into()));
        };
        let output = match instance.call(&delivery.event).await {
            Ok(output) => output,
            Err(e) => return Err((delivery, e.to_string())),
        };
        let msg = CoreMsg::CallbackDone {
            framework: self.p.id.clone(),
            delivery,
            output: Box::new(output),
        };
        // An error only means the core is gone: the master is stopping.
        let _ = self.p.core.send(msg);
        Ok(())
    }

    fn abandon(&self, delivery: Delivery, reason: &str) {
        let _ = self.p.core.send(CoreMsg::CallbackAbandoned {
            framework: self.p.id.clone(),
            delivery,
            reason: reason.to_string(),
        });
    }

    fn abandon_queued(&mut self, reason: &str) {
        while let Some(d) = self.retry.pop_front() {
            self.abandon(d, reason);
        }
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                ActorMsg::Deliver(d) => self.abandon(d, reason),
                ActorMsg::Stop => {
                    // Put the stop back in effect: close the queue.
                    self.rx.close();
                }
            }
        }
    }

    fn health(&self, healthy: bool, status: String) {
        let _ = self.p.core.send(CoreMsg::FrameworkHealth {
            framework: self.p.id.clone(),
            healthy,
            status,
        });
    }
}

/// A framework's key-value state as the core will have committed it (its
/// pending writes included), keys without their prefix.
async fn load_state(
    committer: &Committer,
    tenant: &TenantId,
    id: &FrameworkId,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let prefix = keys::fw_kv_prefix(tenant, id);
    let all = committer
        .range_all(&prefix)
        .await
        .map_err(|e| format!("cannot load the framework's state: {e}"))?;
    Ok(all
        .into_iter()
        .map(|(k, v)| (k[prefix.len()..].to_string(), v))
        .collect())
}
