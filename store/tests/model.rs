//! Property test: random transactions, submitted in concurrent groups (so
//! they share group commits), behave exactly like a plain in-memory model of
//! etcd applied one by one: same outcomes, same revisions, same final state,
//! and a watch from revision 1 replays the model's event log.

mod common;

use common::model::{check, txn};
use proptest::prelude::*;
use wasmesos_store::{EmbeddedStore, Txn};

fn run(groups: Vec<Vec<Txn>>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_in(dir.path()).unwrap();
        check(&store, "", groups, true).await
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
