//! An agent's free resources split into pools: one per role that has a
//! reservation on it (offered only to that role's frameworks) and the
//! unreserved rest (offered to anyone).
//!
//! What a role's frameworks hold on the agent draws on its reservation
//! first, so only the rest of the reservation is still set aside; and no
//! pool is ever larger than what is actually free.

use std::borrow::Cow;
use std::collections::HashMap;

use wasmesos_api::{AgentId, Resources};

use crate::kinds;
use crate::snapshot::{AgentView, Snapshot};

/// The reservations of one round, by agent.
pub(crate) struct Reservations<'a> {
    /// For each agent, each reserving role (in name order) with what is
    /// still set aside for it.
    by_agent: HashMap<&'a AgentId, Vec<(&'a str, Resources)>>,
}

/// One agent's pools.
pub(crate) struct Pools<'a> {
    /// Per role, what is set aside for it and free; only non-empty ones.
    pub(crate) reserved: Vec<(&'a str, Resources)>,
    pub(crate) unreserved: Cow<'a, Resources>,
}

impl<'a> Reservations<'a> {
    /// Indexes the reservations of the snapshot's roles (the first entry
    /// of each role name; several reservations of one role on one agent
    /// add up).
    pub(crate) fn new(snapshot: &'a Snapshot) -> Self {
        let mut by_agent: HashMap<&AgentId, Vec<(&str, Resources)>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut roles: Vec<_> = snapshot
            .roles
            .iter()
            .filter(|r| seen.insert(r.name.as_str()))
            .collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        for role in roles {
            for reservation in &role.reservations {
                let left = reservation.resources.saturating_sub(&reservation.used);
                let entry = by_agent.entry(&reservation.agent).or_default();
                match entry.iter_mut().find(|(name, _)| *name == role.name) {
                    Some((_, sum)) => *sum += &left,
                    None => entry.push((&role.name, left)),
                }
            }
        }
        Self { by_agent }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_agent.is_empty()
    }

    /// Splits `agent`'s free resources into its pools. Roles take their
    /// reserved pools out of the free resources in name order.
    pub(crate) fn split(&self, agent: &'a AgentView) -> Pools<'a> {
        let Some(roles) = self.by_agent.get(&agent.id) else {
            return Pools {
                reserved: Vec::new(),
                unreserved: Cow::Borrowed(&agent.free),
            };
        };
        let mut free = agent.free.clone();
        let mut reserved = Vec::with_capacity(roles.len());
        for (role, left) in roles {
            let pool = kinds::min(left, &free);
            if !pool.is_empty() {
                free = free.saturating_sub(&pool);
                reserved.push((*role, pool));
            }
        }
        Pools {
            reserved,
            unreserved: Cow::Owned(free),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Reservation, RoleView};
    use wasmesos_api::parse_resources;

    fn r(text: &str) -> Resources {
        parse_resources(text).unwrap()
    }

    fn reserving(name: &str, agent: &str, resources: &str, used: &str) -> RoleView {
        RoleView {
            reservations: vec![Reservation {
                agent: AgentId::new(agent).unwrap(),
                resources: r(resources),
                used: r(used),
            }],
            ..RoleView::weighted(name, 1.0)
        }
    }

    fn agent(free: &str) -> AgentView {
        AgentView {
            id: AgentId::new("a1").unwrap(),
            total: r("cpus:8,mem:16GiB"),
            free: r(free),
        }
    }

    #[test]
    fn use_draws_on_the_reservation_first_and_pools_never_exceed_free() {
        let snapshot = Snapshot {
            roles: vec![
                reserving("db", "a1", "cpus:4,mem:8GiB", "cpus:1"),
                reserving("web", "a1", "cpus:2,mem:2GiB", ""),
            ],
            ..Snapshot::default()
        };
        let index = Reservations::new(&snapshot);
        let roomy = agent("cpus:5,mem:16GiB");
        let pools = index.split(&roomy);
        assert_eq!(
            pools.reserved,
            [("db", r("cpus:3,mem:8GiB")), ("web", r("cpus:2,mem:2GiB"))]
        );
        assert_eq!(*pools.unreserved, r("mem:6GiB"));

        let busy = agent("cpus:1,mem:1GiB");
        let pools = index.split(&busy);
        assert_eq!(pools.reserved, [("db", r("cpus:1,mem:1GiB"))]);
        assert!(pools.unreserved.is_empty());
    }

    #[test]
    fn an_agent_without_reservations_is_one_unreserved_pool() {
        let snapshot = Snapshot::default();
        let index = Reservations::new(&snapshot);
        let idle = agent("cpus:5");
        let pools = index.split(&idle);
        assert!(pools.reserved.is_empty());
        assert!(matches!(pools.unreserved, Cow::Borrowed(_)));
    }
}
