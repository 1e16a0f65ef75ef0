//! The tenants and tokens every request is checked against, in memory.
//! Loaded from the store when a master starts leading and updated by the
//! core after each change commits, so a new token works, and a revoked one
//! stops working, the moment the change is durable. Requests read it
//! without going through the core: authentication never waits behind
//! allocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use wasmesos_api::proto::{self, TokenKind};
use wasmesos_api::{Principal, TenantId};

use super::token;

/// Why a bearer token was refused. The messages say what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(transparent)]
    Malformed(#[from] token::Malformed),
    #[error("unknown token {0}: it was never issued by this cluster, or its secret is wrong")]
    Unknown(String),
    #[error("token {0} was revoked; ask an operator for a new one (wasmesos token create)")]
    Revoked(String),
    #[error("token {0} expired; ask an operator for a new one (wasmesos token create)")]
    Expired(String),
    #[error("token {0} belongs to tenant '{1}', which no longer exists")]
    NoTenant(String, String),
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, proto::Token>,
    tenants: BTreeMap<String, proto::Tenant>,
}

#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
    rates: super::rate::RateLimiter,
}

impl Registry {
    /// The principal a bearer token stands for at `now_ms`.
    pub fn authenticate(&self, bearer: &str, now_ms: i64) -> Result<Principal, AuthError> {
        let (id, secret) = token::parse(bearer)?;
        let inner = self.inner.read().expect("registry lock");
        let record = inner
            .tokens
            .get(id)
            .filter(|t| token::same_hash(&token::hash(secret), &t.secret_sha256))
            .ok_or_else(|| AuthError::Unknown(id.to_string()))?;
        if record.revoked_ms != 0 {
            return Err(AuthError::Revoked(id.to_string()));
        }
        if record.expires_ms != 0 && record.expires_ms <= now_ms {
            return Err(AuthError::Expired(id.to_string()));
        }
        let name = if record.name.is_empty() {
            format!("token {id}")
        } else {
            format!("token {id} ({})", record.name)
        };
        Ok(match record.kind() {
            TokenKind::Operator => Principal::operator(name),
            TokenKind::Agent => Principal::agent(name),
            TokenKind::Tenant | TokenKind::Unspecified => {
                let tenant = TenantId::new(record.tenant.clone())
                    .map_err(|_| AuthError::NoTenant(id.to_string(), record.tenant.clone()))?;
                if !inner.tenants.contains_key(tenant.as_str())
                    && tenant != TenantId::default_tenant()
                {
                    return Err(AuthError::NoTenant(id.to_string(), record.tenant.clone()));
                }
                Principal::tenant(name, tenant)
            }
        })
    }

    pub fn put_token(&self, record: proto::Token) {
        let mut inner = self.inner.write().expect("registry lock");
        inner.tokens.insert(record.id.clone(), record);
    }

    pub fn put_tenant(&self, record: proto::Tenant) {
        let mut inner = self.inner.write().expect("registry lock");
        inner.tenants.insert(record.name.clone(), record);
    }

    pub fn token(&self, id: &str) -> Option<proto::Token> {
        self.inner
            .read()
            .expect("registry lock")
            .tokens
            .get(id)
            .cloned()
    }

    pub fn tenant(&self, name: &str) -> Option<proto::Tenant> {
        self.inner
            .read()
            .expect("registry lock")
            .tenants
            .get(name)
            .cloned()
    }

    /// Every token record (secrets' hashes included: callers strip them).
    pub fn tokens(&self) -> Vec<proto::Token> {
        let inner = self.inner.read().expect("registry lock");
        let mut all: Vec<proto::Token> = inner.tokens.values().cloned().collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        all
    }

    pub fn tenants(&self) -> Vec<proto::Tenant> {
        self.inner
            .read()
            .expect("registry lock")
            .tenants
            .values()
            .cloned()
            .collect()
    }

