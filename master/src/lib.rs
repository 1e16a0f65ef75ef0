//! The wasmesos master: it pools agents' resources, offers them fairly to
//! frameworks whose schedulers (Wasm components) it hosts, keeps every
//! change durable in its store, and serves clients.
//!
//! Layout:
//! - [`start`] wires everything and serves gRPC and HTTP on one listener.
//! - `core`: the single owner of live state (agents, frameworks, tasks,
//!   offers), a message loop; allocation, status updates and callbacks.
//! - `framework`: one actor per framework around its scheduler instance.
//! - `api` (client gRPC), `agent_link` (agent streams), `http` (the web
//!   UI, its JSON API, live events and `/metrics`), `auth` (the principal
//!   of every request), `tenancy` (tenants, tokens, rates), `audit_log`
//!   (reading who did what), `task_list` (task pages for both APIs).
//! - `modules` (content-addressed module blobs), `commit` (fenced store
//!   writes), `keys` (the store's key layout), `jobs` (job state from
//!   attempts), `logs` and `watch` (relaying task output to clients).
//!
//! Neighbours: `wasmesos-store` below; `wasmesos-allocator` and
//! `wasmesos-schedhost` inside; agents (`wasmesos-agent`) dial in; the CLI
//! is a client.

mod agent_link;
mod api;
mod audit_log;
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
mod maintenance;
mod modules;
mod resolve;
pub mod snapshot;
mod standby;
mod task_list;
mod tenancy;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch as watch_channel;
use wasmesos_api::proto;
use wasmesos_api::proto::agent_link_server::AgentLinkServer;
use wasmesos_api::proto::master_server::MasterServer;
use wasmesos_schedhost::SchedHost;
use wasmesos_store::{EmbeddedStore, EtcdStore, Op, Store};

pub use crate::config::MasterConfig;
pub use crate::core::ClusterEvent;
/// The check every uploaded module passes before it is stored (also the
/// entry point of the module fuzz target, `fuzzing/`).
pub use crate::modules::{ModuleError, validate as validate_module};
pub use crate::tls::TlsFiles;

use crate::commit::Committer;
use crate::logs::LogRouter;
use crate::modules::ModuleStore;

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
    #[error(
        "this master lost its leadership (its lease could not be renewed); it stops so that the next leader can take over"
    )]
    LostLeadership,
    #[error("scheduler host: {0}")]
    SchedHost(#[from] wasmesos_schedhost::LoadError),
    #[error("module storage: {0}")]
    Modules(std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Credentials(#[from] tenancy::BootstrapError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(
        "refusing to serve plaintext on {0}, which is not a loopback address: bearer tokens would cross the network readable. \
         Give --tls-cert and --tls-key, or listen on 127.0.0.1 (behind a TLS-terminating proxy), or pass --allow-plaintext on a trusted network"
    )]
    Plaintext(SocketAddr),
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

/// Serves `app` on `listener` until `stop` fires, with each connection's
/// peer address for the principal middleware (the leader's server and a
/// standby's alike).
fn serve<L>(
    listener: L,
    app: axum::Router,
    mut stop: watch_channel::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    // TapIo carries the peer address to ConnectInfo for any listener.
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    })
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
    let store: Arc<dyn Store> = match &config.store {
        None => EmbeddedStore::open(&config.data_dir.join("state.redb"))?,
        Some(url) => Arc::new(EtcdStore::connect(&EtcdStore::parse_url(url)?).await?),
    };
    start_with_store(config, store).await
}

