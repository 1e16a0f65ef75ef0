//! Who a request is made by. Every request resolves to a principal before a
//! handler runs; every object it creates carries the principal's tenant.

use crate::TenantId;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// A name for logs and records ("admin", "agent", a token's owner).
    pub name: String,
    /// The tenant whose objects the caller sees and creates.
    pub tenant: TenantId,
    /// Operators see and act on every tenant's objects.
    pub operator: bool,
}

impl Principal {
    /// The operator, as which unauthenticated loopback callers act until
    /// tokens exist.
    pub fn loopback_admin() -> Self {
        Self {
            name: "admin".to_string(),
            tenant: TenantId::default_tenant(),
            operator: true,
        }
    }

    /// The master itself, for work it does on its own behalf.
    pub fn system() -> Self {
        Self {
            name: "system".to_string(),
            tenant: TenantId::default_tenant(),
            operator: true,
        }
    }

    /// Whether the caller may see or act on an object of `tenant`.
    pub fn may_access(&self, tenant: &TenantId) -> bool {
        self.operator || &self.tenant == tenant
    }
}
