//! Behaviour of the embedded store through the public `Store` trait.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use wasmesos_store::{
    CmpOp, Compare, EmbeddedOptions, EmbeddedStore, Event, EventKind, Op, Store, StoreError, Txn,
    WatchStream,
};

/// Generous bound for anything that should happen promptly; never asserted as speed.
const PATIENCE: Duration = Duration::from_secs(10);

fn open(dir: &tempfile::TempDir) -> Arc<EmbeddedStore> {
    EmbeddedStore::open_in(dir.path()).expect("open store")
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

async fn next_events(watch: &mut WatchStream) -> Vec<Event> {
    tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("a watch response in time")
        .expect("stream still open")
        .expect("no watch error")
        .events
}

/// Collects events until `n` have arrived.
async fn collect_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut all = Vec::new();
    while all.len() < n {
        all.extend(next_events(watch).await);
    }
    assert_eq!(all.len(), n, "no more events than expected");
    all
}

fn summary(events: &[Event]) -> Vec<(EventKind, String, i64)> {
    events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect()
}

async fn cmp(store: &EmbeddedStore, compare: Compare) -> bool {
    store.txn(Txn::new().when(compare)).await.unwrap().succeeded
}

#[tokio::test]
async fn compares_follow_etcd_semantics() {
    let dir = temp();
    let store = open(&dir);
    store.put("k", b"m".to_vec()).await.unwrap(); // rev 1
    store.put("other", b"x".to_vec()).await.unwrap(); // rev 2
    store.put("k", b"n".to_vec()).await.unwrap(); // rev 3: k version 2, created 1

    use CmpOp::*;
    let k = || "k".to_string();
    for (compare, expected) in [
        (Compare::Version(k(), Equal, 2), true),
        (Compare::Version(k(), NotEqual, 2), false),
        (Compare::Version(k(), Less, 3), true),
        (Compare::Version(k(), Greater, 1), true),
        (Compare::Version(k(), Greater, 2), false),
        (Compare::CreateRevision(k(), Equal, 1), true),
        (Compare::CreateRevision(k(), Less, 1), false),
        (Compare::CreateRevision(k(), Greater, 0), true),
        (Compare::ModRevision(k(), Equal, 3), true),
        (Compare::ModRevision(k(), NotEqual, 3), false),
        (Compare::ModRevision(k(), Less, 3), false),
        (Compare::ModRevision(k(), Greater, 2), true),
        (Compare::Value(k(), Equal, b"n".to_vec()), true),
        (Compare::Value(k(), NotEqual, b"n".to_vec()), false),
        (Compare::Value(k(), Less, b"o".to_vec()), true),
        (Compare::Value(k(), Greater, b"m".to_vec()), true),
        (Compare::Value(k(), Greater, b"nn".to_vec()), false),
    ] {
        assert_eq!(cmp(&store, compare.clone()).await, expected, "{compare:?}");
    }

    // A missing key has version, create and mod revision 0; value compares are false.
    let m = || "missing".to_string();
    for (compare, expected) in [
        (Compare::Version(m(), Equal, 0), true),
        (Compare::Version(m(), Less, 1), true),
        (Compare::CreateRevision(m(), Equal, 0), true),
        (Compare::ModRevision(m(), Equal, 0), true),
        (Compare::ModRevision(m(), Greater, 0), false),
        (Compare::Value(m(), Equal, vec![]), false),
        (Compare::Value(m(), NotEqual, b"x".to_vec()), false),
        (Compare::Value(m(), Less, b"x".to_vec()), false),
        (Compare::Value(m(), Greater, vec![]), false),
        (Compare::missing("missing"), true),
        (Compare::exists("missing"), false),
        (Compare::exists("k"), true),
    ] {
        assert_eq!(cmp(&store, compare.clone()).await, expected, "{compare:?}");
    }

    // All compares must hold.
    let both = Txn::new().when([Compare::exists("k"), Compare::missing("k")]);
    assert!(!store.txn(both).await.unwrap().succeeded);
    // Compares alone change nothing.
    assert_eq!(store.current_revision(), 3);
}

