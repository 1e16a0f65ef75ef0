//! How a harness run is set up: the simulated agents, the framework's
//! identity and config, and the master's rules (refuse times, hold and timer
//! caps, delivery attempts), with the master's defaults.

use std::time::Duration;

use wasmesos_api::{FrameworkId, Resources};

use super::cluster::{AgentSpec, default_agent_resources};
use super::error::HarnessError;
use super::script::{Agents, ClusterSpec};

/// The simulated cluster and the master's rules, with the master's
/// defaults (`master/src/config.rs`, `master/src/framework.rs`).
#[derive(Clone, Debug)]
pub struct HarnessConfig {
    pub agents: Vec<AgentSpec>,
    /// Resources of agents added later without their own.
    pub agent_resources: Resources,
    pub framework_id: FrameworkId,
    pub name: String,
    pub role: String,
    /// The framework's config, handed to `registered`.
    pub config: Vec<(String, String)>,
    /// The filter on offers that lapse without a decline.
    pub default_refuse: Duration,
    pub max_hold: Duration,
    pub max_held_offers: usize,
    pub max_timers: usize,
    /// Deliveries of one event before it is abandoned.
    pub max_attempts: u32,
    /// Failures in a row (callbacks or starts) after which the framework
    /// FAILED and the run stops.
    pub max_failures: u32,
    /// Wall-clock ms at simulated time 0, for task timestamps. The
    /// scheduler's own `clock.now-ms` import reads the real clock.
    pub start_ms: u64,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        Self::with_agents(1)
    }
}

impl HarnessConfig {
    /// `n` agents of the default size (cpus:4,mem:8GiB,disk:10GiB).
    pub fn with_agents(n: usize) -> Self {
        let resources = default_agent_resources();
        Self {
            agents: (1..=n)
                .map(|i| AgentSpec::numbered(i, resources.clone()))
                .collect(),
            agent_resources: resources,
            framework_id: FrameworkId::new("fw-test").expect("a valid id"),
            name: "test".to_string(),
            role: "default".to_string(),
            config: Vec::new(),
            default_refuse: Duration::from_secs(5),
            max_hold: Duration::from_secs(60),
            max_held_offers: 100,
            max_timers: 1000,
            max_attempts: 3,
            max_failures: 6,
            start_ms: wasmesos_api::now_ms().max(0) as u64,
        }
    }

    /// The defaults, with what `spec` asks for.
    pub fn from_cluster(spec: &ClusterSpec) -> Result<Self, HarnessError> {
        let mut config = Self::with_agents(0);
        let resources = spec
            .resources
            .clone()
            .unwrap_or_else(default_agent_resources);
        config.agent_resources = resources.clone();
        config.agents = match &spec.agents {
            None => vec![AgentSpec::numbered(1, resources)],
            Some(Agents::Count(n)) => (1..=*n)
                .map(|i| AgentSpec::numbered(i, resources.clone()))
                .collect(),
            Some(Agents::List(entries)) => {
                let mut agents: Vec<AgentSpec> = Vec::new();
                for e in entries {
                    let id = match &e.id {
                        Some(id) => id.clone(),
                        None => (1..)
                            .map(|i| AgentSpec::numbered(i, Resources::empty()).id)
                            .find(|id| agents.iter().all(|a| &a.id != id))
                            .expect("some agent-N is free"),
                    };
                    if agents.iter().any(|a| a.id == id) {
                        return Err(HarnessError::Cluster(format!("agent {id} is listed twice")));
                    }
                    agents.push(AgentSpec {
                        id,
                        resources: e.resources.clone().unwrap_or_else(|| resources.clone()),
                        attributes: e.attributes.clone(),
                    });
                }
                agents
            }
        };
        config.config = spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(name) = &spec.name {
            config.name = name.clone();
        }
        if let Some(role) = &spec.role {
            config.role = role.clone();
        }
        Ok(config)
    }
}
