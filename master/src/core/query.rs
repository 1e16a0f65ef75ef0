//! Read-only views of the live state, answered from the core's memory (the
//! store holds the durable part; these add what only the core knows:
//! connections, heartbeats, allocations, shares).

use tokio::sync::oneshot;
use wasmesos_api::proto;
use wasmesos_api::{Principal, Resources, TenantId};

use super::Core;

/// A question for the core.
pub(crate) enum Query {
    Agents(oneshot::Sender<Vec<proto::Agent>>),
    /// Frameworks of one tenant, or of all (`None`, for operators).
    Frameworks(Option<TenantId>, oneshot::Sender<Vec<proto::Framework>>),
    Status(oneshot::Sender<proto::ClusterStatus>),
    /// One framework with its log, as a principal may see it.
    Framework(
        Principal,
        String,
        oneshot::Sender<Result<proto::FrameworkDetail, tonic::Status>>,
    ),
}

impl Core {
    pub(super) fn answer(&self, query: Query) {
        match query {
            Query::Agents(reply) => {
                let _ = reply.send(self.agent_views());
            }
            Query::Frameworks(tenant, reply) => {
                let _ = reply.send(self.framework_views(tenant.as_ref()));
            }
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Query::Framework(principal, name, reply) => {
                let _ = reply.send(self.framework_detail(&principal, &name));
            }
        }
    }

    fn cluster_total(&self) -> Resources {
        let mut total = Resources::empty();
        for a in self.agents.values().filter(|a| a.conn.is_some()) {
            total += &Resources::from(a.record.total.as_ref());
        }
        total
    }

    fn agent_views(&self) -> Vec<proto::Agent> {
        self.agents
            .values()
            .map(|a| {
                let mut r = a.record.clone();
                r.used = Some((&(a.allocated.clone() + &a.offered)).into());
                r.last_heartbeat_ms =
                    wasmesos_api::now_ms() - a.last_seen.elapsed().as_millis() as i64;
                r.tasks_running = a.tasks.len() as u32;
                r
            })
            .collect()
    }

    pub(super) fn framework_views(&self, tenant: Option<&TenantId>) -> Vec<proto::Framework> {
        let total = self.cluster_total();
        self.frameworks
            .values()
            .filter(|f| tenant.is_none_or(|t| &f.tenant == t))
            .map(|f| {
                let mut r = f.record.clone();
                r.tasks_running = f.tasks_running;
                r.allocated = Some((&f.allocated).into());
                r.dominant_share = f.allocated.dominant_share(&total);
                r.status = if f.suppressed && f.healthy {
                    format!("{} (suppressed)", f.status)
                } else {
                    f.status.clone()
                };
                r.callbacks = f.callbacks;
                r.callback_failures = f.failures;
                let mut sorted: Vec<u32> = f.latencies.iter().copied().collect();
                sorted.sort_unstable();
                let at = |p: f64| {
                    sorted
                        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
                        .copied()
                        .unwrap_or(0) as u64
                };
                r.callback_p50_us = at(0.5);
                r.callback_p99_us = at(0.99);
                r
            })
            .collect()
    }

    fn status(&self) -> proto::ClusterStatus {
        let mut used = Resources::empty();
        for a in self.agents.values().filter(|a| a.conn.is_some()) {
            used += &a.allocated;
        }
        proto::ClusterStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            store: self.committer.store().describe(),
            leader_epoch: self.epoch,
            advertise: self.advertise.clone(),
            agents_active: self.agents.values().filter(|a| a.conn.is_some()).count() as u32,
            frameworks: self.frameworks.len() as u32,
            tasks_active: self.tasks.len() as u32,
            total: Some((&self.cluster_total()).into()),
            used: Some((&used).into()),
            started_ms: self.started_ms,
            rss_bytes: resident_bytes(),
        }
    }
}

/// This process's resident memory (Linux `VmRSS`), or 0 where unknown.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
