//! The agent's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wasmesos_api::Resources;
use wasmesos_runtime::RuntimeConfig;

use crate::retention::RetentionPolicy;

/// Everything an agent needs to start.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Masters to dial, tried in turn (`http://host:port`).
    pub masters: Vec<String>,
    /// The agent token it attaches with (see `wasmesos master`'s
    /// `agent.token`).
    pub token: wasmesos_api::Bearer,
    /// The CA (PEM) to trust for https:// masters (else the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Send the token in plaintext to a master off loopback.
    pub allow_plaintext: bool,
    /// The agent's own listener (health and metrics).
    pub listen: SocketAddr,
    /// Written with the bound address once listening.
    pub addr_file: Option<PathBuf>,
    /// What the agent offers.
    pub resources: Resources,
    /// Attributes schedulers can read (`zone:a`).
    pub attributes: BTreeMap<String, String>,
    /// Static reservations (`--reserve ROLE:RESOURCES`): per role, part of
    /// `resources` offered only to that role's frameworks. The master
    /// refuses an agent whose reservations exceed its resources.
    pub reserved: BTreeMap<String, Resources>,
    /// Sandboxes, logs, cached modules and the agent's identity live here.
    pub work_dir: PathBuf,
    /// How the agent names itself; defaults to the machine's hostname.
    pub hostname: Option<String>,
    /// The task runtime's settings (its pools are sized from `max_tasks`
    /// and `max_metered_tasks`).
    pub runtime: RuntimeConfig,
    /// Threads tasks run on; 0: the agent's cpus, rounded up.
    pub task_threads: usize,
    /// Tasks running at once; more wait for a slot. Sizes the runtime's
    /// pooling allocator, and must fit the machine's memory-mapping and
    /// open-file limits (checked at start).
    pub max_tasks: u32,
    /// Tasks with a fuel limit running at once (they need a second pool);
    /// 0: a quarter of `max_tasks`.
    pub max_metered_tasks: u32,
    /// When finished tasks' sandboxes and logs are removed.
    pub retention: RetentionPolicy,
    /// Longest wait between attempts to reach a master.
    pub max_reconnect_delay: Duration,
    /// Cut off from every master this long, the agent kills its tasks:
    /// shorter than the master's agent timeout (60 s by default), after
    /// which the master declares them LOST and their frameworks may run
    /// them again elsewhere — never beside the lost ones.
    pub orphan_timeout: Duration,
    /// In-process (the default) or in executor processes under cgroups.
    pub isolation: Isolation,
    /// With cgroup isolation: executors kept ready (and started with the
    /// agent); 0: one per task thread.
    pub executors: usize,
    /// With cgroup isolation: the program to run as `PROGRAM executor`;
    /// `None`: this process's own executable (the `wasmesos` binary).
    pub executor_program: Option<PathBuf>,
    /// With cgroup isolation: memory an executor's cgroup allows beyond
    /// the task's own (the executor process itself: code, runtime, page
    /// cache of its logs and module).
    pub executor_mem_overhead: u64,
}

/// How tasks are kept apart from the agent and from each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In the agent's own process: WebAssembly's sandbox, the runtime's
    /// limits (memory limiter, fuel, epochs, a CPU quota per task).
    #[default]
    InProcess,
    /// In executor processes (pre-started, reused), each in a cgroup with
    /// the task's cpu and memory, on top of the in-process limits.
    Cgroups,
}

impl Isolation {
    /// `in-process` or `cgroups`.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::InProcess => "in-process",
            Isolation::Cgroups => "cgroups",
        }
    }
}

impl AgentConfig {
    /// Defaults for an agent of `master` offering `resources`.
    pub fn new(master: &str, listen: SocketAddr, resources: Resources, work_dir: PathBuf) -> Self {
        Self {
            masters: vec![master.to_string()],
            token: wasmesos_api::Bearer::default(),
            ca_pem: None,
            allow_plaintext: false,
            listen,
            addr_file: None,
            resources,
            attributes: BTreeMap::new(),
            reserved: BTreeMap::new(),
            work_dir,
            hostname: None,
            runtime: RuntimeConfig::default(),
            task_threads: 0,
            max_tasks: 1000,
            max_metered_tasks: 0,
            retention: RetentionPolicy::default(),
            max_reconnect_delay: Duration::from_secs(5),
            orphan_timeout: Duration::from_secs(45),
            isolation: Isolation::InProcess,
            executors: 0,
            executor_program: None,
            executor_mem_overhead: 64 << 20,
        }
    }
}

impl AgentConfig {
    /// Task threads: as set, or one per cpu the agent offers.
    pub fn task_threads(&self) -> usize {
        if self.task_threads > 0 {
            self.task_threads
        } else {
            (self.resources.cpus_milli.div_ceil(1000) as usize).max(1)
        }
    }

    /// Executors kept ready with cgroup isolation: as set, or one per
    /// task thread (never more than `max_tasks`).
    pub fn executors(&self) -> usize {
        let n = if self.executors > 0 {
            self.executors
        } else {
            self.task_threads()
        };
        n.min(self.max_tasks.max(1) as usize)
    }

    /// Tasks with fuel at once: as set, or a quarter of `max_tasks`.
    pub fn max_metered_tasks(&self) -> u32 {
        if self.max_metered_tasks > 0 {
            self.max_metered_tasks.min(self.max_tasks.max(1))
        } else {
            self.max_tasks.div_ceil(4).max(1)
        }
    }

    /// The runtime's settings with its pools sized for `max_tasks`.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let mut rt = self
            .runtime
            .clone()
            .with_max_tasks(self.max_tasks.max(1), self.max_metered_tasks());
        if rt.compile_cache_dir.is_none() {
            // Beside the task directories, never inside a sandbox.
            rt.compile_cache_dir = Some(self.work_dir.join("compiled"));
        }
        rt
    }
}
