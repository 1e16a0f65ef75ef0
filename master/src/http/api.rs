//! The JSON API under `/api/v1/` (described in `master/ui/openapi.yaml`):
//! summary, agents, frameworks, tasks with their logs, roles. Lists that
//! grow with the cluster are paged and filtered on the server, and page
//! sizes are clamped to [`MAX_LIMIT`]; unknown ids answer 404 with a JSON
//! error.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Path, Query as Params, State};
use axum::response::Json;
use axum::routing::get;
use serde_json::{Map, Value, json};
use wasmesos_api::proto::{self, AgentState, LogStream, TaskState};
use wasmesos_api::{AgentId, Principal};

use super::{ApiError, HttpState, json as views};
use crate::core::{AgentFilter, Query};
use crate::resolve::{resolve_task, visible_frameworks};
use crate::task_list::{self, Extra};
use crate::watch::open_logs;

/// Largest page any list returns; larger requests are clamped.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;
/// Default and largest log tail, in bytes.
const DEFAULT_TAIL: u64 = 64 << 10;
const MAX_TAIL: u64 = 1 << 20;
/// How long a log request waits for the agent.
const LOG_WAIT: Duration = Duration::from_secs(10);

type ApiResult = Result<Json<Value>, ApiError>;
type Args = Params<HashMap<String, String>>;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{id}", get(agent))
        .route("/api/v1/frameworks", get(frameworks))
        .route("/api/v1/frameworks/{name}", get(framework))
        .route("/api/v1/tasks", get(tasks))
        .route("/api/v1/tasks/{framework}/{task}", get(task))
        .route("/api/v1/tasks/{framework}/{task}/logs", get(logs))
        .route("/api/v1/roles", get(roles))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/openapi.yaml", get(super::ui::openapi))
        .route("/api/v1/{*rest}", get(unknown))
}

async fn unknown(Path(rest): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "no API endpoint /api/v1/{rest} (see /api/v1/openapi.yaml)"
    ))
}

/// A page size: the default when absent, clamped to [`MAX_LIMIT`].
fn limit(args: &HashMap<String, String>) -> Result<usize, ApiError> {
    match args.get("limit").map(|s| s.trim()) {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Ok(DEFAULT_LIMIT),
            Ok(n) => Ok(n.min(MAX_LIMIT)),
            Err(_) => Err(ApiError::bad_request(format!(
                "limit must be a whole number, got '{text}'"
            ))),
        },
    }
}

fn arg<'a>(args: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    args.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The cluster in figures: the overview page.
pub async fn summary_value(state: &HttpState, who: &Principal) -> Result<Value, ApiError> {
    let s = state.core.query(Query::Summary).await?;
    let mut frameworks = visible_frameworks(&state.core, who).await?;
    frameworks.sort_by(|a, b| b.dominant_share.total_cmp(&a.dominant_share));
    let store = state.committer.store();
    let masters = if store.shared() {
        crate::standby::masters(store)
            .await
            .map_err(|e| ApiError::from(tonic::Status::unavailable(e.to_string())))?
    } else {
        Vec::new()
    };
    let by_state: Map<String, Value> = s
        .tasks
        .by_state()
        .into_iter()
        .map(|(st, n)| (st.name().to_string(), json!(n)))
        .collect();
    let active: u64 = [TaskState::Staging, TaskState::Starting, TaskState::Running]
        .into_iter()
        .map(|st| s.tasks.get(st))
        .sum();
    let st = &s.status;
    Ok(json!({
        "version": st.version,
        "store": st.store,
        "leader": st.advertise,
        "leader_epoch": st.leader_epoch,
        "masters": masters,
        "started_ms": st.started_ms,
        "rss_bytes": st.rss_bytes,
        "agents": {
            "total": s.agents_active + s.agents_disconnected,
            "active": s.agents_active,
            "disconnected": s.agents_disconnected,
            "draining": s.agents_draining,
        },
        "resources": {
            "total": views::resources(st.total.as_ref()),
            "used": views::resources(st.used.as_ref()),
        },
        "tasks": {
            "total": s.tasks.total(),
            "active": active,
            "by_state": by_state,
        },
        "frameworks": frameworks.iter().map(|f| json!({
            "name": f.name,
            "role": f.role,
            "status": f.status,
            "dominant_share": f.dominant_share,
            "tasks_running": f.tasks_running,
        })).collect::<Vec<_>>(),
        "roles": s.roles,
        "offers_outstanding": s.offers_outstanding,
    }))
}

