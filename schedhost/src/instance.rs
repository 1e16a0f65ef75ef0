//! One running scheduler: its store and bindings. [`SchedulerInstance::call`]
//! delivers one event under the callback limits and returns the commands,
//! the reply (for messages), and the key-value writes and log lines the
//! callback made — everything the master must commit as one transaction.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap};

use crate::bindings::Scheduler;
use crate::config::SchedHostConfig;
use crate::error::CallbackError;
use crate::event::{Command, Event};
use crate::state::{KvWrite, LogLine, SchedState};

/// What a completed callback produced.
#[derive(Debug, Default)]
pub struct CallbackOutput {
    /// Commands in the order the scheduler returned them.
    pub commands: Vec<Command>,
    /// Commands that did not convert (bad ids, digests), with the reason.
    pub rejected: Vec<String>,
    /// For a message: the reply body, or the scheduler's refusal.
    pub reply: Option<Result<Vec<u8>, String>>,
    /// Durable state writes to commit with the commands (`None` deletes).
    pub kv_writes: Vec<KvWrite>,
    pub logs: Vec<LogLine>,
    /// Log lines dropped because the callback wrote more than its share.
    pub logs_dropped: u64,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

pub(crate) struct StoreData {
    pub(crate) state: SchedState,
    pub(crate) limiter: Limiter,
    /// When the current callback's time is up (read by the epoch callback).
    pub(crate) deadline: Instant,
}

/// Caps linear memory and tables, remembering whether a growth was refused
/// so a trap can be reported as "memory limit exceeded".
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(crate) exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(config: &SchedHostConfig) -> Self {
        Self {
            memory_bytes: config.memory_bytes as usize,
            table_elements: config.table_elements,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("scheduler memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("scheduler table limit exceeded"));
        }
        Ok(true)
    }
}

/// Turns a wasmtime error from a callback into the reason it failed.
pub(crate) fn classify(
    callback: &'static str,
    error: &wasmtime::Error,
    store: &Store<StoreData>,
    config: &SchedHostConfig,
) -> CallbackError {
    if store.data().limiter.exceeded {
        return CallbackError::MemoryExceeded {
            callback,
            limit: config.memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallbackError::TimedOut {
            callback,
            limit: config.callback_timeout,
        },
        Some(Trap::OutOfFuel) => CallbackError::FuelExhausted {
            callback,
            fuel: config.fuel_per_callback,
        },
        _ => CallbackError::Trap {
            callback,
            message: trap_message(error, store),
        },
    }
}

/// The trap, preceded by what the guest wrote to stderr during the callback:
/// a panic's message is printed there just before the trap it causes, and
/// is the part the scheduler's author needs.
fn trap_message(error: &wasmtime::Error, store: &Store<StoreData>) -> String {
    // The trap itself, without wasmtime's backtrace of unnamed functions.
    let trap = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    match panic_message(&store.data().state.stderr.text()) {
        Some(said) => format!("{said} ({trap})"),
        None => trap,
    }
}

/// What a guest said on stderr before trapping, on one line: a Rust panic
/// (`thread '…' panicked at FILE:LINE:COL:` then the message) reads
/// `panicked at FILE:LINE:COL: message`; Rust's hint about backtraces is
/// dropped.
fn panic_message(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(" ");
    Some(match joined.find("panicked at ") {
        Some(at) => joined[at..].to_string(),
        None => joined,
    })
}

/// A scheduler ready to receive events, one at a time.
pub struct SchedulerInstance {
    store: Store<StoreData>,
    bindings: Scheduler,
    config: SchedHostConfig,
    poisoned: bool,
}

impl SchedulerInstance {
    pub(crate) fn new(
        store: Store<StoreData>,
        bindings: Scheduler,
        config: SchedHostConfig,
    ) -> Self {
        Self {
            store,
            bindings,
            config,
            poisoned: false,
        }
    }

    /// Delivers `event`. On error the instance is poisoned: the caller must
    /// instantiate the scheduler again before delivering anything else.
    pub async fn call(&mut self, event: &Event) -> Result<CallbackOutput, CallbackError> {
        if self.poisoned {
            return Err(CallbackError::Poisoned);
        }
        let callback = event.name();
        self.store.data().state.stderr.clear();
        let budget = self.config.fuel_per_callback;
        let started = Instant::now();
        self.store.data_mut().deadline = started + self.config.callback_timeout;
        self.store.set_epoch_deadline(1);
        if let Err(e) = self.store.set_fuel(budget) {
            self.poisoned = true;
            return Err(CallbackError::Trap {
                callback,
                message: e.to_string(),
            });
        }

        let result = self.dispatch(event).await;
        let fuel_used = budget.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let elapsed = started.elapsed();
        match result {
            Ok((raw, reply)) => {
                let (kv_writes, logs, logs_dropped) = self.store.data_mut().state.finish_callback();
                let mut commands = Vec::with_capacity(raw.len());
                let mut rejected = Vec::new();
                for c in raw {
                    match Command::from_wit(c) {
                        Ok(c) => commands.push(c),
                        Err(reason) => rejected.push(reason),
                    }
                }
                Ok(CallbackOutput {
                    commands,
                    rejected,
                    reply,
                    kv_writes,
                    logs,
                    logs_dropped,
                    fuel_used,
                    elapsed,
                })
            }
            Err(e) => {
                self.poisoned = true;
                self.store.data_mut().state.abort_callback();
                Err(classify(callback, &e, &self.store, &self.config))
            }
        }
    }

    /// Makes the scheduler's `clock` import answer `now_ms` (simulated
    /// time, for the offline harness); `None` goes back to the real clock.
    pub fn set_clock(&mut self, now_ms: Option<u64>) {
        self.store.data_mut().state.clock = now_ms;
    }

    /// Whether a failed callback left this instance unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    async fn dispatch(&mut self, event: &Event) -> wasmtime::Result<Dispatched> {
        use crate::bindings::wasmesos::scheduler::types as wit;
        let store = &mut self.store;
        let b = &self.bindings;
        let commands = match event {
            Event::Registered(r) => b.call_registered(store, &r.to_wit()).await?,
            Event::Offers(offers) => {
                let offers: Vec<wit::Offer> = offers.iter().map(|o| o.to_wit()).collect();
                b.call_offers(store, &offers).await?
            }
            Event::OfferRescinded(id) => b.call_offer_rescinded(store, id.as_str()).await?,
            Event::StatusUpdate(s) => b.call_status_update(store, &s.to_wit()).await?,
            Event::Message(m) => {
                return Ok(match b.call_message(store, &m.to_wit()).await? {
                    Ok(reply) => (reply.commands, Some(Ok(reply.body))),
                    Err(refusal) => (Vec::new(), Some(Err(refusal))),
                });
            }
            Event::AgentLost(a) => b.call_agent_lost(store, a.as_str()).await?,
            Event::Timer(id) => b.call_timer(store, id).await?,
        };
        Ok((commands, None))
    }
}

type Dispatched = (
    Vec<crate::bindings::wasmesos::scheduler::types::Command>,
    Option<Result<Vec<u8>, String>>,
);

impl wasmtime_wasi::WasiView for StoreData {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        self.state.ctx()
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panics_read_on_one_line() {
        let stderr = "thread '<unnamed>' (1) panicked at chaos/src/lib.rs:94:26:\nchaos: trap requested\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "panicked at chaos/src/lib.rs:94:26: chaos: trap requested"
        );
        assert_eq!(panic_message("  \n"), None);
        assert_eq!(panic_message("plain words").unwrap(), "plain words");
    }
}
