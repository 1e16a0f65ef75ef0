//! The scheduler's decisions against an in-memory host.

use wasmesos_sdk::{Command, Host, MemoryHost, Message, Offer, Resources, TaskState, TaskStatus};

use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MIB: u64 = 1 << 20;

fn submit(h: &mut MemoryHost, job: &str, cpus_milli: u64, max_attempts: u32) {
    let body = format!(
        r#"{{"job_id":"{job}","max_attempts":{max_attempts},
           "task":{{"module_digest":"{DIGEST}","resources":{{"cpus_milli":{cpus_milli},"mem_bytes":{}}}}}}}"#,
        64 * MIB
    );
    let reply = message(h, &msg("submit", &body)).unwrap().unwrap();
    assert!(reply.body.is_empty());
    assert_eq!(reply.commands, [Command::Revive]);
}

fn msg(kind: &str, body: &str) -> Message {
    Message {
        kind: kind.into(),
        sender: "alice".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn offer(id: &str, resources: Resources) -> Offer {
    Offer {
        id: id.into(),
        agent_id: format!("agent-{id}"),
        hostname: "localhost".into(),
        resources,
        attributes: Vec::new(),
    }
}

fn cpus(milli: u64) -> Resources {
    Resources::new(milli, 1024 * MIB, 0)
}

fn status(task: &str, state: TaskState, reconciliation: bool) -> TaskStatus {
    TaskStatus {
        task_id: task.into(),
        state,
        message: "exited with code 1".into(),
        exit_code: Some(1),
        agent_id: None,
        timestamp_ms: 0,
        result: None,
        reconciliation,
    }
}

/// (offer id, task ids) of each launch, in order.
fn launches(cmds: &[Command]) -> Vec<(String, Vec<String>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch(l) => Some((
                l.offer_ids.join(","),
                l.tasks.iter().map(|t| t.task_id.clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn declines(cmds: &[Command]) -> Vec<(Vec<String>, f64)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Decline(d) => Some((d.offer_ids.clone(), d.refuse_seconds)),
            _ => None,
        })
        .collect()
}

fn queued_jobs(h: &MemoryHost) -> Vec<String> {
    summary(h).queued_jobs
}

#[test]
fn registered_revives_only_with_work_queued() {
    let mut h = MemoryHost::default();
    assert_eq!(registered(&mut h).unwrap(), [Command::Suppress]);
    submit(&mut h, "a", 100, 1);
    assert_eq!(registered(&mut h).unwrap(), [Command::Revive]);
}

#[test]
fn registered_reconciles_running_attempts() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    submit(&mut h, "b", 100, 1);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        registered(&mut h).unwrap(),
        [
            Command::Reconcile(vec!["a.1".into(), "b.1".into()]),
            Command::Suppress
        ]
    );
}

#[test]
fn submit_refuses_bad_bodies_and_unknown_kinds() {
    let mut h = MemoryHost::default();
    let err = message(&mut h, &msg("submit", "{")).unwrap().unwrap_err();
    assert!(err.starts_with("invalid submission"), "{err}");
    let body = format!(r#"{{"job_id":"j","retries":3,"task":{{"module_digest":"{DIGEST}"}}}}"#);
    let err = message(&mut h, &msg("submit", &body)).unwrap().unwrap_err();
    assert!(err.contains("unknown field `retries`"), "{err}");
    let err = message(&mut h, &msg("shout", "")).unwrap().unwrap_err();
    assert!(err.contains("unknown message kind"), "{err}");
    assert!(
        h.state.is_empty(),
        "a refusal must not write: {:?}",
        h.state
    );
}

#[test]
fn submitting_a_job_twice_queues_it_once() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    submit(&mut h, "a", 100, 1);
    assert_eq!(queued_jobs(&h), ["a"]);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    submit(&mut h, "a", 100, 1);
    assert!(queued_jobs(&h).is_empty(), "a running job is known too");
}

#[test]
fn offers_pack_fifo_and_suppress_when_the_queue_empties() {
    let mut h = MemoryHost::default();
    for job in ["a", "b", "c"] {
        submit(&mut h, job, 500, 1);
    }
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        launches(&cmds),
        [("o1".into(), vec!["a.1".into(), "b.1".into()])]
    );
    assert!(!cmds.contains(&Command::Suppress), "c still waits");
    assert_eq!(queued_jobs(&h), ["c"]);

    let cmds = offers(&mut h, &[offer("o2", cpus(1000)), offer("o3", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o2".into(), vec!["c.1".into()])]);
    assert_eq!(declines(&cmds), [(vec!["o3".into()], 5.0)]);
    assert_eq!(cmds.last(), Some(&Command::Suppress));
    assert_eq!(summary(&h).running, 3);
}

#[test]
fn a_job_that_does_not_fit_waits_without_blocking_smaller_ones() {
    let mut h = MemoryHost::default();
    submit(&mut h, "big", 4000, 1);
    submit(&mut h, "small", 500, 1);
    let cmds = offers(&mut h, &[offer("o1", cpus(1000)), offer("o2", cpus(100))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["small.1".into()])]);
    assert_eq!(declines(&cmds), [(vec!["o2".into()], 1.0)]);
    assert!(!cmds.contains(&Command::Suppress));
    assert_eq!(queued_jobs(&h), ["big"]);
}

#[test]
fn offers_respect_memory_disk_and_scalars() {
    let mut h = MemoryHost::default();
    let body = format!(
        r#"{{"job_id":"gpu","name":"train","task":{{"module_digest":"{DIGEST}","args":["x"],"env":{{"K":"V"}},
           "resources":{{"cpus_milli":100,"mem_bytes":100,"disk_bytes":10,"scalars_milli":{{"gpus":1000}}}},
           "limits":{{"fuel":5,"timeout_ms":6,"log_bytes":7}}}}}}"#
    );
    message(&mut h, &msg("submit", &body)).unwrap().unwrap();
    let no_gpu = offer("o1", Resources::new(1000, 1000, 1000));
    let small_mem = offer(
        "o2",
        Resources::new(1000, 99, 1000).with_scalar("gpus", 1000),
    );
    let small_disk = offer(
        "o3",
        Resources::new(1000, 1000, 9).with_scalar("gpus", 1000),
    );
    let cmds = offers(&mut h, &[no_gpu, small_mem, small_disk]).unwrap();
    assert!(launches(&cmds).is_empty());
    assert_eq!(declines(&cmds)[0].1, 1.0);

    let fits = offer(
        "o4",
        Resources::new(1000, 1000, 1000).with_scalar("gpus", 1000),
    );
    let cmds = offers(&mut h, &[fits]).unwrap();
    let Command::Launch(l) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    let t = &l.tasks[0];
    assert_eq!((t.task_id.as_str(), t.name.as_str()), ("gpu.1", "train"));
    assert_eq!(t.args, ["x"]);
    assert_eq!(t.env, [("K".to_string(), "V".to_string())]);
    assert_eq!(
        t.resources,
        Resources::new(100, 100, 10).with_scalar("gpus", 1000)
    );
    assert_eq!(
        (t.limits.fuel, t.limits.timeout_ms, t.limits.log_bytes),
        (5, 6, 7)
    );
}

