//! The wasmesos master: it pools agents' resources, offers them fairly to
//! frameworks whose schedulers (Wasm components) it hosts, keeps every
//! change durable in its store, and serves clients.
//!
//! Layout:
//! - [`start`] wires everything and serves gRPC and HTTP on one listener.
//! - `core`: the single owner of live state (agents, frameworks, tasks,
//!   offers), a message loop; allocation, status updates and callbacks.
//! - `framework`: one actor per framework around its scheduler instance.
//! - `api` (client gRPC), `agent_link` (agent streams), `http` (health and
//!   JSON), `auth` (the principal of every request).
//! - `modules` (content-addressed module blobs), `commit` (fenced store
//!   writes), `keys` (the store's key layout), `jobs` (job state from
//!   attempts), `logs` and `watch` (relaying task output to clients).
//!
//! Neighbours: `wasmesos-store` below; `wasmesos-allocator` and
//! `wasmesos-schedhost` inside; agents (`wasmesos-agent`) dial in; the CLI
//! is a client.

mod agent_link;
mod api;
mod auth;
mod commit;
mod config;
mod core;
mod framework;
mod frameworks;
mod http;
mod jobs;
mod keys;
mod logs;
mod modules;
mod resolve;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch as watch_channel;
use wasmesos_api::proto::agent_link_server::AgentLinkServer;
use wasmesos_api::proto::master_server::MasterServer;
use wasmesos_schedhost::SchedHost;
use wasmesos_store::{CmpOp, Compare, EmbeddedStore, LeaseId, Op, Store, Txn};

pub use crate::config::MasterConfig;
pub use crate::core::ClusterEvent;

use crate::commit::Committer;
use crate::logs::LogRouter;
use crate::modules::ModuleStore;

/// How long the leader key outlives a master that stopped renewing it.
const LEADER_TTL: Duration = Duration::from_secs(10);
/// Largest gRPC message either way (module chunks are far smaller).
const MAX_MESSAGE: usize = 16 << 20;

/// Why a master could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}{hint}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("store: {0}")]
    Store(#[from] wasmesos_store::StoreError),
    #[error(transparent)]
    Commit(#[from] commit::CommitError),
    #[error("another master leads this store ({0}); is one already running with this data dir?")]
    NotLeader(String),
    #[error("scheduler host: {0}")]
    SchedHost(#[from] wasmesos_schedhost::LoadError),
    #[error("module storage: {0}")]
    Modules(std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("cannot write the address file {path}: {source}")]
    AddrFile {
        path: String,
        source: std::io::Error,
    },
}

/// A running master.
pub struct RunningMaster {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address others should use (`http://...`).
    pub advertise: String,
    shutdown: Arc<watch_channel::Sender<bool>>,
    core: tokio::task::JoinHandle<Result<(), commit::CommitError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    leading: tokio::task::JoinHandle<Result<(), MasterError>>,
}

/// Stops a master from elsewhere (a signal handler). Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<watch_channel::Sender<bool>>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl RunningMaster {
    /// Asks the master to stop.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A handle that stops this master.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Runs until shut down, or until the master must stop (it lost its
    /// leadership, or its listener failed).
    pub async fn wait(mut self) -> Result<(), MasterError> {
        let result = tokio::select! {
            core = &mut self.core => match core {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(MasterError::Commit(e)),
                Err(e) => Err(MasterError::Serve(std::io::Error::other(e.to_string()))),
            },
            server = &mut self.server => match server {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(MasterError::Serve(e)),
                Err(e) => Err(MasterError::Serve(std::io::Error::other(e.to_string()))),
            },
            leading = &mut self.leading => match leading {
                Ok(result) => result,
                Err(e) => Err(MasterError::Serve(std::io::Error::other(e.to_string()))),
            },
        };
        let _ = self.shutdown.send(true);
        result
    }
}

/// Starts a master with the embedded store under `config.data_dir`.
pub async fn start(mut config: MasterConfig) -> Result<RunningMaster, MasterError> {
    let dir_err = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| MasterError::DataDir { path, source }
    };
    // Absolute from here on: a relative path would change meaning with the
    // working directory of whatever later reads it (the compile cache).
    config.data_dir = std::path::absolute(&config.data_dir).map_err(dir_err(&config.data_dir))?;
    std::fs::create_dir_all(&config.data_dir).map_err(dir_err(&config.data_dir))?;
    let store: Arc<dyn Store> = EmbeddedStore::open(&config.data_dir.join("state.redb"))?;
    start_with_store(config, store).await
}

