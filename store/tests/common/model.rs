//! A plain in-memory model of etcd, written independently of the store's
//! code, the random transactions that exercise it, and [`check`]: run
//! groups of transactions against any [`Store`] and compare it with the
//! model. Shared by the embedded and etcd backends' tests.

use std::collections::BTreeMap;

use futures::StreamExt;
use proptest::prelude::*;
use wasmesos_store::{CmpOp, Compare, EventKind, KeyValue, Op, Store, Txn};

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

pub fn txn() -> impl Strategy<Value = Txn> {
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
pub struct Model {
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

/// Runs `groups` of transactions (each group submitted at once, so they may
/// share a group commit) against `store` under the key namespace `ns`, and
/// checks outcomes, revisions, the final state and a watch replay against
/// the model. The store may hold other keys outside `ns` but must have no
/// other writer meanwhile: revisions are checked relative to where the
/// store was when this started.
///
/// `concurrent`: submit each group at once, relying on the store to apply
/// transactions in the order they were polled (the embedded store's group
/// commit promises it); otherwise one after another (separate etcd requests
/// may be served in any order).
pub async fn check<S: Store>(
    store: &S,
    ns: &str,
    groups: Vec<Vec<Txn>>,
    concurrent: bool,
) -> Result<(), TestCaseError> {
    let base = store.range("", None, 1).await.unwrap().revision;
    let mut model = Model::default();
    for group in groups {
        let group: Vec<Txn> = group.into_iter().filter(|t| t.validate().is_ok()).collect();
        let outcomes = if concurrent {
            futures::future::join_all(group.iter().map(|t| store.txn(namespaced(ns, base, t))))
                .await
        } else {
            let mut outcomes = Vec::new();
            for t in &group {
                outcomes.push(store.txn(namespaced(ns, base, t)).await);
            }
            outcomes
        };
        for (txn, outcome) in group.iter().zip(outcomes) {
            let outcome = outcome.unwrap();
            let (succeeded, revision) = model.apply(txn);
            prop_assert_eq!(
                (outcome.succeeded, outcome.revision),
                (succeeded, base + revision),
                "{:?}",
                txn
            );
        }
    }
    prop_assert_eq!(store.current_revision(), base + model.revision);
    let stored: Vec<KeyValue> = store
        .range_all(ns)
        .await
        .unwrap()
        .into_iter()
        .map(|mut kv| {
            kv.key = kv.key[ns.len()..].to_string();
            kv.create_revision -= base;
            kv.mod_revision -= base;
            kv
        })
        .collect();
    let expected: Vec<KeyValue> = model.kvs.values().cloned().collect();
    prop_assert_eq!(stored, expected);

    if model.revision > 0 {
        let mut watch = store.watch(ns, base + 1).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < model.log.len() {
            let response = watch.next().await.unwrap().unwrap();
            seen.extend(response.events.into_iter().map(|e| {
                (
                    e.kind,
                    e.kv.key[ns.len()..].to_string(),
                    e.kv.mod_revision - base,
                )
            }));
        }
        prop_assert_eq!(seen, model.log);
    }
    Ok(())
}

/// `txn` with every key and prefix under `ns`, and revisions in compares
/// moved past `base`. A missing key's revisions are 0 in both, and every
/// existing key's are above `base` in the store, so moving every revision
/// but 0 by `base` keeps each compare's truth.
fn namespaced(ns: &str, base: i64, txn: &Txn) -> Txn {
    let key = |k: &str| format!("{ns}{k}");
    let rev = |r: i64| if r == 0 { 0 } else { r + base };
    let op = |o: &Op| match o {
        Op::Put {
            key: k,
            value,
            lease,
        } => Op::Put {
            key: key(k),
            value: value.clone(),
            lease: *lease,
        },
        Op::Delete { key: k } => Op::Delete { key: key(k) },
        Op::DeletePrefix { prefix } => Op::DeletePrefix {
            prefix: key(prefix),
        },
    };
    let cmp = |c: &Compare| match c {
        Compare::Version(k, o, v) => Compare::Version(key(k), *o, *v),
        Compare::CreateRevision(k, o, v) => Compare::CreateRevision(key(k), *o, rev(*v)),
        Compare::ModRevision(k, o, v) => Compare::ModRevision(key(k), *o, rev(*v)),
        Compare::Value(k, o, v) => Compare::Value(key(k), *o, v.clone()),
    };
    Txn {
        compares: txn.compares.iter().map(cmp).collect(),
        success: txn.success.iter().map(op).collect(),
        failure: txn.failure.iter().map(op).collect(),
    }
}
