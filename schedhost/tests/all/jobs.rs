//! The built-in jobs scheduler, driven through the host as the master drives
//! it: a submission is queued durably and revives offers; offers that fit
//! launch `JOB.1`, offers that do not are declined; a failed attempt is
//! retried as `JOB.2` while attempts remain; a malformed submission is
//! refused without touching state; and an instance started from the
//! committed writes picks up where the last one stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmesos_api::proto::TaskState;
use wasmesos_api::{AgentId, Digest, Resources, TaskId};
use wasmesos_schedhost::{
    CallbackOutput, Command, Event, Limits, Registration, SchedHostConfig, SchedulerInstance,
    TaskLaunch, TaskStatus,
};

use crate::common::{apply, fresh, jobs, message, offer, registered, reply, written_keys};

const MIB: u64 = 1 << 20;

fn digest() -> Digest {
    Digest::of(b"a task module")
}

/// A "submit" body as the master builds it (`submission_json` in
/// `master/src/core/submit.rs`): every field present.
fn submission(job_id: &str, max_attempts: u32) -> Vec<u8> {
    serde_json::json!({
        "job_id": job_id,
        "name": "nightly",
        "max_attempts": max_attempts,
        "task": {
            "module_digest": digest().to_string(),
            "args": ["a", "b"],
            "env": {"K": "V"},
            "resources": {
                "cpus_milli": 500,
                "mem_bytes": 64 * MIB,
                "disk_bytes": 0,
                "scalars_milli": {},
            },
            "limits": {"fuel": 1000, "timeout_ms": 2000, "log_bytes": 3000},
        },
    })
    .to_string()
    .into_bytes()
}

/// The task attempt `n` of a job submitted with [`submission`] launches.
fn attempt(job_id: &str, n: u32) -> TaskLaunch {
    TaskLaunch {
        task_id: TaskId::new(format!("{job_id}.{n}")).unwrap(),
        name: "nightly".to_string(),
        module_digest: digest(),
        args: vec!["a".to_string(), "b".to_string()],
        env: vec![("K".to_string(), "V".to_string())],
        resources: Resources::new(0.5, 64 * MIB, 0),
        limits: Limits {
            fuel: 1000,
            timeout_ms: 2000,
            log_bytes: 3000,
        },
    }
}

fn status(task_id: &str, state: TaskState) -> Event {
    Event::StatusUpdate(TaskStatus {
        task_id: TaskId::new(task_id).unwrap(),
        state,
        message: "exited with code 3".to_string(),
        exit_code: Some(3),
        agent_id: Some(AgentId::new("agent-1").unwrap()),
        timestamp_ms: 1,
        result: None,
        reconciliation: false,
    })
}

/// Calls `event`, expecting the callback to complete, and applies its writes
/// to `kv` (the committed state, as the master keeps it).
async fn commit(
    sched: &mut SchedulerInstance,
    kv: &mut BTreeMap<String, Vec<u8>>,
    event: &Event,
) -> CallbackOutput {
    let out = sched.call(event).await.expect("callback completes");
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    apply(kv, &out.kv_writes);
    out
}

#[tokio::test]
async fn registered_on_empty_state_suppresses() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    let out = sched.call(&registered(&[])).await.unwrap();
    assert_eq!(out.commands, [Command::Suppress]);
    assert!(out.kv_writes.is_empty());
    assert_eq!(out.reply, None);
    assert!(out.fuel_used > 0);
}

#[tokio::test]
async fn a_submission_is_queued_durably_and_revives_offers() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();

    let out = sched
        .call(&message("submit", &submission("job-1", 1)))
        .await
        .unwrap();
    assert_eq!(reply(&out), Ok(String::new()), "empty body = accepted");
    assert_eq!(out.commands, [Command::Revive]);
    let keys = written_keys(&out);
    assert!(keys.contains(&"job/job-1"), "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("q/") && k.ends_with("/job-1")),
        "{keys:?}"
    );
    assert!(out.kv_writes.iter().all(|(_, v)| v.is_some()));
    assert!(out.logs.iter().any(|l| l.message.contains("job-1 queued")));

    // Submitting the same job again (a client retrying) queues nothing new.
    let again = sched
        .call(&message("submit", &submission("job-1", 1)))
        .await
        .unwrap();
    assert_eq!(reply(&again), Ok(String::new()));
    assert!(again.kv_writes.is_empty(), "{:?}", written_keys(&again));
}

#[tokio::test]
async fn offers_that_fit_launch_the_first_attempt_and_others_are_declined() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    let mut kv = BTreeMap::new();
    commit(&mut sched, &mut kv, &registered(&[])).await;
    commit(
        &mut sched,
        &mut kv,
        &message("submit", &submission("job-1", 1)),
    )
    .await;

    // Too small (0.25 cpus for a job of 0.5): declined, the job waits, and
    // offers are not suppressed.
    let small = commit(
        &mut sched,
        &mut kv,
        &Event::Offers(vec![offer("o-1", "agent-1", 0.25, 1024 * MIB)]),
    )
    .await;
    match &small.commands[..] {
        [Command::Decline { offer_ids, refuse }] => {
            assert_eq!(offer_ids[0].as_str(), "o-1");
            assert!(*refuse > Duration::ZERO);
        }
        other => panic!("expected one decline, got {other:?}"),
    }
    assert!(small.kv_writes.is_empty(), "{:?}", written_keys(&small));

    // Big enough, beside a small one: launch on the first, decline the
    // other, and suppress (nothing else waits).
    let out = commit(
        &mut sched,
        &mut kv,
        &Event::Offers(vec![
            offer("o-2", "agent-1", 2.0, 1024 * MIB),
            offer("o-3", "agent-2", 0.25, 1024 * MIB),
        ]),
    )
    .await;
    match &out.commands[..] {
        [
            Command::Launch { offer_ids, tasks },
            Command::Decline {
                offer_ids: declined,
                ..
            },
            Command::Suppress,
        ] => {
            assert_eq!(offer_ids[0].as_str(), "o-2");
            assert_eq!(tasks, &[attempt("job-1", 1)]);
            assert_eq!(declined[0].as_str(), "o-3");
        }
        other => panic!("expected launch, decline, suppress; got {other:?}"),
    }
    assert!(kv.contains_key("run/job-1.1"), "{:?}", kv.keys());
    assert!(!kv.keys().any(|k| k.starts_with("q/")), "{:?}", kv.keys());
}

