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
}

impl Committer {
    /// A committer fencing on `leader_create_revision` of the leader key
    /// (`None` before leadership is established).
    pub fn new(store: Arc<dyn Store>, fence: Option<(String, Revision)>) -> Self {
        Self {
            store,
            fence: fence.map(|(key, rev)| Compare::CreateRevision(key, CmpOp::Equal, rev)),
            overlay: Arc::default(),
        }
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
        let response = self
            .store
            .txn(Txn {
                compares,
                success: ops,
                failure: Vec::new(),
            })
            .await?;
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

async fn run_pipeline(
    committer: Committer,
    mut rx: mpsc::UnboundedReceiver<(u64, Vec<Op>)>,
    events: mpsc::UnboundedSender<Committed>,
) {
    while let Some(first) = rx.recv().await {
        // Merge everything queued: later writes of a key replace earlier
        // ones, exactly as applying them one by one would.
        let mut merged: BTreeMap<String, Op> = BTreeMap::new();
        let mut upto = 0;
        let mut count = 0;
        let mut next = Some(first);
        while let Some((seq, ops)) = next.take() {
            upto = seq;
            count += ops.len();
            for op in ops {
                let key = match &op {
                    Op::Put { key, .. } | Op::Delete { key } => key.clone(),
                    Op::DeletePrefix { prefix } => prefix.clone(),
                };
                merged.insert(key, op);
            }
            if count < MAX_BATCH_OPS {
                next = rx.try_recv().ok();
            }
        }
        let result = committer.commit(merged.into_values().collect()).await;
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
