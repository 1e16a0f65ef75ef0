//! One allocation round, in three stages over the agents (in snapshot
//! order), each serving the neediest first and updating shares as offers
//! are made:
//!
//! 1. **Reservations**: what an agent sets aside for a role goes to that
//!    role's neediest eligible framework, and to no one else.
//! 2. **Guarantees**: roles below their guarantee, by weighted share, are
//!    offered the slice of each agent's unreserved resources they lack
//!    ([`guarantee_slice`]), before anyone is served by fair share. This
//!    stage costs nothing when no role is short.
//! 3. **Fair share**: what is left of each agent goes to the neediest
//!    eligible framework of the neediest role (hierarchical DRF).
//!
//! Every offer is cut to its role's limit first ([`ResourceLimits::cut`]),
//! and what a cut leaves on an agent goes on to the next role. Offers are
//! coarse-grained: in each stage a role takes an agent's whole pool (as
//! far as its limit allows) or nothing.

use std::borrow::Cow;
use std::collections::HashMap;

use wasmesos_api::Resources;

use crate::config::Config;
use crate::filters::FilterIndex;
use crate::pools::Reservations;
#[cfg(doc)]
use crate::quota::ResourceLimits;
use crate::quota::guarantee_slice;
use crate::snapshot::{AgentView, OfferDecision, Snapshot, sum_totals};
use crate::standing::Standing;

/// Decides this round's offers (see the module docs for the stages).
/// Shares are measured against the sum of the agents' totals.
///
/// Eligible means not suppressed and not refusing the offered resources
/// through an active filter. An agent's resources reach one framework at
/// most in one decision; same snapshot, same decisions.
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
    let mut standing = Standing::new(snapshot, total.clone());
    for role in 0..standing.roles.len() {
        standing.retire_if_exhausted(role, &config.min_allocatable);
    }
    if standing.nobody_wants_offers() {
        return Vec::new();
    }
    let mut walk = Walk {
        filters: FilterIndex::new(standing.eligible_frameworks(), snapshot.now_ms),
        standing,
        config,
        agents,
        decisions: Vec::new(),
        merged: HashMap::new(),
        refusing: Vec::new(),
        served: Vec::new(),
    };
    let reservations = Reservations::new(snapshot);
    if reservations.is_empty() && !walk.standing.anyone_short() {
        // The common case: every agent is one pool, served by fair share.
        for (agent, view) in agents.iter().enumerate() {
            walk.serve_fair_share(agent, &mut Cow::Borrowed(&view.free));
        }
        return walk.decisions;
    }
    let mut pools: Vec<Cow<Resources>> = Vec::with_capacity(agents.len());
    for (agent, view) in agents.iter().enumerate() {
        let split = reservations.split(view);
        for (role, pool) in &split.reserved {
            walk.serve_reserved(agent, role, pool);
        }
        pools.push(split.unreserved);
    }
    if walk.standing.anyone_short() {
        for (agent, pool) in pools.iter_mut().enumerate() {
            walk.serve_guarantees(agent, pool);
            if !walk.standing.anyone_short() {
                break;
            }
        }
    }
    for (agent, pool) in pools.iter_mut().enumerate() {
        walk.serve_fair_share(agent, pool);
    }
    walk.decisions
}

/// The state of one round's walk over the agents.
struct Walk<'a, 's> {
    standing: Standing<'a>,
    filters: FilterIndex<'a>,
    config: &'s Config,
    agents: &'s [&'a AgentView],
    decisions: Vec<OfferDecision>,
    /// `(agent, framework)` → its decision, for the first two stages, so
    /// that later pieces of the same agent for the same framework join it.
    merged: HashMap<(usize, usize), usize>,
    /// Scratch: frameworks refusing the offer being considered.
    refusing: Vec<usize>,
    /// Scratch: roles already served from the agent's pool in this stage.
    served: Vec<usize>,
}

impl Walk<'_, '_> {
    /// Stage 1: an agent's reserved pool for `role`.
    fn serve_reserved(&mut self, agent: usize, role: &str, pool: &Resources) {
        let Some(role) = self.standing.role_named(role) else {
            return; // no framework of the role: the pool stays unoffered
        };
        let state = &self.standing.roles[role];
        let offer = state.quota.limit.cut(pool, &state.allocated);
        if let Some(framework) = self.pick_in_role(agent, role, &offer) {
            self.offer(agent, framework, offer, true);
        }
    }

