//! Store housekeeping the leader runs on a schedule: compaction of the
//! store's history (every write adds a revision, and etcd keeps every old
//! version until compacted; the embedded store keeps a watch log), and, on
//! etcd, defragmentation so that compacted space is given back (etcd's
//! database file never shrinks by itself, and a full one raises its NOSPACE
//! alarm).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmesos_store::Store;

/// How often, and how much history to keep.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Between compactions.
    pub every: Duration,
    /// Revisions of history kept behind the current one (for watchers
    /// that are a little behind).
    pub keep_revisions: i64,
    /// Defragment after this many compactions (on stores that need it).
    pub defragment_every: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(600),
            keep_revisions: 10_000,
            defragment_every: 6,
        }
    }
}

/// Runs until `shutdown`. Failures are logged and retried next time: a
/// missed compaction only means more history kept.
pub async fn run(store: Arc<dyn Store>, schedule: Schedule, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(schedule.every);
    tick.tick().await; // the first tick is immediate; start one period in
    let mut compactions = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let target = store.current_revision() - schedule.keep_revisions;
        if target <= 0 {
            continue;
        }
        match store.compact(target).await {
            Ok(()) => {
                compactions += 1;
                tracing::debug!(revision = target, "store history compacted");
            }
            Err(e) => {
                tracing::warn!("cannot compact the store's history: {e}");
                continue;
            }
        }
        if compactions.is_multiple_of(schedule.defragment_every.max(1)) {
            match store.defragment().await {
                Ok(()) => tracing::info!(store = %store.describe(), "store defragmented"),
                Err(e) => tracing::warn!("cannot defragment the store: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesos_store::{EmbeddedStore, StoreError};

    #[tokio::test]
    async fn history_is_compacted_on_schedule_keeping_the_recent_part() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = EmbeddedStore::open_in(dir.path()).unwrap();
        for i in 0..10 {
            store.put("k", vec![i]).await.unwrap();
        }
        let (stop, stopped) = watch::channel(false);
        let schedule = Schedule {
            every: Duration::from_millis(20),
            keep_revisions: 3,
            defragment_every: 1,
        };
        let task = tokio::spawn(run(store.clone(), schedule, stopped));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match store.watch("k", 1).await {
                Err(StoreError::Compacted { compacted, .. }) => {
                    assert_eq!(compacted, 7, "three revisions of history kept");
                    break;
                }
                _ => assert!(tokio::time::Instant::now() < deadline, "never compacted"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(store.watch("k", 7).await.is_ok());
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
