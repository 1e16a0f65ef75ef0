//! One actor per framework: it owns the framework's scheduler instance and
//! delivers events to it one at a time, in order, on the scheduler host's own
//! worker threads.
//!
//! For each event the actor calls the scheduler and hands the output to the
//! core, which commits it as one unit (merged with other changes) and holds
//! back its visible effects until then; the actor goes on with the next
//! event meanwhile. When a callback traps or breaks a limit, the instance is
//! thrown away, a fresh one is started from the framework's state as the core
//! will have committed it (and told `registered`), and the event is delivered
//! again — up to [`MAX_ATTEMPTS`] times, after which it is abandoned (offers
//! lapse, a submitter gets an error). Failures back off exponentially; after
//! [`MAX_FAILURES`] in a row the framework is FAILED: it gets no more events
//! until an upgrade. A framework that uses more callback time than its share
//! per second waits before its next callback. (A commit that fails stops the
//! whole master; the next one starts every scheduler from what committed.)

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

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
/// Failures in a row after which a framework is FAILED.
pub(crate) const MAX_FAILURES: u32 = 6;
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
    /// A message from `framework send`, waiting for the reply.
    Message(oneshot::Sender<Result<proto::SendMessageResponse, Status>>),
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

/// A new scheduler for a running framework.
pub(crate) struct Upgrade {
    pub record: proto::Framework,
    pub component: SchedulerComponent,
    /// Told whether the new scheduler took over.
    pub done: oneshot::Sender<Result<(), String>>,
}

enum ActorMsg {
    Deliver(Delivery),
    Upgrade(Box<Upgrade>),
    /// Its tenant's callback limits changed.
    Limits(wasmesos_schedhost::InstanceLimits),
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

    /// Asks the actor to swap in a new scheduler, keeping the state.
    pub fn upgrade(&self, upgrade: Upgrade) {
        if let Err(mpsc::error::SendError(ActorMsg::Upgrade(u))) =
            self.tx.send(ActorMsg::Upgrade(Box::new(upgrade)))
        {
            let _ = u.done.send(Err("the framework is stopping".into()));
        }
    }

    /// New callback limits from its tenant: the scheduler is started
    /// again under them (from its committed state) before its next
    /// callback. A memory cap belongs to the instance's store, so it
    /// cannot change under a running instance.
    pub fn set_limits(&self, limits: wasmesos_schedhost::InstanceLimits) {
        let _ = self.tx.send(ActorMsg::Limits(limits));
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
    /// Its tenant's limits on each callback, below the host's.
    pub limits: wasmesos_schedhost::InstanceLimits,
}

/// Starts the actor of a framework on the scheduler workers.
pub(crate) fn spawn(params: ActorParams) -> FrameworkActor {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = params.host.config().cpu_per_second;
    let host = params.host.clone();
    let actor = Actor {
        p: params,
        rx,
        component: None,
        instance: None,
        retry: VecDeque::new(),
        failures: 0,
        failed: None,
        started_before: false,
        budget: Budget::new(budget),
        pending_upgrade: None,
    };
    host.spawn(actor.run());
    FrameworkActor { tx }
}

struct Actor {
    p: ActorParams,
    rx: mpsc::UnboundedReceiver<ActorMsg>,
    component: Option<SchedulerComponent>,
    instance: Option<SchedulerInstance>,
    /// Deliveries to retry before taking new ones.
    retry: VecDeque<Delivery>,
    /// Failures in a row, for the backoff and the FAILED verdict.
    failures: u32,
    /// Why the framework FAILED, once it has.
    failed: Option<String>,
    started_before: bool,
    budget: Budget,
    /// An upgrade that arrived while deliveries were being abandoned.
    pending_upgrade: Option<Box<Upgrade>>,
}

impl Actor {
    async fn run(mut self) {
        loop {
            if let Some(u) = self.pending_upgrade.take() {
                self.upgrade(u).await;
                continue;
            }
            if self.instance.is_none() && self.failed.is_none() {
                if self.failures > 0 && !self.backoff().await {
                    break;
                }
                if let Err(reason) = self.start().await {
                    self.fail(&format!("cannot start: {reason}"));
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
                    Some(ActorMsg::Upgrade(u)) => {
                        self.upgrade(u).await;
                        continue;
                    }
                    Some(ActorMsg::Limits(limits)) => {
                        self.set_limits(limits);
                        continue;
                    }
                    Some(ActorMsg::Stop) | None => break,
                },
            };
            if let Some(reason) = &self.failed {
                let reason =
                    format!("the framework has FAILED ({reason}); upgrade it to a fixed scheduler");
                self.abandon(delivery, &reason);
                continue;
            }
            self.budget.wait().await;
            let started = Instant::now();
            let result = match self.instance.as_mut() {
                Some(instance) => call(&self.p, instance, delivery).await,
                None => Err((delivery, "the scheduler is not running".into())),
            };
            self.budget.spend(started.elapsed());
            match result {
                Ok(()) => self.failures = 0,
                Err((mut delivery, reason)) => {
                    self.instance = None;
                    delivery.attempts += 1;
                    self.fail(&reason);
                    if delivery.attempts >= MAX_ATTEMPTS || self.failed.is_some() {
                        self.abandon(delivery, &reason);
                    } else {
                        self.retry.push_front(delivery);
                    }
                }
            }
        }
        tracing::debug!(framework = %self.p.record.name, "framework actor stopped");
    }

