//! Signing the web UI in and out. `POST /login` checks a bearer token and
//! keeps it in a session cookie (HttpOnly: page scripts cannot read it;
//! SameSite=Strict: other sites cannot make the browser send it), which
//! the pages' API calls and the live event stream then carry by
//! themselves. `GET /api/v1/whoami` says who is signed in.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use http::header::SET_COOKIE;
use serde::Deserialize;
use serde_json::{Value, json};
use wasmesos_api::{Principal, PrincipalKind, now_ms};

use super::HttpState;
use crate::auth::SESSION_COOKIE;
use crate::tenancy::Registry;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/login",
            get(|| async { super::ui::serve("login.html") }).post(login),
        )
        .route("/logout", get(logout).post(logout))
        .route("/api/v1/whoami", get(whoami))
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn login(State(state): State<HttpState>, Form(form): Form<SignIn>) -> Response {
    let registry: &Arc<Registry> = &state.registry;
    let token = form.token.trim();
    match registry.authenticate(token, now_ms()) {
        Ok(who) if who.is_agent() => back_to_login("an agent token cannot sign in to the UI"),
        Ok(who) => {
            tracing::info!(principal = %who.name, "signed in to the web UI");
            // Secure when served over TLS: the browser then never sends it
            // in plaintext.
            let secure = if state.tls { "; Secure" } else { "" };
            let cookie =
                format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
            ([(SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => back_to_login(&e.to_string()),
    }
}

fn back_to_login(reason: &str) -> Response {
    let query: String = reason
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    Redirect::to(&format!("/login?error={query}")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

async fn whoami(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
) -> Json<Value> {
    Json(whoami_value(&state.registry, &who))
}

/// The caller as the API shows it.
pub fn whoami_value(registry: &Registry, who: &Principal) -> Value {
    let kind = match who.kind {
        PrincipalKind::Operator => "operator",
        PrincipalKind::Tenant => "tenant",
        PrincipalKind::Agent => "agent",
    };
    json!({
        "name": who.name,
        "tenant": who.tenant.as_str(),
        "kind": kind,
        "roles": registry.roles_of(who),
    })
}