async fn summary(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
) -> ApiResult {
    Ok(Json(summary_value(&state, &who).await?))
}

async fn agents(State(state): State<HttpState>, Params(args): Args) -> ApiResult {
    let after = arg(&args, "after")
        .map(|a| AgentId::new(a).map_err(|e| ApiError::bad_request(format!("after: {e}"))))
        .transpose()?;
    let (state_filter, draining) = match arg(&args, "state").map(str::to_ascii_uppercase) {
        None => (None, None),
        Some(s) if s == "ACTIVE" => (Some(AgentState::Active), None),
        Some(s) if s == "DISCONNECTED" => (Some(AgentState::Disconnected), None),
        Some(s) if s == "DRAINING" => (None, Some(true)),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "unknown agent state '{s}': one of active, disconnected, draining"
            )));
        }
    };
    let filter = AgentFilter {
        after,
        limit: limit(&args)?,
        state: state_filter,
        draining,
        text: arg(&args, "q").map(str::to_string),
    };
    let page = state
        .core
        .query(|reply| Query::AgentPage(filter, reply))
        .await?;
    Ok(Json(json!({
        "agents": page.agents.iter().map(views::agent).collect::<Vec<_>>(),
        "next": page.next,
        "total": page.total,
    })))
}

async fn agent(State(state): State<HttpState>, Path(id): Path<String>) -> ApiResult {
    let not_found = || ApiError::not_found(format!("no agent '{id}'"));
    let agent_id = AgentId::new(id.clone()).map_err(|_| not_found())?;
    let (agent, tasks) = state
        .core
        .query(|reply| Query::Agent(agent_id, reply))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({
        "agent": views::agent(&agent),
        "tasks": tasks.iter().map(views::task_row).collect::<Vec<_>>(),
        "tasks_truncated": tasks.len() >= crate::core::AGENT_TASKS,
    })))
}

async fn frameworks(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
) -> ApiResult {
    let frameworks = visible_frameworks(&state.core, &who).await?;
    Ok(Json(json!({
        "frameworks": frameworks.iter().map(views::framework).collect::<Vec<_>>(),
    })))
}

async fn framework(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    let detail = state
        .core
        .query(|reply| Query::Framework(who, name, reply))
        .await??;
    let framework = detail.framework.unwrap_or_default();
    Ok(Json(json!({
        "framework": views::framework(&framework),
        "log": detail.log.iter().map(|l| json!({
            "timestamp_ms": l.timestamp_ms,
            "level": l.level,
            "message": l.message,
        })).collect::<Vec<_>>(),
    })))
}

async fn tasks(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
    Params(args): Args,
) -> ApiResult {
    let task_state = match arg(&args, "state") {
        None => TaskState::Unspecified,
        Some(s) => TaskState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown task state '{s}': one of staging, starting, running, finished, failed, killed, lost, error"
            ))
        })?,
    };
    let limit = limit(&args)?;
    let req = proto::ListTasksRequest {
        state: task_state as i32,
        framework: arg(&args, "framework").unwrap_or_default().to_string(),
        agent_id: arg(&args, "agent").unwrap_or_default().to_string(),
        include_queued: arg(&args, "queued") == Some("true"),
        limit: limit as u32,
        page_token: arg(&args, "page_token").unwrap_or_default().to_string(),
    };
    let extra = Extra {
        name_contains: arg(&args, "q").unwrap_or_default().to_string(),
        max_page: MAX_LIMIT,
    };
    let page = task_list::list_tasks(&state.committer, &who, req, &extra).await?;
    Ok(Json(json!({
        "tasks": page.tasks.iter().map(views::task_row).collect::<Vec<_>>(),
        "queued": page.queued.iter().map(views::job).collect::<Vec<_>>(),
        "next_page_token": (!page.next_page_token.is_empty()).then_some(page.next_page_token),
        "limit": limit,
    })))
}

