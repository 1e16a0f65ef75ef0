//! The etcd backend of [`Store`]: the same trait, served by an etcd cluster
//! (etcd-client over gRPC), so that several masters share one state and
//! elect a leader through leases.
//!
//! The trait was written with etcd's semantics, so most calls map one to
//! one: revisions, create/mod revisions and versions are etcd's own, a
//! [`Txn`] is one etcd transaction, a lease is an etcd lease. What this
//! module adds: transactions are checked as the embedded backend checks
//! them (so both refuse the same input with the same words), a watch
//! reports compaction as [`StoreError::Compacted`] before it returns, and
//! etcd's errors become [`StoreError`]s that say what to do — in particular
//! a full database (etcd's NOSPACE alarm) is [`StoreError::Full`], not a
//! silent stall.
//!
//! etcd caps a transaction at 128 operations and a request at 1.5 MiB by
//! default ([`MAX_TXN_OPS`], [`MAX_REQUEST_BYTES`]); callers that batch
//! (the master's group commit) split their work to fit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client as etcd;
use futures::stream;

use crate::{
    CmpOp, Compare, Event, EventKind, KeyValue, LeaseId, Op, Page, Revision, Store, StoreError,
    Txn, TxnLimits, TxnResponse, WatchResponse, WatchStream,
};

/// Operations etcd accepts in one transaction (its `--max-txn-ops`
/// default), counting both branches' ops separately.
pub const MAX_TXN_OPS: usize = 128;
/// Bytes etcd accepts in one request (its `--max-request-bytes` default).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// How long connecting to etcd may take before the master says so.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take: etcd answers in milliseconds when it has
/// a quorum, so a request this slow means it has none.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] on an etcd cluster. Cheap to clone: clones share one
/// connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: etcd::Client,
    endpoints: Arc<Vec<String>>,
    /// The highest revision any response has shown this process.
    revision: Arc<AtomicI64>,
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (e.g. `http://127.0.0.1:2379`) and
    /// reads the current revision. Fails with [`StoreError::Unavailable`]
    /// naming the endpoints when none answers.
    pub async fn connect(endpoints: &[String]) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument(
                "no etcd endpoints given: use etcd://HOST:PORT[,HOST:PORT…]".into(),
            ));
        }
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            // A member cut off from its cluster's leader refuses requests
            // rather than serving stale reads.
            .with_require_leader(true);
        let unreachable = |e: etcd::Error| {
            StoreError::Unavailable(format!(
                "cannot reach etcd at {}: {e}; is etcd running there?",
                endpoints.join(",")
            ))
        };
        let client = etcd::Client::connect(endpoints, Some(options))
            .await
            .map_err(unreachable)?;
        let store = Self {
            client,
            endpoints: Arc::new(endpoints.to_vec()),
            revision: Arc::new(AtomicI64::new(0)),
        };
        // One read both proves etcd answers (connect is lazy) and learns the
        // revision.
        let resp = store
            .client
            .kv_client()
            .get("\0", Some(etcd::GetOptions::new().with_count_only()))
            .await
            .map_err(unreachable)?;
        store.saw(resp.header());
        Ok(store)
    }

    /// Parses `etcd://host:port[,host:port…]` (or `http://…` endpoints,
    /// comma-separated) into endpoint URLs.
    pub fn parse_url(url: &str) -> Result<Vec<String>, StoreError> {
        let rest = url.strip_prefix("etcd://").unwrap_or(url);
        let endpoints: Vec<String> = rest
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.starts_with("http://") || e.starts_with("https://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument(format!(
                "{url:?} names no etcd endpoint: use etcd://HOST:PORT[,HOST:PORT…]"
            )));
        }
        Ok(endpoints)
    }

    /// The underlying client, for what the trait does not cover (the
    /// maintenance API: status, alarms, defragmentation).
    pub fn client(&self) -> &etcd::Client {
        &self.client
    }

    /// Records the revision a response was served at.
    fn saw(&self, header: Option<&etcd::ResponseHeader>) -> Revision {
        let revision = header.map_or(0, |h| h.revision());
        self.revision.fetch_max(revision, Ordering::AcqRel);
        revision
    }
}

