//! A run of the pi estimate: the request that starts one, and its durable
//! layout in `state`:
//!
//! | key | value |
//! |---|---|
//! | `run` | the current (or last) [`Run`]: its parameters and tallies |
//! | `todo/<piece:08>` | the attempt number a piece waits to launch as |
//! | `task/<task-id>` | the [`Piece`] a launched, not yet terminal, task computes |
//!
//! Task ids are `pi-<run>-<piece>-<attempt>`; piece P of run R uses the
//! seed `R << 32 | P`, so a retry computes exactly the same piece.

use serde::{Deserialize, Serialize};
use wasmesos_sdk::{Host, HostError, Limits, Resources, TaskInfo, cpus_milli, parse_size};

pub const RUN: &str = "run";
pub const TODO: &str = "todo/";
pub const TASKS: &str = "task/";

/// Most pieces in a run (each is a state key and a task).
pub const MAX_TASKS: u32 = 10_000;
const DEFAULT_CPUS: f64 = 0.1;
const DEFAULT_MEM: &str = "32MiB";
const DEFAULT_ATTEMPTS: u32 = 3;

/// What a "run" message asks for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub tasks: u32,
    pub samples: u64,
    /// The pi-task module: `sha256:<hex>`, uploaded by this tenant.
    pub module: String,
    pub cpus: Option<f64>,
    pub mem: Option<String>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// A "user" message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Run(RunRequest),
    Status(Nothing),
    Cancel(Nothing),
}

impl Request {
    /// Parses a message body; an empty body (or `status`) asks for status.
    pub fn parse(body: &[u8]) -> Result<Request, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the message is not UTF-8".to_string())?;
        if matches!(text.trim(), "" | "status") {
            return Ok(Request::Status(Nothing {}));
        }
        serde_json::from_str(text).map_err(|e| {
            format!(
                "invalid request: {e}; expected {{\"run\": {{\"tasks\": T, \"samples\": N, \"module\": \"sha256:…\"}}}}, \
                 {{\"status\": {{}}}} or {{\"cancel\": {{}}}}"
            )
        })
    }
}

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    Finished,
    Cancelled,
}

/// A run and its tallies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub tasks: u32,
    pub samples: u64,
    pub module: String,
    pub cpus_milli: u64,
    pub mem_bytes: u64,
    pub max_attempts: u32,
    pub phase: Phase,
    pub started_ms: u64,
    pub ended_ms: u64,
    /// Pieces whose result was counted.
    pub done: u32,
    /// Pieces that finished without a usable result payload.
    pub missing: u32,
    /// Pieces given up on after `max_attempts`.
    pub failed: u32,
    /// Attempts beyond the first.
    pub retries: u32,
    pub hits: u64,
    pub counted_samples: u64,
}

impl Run {
    /// A new run numbered `id` from a request, or why the request is bad.
    pub fn start(id: u64, r: RunRequest, now_ms: u64) -> Result<Run, String> {
        if r.tasks == 0 || r.tasks > MAX_TASKS {
            return Err(format!("tasks must be 1 to {MAX_TASKS}, not {}", r.tasks));
        }
        if r.samples == 0 {
            return Err("samples must be at least 1".into());
        }
        let hex = r.module.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "module {:?} must be sha256:<64 lower-case hex digits>",
                r.module
            ));
        }
        let mem_bytes = parse_size(r.mem.as_deref().unwrap_or(DEFAULT_MEM))?;
        if mem_bytes == 0 {
            return Err("mem must be more than 0: it is each task's memory cap".into());
        }
        Ok(Run {
            id,
            tasks: r.tasks,
            samples: r.samples,
            module: r.module,
            cpus_milli: cpus_milli(r.cpus.unwrap_or(DEFAULT_CPUS))?,
            mem_bytes,
            max_attempts: r.max_attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1),
            phase: Phase::Running,
            started_ms: now_ms,
            ended_ms: 0,
            done: 0,
            missing: 0,
            failed: 0,
            retries: 0,
            hits: 0,
            counted_samples: 0,
        })
    }

    /// True once every piece is accounted for.
    pub fn complete(&self) -> bool {
        self.done + self.missing + self.failed >= self.tasks
    }

    /// 4 × hits / samples over the results counted so far.
    pub fn estimate(&self) -> Option<f64> {
        (self.counted_samples > 0).then(|| 4.0 * self.hits as f64 / self.counted_samples as f64)
    }

    pub fn task(&self, piece: u32, attempt: u32) -> TaskInfo {
        TaskInfo {
            task_id: format!("pi-{}-{piece}-{attempt}", self.id),
            name: format!("pi run {} piece {piece}", self.id),
            module_digest: self.module.clone(),
            args: vec![
                "--samples".into(),
                self.samples.to_string(),
                "--seed".into(),
                ((self.id << 32) | u64::from(piece)).to_string(),
            ],
            env: Vec::new(),
            resources: Resources::new(self.cpus_milli, self.mem_bytes, 0),
            limits: Limits {
                fuel: 0,
                timeout_ms: 0,
                log_bytes: 0,
            },
        }
    }
}

