//! The pi scheduler's callbacks, over any [`Host`] (natively tested
//! against `MemoryHost`).

use serde::Serialize;
use wasmesos_sdk::{
    Constraints, Host, Message, Offer, Outcome, Packer, Registration, Reply, Scheduler, TaskState,
    TaskStatus, cmd,
};

use crate::run::{self, Hits, Phase, Piece, Request, Run, TASKS, TODO};

/// Refuse filter when nothing waits (offers are suppressed too).
const IDLE_REFUSE_SECONDS: f64 = 5.0;
/// Refuse filter when pieces wait but did not fit: come back soon.
const BUSY_REFUSE_SECONDS: f64 = 1.0;
/// Waiting pieces looked at per offers callback, bounding its fuel.
const SCAN_LIMIT: u32 = 1000;
/// Task ids per reconcile command.
const CHUNK: usize = 1000;

/// The pi scheduler: no memory beyond `state`.
#[derive(Debug, Default)]
pub struct Pi;

impl Scheduler for Pi {
    /// Asks what became of launched pieces; offers only if pieces wait.
    fn registered(&mut self, h: &mut impl Host, _info: &Registration) -> Outcome {
        let ids: Vec<String> = h
            .list_all(TASKS)
            .into_iter()
            .map(|k| k[TASKS.len()..].to_string())
            .collect();
        let mut out: Vec<_> = ids
            .chunks(CHUNK)
            .map(|c| cmd::reconcile(c.to_vec()))
            .collect();
        out.push(if h.list(TODO, "", 1).is_empty() {
            cmd::suppress()
        } else {
            cmd::revive()
        });
        Ok(out)
    }

    /// Launches waiting pieces, first fit, as many as the offers hold.
    fn offers(&mut self, h: &mut impl Host, offers: &[Offer]) -> Outcome {
        let mut packer = Packer::new(offers);
        let waiting = h.list(TODO, "", SCAN_LIMIT);
        let mut left = waiting.len();
        let Some(run) = run::run(h)?.filter(|r| r.phase == Phase::Running) else {
            // Pieces of no running run cannot launch: drop them.
            for key in &waiting {
                h.delete(key);
            }
            let mut out = packer.finish().commands(IDLE_REFUSE_SECONDS);
            out.push(cmd::suppress());
            return Ok(out);
        };
        for key in &waiting {
            let (Some(piece), Some(attempt)) = (run::piece_of(key), h.get_json::<u32>(key)?) else {
                h.delete(key);
                left -= 1;
                continue;
            };
            let task = run.task(piece, attempt);
            let id = task.task_id.clone();
            if packer.place(task, &Constraints::any()).is_err() {
                // Pieces are alike: if this one fits nowhere, none will.
                break;
            }
            h.delete(key);
            h.set_json(&run::task_key(&id), &Piece { piece, attempt })?;
            left -= 1;
        }
        let more = left > 0 || waiting.len() == SCAN_LIMIT as usize;
        let refuse = if more {
            BUSY_REFUSE_SECONDS
        } else {
            IDLE_REFUSE_SECONDS
        };
        let mut out = packer.finish().commands(refuse);
        if !more {
            out.push(cmd::suppress());
        }
        Ok(out)
    }

    /// FINISHED adds the piece's result; a failure retries the piece until
    /// its attempts run out.
    fn status_update(&mut self, h: &mut impl Host, st: &TaskStatus) -> Outcome {
        let key = run::task_key(&st.task_id);
        let Some(piece) = h.get_json::<Piece>(&key)? else {
            return Ok(Vec::new()); // not ours, or already counted
        };
        if !st.state.is_terminal() {
            return Ok(Vec::new());
        }
        h.delete(&key);
        let Some(mut run) = run::run(h)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        match st.state {
            TaskState::Finished => match Hits::parse(st.result.as_deref()) {
                Some(hits) => {
                    run.done += 1;
                    run.hits += hits.hits;
                    run.counted_samples += hits.samples;
                }
                None => {
                    run.missing += 1;
                    h.warn(&format!(
                        "{} finished without a usable result payload ({} bytes)",
                        st.task_id,
                        st.result.as_ref().map_or(0, Vec::len)
                    ));
                }
            },
            _ if piece.attempt < run.max_attempts => {
                h.warn(&format!(
                    "{} {}: {}; retrying",
                    st.task_id,
                    st.state.as_str(),
                    st.message
                ));
                run.retries += 1;
                h.set_json(&run::todo_key(piece.piece), &(piece.attempt + 1))?;
                out.push(cmd::revive());
            }
            _ => {
                h.warn(&format!(
                    "{} {}: {}; giving up on piece {}",
                    st.task_id,
                    st.state.as_str(),
                    st.message,
                    piece.piece
                ));
                run.failed += 1;
            }
        }
        if run.complete() && run.phase == Phase::Running {
            run.phase = Phase::Finished;
            run.ended_ms = h.now_ms();
            h.info(&match run.estimate() {
                Some(pi) => format!("run {} finished: pi ≈ {pi}", run.id),
                None => format!("run {} finished without results", run.id),
            });
        }
        run::set_run(h, &run)?;
        Ok(out)
    }