/// Starts a master on the given store.
pub async fn start_with_store(
    config: MasterConfig,
    store: Arc<dyn Store>,
) -> Result<RunningMaster, MasterError> {
    if !config.listen.ip().is_loopback() && !config.allow_plaintext && config.tls.is_none() {
        return Err(MasterError::Plaintext(config.listen));
    }
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let mut listener =
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));

    if store.shared() {
        tokio::spawn(standby::announce(
            store.clone(),
            advertise.clone(),
            config.leader_ttl,
        ));
    }
    let mut schedhost = config.schedhost.clone();
    if schedhost.compile_cache_dir.is_none() {
        schedhost.compile_cache_dir = Some(config.data_dir.join("compiled"));
    }
    let host = SchedHost::new(schedhost)?;
    let (fence, lease) = loop {
        if let Some(won) = standby::campaign(&store, &advertise, config.leader_ttl).await? {
            break won;
        }
        let holder = standby::leader(&store).await?.unwrap_or_default();
        if !store.shared() {
            return Err(MasterError::NotLeader(holder));
        }
        // A standby until the leader goes: answer with where it is.
        write_addr_file(&config, addr)?;
        tracing::info!(leader = %holder, %advertise, store = %store.describe(), "standing by");
        let server = standby::StandbyServer::start(listener, tls.clone(), holder)
            .map_err(MasterError::Serve)?;
        let reader = Committer::new(store.clone(), None);
        let modules = ModuleStore::open(&config.data_dir, reader, config.max_module_bytes)
            .map_err(MasterError::Modules)?;
        let prewarm = tokio::spawn(standby::prewarm(store.clone(), modules, host.clone()));
        let vacated = standby::wait_for_vacancy(&store).await;
        prewarm.abort();
        server.stop().await;
        if let Err(e) = vacated {
            tracing::warn!("watching the leader: {e}; campaigning again");
            tokio::time::sleep(config.leader_ttl / 4).await;
        }
        listener = standby::rebind(addr).await?;
    };
    let committer = Committer::new(store.clone(), Some(fence));
    let epoch = next_epoch(&committer).await?;
    let modules = ModuleStore::open(&config.data_dir, committer.clone(), config.max_module_bytes)
        .map_err(MasterError::Modules)?;
    let logs = LogRouter::default();
    let registry = Arc::new(tenancy::load(&committer).await?);
    for (file, kind) in [
        (&config.admin_token_file, proto::TokenKind::Operator),
        (&config.agent_token_file, proto::TokenKind::Agent),
    ] {
        if let Some(path) = file {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            tenancy::ensure_token_file(&path, kind, &registry, &committer).await?;
        }
    }
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
            counters: Default::default(),
            registry: registry.clone(),
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
            registry: registry.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
    )
    .add_service(
        AgentLinkServer::new(agent_link::AgentLinkService::new(
            core.clone(),
            logs.clone(),
            modules,
        ))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
    )
    .into_axum_router();
    let core_for_auth = core.clone();
    let mut http_state = http::HttpState::new(
        core,
        committer.clone(),
        logs,
        registry.clone(),
        shutdown_rx.clone(),
    );
    http_state.tls = tls.is_some();
    let app = grpc
        .merge(http::router(http_state))
        .layer(axum::middleware::from_fn_with_state(
            auth::AuthState {
                registry,
                core: core_for_auth,
            },
            auth::resolve_principal,
        ));

    let server = match tls {
        Some(acceptor) => serve(
            tls::TlsListener::new(listener, acceptor).map_err(MasterError::Serve)?,
            app,
            shutdown_rx.clone(),
        ),
        None => {
            // Small messages (launches, acks, heartbeats) must not wait for
            // Nagle and delayed ACKs: that alone adds ~40 ms to a submit.
            // (The TLS listener does the same for its connections.)
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {e}");
                }
            });
            serve(listener, app, shutdown_rx.clone())
        }
    };
    tokio::spawn(maintenance::run(
        store.clone(),
        maintenance::Schedule::default(),
        shutdown_rx.clone(),
    ));
    let leading = tokio::spawn(standby::keep_leading(
        store,
        lease,
        cfg.leader_ttl,
        shutdown_rx,
    ));
    write_addr_file(&cfg, addr)?;
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

/// Writes the bound address for scripts and tests (then renames, so a
/// reader never sees half an address).
fn write_addr_file(cfg: &MasterConfig, addr: SocketAddr) -> Result<(), MasterError> {
    let Some(path) = &cfg.addr_file else {
        return Ok(());
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| MasterError::AddrFile {
            path: path.display().to_string(),
            source,
        })
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
