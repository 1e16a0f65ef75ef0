//! Running one task: its spec, the instance ready to run, and how it ended.
//!
//! Limits are enforced here:
//! - memory by the store's [`TaskLimiter`](crate::limits) (a refusal followed
//!   by a failure is `MemoryExceeded`);
//! - fuel by the store's fuel (`OutOfFuel` trap → `FuelExhausted`);
//! - time by a tokio timer raced against the call; the call yields at every
//!   epoch tick (`epoch_deadline_async_yield_and_update`), so the timer, a
//!   kill and other tasks on the same thread all get their turn;
//! - kill by a `CancellationToken` raced the same way;
//! - CPU by [`accounted`](crate::cpu): every poll of the call is charged
//!   to the task, and a task over its [`CpuQuota`] waits before its next.

use crate::cpu::{CpuMeter, CpuQuota, accounted};
use crate::engine::Metering;
use crate::logs::LogFile;
use crate::sandbox::HasLimits;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, Trap, TypedFunc};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::Command;

use crate::sandbox::{ComponentState, ModuleState};

/// Everything a task needs besides its program.
#[derive(Debug)]
pub struct RunSpec {
    /// `argv`; `argv[0]` is the task's name.
    pub args: Vec<String>,
    /// The environment, exactly: nothing is inherited from the agent.
    pub env: Vec<(String, String)>,
    /// The task's only filesystem, preopened as `/` (so `foo` and `/foo`
    /// both resolve inside it). The caller creates it. `None`: the task
    /// has no filesystem at all (every path fails to open).
    pub sandbox: Option<PathBuf>,
    /// Cap on linear memories plus tables (clamped to the runtime's
    /// `max_memory_bytes`).
    pub mem_bytes: u64,
    /// `Some(n)`: running out of it fails the task; the program must be
    /// compiled for [`Metering::Fuel`]. `None`: no limit (and, on the
    /// epoch-only engine, no fuel counted: `fuel_consumed` is 0).
    pub fuel: Option<u64>,
    /// The task's share of the agent's cpus; `None`: no quota (it still
    /// yields at every epoch tick).
    pub cpu: Option<CpuQuota>,
    /// Wall-time limit; `None`: the runtime's default.
    pub timeout: Option<Duration>,
    /// Where the task's stdout goes.
    pub stdout: LogFile,
    /// Where the task's stderr goes.
    pub stderr: LogFile,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Exit {
    /// It returned from its entry point (code 0) or called `proc_exit`/`exit`.
    Exited(i32),
    /// It trapped: the message says why ("stack overflow", "wasm
    /// `unreachable` instruction executed", …).
    Trapped(String),
    /// It used all the fuel it was given.
    FuelExhausted {
        /// Fuel consumed (the whole budget).
        consumed: u64,
    },
    /// It failed after being refused memory beyond its cap.
    MemoryExceeded {
        /// The cap in bytes.
        limit: u64,
    },
    /// It ran past its wall-time limit and was stopped.
    TimedOut(Duration),
    /// It was killed through its cancellation token.
    Killed,
    /// The process running it died under it (only with process isolation:
    /// e.g. the kernel's OOM killer ended its executor at its cgroup's
    /// memory limit); the text says how, for people.
    ProcessDied(String),
}

impl Exit {
    /// The exit code, if it exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Exit::Exited(code) => Some(*code),
            _ => None,
        }
    }

    /// Whether it exited with code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, Exit::Exited(0))
    }

    /// A sentence for people: "exited with code 3", "fuel exhausted after N
    /// units", "memory limit 64MiB exceeded", "timed out after 30s",
    /// "trapped: …", "killed".
    pub fn message(&self) -> String {
        match self {
            Exit::Exited(code) => format!("exited with code {code}"),
            Exit::Trapped(why) => format!("trapped: {why}"),
            Exit::FuelExhausted { consumed } => format!("fuel exhausted after {consumed} units"),
            Exit::MemoryExceeded { limit } => {
                format!(
                    "memory limit {} exceeded",
                    wasmesos_api::format_size(*limit)
                )
            }
            Exit::TimedOut(after) => format!("timed out after {}", format_duration(*after)),
            Exit::Killed => "killed".to_string(),
            Exit::ProcessDied(how) => how.clone(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// `30s`, `250ms`, `1.5s`.
fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// What a task used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Fuel consumed (about one unit per WebAssembly instruction); 0 for a
    /// task run on the epoch-only engine, which does not count fuel.
    pub fuel_consumed: u64,
    /// Wall time from instantiation to the end.
    pub wall: Duration,
    /// CPU time of the task's own thread while it ran (WebAssembly and the
    /// host functions it called).
    pub cpu: Duration,
    /// Wall time it was held back because it had used its CPU quota.
    pub cpu_throttled: Duration,
    /// The most memory (linear memories plus tables) it held at once.
    pub peak_mem_bytes: u64,
    /// Bytes of stdout kept in its log.
    pub stdout_bytes: u64,
    /// Bytes of stderr kept in its log.
    pub stderr_bytes: u64,
    /// Bytes written to either stream beyond the log caps and dropped.
    pub log_bytes_dropped: u64,
}

/// How a task ended and what it used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunOutcome {
    /// How it ended.
    pub exit: Exit,
    /// What it used.
    pub usage: Usage,
}

/// A task's two logs, with counters as they were at the start; closed when
/// the task is done (including when it never runs).
pub(crate) struct TaskLogs {
    stdout: LogFile,
    stderr: LogFile,
    base: [u64; 3],
}

impl TaskLogs {
    pub(crate) fn new(stdout: LogFile, stderr: LogFile) -> TaskLogs {
        let base = [
            stdout.kept(),
            stderr.kept(),
            stdout.dropped() + stderr.dropped(),
        ];
        TaskLogs {
            stdout,
            stderr,
            base,
        }
    }

    /// Closes both logs and fills the log fields of `usage`.
    pub(crate) fn finish(&self, usage: &mut Usage) {
        self.stdout.close();
        self.stderr.close();
        usage.stdout_bytes = self.stdout.kept() - self.base[0];
        usage.stderr_bytes = self.stderr.kept() - self.base[1];
        usage.log_bytes_dropped = self.stdout.dropped() + self.stderr.dropped() - self.base[2];
    }
}

impl Drop for TaskLogs {
    fn drop(&mut self) {
        self.stdout.close();
        self.stderr.close();
    }
}

/// The store and entry point of an instantiated task.
pub(crate) enum Entry {
    Module {
        store: Store<ModuleState>,
        start: TypedFunc<(), ()>,
    },
    Component {
        store: Store<ComponentState>,
        command: Command,
    },
}

/// A task instantiated and ready to [`run`](Instance::run). Dropping it
/// without running closes its logs.
pub struct Instance {
    pub(crate) entry: Entry,
    pub(crate) meter: Meter,
    pub(crate) cpu: CpuMeter,
    pub(crate) logs: TaskLogs,
    /// The task's place in the pool, given back when it ends.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("timeout", &self.meter.timeout)
            .finish_non_exhaustive()
    }
}

