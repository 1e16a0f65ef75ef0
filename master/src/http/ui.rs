//! The web UI's static files (`master/ui/`), embedded in the binary so a
//! master serves its UI with nothing beside it. Plain HTML, CSS and
//! JavaScript modules, no build step: the pages fetch the JSON API and
//! follow `/api/v1/events`.
//!
//! Every file goes out with a Content-Security-Policy that allows only this
//! origin's scripts and no inline script at all, as a second wall behind the
//! pages' own rule of never putting data into HTML (task output is text).

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use http::{Method, StatusCode};

use super::HttpState;

/// An embedded file: its name under `/ui/`, type and contents.
struct Asset {
    name: &'static str,
    kind: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $kind:expr) => {
        Asset {
            name: $name,
            kind: $kind,
            body: include_str!(concat!("../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("dom.js", JS),
    asset!("live.js", JS),
    asset!("overview.js", JS),
    asset!("cluster.js", JS),
    asset!("tasks.js", JS),
    asset!("login.html", "text/html; charset=utf-8"),
    asset!("login.js", JS),
    asset!("openapi.yaml", "application/yaml; charset=utf-8"),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
        // Not a fallback: the gRPC router has that. Unknown gRPC calls
        // still get UNIMPLEMENTED; a browser gets a page.
        .route("/{*rest}", any(unknown))
}

async fn unknown(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        not_found().await
    } else {
        tonic::Status::unimplemented("no such method").into_http()
    }
}

pub(super) fn serve(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => respond(StatusCode::OK, a.kind, a.body),
        None => not_found_page(),
    }
}

fn respond(status: StatusCode, kind: &'static str, body: &'static str) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, kind),
            // Small files from the binary itself: always revalidate, so an
            // upgraded master is never shown with an old page.
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `/api/v1/openapi.yaml`.
pub async fn openapi() -> Response {
    serve("openapi.yaml")
}

async fn not_found() -> Response {
    not_found_page()
}

/// Any other path: a small 404 page pointing home.
fn not_found_page() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        "<!doctype html><meta charset=utf-8><title>Not found · wasmesos</title>\
         <link rel=stylesheet href=/ui/style.css>\
         <main class=notfound><h1>404</h1><p>Nothing here. \
         <a href=\"/\">Back to the cluster overview</a>.</p></main>",
    )
}

/// The names of the embedded files (for tests).
#[cfg(test)]
pub fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}