#[tokio::test]
async fn failed_compare_runs_the_else_branch() {
    let dir = temp();
    let store = open(&dir);
    let txn = Txn::new()
        .when(Compare::value("leader", "me"))
        .then(Op::put("won", "yes"))
        .otherwise([Op::put("lost", "yes"), Op::put("leader", "other")]);
    let response = store.txn(txn.clone()).await.unwrap();
    assert!(!response.succeeded);
    assert_eq!(response.revision, 1);
    assert_eq!(
        store.get_value("lost").await.unwrap(),
        Some(b"yes".to_vec())
    );
    assert_eq!(store.get_value("won").await.unwrap(), None);

    store.put("leader", b"me".to_vec()).await.unwrap();
    let response = store.txn(txn).await.unwrap();
    assert!(response.succeeded);
    assert_eq!(response.revision, 3);
    assert_eq!(store.get_value("won").await.unwrap(), Some(b"yes".to_vec()));
}

#[tokio::test]
async fn revisions_and_versions_follow_etcd() {
    let dir = temp();
    let store = open(&dir);
    assert_eq!(store.current_revision(), 0);

    assert_eq!(store.put("a", b"1".to_vec()).await.unwrap(), 1);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version, a.lease),
        (1, 1, 1, None)
    );

    assert_eq!(store.put("a", b"2".to_vec()).await.unwrap(), 2);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 2, 2));
    assert_eq!(a.value, b"2");

    // Several ops in one txn share one revision.
    let response = store
        .txn(Txn::new().then([Op::put("b", "1"), Op::put("c", "1"), Op::delete("a")]))
        .await
        .unwrap();
    assert_eq!(response.revision, 3);
    for key in ["b", "c"] {
        let kv = store.get(key).await.unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (3, 3, 1));
    }
    assert_eq!(store.get("a").await.unwrap(), None);

    // A recreated key starts over at version 1 with a new create revision.
    assert_eq!(store.put("a", b"3".to_vec()).await.unwrap(), 4);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (4, 4, 1));

    // A txn that changes nothing does not bump the revision.
    assert_eq!(store.delete("never-was").await.unwrap(), 4);
    assert_eq!(store.txn(Txn::new()).await.unwrap().revision, 4);
    let failed = store
        .txn(
            Txn::new()
                .when(Compare::missing("a"))
                .then(Op::put("x", "1")),
        )
        .await;
    assert_eq!(failed.unwrap().revision, 4);
    assert_eq!(store.current_revision(), 4);

    // Putting the same value again is still a change.
    assert_eq!(store.put("a", b"3".to_vec()).await.unwrap(), 5);
    assert_eq!(store.get("a").await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn range_pages_with_after_limit_and_more() {
    let dir = temp();
    let store = open(&dir);
    for i in 0..7 {
        store.put(&format!("t/a/tasks/{i}"), vec![i]).await.unwrap();
    }
    store.put("t/a/tasksX", b"sibling".to_vec()).await.unwrap();
    store.put("t/a/u", b"after".to_vec()).await.unwrap();
    store.put("t/", b"before".to_vec()).await.unwrap();

    let page = store.range("t/a/tasks/", None, 3).await.unwrap();
    let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["t/a/tasks/0", "t/a/tasks/1", "t/a/tasks/2"]);
    assert!(page.more);
    assert_eq!(page.revision, store.current_revision());

    let page = store
        .range("t/a/tasks/", Some("t/a/tasks/2"), 3)
        .await
        .unwrap();
    let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["t/a/tasks/3", "t/a/tasks/4", "t/a/tasks/5"]);
    assert!(page.more);

    let page = store
        .range("t/a/tasks/", Some("t/a/tasks/5"), 3)
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 1);
    assert!(!page.more, "exactly at the end is not more");

    // Exactly `limit` remaining: no more.
    let page = store
        .range("t/a/tasks/", Some("t/a/tasks/3"), 3)
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 3);
    assert!(!page.more);

    // 0 = no limit; an `after` before the prefix starts at the prefix.
    let page = store.range("t/a/tasks/", Some("a"), 0).await.unwrap();
    assert_eq!(page.kvs.len(), 7);
    assert!(!page.more);
    // An `after` past the prefix yields nothing.
    assert!(
        store
            .range("t/a/tasks/", Some("z"), 0)
            .await
            .unwrap()
            .kvs
            .is_empty()
    );

    // The empty prefix is everything.
    assert_eq!(store.range("", None, 0).await.unwrap().kvs.len(), 10);
    assert_eq!(store.range_all("t/a/").await.unwrap().len(), 9);
    assert_eq!(
        store.range_all("t/a/tasks/").await.unwrap()[6].value,
        vec![6]
    );
}

