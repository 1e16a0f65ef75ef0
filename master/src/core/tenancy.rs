//! Tenants and tokens, changed by operators. A new tenant gets its own
//! instance of the jobs framework in its first role, so that DRF shares
//! the cluster between tenants and not only between frameworks. Token
//! changes reach the registry (and so every request) once they commit.

use std::time::Duration;

use tokio::sync::oneshot;
use tonic::Status;
use wasmesos_api::proto::{self, TokenKind};
use wasmesos_api::{FrameworkId, Principal, TenantId, now_ms};

use super::Core;
use crate::commit::{CommitError, put};
use crate::keys;
use crate::tenancy::token;

type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// Longest token name (a note for people, kept in every record).
const MAX_NAME: usize = 128;

/// A token's record as responses show it: never the secret's hash.
pub(crate) fn public(mut t: proto::Token) -> proto::Token {
    t.secret_sha256.clear();
    t
}

fn operators_only(principal: &Principal, what: &str) -> Result<(), Status> {
    if principal.is_operator() {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "only operators may {what} ({} is a {} principal of tenant '{}')",
            principal.name,
            if principal.is_agent() {
                "agent"
            } else {
                "tenant"
            },
            principal.tenant
        )))
    }
}

impl Core {
    pub(super) async fn create_tenant(
        &mut self,
        principal: Principal,
        request: proto::CreateTenantRequest,
        reply: Reply<proto::Tenant>,
    ) -> Result<(), CommitError> {
        let record = match self.new_tenant(&principal, request) {
            Ok(r) => r,
            Err(status) => {
                tracing::warn!(principal = %principal.name, "tenant not created: {}", status.message());
                let _ = reply.send(Err(status));
                return Ok(());
            }
        };
        let tenant = TenantId::new(record.name.clone()).expect("checked in new_tenant");
        let mut ops = vec![put(keys::tenant(&tenant), &record)];
        let mut jobs = None;
        if self.cfg.builtin_jobs
            && let Some((jobs_ops, framework)) =
                self.builtin_jobs(&tenant, &record.roles[0]).await?
        {
            ops.extend(jobs_ops);
            jobs = Some(framework);
        }
        tracing::info!(tenant = %record.name, roles = ?record.roles, by = %principal.name, "tenant created");
        self.write(ops, move |core| {
            core.registry.put_tenant(record.clone());
            // Started once the tenant (and so its callback limits) is known.
            if let Some(framework) = jobs {
                core.start_framework(framework);
            }
            let _ = reply.send(Ok(record));
        });
        Ok(())
    }

    fn new_tenant(
        &self,
        principal: &Principal,
        request: proto::CreateTenantRequest,
    ) -> Result<proto::Tenant, Status> {
        operators_only(principal, "create tenants")?;
        let name = TenantId::new(request.name.clone())
            .map_err(|e| Status::invalid_argument(format!("tenant name: {e}")))?;
        if name == TenantId::default_tenant() || self.registry.tenant(name.as_str()).is_some() {
            return Err(Status::already_exists(format!(
                "tenant '{name}' already exists (wasmesos tenants lists them)"
            )));
        }
        let mut roles: Vec<String> = Vec::new();
        for role in request.roles {
            // Role names become store keys: the rules of ids.
            FrameworkId::new(role.clone())
                .map_err(|e| Status::invalid_argument(format!("role '{role}': {e}")))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            return Err(Status::invalid_argument(
                "a tenant needs at least one role (--roles NAME[,NAME…]); its jobs framework runs in the first",
            ));
        }
        Ok(proto::Tenant {
            name: name.to_string(),
            roles,
            created_ms: now_ms(),
            created_by: principal.name.clone(),
            limits: request.limits,
        })
    }

