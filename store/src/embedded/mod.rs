//! The embedded backend: one redb file (by convention
//! `<data-dir>/state.redb`) for a master without etcd.
//!
//! Tables:
//! - `kv`: key → the key's record (bookkeeping and value, see `codec`);
//! - `history`: revision → the events of that revision (the watch log;
//!   compaction deletes rows before the compaction point);
//! - `meta`: `revision`, `compacted` and the file's `format`;
//! - `lease_keys`: lease → the keys attached to it, so that revocation,
//!   expiry and the next open find them.
//!
//! Writes go through one writer thread (`writer`: group commit); reads use
//! redb read transactions and never wait for it. Watches are in `watch`,
//! leases in `lease`.

mod codec;
mod lease;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use tokio::sync::{broadcast, oneshot};

use self::lease::Leases;
use self::watch::Committed;
use self::writer::{Batch, ReplyTo, Request, Work};
use crate::{KeyValue, LeaseId, Page, Revision, Store, StoreError, Txn, TxnResponse, WatchStream};

/// The state file's conventional name inside a data dir.
pub const STATE_FILE_NAME: &str = "state.redb";

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const LEASE_KEYS: MultimapTableDefinition<i64, &str> = MultimapTableDefinition::new("lease_keys");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_FORMAT: &str = "format";
/// The layout of the tables above; bump on an incompatible change.
const FORMAT: i64 = 1;

/// Tuning of an [`EmbeddedStore`]; the defaults suit a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Commits kept in memory for live watchers; a watcher further behind
    /// re-reads the log instead (it loses nothing, it only waits longer).
    pub watch_buffer: usize,
    /// The most requests applied in one durable commit.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            watch_buffer: 1024,
            max_batch: 4096,
        }
    }
}

/// What the writer thread and the watchers share with the store.
struct Shared {
    db: Database,
    path: PathBuf,
    /// The latest committed revision.
    revision: AtomicI64,
    leases: Leases,
    events: broadcast::Sender<Arc<Committed>>,
    commits: AtomicU64,
    txns: AtomicU64,
}

/// Counters of the embedded store's writer, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Durable redb commits (one per batch that changed something).
    pub commits: u64,
    /// Transactions applied (committed, successful or not).
    pub txns: u64,
}

/// The [`Store`] on one redb file, for a single master. See the crate docs.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.shared.path)
            .field("revision", &self.current_revision())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it and its directory if needed) the state file at
    /// `path`. Keys attached to leases of an earlier process are deleted:
    /// those leases cannot be alive any more. Fails with
    /// [`StoreError::InUse`] if another process (or another store in this
    /// one) has the file open.
    pub fn open(path: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// [`EmbeddedStore::open`] with non-default tuning.
    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<Arc<Self>, StoreError> {
        if options.watch_buffer == 0 || options.max_batch == 0 {
            return Err(StoreError::InvalidArgument(
                "watch_buffer and max_batch must be at least 1".into(),
            ));
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|err| {
                StoreError::Unavailable(format!(
                    "cannot create directory {}: {err}",
                    parent.display()
                ))
            })?;
        }
        let db = Database::builder()
            .create(path)
            .map_err(|err| open_error(path, err))?;
        let (revision, compacted) = prepare(&db)?;
        let (events, _) = broadcast::channel(options.watch_buffer);
        let shared = Arc::new(Shared {
            db,
            path: path.to_path_buf(),
            revision: AtomicI64::new(revision),
            leases: Leases::new(),
            events,
            commits: AtomicU64::new(0),
            txns: AtomicU64::new(0),
        });
        let (requests, receiver) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(writer_shared, receiver, compacted, options.max_batch))?;
        tracing::info!(path = %path.display(), revision, compacted, "opened embedded store");
        Ok(Arc::new(EmbeddedStore {
            shared,
            requests: Some(requests),
            writer: Some(writer),
        }))
    }

    /// Opens `<data_dir>/state.redb`.
    pub fn open_in(data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open(&data_dir.join(STATE_FILE_NAME))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Commit counters since open.
    pub fn stats(&self) -> EmbeddedStats {
        EmbeddedStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            txns: self.shared.txns.load(Ordering::Relaxed),
        }
    }

    async fn submit(&self, work: Work, reply: ReplyTo) -> Result<(), StoreError> {
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        requests
            .send(Request::Work(work, reply))
            .map_err(|_| StoreError::Closed)
    }

    async fn submit_unit(&self, work: Work) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(work, ReplyTo::Unit(tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer once it has answered every
        // queued request; waiting for it releases the file before we return.
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the store's writer thread panicked");
        }
    }
}

