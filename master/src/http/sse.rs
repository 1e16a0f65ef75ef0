//! The live channel behind the UI: server-sent events at `/api/v1/events`.
//!
//! A burst of 10,000 task updates must not become 10,000 messages to every
//! browser, so each client's stream is coalesced: task changes gather in a
//! set and go out at most every [`TASK_TICK`] as one `tasks` event naming
//! the tasks that changed (at most [`MAX_TASKS`]; past that, or when this
//! client fell behind the core's broadcast, a `resync` event tells the page
//! to reload what it shows). The overview's figures go out as a `summary`
//! event every [`SUMMARY_TICK`], computed for this client's principal from
//! the same query as `/api/v1/summary`.
//!
//! The stream is a plain same-origin GET: the principal middleware resolves
//! its caller exactly as for the pages (an `EventSource` cannot send an
//! Authorization header, but it does send the origin's cookies). Streams
//! end with the master, so a graceful shutdown is not held open by them,
//! and their number is capped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use wasmesos_api::Principal;

use super::{ApiError, HttpState};
use crate::core::ClusterEvent;

/// How often changed tasks are sent, at most.
pub const TASK_TICK: Duration = Duration::from_millis(500);
/// How often the overview's figures are sent.
pub const SUMMARY_TICK: Duration = Duration::from_secs(2);
/// Most tasks named in one `tasks` event; more changes become `resync`.
pub const MAX_TASKS: usize = 200;
/// Most event streams open at once.
pub const MAX_STREAMS: usize = 256;

/// Limits shared by every stream.
#[derive(Debug)]
pub struct Live {
    streams: Arc<Semaphore>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

/// `GET /api/v1/events`.
pub async fn events(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let Ok(permit) = state.live.streams.clone().try_acquire_owned() else {
        return ApiError::unavailable(format!(
            "too many live streams open (at most {MAX_STREAMS}); close some pages"
        ))
        .into_response();
    };
    // Subscribe before the first summary, so no change falls in between.
    let events = state.core.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(16);
    tokio::spawn(async move {
        let _permit = permit;
        Stream {
            state,
            who,
            events,
            tx,
        }
        .run()
        .await;
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Stream {
    state: HttpState,
    who: Principal,
    events: broadcast::Receiver<ClusterEvent>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
}

/// Resolves once the master stops (the guard `wait_for` returns is not
/// `Send`, so it must not live inside the select).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// What changed since the last `tasks` event.
#[derive(Default)]
struct Pending {
    /// (framework name, task id) → state name.
    tasks: BTreeMap<(String, String), &'static str>,
    resync: bool,
}

impl Stream {
    async fn run(mut self) {
        let mut shutdown = self.state.shutdown.clone();
        let mut pending = Pending::default();
        let mut task_tick = tokio::time::interval(TASK_TICK);
        let mut summary_tick = tokio::time::interval(SUMMARY_TICK);
        summary_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        task_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(ClusterEvent::Task(t)) => {
                        if self.who.is_operator() || t.tenant == self.who.tenant.as_str() {
                            pending.tasks.insert((t.framework_name.clone(), t.task_id.clone()), t.state().name());
                            if pending.tasks.len() > MAX_TASKS {
                                pending.resync = true;
                                pending.tasks.clear();
                            }
                        }
                    }
                    Ok(ClusterEvent::Job(_)) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        pending.resync = true;
                        pending.tasks.clear();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = task_tick.tick() => {
                    if !self.flush(&mut pending).await {
                        return;
                    }
                }
                _ = summary_tick.tick() => {
                    if !self.send_summary().await {
                        return;
                    }
                }
                _ = stopped(&mut shutdown) => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Sends what gathered; false once the client is gone.
    async fn flush(&mut self, pending: &mut Pending) -> bool {
        let event = if std::mem::take(&mut pending.resync) {
            Event::default().event("resync").data("{}")
        } else if pending.tasks.is_empty() {
            return true;
        } else {
            let tasks: Vec<_> = std::mem::take(&mut pending.tasks)
                .into_iter()
                .map(|((framework, id), state)| json!({"framework": framework, "id": id, "state": state}))
                .collect();
            Event::default()
                .event("tasks")
                .data(json!({ "tasks": tasks }).to_string())
        };
        self.tx.send(Ok(event)).await.is_ok()
    }

    async fn send_summary(&mut self) -> bool {
        let event = match super::api::summary_value(&self.state, &self.who).await {
            Ok(v) => Event::default().event("summary").data(v.to_string()),
            Err(e) => Event::default()
                .event("error")
                .data(json!({ "message": e.message }).to_string()),
        };
        self.tx.send(Ok(event)).await.is_ok()
    }
}
