//! Every request, gRPC or HTTP, resolves to a [`Principal`] before a
//! handler runs. Until tokens exist, an unauthenticated caller on loopback
//! is the admin and anyone else is refused — so no handler is ever written
//! without a principal to check.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tonic::Status;
use wasmesos_api::Principal;

/// Axum middleware: puts the caller's principal in the request extensions,
/// or refuses the request.
pub async fn resolve_principal(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match principal_for(
        peer,
        request.headers().get(http::header::AUTHORIZATION).is_some(),
    ) {
        Ok(p) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        Err(message) => {
            let grpc = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/grpc"));
            if grpc {
                Status::unauthenticated(message).into_http()
            } else {
                (StatusCode::UNAUTHORIZED, message).into_response()
            }
        }
    }
}

fn principal_for(peer: SocketAddr, has_token: bool) -> Result<Principal, String> {
    if has_token {
        return Err(
            "bearer tokens are not supported by this master yet; connect over loopback without one"
                .into(),
        );
    }
    if peer.ip().is_loopback() {
        return Ok(Principal::loopback_admin());
    }
    Err(format!(
        "{peer} is not on loopback and presented no credentials; until tenancy lands only loopback callers are served"
    ))
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

    #[test]
    fn loopback_is_admin_and_others_are_refused() {
        let local: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        assert!(principal_for(local, false).unwrap().operator);
        let v6: SocketAddr = "[::1]:1234".parse().unwrap();
        assert!(principal_for(v6, false).is_ok());
        let remote: SocketAddr = "10.0.0.5:1234".parse().unwrap();
        assert!(principal_for(remote, false).is_err());
        assert!(principal_for(local, true).is_err());
    }
}
