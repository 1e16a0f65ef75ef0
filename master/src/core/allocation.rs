//! From live state to offers: build the allocator's snapshot, run the pure
//! DRF allocator over it, and turn its decisions into offers delivered to
//! the frameworks' schedulers. Also the offer bookkeeping shared with
//! callbacks: removal, rescinding and hold expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use wasmesos_allocator::{
    AgentView, Config, FrameworkView, Reservation, RoleView, Snapshot, allocate,
};
use wasmesos_api::{AgentId, FrameworkId, OfferId, Resources, now_ms};
use wasmesos_schedhost::{Event, Offer};

use super::{Core, Counters, OfferEntry};
use crate::framework::{Context, Delivery};

impl Core {
    /// One allocation pass over everything currently free.
    pub(super) fn allocate(&mut self) {
        let snapshot = self.snapshot();
        if snapshot.agents.is_empty() || snapshot.frameworks.is_empty() {
            return;
        }
        let decisions = allocate(&snapshot, &Config::default());
        let mut by_framework: BTreeMap<FrameworkId, Vec<Offer>> = BTreeMap::new();
        for d in decisions {
            self.next_offer += 1;
            let Ok(id) = OfferId::new(format!("o-{}-{}", self.epoch, self.next_offer)) else {
                continue;
            };
            let Some(agent) = self.agents.get_mut(&d.agent) else {
                continue;
            };
            agent.offered += &d.resources;
            Counters::add(&self.counters.offers_made, 1);
            let offer = Offer {
                id: id.clone(),
                agent_id: d.agent.clone(),
                hostname: agent.record.hostname.clone(),
                resources: d.resources.clone(),
                attributes: agent
                    .record
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            self.offers.insert(
                id.clone(),
                OfferEntry {
                    framework: d.framework.clone(),
                    agent: d.agent,
                    resources: d.resources,
                },
            );
            if let Some(fw) = self.frameworks.get_mut(&d.framework) {
                fw.offers.insert(id, None);
            }
            by_framework.entry(d.framework).or_default().push(offer);
        }
        for (fw_id, offers) in by_framework {
            let ids = offers.iter().map(|o| o.id.clone()).collect();
            if let Some(fw) = self.frameworks.get(&fw_id) {
                fw.actor
                    .deliver(Delivery::with(Event::Offers(offers), Context::Offers(ids)));
            }
        }
    }

    /// What the allocator sees: connected agents (in an order rotated every
    /// round, so no agent is always first; draining ones with nothing
    /// free), frameworks (unhealthy ones as suppressed, so that what they
    /// hold still counts toward their role), and every role with its
    /// weight, quota and reservations.
    ///
    /// A framework's allocation, and a role's use of its reservations,
    /// count outstanding offers as well as tasks: quota limits bound both.
    fn snapshot(&mut self) -> Snapshot {
        self.round += 1;
        let now = now_ms();
        let mut agents: Vec<AgentView> = self
            .agents
            .iter()
            .filter(|(_, a)| a.conn.is_some())
            .map(|(id, a)| {
                let total = Resources::from(a.record.total.as_ref());
                let free = if a.record.draining {
                    Resources::empty()
                } else {
                    total
                        .saturating_sub(&a.allocated)
                        .saturating_sub(&a.offered)
                };
                AgentView {
                    id: id.clone(),
                    free,
                    total,
                }
            })
            .collect();
        if !agents.is_empty() {
            let shift = (self.round as usize) % agents.len();
            agents.rotate_left(shift);
        }
        let mut offered: HashMap<&FrameworkId, Resources> = HashMap::new();
        for offer in self.offers.values() {
            *offered.entry(&offer.framework).or_default() += &offer.resources;
        }
        let at_task_limit = self.tenants_at_task_limit();
        let frameworks: Vec<FrameworkView> = self
            .frameworks
            .iter()
            .map(|(id, f)| FrameworkView {
                id: id.clone(),
                role: f.record.role.clone(),
                allocated: offered
                    .get(id)
                    .map_or_else(|| f.allocated.clone(), |o| f.allocated.clone() + o),
                suppressed: f.suppressed || !f.healthy || at_task_limit.contains(&f.tenant),
                filters: f
                    .filters
                    .iter()
                    .filter(|flt| flt.until_ms > now)
                    .cloned()
                    .collect(),
            })
            .collect();
        for f in self.frameworks.values_mut() {
            f.filters.retain(|flt| flt.until_ms > now);
        }
        let mut names: BTreeSet<&str> = self.roles.keys().map(String::as_str).collect();
        names.extend(self.frameworks.values().map(|f| f.record.role.as_str()));
        let mut reservations = self.reservations();
        let roles = names
            .into_iter()
            .map(|name| {
                let (weight, quota) = self.role_settings(name);
                RoleView {
                    name: name.to_string(),
                    weight,
                    quota,
                    reservations: reservations.remove(name).unwrap_or_default(),
                }
            })
            .collect();
        Snapshot {
            agents,
            frameworks,
            roles,
            now_ms: now,
        }
    }

    /// Every connected agent's reservations, by role, with what the role's
    /// frameworks hold on that agent (tasks and outstanding offers).
    fn reservations(&self) -> HashMap<String, Vec<Reservation>> {
        let mut by_role: HashMap<String, Vec<Reservation>> = HashMap::new();
        let reserving = self
            .agents
            .iter()
            .filter(|(_, a)| a.conn.is_some() && !a.record.reserved.is_empty());
        for (id, a) in reserving {
            let mut used: HashMap<&str, Resources> = HashMap::new();
            let role_of =
                |fw: &FrameworkId| self.frameworks.get(fw).map(|f| f.record.role.as_str());
            for key in &a.tasks {
                if let (Some(task), Some(role)) = (self.tasks.get(key), role_of(&key.0)) {
                    *used.entry(role).or_default() += &task.resources;
                }
            }
            for offer in self.offers.values().filter(|o| &o.agent == id) {
                if let Some(role) = role_of(&offer.framework) {
                    *used.entry(role).or_default() += &offer.resources;
                }
            }
            for (role, resources) in &a.record.reserved {
                by_role.entry(role.clone()).or_default().push(Reservation {
                    agent: id.clone(),
                    resources: Resources::from(resources),
                    used: used.get(role.as_str()).cloned().unwrap_or_default(),
                });
            }
        }
        by_role
    }

    /// Forgets an offer: its resources are free again.
    pub(super) fn remove_offer(&mut self, fw_id: &FrameworkId, id: &OfferId) {
        let Some(offer) = self.offers.remove(id) else {
            return;
        };
        if let Some(agent) = self.agents.get_mut(&offer.agent) {
            agent.offered = agent.offered.saturating_sub(&offer.resources);
        }
        if let Some(fw) = self.frameworks.get_mut(fw_id) {
            fw.offers.remove(id);
        }
        self.allocation_pending = true;
    }

    /// Withdraws every offer of an agent that went away. Held offers are
    /// announced to their schedulers; offers inside a running callback
    /// simply become invalid for launches.
    pub(super) fn rescind_offers_on(&mut self, agent: &AgentId) {
        let ids: Vec<(OfferId, FrameworkId)> = self
            .offers
            .iter()
            .filter(|(_, o)| &o.agent == agent)
            .map(|(id, o)| (id.clone(), o.framework.clone()))
            .collect();
        for (id, fw_id) in ids {
            self.rescind(&fw_id, &id);
        }
    }

    fn rescind(&mut self, fw_id: &FrameworkId, id: &OfferId) {
        let held = self
            .frameworks
            .get(fw_id)
            .and_then(|f| f.offers.get(id))
            .is_some_and(|h| h.is_some());
        Counters::add(&self.counters.offers_rescinded, 1);
        self.remove_offer(fw_id, id);
        if held && let Some(fw) = self.frameworks.get(fw_id) {
            fw.actor
                .deliver(Delivery::plain(Event::OfferRescinded(id.clone())));
        }
    }

    /// Held offers past their deadline are rescinded and re-offered.
    pub(super) fn expire_holds(&mut self) {
        let now = Instant::now();
        let expired: Vec<(FrameworkId, OfferId)> = self
            .frameworks
            .iter()
            .flat_map(|(fw_id, f)| {
                f.offers
                    .iter()
                    .filter(|(_, h)| h.is_some_and(|d| d <= now))
                    .map(move |(id, _)| (fw_id.clone(), id.clone()))
            })
            .collect();
        for (fw_id, id) in expired {
            self.rescind(&fw_id, &id);
        }
    }
}
