//! Test harness in the manner of Nomad's `scheduler/tests/testing.go`:
//! builders for a small cluster, and a [`Plan`] recording what one round
//! decided with questions to ask of it.

use std::collections::BTreeMap;

use wasmesos_api::{AgentId, FrameworkId, Resources};

use crate::{
    AgentView, Config, Filter, FrameworkView, OfferDecision, Reservation, ResourceLimits, RoleView,
    Shares, Snapshot, allocate, dominant_shares,
};

pub(crate) const GIB: u64 = 1 << 30;
pub(crate) const MIB: u64 = 1 << 20;

/// The "now" of clusters built here.
pub(crate) const NOW_MS: i64 = 1_000_000;

/// `cpus` and `mem_gib` GiB of memory.
pub(crate) fn res(cpus: f64, mem_gib: u64) -> Resources {
    Resources::new(cpus, mem_gib * GIB, 0)
}

pub(crate) fn agent_id(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

pub(crate) fn framework_id(id: &str) -> FrameworkId {
    FrameworkId::new(id).unwrap()
}

/// A snapshot under construction, plus the config to run it with.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub(crate) snapshot: Snapshot,
    pub(crate) config: Config,
}

impl Cluster {
    pub(crate) fn new() -> Self {
        Self {
            snapshot: Snapshot {
                now_ms: NOW_MS,
                ..Snapshot::default()
            },
            config: Config::default(),
        }
    }

    /// An idle agent: all of `total` is free.
    pub(crate) fn agent(self, id: &str, total: Resources) -> Self {
        self.agent_with_free(id, total.clone(), total)
    }

    pub(crate) fn agent_with_free(mut self, id: &str, total: Resources, free: Resources) -> Self {
        self.snapshot.agents.push(AgentView {
            id: agent_id(id),
            total,
            free,
        });
        self
    }

    /// `n` idle agents `a000`, `a001`, … of `total` each.
    pub(crate) fn agents(mut self, n: usize, total: Resources) -> Self {
        for i in 0..n {
            self = self.agent(&format!("a{i:03}"), total.clone());
        }
        self
    }

    /// A framework holding nothing, wanting offers.
    pub(crate) fn framework(mut self, id: &str, role: &str) -> Self {
        self.snapshot.frameworks.push(FrameworkView {
            id: framework_id(id),
            role: role.to_string(),
            allocated: Resources::empty(),
            suppressed: false,
            filters: vec![],
        });
        self
    }

    pub(crate) fn allocated(mut self, framework: &str, allocated: Resources) -> Self {
        self.framework_mut(framework).allocated = allocated;
        self
    }

    pub(crate) fn suppressed(mut self, framework: &str) -> Self {
        self.framework_mut(framework).suppressed = true;
        self
    }

    /// `framework` declined `resources` of `agent` until `until_ms`.
    pub(crate) fn filter(
        mut self,
        framework: &str,
        agent: &str,
        resources: Resources,
        until_ms: i64,
    ) -> Self {
        self.framework_mut(framework).filters.push(Filter {
            agent: agent_id(agent),
            resources,
            until_ms,
        });
        self
    }

    pub(crate) fn role(mut self, name: &str, weight: f64) -> Self {
        self.snapshot.roles.push(RoleView::weighted(name, weight));
        self
    }

    /// `role`'s entry, listed with weight 1 if it was not yet.
    fn role_mut(&mut self, name: &str) -> &mut RoleView {
        if self.snapshot.role(name).is_none() {
            self.snapshot.roles.push(RoleView::weighted(name, 1.0));
        }
        self.snapshot
            .roles
            .iter_mut()
            .find(|r| r.name == name)
            .expect("listed above")
    }

    pub(crate) fn guarantee(mut self, role: &str, guarantee: Resources) -> Self {
        self.role_mut(role).quota.guarantee = guarantee;
        self
    }

    pub(crate) fn limit(mut self, role: &str, limit: ResourceLimits) -> Self {
        self.role_mut(role).quota.limit = limit;
        self
    }

    /// `agent` reserves `resources` for `role`, of which the role's
    /// frameworks already hold `used` there.
    pub(crate) fn reserve(
        mut self,
        agent: &str,
        role: &str,
        resources: Resources,
        used: Resources,
    ) -> Self {
        self.role_mut(role).reservations.push(Reservation {
            agent: agent_id(agent),
            resources,
            used,
        });
        self
    }

    pub(crate) fn min_allocatable(mut self, min: Resources) -> Self {
        self.config.min_allocatable = min;
        self
    }

    /// Runs one round and records it.
    pub(crate) fn run(&self) -> Plan {
        Plan {
            decisions: allocate(&self.snapshot, &self.config),
            before: self.snapshot.clone(),
        }
    }

    fn framework_mut(&mut self, id: &str) -> &mut FrameworkView {
        self.snapshot
            .frameworks
            .iter_mut()
            .find(|f| f.id.as_str() == id)
            .unwrap_or_else(|| panic!("no framework {id} in the cluster"))
    }
}

/// What one round decided, and the snapshot it decided over.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) decisions: Vec<OfferDecision>,
    pub(crate) before: Snapshot,
}

impl Plan {
    /// The agents offered to `framework`, in decision order.
    pub(crate) fn agents_of(&self, framework: &str) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| d.framework.as_str() == framework)
            .map(|d| d.agent.as_str())
            .collect()
    }

    /// The framework `agent` was offered to, if any.
    pub(crate) fn framework_of(&self, agent: &str) -> Option<&str> {
        self.decisions
            .iter()
            .find(|d| d.agent.as_str() == agent)
            .map(|d| d.framework.as_str())
    }

    /// Frameworks in decision order, one per offer.
    pub(crate) fn sequence(&self) -> Vec<&str> {
        self.decisions
            .iter()
            .map(|d| d.framework.as_str())
            .collect()
    }

    /// How many offers each framework got.
    pub(crate) fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for d in &self.decisions {
            *counts.entry(d.framework.as_str()).or_default() += 1;
        }
        counts
    }

    /// The snapshot as it would be if every offer were accepted: offered
    /// resources move from the agents' free to the frameworks' allocation.
    pub(crate) fn after(&self) -> Snapshot {
        let mut after = self.before.clone();
        for d in &self.decisions {
            let framework = after
                .frameworks
                .iter_mut()
                .find(|f| f.id == d.framework)
                .unwrap();
            framework.allocated += &d.resources;
            let role = framework.role.clone();
            for agent in after.agents.iter_mut().filter(|a| a.id == d.agent) {
                agent.free = agent.free.saturating_sub(&d.resources);
            }
            // What a role holds on an agent draws on its reservation there.
            if let Some(view) = after.roles.iter_mut().find(|r| r.name == role)
                && let Some(reservation) = view.reservations.iter_mut().find(|r| r.agent == d.agent)
            {
                reservation.used += &d.resources;
            }
        }
        after
    }

    /// Dominant shares after the round (see [`Plan::after`]).
    pub(crate) fn shares_after(&self) -> Shares {
        dominant_shares(&self.after())
    }
}
