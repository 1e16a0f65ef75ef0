//! Tenancy: who may call the master. Bearer tokens (`token`) stand for
//! principals (`registry`); the admin and agent tokens of a fresh cluster
//! are generated into files (`bootstrap`). Tenants and tokens are created
//! and revoked through the core (`core/tenancy.rs`), which updates the
//! registry once the change is durable; `auth.rs` consults it on every
//! request, and holds tenants to their request rates (`rate`).

mod bootstrap;
mod rate;
mod registry;
pub mod token;

pub use bootstrap::{BootstrapError, ensure_token_file};
pub use registry::Registry;

use wasmesos_api::proto;

use crate::commit::{CommitError, Committer};
use crate::keys;

/// A registry with every stored tenant and token.
pub async fn load(committer: &Committer) -> Result<Registry, CommitError> {
    let registry = Registry::default();
    for tenant in committer.list::<proto::Tenant>(keys::TENANTS).await? {
        registry.put_tenant(tenant);
    }
    for token in committer.list::<proto::Token>(keys::TOKENS).await? {
        registry.put_token(token);
    }
    Ok(registry)
}
