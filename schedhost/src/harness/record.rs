//! What a harness run records: every callback (its event, the commands it
//! returned and what became of them, its state writes, log lines, fuel, or
//! how it failed), notes on what the simulated cluster did between
//! callbacks, and the [`Report`] that sums a run up. Rust tests read these
//! typed; `to_json` gives the same as JSON (see `json`).

use std::collections::BTreeMap;
use std::time::Duration;

use wasmesos_api::{AgentId, OfferId, Resources, TaskId};

use super::error::HarnessError;
use crate::error::CallbackError;
use crate::event::{Command, Event};
use crate::state::{KvWrite, LogLine};

/// Everything a run did, in order.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub entries: Vec<Entry>,
}

/// One line of the record.
#[derive(Clone, Debug)]
pub enum Entry {
    Callback(Box<CallbackRecord>),
    Note(Note),
}

/// Something the harness did or checked between callbacks.
#[derive(Clone, Debug)]
pub struct Note {
    pub t_ms: u64,
    /// The script step (from 1) it belongs to; `None` at start.
    pub step: Option<usize>,
    pub text: String,
}

/// One callback.
#[derive(Clone, Debug)]
pub struct CallbackRecord {
    pub t_ms: u64,
    pub step: Option<usize>,
    pub event: Event,
    /// Which delivery of this event it was (from 1).
    pub attempt: u32,
    /// Set when the callback failed; nothing else of it took effect.
    pub failure: Option<CallbackFailure>,
    pub commands: Vec<Command>,
    /// Commands the host could not convert (bad ids, digests).
    pub rejected: Vec<String>,
    /// Tasks of launch commands refused by the simulated master.
    pub invalid: Vec<Invalid>,
    /// What each valid launch started.
    pub launches: Vec<LaunchOutcome>,
    /// Offers of this callback that lapsed (neither used nor held).
    pub lapsed: Vec<OfferId>,
    /// Commands that had no effect, and why (unknown offers, caps).
    pub notes: Vec<String>,
    pub reply: Option<Result<Vec<u8>, String>>,
    pub kv_writes: Vec<KvWrite>,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

impl CallbackRecord {
    pub(crate) fn new(t_ms: u64, step: Option<usize>, event: Event, attempt: u32) -> Self {
        Self {
            t_ms,
            step,
            event,
            attempt,
            failure: None,
            commands: Vec::new(),
            rejected: Vec::new(),
            invalid: Vec::new(),
            launches: Vec::new(),
            lapsed: Vec::new(),
            notes: Vec::new(),
            reply: None,
            kv_writes: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            fuel_used: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Invalid commands of this callback: refused tasks plus commands that
    /// did not convert.
    pub fn invalid_count(&self) -> usize {
        self.invalid.len() + self.rejected.len()
    }
}

/// How a callback failed.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackFailure {
    pub kind: FailureKind,
    pub message: String,
    /// False when this was the last attempt and the event was abandoned.
    pub retried: bool,
}

/// The kinds of callback failure the host reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Timeout,
    Fuel,
    Memory,
    /// Instantiating the component failed.
    Start,
    Other,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
            FailureKind::Start => "start",
            FailureKind::Other => "error",
        }
    }

    pub(crate) fn of(e: &CallbackError) -> Self {
        match e {
            CallbackError::Trap { .. } => FailureKind::Trap,
            CallbackError::TimedOut { .. } => FailureKind::Timeout,
            CallbackError::FuelExhausted { .. } => FailureKind::Fuel,
            CallbackError::MemoryExceeded { .. } => FailureKind::Memory,
            _ => FailureKind::Other,
        }
    }
}

/// A task of a launch command that the simulated master refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The command's index in the callback's output.
    pub command: usize,
    pub task: Option<TaskId>,
    pub reason: String,
}

/// What a valid launch command started.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchOutcome {
    pub command: usize,
    pub agent: AgentId,
    /// The tasks accepted (others are in `invalid`).
    pub tasks: Vec<TaskId>,
    /// What they take together.
    pub resources: Resources,
}

impl Record {
    pub fn callbacks(&self) -> impl Iterator<Item = &CallbackRecord> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Callback(c) => Some(&**c),
            Entry::Note(_) => None,
        })
    }

    pub fn notes(&self) -> impl Iterator<Item = &Note> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Note(n) => Some(n),
            Entry::Callback(_) => None,
        })
    }

    /// Callbacks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CallbackRecord> {
        self.callbacks().filter(|c| c.failure.is_some())
    }

    /// Invalid commands so far (see [`CallbackRecord::invalid_count`]).
    pub fn invalid_count(&self) -> usize {
        self.callbacks().map(CallbackRecord::invalid_count).sum()
    }

    /// Every task launched, in order.
    pub fn launched(&self) -> Vec<&TaskId> {
        self.callbacks()
            .flat_map(|c| c.launches.iter().flat_map(|l| l.tasks.iter()))
            .collect()
    }

    /// Every log line so far.
    pub fn logs(&self) -> impl Iterator<Item = &LogLine> {
        self.callbacks().flat_map(|c| c.logs.iter())
    }

    /// The reply to the latest message.
    pub fn last_reply(&self) -> Option<&Result<Vec<u8>, String>> {
        self.callbacks()
            .filter(|c| c.failure.is_none())
            .filter_map(|c| c.reply.as_ref())
            .last()
    }

    pub(crate) fn push(&mut self, record: CallbackRecord) {
        self.entries.push(Entry::Callback(Box::new(record)));
    }

    pub(crate) fn note(&mut self, t_ms: u64, step: Option<usize>, text: impl Into<String>) {
        self.entries.push(Entry::Note(Note {
            t_ms,
            step,
            text: text.into(),
        }));
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Report {
    pub record: Record,
    /// Why the run stopped early, if it did (a failed expectation, a step
    /// that could not be carried out, a scheduler that would not start).
    pub error: Option<HarnessError>,
    pub summary: Summary,
}

/// Counts over a run and the final state of the simulated cluster.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub t_ms: u64,
    pub callbacks: usize,
    pub failures: usize,
    pub invalid: usize,
    /// Events given up after every attempt failed.
    pub abandoned: usize,
    pub launched: usize,
    /// Tasks by state name, at the end.
    pub tasks: BTreeMap<String, usize>,
    /// Jobs by state name, at the end.
    pub jobs: BTreeMap<String, usize>,
    /// The script stated how many failures / invalid commands it expects.
    pub failures_expected: bool,
    pub invalid_expected: bool,
}

impl Report {
    /// Why the run did not pass; empty when it did.
    pub fn problems(&self) -> Vec<String> {
        let s = &self.summary;
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(e.to_string());
        }
        if s.failures > 0 && !s.failures_expected {
            out.push(format!(
                "the scheduler failed {} callback(s) ({} event(s) abandoned)",
                s.failures, s.abandoned
            ));
        }
        if s.invalid > 0 && !s.invalid_expected {
            out.push(format!(
                "the scheduler issued {} invalid command(s)",
                s.invalid
            ));
        }
        out
    }

    /// No error, and no failure or invalid command the script did not
    /// expect.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }
}
