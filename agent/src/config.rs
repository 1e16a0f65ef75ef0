//! The agent's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wasmesos_api::Resources;
use wasmesos_runtime::RuntimeConfig;

/// Everything an agent needs to start.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Masters to dial, tried in turn (`http://host:port`).
    pub masters: Vec<String>,
    /// The agent's own listener (health and metrics).
    pub listen: SocketAddr,
    /// Written with the bound address once listening.
    pub addr_file: Option<PathBuf>,
    /// What the agent offers.
    pub resources: Resources,
    /// Attributes schedulers can read (`zone:a`).
    pub attributes: BTreeMap<String, String>,
    /// Sandboxes, logs, cached modules and the agent's identity live here.
    pub work_dir: PathBuf,
    /// How the agent names itself; defaults to the machine's hostname.
    pub hostname: Option<String>,
    /// The task runtime's settings.
    pub runtime: RuntimeConfig,
    /// Longest wait between attempts to reach a master.
    pub max_reconnect_delay: Duration,
}

impl AgentConfig {
    /// Defaults for an agent of `master` offering `resources`.
    pub fn new(master: &str, listen: SocketAddr, resources: Resources, work_dir: PathBuf) -> Self {
        Self {
            masters: vec![master.to_string()],
            listen,
            addr_file: None,
            resources,
            attributes: BTreeMap::new(),
            work_dir,
            hostname: None,
            runtime: RuntimeConfig::default(),
            max_reconnect_delay: Duration::from_secs(5),
        }
    }
}
