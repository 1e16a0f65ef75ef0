//! The scalar values scripts are written in: durations ("5s"), sizes
//! ("64MiB"), resources ("cpus:0.5,mem:64MiB") and task and job states by
//! name, each read with an error that says what was expected.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use wasmesos_api::proto::{JobState, TaskState};
use wasmesos_api::{Resources, parse_resources, parse_size};

/// The terminal task states, for messages.
pub(crate) const TERMINAL: &str = "finished, failed, killed, lost or error";

/// A task state by name ("running", "FAILED", "task_lost").
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct StateName(pub TaskState);

impl TryFrom<String> for StateName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TaskState::parse(&s).map(StateName).ok_or_else(|| {
            format!("unknown task state {s:?}: expected staging, starting, running, {TERMINAL}")
        })
    }
}

/// A job state by name ("queued", "RUNNING", "finished", "failed", "killed").
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct JobStateName(pub JobState);

impl TryFrom<String> for JobStateName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        [
            JobState::Queued,
            JobState::Running,
            JobState::Finished,
            JobState::Failed,
            JobState::Killed,
        ]
        .into_iter()
        .find(|j| wasmesos_api::job_state_name(*j) == upper)
        .map(JobStateName)
        .ok_or_else(|| {
            format!("unknown job state {s:?}: expected queued, running, finished, failed or killed")
        })
    }
}

/// A duration: "500ms", "5s", "2m", "1h", or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Dur(pub Duration);

impl TryFrom<Value> for Dur {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Dur(Duration::from_secs_f64(s)))
                .ok_or_else(|| format!("invalid duration {n}: expected seconds >= 0")),
            Value::String(s) => parse_duration(&s).map(Dur),
            other => Err(format!(
                "invalid duration {other}: expected e.g. \"500ms\", \"5s\" or a number of seconds"
            )),
        }
    }
}

/// Parses "500ms", "5s", "1.5s", "2m", "1h" (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid duration {text:?}: expected e.g. \"500ms\", \"5s\", \"2m\"");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A size: "64MiB", "4GiB", or a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Size(pub u64);

impl TryFrom<Value> for Size {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(Size)
                .ok_or_else(|| format!("invalid size {n}: expected whole bytes")),
            Value::String(s) => parse_size(&s).map(Size).map_err(|e| e.to_string()),
            other => Err(format!(
                "invalid size {other}: expected e.g. \"64MiB\" or bytes"
            )),
        }
    }
}

/// Resources as `--resources` takes them: "cpus:0.5,mem:64MiB".
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Res(pub Resources);

impl TryFrom<String> for Res {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_resources(&s).map(Res).map_err(|e| e.to_string())
    }
}
