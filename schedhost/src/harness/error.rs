//! What can go wrong in the harness: a script that does not parse (pointing
//! at the step), a step that cannot be carried out, an expectation that does
//! not hold, and a scheduler that cannot even start. A scheduler that
//! traps or issues invalid commands is *not* an error here: that is what
//! the harness records (see `Report::passed`).

use crate::error::LoadError;

/// A script that cannot be read. Steps are numbered from 1, as a person
/// counts them in the file.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("the script is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error(
        "the script must be a list of steps, or an object with \"steps\" (and optionally \"agents\", \"resources\", \"config\", \"name\", \"role\"): {0}"
    )]
    Shape(String),
    #[error("step {step} {found}: {reason}")]
    Step {
        step: usize,
        /// The step as written (compact, shortened).
        found: String,
        reason: String,
    },
}

/// Why a harness run stopped before the end of its script.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("invalid cluster: {0}")]
    Cluster(String),
    #[error("step {step} ({kind}): {reason}")]
    Step {
        step: usize,
        kind: &'static str,
        reason: String,
    },
    #[error("step {step}: expectation failed: {message}")]
    Expectation { step: usize, message: String },
    /// The scheduler failed (callbacks or starts) too many times in a row:
    /// the master would mark the framework FAILED and give it no more
    /// events.
    #[error("the framework FAILED: {failures} failures in a row, the last: {reason}")]
    SchedulerFailed { failures: u32, reason: String },
    #[error("the scheduler could not be loaded: {0}")]
    Load(#[from] LoadError),
}
