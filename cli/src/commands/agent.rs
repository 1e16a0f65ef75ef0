//! `wasmesos agent`: run an agent that offers this machine to a master.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use wasmesos_agent::{AgentConfig, Isolation, RetentionPolicy};
use wasmesos_api::{DEFAULT_MASTER, Resources};

use super::{
    attributes_arg, default_data_dir, detect_resources, init_logging, interrupted, isolation_arg,
    resources_arg, size_arg,
};
use crate::format::parse_duration;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `drain` or `undrain` an agent instead of running one.
    #[command(subcommand)]
    pub action: Option<super::agent_drain::Action>,
    /// The master(s) to dial, comma-separated; tried in turn.
    #[arg(long, env = "WASMESOS_MASTER", default_value = DEFAULT_MASTER)]
    pub master: String,
    /// The agent's own address (health and state); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5051")]
    pub listen: SocketAddr,
    /// A file holding the cluster's agent token (a master writes one to
    /// <its data dir>/agent.token; `wasmesos token create --kind agent`
    /// issues more).
    #[arg(long, env = "WASMESOS_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// For https:// masters with a private CA: its certificate (PEM).
    #[arg(long, env = "WASMESOS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// What to offer, e.g. cpus:2,mem:4GiB,disk:10GiB,gpus:1 (default: this
    /// machine's cpus, its memory less 1 GiB, 10 GiB of disk).
    #[arg(long, value_parser = resources_arg)]
    pub resources: Option<Resources>,
    /// Attributes schedulers can read, e.g. zone:a,rack:3.
    #[arg(long, value_parser = attributes_arg)]
    pub attributes: Option<Vec<(String, String)>>,
    /// Resources offered only to one role's frameworks, ROLE:RESOURCES,
    /// e.g. db:cpus:2,mem:4GiB (repeatable); part of --resources.
    #[arg(long = "reserve", value_parser = super::role_args::reserve_arg)]
    pub reserve: Vec<(String, Resources)>,
    /// Sandboxes, logs and cached modules (default: ~/.local/share/wasmesos/agent).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Write the bound address here once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// The name the agent reports (default: the hostname).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Threads tasks run on, apart from the agent's own (default: the
    /// agent's cpus).
    #[arg(long)]
    pub task_threads: Option<usize>,
    /// Tasks running at once; more wait for a slot. Sizes the runtime's
    /// pools; the agent refuses to start if this machine's memory-mapping
    /// or open-file limits cannot hold them.
    #[arg(long, default_value = "1000")]
    pub max_tasks: u32,
    /// Tasks with a fuel limit running at once (default: a quarter of
    /// --max-tasks).
    #[arg(long)]
    pub max_metered_tasks: Option<u32>,
    /// Finished tasks whose sandbox and logs are kept; older ones are
    /// removed.
    #[arg(long, default_value = "1000")]
    pub retain_tasks: usize,
    /// How long a finished task's sandbox and logs are kept, e.g. 24h, 30m.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub retain_for: Duration,
    /// Cut off from every master this long, kill this agent's tasks (keep
    /// it below the master's --agent-timeout, after which they are LOST and
    /// may run elsewhere).
    #[arg(long, default_value = "45s", value_parser = parse_duration)]
    pub orphan_timeout: Duration,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// How tasks are isolated (shared with `wasmesos up`).
#[derive(clap::Args, Debug, Clone)]
pub struct IsolationArgs {
    /// in-process: tasks run in the agent's process under the runtime's
    /// limits. cgroups: each task runs in a pre-started executor process
    /// in a cgroup holding it to its cpus and memory (cgroup v2, or v1;
    /// the agent refuses to start if it cannot make cgroups).
    #[arg(long, default_value = "in-process", value_parser = isolation_arg)]
    pub isolation: Isolation,
    /// With --isolation cgroups: executor processes kept ready (default:
    /// one per task thread).
    #[arg(long)]
    pub executors: Option<usize>,
    /// With --isolation cgroups: memory an executor's cgroup allows beyond
    /// the task's own, for the executor process itself.
    #[arg(long, default_value = "64MiB", value_parser = size_arg)]
    pub executor_overhead: u64,
}

impl IsolationArgs {
    /// Puts these settings into `cfg`.
    pub fn apply(&self, cfg: &mut AgentConfig) {
        cfg.isolation = self.isolation;
        cfg.executors = self.executors.unwrap_or(0);
        cfg.executor_mem_overhead = self.executor_overhead;
    }
}

impl Args {
    pub fn config(&self) -> AgentConfig {
        let work_dir = self
            .work_dir
            .clone()
            .unwrap_or_else(|| default_data_dir().join("agent"));
        let resources = self.resources.clone().unwrap_or_else(detect_resources);
        let mut cfg = AgentConfig::new(DEFAULT_MASTER, self.listen, resources, work_dir);
        cfg.masters = self
            .master
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        cfg.addr_file = self.addr_file.clone();
        cfg.task_threads = self.task_threads.unwrap_or(0);
        cfg.max_tasks = self.max_tasks;
        cfg.max_metered_tasks = self.max_metered_tasks.unwrap_or(0);
        cfg.retention = RetentionPolicy {
            keep: self.retain_tasks,
            max_age: self.retain_for,
        };
        cfg.hostname = self.hostname.clone();
        cfg.orphan_timeout = self.orphan_timeout;
        self.isolation.apply(&mut cfg);
        cfg.attributes = self
            .attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (role, resources) in &self.reserve {
            *cfg.reserved.entry(role.clone()).or_default() += resources;
        }
        cfg
    }
}

pub async fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    if let Some(action) = args.action.take() {
        return super::agent_drain::run(action).await;
    }
    init_logging();
    let mut cfg = args.config();
    let Some(token_file) = &args.token_file else {
        anyhow::bail!(
            "an agent needs the cluster's agent token: give --token-file PATH \
             (a master writes one to <its data dir>/agent.token)"
        );
    };
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read the agent token file {}", token_file.display()))?;
    cfg.token = wasmesos_api::Bearer::new(Some(&token))
        .with_context(|| format!("{} holds no token", token_file.display()))?;
    if let Some(ca) = &args.ca_file {
        cfg.ca_pem = Some(
            std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?,
        );
    }
    cfg.allow_plaintext = std::env::var_os("WASMESOS_ALLOW_PLAINTEXT").is_some_and(|v| v == "1");
    // Every master address must be dialable as given (TLS, no plaintext
    // tokens off loopback): say so now, not in a retry loop.
    for m in &cfg.masters {
        wasmesos_api::endpoint(m, cfg.ca_pem.as_deref(), cfg.allow_plaintext)?;
    }
    let work_dir = cfg.work_dir.clone();
    let agent = wasmesos_agent::start(cfg)
        .await
        .context("the agent could not start")?;
    eprintln!(
        "wasmesos agent on {} dialling {} (work dir {}, isolation {})",
        agent.addr,
        args.master,
        work_dir.display(),
        args.isolation.isolation.name()
    );
    interrupted().await;
    agent.shutdown();
    agent.wait().await.context("the agent stopped")?;
    Ok(ExitCode::SUCCESS)
}