impl EtcdStore {
    /// Whether history at `revision` has been compacted away (a read at
    /// that revision says so; a future revision is not compacted).
    async fn is_compacted(&self, revision: Revision) -> Result<bool, StoreError> {
        let options = etcd::GetOptions::new()
            .with_count_only()
            .with_revision(revision);
        match self.client.kv_client().get("\0", Some(options)).await {
            Ok(_) => Ok(false),
            Err(etcd::Error::GRpcStatus(s)) if s.message().contains("compacted") => Ok(true),
            Err(etcd::Error::GRpcStatus(s)) if s.message().contains("future revision") => Ok(false),
            Err(e) => Err(error(e, None)),
        }
    }
}

/// The smallest key after every key starting with `prefix` (etcd's
/// "range end" of a prefix); `\0` (to the end of the keyspace) when there
/// is none.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn cmp_op(op: CmpOp) -> etcd::CompareOp {
    match op {
        CmpOp::Equal => etcd::CompareOp::Equal,
        CmpOp::NotEqual => etcd::CompareOp::NotEqual,
        CmpOp::Less => etcd::CompareOp::Less,
        CmpOp::Greater => etcd::CompareOp::Greater,
    }
}

fn compare(c: Compare) -> etcd::Compare {
    match c {
        Compare::Version(k, op, v) => etcd::Compare::version(k, cmp_op(op), v),
        Compare::CreateRevision(k, op, r) => etcd::Compare::create_revision(k, cmp_op(op), r),
        Compare::ModRevision(k, op, r) => etcd::Compare::mod_revision(k, cmp_op(op), r),
        Compare::Value(k, op, v) => etcd::Compare::value(k, cmp_op(op), v),
    }
}

fn txn_op(op: Op) -> etcd::TxnOp {
    match op {
        Op::Put { key, value, lease } => {
            let options = lease.map(|l| etcd::PutOptions::new().with_lease(l));
            etcd::TxnOp::put(key, value, options)
        }
        Op::Delete { key } => etcd::TxnOp::delete(key, None),
        Op::DeletePrefix { prefix } => etcd::TxnOp::delete(
            prefix.clone(),
            Some(etcd::DeleteOptions::new().with_range(prefix_end(&prefix))),
        ),
    }
}

/// Rough bytes of a transaction on the wire, to refuse one etcd would.
fn txn_bytes(txn: &Txn) -> usize {
    let op = |o: &Op| match o {
        Op::Put { key, value, .. } => key.len() + value.len() + 16,
        Op::Delete { key } => key.len() + 8,
        Op::DeletePrefix { prefix } => 2 * prefix.len() + 8,
    };
    let cmp = |c: &Compare| match c {
        Compare::Value(k, _, v) => k.len() + v.len() + 16,
        other => other.key().len() + 16,
    };
    txn.compares.iter().map(cmp).sum::<usize>()
        + txn.success.iter().map(op).sum::<usize>()
        + txn.failure.iter().map(op).sum::<usize>()
}