#[tokio::test]
async fn range_all_pages_past_one_page() {
    let dir = temp();
    let store = open(&dir);
    let ops: Vec<Op> = (0..2500)
        .map(|i| Op::put(format!("p/{i:05}"), vec![1]))
        .collect();
    store.txn(Txn::new().then(ops)).await.unwrap();
    let all = store.range_all("p/").await.unwrap();
    assert_eq!(all.len(), 2500);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
}

#[tokio::test]
async fn prefixes_are_isolated() {
    let dir = temp();
    let store = open(&dir);
    let mut watch_a = store.watch("t/a/", 0).await.unwrap();
    store.put("t/a/x", b"1".to_vec()).await.unwrap();
    store.put("t/ab/x", b"2".to_vec()).await.unwrap();
    store.put("t/b/x", b"3".to_vec()).await.unwrap();

    let keys: Vec<_> = store
        .range("t/a/", None, 0)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["t/a/x"]);

    store
        .txn(Txn::new().then(Op::delete_prefix("t/a/")))
        .await
        .unwrap();
    assert_eq!(
        store.get_value("t/ab/x").await.unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(store.get_value("t/b/x").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get("t/a/x").await.unwrap(), None);

    let events = collect_events(&mut watch_a, 2).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "t/a/x".into(), 1),
            (EventKind::Delete, "t/a/x".into(), 4)
        ]
    );
}

#[tokio::test]
async fn delete_prefix_deletes_a_subtree_in_one_revision() {
    let dir = temp();
    let store = open(&dir);
    for key in ["j/1/a", "j/1/b", "j/1/c", "j/2/a"] {
        store.put(key, b"v".to_vec()).await.unwrap();
    }
    let mut watch = store.watch("j/", 0).await.unwrap();
    let response = store
        .txn(Txn::new().then(Op::delete_prefix("j/1/")))
        .await
        .unwrap();
    assert_eq!(response.revision, 5);
    let events = collect_events(&mut watch, 3).await;
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 5)
    );
    assert!(
        events
            .iter()
            .all(|e| e.kv.value.is_empty() && e.kv.version == 0)
    );
    assert_eq!(store.range_all("j/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_txns_are_refused_and_change_nothing() {
    let dir = temp();
    let store = open(&dir);
    for txn in [
        Txn::new().then([Op::put("a", "1"), Op::put("a", "2")]),
        Txn::new().then([Op::put("a", "1"), Op::delete("a")]),
        Txn::new().then([Op::delete_prefix("a/"), Op::put("a/b", "1")]),
        Txn::new().otherwise([Op::put("x", "1"), Op::put("x", "1")]),
        Txn::new().then(Op::put("", "1")),
        Txn::new().when(Compare::missing("")),
    ] {
        let err = store.txn(txn.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidTxn(_)), "{txn:?}: {err}");
    }
    // Overlapping deletes are fine, as in etcd.
    store
        .txn(Txn::new().then([Op::delete("a/b"), Op::delete_prefix("a/")]))
        .await
        .unwrap();
    assert_eq!(store.current_revision(), 0);
}

