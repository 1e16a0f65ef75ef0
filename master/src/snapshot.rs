//! Snapshots of a master's state: every key of the store as of one
//! revision, and the bytes of every module, in one file that restores into
//! an empty store of either kind (`wasmesos snapshot save F`, `wasmesos
//! snapshot restore F`).
//!
//! A consistent read without stopping the master: the keys are read page by
//! page (each page at a later revision while the master keeps writing),
//! then the store's history from the revision before the first page up to
//! the one after the last is replayed over them, which yields the state as
//! of that last revision. Module bytes are then read by digest; they never
//! change once stored.
//!
//! Format: the magic line `wasmesos-snapshot/1\n`, then records, each a tag
//! byte and length-prefixed (u32, big endian) fields: `K key value` for a
//! store key, `B digest bytes` for a module's bytes, and a final `E
//! revision` (as decimal text) that marks the snapshot complete. Keys that
//! belong to a running cluster and not to its state (`leader`, `masters/`)
//! are left out, and so are module chunks on an etcd store (the `B`
//! records carry those bytes, and a restore writes them back as the target
//! store keeps them: files beside an embedded store, chunks in etcd).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use wasmesos_api::Digest;
use wasmesos_store::{EventKind, Op, Store, StoreError, Txn};

use crate::keys;

const MAGIC: &[u8] = b"wasmesos-snapshot/1\n";

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a wasmesos snapshot: {0}")]
    Format(String),
    #[error(
        "the target store is not empty ({0} keys): restore into a new --data-dir or an empty etcd"
    )]
    NotEmpty(usize),
    #[error(
        "the history needed to make the snapshot consistent was compacted meanwhile; try again"
    )]
    Raced,
}

/// What a snapshot holds, for the operator.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub revision: i64,
    pub keys: usize,
    pub modules: usize,
    pub bytes: u64,
}

/// Keys of a running cluster rather than of its state, and module chunks
/// (a snapshot carries module bytes as blob records, whatever the store).
fn skipped(key: &str) -> bool {
    key == keys::LEADER || key.starts_with(keys::MASTERS) || key.starts_with("blobs/")
}

/// The store's keys as of one revision (see the module docs).
pub async fn consistent_keys(
    store: &Arc<dyn Store>,
) -> Result<(i64, BTreeMap<String, Vec<u8>>), SnapshotError> {
    let before = store.range("", None, 1).await?.revision;
    let mut state: BTreeMap<String, Vec<u8>> = store
        .range_all("")
        .await?
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    let after = store.range("", None, 1).await?.revision;
    if after > before {
        let mut watch = match store.watch("", before + 1).await {
            Ok(w) => w,
            Err(StoreError::Compacted { .. }) => return Err(SnapshotError::Raced),
            Err(e) => return Err(e.into()),
        };
        let mut seen = before;
        while seen < after {
            let Some(batch) = watch.next().await else {
                return Err(SnapshotError::Raced);
            };
            for event in batch?.events {
                if event.kv.mod_revision > after {
                    continue;
                }
                match event.kind {
                    EventKind::Put => state.insert(event.kv.key, event.kv.value),
                    EventKind::Delete => state.remove(&event.kv.key),
                };
                seen = seen.max(event.kv.mod_revision);
            }
        }
    }
    state.retain(|k, _| !skipped(k));
    Ok((after, state))
}

