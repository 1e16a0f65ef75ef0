//! Writes to the store, fenced: every transaction a master makes carries a
//! compare on its leader key's create revision, so a master that lost its
//! leadership can never overwrite its successor's state. Also the record
//! encoding (protobuf) shared by every repository in the master.
//!
//! The core writes through a [`Pipeline`]: it hands over a change and goes
//! on; a background task merges whatever changes are queued into one
//! transaction (one durable commit shared by many), and reports each
//! committed sequence number back. The core holds back everything others
//! would see — acknowledgements, launches, replies — until the change they
//! depend on has committed. Reads go through an overlay of the changes still
//! in flight, so the core always reads its own writes. A commit that fails is
//! fatal to the master: it cannot promise what it did not store, so it
//! stops, and the next leader starts from what was committed (agents resend
//! unacknowledged updates, clients retry unanswered calls).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use prost::Message;
use wasmesos_store::{CmpOp, Compare, Op, Revision, Store, StoreError, Txn};

/// Why a write did not land.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("this master is no longer the leader (its leader key changed); stepping down")]
    Fenced,
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Changes handed to the pipeline and not yet committed: key → its latest
/// pending value (`None`: deleted) and the sequence number that wrote it.
type Overlay = BTreeMap<String, (Option<Vec<u8>>, u64)>;

/// Fenced writes and typed reads over the store.
#[derive(Clone)]
pub struct Committer {
    store: Arc<dyn Store>,
    fence: Option<Compare>,
    overlay: Arc<Mutex<Overlay>>,
    /// Time of each store transaction, for `/metrics`.
    latency: Arc<crate::core::counters::Histogram>,
}

impl Committer {
    /// A committer fencing on `leader_create_revision` of the leader key
    /// (`None` before leadership is established).
    pub fn new(store: Arc<dyn Store>, fence: Option<(String, Revision)>) -> Self {
        Self {
            store,
            fence: fence.map(|(key, rev)| Compare::CreateRevision(key, CmpOp::Equal, rev)),
            overlay: Arc::default(),
            latency: Arc::default(),
        }
    }

    /// How long this committer's transactions took.
    pub fn latency(&self) -> &crate::core::counters::Histogram {
        &self.latency
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the write pipeline; its outcomes arrive on `events`.
    pub fn pipeline(&self, events: mpsc::UnboundedSender<Committed>) -> Pipeline {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_pipeline(self.clone(), rx, events));
        Pipeline {
            tx,
            overlay: self.overlay.clone(),
            next: 0,
        }
    }

    /// A key's value as the master will have it once its pending writes
    /// commit. Only the core (and its actors) may read ahead like this:
    /// what others are shown must be committed.
    pub async fn read_raw(&self, key: &str) -> Result<Option<Vec<u8>>, CommitError> {
        if let Some((value, _)) = self.overlay().get(key) {
            return Ok(value.clone());
        }
        self.get_raw(key).await
    }

    /// A key's committed value.
    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, CommitError> {
        Ok(self.store.get(key).await?.map(|kv| kv.value))
    }

    /// Every key under `prefix` with its value, pending writes included.
    pub async fn range_all(&self, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>, CommitError> {
        let mut out = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.range(prefix, after.as_deref(), 1000).await?;
            for kv in &page.kvs {
                out.insert(kv.key.clone(), kv.value.clone());
            }
            if !page.more {
                break;
            }
            after = page.kvs.last().map(|kv| kv.key.clone());
        }
        let overlay = self.overlay();
        for (key, (value, _)) in overlay
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match value {
                Some(v) => out.insert(key.clone(), v.clone()),
                None => out.remove(key),
            };
        }
        Ok(out)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Applies `ops` atomically, if this master still leads.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Revision, CommitError> {
        if ops.is_empty() {
            return Ok(self.store.current_revision());
        }
        let outcome = self.commit_if(Vec::new(), ops).await?;
        outcome.ok_or(CommitError::Fenced)
    }

