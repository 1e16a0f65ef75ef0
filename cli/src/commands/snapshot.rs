//! `wasmesos snapshot save|restore`: the cluster's state in one file.
//!
//! `save` asks the leading master for a consistent snapshot (its store's
//! keys as of one revision and every module's bytes) and writes it to a
//! file. `restore` writes a snapshot into an empty store, with no master
//! running on it: a new `--data-dir` (embedded) or an empty etcd
//! (`--store`); then start a master on it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use wasmesos_api::format_size;
use wasmesos_api::proto::SnapshotRequest;
use wasmesos_store::{EmbeddedStore, EtcdStore, Store};

use crate::client::{MasterArg, connect, failed};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Snapshot,
}

#[derive(clap::Subcommand, Debug)]
pub enum Snapshot {
    /// Save the running cluster's state to FILE.
    Save {
        file: PathBuf,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Restore FILE into an empty store (no master may be running on it).
    Restore {
        file: PathBuf,
        /// The master's data directory to restore into (embedded store);
        /// with --store, where module bytes are cached.
        #[arg(long)]
        data_dir: PathBuf,
        /// An empty etcd to restore into instead: etcd://HOST:PORT[,…].
        #[arg(long)]
        store: Option<String>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Snapshot::Save { file, master } => save(file, master).await,
        Snapshot::Restore {
            file,
            data_dir,
            store,
        } => restore(file, data_dir, store).await,
    }
}

async fn save(file: PathBuf, master: MasterArg) -> anyhow::Result<ExitCode> {
    let mut client = connect(&master).await?;
    let mut stream = client
        .snapshot(SnapshotRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    // Into a temporary file first: an interrupted save leaves no file that
    // looks like a snapshot.
    let tmp = file.with_extension("partial");
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.message().await.map_err(failed)? {
        out.write_all(&chunk.data)?;
        bytes += chunk.data.len() as u64;
    }
    out.sync_all()?;
    std::fs::rename(&tmp, &file)?;
    println!("saved {} to {}", format_size(bytes), file.display());
    Ok(ExitCode::SUCCESS)
}

async fn restore(
    file: PathBuf,
    data_dir: PathBuf,
    store: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut input = std::io::BufReader::new(
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let target: Arc<dyn Store> = match &store {
        None => EmbeddedStore::open(&data_dir.join("state.redb"))
            .context("cannot open the store in --data-dir (is a master running on it?)")?,
        Some(url) if url.starts_with("etcd://") => {
            Arc::new(EtcdStore::connect(&EtcdStore::parse_url(url)?).await?)
        }
        Some(url) => bail!("--store {url:?}: expected etcd://HOST:PORT[,HOST:PORT…]"),
    };
    if target.get("leader").await?.is_some() {
        bail!("a master is running on this store: stop it (and its standbys) before restoring");
    }
    let summary = wasmesos_master::snapshot::restore(&target, &data_dir, &mut input)
        .await
        .with_context(|| format!("cannot restore {}", file.display()))?;
    println!(
        "restored {} keys and {} modules ({}) as of revision {} into {}",
        summary.keys,
        summary.modules,
        format_size(summary.bytes),
        summary.revision,
        store.unwrap_or_else(|| data_dir.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}