#[tokio::test]
async fn watch_replays_history_then_follows_live() {
    let dir = temp();
    let store = open(&dir);
    store.put("w/a", b"1".to_vec()).await.unwrap(); // 1
    store.put("x/other", b"1".to_vec()).await.unwrap(); // 2
    store.put("w/b", b"1".to_vec()).await.unwrap(); // 3
    store.delete("w/a").await.unwrap(); // 4

    let mut watch = store.watch("w/", 2).await.unwrap();
    let replayed = collect_events(&mut watch, 2).await;
    assert_eq!(
        summary(&replayed),
        [
            (EventKind::Put, "w/b".into(), 3),
            (EventKind::Delete, "w/a".into(), 4)
        ]
    );
    let put = &replayed[0].kv;
    assert_eq!(
        (put.value.as_slice(), put.version, put.create_revision),
        (&b"1"[..], 1, 3)
    );

    store.put("w/c", b"2".to_vec()).await.unwrap(); // 5
    store.put("x/other", b"2".to_vec()).await.unwrap(); // 6
    store.put("w/b", b"2".to_vec()).await.unwrap(); // 7
    let live = collect_events(&mut watch, 2).await;
    assert_eq!(
        summary(&live),
        [
            (EventKind::Put, "w/c".into(), 5),
            (EventKind::Put, "w/b".into(), 7)
        ]
    );
    assert_eq!(live[1].kv.version, 2);

    // Watching from 1 replays everything under the prefix.
    let mut from_start = store.watch("w/", 1).await.unwrap();
    let all = collect_events(&mut from_start, 5).await;
    let revisions: Vec<_> = all.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [1, 3, 4, 5, 7]);
}

#[tokio::test]
async fn watch_from_now_sees_only_new_events() {
    let dir = temp();
    let store = open(&dir);
    store.put("w/old", b"1".to_vec()).await.unwrap();
    let mut watch = store.watch("w/", 0).await.unwrap();
    store.put("w/new", b"1".to_vec()).await.unwrap();
    let events = next_events(&mut watch).await;
    assert_eq!(summary(&events), [(EventKind::Put, "w/new".into(), 2)]);
}

#[tokio::test]
async fn watch_from_a_future_revision_waits_for_it() {
    let dir = temp();
    let store = open(&dir);
    let mut watch = store.watch("", 3).await.unwrap();
    for i in 0..4 {
        store.put(&format!("k{i}"), vec![]).await.unwrap();
    }
    let events = collect_events(&mut watch, 2).await;
    let revisions: Vec<_> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [3, 4]);
}

#[tokio::test]
async fn watch_responses_carry_the_revision_to_resume_from() {
    let dir = temp();
    let store = open(&dir);
    let mut watch = store.watch("r/", 0).await.unwrap();
    store.put("r/a", b"1".to_vec()).await.unwrap();
    let response = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.revision, 1);
    store.put("r/b", b"1".to_vec()).await.unwrap();
    let mut resumed = store.watch("r/", response.revision + 1).await.unwrap();
    assert_eq!(
        summary(&next_events(&mut resumed).await),
        [(EventKind::Put, "r/b".into(), 2)]
    );
}

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_the_log() {
    let dir = temp();
    let options = EmbeddedOptions {
        watch_buffer: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("s.redb"), options).unwrap();
    let mut watch = store.watch("l/", 0).await.unwrap();
    for i in 0..40u8 {
        store.put(&format!("l/{i:02}"), vec![i]).await.unwrap();
    }
    let events = collect_events(&mut watch, 40).await;
    let revisions: Vec<_> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn compaction_forgets_history() {
    let dir = temp();
    let store = open(&dir);
    for i in 0..5 {
        store.put("c/k", vec![i]).await.unwrap();
    }
    store.compact(3).await.unwrap();

    let err = store.watch("c/", 2).await.err().expect("compacted");
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 2,
                compacted: 3
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("compacted"));

    // From the compaction point on, history is still there.
    let mut watch = store.watch("c/", 3).await.unwrap();
    let revisions: Vec<_> = collect_events(&mut watch, 3)
        .await
        .iter()
        .map(|e| e.kv.mod_revision)
        .collect();
    assert_eq!(revisions, [3, 4, 5]);

    // Compacting backwards does nothing; compacting the future is refused.
    store.compact(1).await.unwrap();
    assert!(matches!(
        store.watch("c/", 1).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.compact(99).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.compact(-1).await,
        Err(StoreError::InvalidArgument(_))
    ));
    // The current state is untouched.
    assert_eq!(store.get("c/k").await.unwrap().unwrap().version, 5);
}

