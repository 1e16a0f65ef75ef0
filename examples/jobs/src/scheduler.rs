//! The decisions of the jobs scheduler: one method per callback of the
//! SDK's [`Scheduler`] trait, over any [`Host`], so that they run natively
//! in tests (against `MemoryHost`) and inside the master (against the real
//! imports). State lives in `state` ([`queue`]); memory holds only the
//! config. An `Err` means a write was refused: the SDK's adapter traps so
//! the master drops the whole callback's transaction.

use serde::Serialize;
use wasmesos_sdk::{
    Command, Constraints, Host, HostError, Message, Offer, Outcome, Packer, Registration, Reply,
    Scheduler, Submission, TaskState, TaskStatus, cmd,
};

use crate::config::Config;
use crate::queue::{self, QUEUE, RUNNING, WAITING};

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
/// The one timer: fires when the earliest retry in backoff is due.
pub const RETRY_TIMER: &str = "retry";

/// The jobs scheduler. Its only memory is the config from `registered`.
#[derive(Debug, Default)]
pub struct Jobs {
    pub config: Config,
}

impl Scheduler for Jobs {
    /// (Re)started: learn what became of running attempts, ask for offers
    /// only when something waits, and re-arm the retry timer (timers do not
    /// survive a master restart).
    fn registered(&mut self, h: &mut impl Host, info: &Registration) -> Outcome {
        self.config = Config::from_registration(info)?;
        queue::tidy(h);
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
        out.extend(retry_timer(h));
        Ok(out)
    }

    /// Launches queued jobs in order (priority, then age), first fit over
    /// the offers, packing as many as fit. A job that fits nowhere does not
    /// hold back smaller ones behind it.
    fn offers(&mut self, h: &mut impl Host, offers: &[Offer]) -> Outcome {
        let mut packer = Packer::new(offers);
        let mut waiting = false; // queued jobs remain after this round
        let mut scanned = 0;
        let mut after = String::new();
        'scan: loop {
            let page = h.list(QUEUE, &after, PAGE);
            for key in &page {
                if scanned == SCAN_LIMIT || packer.is_exhausted() {
                    waiting = true;
                    break 'scan;
                }
                scanned += 1;
                let attempt = match queue::queued(h, key) {
                    Ok(Some(a)) => a,
                    Ok(None) => continue,
                    Err(e) => {
                        h.error(&format!("dropping unreadable queue entry: {e}"));
                        queue::drop_entry(h, key);
                        continue;
                    }
                };
                let task = attempt.job.task_info(attempt.attempt);
                match packer.place(task, &Constraints::any()) {
                    Ok(_) => queue::start(h, key, &attempt)?,
                    Err(_) => waiting = true,
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.clone(),
                _ => break,
            }
        }
        let refuse = if waiting {
            BUSY_REFUSE_SECONDS
        } else {
            IDLE_REFUSE_SECONDS
        };
        let mut out = packer.finish().commands(refuse);
        if !waiting {
            out.push(cmd::suppress());
        }
        Ok(out)
    }

