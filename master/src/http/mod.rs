//! Plain HTTP beside gRPC on the master's one listener: the web UI (static
//! files embedded in the binary, `ui`), its JSON API under `/api/v1/`
//! (`api`, documented in `master/ui/openapi.yaml`), live updates as
//! server-sent events (`sse`), Prometheus metrics (`metrics`) and a health
//! check.
//!
//! Every route sits behind the principal middleware (`auth.rs`) like the
//! gRPC services: handlers take the caller's [`Principal`] from the request
//! and never decide on their own who is asking. The event stream is an
//! ordinary GET on the same origin, so the session cookie that signs the
//! pages in signs it in too.
//!
//! Everything read here comes from the same core queries and store pages
//! as the CLI's gRPC API (`core/query.rs`, `task_list.rs`), so the two show
//! the same numbers. Signing the UI in and out is `session`.

mod api;
mod json;
mod metrics;
mod session;
mod sse;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

use crate::commit::Committer;
use crate::core::CoreHandle;
use crate::logs::LogRouter;
use crate::tenancy::Registry;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    core: CoreHandle,
    committer: Committer,
    logs: LogRouter,
    live: Arc<sse::Live>,
    /// Tenants and tokens, for signing in.
    registry: Arc<Registry>,
    /// Served over TLS (session cookies are then `Secure`).
    pub tls: bool,
    /// Fires when the master stops; ends the event streams.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl HttpState {
    /// `shutdown` ends the live streams with the master.
    pub fn new(
        core: CoreHandle,
        committer: Committer,
        logs: LogRouter,
        registry: Arc<Registry>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            core,
            committer,
            logs,
            live: Arc::default(),
            registry,
            tls: false,
            shutdown,
        }
    }
}

/// The HTTP routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/events", get(sse::events))
        .merge(session::routes())
        .merge(api::routes())
        .merge(ui::routes())
        .with_state(state)
}

/// An API error: a status and a message, answered as JSON
/// (`{"error": {"code": 404, "message": "..."}}`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: s.message().to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.status.as_u16(), "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod scale;
#[cfg(test)]
mod tests;
