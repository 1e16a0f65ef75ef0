//! What the allocator reads and what it writes: a snapshot of the cluster
//! taken by the master, and the offers it decided on.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use wasmesos_api::{AgentId, FrameworkId, Resources};

use crate::quota::Quota;

/// The weight of a role the snapshot does not list (Mesos' default).
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// One agent as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    /// Everything the agent has; the cluster total is the sum of these.
    pub total: Resources,
    /// What may be offered now: `total` minus running tasks minus
    /// outstanding offers.
    pub free: Resources,
}

/// A framework's decline filter (Mesos' `refuse_seconds`): do not offer it
/// resources of `agent` that are contained in `resources`, until `until_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub agent: AgentId,
    pub resources: Resources,
    /// The filter is active while `until_ms > now_ms`.
    pub until_ms: i64,
}

/// One framework as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkView {
    pub id: FrameworkId,
    pub role: String,
    /// What it holds now: running tasks plus outstanding offers.
    pub allocated: Resources,
    /// A suppressed framework wants no offers until it revives.
    pub suppressed: bool,
    pub filters: Vec<Filter>,
}

/// A role's weight, quota and reservations. Roles the snapshot does not
/// list weigh [`DEFAULT_WEIGHT`] and have neither quota nor reservations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleView {
    pub name: String,
    /// A role of weight 2 is entitled to twice the dominant share of a role
    /// of weight 1. Must be positive and finite; anything else counts as
    /// [`DEFAULT_WEIGHT`], so one bad record cannot stall allocation.
    pub weight: f64,
    #[serde(default)]
    pub quota: Quota,
    /// Agents' resources set aside for this role (statically, by the
    /// agent). Listed by role rather than by agent so that a round's cost
    /// grows with the number of reservations, not of agents.
    #[serde(default)]
    pub reservations: Vec<Reservation>,
}

/// Resources of one agent that only frameworks of one role may be offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub agent: AgentId,
    /// How much the agent reserves for the role.
    pub resources: Resources,
    /// What the role's frameworks hold on that agent now (tasks plus
    /// outstanding offers). It draws on the reservation first: only the
    /// rest of the reservation is still set aside.
    pub used: Resources,
}

impl RoleView {
    /// A role with a weight and nothing else.
    pub fn weighted(name: impl Into<String>, weight: f64) -> Self {
        Self {
            name: name.into(),
            weight,
            quota: Quota::default(),
            reservations: Vec::new(),
        }
    }
}

/// The whole input of one allocation round.
///
/// Ids are expected to be unique; where one repeats, its first entry counts
/// and later ones are ignored (so an agent is never offered twice).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Visited in this order: the caller rotates or shuffles it between
    /// rounds so that no agent is always last.
    pub agents: Vec<AgentView>,
    pub frameworks: Vec<FrameworkView>,
    pub roles: Vec<RoleView>,
    /// The round's notion of "now", for filter expiry.
    pub now_ms: i64,
}

/// The allocator's output: offer `resources` of `agent` to `framework`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferDecision {
    pub framework: FrameworkId,
    pub agent: AgentId,
    pub resources: Resources,
}

impl Snapshot {
    /// The agents in visiting order, each id once (its first entry).
    pub fn unique_agents(&self) -> Vec<&AgentView> {
        let mut seen = HashSet::with_capacity(self.agents.len());
        self.agents.iter().filter(|a| seen.insert(&a.id)).collect()
    }

    /// The cluster total: the sum of the (unique) agents' totals. Shares
    /// are fractions of this.
    pub fn total(&self) -> Resources {
        sum_totals(&self.unique_agents())
    }

    /// The entry of `role` the allocator uses (its first), if listed.
    pub fn role(&self, role: &str) -> Option<&RoleView> {
        self.roles.iter().find(|r| r.name == role)
    }

    /// The weight of `role`, as the allocator uses it.
    pub fn weight(&self, role: &str) -> f64 {
        self.role(role)
            .map_or(DEFAULT_WEIGHT, |r| valid_weight(r.weight))
    }
}

pub(crate) fn sum_totals(agents: &[&AgentView]) -> Resources {
    let mut total = Resources::empty();
    for agent in agents {
        total += &agent.total;
    }
    total
}

/// `weight` if it is usable, else [`DEFAULT_WEIGHT`].
pub(crate) fn valid_weight(weight: f64) -> f64 {
    if weight.is_finite() && weight > 0.0 {
        weight
    } else {
        DEFAULT_WEIGHT
    }
}
