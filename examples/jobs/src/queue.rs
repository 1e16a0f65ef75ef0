//! The durable layout of the jobs scheduler in `state`. Memory is only a
//! cache (the master may re-instantiate the scheduler at any event), so
//! every queued, waiting and running attempt lives here:
//!
//! | key | value |
//! |---|---|
//! | `seq` | the next submission sequence number |
//! | `q/<rank:08x>/<seq:016x>/<job-id>` | an [`Attempt`] waiting for an offer |
//! | `wait/<due-ms:016x>/<job-id>` | an [`Attempt`] waiting out its retry backoff until `due-ms` |
//! | `run/<task-id>` | an [`Attempt`] launched and not yet terminal |
//! | `job/<job-id>` | the key (`q/…`, `wait/…` or `run/…`) the job is under now |
//!
//! Key order is the order of service: `rank` is `i32::MAX - priority`, so
//! higher priorities sort first, and `seq` is the job's submission number,
//! so equal priorities run first come, first served. A retry keeps its
//! job's `seq` and so goes back ahead of jobs submitted after it. Fixed-width
//! hex keeps numeric order equal to key order. The job id at the end of a
//! key lets a summary be listed without reading values.

use serde::{Deserialize, Serialize};
use wasmesos_sdk::{Host, HostError, Submission};

pub const QUEUE: &str = "q/";
pub const WAITING: &str = "wait/";
pub const RUNNING: &str = "run/";
const JOBS: &str = "job/";
const SEQ: &str = "seq";
/// Where an earlier layout kept its queue ends; removed when seen.
const OLD_ENDS: &str = "ends";

/// One attempt of a job: the submission, which attempt (from 1) it is, and
/// the job's submission number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub job: Submission,
    pub attempt: u32,
    /// Absent in entries written by the earlier layout: they sort first.
    #[serde(default)]
    pub seq: u64,
}

impl Attempt {
    pub fn task_id(&self) -> String {
        self.job.task_id(self.attempt)
    }

    /// The next attempt of the same job.
    fn next(&self) -> Attempt {
        Attempt {
            job: self.job.clone(),
            attempt: self.attempt + 1,
            seq: self.seq,
        }
    }

    fn queue_key(&self) -> String {
        let rank = (i64::from(i32::MAX) - i64::from(self.job.priority)) as u32;
        format!("{QUEUE}{rank:08x}/{:016x}/{}", self.seq, self.job.job_id)
    }
}

/// The job id at the end of a queue or wait key (job ids have no '/').
pub fn job_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or("")
}

/// When a wait key is due, in milliseconds since the epoch.
fn due_of(wait_key: &str) -> Option<u64> {
    let rest = wait_key.strip_prefix(WAITING)?;
    let (due, _) = rest.split_once('/')?;
    u64::from_str_radix(due, 16).ok()
}

/// True when the job is queued, waiting or running.
pub fn known(h: &impl Host, job_id: &str) -> bool {
    h.get(&format!("{JOBS}{job_id}")).is_some()
}

/// True when nothing waits for an offer (retries in backoff aside).
pub fn is_empty(h: &impl Host) -> bool {
    h.list(QUEUE, "", 1).is_empty()
}

/// Removes what an earlier layout left behind that this one does not use.
pub fn tidy(h: &mut impl Host) {
    if h.get(OLD_ENDS).is_some() {
        h.delete(OLD_ENDS);
    }
}

/// Queues a new job's first attempt behind the jobs of its priority.
pub fn submit(h: &mut impl Host, job: Submission) -> Result<(), HostError> {
    let seq: u64 = h.get_json(SEQ)?.unwrap_or(0);
    h.set_json(SEQ, &(seq + 1))?;
    push(
        h,
        &Attempt {
            job,
            attempt: 1,
            seq,
        },
    )
}

fn push(h: &mut impl Host, a: &Attempt) -> Result<(), HostError> {
    let key = a.queue_key();
    h.set_json(&key, a)?;
    h.set_json(&format!("{JOBS}{}", a.job.job_id), &key)
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

/// Drops a queue or wait entry that cannot be read, so it cannot block
/// the queue.
pub fn drop_entry(h: &mut impl Host, key: &str) {
    h.delete(key);
    let job = format!("{JOBS}{}", job_of(key));
    if h.get_json::<String>(&job).ok().flatten().as_deref() == Some(key) {
        h.delete(&job);
    }
}

/// Forgets a job that waits (queued or in retry backoff): it was killed
/// before it ran again. Returns false when it is not waiting (unknown, or
/// running: the master kills the running attempt and its status update
/// ends the job).
pub fn cancel(h: &mut impl Host, job_id: &str) -> bool {
    let job = format!("{JOBS}{job_id}");
    let Some(key) = h.get_json::<String>(&job).ok().flatten() else {
        return false;
    };
    if !(key.starts_with(QUEUE) || key.starts_with(WAITING)) {
        return false;
    }
    h.delete(&key);
    h.delete(&job);
    true
}

/// Queues the next attempt of a failed one at once, in its job's place.
pub fn retry_now(h: &mut impl Host, failed: &Attempt) -> Result<(), HostError> {
    h.delete(&format!("{RUNNING}{}", failed.task_id()));
    push(h, &failed.next())
}

/// Parks the next attempt of a failed one until `due_ms`.
pub fn retry_at(h: &mut impl Host, failed: &Attempt, due_ms: u64) -> Result<(), HostError> {
    h.delete(&format!("{RUNNING}{}", failed.task_id()));
    let next = failed.next();
    let key = format!("{WAITING}{due_ms:016x}/{}", next.job.job_id);
    h.set_json(&key, &next)?;
    h.set_json(&format!("{JOBS}{}", next.job.job_id), &key)
}

/// When the earliest waiting retry is due, if any waits.
pub fn next_due(h: &impl Host) -> Option<u64> {
    h.list(WAITING, "", 1).first().and_then(|k| due_of(k))
}

/// Moves every retry due by `now_ms` to the queue; returns how many moved.
pub fn promote_due(h: &mut impl Host, now_ms: u64) -> Result<usize, HostError> {
    let mut moved = 0;
    loop {
        let Some(key) = h.list(WAITING, "", 1).pop() else {
            return Ok(moved);
        };
        // An unreadable key sorts as due: it is dropped rather than kept.
        if due_of(&key).is_some_and(|due| due > now_ms) {
            return Ok(moved);
        }
        match h.get_json::<Attempt>(&key) {
            Ok(Some(a)) => {
                h.delete(&key);
                push(h, &a)?;
                moved += 1;
            }
            Ok(None) | Err(_) => {
                h.error(&format!("dropping unreadable retry entry {key}"));
                drop_entry(h, &key);
            }
        }
    }
}
