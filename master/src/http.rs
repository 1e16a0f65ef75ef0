//! Plain HTTP beside gRPC on the master's one listener: a health check, a
//! JSON summary of the cluster, and a small page pointing at both. (The web
//! UI and the full JSON API are their own piece of work.)

use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use wasmesos_api::proto;
use wasmesos_api::{Principal, Resources, format_size};

use crate::core::{CoreHandle, Query};
use crate::resolve::visible_frameworks;

/// The HTTP routes.
pub fn router(core: CoreHandle) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/v1/state", get(state))
        .with_state(core)
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><title>wasmesos</title><h1>wasmesos master</h1>\
         <p>gRPC and HTTP share this address. Try <code>wasmesos tasks</code>, \
         or the JSON state at <a href=\"/api/v1/state\">/api/v1/state</a>.</p>",
    )
}

fn resources(r: Option<&proto::Resources>) -> Value {
    let r = Resources::from(r);
    json!({
        "cpus": r.cpus(),
        "mem": format_size(r.mem_bytes),
        "disk": format_size(r.disk_bytes),
        "mem_bytes": r.mem_bytes,
        "disk_bytes": r.disk_bytes,
    })
}

async fn state(State(core): State<CoreHandle>, Extension(who): Extension<Principal>) -> Response {
    let result = async {
        let status = core.query(Query::Status).await?;
        let agents = core.query(Query::Agents).await?;
        let frameworks = visible_frameworks(&core, &who).await?;
        Ok::<_, tonic::Status>((status, agents, frameworks))
    }
    .await;
    let (status, agents, frameworks) = match result {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::SERVICE_UNAVAILABLE, e.message().to_string()).into_response();
        }
    };
    Json(json!({
        "version": status.version,
        "store": status.store,
        "leader_epoch": status.leader_epoch,
        "advertise": status.advertise,
        "started_ms": status.started_ms,
        "tasks_active": status.tasks_active,
        "total": resources(status.total.as_ref()),
        "used": resources(status.used.as_ref()),
        "agents": agents.iter().map(|a| json!({
            "id": a.agent_id,
            "hostname": a.hostname,
            "address": a.address,
            "state": format!("{:?}", a.state()).to_uppercase(),
            "total": resources(a.total.as_ref()),
            "used": resources(a.used.as_ref()),
            "tasks_running": a.tasks_running,
            "last_heartbeat_ms": a.last_heartbeat_ms,
        })).collect::<Vec<_>>(),
        "frameworks": frameworks.iter().map(|f| json!({
            "id": f.framework_id,
            "name": f.name,
            "tenant": f.tenant,
            "role": f.role,
            "weight": f.weight,
            "status": f.status,
            "tasks_running": f.tasks_running,
            "dominant_share": f.dominant_share,
            "allocated": resources(f.allocated.as_ref()),
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}
