//! The master's state store: a small revisioned key-value [`Store`] trait with
//! etcd's semantics, its embedded backend on a single redb file
//! ([`EmbeddedStore`], zero setup, one master), and its etcd backend
//! ([`EtcdStore`], several masters: leader election and standbys).
//!
//! Neighbours: the master sits above this crate and builds its typed
//! repositories (tasks, agents, frameworks, jobs) on the trait; it never
//! learns which backend runs. Everything here follows etcd: one store-wide [`Revision`] that every write bumps,
//! per-key create/mod revisions and versions, compare-and-swap transactions,
//! prefix watches that resume from a revision, leases that delete their keys
//! when they lapse, and compaction of watch history.
//!
//! Key conventions: keys are paths of `/`-separated segments chosen by the
//! callers, each segment free of `/`, with the tenant first where an object
//! belongs to one, e.g. `t/<tenant>/tasks/<framework>/<task>`. Prefix
//! operations ([`Store::range`], [`Store::watch`], [`Op::DeletePrefix`]) are
//! plain byte-prefix matches, so callers end a prefix with `/` to keep
//! `t/a/` from matching `t/ab/`. Keep values small (etcd caps a request at
//! 1.5 MiB): module bytes and other blobs live beside the store, with only
//! their digests in it.

mod embedded;
mod error;
mod etcd;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

pub use embedded::{EmbeddedOptions, EmbeddedStats, EmbeddedStore, STATE_FILE_NAME};
pub use error::StoreError;
pub use etcd::{EtcdStore, MAX_REQUEST_BYTES, MAX_TXN_OPS};

/// The store-wide revision: 0 for an empty store, bumped by one by every
/// transaction that changes something (all its changes share it), like etcd.
pub type Revision = i64;

/// A lease: keys attached to it are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// A key with its value and etcd's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (empty in a delete event).
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the key's last change.
    pub mod_revision: Revision,
    /// 1 on creation, +1 on every put; a deleted key starts again at 1.
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A comparison operator of a [`Compare`]: `stored OP given`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `stored == given`
    Equal,
    /// `stored != given`
    NotEqual,
    /// `stored < given`
    Less,
    /// `stored > given`
    Greater,
}

impl CmpOp {
    /// Whether `stored OP given` holds.
    pub fn holds<T: Ord + ?Sized>(self, stored: &T, given: &T) -> bool {
        match self {
            CmpOp::Equal => stored == given,
            CmpOp::NotEqual => stored != given,
            CmpOp::Less => stored < given,
            CmpOp::Greater => stored > given,
        }
    }
}

/// A condition of a [`Txn`], with etcd's semantics: a missing key has
/// version, create revision and mod revision 0, and every `Value` compare on
/// a missing key is false (even `NotEqual`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's version.
    Version(String, CmpOp, i64),
    /// The key's create revision.
    CreateRevision(String, CmpOp, Revision),
    /// The key's mod revision.
    ModRevision(String, CmpOp, Revision),
    /// The key's value, compared as bytes; false for a missing key.
    Value(String, CmpOp, Vec<u8>),
}

impl Compare {
    /// The key does not exist (`version == 0`).
    pub fn missing(key: impl Into<String>) -> Self {
        Compare::Version(key.into(), CmpOp::Equal, 0)
    }

    /// The key exists (`version > 0`).
    pub fn exists(key: impl Into<String>) -> Self {
        Compare::Version(key.into(), CmpOp::Greater, 0)
    }

    /// The key was last changed at `revision` (0: it does not exist).
    pub fn mod_revision(key: impl Into<String>, revision: Revision) -> Self {
        Compare::ModRevision(key.into(), CmpOp::Equal, revision)
    }

    /// The key was created at `revision`: the fencing compare of a leader
    /// whose leader key was created there.
    pub fn create_revision(key: impl Into<String>, revision: Revision) -> Self {
        Compare::CreateRevision(key.into(), CmpOp::Equal, revision)
    }

    /// The key holds exactly `value`.
    pub fn value(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Compare::Value(key.into(), CmpOp::Equal, value.into())
    }

    /// The key the comparison reads.
    pub fn key(&self) -> &str {
        match self {
            Compare::Version(key, ..)
            | Compare::CreateRevision(key, ..)
            | Compare::ModRevision(key, ..)
            | Compare::Value(key, ..) => key,
        }
    }

    /// Evaluates the comparison against the key's current state.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match self {
            Compare::Version(_, op, given) => op.holds(&current.map_or(0, |kv| kv.version), given),
            Compare::CreateRevision(_, op, given) => {
                op.holds(&current.map_or(0, |kv| kv.create_revision), given)
            }
            Compare::ModRevision(_, op, given) => {
                op.holds(&current.map_or(0, |kv| kv.mod_revision), given)
            }
            Compare::Value(_, op, given) => {
                current.is_some_and(|kv| op.holds(kv.value.as_slice(), given.as_slice()))
            }
        }
    }
}

