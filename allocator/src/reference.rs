//! The round's semantics written as plainly as possible, for the property
//! tests to hold the real allocator to: before every choice, rescan every
//! role and framework and recompute every share from scratch. No queues,
//! no indices, no borrowed pools.

use std::collections::HashSet;

use wasmesos_api::{AgentId, Resources};

use crate::quota::{Quota, below_guarantee, guarantee_slice};
use crate::snapshot::{AgentView, FrameworkView, Snapshot};
use crate::{Config, OfferDecision, kinds};

/// The first entry of each framework id: the one the allocator uses.
pub(crate) fn first_frameworks(snapshot: &Snapshot) -> Vec<&FrameworkView> {
    let mut seen = HashSet::new();
    snapshot
        .frameworks
        .iter()
        .filter(|f| seen.insert(&f.id))
        .collect()
}

/// The quota of `role` (its first entry's, or none).
pub(crate) fn quota_of(snapshot: &Snapshot, role: &str) -> Quota {
    snapshot
        .role(role)
        .map(|r| r.quota.clone())
        .unwrap_or_default()
}

/// What `agent` sets aside for each role (roles in name order, each
/// taking its rest of reservation out of what is free), and the
/// unreserved rest.
pub(crate) fn reserved_pools(
    snapshot: &Snapshot,
    agent: &AgentView,
) -> (Vec<(String, Resources)>, Resources) {
    let mut names: Vec<&str> = snapshot.roles.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    names.dedup();
    let mut free = agent.free.clone();
    let mut pools = Vec::new();
    for name in names {
        let mut left = Resources::empty();
        for r in &snapshot.role(name).expect("listed").reservations {
            if r.agent == agent.id {
                left += &r.resources.saturating_sub(&r.used);
            }
        }
        let pool = kinds::min(&left, &free);
        if !pool.is_empty() {
            free = free.saturating_sub(&pool);
            pools.push((name.to_string(), pool));
        }
    }
    (pools, free)
}

pub(crate) fn refuses(
    framework: &FrameworkView,
    agent: &AgentId,
    offered: &Resources,
    now_ms: i64,
) -> bool {
    framework.suppressed
        || framework
            .filters
            .iter()
            .any(|f| f.refuses(agent, offered, now_ms))
}

struct Model<'a> {
    snapshot: &'a Snapshot,
    config: &'a Config,
    total: Resources,
    frameworks: Vec<(&'a FrameworkView, Resources)>,
    decisions: Vec<OfferDecision>,
}

impl Model<'_> {
    fn role_allocated(&self, role: &str) -> Resources {
        let mut sum = Resources::empty();
        for (_, allocated) in self.frameworks.iter().filter(|(f, _)| f.role == role) {
            sum += allocated;
        }
        sum
    }

    /// Roles with a framework that wants offers, neediest first.
    fn roles_by_share(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(f, _)| !f.suppressed)
            .map(|(f, _)| f.role.clone())
            .collect();
        roles.sort();
        roles.dedup();
        let key =
            |r: &str| self.role_allocated(r).dominant_share(&self.total) / self.snapshot.weight(r);
        roles.sort_by(|a, b| key(a).total_cmp(&key(b)).then_with(|| a.cmp(b)));
        roles
    }

    /// The neediest framework of `role` that does not refuse `offer`.
    fn neediest(&self, role: &str, agent: &AgentId, offer: &Resources) -> Option<usize> {
        if !self.config.allocatable(offer) {
            return None;
        }
        (0..self.frameworks.len())
            .filter(|i| self.frameworks[*i].0.role == role)
            .filter(|i| !refuses(self.frameworks[*i].0, agent, offer, self.snapshot.now_ms))
            .min_by(|a, b| {
                let (fa, aa) = &self.frameworks[*a];
                let (fb, ab) = &self.frameworks[*b];
                aa.dominant_share(&self.total)
                    .total_cmp(&ab.dominant_share(&self.total))
                    .then_with(|| fa.id.cmp(&fb.id))
            })
    }

    fn grant(&mut self, framework: usize, agent: &AgentId, offer: Resources) {
        self.frameworks[framework].1 += &offer;
        let id = &self.frameworks[framework].0.id;
        match self
            .decisions
            .iter_mut()
            .find(|d| &d.agent == agent && &d.framework == id)
        {
            Some(d) => d.resources += &offer,
            None => self.decisions.push(OfferDecision {
                framework: id.clone(),
                agent: agent.clone(),
                resources: offer,
            }),
        }
    }

    /// Serves `pool` of `agent` to the roles `candidates` yields (asked
    /// afresh before every choice), each role once, each offered what
    /// `offer_for` says; returns what is left.
    fn serve(
        &mut self,
        agent: &AgentId,
        mut pool: Resources,
        candidates: impl Fn(&Self) -> Vec<String>,
        offer_for: impl Fn(&Self, &str, &Resources) -> Resources,
    ) -> Resources {
        let mut served: Vec<String> = Vec::new();
        while self.config.allocatable(&pool) {
            let chosen = candidates(self)
                .into_iter()
                .filter(|r| !served.contains(r))
                .find_map(|role| {
                    let offer = offer_for(self, &role, &pool);
                    self.neediest(&role, agent, &offer)
                        .map(|f| (role.clone(), f, offer))
                });
            let Some((role, framework, offer)) = chosen else {
                break;
            };
            pool = pool.saturating_sub(&offer);
            served.push(role);
            self.grant(framework, agent, offer);
        }
        pool
    }
}

/// The decisions one round should make.
pub(crate) fn reference(snapshot: &Snapshot, config: &Config) -> Vec<OfferDecision> {
    let mut model = Model {
        snapshot,
        config,
        total: snapshot.total(),
        frameworks: first_frameworks(snapshot)
            .into_iter()
            .map(|f| (f, f.allocated.clone()))
            .collect(),
        decisions: Vec::new(),
    };
    let limit_cut = |m: &Model, role: &str, pool: &Resources| {
        quota_of(m.snapshot, role)
            .limit
            .cut(pool, &m.role_allocated(role))
    };
    let agents = snapshot.unique_agents();
    let mut pools = Vec::new();
    for agent in &agents {
        let (reserved, unreserved) = reserved_pools(snapshot, agent);
        for (role, pool) in reserved {
            let only = role.clone();
            model.serve(&agent.id, pool, move |_| vec![only.clone()], limit_cut);
        }
        pools.push(unreserved);
    }
    let short = |m: &Model| {
        m.roles_by_share()
            .into_iter()
            .filter(|r| below_guarantee(&quota_of(m.snapshot, r).guarantee, &m.role_allocated(r)))
            .collect()
    };
    let slice = |m: &Model, role: &str, pool: &Resources| {
        let allocated = m.role_allocated(role);
        let quota = quota_of(m.snapshot, role);
        let slice = guarantee_slice(pool, &quota.guarantee, &allocated);
        quota.limit.cut(&slice, &allocated)
    };
    for (agent, pool) in agents.iter().zip(pools.iter_mut()) {
        *pool = model.serve(&agent.id, pool.clone(), short, slice);
    }
    for (agent, pool) in agents.iter().zip(pools) {
        model.serve(&agent.id, pool, Model::roles_by_share, limit_cut);
    }
    model.decisions
}