    pub(super) fn set_tenant_limits(
        &mut self,
        principal: Principal,
        request: proto::SetTenantLimitsRequest,
        reply: Reply<proto::Tenant>,
    ) {
        if let Err(status) = operators_only(&principal, "change a tenant's limits") {
            let _ = reply.send(Err(status));
            return;
        }
        let Some(mut record) = self.registry.tenant(&request.name) else {
            let _ = reply.send(Err(Status::not_found(format!(
                "no tenant '{}' (wasmesos tenants lists them)",
                request.name
            ))));
            return;
        };
        let Ok(tenant) = TenantId::new(record.name.clone()) else {
            let _ = reply.send(Err(Status::internal(
                "a stored tenant has a malformed name",
            )));
            return;
        };
        record.limits = request.limits;
        tracing::info!(tenant = %record.name, limits = ?record.limits, by = %principal.name, "tenant limits set");
        let ops = vec![put(keys::tenant(&tenant), &record)];
        self.write(ops, move |core| {
            core.registry.put_tenant(record.clone());
            // Its schedulers restart under new callback limits.
            let limits = core.callback_limits(&tenant);
            for f in core.frameworks.values().filter(|f| f.tenant == tenant) {
                f.actor.set_limits(limits);
            }
            // A raised task limit may let its frameworks have offers again.
            core.allocation_pending = true;
            let _ = reply.send(Ok(record));
        });
    }

    /// Refuses a submission beyond its tenant's per-task limits; fills in
    /// the tenant's fuel limit when the task has none.
    pub(super) fn check_task_limits(
        &self,
        tenant: &TenantId,
        task: &mut proto::TaskSpec,
    ) -> Result<(), Status> {
        let limits = self.registry.limits(tenant);
        let mem = task.resources.as_ref().map_or(0, |r| r.mem_bytes);
        if limits.max_task_mem_bytes != 0 && mem > limits.max_task_mem_bytes {
            return Err(Status::resource_exhausted(format!(
                "tenant '{tenant}' may give a task at most {} of memory; this one asks for {}",
                wasmesos_api::format_size(limits.max_task_mem_bytes),
                wasmesos_api::format_size(mem)
            )));
        }
        if limits.max_task_fuel != 0 {
            let task_limits = task.limits.get_or_insert_with(Default::default);
            if task_limits.fuel == 0 {
                task_limits.fuel = limits.max_task_fuel;
            } else if task_limits.fuel > limits.max_task_fuel {
                return Err(Status::resource_exhausted(format!(
                    "tenant '{tenant}' may give a task at most {} fuel; this one asks for {}",
                    limits.max_task_fuel, task_limits.fuel
                )));
            }
        }
        Ok(())
    }

    /// Tenants whose frameworks get no offers because they run as many
    /// tasks as they may.
    pub(super) fn tenants_at_task_limit(&self) -> std::collections::HashSet<TenantId> {
        let mut running: std::collections::HashMap<&TenantId, u32> = Default::default();
        for f in self.frameworks.values() {
            *running.entry(&f.tenant).or_default() += f.tasks_running;
        }
        running
            .into_iter()
            .filter(|(tenant, n)| {
                let max = self.registry.limits(tenant).max_running_tasks;
                max != 0 && *n >= max
            })
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }

    pub(super) fn create_token(
        &mut self,
        principal: Principal,
        request: proto::CreateTokenRequest,
        reply: Reply<proto::CreateTokenResponse>,
    ) {
        match self.new_token(&principal, request) {
            Ok((record, bearer)) => {
                tracing::info!(token = %record.id, tenant = %record.tenant, kind = ?record.kind(), by = %principal.name, "token created");
                let ops = vec![put(keys::token(&record.id), &record)];
                self.write(ops, move |core| {
                    core.registry.put_token(record.clone());
                    let _ = reply.send(Ok(proto::CreateTokenResponse {
                        token: Some(public(record)),
                        secret: bearer,
                    }));
                });
            }
            Err(status) => {
                tracing::warn!(principal = %principal.name, "token not created: {}", status.message());
                let _ = reply.send(Err(status));
            }
        }
    }