    /// `run` starts a run (refused while one is going), `cancel` stops it,
    /// and every request is answered with the status.
    fn message(&mut self, h: &mut impl Host, msg: &Message) -> Outcome<Result<Reply, String>> {
        if msg.kind != "user" {
            return Ok(Err(format!(
                "the pi scheduler takes \"user\" messages, not {:?}",
                msg.kind
            )));
        }
        let request = match Request::parse(&msg.body) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let current = run::run(h)?;
        let going = current.as_ref().is_some_and(|r| r.phase == Phase::Running);
        let mut commands = Vec::new();
        match request {
            Request::Status(_) => {}
            Request::Run(_) if going => {
                return Ok(Err(
                    "a run is in progress: wait for it, or send {\"cancel\": {}}".into(),
                ));
            }
            Request::Run(r) => {
                let id = current.map_or(1, |c| c.id + 1);
                let run = match Run::start(id, r, h.now_ms()) {
                    Ok(run) => run,
                    Err(e) => return Ok(Err(e)),
                };
                for piece in 0..run.tasks {
                    h.set_json(&run::todo_key(piece), &1u32)?;
                }
                h.info(&format!(
                    "run {id}: {} tasks of {} samples (by {})",
                    run.tasks, run.samples, msg.sender
                ));
                run::set_run(h, &run)?;
                commands.push(cmd::revive());
            }
            Request::Cancel(_) => {
                if let Some(mut run) = current.filter(|r| r.phase == Phase::Running) {
                    for key in h.list_all(TODO) {
                        h.delete(&key);
                    }
                    for key in h.list_all(TASKS) {
                        h.delete(&key);
                        commands.push(cmd::kill(&key[TASKS.len()..]));
                    }
                    run.phase = Phase::Cancelled;
                    run.ended_ms = h.now_ms();
                    run::set_run(h, &run)?;
                    h.info(&format!("run {} cancelled by {}", run.id, msg.sender));
                    commands.push(cmd::suppress());
                }
            }
        }
        Ok(Ok(cmd::reply_json(&status(h)?, commands)))
    }
}

/// The reply to every message.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The run's number (0: none yet).
    pub run: u64,
    /// "idle", "running", "finished" or "cancelled".
    pub state: &'static str,
    pub tasks: u32,
    pub samples_per_task: u64,
    /// Pieces whose result was counted.
    pub done: u32,
    /// Pieces launched and not yet ended.
    pub running: usize,
    /// Pieces waiting for offers.
    pub queued: usize,
    pub retries: u32,
    /// Pieces given up on.
    pub failed: u32,
    /// Pieces that finished without a usable result payload.
    pub missing_results: u32,
    pub hits: u64,
    pub samples: u64,
    /// 4 × hits / samples; null until a result has been counted.
    pub pi: Option<f64>,
    pub elapsed_ms: u64,
}

pub fn status(h: &impl Host) -> Outcome<Status> {
    let run = run::run(h)?;
    let Some(r) = run else {
        return Ok(Status {
            run: 0,
            state: "idle",
            tasks: 0,
            samples_per_task: 0,
            done: 0,
            running: 0,
            queued: 0,
            retries: 0,
            failed: 0,
            missing_results: 0,
            hits: 0,
            samples: 0,
            pi: None,
            elapsed_ms: 0,
        });
    };
    let end = if r.phase == Phase::Running {
        h.now_ms()
    } else {
        r.ended_ms
    };
    Ok(Status {
        run: r.id,
        state: match r.phase {
            Phase::Running => "running",
            Phase::Finished => "finished",
            Phase::Cancelled => "cancelled",
        },
        tasks: r.tasks,
        samples_per_task: r.samples,
        done: r.done,
        running: h.list_all(TASKS).len(),
        queued: h.list_all(TODO).len(),
        retries: r.retries,
        failed: r.failed,
        missing_results: r.missing,
        hits: r.hits,
        samples: r.counted_samples,
        pi: r.estimate(),
        elapsed_ms: end.saturating_sub(r.started_ms),
    })
}

#[cfg(test)]
mod tests;