/// Budget and clock of one task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
    /// The engine: fuel is counted only on [`Metering::Fuel`].
    pub(crate) engine: Metering,
    pub(crate) fuel: u64,
    /// Whether the task has a fuel limit (running out fails it).
    pub(crate) metered: bool,
}

/// How a call into the task ended, before classification.
pub(crate) enum Ended<R = i32> {
    Returned(wasmtime::Result<R>),
    TimedOut,
    Killed,
}

impl<R> Ended<R> {
    /// The same ending with the returned value (if any) forgotten.
    pub(crate) fn discard(self) -> Ended {
        match self {
            Ended::Returned(r) => Ended::Returned(r.map(|_| 0)),
            Ended::TimedOut => Ended::TimedOut,
            Ended::Killed => Ended::Killed,
        }
    }
}

impl Instance {
    /// Runs the task to its end: exit, trap, exhausted fuel or memory,
    /// timeout, or `cancel` (→ [`Exit::Killed`]). Closes its logs.
    pub async fn run(self, cancel: CancellationToken) -> RunOutcome {
        let Instance {
            entry,
            meter,
            mut cpu,
            logs,
            permit,
        } = self;
        let remaining = meter.timeout.saturating_sub(meter.started.elapsed());
        let (exit, mut usage) = match entry {
            Entry::Module { mut store, start } => {
                let call = async { start.call_async(&mut store, ()).await.map(|()| 0) };
                let ended = race(accounted(call, &mut cpu), remaining, &cancel).await;
                conclude(&store, &meter, &cpu, ended)
            }
            Entry::Component { mut store, command } => {
                let call = async {
                    let result = command.wasi_cli_run().call_run(&mut store).await?;
                    Ok(if result.is_ok() { 0 } else { 1 })
                };
                let ended = race(accounted(call, &mut cpu), remaining, &cancel).await;
                conclude(&store, &meter, &cpu, ended)
            }
        };
        logs.finish(&mut usage);
        drop(permit);
        tracing::debug!(exit = %exit, ?usage, "task ended");
        RunOutcome { exit, usage }
    }
}

