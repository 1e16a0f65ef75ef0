//! Watches of the embedded store.
//!
//! A watch first replays history from the log table (in chunks, on the
//! blocking pool), then follows live commits through a broadcast channel it
//! subscribed to before reading anything, so no revision falls between the
//! two. A watcher that lags behind the channel, or sees a gap, goes back to
//! replaying from the log: events are never dropped, only delayed. If
//! compaction has removed the revisions it still needs, the stream yields
//! [`StoreError::Compacted`] and ends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use redb::ReadableDatabase;
use tokio::sync::broadcast::{self, error::RecvError};

use super::codec::decode_events;
use super::{HISTORY, META, META_COMPACTED, META_REVISION, Shared, redb_err};
use crate::{Event, Revision, StoreError, WatchResponse, WatchStream};

/// Revisions read from the log per replay step.
const REPLAY_ROWS: usize = 512;

/// The changes of one commit, broadcast to live watchers after it.
pub(crate) struct Committed {
    /// Consecutive revisions, ascending, each with its events.
    pub(crate) entries: Vec<(Revision, Vec<Event>)>,
}

impl Committed {
    fn bounds(&self) -> Option<(Revision, Revision)> {
        Some((self.entries.first()?.0, self.entries.last()?.0))
    }
}

enum Mode {
    Replay,
    Live,
}

struct Watcher {
    shared: Weak<Shared>,
    prefix: String,
    /// The next revision this watcher has to deliver.
    next: Revision,
    live: broadcast::Receiver<Arc<Committed>>,
    mode: Mode,
    done: bool,
}

/// Starts a watch of `prefix` from `from` (0: from the next revision on).
pub(crate) fn watch(
    shared: &Arc<Shared>,
    prefix: &str,
    from: Revision,
) -> Result<WatchStream, StoreError> {
    if from < 0 {
        return Err(StoreError::InvalidArgument(format!(
            "cannot watch from revision {from}: use 0 (from now on) or a revision from 1"
        )));
    }
    // Subscribe first: every commit after this point reaches the receiver.
    let live = shared.events.subscribe();
    let (next, mode) = if from == 0 {
        (shared.revision.load(Ordering::Acquire) + 1, Mode::Live)
    } else {
        let (_, compacted) = read_bounds(shared)?;
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted,
            });
        }
        (from, Mode::Replay)
    };
    let watcher = Watcher {
        shared: Arc::downgrade(shared),
        prefix: prefix.to_string(),
        next,
        live,
        mode,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(watcher, Watcher::step)))
}

impl Watcher {
    async fn step(mut self) -> Option<(Result<WatchResponse, StoreError>, Self)> {
        while !self.done {
            let events = match self.mode {
                Mode::Replay => self.replay().await,
                Mode::Live => self.follow().await,
            };
            match events {
                Err(err) => {
                    self.done = true;
                    return Some((Err(err), self));
                }
                Ok(events) if events.is_empty() => continue,
                Ok(events) => {
                    let response = WatchResponse {
                        revision: self.next - 1,
                        events,
                    };
                    return Some((Ok(response), self));
                }
            }
        }
        None
    }

    /// Reads the next chunk of history; switches to live once caught up.
    async fn replay(&mut self) -> Result<Vec<Event>, StoreError> {
        let shared = self.shared.upgrade().ok_or(StoreError::Closed)?;
        let (from, prefix) = (self.next, self.prefix.clone());
        let chunk = tokio::task::spawn_blocking(move || read_history(&shared, from, &prefix))
            .await
            .map_err(|err| {
                StoreError::Unavailable(format!("reading watch history failed: {err}"))
            })??;
        if chunk.complete {
            self.next = self.next.max(chunk.snapshot + 1);
            self.mode = Mode::Live;
        } else if let Some(last) = chunk.last_read {
            self.next = last + 1;
        }
        Ok(chunk.events)
    }

    /// Waits for the next commit and takes the revisions not yet delivered.
    async fn follow(&mut self) -> Result<Vec<Event>, StoreError> {
        let committed = match self.live.recv().await {
            Ok(committed) => committed,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    next = self.next,
                    "watcher lagged; replaying from the log"
                );
                self.mode = Mode::Replay;
                return Ok(Vec::new());
            }
            Err(RecvError::Closed) => return Err(StoreError::Closed),
        };
        let Some((first, last)) = committed.bounds() else {
            return Ok(Vec::new());
        };
        if last < self.next {
            return Ok(Vec::new());
        }
        if first > self.next {
            // Cannot happen when subscribed before reading, but stay exact.
            self.mode = Mode::Replay;
            return Ok(Vec::new());
        }
        let events = committed
            .entries
            .iter()
            .filter(|(revision, _)| *revision >= self.next)
            .flat_map(|(_, events)| events.iter())
            .filter(|event| event.kv.key.starts_with(&self.prefix))
            .cloned()
            .collect();
        self.next = last + 1;
        Ok(events)
    }
}

struct Chunk {
    /// Matching events of the revisions read.
    events: Vec<Event>,
    /// The last revision read, if any.
    last_read: Option<Revision>,
    /// Whether the log was read to its end (`snapshot`).
    complete: bool,
    /// The store revision of the read snapshot.
    snapshot: Revision,
}

/// The current and the compacted revision, as committed.
pub(crate) fn read_bounds(shared: &Shared) -> Result<(Revision, Revision), StoreError> {
    let rtx = shared.db.begin_read().map_err(redb_err)?;
    let meta = rtx.open_table(META).map_err(redb_err)?;
    let get = |name| -> Result<Revision, StoreError> {
        Ok(meta
            .get(name)
            .map_err(redb_err)?
            .map_or(0, |guard| guard.value()))
    };
    Ok((get(META_REVISION)?, get(META_COMPACTED)?))
}

fn read_history(shared: &Shared, from: Revision, prefix: &str) -> Result<Chunk, StoreError> {
    let rtx = shared.db.begin_read().map_err(redb_err)?;
    let meta = rtx.open_table(META).map_err(redb_err)?;
    let get = |name| -> Result<Revision, StoreError> {
        Ok(meta
            .get(name)
            .map_err(redb_err)?
            .map_or(0, |guard| guard.value()))
    };
    let (snapshot, compacted) = (get(META_REVISION)?, get(META_COMPACTED)?);
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let history = rtx.open_table(HISTORY).map_err(redb_err)?;
    let mut chunk = Chunk {
        events: Vec::new(),
        last_read: None,
        complete: true,
        snapshot,
    };
    for (rows, entry) in history.range(from..).map_err(redb_err)?.enumerate() {
        if rows == REPLAY_ROWS {
            chunk.complete = false;
            break;
        }
        let (revision, events) = entry.map_err(redb_err)?;
        chunk.last_read = Some(revision.value());
        let events = decode_events(events.value())?;
        chunk.events.extend(
            events
                .into_iter()
                .filter(|event| event.kv.key.starts_with(prefix)),
        );
    }
    Ok(chunk)
}
