//! Dominant shares as the allocator computes them, for display (the CLI's
//! `frameworks` and `roles` lists, the UI, metrics).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmesos_api::{FrameworkId, Resources};

use crate::snapshot::Snapshot;
use crate::standing::Standing;

/// A role's standing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleShare {
    /// The weight in effect (listed, or the default).
    pub weight: f64,
    /// The dominant share of the sum of its frameworks' allocations.
    pub share: f64,
    /// `share / weight`: what roles are ordered by.
    pub weighted_share: f64,
}

/// Every framework's and role's dominant share in a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    /// The cluster total the shares are fractions of.
    pub total: Resources,
    /// Each framework's dominant share (unweighted).
    pub frameworks: BTreeMap<FrameworkId, f64>,
    /// Each role that has a framework or is listed in the snapshot.
    pub roles: BTreeMap<String, RoleShare>,
}

/// The dominant shares of `snapshot`'s frameworks and roles, computed as
/// [`allocate`](crate::allocate) computes them before its round starts.
pub fn dominant_shares(snapshot: &Snapshot) -> Shares {
    let total = snapshot.total();
    let round = Standing::new(snapshot, total.clone());
    let frameworks = round
        .frameworks
        .iter()
        .map(|f| (f.view.id.clone(), f.share))
        .collect();
    let mut roles: BTreeMap<String, RoleShare> = round
        .roles
        .iter()
        .map(|r| {
            let standing = RoleShare {
                weight: r.weight,
                share: r.share,
                weighted_share: r.weighted_share(),
            };
            (r.name.to_string(), standing)
        })
        .collect();
    for listed in &snapshot.roles {
        roles
            .entry(listed.name.clone())
            .or_insert_with(|| RoleShare {
                weight: snapshot.weight(&listed.name),
                share: 0.0,
                weighted_share: 0.0,
            });
    }
    Shares {
        total,
        frameworks,
        roles,
    }
}