/// Checks the file's format, creates the tables, deletes keys of leases of
/// an earlier process; returns the current and the compacted revision.
fn prepare(db: &Database) -> Result<(Revision, Revision), StoreError> {
    let wtx = db.begin_write().map_err(redb_err)?;
    let applied = {
        let mut meta = wtx.open_table(META).map_err(redb_err)?;
        let get = |meta: &redb::Table<&str, i64>, name| -> Result<Revision, StoreError> {
            Ok(meta
                .get(name)
                .map_err(redb_err)?
                .map_or(0, |guard| guard.value()))
        };
        match get(&meta, META_FORMAT)? {
            0 => {
                meta.insert(META_FORMAT, FORMAT).map_err(redb_err)?;
            }
            FORMAT => {}
            other => {
                return Err(StoreError::Corrupt(format!(
                    "the state file has format {other}, this build reads format {FORMAT}: \
                     run the wasmesos version that wrote it"
                )));
            }
        }
        let (revision, compacted) = (get(&meta, META_REVISION)?, get(&meta, META_COMPACTED)?);
        drop(meta);
        let mut batch = Batch::open(&wtx, revision, compacted)?;
        let stale = batch.attached_leases()?;
        for lease in &stale {
            batch.revoke(*lease)?;
        }
        if !stale.is_empty() {
            tracing::info!(
                leases = stale.len(),
                "deleted keys of leases of an earlier process"
            );
        }
        batch.finish()?
    };
    wtx.commit().map_err(redb_err)?;
    Ok((applied.revision, applied.compacted))
}

fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::InUse {
                path: path.to_path_buf(),
            }
        }
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt(format!("state file {}: {detail}", path.display()))
        }
        other => StoreError::Unavailable(format!(
            "cannot open state file {}: {other}",
            path.display()
        )),
    }
}

/// Turns any redb error into a [`StoreError`].
fn redb_err(err: impl Into<redb::Error>) -> StoreError {
    match err.into() {
        redb::Error::Io(err) => StoreError::from(err),
        redb::Error::Corrupted(detail) => StoreError::Corrupt(detail),
        redb::Error::DatabaseClosed => StoreError::Closed,
        redb::Error::ValueTooLarge(size) => StoreError::InvalidArgument(format!(
            "a key or value of {size} bytes is too large to store"
        )),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn read_kv(shared: &Shared, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let rtx = shared.db.begin_read().map_err(redb_err)?;
    let kv = rtx.open_table(KV).map_err(redb_err)?;
    match kv.get(key).map_err(redb_err)? {
        Some(guard) => Ok(Some(codec::decode_kv(key, guard.value())?)),
        None => Ok(None),
    }
}

fn read_range(
    shared: &Shared,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page, StoreError> {
    use std::ops::Bound;
    let rtx = shared.db.begin_read().map_err(redb_err)?;
    let revision = {
        let meta = rtx.open_table(META).map_err(redb_err)?;
        meta.get(META_REVISION)
            .map_err(redb_err)?
            .map_or(0, |guard| guard.value())
    };
    let kv = rtx.open_table(KV).map_err(redb_err)?;
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut page = Page {
        kvs: Vec::new(),
        more: false,
        revision,
    };
    for entry in kv
        .range::<&str>((start, Bound::Unbounded))
        .map_err(redb_err)?
    {
        let (key, value) = entry.map_err(redb_err)?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        if page.kvs.len() == limit {
            page.more = true;
            break;
        }
        page.kvs.push(codec::decode_kv(key, value.value())?);
    }
    Ok(page)
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        // One key: a read transaction and a B-tree lookup, cheap enough inline.
        read_kv(&self.shared, key)
    }

    async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let shared = self.shared.clone();
        let (prefix, after) = (prefix.to_string(), after.map(str::to_string));
        tokio::task::spawn_blocking(move || read_range(&shared, &prefix, after.as_deref(), limit))
            .await
            .map_err(|err| StoreError::Unavailable(format!("range read failed: {err}")))?
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        txn.validate()?;
        let (tx, rx) = oneshot::channel();
        self.submit(Work::Txn(txn), ReplyTo::Txn(tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        watch::watch(&self.shared, prefix, from_revision)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let id = self.shared.leases.grant(ttl, Instant::now())?;
        // The writer sleeps until the earliest deadline: let it recompute.
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request::Wake);
        }
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.shared.leases.keep_alive(lease, Instant::now())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        if !self.shared.leases.exists(lease) {
            return Err(StoreError::LeaseNotFound(lease));
        }
        self.submit_unit(Work::Revoke(lease)).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        if revision < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "cannot compact to revision {revision}: revisions start at 1"
            )));
        }
        self.submit_unit(Work::Compact(revision)).await
    }

    fn current_revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
    }

    fn describe(&self) -> String {
        format!("embedded:{}", self.shared.path.display())
    }
}
