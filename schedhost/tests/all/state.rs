//! The `state` and `log` imports as a component sees them, through the
//! `chaos` fixture: a callback reads its own writes, its writes come back in
//! `kv_writes` for the master to commit, committed state is what the next
//! callback and the next instance see, the per-framework quota refuses a
//! write with a reason, and log lines past the per-callback cap are dropped
//! and counted.
//!
//! `chaos` surfaces a refused `state.set` as the message's refusal (an
//! `Err` reply carrying the host's reason) rather than trapping: the reason
//! is then plain data for the test. The writes accepted before the refusal
//! still come back in `kv_writes` — a refusal is a completed callback, and
//! the master commits its writes; a scheduler that wants all or nothing
//! traps instead, as the jobs scheduler does.

use std::collections::BTreeMap;

use wasmesos_schedhost::{CallbackError, LogLevel, SchedHostConfig};

use crate::common::{apply, chaos, fresh, registered, reply, user, written_keys};

/// Bytes one `state:N` entry takes against the quota: a key
/// `chaos/000000` (12 bytes) and a 1 KiB value.
const ENTRY: usize = 12 + 1024;

#[tokio::test]
async fn a_callback_reads_its_own_writes_and_returns_them() {
    let (host, component) = chaos(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();

    let out = sched.call(&user("state:5")).await.unwrap();
    // Read back and listed inside the callback, before anything committed.
    assert_eq!(
        reply(&out),
        Ok("wrote 5, read back 5, listed 5".to_string())
    );
    assert_eq!(
        written_keys(&out),
        [
            "chaos/000000",
            "chaos/000001",
            "chaos/000002",
            "chaos/000003",
            "chaos/000004"
        ]
    );
    for (_, value) in &out.kv_writes {
        assert_eq!(value.as_ref().map(Vec::len), Some(1024));
    }

    // Writes nothing: the next callback returns no writes of its own.
    let out = sched.call(&user("echo")).await.unwrap();
    assert!(out.kv_writes.is_empty());
}

#[tokio::test]
async fn committed_state_is_seen_by_later_callbacks_and_new_instances() {
    let (host, component) = chaos(SchedHostConfig::default());
    let mut kv = BTreeMap::new();
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();
    let out = sched.call(&user("state:5")).await.unwrap();
    apply(&mut kv, &out.kv_writes);

    // Rewriting two keys in a later callback: all five are still listed.
    let out = sched.call(&user("state:2")).await.unwrap();
    assert_eq!(
        reply(&out),
        Ok("wrote 2, read back 2, listed 5".to_string())
    );

    // A new instance from the committed writes lists them too.
    let mut again = host.instantiate(&component, kv).await.unwrap();
    again.call(&registered(&[])).await.unwrap();
    let out = again.call(&user("state:1")).await.unwrap();
    assert_eq!(
        reply(&out),
        Ok("wrote 1, read back 1, listed 5".to_string())
    );
}

#[tokio::test]
async fn the_quota_refuses_writes_with_a_reason() {
    let quota = 8 * ENTRY;
    let (host, component) = chaos(SchedHostConfig {
        kv_quota_bytes: quota,
        ..SchedHostConfig::default()
    });
    let mut kv = BTreeMap::new();
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();

    // Obeyed: exactly the quota fits.
    let out = sched.call(&user("state:8")).await.unwrap();
    assert_eq!(
        reply(&out),
        Ok("wrote 8, read back 8, listed 8".to_string())
    );
    apply(&mut kv, &out.kv_writes);

    // Violated: the ninth entry is refused, with the host's reason.
    let out = sched.call(&user("state:9")).await.unwrap();
    let refusal = reply(&out).unwrap_err();
    assert!(refusal.contains("refused at chaos/000008"), "{refusal}");
    assert!(refusal.contains("state quota exceeded"), "{refusal}");
    assert!(
        refusal.contains(&format!("the quota is {quota}")),
        "{refusal}"
    );
    // The eight accepted writes (rewrites of the same keys) still return.
    assert_eq!(out.kv_writes.len(), 8);
    assert!(
        sched.call(&user("echo")).await.is_ok(),
        "refusal is no failure"
    );

    // Committed state counts against the quota in a new instance too.
    let mut again = host.instantiate(&component, kv).await.unwrap();
    again.call(&registered(&[])).await.unwrap();
    let out = again.call(&user("state:9")).await.unwrap();
    assert!(reply(&out).unwrap_err().contains("state quota exceeded"));
}

#[tokio::test]
async fn a_refused_write_in_registered_traps_with_the_reason() {
    let (host, component) = chaos(SchedHostConfig {
        kv_quota_bytes: 2 * ENTRY,
        ..SchedHostConfig::default()
    });
    let mut sched = fresh(&host, &component).await;
    match sched
        .call(&registered(&[("on-registered", "state:3")]))
        .await
    {
        Err(CallbackError::Trap { message, .. }) => {
            assert!(message.contains("state quota exceeded"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_past_the_cap_are_dropped_and_counted() {
    // "chaos line 0" .. "chaos line 9" are 12 bytes each: ten fit in 120.
    let (host, component) = chaos(SchedHostConfig {
        log_bytes_per_callback: 120,
        ..SchedHostConfig::default()
    });
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();

    // Obeyed: everything kept, in order, at the level written.
    let out = sched.call(&user("log:10")).await.unwrap();
    assert_eq!(reply(&out), Ok("logged 10".to_string()));
    assert_eq!(out.logs.len(), 10);
    assert_eq!(out.logs_dropped, 0);
    assert_eq!(out.logs[9].message, "chaos line 9");
    assert!(out.logs.iter().all(|l| l.level == LogLevel::Info));

    // Violated: the first ten kept, the other ninety counted.
    let out = sched.call(&user("log:100")).await.unwrap();
    assert_eq!(reply(&out), Ok("logged 100".to_string()));
    assert_eq!(out.logs.len(), 10);
    assert_eq!(out.logs_dropped, 90);

    // The cap is per callback: the next one starts afresh.
    let out = sched.call(&user("log:3")).await.unwrap();
    assert_eq!((out.logs.len(), out.logs_dropped), (3, 0));
}