/// So that [`Txn::when`] takes one compare as well as a list of them.
impl IntoIterator for Compare {
    type Item = Compare;
    type IntoIter = std::iter::Once<Compare>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self)
    }
}

/// A change in a [`Txn`] branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace a key, attached to `lease` if given (the lease must
    /// exist, or the whole transaction fails with [`StoreError::LeaseNotFound`]).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The lease to attach the key to; `None` detaches it from any.
        lease: Option<LeaseId>,
    },
    /// Delete one key (nothing happens if it is missing).
    Delete {
        /// The key.
        key: String,
    },
    /// Delete every key starting with `prefix`.
    DeletePrefix {
        /// The prefix; end it with `/` to delete one subtree.
        prefix: String,
    },
}

impl Op {
    /// A put without a lease.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// A put attached to `lease`.
    pub fn put_with_lease(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// A delete of every key under `prefix`.
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix {
            prefix: prefix.into(),
        }
    }
}

/// So that [`Txn::then`] and [`Txn::otherwise`] take one op as well as a list.
impl IntoIterator for Op {
    type Item = Op;
    type IntoIter = std::iter::Once<Op>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self)
    }
}

/// An atomic transaction: if all `compares` hold, apply `success`, else
/// `failure`. As in etcd, a branch may put a key at most once and may not
/// both put and delete a key (the store refuses it with
/// [`StoreError::InvalidTxn`]).
///
/// ```
/// use wasmesos_store::{Compare, Op, Txn};
/// let txn = Txn::new()
///     .when(Compare::missing("t/a/leader"))
///     .then([Op::put("t/a/leader", "me"), Op::put("t/a/epoch", "1")])
///     .otherwise(vec![]);
/// assert_eq!(txn.success.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold for `success` to apply.
    pub compares: Vec<Compare>,
    /// Ops applied when every compare holds.
    pub success: Vec<Op>,
    /// Ops applied otherwise.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction (no compares: `success` applies).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds conditions (one [`Compare`] or any list of them).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds ops to the success branch (one [`Op`] or any list of them).
    pub fn then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds ops to the failure branch (one [`Op`] or any list of them).
    pub fn otherwise(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Checks what etcd checks before running a transaction: non-empty keys,
    /// and within each branch no key put twice nor both put and deleted.
    pub fn validate(&self) -> Result<(), StoreError> {
        for compare in &self.compares {
            if compare.key().is_empty() {
                return Err(StoreError::InvalidTxn(
                    "a compare names an empty key".into(),
                ));
            }
        }
        validate_branch(&self.success, "success")?;
        validate_branch(&self.failure, "failure")
    }
}

fn validate_branch(ops: &[Op], branch: &str) -> Result<(), StoreError> {
    let mut puts = std::collections::BTreeSet::new();
    for op in ops {
        if let Op::Put { key, .. } | Op::Delete { key } = op
            && key.is_empty()
        {
            return Err(StoreError::InvalidTxn(format!(
                "an op in the {branch} branch names an empty key"
            )));
        }
        if let Op::Put { key, .. } = op
            && !puts.insert(key.as_str())
        {
            return Err(StoreError::InvalidTxn(format!(
                "the {branch} branch puts key {key:?} twice; merge the puts into one"
            )));
        }
    }
    for op in ops {
        let clash = match op {
            Op::Put { .. } => None,
            Op::Delete { key } => puts.contains(key.as_str()).then(|| key.clone()),
            Op::DeletePrefix { prefix } => puts
                .range(prefix.as_str()..)
                .take_while(|k| k.starts_with(prefix.as_str()))
                .next()
                .map(|k| k.to_string()),
        };
        if let Some(key) = clash {
            return Err(StoreError::InvalidTxn(format!(
                "the {branch} branch both puts and deletes key {key:?}; keep only one of them"
            )));
        }
    }
    Ok(())
}

/// The outcome of a [`Txn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every compare held (so `success` applied, else `failure`).
    pub succeeded: bool,
    /// The store revision right after the transaction: its own revision if it
    /// changed anything.
    pub revision: Revision,
}

/// One page of a [`Store::range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The keys, ascending.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys under the prefix follow the last one returned (page
    /// on with `after` = the last key).
    pub more: bool,
    /// The store revision the page was read at.
    pub revision: Revision,
}

/// What an [`Event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or replaced.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change seen by a watcher. For a delete, `kv` holds the key, the
/// deleting revision as `mod_revision`, an empty value and zeros elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after a put; the key and deleting revision for a delete.
    pub kv: KeyValue,
}

