//! The wasmesos agent: it offers a machine's resources to a master and runs
//! the tasks the master sends it.
//!
//! The agent dials the master and keeps one bidirectional stream (`link`):
//! registration, heartbeats and status updates go up; launches, kills,
//! acknowledgements and log requests come down. Status updates are kept
//! until the master acknowledges them (`outbox`). Tasks run in the task
//! runtime (`wasmesos-runtime`) under their limits, each in a sandbox
//! directory under the work dir (`tasks`); modules are fetched from the
//! master by digest and cached (`modules`). Tasks run on a task pool of
//! their own, apart from the agent's networking, so the stream keeps
//! flowing while they saturate their cores. A task's `result` file is read
//! when it ends (`result`), and finished tasks' directories are removed
//! after a retention count and age (`retention`). Logs are read from the
//! task's capped log files and relayed through the master (`logs`). The
//! agent's own listener serves health and a small JSON status (`health`).
//!
//! At start the agent checks that this machine can hold `max_tasks` tasks
//! (memory mappings, open files) and that its compiled-module cache is
//! private to its user, and refuses to start otherwise.
//!
//! Neighbours: the master (`wasmesos-master`) at the other end of the
//! stream; the runtime below.

mod config;
mod health;
mod identity;
mod link;
mod logs;
mod modules;
mod outbox;
mod result;
mod retention;
mod tasks;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmesos_runtime::capacity::{self, HostLimits};
use wasmesos_runtime::{Runtime, TaskPool};

pub use config::AgentConfig;
pub use retention::RetentionPolicy;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent offers no resources: give --resources, e.g. cpus:2,mem:4GiB,disk:10GiB")]
    NoResources,
    #[error("no master to dial: give --master")]
    NoMaster,
    #[error("cannot use the work dir {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}{hint}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("task runtime: {0}")]
    Runtime(#[from] wasmesos_runtime::RuntimeError),
    #[error("--max-tasks must be at least 1")]
    NoTasks,
    #[error("{0}")]
    Identity(std::io::Error),
}

/// A running agent.
pub struct RunningAgent {
    /// The agent's own listener.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    link: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningAgent {
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Runs until shut down.
    pub async fn wait(self) -> std::io::Result<()> {
        let _ = self.link.await;
        self.server.await.map_err(std::io::Error::other)?
    }
}

/// The task runtime and pool for `cfg`, after checking that this machine
/// can hold the tasks it allows.
fn task_runtime(cfg: &AgentConfig) -> Result<(Runtime, Arc<TaskPool>), AgentError> {
    if cfg.max_tasks == 0 {
        return Err(AgentError::NoTasks);
    }
    let runtime_cfg = cfg.runtime_config();
    let limits = HostLimits::of_this_process();
    for warning in capacity::check(&runtime_cfg, u64::from(cfg.max_tasks), &limits)? {
        tracing::warn!("{warning}");
    }
    let runtime = Runtime::new(runtime_cfg)?;
    let pool = Arc::new(TaskPool::new(cfg.task_threads())?);
    let rt = runtime.config();
    tracing::info!(
        max_tasks = cfg.max_tasks,
        max_metered_tasks = cfg.max_metered_tasks(),
        task_threads = pool.threads(),
        max_task_memory = %wasmesos_api::format_size(rt.max_memory_bytes),
        max_map_count = ?limits.max_map_count,
        open_files = ?limits.open_files,
        "task runtime ready"
    );
    Ok((runtime, pool))
}

fn task_limits(cfg: &AgentConfig) -> tasks::TaskLimits {
    tasks::TaskLimits {
        max_tasks: cfg.max_tasks,
        max_metered_tasks: cfg.max_metered_tasks(),
        retention: cfg.retention,
    }
}

/// Starts an agent: its listener now, its link to the master in the
/// background (it keeps dialling until a master answers).
pub async fn start(mut cfg: AgentConfig) -> Result<RunningAgent, AgentError> {
    if cfg.resources.is_empty() {
        return Err(AgentError::NoResources);
    }
    if cfg.masters.is_empty() {
        return Err(AgentError::NoMaster);
    }
    // Absolute, like the master's: the compile cache and task sandboxes are
    // found through it later, whatever the working directory then.
    if let Ok(dir) = std::path::absolute(&cfg.work_dir) {
        cfg.work_dir = dir;
    }
    let work_err = |source| AgentError::WorkDir {
        path: cfg.work_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&cfg.work_dir).map_err(work_err)?;
    let identity = identity::IdentityFile::new(&cfg.work_dir);
    identity.load().map_err(AgentError::Identity)?;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                " (the port is in use: pick another with --listen)"
            } else {
                ""
            },
            source,
        })?;
    let addr = listener.local_addr().map_err(work_err)?;
    cfg.listen = addr;
    if let Some(path) = &cfg.addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(work_err)?;
    }

    let (runtime, pool) = task_runtime(&cfg)?;
    let tasks = tasks::TaskManager::new(runtime, pool, &cfg.work_dir, task_limits(&cfg))
        .map_err(work_err)?;
    let status = Arc::new(Mutex::new(link::LinkStatus::default()));
    let (shutdown, shutdown_rx) = watch::channel(false);

    let app = health::router(health::HealthState {
        link: status.clone(),
        tasks: tasks.clone(),
        resources: cfg.resources.to_string(),
    });
    let mut stop = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, resources = %cfg.resources, masters = ?cfg.masters, "agent started");
    let link = tokio::spawn(link::run(
        Arc::new(cfg),
        tasks,
        identity,
        status,
        shutdown_rx,
    ));
    Ok(RunningAgent {
        addr,
        shutdown,
        link,
        server,
    })
}