    /// A tenant's limits (all 0, none, for the default tenant and unknown
    /// ones).
    pub fn limits(&self, tenant: &TenantId) -> proto::TenantLimits {
        self.inner
            .read()
            .expect("registry lock")
            .tenants
            .get(tenant.as_str())
            .and_then(|t| t.limits)
            .unwrap_or_default()
    }

    /// Whether `principal` may make another request now (tenants are held
    /// to their request rate; operators and agents are not).
    pub fn admit(&self, principal: &Principal) -> Result<(), String> {
        if principal.kind != wasmesos_api::PrincipalKind::Tenant {
            return Ok(());
        }
        let per_second = self.limits(&principal.tenant).max_requests_per_second;
        if self
            .rates
            .admit(&principal.tenant, per_second, std::time::Instant::now())
        {
            Ok(())
        } else {
            Err(format!(
                "tenant '{}' is over its {per_second} requests per second; retry shortly",
                principal.tenant
            ))
        }
    }

    /// The roles `principal` may deploy frameworks into; `None`: any
    /// (operators, and the default tenant's principals).
    pub fn roles_of(&self, principal: &Principal) -> Option<Vec<String>> {
        if principal.is_operator() || principal.tenant == TenantId::default_tenant() {
            return None;
        }
        Some(
            self.tenant(principal.tenant.as_str())
                .map(|t| t.roles)
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(reg: &Registry, tenant: &str, kind: TokenKind, expires_ms: i64) -> String {
        let t = token::generate();
        reg.put_token(proto::Token {
            id: t.id.clone(),
            tenant: tenant.into(),
            kind: kind as i32,
            name: "ci".into(),
            expires_ms,
            secret_sha256: t.secret_sha256,
            ..Default::default()
        });
        t.bearer
    }

    #[test]
    fn tokens_resolve_to_their_principals() {
        let reg = Registry::default();
        reg.put_tenant(proto::Tenant {
            name: "acme".into(),
            roles: vec!["analytics".into()],
            ..Default::default()
        });
        let op = issue(&reg, "default", TokenKind::Operator, 0);
        assert!(reg.authenticate(&op, 1).unwrap().is_operator());
        let agent = issue(&reg, "default", TokenKind::Agent, 0);
        assert!(reg.authenticate(&agent, 1).unwrap().is_agent());
        let acme = issue(&reg, "acme", TokenKind::Tenant, 0);
        let p = reg.authenticate(&acme, 1).unwrap();
        assert_eq!(p.tenant.as_str(), "acme");
        assert!(p.name.contains("(ci)"));
        assert_eq!(reg.roles_of(&p), Some(vec!["analytics".to_string()]));
        assert_eq!(reg.roles_of(&reg.authenticate(&op, 1).unwrap()), None);
    }

    #[test]
    fn wrong_expired_revoked_and_orphaned_tokens_are_refused() {
        let reg = Registry::default();
        let good = issue(&reg, "default", TokenKind::Operator, 0);
        let (id, _) = token::parse(&good).unwrap();
        let forged = format!("wsm_{id}_{}", "0".repeat(64));
        assert!(matches!(
            reg.authenticate(&forged, 1),
            Err(AuthError::Unknown(_))
        ));
        assert!(matches!(
            reg.authenticate(&token::generate().bearer, 1),
            Err(AuthError::Unknown(_))
        ));

        let expiring = issue(&reg, "default", TokenKind::Operator, 100);
        assert!(reg.authenticate(&expiring, 99).is_ok());
        assert!(matches!(
            reg.authenticate(&expiring, 100),
            Err(AuthError::Expired(_))
        ));

        let mut record = reg.token(id).unwrap();
        record.revoked_ms = 5;
        reg.put_token(record);
        assert!(matches!(
            reg.authenticate(&good, 1),
            Err(AuthError::Revoked(_))
        ));

        let orphan = issue(&reg, "gone", TokenKind::Tenant, 0);
        assert!(matches!(
            reg.authenticate(&orphan, 1),
            Err(AuthError::NoTenant(..))
        ));
        assert!(matches!(
            reg.authenticate("nope", 1),
            Err(AuthError::Malformed(_))
        ));
    }
}
