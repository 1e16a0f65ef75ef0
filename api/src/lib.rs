//! The wire protocol and shared vocabulary of wasmesos.
//!
//! - [`proto`]: the gRPC services and messages generated from `proto/`
//!   (the client API `Master`, the agent protocol `AgentLink`), also the
//!   record format the master stores.
//! - Newtype ids ([`AgentId`], [`FrameworkId`], [`TaskId`], [`JobId`],
//!   [`OfferId`], [`TenantId`]) so that ids never cross module boundaries as
//!   bare strings.
//! - [`Resources`] arithmetic in fixed point, and [`parse_size`] /
//!   [`parse_resources`] for the CLI's human-friendly forms (`4GiB`,
//!   `cpus:2,mem:4GiB`).
//! - [`Principal`]: who a request is made by; every object has a tenant.
//! - [`Bearer`]: the token every client call carries; [`endpoint`]: how
//!   clients dial (TLS for https://, no plaintext tokens off loopback).
//! - [`Digest`]: content addresses of modules (`sha256:<hex>`).
//!
//! Every other crate depends on this one; it depends on none of them.

mod bearer;
mod dial;
mod digest;
mod ids;
mod principal;
mod resources;
pub mod secret_file;
mod size;
mod state;

pub use bearer::{AuthedChannel, Bearer, InvalidToken};
pub use dial::{DialError, endpoint};
pub use digest::{Digest, DigestError, Hasher};
pub use ids::{AgentId, FrameworkId, IdError, JobId, OfferId, TaskId, TenantId};
pub use principal::{Kind as PrincipalKind, Principal};
pub use resources::{ParseResourcesError, Resources, parse_resources};
pub use size::{ParseSizeError, format_size, parse_size};
pub use state::{job_state_name, task_state_name};

/// Generated protobuf and gRPC code (package `wasmesos.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("wasmesos.v1");
}

/// The default address of a master (gRPC and HTTP share it).
pub const DEFAULT_MASTER: &str = "http://127.0.0.1:5050";

/// Milliseconds since the Unix epoch, for timestamps in records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