    /// A task changed state (or a reconciliation answer): terminal states
    /// end or retry the attempt; anything about an attempt we do not know
    /// (already forgotten, or redelivered) is ignored.
    fn status_update(&mut self, h: &mut impl Host, st: &TaskStatus) -> Outcome {
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
            // The master refuses to launch an attempt of a job that has
            // ended (killed while queued): no attempt will fare better.
            TaskState::Error if st.message.starts_with(&format!("job {job} is already ")) => {
                h.info(&format!("job {job}: {}", st.message));
                queue::finish(h, &a);
                Ok(Vec::new())
            }
            TaskState::Failed | TaskState::Error | TaskState::Lost => {
                let why = format!("{} {}: {}", st.task_id, st.state.as_str(), st.message);
                if a.attempt >= a.job.attempts() {
                    h.warn(&format!(
                        "job {job}: {why}; giving up after {} attempt(s)",
                        a.attempt
                    ));
                    queue::finish(h, &a);
                    return Ok(Vec::new());
                }
                let delay = self.config.retry_delay_ms(a.attempt);
                h.warn(&format!("job {job}: {why}; retrying in {delay} ms"));
                if delay == 0 {
                    queue::retry_now(h, &a)?;
                    return Ok(vec![cmd::revive()]);
                }
                let due = h.now_ms().saturating_add(delay);
                queue::retry_at(h, &a, due)?;
                Ok(retry_timer(h).into_iter().collect())
            }
        }
    }

    /// "submit" enqueues a job; "cancel" (from the master, when a waiting
    /// job is killed) drops it; "user" (from `framework send`) answers with
    /// a summary of the queue.
    fn message(&mut self, h: &mut impl Host, msg: &Message) -> Outcome<Result<Reply, String>> {
        match msg.kind.as_str() {
            "submit" => Ok(submit(h, &msg.body)?),
            "cancel" => Ok(Ok(cancel(h, &msg.body))),
            "user" => Ok(Ok(cmd::reply_json(&summary(h), Vec::new()))),
            other => Ok(Err(format!(
                "unknown message kind {other:?}: the jobs scheduler takes \"submit\", \"cancel\" and \"user\""
            ))),
        }
    }

    /// The earliest retry is due: queue every retry that is, and re-arm
    /// for the next.
    fn timer(&mut self, h: &mut impl Host, id: &str) -> Outcome {
        if id != RETRY_TIMER {
            return Ok(Vec::new());
        }
        let now = h.now_ms();
        let mut out = Vec::new();
        if queue::promote_due(h, now)? > 0 {
            out.push(cmd::revive());
        }
        out.extend(retry_timer(h));
        Ok(out)
    }
}

/// The timer for the earliest retry in backoff, if any waits. Setting it
/// again replaces it, so this is safe to return whenever waits change.
fn retry_timer(h: &impl Host) -> Option<Command> {
    let due = queue::next_due(h)?;
    Some(cmd::set_timer(RETRY_TIMER, due.saturating_sub(h.now_ms())))
}

fn submit(h: &mut impl Host, body: &[u8]) -> Result<Result<Reply, String>, HostError> {
    let job = match Submission::parse(body) {
        Ok(job) => job,
        Err(e) => return Ok(Err(e)),
    };
    // The same job twice (a client retrying) is one job.
    if !queue::known(h, &job.job_id) {
        let id = job.job_id.clone();
        let priority = job.priority;
        match queue::submit(h, job) {
            Ok(()) => h.info(&format!("job {id} queued (priority {priority})")),
            Err(HostError::Refused { reason, .. }) => {
                return Ok(Err(format!("job {id} is too large to queue: {reason}")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(cmd::accept(vec![cmd::revive()])))
}

/// Drops a killed job that waits; stops offers when nothing is left.
fn cancel(h: &mut impl Host, body: &[u8]) -> Reply {
    #[derive(serde::Deserialize)]
    struct Cancel {
        job_id: String,
    }
    let Ok(Cancel { job_id }) = serde_json::from_slice::<Cancel>(body) else {
        h.warn("ignoring a cancel message without a job_id");
        return cmd::accept(Vec::new());
    };
    if !queue::cancel(h, &job_id) {
        return cmd::accept(Vec::new());
    }
    h.info(&format!("job {job_id} cancelled"));
    let mut out = Vec::new();
    if queue::is_empty(h) {
        out.push(cmd::suppress());
    }
    out.extend(retry_timer(h));
    cmd::accept(out)
}

/// What `framework send jobs …` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub queued: usize,
    pub retrying: usize,
    pub running: usize,
    /// Queued job ids, in the order they will be served (at most 1000).
    pub queued_jobs: Vec<String>,
    /// Jobs whose failed attempt waits out its backoff, soonest first (at
    /// most 1000).
    pub retrying_jobs: Vec<String>,
    /// Running task ids (at most 1000).
    pub running_tasks: Vec<String>,
}

pub fn summary(h: &impl Host) -> Summary {
    let queued = h.list_all(QUEUE);
    let waiting = h.list_all(WAITING);
    let running = h.list_all(RUNNING);
    let jobs = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .take(CHUNK)
            .map(|k| queue::job_of(k).to_string())
            .collect()
    };
    Summary {
        queued: queued.len(),
        retrying: waiting.len(),
        running: running.len(),
        queued_jobs: jobs(&queued),
        retrying_jobs: jobs(&waiting),
        running_tasks: running
            .iter()
            .take(CHUNK)
            .map(|k| k[RUNNING.len()..].to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests;
