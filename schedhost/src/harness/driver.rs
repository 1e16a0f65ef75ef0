//! The [`Harness`]: one scheduler instance driven as the master's framework
//! actor drives it (`master/src/framework.rs`): events one at a time, in
//! order; a callback's state writes committed and its commands carried out
//! when it returns; a failed callback's instance thrown away, a fresh one
//! started from the committed state and told `registered`, and the event
//! delivered again, up to [`HarnessConfig::max_attempts`] times before it
//! is abandoned; [`HarnessConfig::max_failures`] failures in a row and the
//! framework FAILED. Steps of the script are carried out in `execute`.

use std::collections::VecDeque;

use wasmesos_api::OfferId;
use wasmesos_api::proto::JobState;

use super::cluster::{Cluster, SimJob};
use super::config::HarnessConfig;
use super::error::HarnessError;
use super::record::{CallbackFailure, CallbackRecord, FailureKind, Record, Report, Summary};
use super::script::Script;
use super::step::Step;
use crate::event::{Event, Registration};
use crate::host::{SchedHost, SchedulerComponent};
use crate::instance::{CallbackOutput, SchedulerInstance};

/// An event on its way to the scheduler, with what the harness must finish
/// once its callback returns.
pub(crate) struct Delivery {
    pub(crate) event: Event,
    /// Offers the event hands over; those not used or held lapse.
    pub(crate) offers: Vec<OfferId>,
    /// For a submission: the job to create if the scheduler accepts it.
    pub(crate) job: Option<(String, u32)>,
}

impl Delivery {
    pub(crate) fn plain(event: Event) -> Self {
        Self {
            event,
            offers: Vec::new(),
            job: None,
        }
    }
}

/// Most callbacks one step may cause: a scheduler that answers every
/// status with a reconcile would otherwise never let a step end.
const MAX_CALLBACKS_PER_STEP: usize = 100_000;

/// A scheduler component running against a simulated cluster.
pub struct Harness {
    host: SchedHost,
    component: SchedulerComponent,
    pub(crate) config: HarnessConfig,
    pub(crate) cluster: Cluster,
    pub(crate) instance: Option<SchedulerInstance>,
    started_before: bool,
    pub(crate) record: Record,
    pub(crate) queue: VecDeque<Delivery>,
    /// The step being carried out (from 1).
    pub(crate) step: Option<usize>,
    steps_run: usize,
    callbacks_this_step: usize,
    abandoned: usize,
    /// Failed callbacks and starts since the last success.
    failures_in_a_row: u32,
    pub(crate) failures_expected: bool,
    pub(crate) invalid_expected: bool,
}

impl Harness {
    /// Builds the cluster, starts the scheduler and delivers `registered`.
    pub async fn start(
        host: &SchedHost,
        component: &SchedulerComponent,
        config: HarnessConfig,
    ) -> Result<Harness, HarnessError> {
        let mut harness = Harness::build(host, component, config)?;
        harness.boot().await?;
        Ok(harness)
    }

    fn build(
        host: &SchedHost,
        component: &SchedulerComponent,
        config: HarnessConfig,
    ) -> Result<Harness, HarnessError> {
        let mut cluster = Cluster::new(
            config.framework_id.clone(),
            config.role.clone(),
            config.start_ms,
        );
        for agent in &config.agents {
            cluster.add_agent(agent).map_err(HarnessError::Cluster)?;
        }
        Ok(Harness {
            host: host.clone(),
            component: component.clone(),
            config,
            cluster,
            instance: None,
            started_before: false,
            record: Record::default(),
            queue: VecDeque::new(),
            step: None,
            steps_run: 0,
            callbacks_this_step: 0,
            abandoned: 0,
            failures_in_a_row: 0,
            failures_expected: false,
            invalid_expected: false,
        })
    }

    async fn boot(&mut self) -> Result<(), HarnessError> {
        self.ensure_started().await?;
        self.drain().await
    }

    /// Carries out every step of `script`, stopping at the first error.
    pub async fn run(&mut self, script: &Script) -> Result<(), HarnessError> {
        for step in &script.steps {
            self.step(step).await?;
        }
        Ok(())
    }