    /// Applies `ops` if `compares` (and the fence) hold. `Ok(None)` when a
    /// compare failed; [`CommitError::Fenced`] when the fence did.
    pub async fn commit_if(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<Option<Revision>, CommitError> {
        if let Some(fence) = &self.fence {
            compares.push(fence.clone());
        }
        let started = std::time::Instant::now();
        let response = self
            .store
            .txn(Txn {
                compares,
                success: ops,
                failure: Vec::new(),
            })
            .await?;
        self.latency.observe(started.elapsed());
        if response.succeeded {
            return Ok(Some(response.revision));
        }
        if self.still_leading().await? {
            Ok(None)
        } else {
            Err(CommitError::Fenced)
        }
    }

    async fn still_leading(&self) -> Result<bool, CommitError> {
        let Some(Compare::CreateRevision(key, _, rev)) = &self.fence else {
            return Ok(true);
        };
        Ok(self
            .store
            .get(key)
            .await?
            .is_some_and(|kv| kv.create_revision == *rev))
    }

    /// Reads and decodes one committed record.
    pub async fn get<M: Message + Default>(&self, key: &str) -> Result<Option<M>, CommitError> {
        match self.get_raw(key).await? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and decodes one record, pending writes included (see
    /// [`read_raw`](Self::read_raw)).
    pub async fn read<M: Message + Default>(&self, key: &str) -> Result<Option<M>, CommitError> {
        match self.read_raw(key).await? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and decodes every committed record under `prefix`.
    pub async fn list<M: Message + Default>(&self, prefix: &str) -> Result<Vec<M>, CommitError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.range(prefix, after.as_deref(), 1000).await?;
            for kv in &page.kvs {
                out.push(decode(&kv.key, &kv.value)?);
            }
            if !page.more {
                return Ok(out);
            }
            after = page.kvs.last().map(|kv| kv.key.clone());
        }
    }
}

/// A put of an encoded record.
pub fn put<M: Message>(key: String, record: &M) -> Op {
    Op::Put {
        key,
        value: record.encode_to_vec(),
        lease: None,
    }
}

/// Decodes a stored record.
pub fn decode<M: Message + Default>(key: &str, bytes: &[u8]) -> Result<M, CommitError> {
    M::decode(bytes).map_err(|e| CommitError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// What the pipeline reports to the core.
#[derive(Debug)]
pub enum Committed {
    /// Every change up to this sequence number is durable.
    Upto(u64),
    /// A commit failed; the master must stop.
    Failed(CommitError),
}

/// The core's end of the write pipeline.
pub struct Pipeline {
    tx: mpsc::UnboundedSender<(u64, Vec<Op>)>,
    overlay: Arc<Mutex<Overlay>>,
    next: u64,
}

impl Pipeline {
    /// Queues `ops` to commit as one unit (possibly merged with others);
    /// returns the sequence number [`Committed::Upto`] will report.
    pub fn write(&mut self, ops: Vec<Op>) -> u64 {
        self.next += 1;
        let seq = self.next;
        {
            let mut overlay = self.overlay.lock().unwrap_or_else(|p| p.into_inner());
            for op in &ops {
                match op {
                    Op::Put { key, value, .. } => {
                        overlay.insert(key.clone(), (Some(value.clone()), seq));
                    }
                    Op::Delete { key } => {
                        overlay.insert(key.clone(), (None, seq));
                    }
                    // Prefix deletes are not pipelined by the core; a
                    // caller that needs one commits directly.
                    Op::DeletePrefix { .. } => {}
                }
            }
        }
        // If the pipeline task is gone the master is stopping; the core
        // learns of it from the Failed report or its shutdown.
        let _ = self.tx.send((seq, ops));
        seq
    }

    /// The sequence number of the last write handed over.
    pub fn last(&self) -> u64 {
        self.next
    }
}

/// Most operations merged into one transaction.
const MAX_BATCH_OPS: usize = 20_000;

/// Bytes an op adds to a transaction, roughly (as the store's limits count).
fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { key, value, .. } => key.len() + value.len(),
        Op::Delete { key } => key.len(),
        Op::DeletePrefix { prefix } => 2 * prefix.len(),
    }
}

async fn run_pipeline(
    committer: Committer,
    mut rx: mpsc::UnboundedReceiver<(u64, Vec<Op>)>,
    events: mpsc::UnboundedSender<Committed>,
) {
    let limits = committer.store().limits();
    let max_ops = limits.max_ops.min(MAX_BATCH_OPS);
    // A unit that did not fit the last transaction opens the next one.
    let mut carried: Option<(u64, Vec<Op>)> = None;
    loop {
        let first = match carried.take() {
            Some(unit) => unit,
            None => match rx.recv().await {
                Some(unit) => unit,
                None => return,
            },
        };
        // Merge everything queued that fits: later writes of a key replace
        // earlier ones, exactly as applying them one by one would.
        let mut merged: BTreeMap<String, Op> = BTreeMap::new();
        let (mut upto, mut ops, mut bytes) = (0, 0, 0);
        let mut next = Some(first);
        while let Some((seq, unit)) = next.take() {
            let unit_bytes: usize = unit.iter().map(op_bytes).sum();
            if !merged.is_empty()
                && (ops + unit.len() > max_ops || bytes + unit_bytes > limits.max_bytes)
            {
                carried = Some((seq, unit));
                break;
            }
            upto = seq;
            ops += unit.len();
            bytes += unit_bytes;
            for op in unit {
                let key = match &op {
                    Op::Put { key, .. } | Op::Delete { key } => key.clone(),
                    Op::DeletePrefix { prefix } => prefix.clone(),
                };
                merged.insert(key, op);
            }
            next = rx.try_recv().ok();
        }
        let result = commit_within(
            &committer,
            merged.into_values().collect(),
            max_ops,
            limits.max_bytes,
        )
        .await;
        {
            let mut overlay = committer.overlay();
            overlay.retain(|_, (_, seq)| *seq > upto);
        }
        let report = match result {
            Ok(_) => Committed::Upto(upto),
            Err(e) => Committed::Failed(e),
        };
        let failed = matches!(report, Committed::Failed(_));
        if events.send(report).is_err() || failed {
            return;
        }
    }
}

/// Commits `ops` in one transaction when they fit the store's limits, else
/// (one change larger than a transaction may be: a scheduler callback that
/// launched hundreds of tasks, on etcd with its default limits) in several,
/// in order. Nothing is reported committed before the last part is, so
/// only a crash between parts can expose a partial change; raising etcd's
/// `--max-txn-ops` and `--max-request-bytes` avoids the split.
async fn commit_within(
    committer: &Committer,
    ops: Vec<Op>,
    max_ops: usize,
    max_bytes: usize,
) -> Result<Revision, CommitError> {
    let total: usize = ops.iter().map(op_bytes).sum();
    if ops.len() <= max_ops && total <= max_bytes {
        return committer.commit(ops).await;
    }
    tracing::warn!(
        ops = ops.len(),
        bytes = total,
        max_ops,
        max_bytes,
        "one change is larger than a store transaction may be: committing it in parts \
         (raise etcd's --max-txn-ops / --max-request-bytes to keep it atomic)"
    );
    let mut revision = 0;
    let mut part = Vec::new();
    let mut part_bytes = 0;
    for op in ops {
        let b = op_bytes(&op);
        if !part.is_empty() && (part.len() + 1 > max_ops || part_bytes + b > max_bytes) {
            revision = committer.commit(std::mem::take(&mut part)).await?;
            part_bytes = 0;
        }
        part_bytes += b;
        part.push(op);
    }
    if !part.is_empty() {
        revision = committer.commit(part).await?;
    }
    Ok(revision)
}

#[cfg(test)]
mod tests;
