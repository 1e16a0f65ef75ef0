//! Read-only views of the live state, answered from the core's memory (the
//! store holds the durable part; these add what only the core knows:
//! connections, heartbeats, allocations, shares).
//!
//! The core is one loop that also allocates, so every answer here must be
//! cheap: lists that grow with the cluster (agents, an agent's tasks) are
//! paged and filtered in here, with a bound on how much one question may
//! scan, and figures that would need a scan (tasks by state) are kept as
//! counts. The CLI (`api.rs`) and the web UI (`http/`) ask the same
//! questions, so they show the same numbers.

use std::ops::Bound;

use tokio::sync::oneshot;
use wasmesos_api::proto::{self, AgentState};
use wasmesos_api::{AgentId, Principal, Resources, TenantId};

use super::counters::TaskCounts;
use super::{AgentEntry, Core};

/// Most agents one page query looks at: a filter that matches rarely
/// answers a short page with a cursor instead of holding the core.
const AGENT_SCAN: usize = 20_000;
/// Most active tasks listed with one agent.
pub(crate) const AGENT_TASKS: usize = 1_000;

/// A question for the core.
pub(crate) enum Query {
    Agents(oneshot::Sender<Vec<proto::Agent>>),
    /// One page of agents in id order.
    AgentPage(AgentFilter, oneshot::Sender<AgentPage>),
    /// One agent with its active tasks (at most [`AGENT_TASKS`]).
    Agent(
        AgentId,
        oneshot::Sender<Option<(proto::Agent, Vec<proto::Task>)>>,
    ),
    /// Frameworks of one tenant, or of all (`None`, for operators).
    Frameworks(Option<TenantId>, oneshot::Sender<Vec<proto::Framework>>),
    Status(oneshot::Sender<proto::ClusterStatus>),
    /// Counts for the overview and `/metrics`: constant time but for one
    /// pass over the agents.
    Summary(oneshot::Sender<ClusterSummary>),
    /// Per-framework totals for `/metrics`.
    FrameworkMetrics(oneshot::Sender<Vec<FrameworkMetrics>>),
    /// Configured roles and roles frameworks name, with live figures.
    Roles(oneshot::Sender<Vec<proto::Role>>),
    /// One framework with its log, as a principal may see it.
    Framework(
        Principal,
        String,
        oneshot::Sender<Result<proto::FrameworkDetail, tonic::Status>>,
    ),
}

/// Which agents a page holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct AgentFilter {
    /// Only agents with ids after this one (the previous page's cursor).
    pub after: Option<AgentId>,
    pub limit: usize,
    /// ACTIVE or DISCONNECTED (lost agents leave the core); `None`: all.
    pub state: Option<AgentState>,
    pub draining: Option<bool>,
    /// A substring of the id or hostname.
    pub text: Option<String>,
}

/// A page of agents.
#[derive(Clone, Debug, Default)]
pub(crate) struct AgentPage {
    pub agents: Vec<proto::Agent>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<String>,
    /// Agents known in all (unfiltered).
    pub total: usize,
}

/// The cluster in figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterSummary {
    pub status: proto::ClusterStatus,
    pub agents_active: u64,
    pub agents_disconnected: u64,
    pub agents_draining: u64,
    /// Every task in the store, by state.
    pub tasks: TaskCounts,
    pub offers_outstanding: u64,
    pub roles: u64,
}

/// What `/metrics` reports per framework.
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameworkMetrics {
    pub name: String,
    pub role: String,
    pub callbacks: u64,
    pub failures: u64,
    pub fuel: u64,
    pub callback_seconds: f64,
    pub tasks_running: u64,
    pub dominant_share: f64,
    pub healthy: bool,
}

impl Core {
    pub(super) fn answer(&self, query: Query) {
        match query {
            Query::Agents(reply) => {
                let _ = reply.send(self.agent_views());
            }
            Query::AgentPage(filter, reply) => {
                let _ = reply.send(self.agent_page(&filter));
            }
            Query::Agent(id, reply) => {
                let _ = reply.send(self.agent_detail(&id));
            }
            Query::Summary(reply) => {
                let _ = reply.send(self.summary());
            }
            Query::FrameworkMetrics(reply) => {
                let _ = reply.send(self.framework_metrics());
            }
            Query::Frameworks(tenant, reply) => {
                let _ = reply.send(self.framework_views(tenant.as_ref()));
            }
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Query::Roles(reply) => {
                let _ = reply.send(self.role_views());
            }
            Query::Framework(principal, name, reply) => {
                let _ = reply.send(self.framework_detail(&principal, &name));
            }
        }
    }

