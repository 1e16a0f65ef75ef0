//! The etcd backend against a real etcd member: the same model check as the
//! embedded backend, and what is particular to etcd (leases on its clock,
//! compaction, its request limits, a full database, an unreachable
//! cluster).

mod common;

use std::time::Duration;

use common::model::{check, txn};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use wasmesos_store::{Compare, EtcdStore, EventKind, MAX_TXN_OPS, Op, Store, StoreError, Txn};
use wasmesos_testkit::Etcd;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_txns_match_the_model() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    // Cases run one after another on one member, each in its own namespace.
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = proptest::collection::vec(proptest::collection::vec(txn(), 1..6), 1..5);
    let case = std::sync::atomic::AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&strategy, |groups| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ns = format!("case-{n}/");
            tokio::task::block_in_place(|| handle.block_on(check(&store, &ns, groups, false)))
        })
        .unwrap();
}

#[tokio::test]
async fn revisions_pages_and_watches_follow_etcd() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let r1 = store.put("t/a/1", b"x".to_vec()).await.unwrap();
    let r2 = store.put("t/a/2", b"y".to_vec()).await.unwrap();
    store.put("t/ab", b"z".to_vec()).await.unwrap();
    assert_eq!(r2, r1 + 1);
    assert_eq!(store.current_revision(), r2 + 1);

    let kv = store.get("t/a/1").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r1, 1)
    );
    store.put("t/a/1", b"x2".to_vec()).await.unwrap();
    assert_eq!(store.get("t/a/1").await.unwrap().unwrap().version, 2);

    // A prefix ending in '/' does not match its siblings; pages go on after
    // the last key.
    let page = store.range("t/a/", None, 1).await.unwrap();
    assert_eq!(page.kvs.len(), 1);
    assert!(page.more);
    let next = store.range("t/a/", Some("t/a/1"), 10).await.unwrap();
    let keys: Vec<_> = next.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["t/a/2"]);
    assert!(!next.more);
    assert_eq!(store.range_all("t/").await.unwrap().len(), 3);

    // A watch replays from a revision, then follows.
    let mut watch = store.watch("t/a/", r1).await.unwrap();
    store.delete("t/a/2").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let batch = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(batch.events.into_iter().map(|e| (e.kind, e.kv.key)));
    }
    assert_eq!(
        seen,
        [
            (EventKind::Put, "t/a/1".to_string()),
            (EventKind::Put, "t/a/2".to_string()),
            (EventKind::Put, "t/a/1".to_string()),
            (EventKind::Delete, "t/a/2".to_string()),
        ]
    );

    // Delete-prefix removes a subtree in one revision.
    let before = store.current_revision();
    let after = store
        .txn(Txn::new().then(Op::delete_prefix("t/")))
        .await
        .unwrap()
        .revision;
    assert_eq!(after, before + 1);
    assert!(store.range_all("t/").await.unwrap().is_empty());
    assert!(store.describe().starts_with("etcd:http://127.0.0.1:"));
}

#[tokio::test]
async fn compaction_refuses_watches_from_before_it() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let first = store.put("k", b"1".to_vec()).await.unwrap();
    let last = store.put("k", b"2".to_vec()).await.unwrap();
    store.compact(last).await.unwrap();
    // Compacting again to the same point is not an error.
    store.compact(first).await.unwrap();
    match store.watch("k", first).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, first);
            assert_eq!(compacted, last);
        }
        Err(other) => panic!("expected Compacted, got {other}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    assert!(store.watch("k", last).await.is_ok());
    // Compacted space goes back to the system.
    store.defragment().await.unwrap();
    assert_eq!(store.get_value("k").await.unwrap().unwrap(), b"2");
}

#[tokio::test]
async fn leases_expire_on_etcds_clock_and_keep_alive_holds_them() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let held = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let lapsing = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    store
        .put_with_lease("leader", b"me".to_vec(), held)
        .await
        .unwrap();
    store
        .put_with_lease("ephemeral", b"x".to_vec(), lapsing)
        .await
        .unwrap();
    assert_eq!(
        store.get("leader").await.unwrap().unwrap().lease,
        Some(held)
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.get("ephemeral").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lapsed lease's key is still there"
        );
        let ttl = store.keep_alive(held).await.unwrap();
        assert!(ttl > Duration::ZERO && ttl <= Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(store.get("leader").await.unwrap().is_some(), "kept alive");
    assert!(matches!(
        store.keep_alive(lapsing).await,
        Err(StoreError::LeaseNotFound(id)) if id == lapsing
    ));
    store.revoke_lease(held).await.unwrap();
    assert!(store.get("leader").await.unwrap().is_none());
    // A put on a lease that is gone fails as a whole.
    let put = store.put_with_lease("again", b"x".to_vec(), held).await;
    assert!(matches!(put, Err(StoreError::LeaseNotFound(_))), "{put:?}");
    assert!(store.get("again").await.unwrap().is_none());
}

#[tokio::test]
async fn fencing_compares_on_the_leader_keys_create_revision() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let created = store.put("leader", b"a".to_vec()).await.unwrap();
    let fenced = |value: &'static str, revision| {
        Txn::new()
            .when(Compare::create_revision("leader", revision))
            .then(Op::put("state", value))
    };
    assert!(store.txn(fenced("a", created)).await.unwrap().succeeded);
    // Another leader re-creates the key: the old leader's writes now fail.
    store.delete("leader").await.unwrap();
    store.put("leader", b"b".to_vec()).await.unwrap();
    assert!(!store.txn(fenced("stale", created)).await.unwrap().succeeded);
    assert_eq!(store.get_value("state").await.unwrap().unwrap(), b"a");
}

#[tokio::test]
async fn requests_beyond_etcds_limits_are_refused_with_the_fix() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let too_many: Vec<Op> = (0..=MAX_TXN_OPS)
        .map(|i| Op::put(format!("k/{i}"), "v"))
        .collect();
    let err = store.txn(Txn::new().then(too_many)).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidTxn(_)), "{err}");
    assert!(err.to_string().contains("split"), "{err}");
    let huge = Op::put("blob", vec![0u8; 2 << 20]);
    let err = store.txn(Txn::new().then(huge)).await.unwrap_err();
    assert!(err.to_string().contains("keep large values out"), "{err}");
    // The same checks as the embedded backend, with the same words.
    let twice = Txn::new().then([Op::put("a", "1"), Op::put("a", "2")]);
    let err = store.txn(twice).await.unwrap_err();
    assert!(err.to_string().contains("puts key \"a\" twice"), "{err}");
    assert!(
        store.range_all("").await.unwrap().is_empty(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_full_database_is_reported_as_full() {
    // A tiny quota: etcd raises its NOSPACE alarm after a few MiB.
    let etcd = Etcd::start_with(&["--quota-backend-bytes", "4194304"]);
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    let value = vec![7u8; 512 << 10];
    let mut error = None;
    for i in 0..200 {
        match store.put(&format!("fill/{i}"), value.clone()).await {
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("etcd should have run out of its 4 MiB quota");
    assert!(matches!(error, StoreError::Full(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("store is full") && text.contains("defrag"),
        "{text}"
    );
    // Reads still work.
    assert!(store.get("fill/0").await.unwrap().is_some());
}

#[tokio::test]
async fn an_unreachable_etcd_is_named_in_the_error() {
    let endpoint = "http://127.0.0.1:1".to_string();
    let err = match EtcdStore::connect(std::slice::from_ref(&endpoint)).await {
        Err(e) => e,
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.to_string().contains("is etcd running"), "{err}");
}