    fn new_token(
        &self,
        principal: &Principal,
        request: proto::CreateTokenRequest,
    ) -> Result<(proto::Token, String), Status> {
        operators_only(principal, "issue tokens")?;
        let kind = match request.kind() {
            TokenKind::Unspecified => TokenKind::Tenant,
            k => k,
        };
        let tenant = if request.tenant.is_empty() {
            TenantId::default_tenant()
        } else {
            TenantId::new(request.tenant.clone())
                .map_err(|e| Status::invalid_argument(format!("tenant: {e}")))?
        };
        if tenant != TenantId::default_tenant() && self.registry.tenant(tenant.as_str()).is_none() {
            return Err(Status::not_found(format!(
                "no tenant '{tenant}' (create it first: wasmesos tenant create {tenant} --roles ROLE)"
            )));
        }
        if kind != TokenKind::Tenant && tenant != TenantId::default_tenant() {
            return Err(Status::invalid_argument(
                "operator and agent tokens belong to the cluster, not to a tenant: leave the tenant out",
            ));
        }
        if request.name.len() > MAX_NAME || request.name.chars().any(char::is_control) {
            return Err(Status::invalid_argument(format!(
                "a token's name is at most {MAX_NAME} printable characters"
            )));
        }
        let now = now_ms();
        let expires_ms = match request.ttl_seconds {
            0 => 0,
            s => {
                let ttl = Duration::from_secs(s);
                now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            }
        };
        let generated = token::generate();
        let record = proto::Token {
            id: generated.id,
            tenant: tenant.to_string(),
            kind: kind as i32,
            name: request.name,
            created_ms: now,
            expires_ms,
            revoked_ms: 0,
            created_by: principal.name.clone(),
            secret_sha256: generated.secret_sha256,
        };
        Ok((record, generated.bearer))
    }

    pub(super) fn revoke_token(
        &mut self,
        principal: Principal,
        id: String,
        reply: Reply<proto::Token>,
    ) {
        if let Err(status) = operators_only(&principal, "revoke tokens") {
            tracing::warn!(principal = %principal.name, token = %id, "revocation refused");
            let _ = reply.send(Err(status));
            return;
        }
        let Some(mut record) = self.registry.token(&id) else {
            let _ = reply.send(Err(Status::not_found(format!(
                "no token '{id}' (wasmesos tokens lists them)"
            ))));
            return;
        };
        if record.revoked_ms != 0 {
            let _ = reply.send(Ok(public(record)));
            return;
        }
        record.revoked_ms = now_ms();
        tracing::info!(token = %id, by = %principal.name, "token revoked");
        let ops = vec![put(keys::token(&id), &record)];
        self.write(ops, move |core| {
            core.registry.put_token(record.clone());
            let _ = reply.send(Ok(public(record)));
        });
    }

    /// Refuses a deployment into a role the principal's tenant does not have.
    pub(super) fn check_role(&self, principal: &Principal, role: &str) -> Result<(), Status> {
        match self.registry.roles_of(principal) {
            Some(roles) if !roles.iter().any(|r| r == role) => {
                tracing::warn!(principal = %principal.name, %role, "deployment into a foreign role refused");
                Err(Status::permission_denied(format!(
                    "tenant '{}' may deploy only into its roles ({}), not '{role}'",
                    principal.tenant,
                    roles.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    /// The limits `tenant`'s schedulers run under, beside the host's.
    pub(super) fn callback_limits(&self, tenant: &TenantId) -> wasmesos_schedhost::InstanceLimits {
        let l = self.registry.limits(tenant);
        wasmesos_schedhost::InstanceLimits {
            fuel_per_callback: (l.max_callback_fuel != 0).then_some(l.max_callback_fuel),
            memory_bytes: (l.max_callback_mem_bytes != 0).then_some(l.max_callback_mem_bytes),
        }
    }

    /// The role a principal's framework goes to when its request names none.
    pub(super) fn default_role(&self, principal: &Principal) -> String {
        self.registry
            .roles_of(principal)
            .and_then(|r| r.into_iter().next())
            .unwrap_or_else(|| "default".to_string())
    }
}
