//! The pi scheduler against an in-memory host.

use wasmesos_sdk::{Command, MemoryHost, Message, Offer, Resources, TaskState, TaskStatus};

use super::*;

const M: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const MIB: u64 = 1 << 20;

fn send(h: &mut MemoryHost, body: &str) -> Result<(Vec<Command>, serde_json::Value), String> {
    let msg = Message {
        kind: "user".into(),
        sender: "alice".into(),
        body: body.as_bytes().to_vec(),
    };
    let reply = Pi.message(h, &msg).unwrap()?;
    Ok((reply.commands, serde_json::from_slice(&reply.body).unwrap()))
}

fn start_run(h: &mut MemoryHost, tasks: u32) {
    let (cmds, reply) = send(
        h,
        &format!(r#"{{"run":{{"tasks":{tasks},"samples":1000,"module":"{M}","max_attempts":2}}}}"#),
    )
    .unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(reply["state"], "running");
    assert_eq!(reply["queued"], tasks);
}

/// An offer with room for `n` pieces (0.1 cpus, 32 MiB each).
fn offer(id: &str, n: u64) -> Offer {
    Offer {
        id: id.into(),
        agent_id: format!("agent-{id}"),
        hostname: "localhost".into(),
        resources: Resources::new(100 * n, 1024 * MIB, 0),
        attributes: Vec::new(),
    }
}

fn launched(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch(l) => Some(l.tasks.iter().map(|t| t.task_id.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn finished(task: &str, result: Option<&str>) -> TaskStatus {
    TaskStatus {
        task_id: task.into(),
        state: TaskState::Finished,
        message: String::new(),
        exit_code: Some(0),
        agent_id: None,
        timestamp_ms: 0,
        result: result.map(|r| r.as_bytes().to_vec()),
        reconciliation: false,
    }
}

fn failed(task: &str) -> TaskStatus {
    TaskStatus {
        state: TaskState::Failed,
        message: "exited with code 1".into(),
        exit_code: Some(1),
        ..finished(task, None)
    }
}

#[test]
fn idle_at_first() {
    let mut h = MemoryHost::default();
    assert_eq!(
        Pi.registered(&mut h, &registration()).unwrap(),
        [Command::Suppress]
    );
    let (_, reply) = send(&mut h, "").unwrap();
    assert_eq!(reply["state"], "idle");
    assert_eq!(reply["pi"], serde_json::Value::Null);
    let cmds = Pi.offers(&mut h, &[offer("o1", 4)]).unwrap();
    assert_eq!(
        cmds,
        [cmd::decline(vec!["o1".into()], 5.0), Command::Suppress]
    );
}

fn registration() -> Registration {
    Registration {
        framework_id: "fw".into(),
        name: "pi".into(),
        role: "default".into(),
        config: Vec::new(),
        reregistered: false,
    }
}

#[test]
fn a_run_fans_out_and_combines_the_results() {
    let mut h = MemoryHost::default();
    start_run(&mut h, 5);
    let cmds = Pi
        .offers(&mut h, &[offer("o1", 2), offer("o2", 2)])
        .unwrap();
    assert_eq!(
        launched(&cmds),
        ["pi-1-0-1", "pi-1-1-1", "pi-1-2-1", "pi-1-3-1"]
    );
    assert!(!cmds.contains(&Command::Suppress), "one piece still waits");
    let Command::Launch(l) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        l.tasks[1].args,
        ["--samples", "1000", "--seed", "4294967297"]
    );

    let cmds = Pi.offers(&mut h, &[offer("o3", 4)]).unwrap();
    assert_eq!(launched(&cmds), ["pi-1-4-1"]);
    assert_eq!(cmds.last(), Some(&Command::Suppress));

    for (i, hits) in [785, 790, 780, 786, 789].into_iter().enumerate() {
        let result = format!(r#"{{"hits":{hits},"samples":1000}}"#);
        let st = finished(&format!("pi-1-{i}-1"), Some(&result));
        assert!(Pi.status_update(&mut h, &st).unwrap().is_empty());
        // Redelivered: counted once.
        Pi.status_update(&mut h, &st).unwrap();
    }
    let (_, reply) = send(&mut h, r#"{"status":{}}"#).unwrap();
    assert_eq!(reply["state"], "finished");
    assert_eq!(
        (reply["done"].as_u64(), reply["hits"].as_u64()),
        (Some(5), Some(3930))
    );
    assert_eq!(reply["samples"], 5000);
    let pi = reply["pi"].as_f64().unwrap();
    assert!((pi - 3.144).abs() < 1e-9, "{pi}");
    assert!(
        h.logs
            .iter()
            .any(|(_, m)| m.contains("run 1 finished: pi ≈ 3.144"))
    );
}

#[test]
fn failed_pieces_are_retried_then_given_up() {
    let mut h = MemoryHost::default();
    start_run(&mut h, 2);
    Pi.offers(&mut h, &[offer("o1", 2)]).unwrap();
    let cmds = Pi.status_update(&mut h, &failed("pi-1-0-1")).unwrap();
    assert_eq!(cmds, [Command::Revive]);
    let cmds = Pi.offers(&mut h, &[offer("o1", 2)]).unwrap();
    assert_eq!(launched(&cmds), ["pi-1-0-2"], "same piece, next attempt");
    // max_attempts is 2: the second failure is final.
    assert!(
        Pi.status_update(&mut h, &failed("pi-1-0-2"))
            .unwrap()
            .is_empty()
    );
    Pi.status_update(
        &mut h,
        &finished("pi-1-1-1", Some(r#"{"hits":3,"samples":4}"#)),
    )
    .unwrap();
    let (_, reply) = send(&mut h, "status").unwrap();
    assert_eq!(reply["state"], "finished");
    assert_eq!(
        (reply["failed"].as_u64(), reply["retries"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(reply["pi"], 3.0);
}

#[test]
fn results_that_are_missing_or_bad_are_counted_apart() {
    let mut h = MemoryHost::default();
    start_run(&mut h, 2);
    Pi.offers(&mut h, &[offer("o1", 2)]).unwrap();
    Pi.status_update(&mut h, &finished("pi-1-0-1", None))
        .unwrap();
    Pi.status_update(&mut h, &finished("pi-1-1-1", Some("garbage")))
        .unwrap();
    let (_, reply) = send(&mut h, "").unwrap();
    assert_eq!(reply["state"], "finished");
    assert_eq!(reply["missing_results"], 2);
    assert_eq!(reply["pi"], serde_json::Value::Null);
}

#[test]
fn one_run_at_a_time_and_cancel() {
    let mut h = MemoryHost::default();
    start_run(&mut h, 3);
    Pi.offers(&mut h, &[offer("o1", 1)]).unwrap();
    let err = send(
        &mut h,
        &format!(r#"{{"run":{{"tasks":1,"samples":1,"module":"{M}"}}}}"#),
    )
    .unwrap_err();
    assert!(err.contains("in progress"), "{err}");

    let (cmds, reply) = send(&mut h, r#"{"cancel":{}}"#).unwrap();
    assert_eq!(cmds, [cmd::kill("pi-1-0-1"), Command::Suppress]);
    assert_eq!(reply["state"], "cancelled");
    assert_eq!(
        (reply["queued"].as_u64(), reply["running"].as_u64()),
        (Some(0), Some(0))
    );
    // The killed piece's news changes nothing now.
    let before = h.state.clone();
    let mut killed = failed("pi-1-0-1");
    killed.state = TaskState::Killed;
    assert!(Pi.status_update(&mut h, &killed).unwrap().is_empty());
    assert_eq!(h.state, before);

    // The next run is number 2.
    start_run(&mut h, 1);
    let cmds = Pi.offers(&mut h, &[offer("o1", 1)]).unwrap();
    assert_eq!(launched(&cmds), ["pi-2-0-1"]);
}

#[test]
fn registration_reconciles_launched_pieces() {
    let mut h = MemoryHost::default();
    start_run(&mut h, 3);
    Pi.offers(&mut h, &[offer("o1", 2)]).unwrap();
    assert_eq!(
        Pi.registered(&mut h, &registration()).unwrap(),
        [
            cmd::reconcile(vec!["pi-1-0-1".into(), "pi-1-1-1".into()]),
            Command::Revive
        ]
    );
}

#[test]
fn bad_messages_are_refused_without_changes() {
    let mut h = MemoryHost::default();
    for body in ["{", r#"{"run":{"tasks":0,"samples":1,"module":"x"}}"#] {
        assert!(send(&mut h, body).is_err(), "{body}");
    }
    let submit = Message {
        kind: "submit".into(),
        sender: "bob".into(),
        body: Vec::new(),
    };
    assert!(Pi.message(&mut h, &submit).unwrap().is_err());
    assert!(h.state.is_empty());
}
