//! Serving the master's log requests: a task's stdout and/or stderr, from
//! the live log (following it as it grows, if asked) or from the file an
//! earlier run left. Data goes up the agent's stream tagged with the
//! request id; each stream ends with an `eof` piece.

use tokio::sync::mpsc;
use wasmesos_api::proto::{AgentMessage, LogData, LogRequest, LogStream, agent_message};
use wasmesos_runtime::{CancellationToken, LogFollower, LogStart};

use crate::tasks::{LogSource, TaskManager};

/// How long a log request waits for a task the agent does not know yet.
const UNKNOWN_TASK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves one request until done or cancelled.
pub async fn serve(
    tasks: TaskManager,
    req: LogRequest,
    out: mpsc::UnboundedSender<AgentMessage>,
    cancel: CancellationToken,
) {
    let streams = match req.stream() {
        LogStream::Unspecified => vec![LogStream::Stdout, LogStream::Stderr],
        one => vec![one],
    };
    let serving = streams
        .into_iter()
        .map(|stream| serve_stream(&tasks, &req, stream, &out));
    tokio::select! {
        _ = futures::future::join_all(serving) => {}
        _ = cancel.cancelled() => {}
    }
    // Marks the request done, so the session can forget it.
    cancel.cancel();
}

async fn serve_stream(
    tasks: &TaskManager,
    req: &LogRequest,
    stream: LogStream,
    out: &mpsc::UnboundedSender<AgentMessage>,
) {
    let send = |data: Vec<u8>, eof: bool, error: String| {
        out.send(AgentMessage {
            msg: Some(agent_message::Msg::Log(LogData {
                request_id: req.request_id,
                stream: stream as i32,
                data,
                eof,
                error,
            })),
        })
        .is_ok()
    };
    let start = if req.tail_bytes > 0 {
        LogStart::Tail(req.tail_bytes)
    } else {
        LogStart::Beginning
    };
    // A client may ask for a task's logs as soon as the master has stored
    // its launch, which can reach this agent a moment after the request:
    // give an unknown task a little time to appear.
    let mut source = tasks.log_source(&req.framework_id, &req.task_id, stream);
    let deadline = tokio::time::Instant::now() + UNKNOWN_TASK_GRACE;
    while source.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        source = tasks.log_source(&req.framework_id, &req.task_id, stream);
    }
    let follower = match source {
        Some(LogSource::Live(file)) if req.follow => Ok(file.follow(start)),
        Some(LogSource::Live(file)) => {
            // A snapshot: what was written so far, then the end.
            file.flush();
            match file.path() {
                Some(path) => LogFollower::open(path, start),
                None => Ok(file.follow(start)),
            }
        }
        Some(LogSource::File(path)) => LogFollower::open(&path, start),
        Some(LogSource::Growing(path, ended)) if req.follow => {
            LogFollower::growing(&path, start, ended)
        }
        // A snapshot of what the executor has flushed so far.
        Some(LogSource::Growing(path, _)) => LogFollower::open(&path, start),
        Some(LogSource::Removed) => {
            send(
                Vec::new(),
                true,
                format!(
                    "logs of {} were removed after the retention period",
                    req.task_id
                ),
            );
            return;
        }
        None => {
            send(
                Vec::new(),
                true,
                format!(
                    "this agent has no task {}/{}",
                    req.framework_id, req.task_id
                ),
            );
            return;
        }
    };
    let mut follower = match follower {
        Ok(f) => f,
        Err(e) => {
            send(Vec::new(), true, format!("cannot read the log: {e}"));
            return;
        }
    };
    loop {
        match follower.next_chunk().await {
            Ok(Some(chunk)) => {
                if !send(chunk, false, String::new()) {
                    return;
                }
            }
            Ok(None) => {
                send(Vec::new(), true, String::new());
                return;
            }
            Err(e) => {
                send(Vec::new(), true, format!("reading the log: {e}"));
                return;
            }
        }
    }
}
