//! Where every role and framework stands during a round: what it holds, its
//! dominant share, and the share-ordered queues the stages pick from. The
//! standing changes only through [`Standing::grant`], which keeps every
//! queue in order.

use std::collections::{BTreeSet, HashMap};

use wasmesos_api::Resources;

use crate::drf::ShareQueue;
use crate::quota::{Quota, below_guarantee};
use crate::snapshot::{FrameworkView, Snapshot, valid_weight};

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
    pub(crate) quota: Quota,
    /// The sum of its frameworks' allocations, suppressed ones included.
    pub(crate) allocated: Resources,
    /// `allocated.dominant_share(total)`, unweighted.
    pub(crate) share: f64,
    /// Its frameworks that want offers, by share.
    queue: ShareQueue,
    /// True while it waits in the guarantee queue.
    short: bool,
    /// True once its limit leaves nothing worth offering: it has left the
    /// queues for the rest of the round.
    retired: bool,
}

impl RoleState<'_> {
    /// The key roles are ordered by.
    pub(crate) fn weighted_share(&self) -> f64 {
        self.share / self.weight
    }

    /// Its frameworks that want offers, neediest first.
    pub(crate) fn frameworks(&self) -> impl Iterator<Item = usize> + '_ {
        self.queue.iter()
    }
}

/// Shares of every role and framework, kept ordered as offers are made.
///
/// Frameworks are indexed in id order and roles in name order, so that
/// ordering by `(share, index)` breaks ties by id.
pub(crate) struct Standing<'a> {
    total: Resources,
    pub(crate) frameworks: Vec<FrameworkState<'a>>,
    pub(crate) roles: Vec<RoleState<'a>>,
    role_index: HashMap<&'a str, usize>,
    /// Roles with at least one framework that wants offers, by weighted
    /// share.
    roles_queue: ShareQueue,
    /// The roles of `roles_queue` still below their guarantee, in the same
    /// order.
    guarantee_queue: ShareQueue,
}

impl<'a> Standing<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, total: Resources) -> Self {
        let mut views: Vec<&FrameworkView> = snapshot.frameworks.iter().collect();
        // Stable, so among repeated ids the first entry is kept.
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views.dedup_by(|later, first| later.id == first.id);

        let names: BTreeSet<&str> = views.iter().map(|f| f.role.as_str()).collect();
        let role_index: HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();

        let mut roles: Vec<RoleState> = names
            .iter()
            .map(|name| {
                let listed = snapshot.role(name);
                RoleState {
                    name,
                    weight: listed.map_or(crate::DEFAULT_WEIGHT, |r| valid_weight(r.weight)),
                    quota: listed.map(|r| r.quota.clone()).unwrap_or_default(),
                    allocated: Resources::empty(),
                    share: 0.0,
                    queue: ShareQueue::default(),
                    short: false,
                    retired: false,
                }
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
        let mut guarantee_queue = ShareQueue::default();
        for (index, role) in roles.iter_mut().enumerate() {
            role.share = role.allocated.dominant_share(&total);
            if !role.queue.is_empty() {
                roles_queue.insert(index, role.weighted_share());
                if below_guarantee(&role.quota.guarantee, &role.allocated) {
                    role.short = true;
                    guarantee_queue.insert(index, role.weighted_share());
                }
            }
        }

        Self {
            total,
            frameworks,
            roles,
            role_index,
            roles_queue,
            guarantee_queue,
        }
    }

    pub(crate) fn nobody_wants_offers(&self) -> bool {
        self.roles_queue.is_empty()
    }

    /// The index of the role called `name`, if a framework has it.
    pub(crate) fn role_named(&self, name: &str) -> Option<usize> {
        self.role_index.get(name).copied()
    }

    /// The frameworks that want offers, with their indices.
    pub(crate) fn eligible_frameworks(
        &self,
    ) -> impl Iterator<Item = (usize, &'a FrameworkView)> + '_ {
        self.frameworks
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.view.suppressed)
            .map(|(index, f)| (index, f.view))
    }

    /// Roles with a framework that wants offers, lowest weighted share
    /// first.
    pub(crate) fn roles_by_share(&self) -> impl Iterator<Item = usize> + '_ {
        self.roles_queue.iter()
    }

    /// The roles of [`Standing::roles_by_share`] still below their
    /// guarantee.
    pub(crate) fn short_roles(&self) -> impl Iterator<Item = usize> + '_ {
        self.guarantee_queue.iter()
    }

    pub(crate) fn anyone_short(&self) -> bool {
        !self.guarantee_queue.is_empty()
    }

    /// Takes `role` out of the queues if its limit leaves it nothing worth
    /// offering (`ResourceLimits::exhausted`): skipping it at every agent
    /// would cost a cut each time and change nothing.
    pub(crate) fn retire_if_exhausted(&mut self, role: usize, min_allocatable: &Resources) {
        let state = &mut self.roles[role];
        if state.retired
            || state.queue.is_empty()
            || state.quota.limit.is_unlimited()
            || !state
                .quota
                .limit
                .exhausted(&state.allocated, min_allocatable)
        {
            return;
        }
        state.retired = true;
        let share = state.weighted_share();
        self.roles_queue.remove(role, share);
        if state.short {
            state.short = false;
            self.guarantee_queue.remove(role, share);
        }
    }

    /// Adds `resources` to framework `index` and to its role, and moves both
    /// to their new places in the order; a role that reaches its guarantee
    /// leaves the guarantee queue.
    pub(crate) fn grant(&mut self, index: usize, resources: &Resources) {
        let framework = &mut self.frameworks[index];
        framework.allocated += resources;
        let share = framework.allocated.dominant_share(&self.total);
        let role_index = framework.role;
        let role = &mut self.roles[role_index];
        role.queue.reposition(index, framework.share, share);
        framework.share = share;

        let old = role.weighted_share();
        role.allocated += resources;
        role.share = role.allocated.dominant_share(&self.total);
        if role.retired {
            return;
        }
        let new = role.weighted_share();
        self.roles_queue.reposition(role_index, old, new);
        if role.short {
            if below_guarantee(&role.quota.guarantee, &role.allocated) {
                self.guarantee_queue.reposition(role_index, old, new);
            } else {
                role.short = false;
                self.guarantee_queue.remove(role_index, old);
            }
        }
    }
}