/// A task named by its framework and id (not a job id: the UI links to
/// tasks).
async fn find_task(
    state: &HttpState,
    who: &Principal,
    framework: &str,
    task: &str,
) -> Result<proto::Task, ApiError> {
    let resolved = resolve_task(
        &state.core,
        &state.committer,
        who,
        &format!("{framework}/{task}"),
    )
    .await?;
    resolved
        .task
        .filter(|t| t.task_id == task)
        .ok_or_else(|| ApiError::not_found(format!("no task '{task}' in framework '{framework}'")))
}

async fn task(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
    Path((framework, id)): Path<(String, String)>,
) -> ApiResult {
    let task = find_task(&state, &who, &framework, &id).await?;
    Ok(Json(views::task(&task)))
}

/// The tail of one of a task's streams, relayed from its agent as
/// `wasmesos logs` does.
async fn logs(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
    Path((framework, id)): Path<(String, String)>,
    Params(args): Args,
) -> ApiResult {
    let stream = match arg(&args, "stream").unwrap_or("stdout") {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        other => {
            return Err(ApiError::bad_request(format!(
                "stream must be stdout or stderr, got '{other}'"
            )));
        }
    };
    let tail = match arg(&args, "tail") {
        None => DEFAULT_TAIL,
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| {
                ApiError::bad_request(format!("tail must be a number of bytes, got '{t}'"))
            })?
            .clamp(1, MAX_TAIL),
    };
    let task = find_task(&state, &who, &framework, &id).await?;
    let mut sub = open_logs(&state.core, &state.logs, &task, stream, false, tail).await?;
    let mut data = Vec::new();
    let deadline = tokio::time::Instant::now() + LOG_WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, sub.rx.recv())
            .await
            .map_err(|_| {
                ApiError::from(tonic::Status::unavailable(format!(
                    "agent {} did not send the log within {}s; try again",
                    task.agent_id,
                    LOG_WAIT.as_secs()
                )))
            })?;
        let Some(d) = next else { break };
        if !d.error.is_empty() {
            return Err(tonic::Status::unavailable(d.error).into());
        }
        data.extend_from_slice(&d.data);
        if d.eof {
            break;
        }
    }
    let name = if stream == LogStream::Stdout {
        "stdout"
    } else {
        "stderr"
    };
    Ok(Json(json!({
        "task": task.task_id,
        "framework": task.framework_name,
        "stream": name,
        "state": task.state().name(),
        "tail": tail,
        "bytes": data.len(),
        "text": String::from_utf8_lossy(&data),
    })))
}

/// The audit log, newest first (operators only): the same entries and
/// filters as `wasmesos audit`.
async fn audit(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
    Params(params): Params<HashMap<String, String>>,
) -> ApiResult {
    if !who.is_operator() {
        return Err(ApiError::from(tonic::Status::permission_denied(
            "only operators may read the audit log",
        )));
    }
    let text = |k: &str| params.get(k).cloned().unwrap_or_default();
    let number = |k: &str| -> Result<u64, ApiError> {
        params.get(k).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{k} must be a number, got '{v}'")))
        })
    };
    let request = proto::ListAuditRequest {
        limit: u32::try_from(number("limit")?).unwrap_or(u32::MAX),
        tenant: text("tenant"),
        principal: text("principal"),
        action: text("action"),
        before: number("before")?,
    };
    let entries = crate::audit_log::read(&state.committer, request)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json!({
        "entries": entries.iter().map(|e| json!({
            "seq": e.seq,
            "ts_ms": e.ts_ms,
            "principal": e.principal,
            "tenant": e.tenant,
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
        })).collect::<Vec<_>>(),
    })))
}

async fn roles(State(state): State<HttpState>) -> ApiResult {
    let roles = state.core.query(Query::Roles).await?;
    Ok(Json(json!({
        "roles": roles.iter().map(views::role).collect::<Vec<_>>(),
    })))
}