    /// Carries out one step (numbered after the steps before it) and every
    /// callback it causes.
    pub async fn step(&mut self, step: &Step) -> Result<(), HarnessError> {
        self.steps_run += 1;
        self.step = Some(self.steps_run);
        self.callbacks_this_step = 0;
        self.execute(step).await?;
        self.drain().await
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Sums the run up; `error` is how it stopped, if early.
    pub fn report(&self, error: Option<HarnessError>) -> Report {
        let mut summary = Summary {
            t_ms: self.cluster.now_ms,
            callbacks: self.record.callbacks().count(),
            failures: self.record.failures().count(),
            invalid: self.record.invalid_count(),
            abandoned: self.abandoned,
            launched: self.record.launched().len(),
            failures_expected: self.failures_expected,
            invalid_expected: self.invalid_expected,
            ..Summary::default()
        };
        for t in self.cluster.tasks.values() {
            *summary.tasks.entry(t.state.name().to_string()).or_default() += 1;
        }
        for j in self.cluster.jobs.values() {
            *summary
                .jobs
                .entry(wasmesos_api::job_state_name(j.state).to_string())
                .or_default() += 1;
        }
        Report {
            record: self.record.clone(),
            error,
            summary,
        }
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.record.note(self.cluster.now_ms, self.step, text);
    }

    /// Delivers everything queued, in order.
    pub(crate) async fn drain(&mut self) -> Result<(), HarnessError> {
        while let Some(d) = self.queue.pop_front() {
            self.deliver(d).await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, d: Delivery) -> Result<(), HarnessError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.ensure_started().await? {
                // As in the master, a failed start gives up on everything
                // waiting, this event included.
                self.abandon(d, "the scheduler failed to start");
                return Ok(());
            }
            self.count_callback(d.event.name())?;
            let now = self.cluster.start_ms + self.cluster.now_ms;
            let instance = self.instance.as_mut().expect("started above");
            instance.set_clock(Some(now));
            match instance.call(&d.event).await {
                Ok(out) => {
                    self.complete(d, out, attempt);
                    return Ok(());
                }
                Err(e) => {
                    self.instance = None;
                    let last = attempt >= self.config.max_attempts;
                    let kind = FailureKind::of(&e);
                    let failure = self.fail(&d.event, attempt, kind, e.to_string(), last);
                    if last || failure.is_err() {
                        self.abandon(d, &format!("{attempt} failed attempt(s)"));
                        return failure;
                    }
                }
            }
        }
    }

    fn count_callback(&mut self, name: &str) -> Result<(), HarnessError> {
        self.callbacks_this_step += 1;
        if self.callbacks_this_step > MAX_CALLBACKS_PER_STEP {
            return Err(HarnessError::Step {
                step: self.step.unwrap_or(0),
                kind: "loop",
                reason: format!(
                    "more than {MAX_CALLBACKS_PER_STEP} callbacks in one step (the last: {name}): the scheduler seems to loop, e.g. reconciling on every status update"
                ),
            });
        }
        Ok(())
    }

    /// Unless an instance is running, starts one from the committed state
    /// and delivers `registered`, as the master's actor does: a failed
    /// start gives up on whatever is queued and tries again, until it
    /// starts or the framework FAILED. True when a start failed.
    pub(crate) async fn ensure_started(&mut self) -> Result<bool, HarnessError> {
        let mut tries = 0;
        while self.instance.is_none() {
            tries += 1;
            let registered = Event::Registered(Registration {
                framework_id: self.config.framework_id.clone(),
                name: self.config.name.clone(),
                role: self.config.role.clone(),
                config: self.config.config.clone(),
                reregistered: self.started_before || !self.cluster.kv.is_empty(),
            });
            self.count_callback("registered")?;
            let started = self
                .host
                .instantiate(&self.component, self.cluster.kv.clone())
                .await;
            let (kind, message) = match started {
                Err(e) => (FailureKind::Start, e.to_string()),
                Ok(mut instance) => {
                    self.started_before = true;
                    instance.set_clock(Some(self.cluster.start_ms + self.cluster.now_ms));
                    match instance.call(&registered).await {
                        Ok(out) => {
                            self.instance = Some(instance);
                            self.complete(Delivery::plain(registered), out, tries);
                            break;
                        }
                        Err(e) => (FailureKind::of(&e), e.to_string()),
                    }
                }
            };
            self.fail(&registered, tries, kind, message, false)?;
            while let Some(queued) = self.queue.pop_front() {
                self.abandon(queued, "the scheduler failed to start");
            }
        }
        Ok(tries > 1)
    }

