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
//! Tasks run in the agent's process by default. With `--isolation cgroups`
//! ([`Isolation::Cgroups`]) they run in executor processes (the same binary
//! as `wasmesos executor`) from a pool started with the agent, each in a
//! cgroup holding it to the task's cpus and memory; the agent refuses to
//! start, saying what it tried, when it cannot make cgroups, and removes
//! them when it stops.
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
use wasmesos_runtime::cgroups::CgroupTree;
use wasmesos_runtime::executor::{ExecutorPool, PoolConfig, Settings};
use wasmesos_runtime::{Runtime, TaskPool};

pub use config::{AgentConfig, Isolation};
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
    /// `--isolation cgroups` cannot work here.
    #[error("cannot run tasks with --isolation cgroups: {0}")]
    Isolation(String),
}

/// A running agent.
pub struct RunningAgent {
    /// The agent's own listener.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    link: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: tasks::TaskManager,
}

impl RunningAgent {
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Runs until shut down; then stops the executors (if any) and removes
    /// their cgroups.
    pub async fn wait(self) -> std::io::Result<()> {
        let _ = self.link.await;
        let served = self.server.await.map_err(std::io::Error::other);
        self.tasks.shutdown().await;
        served?
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

/// With `--isolation cgroups`: the agent's cgroups and the pool of
/// executors in them, started on the task pool (where tasks use them).
async fn task_isolation(
    cfg: &AgentConfig,
    runtime: &Runtime,
    pool: &TaskPool,
) -> Result<tasks::Isolation, AgentError> {
    if cfg.isolation == Isolation::InProcess {
        return Ok(tasks::Isolation::InProcess);
    }
    let tree = CgroupTree::create(&std::process::id().to_string())
        .map_err(|e| AgentError::Isolation(e.to_string()))?;
    let program = match &cfg.executor_program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            AgentError::Isolation(format!(
                "cannot find the agent's own executable to run as executor: {e}"
            ))
        })?,
    };
    let layout = tree.layout().describe();
    let config = PoolConfig::new(
        program,
        vec!["executor".into()],
        Settings::of(runtime.config()),
        cfg.executors(),
    );
    let executors = pool
        .spawn(ExecutorPool::start(config, Some(tree)))
        .await
        .map_err(|e| AgentError::Isolation(e.to_string()))?
        .map_err(|e| AgentError::Isolation(e.to_string()))?;
    tracing::info!(
        executors = executors.idle(),
        mem_overhead = %wasmesos_api::format_size(cfg.executor_mem_overhead),
        "tasks run in executor processes under cgroups: {layout}"
    );
    Ok(tasks::Isolation::Executors {
        pool: executors,
        mem_overhead: cfg.executor_mem_overhead,
    })
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
    let isolation = task_isolation(&cfg, &runtime, &pool).await?;
    let tasks = tasks::TaskManager::new(runtime, pool, &cfg.work_dir, task_limits(&cfg), isolation)
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
    tokio::spawn(link::watch_for_orphaning(
        cfg.orphan_timeout,
        tasks.clone(),
        status.clone(),
        shutdown_rx.clone(),
    ));
    let link = tokio::spawn(link::run(
        Arc::new(cfg),
        tasks.clone(),
        identity,
        status,
        shutdown_rx,
    ));
    Ok(RunningAgent {
        addr,
        shutdown,
        link,
        server,
        tasks,
    })
}