/// A batch of watch events: whole revisions, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResponse {
    /// The revision the watcher has seen everything up to (the revision of the
    /// last event here, or later): to resume, watch from `revision + 1`.
    pub revision: Revision,
    /// The events under the watched prefix, in revision order.
    pub events: Vec<Event>,
}

/// The stream of a [`Store::watch`]. It ends after yielding an error (e.g.
/// [`StoreError::Compacted`] when a lagging watcher fell behind compaction).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, StoreError>> + Send>>;

/// How large one transaction may be on a backend: etcd caps both (by
/// default 128 operations and 1.5 MiB a request); the embedded store caps
/// neither. Callers that batch (the master's group commit) stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLimits {
    /// Operations in one branch.
    pub max_ops: usize,
    /// Bytes of keys and values in one transaction.
    pub max_bytes: usize,
}

impl TxnLimits {
    /// No limit.
    pub const UNLIMITED: TxnLimits = TxnLimits {
        max_ops: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// Page size of [`Store::range_all`].
const RANGE_ALL_PAGE: usize = 1000;

/// A revisioned key-value store with etcd's semantics. See the crate docs for
/// key conventions.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key's current value and bookkeeping.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Keys starting with `prefix`, ascending, strictly after `after` if
    /// given, at most `limit` (0 = no limit).
    async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Atomically: if all compares hold, apply `success`, else `failure`.
    /// Durable (fsync'd) before it returns.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Events for keys under `prefix` from `from_revision` (inclusive; 0 =
    /// from now on), in revision order, batched per revision or more.
    async fn watch(&self, prefix: &str, from_revision: Revision)
    -> Result<WatchStream, StoreError>;

    /// Grants a lease that lapses `ttl` after its last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renews a lease; returns its TTL (the time it has left now).
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Ends a lease now, deleting the keys attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Forgets watch history before `revision`; watching from earlier then
    /// fails with [`StoreError::Compacted`]. Compacting to a revision at or
    /// before the current compaction point does nothing.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The latest committed revision.
    fn current_revision(&self) -> Revision;

    /// For status output, e.g. `embedded:/path/to/state.redb`.
    fn describe(&self) -> String;

    /// Gives space freed by compaction back to the system, where the
    /// backend needs it done (etcd); nothing elsewhere.
    async fn defragment(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How large one transaction may be.
    fn limits(&self) -> TxnLimits {
        TxnLimits::UNLIMITED
    }

    /// Whether other processes may share this store (and so a master must
    /// expect standbys, and keep what a successor needs in the store).
    fn shared(&self) -> bool {
        false
    }

    /// Puts one key without a lease; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        Ok(self
            .txn(Txn::new().then(Op::put(key, value)))
            .await?
            .revision)
    }

    /// Puts one key attached to `lease`; returns the new revision.
    async fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<Revision, StoreError> {
        Ok(self
            .txn(Txn::new().then(Op::put_with_lease(key, value, lease)))
            .await?
            .revision)
    }

    /// Deletes one key (nothing happens if it is missing); returns the store
    /// revision afterwards.
    async fn delete(&self, key: &str) -> Result<Revision, StoreError> {
        Ok(self.txn(Txn::new().then(Op::delete(key))).await?.revision)
    }

    /// The key's value, if it exists.
    async fn get_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key).await?.map(|kv| kv.value))
    }

    /// Every key under `prefix`, paging through [`Store::range`]. The pages
    /// are read at successive revisions, so this is not one snapshot when
    /// writes run concurrently: to follow changes, note
    /// [`Store::current_revision`] before calling and watch from it + 1;
    /// replaying those events over the result converges.
    async fn range_all(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.range(prefix, after.as_deref(), RANGE_ALL_PAGE).await?;
            after = page.kvs.last().map(|kv| kv.key.clone());
            all.extend(page.kvs);
            if !page.more || after.is_none() {
                return Ok(all);
            }
        }
    }
}

/// A shared store is a store, so `Arc<EmbeddedStore>` and `Arc<dyn Store>`
/// can be passed wherever a `Store` is expected.
#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        (**self).get(key).await
    }
    async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        (**self).range(prefix, after, limit).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        (**self).txn(txn).await
    }
    async fn watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        (**self).watch(prefix, from_revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        (**self).grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        (**self).keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        (**self).revoke_lease(lease).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        (**self).compact(revision).await
    }
    fn current_revision(&self) -> Revision {
        (**self).current_revision()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn defragment(&self) -> Result<(), StoreError> {
        (**self).defragment().await
    }
    fn limits(&self) -> TxnLimits {
        (**self).limits()
    }
    fn shared(&self) -> bool {
        (**self).shared()
    }
}