fn key_value(kv: &etcd::KeyValue) -> Result<KeyValue, StoreError> {
    let key = kv
        .key_str()
        .map_err(|_| StoreError::Corrupt("etcd holds a key that is not UTF-8".into()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

/// etcd's error, in the store's words.
fn error(e: etcd::Error, lease: Option<LeaseId>) -> StoreError {
    let status = match e {
        etcd::Error::GRpcStatus(status) => status,
        etcd::Error::LeaseKeepAliveError(msg) if msg.contains("not found") => {
            return StoreError::LeaseNotFound(lease.unwrap_or(0));
        }
        other => return StoreError::Unavailable(format!("etcd: {other}")),
    };
    let msg = status.message();
    if msg.contains("lease not found") {
        return StoreError::LeaseNotFound(lease.unwrap_or(0));
    }
    if msg.contains("database space exceeded") || msg.contains("NOSPACE") {
        return StoreError::Full(format!("etcd: {msg}"));
    }
    if msg.contains("too many operations") || msg.contains("request is too large") {
        return StoreError::InvalidTxn(format!(
            "etcd refused the transaction as too large ({msg}): split it into transactions of \
             at most {MAX_TXN_OPS} operations and {} KiB",
            MAX_REQUEST_BYTES / 1024
        ));
    }
    if msg.contains("duplicate key") {
        return StoreError::InvalidTxn(format!("etcd: {msg}"));
    }
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => {
            StoreError::InvalidArgument(format!("etcd: {msg}"))
        }
        _ => StoreError::Unavailable(format!("etcd: {msg}")),
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(|e| error(e, None))?;
        self.saw(resp.header());
        resp.kvs().first().map(key_value).transpose()
    }

    async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // Strictly after `after`: the next possible key is `after` + NUL.
        let start = match after {
            Some(a) if a >= prefix => format!("{a}\0"),
            _ => prefix.to_string(),
        };
        let start = if start.is_empty() {
            "\0".to_string()
        } else {
            start
        };
        let options = etcd::GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .with_sort(etcd::SortTarget::Key, etcd::SortOrder::Ascend);
        let resp = self
            .client
            .kv_client()
            .get(start, Some(options))
            .await
            .map_err(|e| error(e, None))?;
        let revision = self.saw(resp.header());
        let kvs = resp
            .kvs()
            .iter()
            .map(key_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            kvs,
            more: resp.more(),
            revision,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        txn.validate()?;
        let ops = txn.success.len().max(txn.failure.len());
        if ops > MAX_TXN_OPS {
            return Err(StoreError::InvalidTxn(format!(
                "a branch of {ops} operations is more than etcd takes in one transaction \
                 ({MAX_TXN_OPS}): split it"
            )));
        }
        let bytes = txn_bytes(&txn);
        if bytes > MAX_REQUEST_BYTES {
            return Err(StoreError::InvalidTxn(format!(
                "a transaction of {} KiB is more than etcd takes in one request ({} KiB): \
                 split it, and keep large values out of the store",
                bytes / 1024,
                MAX_REQUEST_BYTES / 1024
            )));
        }
        let leases: Vec<LeaseId> = txn
            .success
            .iter()
            .chain(&txn.failure)
            .filter_map(|op| match op {
                Op::Put { lease, .. } => *lease,
                _ => None,
            })
            .collect();
        let request = etcd::Txn::new()
            .when(txn.compares.into_iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.into_iter().map(txn_op).collect::<Vec<_>>())
            .or_else(txn.failure.into_iter().map(txn_op).collect::<Vec<_>>());
        let resp = self
            .client
            .kv_client()
            .txn(request)
            .await
            .map_err(|e| error(e, leases.first().copied()))?;
        let revision = self.saw(resp.header());
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision,
        })
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        if from_revision < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "cannot watch from revision {from_revision}: use 0 (from now on) or a revision from 1"
            )));
        }
        let key = if prefix.is_empty() { "\0" } else { prefix };
        let mut options = etcd::WatchOptions::new().with_range(prefix_end(prefix));
        if from_revision > 0 {
            options = options.with_start_revision(from_revision);
        }
        let mut watch = self
            .client
            .watch_client()
            .watch(key, Some(options))
            .await
            .map_err(|e| error(e, None))?;
        // etcd answers a watch from a compacted revision with "created" and
        // then "cancelled": find out first, and refuse it here as the
        // embedded backend does.
        let compacted = from_revision > 0 && self.is_compacted(from_revision).await?;
        let mut pending = Vec::new();
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, watch.message()).await;
            let resp = match next {
                Err(_) if compacted => {
                    return Err(StoreError::Compacted {
                        requested: from_revision,
                        compacted: from_revision + 1,
                    });
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(
                        "etcd did not confirm the watch in time".into(),
                    ));
                }
                Ok(next) => next.map_err(|e| error(e, None))?,
            };
            let Some(resp) = resp else {
                return Err(StoreError::Unavailable(
                    "etcd closed the watch as it was created".into(),
                ));
            };
            if resp.canceled() {
                return Err(canceled(&resp, from_revision));
            }
            self.saw(resp.header());
            if !resp.events().is_empty() {
                pending.push(resp);
            }
            if !compacted {
                break;
            }
        }
        let revision = self.revision.clone();
        let state = (watch, pending, revision, from_revision, false);
        let events = stream::unfold(
            state,
            |(mut watch, mut pending, rev, from, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let resp = match pending.pop() {
                        Some(resp) => resp,
                        None => match watch.message().await {
                            Ok(Some(resp)) => resp,
                            Ok(None) => {
                                let e = StoreError::Unavailable("etcd ended the watch".into());
                                return Some((Err(e), (watch, pending, rev, from, true)));
                            }
                            Err(e) => {
                                return Some((
                                    Err(error(e, None)),
                                    (watch, pending, rev, from, true),
                                ));
                            }
                        },
                    };
                    if resp.canceled() {
                        let e = canceled(&resp, from);
                        return Some((Err(e), (watch, pending, rev, from, true)));
                    }
                    let header_rev = resp.header().map_or(0, |h| h.revision());
                    rev.fetch_max(header_rev, Ordering::AcqRel);
                    if resp.events().is_empty() {
                        // Progress notifications carry nothing to deliver.
                        continue;
                    }
                    let batch = events_of(&resp, header_rev);
                    return Some((batch, (watch, pending, rev, from, false)));
                }
            },
        );
        Ok(Box::pin(events))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let secs = ttl.as_secs_f64().ceil() as i64;
        if secs <= 0 {
            return Err(StoreError::InvalidArgument(
                "a lease needs a TTL of at least one second".into(),
            ));
        }
        let resp = self
            .client
            .lease_client()
            .grant(secs, None)
            .await
            .map_err(|e| error(e, None))?;
        self.saw(resp.header());
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        // One renewal: `keep_alive` sends it and reads the answer (refusing
        // a lease that is gone); dropping the pair closes the stream.
        drop(
            self.client
                .lease_client()
                .keep_alive(lease)
                .await
                .map_err(|e| error(e, Some(lease)))?,
        );
        let ttl = self
            .client
            .lease_client()
            .time_to_live(lease, None)
            .await
            .map_err(|e| error(e, Some(lease)))?;
        if ttl.ttl() <= 0 {
            return Err(StoreError::LeaseNotFound(lease));
        }
        Ok(Duration::from_secs(ttl.ttl() as u64))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        let resp = self
            .client
            .lease_client()
            .revoke(lease)
            .await
            .map_err(|e| error(e, Some(lease)))?;
        self.saw(resp.header());
        Ok(())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        if revision < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "cannot compact to revision {revision}: revisions start at 1"
            )));
        }
        if revision == 0 {
            return Ok(());
        }
        match self
            .client
            .kv_client()
            .compact(
                revision,
                Some(etcd::CompactionOptions::new().with_physical()),
            )
            .await
        {
            Ok(resp) => {
                self.saw(resp.header());
                Ok(())
            }
            // At or before the current compaction point: nothing to do, as
            // the trait promises.
            Err(etcd::Error::GRpcStatus(s)) if s.message().contains("compacted") => Ok(()),
            Err(e) => Err(error(e, None)),
        }
    }

    async fn defragment(&self) -> Result<(), StoreError> {
        self.client
            .maintenance_client()
            .defragment()
            .await
            .map_err(|e| error(e, None))?;
        Ok(())
    }

    fn current_revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    fn describe(&self) -> String {
        format!("etcd:{}", self.endpoints.join(","))
    }

    fn limits(&self) -> TxnLimits {
        TxnLimits {
            max_ops: MAX_TXN_OPS,
            // Room for the request's framing and compares.
            max_bytes: MAX_REQUEST_BYTES - 64 * 1024,
        }
    }

    fn shared(&self) -> bool {
        true
    }
}

