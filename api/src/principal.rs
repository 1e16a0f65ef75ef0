//! Who a request is made by. Every request resolves to a principal (from its
//! bearer token) before a handler runs; every object it creates carries the
//! principal's tenant.

use crate::TenantId;

/// What a principal may do in general; what it may touch is decided by its
/// tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sees and acts on every tenant's objects, manages tenants and tokens.
    Operator,
    /// Acts within its own tenant, in its tenant's roles.
    Tenant,
    /// An agent: attaches to the master and fetches its tasks' modules;
    /// nothing else.
    Agent,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// A name for logs and records: the token's id and name
    /// ("tok-3f2a (ci)"), "system" for the master itself.
    pub name: String,
    /// The tenant whose objects the caller sees and creates.
    pub tenant: TenantId,
    pub kind: Kind,
}

impl Principal {
    /// An operator named `name` (its own objects go to the default tenant).
    pub fn operator(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tenant: TenantId::default_tenant(),
            kind: Kind::Operator,
        }
    }

    /// A tenant's principal.
    pub fn tenant(name: impl Into<String>, tenant: TenantId) -> Self {
        Self {
            name: name.into(),
            tenant,
            kind: Kind::Tenant,
        }
    }

    /// An agent's principal.
    pub fn agent(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tenant: TenantId::default_tenant(),
            kind: Kind::Agent,
        }
    }

    /// The master itself, for work it does on its own behalf.
    pub fn system() -> Self {
        Self::operator("system")
    }

    pub fn is_operator(&self) -> bool {
        self.kind == Kind::Operator
    }

    pub fn is_agent(&self) -> bool {
        self.kind == Kind::Agent
    }

    /// Whether the caller may see or act on an object of `tenant`.
    pub fn may_access(&self, tenant: &TenantId) -> bool {
        self.is_operator() || (self.kind == Kind::Tenant && &self.tenant == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_reach_their_own_objects_operators_all_agents_none() {
        let acme = TenantId::new("acme").unwrap();
        let other = TenantId::new("other").unwrap();
        let t = Principal::tenant("t", acme.clone());
        assert!(t.may_access(&acme) && !t.may_access(&other));
        assert!(Principal::operator("o").may_access(&other));
        let agent = Principal::agent("a");
        assert!(!agent.may_access(&TenantId::default_tenant()));
    }
}
