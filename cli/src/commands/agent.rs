//! `wasmesos agent`: run an agent that offers this machine to a master.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use wasmesos_agent::{AgentConfig, RetentionPolicy};
use wasmesos_api::{DEFAULT_MASTER, Resources};

use super::{
    attributes_arg, default_data_dir, detect_resources, init_logging, interrupted, resources_arg,
};
use crate::format::parse_duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The master(s) to dial, comma-separated; tried in turn.
    #[arg(long, env = "WASMESOS_MASTER", default_value = DEFAULT_MASTER)]
    pub master: String,
    /// The agent's own address (health and state); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5051")]
    pub listen: SocketAddr,
    /// What to offer, e.g. cpus:2,mem:4GiB,disk:10GiB,gpus:1 (default: this
    /// machine's cpus, its memory less 1 GiB, 10 GiB of disk).
    #[arg(long, value_parser = resources_arg)]
    pub resources: Option<Resources>,
    /// Attributes schedulers can read, e.g. zone:a,rack:3.
    #[arg(long, value_parser = attributes_arg)]
    pub attributes: Option<Vec<(String, String)>>,
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
        cfg.attributes = self
            .attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        cfg
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let cfg = args.config();
    let work_dir = cfg.work_dir.clone();
    let agent = wasmesos_agent::start(cfg)
        .await
        .context("the agent could not start")?;
    eprintln!(
        "wasmesos agent on {} dialling {} (work dir {})",
        agent.addr,
        args.master,
        work_dir.display()
    );
    interrupted().await;
    agent.shutdown();
    agent.wait().await.context("the agent stopped")?;
    Ok(ExitCode::SUCCESS)
}