/// The error of a watch etcd cancelled.
fn canceled(resp: &etcd::WatchResponse, requested: Revision) -> StoreError {
    if resp.compact_revision() > 0 {
        StoreError::Compacted {
            requested,
            compacted: resp.compact_revision(),
        }
    } else {
        StoreError::Unavailable(format!(
            "etcd cancelled the watch: {}",
            resp.cancel_reason()
        ))
    }
}

fn events_of(
    resp: &etcd::WatchResponse,
    header_rev: Revision,
) -> Result<WatchResponse, StoreError> {
    let mut events = Vec::with_capacity(resp.events().len());
    for e in resp.events() {
        let Some(kv) = e.kv() else { continue };
        let kind = match e.event_type() {
            etcd::EventType::Put => EventKind::Put,
            etcd::EventType::Delete => EventKind::Delete,
        };
        let mut kv = key_value(kv)?;
        if kind == EventKind::Delete {
            // The trait's shape of a delete: key and deleting revision only.
            kv.value.clear();
            kv.create_revision = 0;
            kv.version = 0;
            kv.lease = None;
        }
        events.push(Event { kind, kv });
    }
    let last = events.last().map_or(header_rev, |e| e.kv.mod_revision);
    Ok(WatchResponse {
        revision: last,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("a/"), b"a0".to_vec());
        assert_eq!(prefix_end("ab"), b"ac".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn urls() {
        assert_eq!(
            EtcdStore::parse_url("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap(),
            ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            EtcdStore::parse_url("https://e:2379").unwrap(),
            ["https://e:2379"]
        );
        assert!(EtcdStore::parse_url("etcd://").is_err());
    }
}
