//! The wasmesos agent: it offers a machine's resources to a master and runs
//! the tasks the master sends it.
//!
//! The agent dials the master and keeps one bidirectional stream (`link`):
//! registration, heartbeats and status updates go up; launches, kills,
//! acknowledgements and log requests come down. Status updates are kept
//! until the master acknowledges them (`outbox`). Tasks run in the task
//! runtime (`wasmesos-runtime`) under their limits, each in a sandbox
//! directory under the work dir (`tasks`); modules are fetched from the
//! master by digest and cached (`modules`). Logs are read from the task's
//! capped log files and relayed through the master (`logs`). The agent's own
//! listener serves health and a small JSON status (`health`).
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
mod tasks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmesos_runtime::Runtime;

pub use config::AgentConfig;

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

/// Starts an agent: its listener now, its link to the master in the
/// background (it keeps dialling until a master answers).
pub async fn start(mut cfg: AgentConfig) -> Result<RunningAgent, AgentError> {
    if cfg.resources.is_empty() {
        return Err(AgentError::NoResources);
    }
    if cfg.masters.is_empty() {
        return Err(AgentError::NoMaster);
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

    let mut runtime_cfg = cfg.runtime.clone();
    if runtime_cfg.compile_cache_dir.is_none() {
        runtime_cfg.compile_cache_dir = Some(cfg.work_dir.join("compiled"));
    }
    let runtime = Runtime::new(runtime_cfg)?;
    let tasks = tasks::TaskManager::new(runtime, &cfg.work_dir).map_err(work_err)?;
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