/// Starts a master on the given store.
pub async fn start_with_store(
    config: MasterConfig,
    store: Arc<dyn Store>,
) -> Result<RunningMaster, MasterError> {
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| MasterError::Listen {
                addr: config.listen,
                hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                    " (the port is in use: is another master running? pick another with --listen)"
                } else {
                    ""
                },
                source,
            })?;
    let addr = listener.local_addr().map_err(MasterError::Serve)?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));

    let (fence, lease) = lead(&store, &advertise).await?;
    let committer = Committer::new(store.clone(), Some(fence));
    let epoch = next_epoch(&committer).await?;
    let modules = ModuleStore::open(&config.data_dir, committer.clone(), config.max_module_bytes)
        .map_err(MasterError::Modules)?;
    let mut schedhost = config.schedhost.clone();
    if schedhost.compile_cache_dir.is_none() {
        schedhost.compile_cache_dir = Some(config.data_dir.join("compiled"));
    }
    let host = SchedHost::new(schedhost)?;
    let logs = LogRouter::default();
    let (shutdown, shutdown_rx) = watch_channel::channel(false);

    let cfg = Arc::new(config);
    let (core, core_join) = core::start(
        core::CoreParts {
            cfg: cfg.clone(),
            committer: committer.clone(),
            modules: modules.clone(),
            host: host.clone(),
            epoch,
            advertise: advertise.clone(),
        },
        shutdown_rx.clone(),
    )
    .await?;

    let grpc = tonic::service::Routes::new(
        MasterServer::new(api::MasterService {
            core: core.clone(),
            committer: committer.clone(),
            modules: modules.clone(),
            logs: logs.clone(),
            host: host.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
    )
    .add_service(
        AgentLinkServer::new(agent_link::AgentLinkService::new(
            core.clone(),
            logs,
            modules,
        ))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
    )
    .into_axum_router();
    let app = grpc
        .merge(http::router(core))
        .layer(axum::middleware::from_fn(auth::resolve_principal));

    // Small messages (launches, acks, heartbeats) must not wait for Nagle
    // and delayed ACKs: that alone adds ~40 ms to a submit.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    let mut stop = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    });
    let leading = tokio::spawn(keep_leading(store, lease, shutdown_rx));

    if let Some(path) = &cfg.addr_file {
        // Write then rename, so a reader never sees half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|source| MasterError::AddrFile {
                path: path.display().to_string(),
                source,
            })?;
    }
    tracing::info!(%addr, %advertise, epoch, "master listening");
    Ok(RunningMaster {
        addr,
        advertise,
        shutdown: Arc::new(shutdown),
        core: core_join,
        server,
        leading,
    })
}

/// Takes the leader key on a lease; its create revision fences every write.
/// Returns the fence and the lease to keep alive.
async fn lead(
    store: &Arc<dyn Store>,
    advertise: &str,
) -> Result<((String, i64), LeaseId), MasterError> {
    let lease = store.grant_lease(LEADER_TTL).await?;
    let response = store
        .txn(Txn {
            compares: vec![Compare::CreateRevision(
                keys::LEADER.to_string(),
                CmpOp::Equal,
                0,
            )],
            success: vec![Op::Put {
                key: keys::LEADER.to_string(),
                value: advertise.as_bytes().to_vec(),
                lease: Some(lease),
            }],
            failure: Vec::new(),
        })
        .await?;
    let current = store.get(keys::LEADER).await?;
    if !response.succeeded {
        let holder = current
            .map(|kv| String::from_utf8_lossy(&kv.value).to_string())
            .unwrap_or_default();
        return Err(MasterError::NotLeader(holder));
    }
    let create_revision = current.map(|kv| kv.create_revision).unwrap_or(0);
    Ok(((keys::LEADER.to_string(), create_revision), lease))
}

/// Renews the leader lease until shutdown. Returns an error when renewal
/// fails: the master must stop acting before its lease can expire.
async fn keep_leading(
    store: Arc<dyn Store>,
    lease: LeaseId,
    mut shutdown: watch_channel::Receiver<bool>,
) -> Result<(), MasterError> {
    let mut tick = tokio::time::interval(LEADER_TTL / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.keep_alive(lease).await {
                    tracing::error!("cannot renew the leader lease: {e}; stepping down");
                    return Err(MasterError::Store(e));
                }
            }
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = store.revoke_lease(lease).await;
                return Ok(());
            }
        }
    }
}

/// Bumps the leader epoch. Every message to agents carries it, and agents
/// refuse messages from older epochs.
async fn next_epoch(committer: &Committer) -> Result<u64, MasterError> {
    let current = committer
        .store()
        .get(keys::EPOCH)
        .await?
        .and_then(|kv| String::from_utf8_lossy(&kv.value).parse::<u64>().ok())
        .unwrap_or(0);
    let epoch = current + 1;
    committer
        .commit(vec![Op::Put {
            key: keys::EPOCH.to_string(),
            value: epoch.to_string().into_bytes(),
            lease: None,
        }])
        .await?;
    Ok(epoch)
}
