//! The decisions of the jobs scheduler, over any [`Host`] so that they run
//! natively in tests (against `MemoryHost`) and inside the master (against
//! the real imports). Each function is one callback: it reads and writes
//! `state` and returns the commands. An `Err` means a write was refused;
//! the caller traps so the master drops the whole callback's transaction.

use serde::Serialize;
use wasmesos_sdk::{
    Command, Host, HostError, Message, Offer, Reply, Resources, Submission, TaskInfo, TaskState,
    TaskStatus, cmd,
};

use crate::queue::{self, Attempt, QUEUE, RUNNING};

/// Refuse filter when nothing is queued: offers stop anyway (`suppress`).
const IDLE_REFUSE_SECONDS: f64 = 5.0;
/// Refuse filter when queued jobs did not fit: other agents may free up
/// soon, so come back quickly.
const BUSY_REFUSE_SECONDS: f64 = 1.0;
/// Queue keys read per `list` call.
const PAGE: u32 = 100;
/// Queue entries looked at per offers callback, bounding its fuel and time
/// however long the queue is; the rest waits for the next offers.
const SCAN_LIMIT: usize = 2000;
/// Task ids per reconcile command, and ids listed in a summary.
const CHUNK: usize = 1000;

pub type Outcome<T> = Result<T, HostError>;

/// (Re)started: learn what became of running attempts, and ask for offers
/// only when something waits.
pub fn registered(h: &mut impl Host) -> Outcome<Vec<Command>> {
    let mut out = Vec::new();
    // Explicit ids rather than `reconcile([])`: an empty list answers only
    // for tasks still non-terminal, and we also need to hear about attempts
    // that ended while we were down.
    let running: Vec<String> = h
        .list_all(RUNNING)
        .into_iter()
        .map(|k| k[RUNNING.len()..].to_string())
        .collect();
    for ids in running.chunks(CHUNK) {
        out.push(cmd::reconcile(ids.to_vec()));
    }
    out.push(if queue::is_empty(h) {
        cmd::suppress()
    } else {
        cmd::revive()
    });
    Ok(out)
}

/// Launches queued jobs, oldest first, first fit over the offers (one
/// offer = one agent), packing as many as fit.
pub fn offers(h: &mut impl Host, offers: &[Offer]) -> Outcome<Vec<Command>> {
    let mut left: Vec<Resources> = offers.iter().map(|o| o.resources.clone()).collect();
    let mut tasks: Vec<Vec<TaskInfo>> = vec![Vec::new(); offers.len()];
    let mut waiting = false; // queued jobs remain after this round
    let mut scanned = 0;
    let mut after = String::new();
    'scan: loop {
        let page = h.list(QUEUE, &after, PAGE);
        for key in &page {
            if scanned == SCAN_LIMIT || left.iter().all(Resources::is_empty) {
                waiting = true;
                break 'scan;
            }
            scanned += 1;
            let attempt = match queue::queued(h, key) {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(e) => {
                    h.error(&format!("dropping unreadable queue entry: {e}"));
                    queue::drop_queued(h, key);
                    continue;
                }
            };
            let need = attempt.job.resources();
            let Some(i) = left.iter().position(|r| r.contains(&need)) else {
                waiting = true;
                continue;
            };
            left[i] = left[i].checked_sub(&need).unwrap_or_default();
            queue::start(h, key, &attempt)?;
            tasks[i].push(attempt.job.task_info(attempt.attempt));
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.clone(),
            _ => break,
        }
    }

    let mut out = Vec::new();
    let mut unused = Vec::new();
    for (offer, tasks) in offers.iter().zip(tasks) {
        if tasks.is_empty() {
            unused.push(offer.id.clone());
        } else {
            out.push(cmd::launch(&offer.id, tasks));
        }
    }
    let refuse = if waiting {
        BUSY_REFUSE_SECONDS
    } else {
        IDLE_REFUSE_SECONDS
    };
    if !unused.is_empty() {
        out.push(cmd::decline(unused, refuse));
    }
    if !waiting {
        out.push(cmd::suppress());
    }
    Ok(out)
}

/// A task changed state (or a reconciliation answer): terminal states end
/// or retry the attempt; anything about an attempt we do not know (already
/// forgotten, or redelivered) is ignored.
pub fn status_update(h: &mut impl Host, st: &TaskStatus) -> Outcome<Vec<Command>> {
    let Some(a) = queue::running(h, &st.task_id)? else {
        return Ok(Vec::new());
    };
    let job = &a.job.job_id;
    match st.state {
        TaskState::Staging | TaskState::Starting | TaskState::Running => Ok(Vec::new()),
        TaskState::Finished | TaskState::Killed => {
            h.info(&format!("job {job}: {} {}", st.task_id, st.state.as_str()));
            queue::finish(h, &a);
            Ok(Vec::new())
        }
        TaskState::Failed | TaskState::Error | TaskState::Lost => {
            let why = format!("{} {}: {}", st.task_id, st.state.as_str(), st.message);
            if a.attempt < a.job.attempts() {
                h.warn(&format!("job {job}: {why}; retrying"));
                queue::retry(h, &a)?;
                Ok(vec![cmd::revive()])
            } else {
                h.warn(&format!(
                    "job {job}: {why}; giving up after {} attempt(s)",
                    a.attempt
                ));
                queue::finish(h, &a);
                Ok(Vec::new())
            }
        }
    }
}

/// "submit" enqueues a job; "user" (from `framework send`) answers with a
/// summary of the queue.
pub fn message(h: &mut impl Host, msg: &Message) -> Outcome<Result<Reply, String>> {
    match msg.kind.as_str() {
        "submit" => submit(h, &msg.body),
        "user" => Ok(Ok(cmd::reply_json(&summary(h), Vec::new()))),
        other => Ok(Err(format!(
            "unknown message kind {other:?}: the jobs scheduler takes \"submit\" and \"user\""
        ))),
    }
}

fn submit(h: &mut impl Host, body: &[u8]) -> Outcome<Result<Reply, String>> {
    let job = match Submission::parse(body) {
        Ok(job) => job,
        Err(e) => return Ok(Err(e)),
    };
    // The same job twice (a client retrying) is one job.
    if !queue::known(h, &job.job_id) {
        let id = job.job_id.clone();
        match queue::push_back(h, &Attempt { job, attempt: 1 }) {
            Ok(()) => h.info(&format!("job {id} queued")),
            Err(HostError::Refused { reason, .. }) => {
                return Ok(Err(format!("job {id} is too large to queue: {reason}")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(cmd::accept(vec![cmd::revive()])))
}

/// What `framework send jobs …` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub queued: usize,
    pub running: usize,
    /// Queued job ids, head first (at most 1000).
    pub queued_jobs: Vec<String>,
    /// Running task ids (at most 1000).
    pub running_tasks: Vec<String>,
}

pub fn summary(h: &impl Host) -> Summary {
    let queued = h.list_all(QUEUE);
    let running = h.list_all(RUNNING);
    Summary {
        queued: queued.len(),
        running: running.len(),
        queued_jobs: queued
            .iter()
            .take(CHUNK)
            .map(|k| queue::job_of(k).to_string())
            .collect(),
        running_tasks: running
            .iter()
            .take(CHUNK)
            .map(|k| k[RUNNING.len()..].to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests;
