//! The gRPC methods declared in the project's `.proto` files, read from
//! the files themselves, so a test that must cover every method cannot
//! miss a new one.

use std::path::Path;

/// One `rpc` of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    /// `/wasmesos.v1.SERVICE/METHOD`.
    pub path: String,
    /// The request is a stream.
    pub client_streaming: bool,
    /// The response is a stream.
    pub server_streaming: bool,
}

/// Every rpc of `service` in `api/proto/wasmesos/v1/<file>`, in order.
pub fn rpcs(file: &str, service: &str) -> Vec<Rpc> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../api/proto/wasmesos/v1")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let body = text
        .split(&format!("service {service} {{"))
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .unwrap_or_else(|| panic!("no service {service} in {file}"));
    let found: Vec<Rpc> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| {
            let name = l.split('(').next().unwrap_or_default().trim();
            let (args, returns) = l.split_once("returns").unwrap_or((l, ""));
            Rpc {
                path: format!("/wasmesos.v1.{service}/{name}"),
                client_streaming: args.contains("stream "),
                server_streaming: returns.contains("stream "),
            }
        })
        .collect();
    assert!(found.len() >= 2, "no rpcs found for {service}");
    found
}