/// What a launched task computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    pub piece: u32,
    pub attempt: u32,
}

/// A piece's result payload, as pi-task writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hits {
    pub hits: u64,
    pub samples: u64,
}

impl Hits {
    /// The payload, if it is one and makes sense.
    pub fn parse(payload: Option<&[u8]>) -> Option<Hits> {
        let h: Hits = serde_json::from_slice(payload?).ok()?;
        (h.samples > 0 && h.hits <= h.samples).then_some(h)
    }
}

pub fn run(h: &impl Host) -> Result<Option<Run>, HostError> {
    h.get_json(RUN)
}

pub fn set_run(h: &mut impl Host, r: &Run) -> Result<(), HostError> {
    h.set_json(RUN, r)
}

pub fn todo_key(piece: u32) -> String {
    format!("{TODO}{piece:08}")
}

pub fn task_key(task_id: &str) -> String {
    format!("{TASKS}{task_id}")
}

/// The piece number in a todo key.
pub fn piece_of(todo_key: &str) -> Option<u32> {
    todo_key.strip_prefix(TODO)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn request(json: &str) -> Result<Run, String> {
        match Request::parse(json.as_bytes())? {
            Request::Run(r) => Run::start(7, r, 100),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_run_request_with_defaults_and_tasks() {
        let run = request(&format!(
            r#"{{"run":{{"tasks":4,"samples":1000,"module":"{M}"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            (run.cpus_milli, run.mem_bytes, run.max_attempts),
            (100, 32 << 20, 3)
        );
        let t = run.task(3, 2);
        assert_eq!(t.task_id, "pi-7-3-2");
        assert_eq!(t.args, ["--samples", "1000", "--seed", "30064771075"]);
        assert_eq!(t.resources, Resources::new(100, 32 << 20, 0));
        assert_eq!(run.estimate(), None);
        assert!(!run.complete());
    }

    #[test]
    fn bad_requests_say_why() {
        let cases = [
            (
                format!(r#"{{"run":{{"tasks":0,"samples":1,"module":"{M}"}}}}"#),
                "tasks must be",
            ),
            (
                format!(r#"{{"run":{{"tasks":1,"samples":0,"module":"{M}"}}}}"#),
                "samples",
            ),
            (
                r#"{"run":{"tasks":1,"samples":1,"module":"x"}}"#.to_string(),
                "sha256",
            ),
            (
                format!(r#"{{"run":{{"tasks":1,"samples":1,"module":"{M}","mem":"x"}}}}"#),
                "not a size",
            ),
            (r#"{"run":{"tasks":1}}"#.to_string(), "missing field"),
            (r#"{"walk":{}}"#.to_string(), "unknown variant"),
        ];
        for (body, want) in cases {
            let err = request(&body).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        assert_eq!(Request::parse(b"").unwrap(), Request::Status(Nothing {}));
        assert_eq!(
            Request::parse(br#"{"cancel":{}}"#).unwrap(),
            Request::Cancel(Nothing {})
        );
    }

    #[test]
    fn results_are_checked() {
        assert_eq!(
            Hits::parse(Some(br#"{"hits":3,"samples":4}"#)),
            Some(Hits {
                hits: 3,
                samples: 4
            })
        );
        assert_eq!(Hits::parse(None), None);
        assert_eq!(Hits::parse(Some(b"")), None);
        assert_eq!(Hits::parse(Some(br#"{"hits":5,"samples":4}"#)), None);
        assert_eq!(Hits::parse(Some(br#"{"hits":0,"samples":0}"#)), None);
    }
}
