//! `wasmesos master`: run a master.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use wasmesos_master::MasterConfig;

use super::{default_data_dir, init_logging, interrupted};
use crate::format::parse_duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address for gRPC and HTTP (one listener); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub listen: SocketAddr,
    /// The address agents and clients should use (default: http://LISTEN).
    #[arg(long)]
    pub advertise: Option<String>,
    /// State directory (default: ~/.local/share/wasmesos/master).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write the bound address here once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// An agent out of contact this long is lost, with its tasks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub agent_timeout: std::time::Duration,
    /// Largest module accepted.
    #[arg(long, default_value = "256MiB", value_parser = wasmesos_api::parse_size)]
    pub max_module_size: u64,
    /// The state store: `etcd://HOST:PORT[,HOST:PORT…]` to share it with
    /// other masters (one leads, the rest stand by and take over when it
    /// goes); without it, an embedded store in --data-dir.
    #[arg(long)]
    pub store: Option<String>,
    /// With an etcd store: how long a dead leader's lease lasts, and so the
    /// longest a failover waits.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_ttl: std::time::Duration,
    #[command(flatten)]
    pub tokens: TokenFiles,
    /// Serve plaintext on a non-loopback --listen address (tokens cross
    /// the network readable): only behind a TLS-terminating proxy or on a
    /// trusted network.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Serve over TLS with this certificate chain (PEM); needs --tls-key.
    /// Clients then use https:// (and --ca-file for a private CA).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where a master keeps its bootstrap tokens (`master` and `up`).
#[derive(clap::Args, Debug, Clone)]
pub struct TokenFiles {
    /// An operator token is kept valid in this file, generated (mode 0600)
    /// if missing (default: <master data dir>/admin.token). Give masters
    /// of one HA cluster the same file.
    #[arg(long, env = "WASMESOS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The same for the token agents attach with (default: <master data
    /// dir>/agent.token).
    #[arg(long, env = "WASMESOS_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,
}

impl TokenFiles {
    pub fn apply(&self, cfg: &mut MasterConfig) {
        if let Some(f) = &self.admin_token_file {
            cfg.admin_token_file = Some(f.clone());
        }
        if let Some(f) = &self.agent_token_file {
            cfg.agent_token_file = Some(f.clone());
        }
    }
}

impl Args {
    pub fn config(&self, data_dir: PathBuf) -> MasterConfig {
        let mut cfg = MasterConfig::new(self.listen, data_dir);
        cfg.advertise = self.advertise.clone();
        cfg.addr_file = self.addr_file.clone();
        cfg.agent_timeout = self.agent_timeout;
        cfg.max_module_bytes = self.max_module_size;
        cfg.store = self.store.clone();
        cfg.leader_ttl = self.leader_ttl;
        self.tokens.apply(&mut cfg);
        cfg.allow_plaintext = self.allow_plaintext;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            cfg.tls = Some(wasmesos_master::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        cfg
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| default_data_dir().join("master"));
    if args.leader_ttl < std::time::Duration::from_secs(2) {
        anyhow::bail!(
            "--leader-ttl {:?} is too short: etcd leases last at least a few seconds; use 2s or more",
            args.leader_ttl
        );
    }
    if let Some(store) = &args.store
        && !store.starts_with("etcd://")
    {
        anyhow::bail!("--store {store:?}: expected etcd://HOST:PORT[,HOST:PORT…]");
    }
    if let Some(url) = &args.store {
        // Fail fast on a wrong address; later outages are waited out below.
        let endpoints = wasmesos_store::EtcdStore::parse_url(url)?;
        wasmesos_store::EtcdStore::connect(&endpoints)
            .await
            .context("the master could not start")?;
    }
    let state = match &args.store {
        Some(store) => format!("store {store}, cache in {}", data_dir.display()),
        None => format!("state in {}", data_dir.display()),
    };
    loop {
        // A standby waits inside `start` until it leads; Ctrl-C must still work.
        let started = tokio::select! {
            m = wasmesos_master::start(args.config(data_dir.clone())) => m,
            _ = interrupted() => return Ok(ExitCode::SUCCESS),
        };
        let master = match started {
            Ok(m) => m,
            Err(e) if args.store.is_some() => {
                // etcd unreachable (or the standby's watch broke): try again.
                eprintln!("wasmesos master: {e}; trying again");
                if pause_or_interrupt().await {
                    return Ok(ExitCode::SUCCESS);
                }
                continue;
            }
            Err(e) => return Err(e).context("the master could not start"),
        };
        eprintln!("wasmesos master leading on {} ({state})", master.advertise);
        let interrupted_flag = Arc::new(AtomicBool::new(false));
        let stopper = tokio::spawn({
            let shutdown = master_shutdown(&master);
            let flag = interrupted_flag.clone();
            async move {
                interrupted().await;
                flag.store(true, Ordering::SeqCst);
                shutdown();
            }
        });
        let result = master.wait().await;
        stopper.abort();
        if interrupted_flag.load(Ordering::SeqCst) {
            result.context("the master stopped")?;
            return Ok(ExitCode::SUCCESS);
        }
        match result {
            Ok(()) => return Ok(ExitCode::SUCCESS),
            // With a shared store another master takes over; this one
            // stands by to lead again rather than exit.
            Err(e) if args.store.is_some() => {
                eprintln!("wasmesos master stopped leading: {e}; standing by");
                if pause_or_interrupt().await {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e) => return Err(e).context("the master stopped"),
        }
    }
}

/// Waits a second before trying again; true if interrupted meanwhile.
async fn pause_or_interrupt() -> bool {
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
        _ = interrupted() => true,
    }
}

/// A function that asks `master` to stop.
pub fn master_shutdown(master: &wasmesos_master::RunningMaster) -> impl FnOnce() + Send + 'static {
    let handle = master.shutdown_handle();
    move || handle.shutdown()
}
