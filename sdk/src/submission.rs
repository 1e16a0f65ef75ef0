//! The job a client submits, as the master delivers it: the JSON body of a
//! message of kind "submit". A job runs as attempts, tasks named `JOB.N`
//! with N from 1.
//!
//! ```json
//! {"job_id":"job-17","name":"nightly","max_attempts":1,"priority":0,
//!  "task":{"module_digest":"sha256:…","args":["a"],"env":{"K":"V"},
//!          "resources":{"cpus_milli":500,"mem_bytes":67108864,"disk_bytes":0,"scalars_milli":{}},
//!          "limits":{"fuel":0,"timeout_ms":0,"log_bytes":0}}}
//! ```
//!
//! Every field but `job_id` and `task.module_digest` may be missing (or
//! null) and then takes its default; unknown fields are refused, so that a
//! typo is an error rather than a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Limits, Resources, TaskInfo};

/// Longest task id the master accepts.
const MAX_TASK_ID_LEN: usize = 128;
/// Room left in a task id for ".N" with any u32 attempt number.
const MAX_JOB_ID_LEN: usize = MAX_TASK_ID_LEN - 1 - 10;

/// A submitted job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub job_id: String,
    /// Human-readable; empty means "use the job id".
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// How many attempts before the job counts as failed; 0 means 1.
    #[serde(default, deserialize_with = "nullable")]
    pub max_attempts: u32,
    /// Higher goes first; the jobs scheduler runs equal priorities in
    /// submission order.
    #[serde(default, deserialize_with = "nullable")]
    pub priority: i32,
    pub task: SubmittedTask,
}

/// What each attempt runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmittedTask {
    /// "sha256:<64 lower-case hex digits>".
    pub module_digest: String,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub resources: SubmittedResources,
    #[serde(default, deserialize_with = "nullable")]
    pub limits: SubmittedLimits,
}

/// Resources in the host's JSON form (scalars as an object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubmittedResources {
    #[serde(deserialize_with = "nullable")]
    pub cpus_milli: u64,
    #[serde(deserialize_with = "nullable")]
    pub mem_bytes: u64,
    #[serde(deserialize_with = "nullable")]
    pub disk_bytes: u64,
    #[serde(deserialize_with = "nullable")]
    pub scalars_milli: BTreeMap<String, u64>,
}

/// Limits; zero means "the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubmittedLimits {
    #[serde(deserialize_with = "nullable")]
    pub fuel: u64,
    #[serde(deserialize_with = "nullable")]
    pub timeout_ms: u64,
    #[serde(deserialize_with = "nullable")]
    pub log_bytes: u64,
}

/// A missing field and an explicit `null` both mean the default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

impl Submission {
    /// Parses and checks a "submit" message body. The error is meant for
    /// the submitter, who sees it as the reason the job was refused.
    pub fn parse(body: &[u8]) -> Result<Submission, String> {
        let sub: Submission =
            serde_json::from_slice(body).map_err(|e| format!("invalid submission: {e}"))?;
        sub.validate()?;
        Ok(sub)
    }

    /// Checks what JSON alone cannot: the job id makes valid task ids and
    /// the module is named by a well-formed digest.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.job_id;
        let id_ok = !id.is_empty()
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !id_ok {
            return Err(format!(
                "invalid submission: job_id {id:?} must be non-empty, use only [A-Za-z0-9._-] and not start with '.'"
            ));
        }
        if id.len() > MAX_JOB_ID_LEN {
            return Err(format!(
                "invalid submission: job_id is {} characters, at most {MAX_JOB_ID_LEN} allowed",
                id.len()
            ));
        }
        let digest = &self.task.module_digest;
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "invalid submission: module_digest {digest:?} must be sha256:<64 lower-case hex digits>"
            ));
        }
        Ok(())
    }

    /// How many attempts the job may make (at least one).
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The task id of attempt `n` (from 1): `JOB.N`.
    pub fn task_id(&self, attempt: u32) -> String {
        format!("{}.{attempt}", self.job_id)
    }

    /// The name tasks get: the job's name, or its id when it has none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.job_id
        } else {
            &self.name
        }
    }

    /// The resources one attempt needs.
    pub fn resources(&self) -> Resources {
        self.task.resources.to_wit()
    }

    /// The task to launch for attempt `n`.
    pub fn task_info(&self, attempt: u32) -> TaskInfo {
        let t = &self.task;
        TaskInfo {
            task_id: self.task_id(attempt),
            name: self.display_name().to_string(),
            module_digest: t.module_digest.clone(),
            args: t.args.clone(),
            env: t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            resources: self.resources(),
            limits: Limits {
                fuel: t.limits.fuel,
                timeout_ms: t.limits.timeout_ms,
                log_bytes: t.limits.log_bytes,
            },
        }
    }
}