/// The digests of every module record among `keys`.
fn module_digests(keys: &BTreeMap<String, Vec<u8>>) -> Vec<Digest> {
    let mut digests: Vec<Digest> = keys
        .keys()
        .filter_map(|k| k.strip_prefix("modules/"))
        .filter_map(|rest| rest.rsplit('/').next())
        .filter_map(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
        .collect();
    digests.sort_by_key(|d| d.to_string());
    digests.dedup();
    digests
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes a snapshot into `out`, reading module bytes with `blob`.
pub async fn write<W, F, Fut>(
    store: &Arc<dyn Store>,
    mut blob: F,
    out: &mut W,
) -> Result<Summary, SnapshotError>
where
    W: Write,
    F: FnMut(Digest) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Option<Vec<u8>>>>,
{
    let (revision, keys) = consistent_keys(store).await?;
    let mut summary = Summary {
        revision,
        keys: keys.len(),
        ..Summary::default()
    };
    out.write_all(MAGIC)?;
    for (key, value) in &keys {
        let mut rec = vec![b'K'];
        field(&mut rec, key.as_bytes());
        field(&mut rec, value);
        out.write_all(&rec)?;
        summary.bytes += rec.len() as u64;
    }
    for digest in module_digests(&keys) {
        let Some(bytes) = blob(digest).await? else {
            continue;
        };
        let mut rec = vec![b'B'];
        field(&mut rec, digest.to_string().as_bytes());
        field(&mut rec, &bytes);
        out.write_all(&rec)?;
        summary.modules += 1;
        summary.bytes += rec.len() as u64;
    }
    let mut end = vec![b'E'];
    field(&mut end, revision.to_string().as_bytes());
    out.write_all(&end)?;
    Ok(summary)
}

/// One record of a snapshot.
enum Record {
    Key(String, Vec<u8>),
    Blob(Digest, Vec<u8>),
    End(i64),
}

fn read_field(input: &mut impl Read) -> Result<Vec<u8>, SnapshotError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_record(input: &mut impl Read) -> Result<Record, SnapshotError> {
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag).map_err(|_| {
        SnapshotError::Format("it ends before its end marker (a truncated file?)".into())
    })?;
    let text = |b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| SnapshotError::Format("a key is not UTF-8".into()))
    };
    Ok(match tag[0] {
        b'K' => Record::Key(text(read_field(input)?)?, read_field(input)?),
        b'B' => {
            let digest = text(read_field(input)?)?;
            let digest = Digest::parse(&digest)
                .map_err(|e| SnapshotError::Format(format!("bad module digest: {e}")))?;
            Record::Blob(digest, read_field(input)?)
        }
        b'E' => {
            let rev = text(read_field(input)?)?;
            Record::End(
                rev.parse()
                    .map_err(|_| SnapshotError::Format("bad end marker".into()))?,
            )
        }
        other => return Err(SnapshotError::Format(format!("unknown record tag {other}"))),
    })
}

/// Restores a snapshot from `input` into `store`, which must be empty, and
/// module bytes into `blob_dir` (the data dir's blob directory; on a shared
/// store they are keys already). Writes in transactions within the store's
/// limits. Nothing checks signatures: restore only snapshots you trust.
pub async fn restore(
    store: &Arc<dyn Store>,
    data_dir: &Path,
    input: &mut impl Read,
) -> Result<Summary, SnapshotError> {
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| SnapshotError::Format("too short".into()))?;
    if magic != MAGIC {
        return Err(SnapshotError::Format(
            "it does not start with wasmesos-snapshot/1".into(),
        ));
    }
    let existing = store.range("", None, 2).await?;
    if !existing.kvs.is_empty() {
        let all = store.range_all("").await?.len();
        return Err(SnapshotError::NotEmpty(all));
    }
    let limits = store.limits();
    let blobs = data_dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    let mut summary = Summary::default();
    let mut batch: Vec<Op> = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        match read_record(input)? {
            Record::Key(key, value) => {
                if skipped(&key) {
                    continue;
                }
                let size = key.len() + value.len();
                if !batch.is_empty()
                    && (batch.len() + 1 > limits.max_ops || batch_bytes + size > limits.max_bytes)
                {
                    store
                        .txn(Txn::new().then(std::mem::take(&mut batch)))
                        .await?;
                    batch_bytes = 0;
                }
                batch.push(Op::put(key, value));
                batch_bytes += size;
                summary.keys += 1;
                summary.bytes += size as u64;
            }
            Record::Blob(digest, bytes) => {
                let mut hasher = Digest::hasher();
                hasher.update(&bytes);
                if hasher.finish() != digest {
                    return Err(SnapshotError::Format(format!(
                        "the bytes of module {digest} do not match their digest"
                    )));
                }
                if store.shared() {
                    for op in crate::modules::replica_ops(&digest, &bytes) {
                        store.txn(Txn::new().then(op)).await?;
                    }
                } else {
                    std::fs::write(blobs.join(digest.hex()), &bytes)?;
                }
                summary.modules += 1;
                summary.bytes += bytes.len() as u64;
            }
            Record::End(revision) => {
                if !batch.is_empty() {
                    store.txn(Txn::new().then(batch)).await?;
                }
                summary.revision = revision;
                return Ok(summary);
            }
        }
    }
}
