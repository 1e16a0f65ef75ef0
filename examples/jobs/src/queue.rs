//! The durable layout of the jobs scheduler in `state`. Memory is only a
//! cache (the master may re-instantiate the scheduler at any event), so
//! every queued job and running attempt lives here:
//!
//! | key | value |
//! |---|---|
//! | `ends` | `{"front":F,"back":B}`: next free queue positions at each end |
//! | `q/<pos:016x>/<job-id>` | an [`Attempt`] waiting for an offer |
//! | `run/<task-id>` | an [`Attempt`] launched and not yet terminal |
//! | `job/<job-id>` | the key (`q/…` or `run/…`) the job is under now |
//!
//! Positions start in the middle of the u64 range: the tail grows up,
//! retries go to the head by growing down, and fixed-width hex keeps key
//! order equal to queue order. The job id in a queue key lets a summary be
//! listed without reading values.

use serde::{Deserialize, Serialize};
use wasmesos_sdk::{Host, HostError, Submission};

pub const QUEUE: &str = "q/";
pub const RUNNING: &str = "run/";
const JOBS: &str = "job/";
const ENDS: &str = "ends";
const MIDDLE: u64 = 1 << 63;

/// One attempt of a job: the submission and which attempt (from 1) it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub job: Submission,
    pub attempt: u32,
}

impl Attempt {
    pub fn task_id(&self) -> String {
        self.job.task_id(self.attempt)
    }
}

#[derive(Serialize, Deserialize)]
struct Ends {
    front: u64,
    back: u64,
}

/// The job id inside a queue key.
pub fn job_of(queue_key: &str) -> &str {
    queue_key
        .strip_prefix(QUEUE)
        .and_then(|rest| rest.split_once('/'))
        .map_or("", |(_, job)| job)
}

/// True when the job is queued or running.
pub fn known(h: &impl Host, job_id: &str) -> bool {
    h.get(&format!("{JOBS}{job_id}")).is_some()
}

/// True when nothing waits.
pub fn is_empty(h: &impl Host) -> bool {
    h.list(QUEUE, "", 1).is_empty()
}

/// Appends a job's attempt to the tail of the queue.
pub fn push_back(h: &mut impl Host, a: &Attempt) -> Result<(), HostError> {
    push(h, a, false)
}

/// Puts an attempt at the head of the queue (a retry goes first).
pub fn push_front(h: &mut impl Host, a: &Attempt) -> Result<(), HostError> {
    push(h, a, true)
}

fn push(h: &mut impl Host, a: &Attempt, front: bool) -> Result<(), HostError> {
    let mut ends = h.get_json::<Ends>(ENDS)?.unwrap_or(Ends {
        front: MIDDLE - 1,
        back: MIDDLE,
    });
    let pos = if front {
        ends.front -= 1;
        ends.front + 1
    } else {
        ends.back += 1;
        ends.back - 1
    };
    let key = format!("{QUEUE}{pos:016x}/{}", a.job.job_id);
    h.set_json(&key, a)?;
    h.set_json(&format!("{JOBS}{}", a.job.job_id), &key)?;
    h.set_json(ENDS, &ends)
}

/// The attempt under a queue key.
pub fn queued(h: &impl Host, key: &str) -> Result<Option<Attempt>, HostError> {
    h.get_json(key)
}

/// Moves a queued attempt (under `key`) to the running set: it was launched.
pub fn start(h: &mut impl Host, key: &str, a: &Attempt) -> Result<(), HostError> {
    let run_key = format!("{RUNNING}{}", a.task_id());
    h.set_json(&run_key, a)?;
    h.set_json(&format!("{JOBS}{}", a.job.job_id), &run_key)?;
    h.delete(key);
    Ok(())
}

/// The running attempt with this task id, if we know it.
pub fn running(h: &impl Host, task_id: &str) -> Result<Option<Attempt>, HostError> {
    h.get_json(&format!("{RUNNING}{task_id}"))
}

/// Forgets a running attempt and its job: the job is over.
pub fn finish(h: &mut impl Host, a: &Attempt) {
    h.delete(&format!("{RUNNING}{}", a.task_id()));
    h.delete(&format!("{JOBS}{}", a.job.job_id));
}

/// Drops a queue entry that cannot be read, so it cannot block the queue.
pub fn drop_queued(h: &mut impl Host, key: &str) {
    h.delete(key);
    let job = job_of(key);
    if h.get_json::<String>(&format!("{JOBS}{job}")).ok().flatten() == Some(key.to_string()) {
        h.delete(&format!("{JOBS}{job}"));
    }
}

/// Requeues the next attempt of a failed one at the head of the queue.
pub fn retry(h: &mut impl Host, failed: &Attempt) -> Result<(), HostError> {
    h.delete(&format!("{RUNNING}{}", failed.task_id()));
    let next = Attempt {
        job: failed.job.clone(),
        attempt: failed.attempt + 1,
    };
    push_front(h, &next)
}
