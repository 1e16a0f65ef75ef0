//! Every request, gRPC or HTTP, resolves to a [`Principal`] before a
//! handler runs, from a bearer token (`Authorization: Bearer wsm_…`) or,
//! for the web UI, the session cookie that signing in set (a browser's
//! EventSource cannot send a header; a same-origin cookie it sends by
//! itself). Nothing is served to an unauthenticated caller except the
//! sign-in page, the UI's static files and `/health`.
//!
//! Agents' tokens open the agent protocol (`AgentLink`) and nothing else;
//! no other token opens it. Refusals are logged with the caller's address
//! and say what to do; refusals of an authenticated caller also go to the
//! audit log (anonymous ones only to the log, so a flood of them costs no
//! writes).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;
use tonic::Status;
use wasmesos_api::{Principal, now_ms};

use crate::core::CoreHandle;
use crate::tenancy::Registry;

/// The UI's session cookie; its value is the bearer token itself, so that
/// revoking the token signs the browser out at once.
pub const SESSION_COOKIE: &str = "wasmesos_session";

const AGENT_SERVICE: &str = "/wasmesos.v1.AgentLink/";

/// What the middleware checks against, and where refusals of
/// authenticated callers are recorded.
#[derive(Clone)]
pub struct AuthState {
    pub registry: Arc<Registry>,
    pub core: CoreHandle,
}

/// Axum middleware: puts the caller's principal in the request extensions,
/// or refuses the request.
pub async fn resolve_principal(
    State(AuthState { registry, core }): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if is_public(request.method(), path) {
        return next.run(request).await;
    }
    let grpc = is_grpc(request.headers());
    let refusal = match credentials(request.headers()) {
        None => Refusal::Unauthenticated(
            "this master requires a bearer token: give --token-file or set WASMESOS_TOKEN \
             (a fresh master writes its admin token to admin.token in its data dir, and \
             wasmesos up saves it in the CLI's config file), or ask an operator for one \
             (wasmesos token create)"
                .to_string(),
        ),
        Some(bearer) => match registry.authenticate(bearer, now_ms()) {
            Err(e) => Refusal::Unauthenticated(e.to_string()),
            Ok(who) => match (service_check(&who, path), registry.admit(&who)) {
                (Err(reason), _) => Refusal::Denied(who, reason),
                (Ok(()), Err(reason)) => Refusal::Throttled(who, reason),
                (Ok(()), Ok(())) => {
                    request.extensions_mut().insert(who);
                    return next.run(request).await;
                }
            },
        },
    };
    let method = request.method().clone();
    let path = path.to_string();
    match refusal {
        Refusal::Unauthenticated(message) => {
            tracing::info!(%peer, %method, %path, "unauthenticated: {message}");
            if grpc {
                Status::unauthenticated(message).into_http()
            } else if wants_page(&method, &request) {
                Redirect::to("/login").into_response()
            } else {
                error(StatusCode::UNAUTHORIZED, message)
            }
        }
        Refusal::Throttled(who, message) => {
            tracing::debug!(%peer, principal = %who.name, %method, %path, "{message}");
            if grpc {
                Status::resource_exhausted(message).into_http()
            } else {
                error(StatusCode::TOO_MANY_REQUESTS, message)
            }
        }
        Refusal::Denied(who, message) => {
            tracing::warn!(%peer, principal = %who.name, %method, %path, "denied: {message}");
            let status = Status::permission_denied(message.clone());
            core.audit(&who, "request", format!("{method} {path}"), Some(&status));
            if grpc {
                Status::permission_denied(message).into_http()
            } else {
                error(StatusCode::FORBIDDEN, message)
            }
        }
    }
}

enum Refusal {
    Unauthenticated(String),
    Denied(Principal, String),
    /// Over its tenant's request rate.
    Throttled(Principal, String),
}

/// Agents speak the agent protocol only, and only agents speak it.
fn service_check(who: &Principal, path: &str) -> Result<(), String> {
    match (who.is_agent(), path.starts_with(AGENT_SERVICE)) {
        (true, true) | (false, false) => Ok(()),
        (true, false) => Err("an agent token is for agents to attach; use a user's token".into()),
        (false, true) => Err(
            "only agents may attach (start the agent with --token-file holding an agent token)"
                .into(),
        ),
    }
}

/// What anyone may fetch: the sign-in page, static UI files (the same for
/// everyone, no data), the health check.
fn is_public(method: &Method, path: &str) -> bool {
    matches!(path, "/login" | "/logout" | "/health")
        || (method == Method::GET && path.starts_with("/ui/"))
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A browser navigating to a page (sent to sign in) rather than a script
/// or tool calling the API (answered 401).
fn wants_page(method: &Method, request: &Request) -> bool {
    method == Method::GET
        && !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The bearer token of a request: its Authorization header, else its
/// session cookie.
fn credentials(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

fn error(status: StatusCode, message: String) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message}});
    (status, axum::Json(body)).into_response()
}

/// The principal of a gRPC request (set by [`resolve_principal`]).
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no principal resolved for this request"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tokens_come_from_the_header_or_the_session_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(credentials(&h), None);
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("theme=dark; wasmesos_session=wsm_abc; x=y"),
        );
        assert_eq!(credentials(&h), Some("wsm_abc"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wsm_def"),
        );
        assert_eq!(credentials(&h), Some("wsm_def"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        assert_eq!(credentials(&h), None);
    }

    #[test]
    fn agent_tokens_open_the_agent_protocol_only() {
        let agent = Principal::agent("a");
        let op = Principal::operator("o");
        let attach = "/wasmesos.v1.AgentLink/Attach";
        let submit = "/wasmesos.v1.Master/Submit";
        assert!(service_check(&agent, attach).is_ok());
        assert!(service_check(&agent, submit).is_err());
        assert!(service_check(&agent, "/api/v1/summary").is_err());
        assert!(service_check(&op, attach).is_err());
        assert!(service_check(&op, submit).is_ok());
    }
}