#[tokio::test]
async fn a_failed_attempt_is_retried_while_attempts_remain() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    let mut kv = BTreeMap::new();
    let big = Event::Offers(vec![offer("o-1", "agent-1", 2.0, 1024 * MIB)]);
    // No backoff: the retry is queued at once rather than after a timer.
    let no_backoff = registered(&[("retry-backoff-ms", "0")]);
    commit(&mut sched, &mut kv, &no_backoff).await;
    commit(
        &mut sched,
        &mut kv,
        &message("submit", &submission("job-1", 2)),
    )
    .await;
    commit(&mut sched, &mut kv, &big).await;

    // Non-terminal updates change nothing.
    let running = commit(&mut sched, &mut kv, &status("job-1.1", TaskState::Running)).await;
    assert!(running.commands.is_empty() && running.kv_writes.is_empty());

    // Attempt 1 of 2 failed: requeued (at the head) and offers revived.
    let failed = commit(&mut sched, &mut kv, &status("job-1.1", TaskState::Failed)).await;
    assert_eq!(failed.commands, [Command::Revive]);
    assert!(
        failed
            .kv_writes
            .contains(&("run/job-1.1".to_string(), None))
    );
    assert!(kv.keys().any(|k| k.starts_with("q/")), "{:?}", kv.keys());

    let out = commit(&mut sched, &mut kv, &big).await;
    match &out.commands[0] {
        Command::Launch { tasks, .. } => assert_eq!(tasks, &[attempt("job-1", 2)]),
        other => panic!("expected a launch of job-1.2, got {other:?}"),
    }

    // Attempt 2 of 2 failed: the job is over, nothing is retried.
    let last = commit(&mut sched, &mut kv, &status("job-1.2", TaskState::Failed)).await;
    assert!(last.commands.is_empty(), "{:?}", last.commands);
    assert!(last.logs.iter().any(|l| l.message.contains("giving up")));
    // Only the submission counter is left.
    assert!(kv.keys().all(|k| k == "seq"), "{:?}", kv.keys());
}

#[tokio::test]
async fn a_malformed_submission_is_refused_without_changing_state() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut sched = fresh(&host, &component).await;
    sched.call(&registered(&[])).await.unwrap();

    let bad_digest =
        serde_json::json!({"job_id": "job-1", "task": {"module_digest": "md5:1"}}).to_string();
    let cases: [(&[u8], &str); 3] = [
        (b"not json", "invalid submission"),
        (bad_digest.as_bytes(), "module_digest"),
        (
            br#"{"job_id":"job-1","colour":1,"task":{}}"#,
            "unknown field `colour`",
        ),
    ];
    for (body, want) in cases {
        let out = sched.call(&message("submit", body)).await.unwrap();
        let refusal = reply(&out).unwrap_err();
        assert!(refusal.contains(want), "{refusal}");
        assert!(out.commands.is_empty(), "{:?}", out.commands);
        assert!(out.kv_writes.is_empty(), "{:?}", written_keys(&out));
    }

    let out = sched.call(&message("gossip", b"")).await.unwrap();
    assert!(reply(&out).unwrap_err().contains("unknown message kind"));

    // A refusal is an answer, not a failure: the instance carries on.
    let out = sched
        .call(&message("submit", &submission("job-2", 1)))
        .await
        .unwrap();
    assert_eq!(reply(&out), Ok(String::new()));
}

#[tokio::test]
async fn a_new_instance_resumes_from_the_committed_state() {
    let (host, component) = jobs(SchedHostConfig::default());
    let mut kv = BTreeMap::new();
    {
        let mut first = fresh(&host, &component).await;
        commit(&mut first, &mut kv, &registered(&[])).await;
        for job in ["job-1", "job-2"] {
            commit(&mut first, &mut kv, &message("submit", &submission(job, 1))).await;
        }
        // Room for one job only: job-1 runs, job-2 stays queued.
        commit(
            &mut first,
            &mut kv,
            &Event::Offers(vec![offer("o-1", "agent-1", 0.5, 1024 * MIB)]),
        )
        .await;
    }

    let mut second = host.instantiate(&component, kv.clone()).await.unwrap();
    let Event::Registered(info) = registered(&[]) else {
        unreachable!()
    };
    let again = Event::Registered(Registration {
        reregistered: true,
        ..info
    });
    let out = commit(&mut second, &mut kv, &again).await;
    assert_eq!(
        out.commands,
        [
            Command::Reconcile(vec![TaskId::new("job-1.1").unwrap()]),
            Command::Revive
        ]
    );

    // The queue survived: the next offer launches job-2, not job-1 again.
    let out = commit(
        &mut second,
        &mut kv,
        &Event::Offers(vec![offer("o-2", "agent-1", 2.0, 1024 * MIB)]),
    )
    .await;
    match &out.commands[0] {
        Command::Launch { tasks, .. } => assert_eq!(tasks, &[attempt("job-2", 1)]),
        other => panic!("expected a launch of job-2.1, got {other:?}"),
    }
}