    /// Records a failure; after [`MAX_FAILURES`] in a row the framework
    /// FAILED.
    fn fail(&mut self, reason: &str) {
        self.failures += 1;
        self.log("error", reason.to_string());
        if self.failures >= MAX_FAILURES {
            let verdict = format!("{} failures in a row, the last: {reason}", self.failures);
            tracing::error!(framework = %self.p.record.name, "FAILED: {verdict}");
            self.health(false, format!("FAILED: {verdict}"));
            self.failed = Some(verdict);
            self.instance = None;
        } else {
            tracing::warn!(framework = %self.p.record.name, "{reason}");
            self.health(false, format!("restarting: {reason}"));
        }
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
                    Some(ActorMsg::Upgrade(u)) => {
                        self.upgrade(u).await;
                        if self.instance.is_some() {
                            return true;
                        }
                    }
                    Some(ActorMsg::Limits(limits)) => self.set_limits(limits),
                    Some(ActorMsg::Stop) | None => return false,
                },
            }
        }
    }

    /// Takes its tenant's new callback limits: the running instance is
    /// dropped so the next one starts under them from the committed state,
    /// and a framework that FAILED (perhaps under the old limits) is given
    /// another start.
    fn set_limits(&mut self, limits: wasmesos_schedhost::InstanceLimits) {
        if limits == self.p.limits {
            return;
        }
        self.p.limits = limits;
        self.log(
            "info",
            format!("its tenant's callback limits changed ({limits:?}); the scheduler restarts under them"),
        );
        self.instance = None;
        if self.failed.take().is_some() {
            self.failures = 0;
        }
    }

    /// Compiles (once), instantiates from the committed state, and delivers
    /// `registered`.
    async fn start(&mut self) -> Result<(), String> {
        let component = match &self.component {
            Some(c) => c.clone(),
            None => {
                let c = load_component(&self.p, &self.p.record.module_digest).await?;
                self.component = Some(c.clone());
                c
            }
        };
        let instance = self.instantiate(&component).await?;
        self.instance = Some(instance);
        Ok(())
    }

    /// A fresh instance that has been told `registered` (and whose answer
    /// went to the core).
    async fn instantiate(
        &mut self,
        component: &SchedulerComponent,
    ) -> Result<SchedulerInstance, String> {
        let kv = load_state(&self.p.committer, &self.p.tenant, &self.p.id).await?;
        let reregistered = self.started_before || !kv.is_empty();
        let mut instance = self
            .p
            .host
            .instantiate_limited(component, kv, self.p.limits)
            .await
            .map_err(|e| e.to_string())?;
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
        call(&self.p, &mut instance, registered)
            .await
            .map_err(|(_, reason)| reason)?;
        self.started_before = true;
        Ok(instance)
    }

    /// Starts the new scheduler beside the old one; only if it starts does
    /// it take over.
    async fn upgrade(&mut self, u: Box<Upgrade>) {
        let u = *u;
        let old_record = std::mem::replace(&mut self.p.record, u.record);
        match self.instantiate(&u.component).await {
            Ok(instance) => {
                self.instance = Some(instance);
                self.component = Some(u.component);
                self.failures = 0;
                self.failed = None;
                self.log(
                    "info",
                    format!("upgraded to {}", self.p.record.module_digest),
                );
                self.health(true, "running".into());
                let _ = u.done.send(Ok(()));
            }
            Err(reason) => {
                self.p.record = old_record;
                self.log(
                    "warn",
                    format!("upgrade refused, the old scheduler keeps running: {reason}"),
                );
                let _ = u.done.send(Err(reason));
            }
        }
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
                // Not dropped with the deliveries: an upgrade is how a
                // failing framework gets fixed.
                ActorMsg::Upgrade(u) => self.pending_upgrade = Some(u),
                ActorMsg::Limits(limits) => self.p.limits = limits,
                ActorMsg::Stop => self.rx.close(),
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

    fn log(&self, level: &'static str, message: String) {
        let _ = self.p.core.send(CoreMsg::FrameworkLog {
            framework: self.p.id.clone(),
            level,
            message,
        });
    }
}