/// Runs `call` until it returns, `timeout` passes or `cancel` fires.
pub(crate) async fn race<F, R>(call: F, timeout: Duration, cancel: &CancellationToken) -> Ended<R>
where
    F: Future<Output = wasmtime::Result<R>>,
{
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ended::Killed,
        result = call => Ended::Returned(result),
        _ = tokio::time::sleep(timeout) => Ended::TimedOut,
    }
}

/// Classifies how the task ended and collects the store's usage figures.
pub(crate) fn conclude<T: HasLimits>(
    store: &Store<T>,
    meter: &Meter,
    cpu: &CpuMeter,
    ended: Ended,
) -> (Exit, Usage) {
    let consumed = match meter.engine {
        Metering::Fuel => meter.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
        Metering::EpochOnly => 0,
    };
    let limits = store.data().limits();
    let usage = Usage {
        fuel_consumed: consumed,
        wall: meter.started.elapsed(),
        cpu: cpu.used(),
        cpu_throttled: cpu.throttled(),
        peak_mem_bytes: limits.peak(),
        ..Usage::default()
    };
    let exit = match ended {
        Ended::Killed => Exit::Killed,
        Ended::TimedOut => Exit::TimedOut(meter.timeout),
        Ended::Returned(Ok(0)) => Exit::Exited(0),
        Ended::Returned(Ok(code)) => memory_or(limits, Exit::Exited(code)),
        Ended::Returned(Err(e)) => classify(&e, limits, meter, consumed),
    };
    (exit, usage)
}

/// `MemoryExceeded` if the task was refused memory before failing,
/// otherwise `exit`.
fn memory_or(limits: &crate::limits::TaskLimiter, exit: Exit) -> Exit {
    if limits.exceeded() {
        Exit::MemoryExceeded {
            limit: limits.limit(),
        }
    } else {
        exit
    }
}

/// Turns an error out of wasm into an [`Exit`].
pub(crate) fn classify(
    error: &wasmtime::Error,
    limits: &crate::limits::TaskLimiter,
    meter: &Meter,
    consumed: u64,
) -> Exit {
    if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
        return match code {
            0 => Exit::Exited(0),
            code => memory_or(limits, Exit::Exited(*code)),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) if meter.metered => Exit::FuelExhausted { consumed },
        Some(Trap::StackOverflow) => memory_or(limits, Exit::Trapped("stack overflow".into())),
        Some(trap) => {
            let why = trap.to_string();
            let why = why.strip_prefix("wasm trap: ").unwrap_or(&why).to_string();
            memory_or(limits, Exit::Trapped(why))
        }
        None => memory_or(limits, Exit::Trapped(format!("{error:#}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(Exit::Exited(3).message(), "exited with code 3");
        assert_eq!(
            Exit::FuelExhausted { consumed: 7 }.message(),
            "fuel exhausted after 7 units"
        );
        assert_eq!(
            Exit::MemoryExceeded { limit: 64 << 20 }.message(),
            "memory limit 64MiB exceeded"
        );
        assert_eq!(
            Exit::TimedOut(Duration::from_secs(30)).message(),
            "timed out after 30s"
        );
        assert_eq!(
            Exit::TimedOut(Duration::from_millis(250)).message(),
            "timed out after 250ms"
        );
        assert_eq!(Exit::Killed.message(), "killed");
        assert_eq!(
            Exit::Trapped("stack overflow".into()).to_string(),
            "trapped: stack overflow"
        );
        assert!(Exit::Exited(0).is_success());
        assert!(!Exit::Exited(1).is_success());
        assert_eq!(Exit::Exited(1).exit_code(), Some(1));
        assert_eq!(Exit::Killed.exit_code(), None);
    }
}