#[tokio::test]
async fn lease_expiry_deletes_keys_and_emits_delete_events() {
    let dir = temp();
    let store = open(&dir);
    let mut watch = store.watch("m/", 0).await.unwrap();
    let lease = store.grant_lease(Duration::from_millis(150)).await.unwrap();
    store
        .txn(Txn::new().then([
            Op::put_with_lease("m/leader", "me", lease),
            Op::put("m/plain", "x"),
        ]))
        .await
        .unwrap();
    assert_eq!(
        store.get("m/leader").await.unwrap().unwrap().lease,
        Some(lease)
    );

    let events = collect_events(&mut watch, 3).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "m/leader".into(), 1),
            (EventKind::Put, "m/plain".into(), 1),
            (EventKind::Delete, "m/leader".into(), 2),
        ]
    );
    assert_eq!(store.get("m/leader").await.unwrap(), None);
    assert!(store.get("m/plain").await.unwrap().is_some());
    assert!(
        matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(id)) if id == lease)
    );
    let late = store.put_with_lease("m/late", b"x".to_vec(), lease).await;
    assert!(matches!(late, Err(StoreError::LeaseNotFound(_))));
}

#[tokio::test]
async fn keep_alive_holds_a_lease() {
    let dir = temp();
    let store = open(&dir);
    let ttl = Duration::from_millis(800);
    let lease = store.grant_lease(ttl).await.unwrap();
    store
        .put_with_lease("k", b"v".to_vec(), lease)
        .await
        .unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.keep_alive(lease).await.unwrap(), ttl);
    }
    // Past the TTL since the grant, kept alive all along.
    assert!(store.get("k").await.unwrap().is_some());
    store.revoke_lease(lease).await.unwrap();
    assert!(store.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn revoke_deletes_only_keys_still_attached() {
    let dir = temp();
    let store = open(&dir);
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let other = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .put_with_lease("a", b"1".to_vec(), lease)
        .await
        .unwrap(); // 1
    store
        .put_with_lease("b", b"1".to_vec(), lease)
        .await
        .unwrap(); // 2
    store
        .put_with_lease("c", b"1".to_vec(), lease)
        .await
        .unwrap(); // 3
    store.put("b", b"2".to_vec()).await.unwrap(); // 4: detached
    store
        .put_with_lease("c", b"2".to_vec(), other)
        .await
        .unwrap(); // 5: moved
    let mut watch = store.watch("", 0).await.unwrap();

    store.revoke_lease(lease).await.unwrap();
    assert_eq!(store.current_revision(), 6);
    assert_eq!(
        summary(&next_events(&mut watch).await),
        [(EventKind::Delete, "a".into(), 6)]
    );
    assert!(store.get("b").await.unwrap().is_some());
    assert_eq!(store.get("c").await.unwrap().unwrap().lease, Some(other));

    assert!(matches!(
        store.revoke_lease(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.revoke_lease(12345).await,
        Err(StoreError::LeaseNotFound(12345))
    ));

    // A txn naming an unknown lease fails whole and changes nothing.
    let txn = Txn::new().then([Op::put("z", "1"), Op::put_with_lease("y", "1", 777)]);
    assert!(matches!(
        store.txn(txn).await,
        Err(StoreError::LeaseNotFound(777))
    ));
    assert!(store.get("z").await.unwrap().is_none());
    assert_eq!(store.current_revision(), 6);

    // Revoking a lease without keys changes no revision.
    let empty = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store.revoke_lease(empty).await.unwrap();
    assert_eq!(store.current_revision(), 6);
    assert!(matches!(
        store.grant_lease(Duration::ZERO).await,
        Err(StoreError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = temp();
    {
        let store = open(&dir);
        store.put("a", b"1".to_vec()).await.unwrap();
        store.put("a", b"2".to_vec()).await.unwrap();
        store.put("b", b"1".to_vec()).await.unwrap();
        store.delete("b").await.unwrap();
        store.compact(2).await.unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.current_revision(), 4);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.version,
            a.create_revision,
            a.mod_revision
        ),
        (&b"2"[..], 2, 1, 2)
    );
    assert_eq!(store.get("b").await.unwrap(), None);
    assert_eq!(store.put("c", b"1".to_vec()).await.unwrap(), 5);

    // History and the compaction point survive too.
    assert!(matches!(
        store.watch("", 1).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    let mut watch = store.watch("", 2).await.unwrap();
    let revisions: Vec<_> = collect_events(&mut watch, 4)
        .await
        .iter()
        .map(|e| e.kv.mod_revision)
        .collect();
    assert_eq!(revisions, [2, 3, 4, 5]);
    assert_eq!(
        store.describe(),
        format!("embedded:{}", dir.path().join("state.redb").display())
    );
}

#[tokio::test]
async fn keys_of_an_earlier_process_leases_are_deleted_on_open() {
    let dir = temp();
    {
        let store = open(&dir);
        let lease = store.grant_lease(Duration::from_secs(3600)).await.unwrap();
        store
            .put_with_lease("leader", b"me".to_vec(), lease)
            .await
            .unwrap(); // 1
        store.put("durable", b"yes".to_vec()).await.unwrap(); // 2
    }
    let store = open(&dir);
    assert_eq!(store.get("leader").await.unwrap(), None);
    assert!(store.get("durable").await.unwrap().is_some());
    assert_eq!(store.current_revision(), 3);
    let mut watch = store.watch("leader", 3).await.unwrap();
    assert_eq!(
        summary(&next_events(&mut watch).await),
        [(EventKind::Delete, "leader".into(), 3)]
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_file_fails_clearly() {
    let dir = temp();
    let store = open(&dir);
    let err = EmbeddedStore::open_in(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("state.redb"), "{message}");
    assert!(message.contains("in use by another process"), "{message}");
    assert!(message.contains("another master"), "{message}");
    drop(store);
    // Released on drop.
    open(&dir);
}

#[tokio::test]
async fn the_watch_stream_ends_when_the_store_closes() {
    let dir = temp();
    let store = open(&dir);
    let mut watch = store.watch("", 0).await.unwrap();
    drop(store);
    let last = tokio::time::timeout(PATIENCE, watch.next()).await.unwrap();
    assert!(matches!(last, Some(Err(StoreError::Closed))), "{last:?}");
    assert!(watch.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_txns_all_land_in_group_commits() {
    let dir = temp();
    let store = open(&dir);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&format!("n/{i:03}"), vec![1]).await.unwrap() })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.push(task.await.unwrap());
    }
    revisions.sort();
    assert_eq!(
        revisions,
        (1..=200).collect::<Vec<_>>(),
        "one revision per txn"
    );
    assert_eq!(store.range_all("n/").await.unwrap().len(), 200);
    let stats = store.stats();
    assert_eq!(stats.txns, 200);
    assert!(stats.commits <= stats.txns);
    println!("200 concurrent puts: {} durable commits", stats.commits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_counters_never_lose_an_increment() {
    let dir = temp();
    let store = open(&dir);
    const WORKERS: usize = 40;
    const INCREMENTS: u64 = 15;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let counter = format!("counter/{}", w % 3);
                let mut retries = 0u64;
                for _ in 0..INCREMENTS {
                    loop {
                        let current = store.get(&counter).await.unwrap();
                        let (value, guard) = match &current {
                            Some(kv) => {
                                let n = u64::from_le_bytes(kv.value.as_slice().try_into().unwrap());
                                (n, Compare::mod_revision(counter.clone(), kv.mod_revision))
                            }
                            None => (0, Compare::missing(counter.clone())),
                        };
                        let txn = Txn::new()
                            .when(guard)
                            .then(Op::put(counter.clone(), (value + 1).to_le_bytes().to_vec()));
                        if store.txn(txn).await.unwrap().succeeded {
                            break;
                        }
                        retries += 1;
                    }
                }
                retries
            })
        })
        .collect();
    let mut retries = 0;
    for task in tasks {
        retries += task.await.unwrap();
    }
    let mut total = 0;
    for c in 0..3 {
        let kv = store.get(&format!("counter/{c}")).await.unwrap().unwrap();
        let n = u64::from_le_bytes(kv.value.as_slice().try_into().unwrap());
        assert_eq!(kv.version as u64, n, "one put per increment");
        total += n;
    }
    assert_eq!(total, WORKERS as u64 * INCREMENTS);
    let stats = store.stats();
    println!(
        "CAS: {} txns ({retries} lost races) in {} durable commits",
        stats.txns, stats.commits
    );
}

#[tokio::test]
async fn txns_in_one_batch_see_each_other() {
    let dir = temp();
    let store = open(&dir);
    // Submitted together, so they very likely share a commit; either way
    // exactly one may create the key.
    let claims = (0..20).map(|i| {
        let store = store.clone();
        async move {
            let txn = Txn::new()
                .when(Compare::missing("owner"))
                .then(Op::put("owner", format!("{i}")));
            store.txn(txn).await.unwrap().succeeded
        }
    });
    let won = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1);
    assert_eq!(store.get("owner").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn works_as_a_shared_trait_object() {
    let dir = temp();
    let store: Arc<dyn Store> = open(&dir);
    store.put("a", b"1".to_vec()).await.unwrap();
    let again: Arc<dyn Store> = Arc::new(store.clone());
    assert_eq!(again.get_value("a").await.unwrap(), Some(b"1".to_vec()));
    assert!(again.describe().starts_with("embedded:"));
}

/// Set in the child process of `a_file_held_by_another_process_is_refused`.
const HOLD_ENV: &str = "WASMESOS_STORE_TEST_HOLD";

/// Not a test of its own: the child process of the test below, which holds
/// the store open until killed.
#[tokio::test]
async fn hold_store_for_parent_process() {
    let Ok(dir) = std::env::var(HOLD_ENV) else {
        return;
    };
    let _store = EmbeddedStore::open_in(std::path::Path::new(&dir)).expect("child opens the store");
    println!("HOLDING");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_file_held_by_another_process_is_refused() {
    use std::io::BufRead;
    let dir = temp();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_store_for_parent_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the test binary");
    let stdout = child.stdout.take().unwrap();
    let holding = std::io::BufReader::new(stdout)
        .lines()
        .any(|line| line.is_ok_and(|l| l.contains("HOLDING")));
    let result = EmbeddedStore::open_in(dir.path());
    child.kill().ok();
    child.wait().ok();
    assert!(holding, "the child process opened the store");
    let err = result.unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is another master running with this data dir?"),
        "{err}"
    );
    // Free again once the other process is gone.
    open(&dir);
}