/// One callback, its output handed to the core. On failure the delivery
/// comes back with the reason.
async fn call(
    p: &ActorParams,
    instance: &mut SchedulerInstance,
    delivery: Delivery,
) -> Result<(), (Delivery, String)> {
    let output = match instance.call(&delivery.event).await {
        Ok(output) => output,
        Err(e) => return Err((delivery, e.to_string())),
    };
    let msg = CoreMsg::CallbackDone {
        framework: p.id.clone(),
        delivery,
        output: Box::new(output),
    };
    // An error only means the core is gone: the master is stopping.
    let _ = p.core.send(msg);
    Ok(())
}

/// The compiled scheduler of `digest` (compiled once per digest by the
/// host, off the async threads).
pub(crate) async fn load_component(
    p: &ActorParams,
    digest: &str,
) -> Result<SchedulerComponent, String> {
    let parsed = Digest::parse(digest).map_err(|e| e.to_string())?;
    let bytes = p
        .modules
        .read(&p.tenant, &parsed)
        .await
        .map_err(|e| e.to_string())?;
    let host = p.host.clone();
    let key = digest.to_string();
    tokio::task::spawn_blocking(move || host.compile_cached(&key, &bytes))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
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

/// Callback time a framework may still use: refilled at `rate` per second,
/// up to one second's worth. When spent, the next callback waits.
struct Budget {
    rate: Duration,
    left: f64,
    at: Instant,
}

impl Budget {
    fn new(rate: Duration) -> Self {
        Self {
            rate,
            left: rate.as_secs_f64(),
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let cap = self.rate.as_secs_f64();
        self.left = (self.left + now.duration_since(self.at).as_secs_f64() * cap).min(cap);
        self.at = now;
    }

    async fn wait(&mut self) {
        self.refill();
        if self.left < 0.0 && !self.rate.is_zero() {
            let secs = -self.left / self.rate.as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            self.refill();
        }
    }

    fn spend(&mut self, used: Duration) {
        self.refill();
        self.left -= used.as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_framework_over_its_budget_waits_for_it_to_refill() {
        let mut budget = Budget::new(Duration::from_millis(500));
        // Within budget: no wait.
        let t0 = Instant::now();
        budget.wait().await;
        assert_eq!(Instant::now(), t0);
        // A callback that used 800 ms leaves the budget 300 ms short, which
        // takes 0.6 s to refill at 500 ms per second.
        budget.spend(Duration::from_millis(800));
        budget.wait().await;
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_millis(590) && waited <= Duration::from_millis(610),
            "{waited:?}"
        );
        // Idle time refills it, but never beyond one second's worth.
        tokio::time::advance(Duration::from_secs(10)).await;
        budget.refill();
        assert!((budget.left - 0.5).abs() < 1e-9);
    }
}