    pub(super) fn cluster_total(&self) -> Resources {
        let mut total = Resources::empty();
        for a in self.agents.values().filter(|a| a.conn.is_some()) {
            total += &Resources::from(a.record.total.as_ref());
        }
        total
    }

    pub(super) fn agent_views(&self) -> Vec<proto::Agent> {
        self.agents.values().map(agent_view).collect()
    }

    fn agent_page(&self, filter: &AgentFilter) -> AgentPage {
        let start = match &filter.after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut page = AgentPage {
            total: self.agents.len(),
            ..Default::default()
        };
        let text = filter.text.as_deref().map(str::to_ascii_lowercase);
        let range = self
            .agents
            .range::<AgentId, _>((start, Bound::Unbounded))
            .take(AGENT_SCAN);
        let mut last = None;
        for (id, a) in range {
            last = Some(id);
            let keep = filter.state.is_none_or(|s| a.record.state() == s)
                && filter.draining.is_none_or(|d| a.record.draining == d)
                && text.as_deref().is_none_or(|t| {
                    id.as_str().to_ascii_lowercase().contains(t)
                        || a.record.hostname.to_ascii_lowercase().contains(t)
                });
            if keep {
                page.agents.push(agent_view(a));
                if page.agents.len() >= filter.limit {
                    break;
                }
            }
        }
        // More may follow whenever the scan stopped before the map's end.
        if let Some(last) = last
            && self
                .agents
                .range::<AgentId, _>((Bound::Excluded(last), Bound::Unbounded))
                .next()
                .is_some()
        {
            page.next = Some(last.to_string());
        }
        page
    }

    fn agent_detail(&self, id: &AgentId) -> Option<(proto::Agent, Vec<proto::Task>)> {
        let a = self.agents.get(id)?;
        let mut tasks: Vec<proto::Task> = a
            .tasks
            .iter()
            .filter_map(|key| self.tasks.get(key))
            .map(|t| t.record.clone())
            .collect();
        tasks.sort_by(|x, y| (&x.framework_name, &x.task_id).cmp(&(&y.framework_name, &y.task_id)));
        tasks.truncate(AGENT_TASKS);
        Some((agent_view(a), tasks))
    }

    fn summary(&self) -> ClusterSummary {
        let mut s = ClusterSummary {
            status: self.status(),
            tasks: self.task_counts,
            offers_outstanding: self.offers.len() as u64,
            ..Default::default()
        };
        for a in self.agents.values() {
            if a.conn.is_some() {
                s.agents_active += 1;
            } else {
                s.agents_disconnected += 1;
            }
            if a.record.draining {
                s.agents_draining += 1;
            }
        }
        let mut roles: std::collections::BTreeSet<&str> =
            self.roles.keys().map(String::as_str).collect();
        roles.extend(self.frameworks.values().map(|f| f.record.role.as_str()));
        s.roles = roles.len() as u64;
        s
    }

    fn framework_metrics(&self) -> Vec<FrameworkMetrics> {
        let total = self.cluster_total();
        self.frameworks
            .values()
            .map(|f| FrameworkMetrics {
                name: f.record.name.clone(),
                role: f.record.role.clone(),
                callbacks: f.callbacks,
                failures: f.failures,
                fuel: f.fuel_total,
                callback_seconds: f.callback_micros_total as f64 / 1e6,
                tasks_running: f.tasks_running as u64,
                dominant_share: f.allocated.dominant_share(&total),
                healthy: f.healthy,
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
            // Filled by the API from the store (a read the core need not wait on).
            masters: Vec::new(),
        }
    }
}

/// An agent as clients see it: its record with the live figures.
fn agent_view(a: &AgentEntry) -> proto::Agent {
    let mut r = a.record.clone();
    r.used = Some((&(a.allocated.clone() + &a.offered)).into());
    r.last_heartbeat_ms = wasmesos_api::now_ms() - a.last_seen.elapsed().as_millis() as i64;
    r.tasks_running = a.tasks.len() as u32;
    r
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