    /// Records a failed callback (or start). Past `max_failures` in a row,
    /// the framework FAILED: the run stops.
    fn fail(
        &mut self,
        event: &Event,
        attempt: u32,
        kind: FailureKind,
        message: String,
        last: bool,
    ) -> Result<(), HarnessError> {
        self.failures_in_a_row += 1;
        let failed = self.failures_in_a_row >= self.config.max_failures;
        let mut rec = CallbackRecord::new(self.cluster.now_ms, self.step, event.clone(), attempt);
        rec.failure = Some(CallbackFailure {
            kind,
            message: message.clone(),
            retried: !(last || failed),
        });
        self.record.push(rec);
        if failed {
            self.note(format!(
                "the framework FAILED: {} failures in a row",
                self.failures_in_a_row
            ));
            return Err(HarnessError::SchedulerFailed {
                failures: self.failures_in_a_row,
                reason: message,
            });
        }
        Ok(())
    }

    /// The scheduler gave up on an event: its offers lapse, a submission is
    /// not accepted.
    fn abandon(&mut self, d: Delivery, why: &str) {
        self.abandoned += 1;
        for id in &d.offers {
            self.cluster.return_offer(id, self.config.default_refuse);
        }
        let what = match (&d.job, d.offers.len()) {
            (Some((job, _)), _) => format!("; job {job} was not created"),
            (None, 0) => String::new(),
            (None, n) => format!("; its {n} offer(s) lapse"),
        };
        self.note(format!("{} abandoned after {why}{what}", d.event.name()));
    }

    /// A callback returned: commit its writes, create an accepted job, carry
    /// out its commands, record it, and queue what it caused.
    fn complete(&mut self, d: Delivery, out: CallbackOutput, attempt: u32) {
        self.failures_in_a_row = 0;
        for (key, value) in &out.kv_writes {
            match value {
                Some(v) => self.cluster.kv.insert(key.clone(), v.clone()),
                None => self.cluster.kv.remove(key),
            };
        }
        if let (Some((id, max_attempts)), Some(Ok(_))) = (&d.job, &out.reply) {
            self.cluster.jobs.insert(
                id.clone(),
                SimJob {
                    id: id.clone(),
                    max_attempts: *max_attempts,
                    state: JobState::Queued,
                    attempts: Vec::new(),
                    exit_code: None,
                    message: String::new(),
                },
            );
        }
        let applied = self.cluster.apply(&self.config, &d.offers, &out.commands);
        let mut rec = CallbackRecord::new(self.cluster.now_ms, self.step, d.event, attempt);
        rec.commands = out.commands;
        rec.rejected = out.rejected;
        rec.invalid = applied.invalid;
        rec.launches = applied.launches;
        rec.lapsed = applied.lapsed;
        rec.notes = applied.notes;
        rec.reply = out.reply;
        rec.kv_writes = out.kv_writes;
        rec.logs = out.logs;
        rec.logs_dropped = out.logs_dropped;
        rec.fuel_used = out.fuel_used;
        rec.elapsed = out.elapsed;
        self.record.push(rec);
        self.queue
            .extend(applied.events.into_iter().map(Delivery::plain));
    }
}

/// Starts a harness with `config`, runs `script`'s steps, and reports. The
/// script's own cluster settings are not applied here: merge them into
/// `config` first ([`HarnessConfig::from_cluster`]).
pub async fn run_script(
    host: &SchedHost,
    component: &SchedulerComponent,
    config: HarnessConfig,
    script: &Script,
) -> Report {
    let mut harness = match Harness::build(host, component, config) {
        Ok(h) => h,
        Err(e) => {
            return Report {
                record: Record::default(),
                error: Some(e),
                summary: Summary::default(),
            };
        }
    };
    let error = match harness.boot().await {
        Ok(()) => harness.run(script).await.err(),
        Err(e) => Some(e),
    };
    harness.report(error)
}
