//! One allocation round: walk the agents in snapshot order and give each
//! agent's whole free resources to the neediest eligible framework of the
//! neediest role, updating shares as offers are made.

use std::collections::{BTreeSet, HashMap};

use wasmesos_api::Resources;

use crate::config::Config;
use crate::drf::ShareQueue;
use crate::filters::FilterIndex;
use crate::snapshot::{
    AgentView, FrameworkView, OfferDecision, Snapshot, sum_totals, valid_weight,
};

/// Decides this round's offers: for each agent, in snapshot order, whose
/// free resources are allocatable, offer all of them to one framework:
/// the lowest-share eligible framework of the lowest weighted-share role
/// that has an eligible framework. Shares are measured against the sum of
/// the agents' totals.
///
/// Eligible means not suppressed and not refusing the agent's free
/// resources through an active filter. Same snapshot, same decisions.
pub fn allocate(snapshot: &Snapshot, config: &Config) -> Vec<OfferDecision> {
    let agents = snapshot.unique_agents();
    let total = sum_totals(&agents);
    allocate_agents(snapshot, &agents, &total, config)
}

/// Like [`allocate`], but shares are measured against `total` rather than
/// the sum of the snapshot's agents. For an incremental round over only the
/// agents whose resources just changed, while shares still count the whole
/// cluster.
pub fn allocate_with_total(
    snapshot: &Snapshot,
    total: &Resources,
    config: &Config,
) -> Vec<OfferDecision> {
    allocate_agents(snapshot, &snapshot.unique_agents(), total, config)
}

fn allocate_agents(
    snapshot: &Snapshot,
    agents: &[&AgentView],
    total: &Resources,
    config: &Config,
) -> Vec<OfferDecision> {
    let mut round = Round::new(snapshot, total.clone());
    let mut decisions = Vec::new();
    if round.nobody_wants_offers() {
        return decisions;
    }
    let filters = FilterIndex::new(round.eligible_frameworks(), snapshot.now_ms);
    let mut refusing = Vec::new();
    for agent in agents {
        if !config.allocatable(&agent.free) {
            continue;
        }
        filters.refusing(&agent.id, &agent.free, &mut refusing);
        let Some(chosen) = round.pick(&refusing) else {
            continue;
        };
        round.grant(chosen, &agent.free);
        decisions.push(OfferDecision {
            framework: round.frameworks[chosen].view.id.clone(),
            agent: agent.id.clone(),
            resources: agent.free.clone(),
        });
    }
    decisions
}

/// A framework's standing during a round.
pub(crate) struct FrameworkState<'a> {
    pub(crate) view: &'a FrameworkView,
    pub(crate) role: usize,
    pub(crate) allocated: Resources,
    /// `allocated.dominant_share(total)`.
    pub(crate) share: f64,
}

/// A role's standing during a round.
pub(crate) struct RoleState<'a> {
    pub(crate) name: &'a str,
    pub(crate) weight: f64,
    /// The sum of its frameworks' allocations, suppressed ones included.
    pub(crate) allocated: Resources,
    /// `allocated.dominant_share(total)`, unweighted.
    pub(crate) share: f64,
    /// Its frameworks that want offers, by share.
    queue: ShareQueue,
}

impl RoleState<'_> {
    /// The key roles are ordered by.
    pub(crate) fn weighted_share(&self) -> f64 {
        self.share / self.weight
    }
}

/// Shares of every role and framework, kept ordered as offers are made.
///
/// Frameworks are indexed in id order and roles in name order, so that
/// ordering by `(share, index)` breaks ties by id.
pub(crate) struct Round<'a> {
    total: Resources,
    pub(crate) frameworks: Vec<FrameworkState<'a>>,
    pub(crate) roles: Vec<RoleState<'a>>,
    /// Roles with at least one framework that wants offers, by weighted share.
    roles_queue: ShareQueue,
}

impl<'a> Round<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, total: Resources) -> Self {
        let mut views: Vec<&FrameworkView> = snapshot.frameworks.iter().collect();
        // Stable, so among repeated ids the first entry is kept.
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views.dedup_by(|later, first| later.id == first.id);

        let names: BTreeSet<&str> = views.iter().map(|f| f.role.as_str()).collect();
        let role_index: HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut weights: HashMap<&str, f64> = HashMap::new();
        for role in &snapshot.roles {
            weights
                .entry(role.name.as_str())
                .or_insert(valid_weight(role.weight));
        }

        let mut roles: Vec<RoleState> = names
            .iter()
            .map(|name| RoleState {
                name,
                weight: weights.get(name).copied().unwrap_or(crate::DEFAULT_WEIGHT),
                allocated: Resources::empty(),
                share: 0.0,
                queue: ShareQueue::default(),
            })
            .collect();

        let frameworks: Vec<FrameworkState> = views
            .into_iter()
            .enumerate()
            .map(|(index, view)| {
                let role = role_index[view.role.as_str()];
                roles[role].allocated += &view.allocated;
                let share = view.allocated.dominant_share(&total);
                if !view.suppressed {
                    roles[role].queue.insert(index, share);
                }
                FrameworkState {
                    view,
                    role,
                    allocated: view.allocated.clone(),
                    share,
                }
            })
            .collect();

        let mut roles_queue = ShareQueue::default();
        for (index, role) in roles.iter_mut().enumerate() {
            role.share = role.allocated.dominant_share(&total);
            if !role.queue.is_empty() {
                roles_queue.insert(index, role.weighted_share());
            }
        }

        Self {
            total,
            frameworks,
            roles,
            roles_queue,
        }
    }

    fn nobody_wants_offers(&self) -> bool {
        self.roles_queue.is_empty()
    }

    /// The frameworks that want offers, with their indices.
    fn eligible_frameworks(&self) -> impl Iterator<Item = (usize, &'a FrameworkView)> + '_ {
        self.frameworks
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.view.suppressed)
            .map(|(index, f)| (index, f.view))
    }

    /// The framework to offer to, skipping those in `refusing` (sorted).
    ///
    /// A role is passed over only when every one of its queued frameworks
    /// refuses, so the walk costs O(refusing + 1) steps, not O(frameworks).
    fn pick(&self, refusing: &[usize]) -> Option<usize> {
        self.roles_queue.iter().find_map(|role| {
            self.roles[role]
                .queue
                .iter()
                .find(|framework| refusing.binary_search(framework).is_err())
        })
    }

    /// Adds `resources` to framework `index` and to its role, and moves both
    /// to their new places in the order.
    fn grant(&mut self, index: usize, resources: &Resources) {
        let framework = &mut self.frameworks[index];
        framework.allocated += resources;
        let share = framework.allocated.dominant_share(&self.total);
        let role = &mut self.roles[framework.role];
        role.queue.reposition(index, framework.share, share);
        framework.share = share;

        let old = role.weighted_share();
        role.allocated += resources;
        role.share = role.allocated.dominant_share(&self.total);
        self.roles_queue
            .reposition(framework.role, old, role.weighted_share());
    }
}