impl SubmittedResources {
    /// The WIT record: scalars sorted by name, zeros dropped.
    pub fn to_wit(&self) -> Resources {
        Resources {
            cpus_milli: self.cpus_milli,
            mem_bytes: self.mem_bytes,
            disk_bytes: self.disk_bytes,
            scalars_milli: crate::resources::normalise(self.scalars_milli.clone()),
        }
    }
}

/// Splits a task id `JOB.N` into the job id and attempt number.
pub fn parse_task_id(task_id: &str) -> Option<(&str, u32)> {
    let (job, digits) = task_id.rsplit_once('.')?;
    let n: u32 = digits.parse().ok().filter(|n| *n >= 1)?;
    // Canonical form only ("JOB.1", not "JOB.01" or "JOB.+1").
    (!job.is_empty() && n.to_string() == digits).then_some((job, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_full_form() {
        let body = format!(
            r#"{{"job_id":"job-17","name":"nightly","max_attempts":3,"priority":-4,
               "task":{{"module_digest":"{DIGEST}","args":["a"],"env":{{"K":"V"}},
                        "resources":{{"cpus_milli":500,"mem_bytes":67108864,"disk_bytes":0,"scalars_milli":{{"gpus":1000}}}},
                        "limits":{{"fuel":7,"timeout_ms":8,"log_bytes":9}}}}}}"#
        );
        let s = Submission::parse(body.as_bytes()).unwrap();
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.priority, -4);
        let t = s.task_info(2);
        assert_eq!(t.task_id, "job-17.2");
        assert_eq!(t.name, "nightly");
        assert_eq!(t.module_digest, DIGEST);
        assert_eq!(t.args, ["a"]);
        assert_eq!(t.env, [("K".to_string(), "V".to_string())]);
        assert_eq!(
            t.resources,
            Resources::new(500, 64 << 20, 0).with_scalar("gpus", 1000)
        );
        assert_eq!(
            (t.limits.fuel, t.limits.timeout_ms, t.limits.log_bytes),
            (7, 8, 9)
        );
    }

    #[test]
    fn missing_and_null_fields_take_defaults() {
        let body = format!(r#"{{"job_id":"j","task":{{"module_digest":"{DIGEST}"}}}}"#);
        let s = Submission::parse(body.as_bytes()).unwrap();
        assert_eq!(s.attempts(), 1);
        assert_eq!(s.task_info(1).name, "j");
        assert!(s.resources().is_empty());

        let body = format!(
            r#"{{"job_id":"j","name":null,"max_attempts":null,"priority":null,
               "task":{{"module_digest":"{DIGEST}","args":null,"env":null,"resources":{{"cpus_milli":null}},"limits":null}}}}"#
        );
        let s = Submission::parse(body.as_bytes()).unwrap();
        assert_eq!(s.max_attempts, 0);
        assert_eq!(s.priority, 0);
        assert_eq!(s.task.resources, SubmittedResources::default());
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let cases = [
            ("not json".to_string(), "invalid submission"),
            (
                format!(r#"{{"task":{{"module_digest":"{DIGEST}"}}}}"#),
                "job_id",
            ),
            (r#"{"job_id":"j","task":{}}"#.to_string(), "module_digest"),
            (
                format!(r#"{{"job_id":"j","colour":1,"task":{{"module_digest":"{DIGEST}"}}}}"#),
                "unknown field `colour`",
            ),
            (
                format!(
                    r#"{{"job_id":"j","task":{{"module_digest":"{DIGEST}","resources":{{"gpus":1}}}}}}"#
                ),
                "unknown field `gpus`",
            ),
            (
                format!(r#"{{"job_id":"a/b","task":{{"module_digest":"{DIGEST}"}}}}"#),
                "[A-Za-z0-9._-]",
            ),
            (
                r#"{"job_id":"j","task":{"module_digest":"sha256:ABC"}}"#.to_string(),
                "sha256:<64",
            ),
            (
                format!(
                    r#"{{"job_id":"{}","task":{{"module_digest":"{DIGEST}"}}}}"#,
                    "x".repeat(118)
                ),
                "at most 117",
            ),
        ];
        for (body, want) in cases {
            let err = Submission::parse(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let body =
            format!(r#"{{"job_id":"j","max_attempts":2,"task":{{"module_digest":"{DIGEST}"}}}}"#);
        let s = Submission::parse(body.as_bytes()).unwrap();
        let again = Submission::parse(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(s, again);
    }

    #[test]
    fn task_ids_split_into_job_and_attempt() {
        assert_eq!(parse_task_id("job-17.2"), Some(("job-17", 2)));
        assert_eq!(parse_task_id("a.b.10"), Some(("a.b", 10)));
        assert_eq!(parse_task_id("job.0"), None);
        assert_eq!(parse_task_id("job"), None);
        assert_eq!(parse_task_id(".1"), None);
        assert_eq!(parse_task_id("job.01"), None);
    }
}
