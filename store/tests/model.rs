//! Property test: random transactions, submitted in concurrent groups (so
//! they share group commits), behave exactly like a plain in-memory model of
//! etcd applied one by one: same outcomes, same revisions, same final state,
//! and a watch from revision 1 replays the model's event log.

use std::collections::BTreeMap;

use futures::StreamExt;
use proptest::prelude::*;
use wasmesos_store::{CmpOp, Compare, EmbeddedStore, EventKind, KeyValue, Op, Store, Txn};

const KEYS: &[&str] = &["a", "a/1", "a/2", "ab", "b/1", "b/2"];
const PREFIXES: &[&str] = &["", "a", "a/", "b/", "zz"];

fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(KEYS).prop_map(str::to_string)
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Equal),
        Just(CmpOp::NotEqual),
        Just(CmpOp::Less),
        Just(CmpOp::Greater)
    ]
}

fn compare() -> impl Strategy<Value = Compare> {
    prop_oneof![
        (key(), cmp_op(), 0..4i64).prop_map(|(k, op, v)| Compare::Version(k, op, v)),
        (key(), cmp_op(), 0..12i64).prop_map(|(k, op, v)| Compare::CreateRevision(k, op, v)),
        (key(), cmp_op(), 0..12i64).prop_map(|(k, op, v)| Compare::ModRevision(k, op, v)),
        (key(), cmp_op(), proptest::collection::vec(0..3u8, 0..2))
            .prop_map(|(k, op, v)| Compare::Value(k, op, v)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), 0..3u8).prop_map(|(k, v)| Op::put(k, vec![v])),
        2 => key().prop_map(Op::delete),
        1 => proptest::sample::select(PREFIXES).prop_map(Op::delete_prefix),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    (
        proptest::collection::vec(compare(), 0..3),
        proptest::collection::vec(op(), 0..3),
        proptest::collection::vec(op(), 0..2),
    )
        .prop_map(|(compares, success, failure)| Txn {
            compares,
            success,
            failure,
        })
}

/// etcd, in a few lines, written independently of the store's code.
#[derive(Default)]
struct Model {
    revision: i64,
    kvs: BTreeMap<String, KeyValue>,
    log: Vec<(EventKind, String, i64)>,
}

impl Model {
    fn holds(&self, compare: &Compare) -> bool {
        fn check<T: Ord>(op: CmpOp, a: T, b: T) -> bool {
            match op {
                CmpOp::Equal => a == b,
                CmpOp::NotEqual => a != b,
                CmpOp::Less => a < b,
                CmpOp::Greater => a > b,
            }
        }
        let kv = |k: &String| self.kvs.get(k);
        match compare {
            Compare::Version(k, op, v) => check(*op, kv(k).map_or(0, |kv| kv.version), *v),
            Compare::CreateRevision(k, op, v) => {
                check(*op, kv(k).map_or(0, |kv| kv.create_revision), *v)
            }
            Compare::ModRevision(k, op, v) => check(*op, kv(k).map_or(0, |kv| kv.mod_revision), *v),
            Compare::Value(k, op, v) => kv(k).is_some_and(|kv| check(*op, &kv.value, v)),
        }
    }

    /// Applies a valid txn; returns (succeeded, revision after).
    fn apply(&mut self, txn: &Txn) -> (bool, i64) {
        let succeeded = txn.compares.iter().all(|c| self.holds(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let revision = self.revision + 1;
        let mut changed = false;
        for op in ops {
            let mut deleted = Vec::new();
            match op {
                Op::Put { key, value, .. } => {
                    let old = self.kvs.get(key);
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: old.map_or(revision, |o| o.create_revision),
                        mod_revision: revision,
                        version: old.map_or(1, |o| o.version + 1),
                        lease: None,
                    };
                    self.kvs.insert(key.clone(), kv);
                    self.log.push((EventKind::Put, key.clone(), revision));
                    changed = true;
                }
                Op::Delete { key } => deleted.extend(self.kvs.remove(key).map(|_| key.clone())),
                Op::DeletePrefix { prefix } => {
                    let keys: Vec<String> = self
                        .kvs
                        .keys()
                        .filter(|k| k.starts_with(prefix.as_str()))
                        .cloned()
                        .collect();
                    for k in keys {
                        self.kvs.remove(&k);
                        deleted.push(k);
                    }
                }
            }
            for k in deleted {
                self.log.push((EventKind::Delete, k, revision));
                changed = true;
            }
        }
        if changed {
            self.revision = revision;
        }
        (succeeded, self.revision)
    }
}

fn run(groups: Vec<Vec<Txn>>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_in(dir.path()).unwrap();
        let mut model = Model::default();
        for group in groups {
            let group: Vec<Txn> = group.into_iter().filter(|t| t.validate().is_ok()).collect();
            // Polled in order, so queued in order: the outcome must be sequential.
            let outcomes =
                futures::future::join_all(group.iter().map(|t| store.txn(t.clone()))).await;
            for (txn, outcome) in group.iter().zip(outcomes) {
                let outcome = outcome.unwrap();
                let (succeeded, revision) = model.apply(txn);
                prop_assert_eq!(
                    (outcome.succeeded, outcome.revision),
                    (succeeded, revision),
                    "{:?}",
                    txn
                );
            }
        }
        prop_assert_eq!(store.current_revision(), model.revision);
        let stored = store.range_all("").await.unwrap();
        let expected: Vec<KeyValue> = model.kvs.values().cloned().collect();
        prop_assert_eq!(stored, expected);

        if model.revision > 0 {
            let mut watch = store.watch("", 1).await.unwrap();
            let mut seen = Vec::new();
            while seen.len() < model.log.len() {
                let response = watch.next().await.unwrap().unwrap();
                seen.extend(
                    response
                        .events
                        .into_iter()
                        .map(|e| (e.kind, e.kv.key, e.kv.mod_revision)),
                );
            }
            prop_assert_eq!(seen, model.log);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn group_committed_txns_match_a_sequential_model(
        groups in proptest::collection::vec(proptest::collection::vec(txn(), 1..8), 1..6)
    ) {
        run(groups)?;
    }
}
