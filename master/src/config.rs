//! The master's settings, with defaults and the reasons for them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wasmesos_schedhost::SchedHostConfig;

/// Everything a master needs to start.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Where gRPC and HTTP listen (one listener for both).
    pub listen: SocketAddr,
    /// The address others should use; defaults to `http://<bound address>`.
    pub advertise: Option<String>,
    /// Written with the bound address once listening (for tests and scripts).
    pub addr_file: Option<PathBuf>,
    /// State (`state.redb`) and module blobs live here; with an etcd
    /// store, only the module cache and compiled schedulers.
    pub data_dir: PathBuf,
    /// `etcd://host:port[,host:port…]` for a store shared by several
    /// masters (one leads, the others stand by); `None`: the embedded store
    /// in `data_dir`.
    pub store: Option<String>,
    /// How long the leader key outlives a leader that stopped renewing it:
    /// the longest a failover waits for a dead leader.
    pub leader_ttl: Duration,
    /// How often a full allocation round runs (events allocate at once; the
    /// periodic round restores fairness and expires filters).
    pub allocation_interval: Duration,
    /// Filter applied to offers a scheduler let lapse without declining
    /// (Mesos' default refuse_seconds).
    pub default_refuse: Duration,
    /// Longest a scheduler may hold an offer, and how many it may hold.
    pub max_hold: Duration,
    pub max_held_offers: usize,
    /// Agents heartbeat this often.
    pub heartbeat_interval: Duration,
    /// An agent silent (or disconnected) this long is gone: its tasks are LOST.
    pub agent_timeout: Duration,
    /// Limits of scheduler callbacks.
    pub schedhost: SchedHostConfig,
    /// Largest module accepted by PutModule.
    pub max_module_bytes: u64,
    /// Deploy the built-in jobs framework at start.
    pub builtin_jobs: bool,
    /// An operator token is kept valid here (generated on first start, mode
    /// 0600): how a fresh cluster's first user gets in. `None`: none.
    pub admin_token_file: Option<PathBuf>,
    /// The same for a token agents attach with (the cluster's join token).
    pub agent_token_file: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address (bearer tokens would cross
    /// the network readable): only behind a TLS-terminating proxy or on a
    /// trusted network.
    pub allow_plaintext: bool,
    /// Serve over TLS with this certificate chain and key (PEM).
    pub tls: Option<crate::tls::TlsFiles>,
}

impl MasterConfig {
    /// Defaults for a master listening on `listen` with state in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            advertise: None,
            addr_file: None,
            store: None,
            leader_ttl: Duration::from_secs(10),
            allocation_interval: Duration::from_secs(1),
            default_refuse: Duration::from_secs(5),
            max_hold: Duration::from_secs(60),
            max_held_offers: 100,
            heartbeat_interval: Duration::from_secs(2),
            agent_timeout: Duration::from_secs(60),
            schedhost: SchedHostConfig::default(),
            max_module_bytes: 256 << 20,
            builtin_jobs: true,
            admin_token_file: Some(data_dir.join("admin.token")),
            agent_token_file: Some(data_dir.join("agent.token")),
            allow_plaintext: false,
            tls: None,
            data_dir,
        }
    }
}
