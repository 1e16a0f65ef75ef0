//! Writes to the store, fenced: every transaction a master makes carries a
//! compare on its leader key's create revision, so a master that lost its
//! leadership can never overwrite its successor's state. Also the record
//! encoding (protobuf) shared by every repository in the master.

use std::sync::Arc;

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

/// Fenced writes and typed reads over the store.
#[derive(Clone)]
pub struct Committer {
    store: Arc<dyn Store>,
    fence: Option<Compare>,
}

impl Committer {
    /// A committer fencing on `leader_create_revision` of the leader key
    /// (`None` before leadership is established).
    pub fn new(store: Arc<dyn Store>, fence: Option<(String, Revision)>) -> Self {
        Self {
            store,
            fence: fence.map(|(key, rev)| Compare::CreateRevision(key, CmpOp::Equal, rev)),
        }
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

    /// Reads and decodes one record.
    pub async fn get<M: Message + Default>(&self, key: &str) -> Result<Option<M>, CommitError> {
        match self.store.get(key).await? {
            Some(kv) => decode(key, &kv.value).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and decodes every record under `prefix`.
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
