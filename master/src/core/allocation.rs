//! From live state to offers: build the allocator's snapshot, run the pure
//! DRF allocator over it, and turn its decisions into offers delivered to
//! the frameworks' schedulers. Also the offer bookkeeping shared with
//! callbacks: removal, rescinding and hold expiry.

use std::collections::BTreeMap;
use std::time::Instant;

use wasmesos_allocator::{AgentView, Config, FrameworkView, RoleView, Snapshot, allocate};
use wasmesos_api::{AgentId, FrameworkId, OfferId, now_ms};
use wasmesos_schedhost::{Event, Offer};

use super::{Core, OfferEntry};
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
    /// round, so no agent is always first) and healthy frameworks.
    fn snapshot(&mut self) -> Snapshot {
        self.round += 1;
        let now = now_ms();
        let mut agents: Vec<AgentView> = self
            .agents
            .iter()
            .filter(|(_, a)| a.conn.is_some())
            .map(|(id, a)| {
                let total = wasmesos_api::Resources::from(a.record.total.as_ref());
                AgentView {
                    id: id.clone(),
                    free: total
                        .saturating_sub(&a.allocated)
                        .saturating_sub(&a.offered),
                    total,
                }
            })
            .collect();
        if !agents.is_empty() {
            let shift = (self.round as usize) % agents.len();
            agents.rotate_left(shift);
        }
        let mut roles: BTreeMap<String, f64> = BTreeMap::new();
        let frameworks = self
            .frameworks
            .iter_mut()
            .filter(|(_, f)| f.healthy)
            .map(|(id, f)| {
                f.filters.retain(|flt| flt.until_ms > now);
                roles.insert(f.record.role.clone(), f.record.weight.max(0.0001));
                FrameworkView {
                    id: id.clone(),
                    role: f.record.role.clone(),
                    allocated: f.allocated.clone(),
                    suppressed: f.suppressed,
                    filters: f.filters.clone(),
                }
            })
            .collect();
        Snapshot {
            agents,
            frameworks,
            roles: roles
                .into_iter()
                .map(|(name, weight)| RoleView { name, weight })
                .collect(),
            now_ms: now,
        }
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