    /// Stage 2: slices of an agent's unreserved pool for roles below their
    /// guarantee, each role at most once.
    fn serve_guarantees(&mut self, agent: usize, pool: &mut Cow<Resources>) {
        self.served.clear();
        while self.config.allocatable(pool) {
            let mut chosen = None;
            for role in self.standing.short_roles() {
                if self.served.contains(&role) {
                    continue;
                }
                let state = &self.standing.roles[role];
                let slice = guarantee_slice(pool, &state.quota.guarantee, &state.allocated);
                let offer = state.quota.limit.cut(&slice, &state.allocated);
                if !self.config.allocatable(&offer) {
                    continue;
                }
                self.filters
                    .refusing(&self.agents[agent].id, &offer, &mut self.refusing);
                if let Some(framework) = state
                    .frameworks()
                    .find(|f| self.refusing.binary_search(f).is_err())
                {
                    chosen = Some((role, framework, offer));
                    break;
                }
            }
            let Some((role, framework, offer)) = chosen else {
                return;
            };
            self.served.push(role);
            *pool = Cow::Owned(pool.saturating_sub(&offer));
            self.offer(agent, framework, offer, true);
        }
    }

    /// Stage 3: an agent's unreserved remainder by fair share. An unlimited
    /// role takes all of it; what a limit leaves goes on to the next role.
    fn serve_fair_share(&mut self, agent: usize, pool: &mut Cow<Resources>) {
        self.served.clear();
        while self.config.allocatable(pool) {
            // Frameworks refusing the whole pool, found once: what every
            // role is offered unless its limit cuts it.
            self.filters
                .refusing(&self.agents[agent].id, pool, &mut self.refusing);
            let whole_refusing = std::mem::take(&mut self.refusing);
            // (role, framework, the cut offer; None: the whole pool)
            let mut chosen: Option<(usize, usize, Option<Resources>)> = None;
            for role in self.standing.roles_by_share() {
                if self.served.contains(&role) {
                    continue;
                }
                let state = &self.standing.roles[role];
                let cut = if state.quota.limit.is_unlimited() {
                    None
                } else {
                    let cut = state.quota.limit.cut(pool, &state.allocated);
                    if cut == **pool {
                        None
                    } else if self.config.allocatable(&cut) {
                        Some(cut)
                    } else {
                        continue;
                    }
                };
                let cut_refusing;
                let refusing = match &cut {
                    None => &whole_refusing,
                    Some(cut) => {
                        let mut list = Vec::new();
                        self.filters
                            .refusing(&self.agents[agent].id, cut, &mut list);
                        cut_refusing = list;
                        &cut_refusing
                    }
                };
                if let Some(framework) = state
                    .frameworks()
                    .find(|f| refusing.binary_search(f).is_err())
                {
                    chosen = Some((role, framework, cut));
                    break;
                }
            }
            self.refusing = whole_refusing;
            let Some((role, framework, cut)) = chosen else {
                return;
            };
            let Some(cut) = cut else {
                let whole = std::mem::replace(pool, Cow::Owned(Resources::empty()));
                self.offer(agent, framework, whole.into_owned(), false);
                return;
            };
            self.served.push(role);
            *pool = Cow::Owned(pool.saturating_sub(&cut));
            self.offer(agent, framework, cut, false);
        }
    }

    /// The neediest framework of `role` that wants `offer` of `agent`, if
    /// the offer is worth making.
    fn pick_in_role(&mut self, agent: usize, role: usize, offer: &Resources) -> Option<usize> {
        if !self.config.allocatable(offer) {
            return None;
        }
        self.filters
            .refusing(&self.agents[agent].id, offer, &mut self.refusing);
        self.standing.roles[role]
            .frameworks()
            .find(|f| self.refusing.binary_search(f).is_err())
    }

    /// Records the offer and adds it to the framework's standing. `remember`
    /// lets a later stage's piece of the same agent join this decision.
    fn offer(&mut self, agent: usize, framework: usize, resources: Resources, remember: bool) {
        self.standing.grant(framework, &resources);
        let role = self.standing.frameworks[framework].role;
        self.standing
            .retire_if_exhausted(role, &self.config.min_allocatable);
        if !self.merged.is_empty()
            && let Some(&at) = self.merged.get(&(agent, framework))
        {
            self.decisions[at].resources += &resources;
            return;
        }
        if remember {
            self.merged.insert((agent, framework), self.decisions.len());
        }
        self.decisions.push(OfferDecision {
            framework: self.standing.frameworks[framework].view.id.clone(),
            agent: self.agents[agent].id.clone(),
            resources,
        });
    }
}
