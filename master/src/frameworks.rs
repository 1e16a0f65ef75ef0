//! Checks and compilation behind the framework API (deploy, upgrade,
//! send): everything that can be refused before the core is involved, so a
//! bad request gets its error without touching shared state, and the
//! expensive compile runs off the core's loop.

use tonic::Status;
use wasmesos_api::proto;
use wasmesos_api::{Digest, FrameworkId, Principal};
use wasmesos_schedhost::{SchedHost, SchedulerComponent};

use crate::core::MAX_MESSAGE_BYTES;
use crate::modules::{ModuleError, ModuleStore};

/// Validates (and fills defaults in) a deploy request.
pub fn check_deploy(req: &mut proto::DeployFrameworkRequest) -> Result<(), Status> {
    // Names and roles become parts of store keys and of ids: same rules.
    FrameworkId::new(req.name.clone())
        .map_err(|e| Status::invalid_argument(format!("framework name: {e}")))?;
    // An empty role is the caller's tenant's first (filled by the core).
    if !req.role.is_empty() {
        FrameworkId::new(req.role.clone())
            .map_err(|e| Status::invalid_argument(format!("role: {e}")))?;
    }
    if !req.weight.is_finite() || req.weight < 0.0 {
        return Err(Status::invalid_argument(format!(
            "weight must be a positive number, got {}",
            req.weight
        )));
    }
    if let Some(k) = req.config.keys().find(|k| k.is_empty()) {
        return Err(Status::invalid_argument(format!(
            "config key '{k}' is empty"
        )));
    }
    Ok(())
}

/// Refuses a message too big to hand to a scheduler.
pub fn check_message(req: &proto::SendMessageRequest) -> Result<(), Status> {
    if req.body.len() > MAX_MESSAGE_BYTES {
        return Err(Status::invalid_argument(format!(
            "the message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            req.body.len()
        )));
    }
    Ok(())
}

/// Compiles the caller's uploaded component `digest` as a scheduler (once
/// per digest), refusing what is not one.
pub async fn compile(
    modules: &ModuleStore,
    host: &SchedHost,
    who: &Principal,
    digest: &str,
) -> Result<SchedulerComponent, Status> {
    let parsed = Digest::parse(digest).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let bytes = modules
        .read(&who.tenant, &parsed)
        .await
        .map_err(|e| match e {
            ModuleError::NotFound { .. } => Status::failed_precondition(e.to_string()),
            other => Status::internal(other.to_string()),
        })?;
    let host = host.clone();
    let key = digest.to_string();
    tokio::task::spawn_blocking(move || host.compile_cached(&key, &bytes))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::invalid_argument(e.to_string()))
}
