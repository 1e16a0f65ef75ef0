//! The write pipeline against a store with etcd-like limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmesos_store::{
    EmbeddedStore, LeaseId, Page, Store, StoreError, TxnLimits, TxnResponse, WatchStream,
};

use super::*;

/// The embedded store, refusing transactions of more than 3 ops (as etcd
/// refuses more than 128) and counting the transactions it is given.
struct Limited {
    inner: Arc<EmbeddedStore>,
    txns: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for Limited {
    async fn get(&self, key: &str) -> Result<Option<wasmesos_store::KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn range(&self, p: &str, a: Option<&str>, l: usize) -> Result<Page, StoreError> {
        self.inner.range(p, a, l).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        if txn.success.len() > 3 {
            return Err(StoreError::InvalidTxn("more than 3 ops".into()));
        }
        self.txns.fetch_add(1, Ordering::Relaxed);
        self.inner.txn(txn).await
    }
    async fn watch(&self, p: &str, r: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(p, r).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.revoke_lease(lease).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }
    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }
    fn describe(&self) -> String {
        "limited".into()
    }
    fn limits(&self) -> TxnLimits {
        TxnLimits {
            max_ops: 3,
            max_bytes: 1 << 20,
        }
    }
}

fn puts(prefix: &str, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| Op::put(format!("{prefix}/{i}"), "v"))
        .collect()
}

#[tokio::test]
async fn batches_stay_within_the_stores_limits_and_big_changes_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Limited {
        inner: EmbeddedStore::open_in(dir.path()).unwrap(),
        txns: AtomicUsize::new(0),
    });
    let committer = Committer::new(store.clone(), None);
    let (events, mut reports) = mpsc::unbounded_channel();
    let mut pipeline = committer.pipeline(events);
    // Two units of two ops cannot share a 3-op transaction; a 7-op unit
    // needs three.
    pipeline.write(puts("a", 2));
    pipeline.write(puts("b", 2));
    let last = pipeline.write(puts("c", 7));
    loop {
        match reports.recv().await.unwrap() {
            Committed::Upto(seq) if seq == last => break,
            Committed::Upto(_) => {}
            Committed::Failed(e) => panic!("commit failed: {e}"),
        }
    }
    assert_eq!(store.txns.load(Ordering::Relaxed), 5);
    for prefix in ["a/", "b/", "c/"] {
        let n = store.range_all(prefix).await.unwrap().len();
        assert_eq!(n, if prefix == "c/" { 7 } else { 2 }, "{prefix}");
    }
}
