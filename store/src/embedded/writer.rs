//! The embedded store's single writer: group commit.
//!
//! Every change (transactions, lease revocations and expiries, compaction)
//! is a [`Request`] on one channel, served by one thread. The thread waits
//! for a request, drains whatever else is queued (up to `max_batch`), and
//! applies the whole batch in ONE redb write transaction with one durable
//! commit. Each transaction's compares are evaluated in queue order against
//! the state including the earlier transactions of the batch, exactly as if
//! they had been committed one by one; only after the commit does any caller
//! hear its answer, and watchers its events. While a commit runs, the next
//! callers queue up, so batches grow with load and the fsync cost is shared.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use redb::{MultimapTable, ReadableMultimapTable, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{decode_kv, encode_events, encode_kv};
use super::lease::Leases;
use super::watch::Committed;
use super::{HISTORY, KV, LEASE_KEYS, META, META_COMPACTED, META_REVISION, Shared, redb_err};
use crate::{Event, EventKind, KeyValue, LeaseId, Op, Revision, StoreError, Txn, TxnResponse};

/// A change for the writer to apply.
pub(crate) enum Work {
    Txn(Txn),
    Revoke(LeaseId),
    Compact(Revision),
}

/// Where the writer sends the outcome of a [`Work`].
pub(crate) enum ReplyTo {
    Txn(oneshot::Sender<Result<TxnResponse, StoreError>>),
    Unit(oneshot::Sender<Result<(), StoreError>>),
}

impl ReplyTo {
    fn send(self, outcome: Result<TxnResponse, StoreError>) {
        // A caller that stopped waiting no longer needs the answer.
        match self {
            ReplyTo::Txn(tx) => drop(tx.send(outcome)),
            ReplyTo::Unit(tx) => drop(tx.send(outcome.map(|_| ()))),
        }
    }
}

pub(crate) enum Request {
    Work(Work, ReplyTo),
    /// A lease was granted: recompute how long to sleep.
    Wake,
}