#[test]
fn no_work_declines_for_five_seconds_and_suppresses() {
    let mut h = MemoryHost::default();
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        cmds,
        [cmd::decline(vec!["o1".into()], 5.0), Command::Suppress]
    );
}

#[test]
fn failures_retry_at_the_front_until_attempts_run_out() {
    let mut h = MemoryHost::default();
    submit(&mut h, "flaky", 1000, 2);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    submit(&mut h, "later", 1000, 1);

    let cmds = status_update(&mut h, &status("flaky.1", TaskState::Failed, false)).unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(queued_jobs(&h), ["flaky", "later"], "a retry goes first");

    let cmds = offers(&mut h, &[offer("o2", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o2".into(), vec!["flaky.2".into()])]);
    let cmds = status_update(&mut h, &status("flaky.2", TaskState::Lost, false)).unwrap();
    assert!(cmds.is_empty(), "no third attempt: {cmds:?}");
    assert_eq!(queued_jobs(&h), ["later"]);
    assert_eq!(summary(&h).running, 0);
    assert!(h.get("job/flaky").is_none());
}

#[test]
fn finished_and_killed_are_forgotten_and_redelivery_is_ignored() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 3);
    submit(&mut h, "b", 100, 3);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let running = status("a.1", TaskState::Running, false);
    assert!(status_update(&mut h, &running).unwrap().is_empty());
    assert_eq!(summary(&h).running, 2);

    for state in [TaskState::Finished, TaskState::Killed] {
        let task = if state == TaskState::Finished {
            "a.1"
        } else {
            "b.1"
        };
        assert!(
            status_update(&mut h, &status(task, state, false))
                .unwrap()
                .is_empty()
        );
        let before = h.state.clone();
        // The master may deliver an event again after a failed commit.
        assert!(
            status_update(&mut h, &status(task, state, false))
                .unwrap()
                .is_empty()
        );
        let failed = status(task, TaskState::Failed, false);
        assert!(status_update(&mut h, &failed).unwrap().is_empty());
        assert_eq!(h.state, before);
    }
    assert_eq!(summary(&h).running, 0);
    assert_eq!(h.state.keys().collect::<Vec<_>>(), ["ends"]);
}

#[test]
fn reconciliation_answers_are_handled_like_updates() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 2);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let cmds = status_update(&mut h, &status("a.1", TaskState::Running, true)).unwrap();
    assert!(cmds.is_empty());
    let cmds = status_update(&mut h, &status("a.1", TaskState::Lost, true)).unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(queued_jobs(&h), ["a"]);
    // An answer about a task we never launched changes nothing.
    let cmds = status_update(&mut h, &status("zzz.1", TaskState::Lost, true)).unwrap();
    assert!(cmds.is_empty());
}

#[test]
fn user_messages_get_a_summary() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 1000, 1);
    submit(&mut h, "b", 1000, 1);
    submit(&mut h, "c", 1000, 1);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let reply = message(&mut h, &msg("user", "")).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"queued":2,"running":1,"queued_jobs":["b","c"],"running_tasks":["a.1"]})
    );
    assert!(reply.commands.is_empty());
}

#[test]
fn a_long_queue_is_scanned_in_pages() {
    let mut h = MemoryHost::default();
    for i in 0..250 {
        submit(&mut h, &format!("j{i:03}"), 10, 1);
    }
    let cmds = offers(&mut h, &[offer("o1", Resources::new(2000, 1 << 40, 0))]).unwrap();
    let launched = &launches(&cmds)[0].1;
    assert_eq!(launched.len(), 200);
    assert_eq!(launched[199], "j199.1");
    assert_eq!(summary(&h).queued, 50);
    assert!(!cmds.contains(&Command::Suppress));
}

#[test]
fn an_unreadable_queue_entry_is_dropped() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    let key = h.list("q/", "", 1)[0].clone();
    h.set(&key, b"garbage").unwrap();
    submit(&mut h, "b", 100, 1);
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["b.1".into()])]);
    assert!(h.get("job/a").is_none());
    assert!(
        h.logs
            .iter()
            .any(|(level, _)| *level == wasmesos_sdk::Level::Error)
    );
}
