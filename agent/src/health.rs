//! The agent's own HTTP listener: a health check and a small JSON view of
//! its link and tasks. (The agent dials the master; this listener is for
//! operators and monitoring only.)

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use serde_json::{Value, json};

use crate::link::LinkStatus;
use crate::tasks::TaskManager;

#[derive(Clone)]
pub struct HealthState {
    pub link: Arc<Mutex<LinkStatus>>,
    pub tasks: TaskManager,
    pub resources: String,
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/v1/state", get(status))
        .with_state(state)
}

async fn status(State(s): State<HealthState>) -> Json<Value> {
    let link = s.link.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({
        "agent_id": link.agent_id,
        "master": link.master,
        "connected": link.connected,
        "last_error": link.last_error,
        "resources": s.resources,
        "tasks_running": s.tasks.count(),
        "task_threads": s.tasks.task_threads(),
        "finished_tasks_kept": s.tasks.finished_kept(),
        "status_updates_unacknowledged": s.tasks.outbox().pending(),
    }))
}