/// The writer thread's loop; returns when every sender is gone.
pub(crate) fn run(
    shared: Arc<Shared>,
    requests: Receiver<Request>,
    compacted: Revision,
    max_batch: usize,
) {
    let mut state = WriterState {
        revision: shared.revision.load(Ordering::Acquire),
        compacted,
    };
    loop {
        let first = match shared.leases.next_deadline() {
            None => match requests.recv() {
                Ok(request) => Some(request),
                Err(_) => return,
            },
            Some(deadline) => {
                match requests.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        let mut work = Vec::new();
        let mut next = first;
        loop {
            if let Some(Request::Work(w, reply)) = next {
                work.push((w, reply));
            }
            if work.len() >= max_batch {
                break;
            }
            match requests.try_recv() {
                Ok(request) => next = Some(request),
                Err(_) => break,
            }
        }
        let expired = shared.leases.take_expired(Instant::now());
        if work.is_empty() && expired.is_empty() {
            continue;
        }
        commit_batch(&shared, &mut state, work, &expired);
    }
}

struct WriterState {
    revision: Revision,
    compacted: Revision,
}

fn commit_batch(
    shared: &Shared,
    state: &mut WriterState,
    work: Vec<(Work, ReplyTo)>,
    expired: &[LeaseId],
) {
    let txns = work
        .iter()
        .filter(|(w, _)| matches!(w, Work::Txn(_)))
        .count() as u64;
    let now = Instant::now();
    let applied = (|| -> Result<(Vec<Result<TxnResponse, StoreError>>, Applied), StoreError> {
        let wtx = shared.db.begin_write().map_err(redb_err)?;
        let (outcomes, applied) = {
            let mut batch = Batch::open(&wtx, state.revision, state.compacted)?;
            for lease in expired {
                tracing::debug!(lease, "lease expired; deleting its keys");
                batch.revoke(*lease)?;
            }
            let mut outcomes = Vec::with_capacity(work.len());
            for (w, _) in &work {
                outcomes.push(match w {
                    Work::Txn(txn) => batch.txn(txn, &shared.leases, now)?,
                    Work::Revoke(lease) => batch.revoke_live(*lease, &shared.leases)?,
                    Work::Compact(revision) => batch.compact(*revision)?,
                });
            }
            (outcomes, batch.finish()?)
        };
        if applied.changed {
            wtx.commit().map_err(redb_err)?;
        } else {
            // Only reads (failed compares, deletes of missing keys): nothing
            // to make durable, so no fsync.
            wtx.abort().map_err(redb_err)?;
        }
        Ok((outcomes, applied))
    })();
    match applied {
        Ok((outcomes, applied)) => {
            state.revision = applied.revision;
            state.compacted = applied.compacted;
            shared.revision.store(applied.revision, Ordering::Release);
            if applied.changed {
                shared.commits.fetch_add(1, Ordering::Relaxed);
            }
            shared.txns.fetch_add(txns, Ordering::Relaxed);
            if !applied.changes.is_empty() {
                // No receiver (no watcher) is fine.
                let _ = shared.events.send(Arc::new(Committed {
                    entries: applied.changes,
                }));
            }
            for ((_, reply), outcome) in work.into_iter().zip(outcomes) {
                reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = work.len(), "store commit failed");
            for (_, reply) in work {
                reply.send(Err(err.clone()));
            }
        }
    }
}

/// What a batch did, for after its commit.
pub(crate) struct Applied {
    /// Whether anything changed (else the batch needs no commit).
    pub(crate) changed: bool,
    pub(crate) revision: Revision,
    pub(crate) compacted: Revision,
    pub(crate) changes: Vec<(Revision, Vec<Event>)>,
}

/// The tables of one write transaction and the revision bookkeeping of the
/// changes made in it. Also used at open, to delete keys of dead leases.
pub(crate) struct Batch<'t> {
    kv: Table<'t, &'static str, &'static [u8]>,
    history: Table<'t, i64, &'static [u8]>,
    meta: Table<'t, &'static str, i64>,
    lease_keys: MultimapTable<'t, i64, &'static str>,
    revision: Revision,
    compacted: Revision,
    initial_compacted: Revision,
    changes: Vec<(Revision, Vec<Event>)>,
}

/// An outcome for one request, or (outer error) a failure of the whole batch.
type Outcome = Result<Result<TxnResponse, StoreError>, StoreError>;

impl<'t> Batch<'t> {
    pub(crate) fn open(
        wtx: &'t WriteTransaction,
        revision: Revision,
        compacted: Revision,
    ) -> Result<Self, StoreError> {
        Ok(Batch {
            kv: wtx.open_table(KV).map_err(redb_err)?,
            history: wtx.open_table(HISTORY).map_err(redb_err)?,
            meta: wtx.open_table(META).map_err(redb_err)?,
            lease_keys: wtx.open_multimap_table(LEASE_KEYS).map_err(redb_err)?,
            revision,
            compacted,
            initial_compacted: compacted,
            changes: Vec::new(),
        })
    }

    /// Writes the revision bookkeeping if anything changed; the caller
    /// commits (or aborts if nothing changed).
    pub(crate) fn finish(mut self) -> Result<Applied, StoreError> {
        let changed = !self.changes.is_empty() || self.compacted != self.initial_compacted;
        if changed {
            self.meta
                .insert(META_REVISION, self.revision)
                .map_err(redb_err)?;
            self.meta
                .insert(META_COMPACTED, self.compacted)
                .map_err(redb_err)?;
        }
        Ok(Applied {
            changed,
            revision: self.revision,
            compacted: self.compacted,
            changes: self.changes,
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self.kv.get(key).map_err(redb_err)? {
            Some(guard) => Ok(Some(decode_kv(key, guard.value())?)),
            None => Ok(None),
        }
    }

    fn response(&self, succeeded: bool) -> Outcome {
        Ok(Ok(TxnResponse {
            succeeded,
            revision: self.revision,
        }))
    }

    fn txn(&mut self, txn: &Txn, leases: &Leases, now: Instant) -> Outcome {
        let mut succeeded = true;
        for compare in &txn.compares {
            if !compare.holds(self.get(compare.key())?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        // Checked before anything changes, so a refused txn changes nothing.
        for op in ops {
            if let Op::Put {
                lease: Some(lease), ..
            } = op
                && !leases.is_live(*lease, now)
            {
                return Ok(Err(StoreError::LeaseNotFound(*lease)));
            }
        }
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    self.put(key, value, *lease, revision, &mut events)?;
                }
                Op::Delete { key } => self.delete(key, revision, &mut events)?,
                Op::DeletePrefix { prefix } => {
                    for key in self.keys_with_prefix(prefix)? {
                        self.delete(&key, revision, &mut events)?;
                    }
                }
            }
        }
        self.record(revision, events)?;
        self.response(succeeded)
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        lease: Option<LeaseId>,
        revision: Revision,
        events: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let old = self.get(key)?;
        let (create_revision, version, old_lease) = match &old {
            Some(kv) => (kv.create_revision, kv.version + 1, kv.lease),
            None => (revision, 1, None),
        };
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision,
            mod_revision: revision,
            version,
            lease,
        };
        self.kv
            .insert(key, encode_kv(&kv).as_slice())
            .map_err(redb_err)?;
        if old_lease != lease {
            if let Some(old_lease) = old_lease {
                self.lease_keys.remove(old_lease, key).map_err(redb_err)?;
            }
            if let Some(lease) = lease {
                self.lease_keys.insert(lease, key).map_err(redb_err)?;
            }
        }
        events.push(Event {
            kind: EventKind::Put,
            kv,
        });
        Ok(())
    }

    /// Deletes `key` if present; `detach` also drops its lease attachment.
    fn remove_key(&mut self, key: &str, detach: bool) -> Result<Option<KeyValue>, StoreError> {
        let old = match self.kv.remove(key).map_err(redb_err)? {
            Some(guard) => decode_kv(key, guard.value())?,
            None => return Ok(None),
        };
        if detach && let Some(lease) = old.lease {
            self.lease_keys.remove(lease, key).map_err(redb_err)?;
        }
        Ok(Some(old))
    }

    fn delete(
        &mut self,
        key: &str,
        revision: Revision,
        events: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        if self.remove_key(key, true)?.is_some() {
            events.push(delete_event(key, revision));
        }
        Ok(())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for entry in self.kv.range::<&str>(prefix..).map_err(redb_err)? {
            let (key, _) = entry.map_err(redb_err)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }

    /// Ends a lease the caller still believes live: LeaseNotFound if it is not.
    fn revoke_live(&mut self, lease: LeaseId, leases: &Leases) -> Outcome {
        if !leases.remove(lease) {
            return Ok(Err(StoreError::LeaseNotFound(lease)));
        }
        self.revoke(lease)?;
        self.response(true)
    }

    /// Deletes every key attached to `lease` (already taken out of the live
    /// leases), as one revision.
    pub(crate) fn revoke(&mut self, lease: LeaseId) -> Result<(), StoreError> {
        let keys = self
            .lease_keys
            .remove_all(lease)
            .map_err(redb_err)?
            .map(|key| key.map(|key| key.value().to_string()))
            .collect::<Result<Vec<String>, _>>()
            .map_err(redb_err)?;
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for key in keys {
            // The attachment was just removed wholesale; only the key remains.
            match self.get(&key)? {
                Some(kv) if kv.lease == Some(lease) => {
                    self.remove_key(&key, false)?;
                    events.push(delete_event(&key, revision));
                }
                _ => tracing::warn!(lease, key, "lease index named a key not attached to it"),
            }
        }
        self.record(revision, events)
    }

    /// Leases that have keys attached (at open: leases of an earlier process).
    pub(crate) fn attached_leases(&self) -> Result<Vec<LeaseId>, StoreError> {
        let mut leases = Vec::new();
        for entry in self.lease_keys.iter().map_err(redb_err)? {
            let (lease, _) = entry.map_err(redb_err)?;
            leases.push(lease.value());
        }
        Ok(leases)
    }

    fn compact(&mut self, revision: Revision) -> Outcome {
        if revision > self.revision {
            return Ok(Err(StoreError::InvalidArgument(format!(
                "cannot compact to revision {revision}: the store is only at revision {}",
                self.revision
            ))));
        }
        if revision > self.compacted {
            self.history
                .retain_in(..revision, |_, _| false)
                .map_err(redb_err)?;
            self.compacted = revision;
        }
        self.response(true)
    }

    /// Logs `events` as `revision` and makes it current (nothing if empty:
    /// a transaction that changes nothing does not bump the revision).
    fn record(&mut self, revision: Revision, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        debug_assert_eq!(revision, self.revision + 1);
        self.history
            .insert(revision, encode_events(&events).as_slice())
            .map_err(redb_err)?;
        self.revision = revision;
        self.changes.push((revision, events));
        Ok(())
    }
}

fn delete_event(key: &str, revision: Revision) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: None,
        },
    }
}
