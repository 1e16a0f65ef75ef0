//! The service scheduler against an in-memory host.

use std::collections::BTreeMap;

use wasmesos_sdk::{Command, MemoryHost, Message, Offer, Resources, TaskState, TaskStatus};

use super::*;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const MIB: u64 = 1 << 20;

fn registration(config: &[(&str, &str)]) -> Registration {
    Registration {
        framework_id: "fw-1".into(),
        name: "web".into(),
        role: "default".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reregistered: false,
    }
}

/// A registered scheduler over an empty state.
fn start() -> (Service, MemoryHost) {
    let mut s = Service::default();
    let mut h = MemoryHost {
        now_ms: 1_000_000,
        ..MemoryHost::default()
    };
    assert_eq!(
        s.registered(&mut h, &registration(&[])).unwrap(),
        [Command::Suppress]
    );
    (s, h)
}

fn send(
    s: &mut Service,
    h: &mut MemoryHost,
    body: &str,
) -> Result<(Vec<Command>, serde_json::Value), String> {
    let msg = Message {
        kind: "user".into(),
        sender: "alice".into(),
        body: body.as_bytes().to_vec(),
    };
    let reply = s.message(h, &msg).unwrap()?;
    Ok((reply.commands, serde_json::from_slice(&reply.body).unwrap()))
}

fn offer(agent: &str, cpus_milli: u64) -> Offer {
    Offer {
        id: format!("o-{agent}"),
        agent_id: agent.into(),
        hostname: "localhost".into(),
        resources: Resources::new(cpus_milli, 4096 * MIB, 0),
        attributes: Vec::new(),
    }
}

fn status(task: &str, state: TaskState) -> TaskStatus {
    TaskStatus {
        task_id: task.into(),
        state,
        message: "exited with code 1".into(),
        exit_code: None,
        agent_id: None,
        timestamp_ms: 0,
        result: None,
        reconciliation: false,
    }
}

/// (task id → agent) of every launch.
fn launched(cmds: &[Command]) -> BTreeMap<String, String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch(l) => Some(l),
            _ => None,
        })
        .flat_map(|l| {
            let agent = l.offer_ids[0].trim_start_matches("o-").to_string();
            l.tasks
                .iter()
                .map(move |t| (t.task_id.clone(), agent.clone()))
        })
        .collect()
}

fn kills(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Kill(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn deploy(s: &mut Service, h: &mut MemoryHost, instances: u32) {
    let (cmds, _) = send(
        s,
        h,
        &format!(r#"{{"deploy":{{"module":"{A}","instances":{instances},"args":["--sleep-ms","600000"]}}}}"#),
    )
    .unwrap();
    assert_eq!(cmds, [Command::Revive]);
}

/// Deploys `n` instances on agents a1..a3 and reports them all RUNNING.
fn running_service(n: u32) -> (Service, MemoryHost) {
    let (mut s, mut h) = start();
    deploy(&mut s, &mut h, n);
    let cmds = s
        .offers(
            &mut h,
            &[offer("a1", 2000), offer("a2", 2000), offer("a3", 2000)],
        )
        .unwrap();
    for id in launched(&cmds).keys() {
        s.status_update(&mut h, &status(id, TaskState::Running))
            .unwrap();
    }
    (s, h)
}

fn summary_of(h: &MemoryHost) -> serde_json::Value {
    serde_json::to_value(summary(h).unwrap()).unwrap()
}

#[test]
fn idle_until_deployed() {
    let (mut s, mut h) = start();
    let cmds = s.offers(&mut h, &[offer("a1", 1000)]).unwrap();
    assert_eq!(
        cmds,
        [cmd::decline(vec!["o-a1".into()], 5.0), Command::Suppress]
    );
    let (cmds, reply) = send(&mut s, &mut h, "").unwrap();
    assert!(cmds.is_empty());
    assert_eq!(reply["generation"], 0);
    assert_eq!(reply["instances"], 0);
}

#[test]
fn a_deploy_launches_n_spread_across_agents() {
    let (mut s, mut h) = start();
    let (cmds, reply) = send(
        &mut s,
        &mut h,
        &format!(r#"{{"deploy":{{"module":"{A}","instances":3,"cpus":0.1,"mem":"64MiB","args":["--sleep-ms","600000"]}}}}"#),
    )
    .unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(
        (reply["instances"].as_u64(), reply["running"].as_u64()),
        (Some(3), Some(0))
    );

    let cmds = s
        .offers(
            &mut h,
            &[offer("a1", 2000), offer("a2", 2000), offer("a3", 2000)],
        )
        .unwrap();
    let placed = launched(&cmds);
    assert_eq!(
        placed,
        BTreeMap::from([
            ("svc-1-0".to_string(), "a1".to_string()),
            ("svc-1-1".to_string(), "a2".to_string()),
            ("svc-1-2".to_string(), "a3".to_string()),
        ])
    );
    assert_eq!(cmds.last(), Some(&Command::Suppress));
    let Command::Launch(l) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    let t = &l.tasks[0];
    assert_eq!((t.name.as_str(), t.module_digest.as_str()), ("web", A));
    assert_eq!(t.args, ["--sleep-ms", "600000"]);
    assert_eq!(t.resources, Resources::new(100, 64 * MIB, 0));

    for id in placed.keys() {
        s.status_update(&mut h, &status(id, TaskState::Starting))
            .unwrap();
        let cmds = s
            .status_update(&mut h, &status(id, TaskState::Running))
            .unwrap();
        assert_eq!(cmds, [Command::Suppress]);
        // Told again (a redelivery or a reconciliation): nothing to do.
        assert!(
            s.status_update(&mut h, &status(id, TaskState::Running))
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(summary_of(&h)["running"], 3);
}

#[test]
fn at_most_ceil_n_over_agents_per_agent() {
    let (mut s, mut h) = start();
    deploy(&mut s, &mut h, 5);
    // Two agents known: at most 3 each, emptiest first.
    let cmds = s
        .offers(&mut h, &[offer("a1", 8000), offer("a2", 8000)])
        .unwrap();
    let placed = launched(&cmds);
    let on_a1 = placed.values().filter(|a| *a == "a1").count();
    assert_eq!((placed.len(), on_a1), (5, 3));

    // With one agent offered of three known, it takes its share only.
    let (mut s, mut h) = start();
    deploy(&mut s, &mut h, 3);
    s.offers(&mut h, &[offer("a2", 0), offer("a3", 0)]).unwrap();
    let cmds = s.offers(&mut h, &[offer("a1", 8000)]).unwrap();
    assert_eq!(launched(&cmds).len(), 1);
    assert!(
        !cmds.contains(&Command::Suppress),
        "two still missing: {cmds:?}"
    );
}

#[test]
fn config_seeds_the_first_deploy_only() {
    let mut s = Service::default();
    let mut h = MemoryHost::default();
    let config = [
        ("module", A),
        ("instances", "2"),
        ("args", "--sleep-ms 600000"),
        ("mem", "16MiB"),
    ];
    let cmds = s.registered(&mut h, &registration(&config)).unwrap();
    assert_eq!(cmds, [Command::Revive]);
    let spec = state::spec(&h).unwrap().unwrap();
    assert_eq!((spec.instances, spec.mem_bytes), (2, 16 * MIB));
    // A message changed it since; a restart with the same config keeps it.
    send(&mut s, &mut h, r#"{"scale":{"instances":4}}"#).unwrap();
    s.registered(&mut h, &registration(&config)).unwrap();
    assert_eq!(state::spec(&h).unwrap().unwrap().instances, 4);
    let bad = Service::default().registered(
        &mut MemoryHost::default(),
        &registration(&[("module", "x")]),
    );
    assert!(bad.unwrap_err().to_string().contains("sha256"));
}

#[test]
fn failed_instances_are_replaced_after_a_doubling_backoff() {
    let (mut s, mut h) = running_service(3);
    h.now_ms += 1000; // ran 1 s: not stable
    let cmds = s
        .status_update(&mut h, &status("svc-1-1", TaskState::Failed))
        .unwrap();
    assert_eq!(
        cmds,
        [Command::Suppress, cmd::set_timer(RESTART_TIMER, 1000)]
    );
    // Offers during the backoff are declined.
    let cmds = s.offers(&mut h, &[offer("a2", 2000)]).unwrap();
    assert!(launched(&cmds).is_empty(), "{cmds:?}");
    assert_eq!(summary_of(&h)["backoff_ms"], 1000);

    h.now_ms += 1000;
    assert_eq!(s.timer(&mut h, RESTART_TIMER).unwrap(), [Command::Revive]);
    // The replacement goes where an instance is missing.
    let cmds = s
        .offers(
            &mut h,
            &[offer("a1", 2000), offer("a2", 2000), offer("a3", 2000)],
        )
        .unwrap();
    assert_eq!(
        launched(&cmds),
        BTreeMap::from([("svc-1-3".to_string(), "a2".to_string())])
    );

    // It fails at once too: twice the delay.
    let cmds = s
        .status_update(&mut h, &status("svc-1-3", TaskState::Lost))
        .unwrap();
    assert_eq!(cmds.last(), Some(&cmd::set_timer(RESTART_TIMER, 2000)));

    // One that ran long enough starts the count again.
    h.now_ms += 60_000;
    let cmds = s
        .status_update(&mut h, &status("svc-1-0", TaskState::Finished))
        .unwrap();
    assert_eq!(cmds.last(), Some(&cmd::set_timer(RESTART_TIMER, 1000)));
}

#[test]
fn an_instance_killed_from_outside_is_replaced() {
    let (mut s, mut h) = running_service(3);
    let cmds = s
        .status_update(&mut h, &status("svc-1-2", TaskState::Killed))
        .unwrap();
    assert!(
        cmds.contains(&cmd::set_timer(RESTART_TIMER, 1000)),
        "{cmds:?}"
    );
    h.now_ms += 1000;
    s.timer(&mut h, RESTART_TIMER).unwrap();
    let cmds = s.offers(&mut h, &[offer("a3", 2000)]).unwrap();
    assert_eq!(launched(&cmds).len(), 1);
    assert_eq!(cmds.last(), Some(&Command::Suppress));
}

#[test]
fn scaling_down_kills_the_extras_without_replacing_them() {
    let (mut s, mut h) = running_service(3);
    let (cmds, reply) = send(&mut s, &mut h, r#"{"scale":{"instances":1}}"#).unwrap();
    let killed = kills(&cmds);
    assert_eq!(killed, ["svc-1-2", "svc-1-1"], "newest first");
    assert_eq!(cmds.last(), Some(&Command::Suppress));
    assert_eq!(
        (reply["running"].as_u64(), reply["killing"].as_u64()),
        (Some(1), Some(2))
    );
    for id in &killed {
        let cmds = s
            .status_update(&mut h, &status(id, TaskState::Killed))
            .unwrap();
        assert_eq!(cmds, [Command::Suppress], "no replacement, no backoff");
    }
    assert_eq!(summary_of(&h)["tasks"].as_array().unwrap().len(), 1);

    // And up again.
    let (cmds, _) = send(&mut s, &mut h, r#"{"deploy":{"instances":2}}"#).unwrap();
    assert_eq!(cmds, [Command::Revive]);
    let cmds = s
        .offers(&mut h, &[offer("a1", 2000), offer("a2", 2000)])
        .unwrap();
    assert_eq!(
        launched(&cmds),
        BTreeMap::from([("svc-1-3".to_string(), "a2".to_string())])
    );
}

#[test]
fn a_rolling_upgrade_replaces_one_instance_at_a_time() {
    let (mut s, mut h) = running_service(3);
    let all = [offer("a1", 2000), offer("a2", 2000), offer("a3", 2000)];
    let (cmds, reply) = send(
        &mut s,
        &mut h,
        &format!(r#"{{"upgrade":{{"module":"{B}"}}}}"#),
    )
    .unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(
        (reply["generation"].as_u64(), reply["old"].as_u64()),
        (Some(2), Some(3))
    );

    let mut old_killed = Vec::new();
    for step in 0..3 {
        let cmds = s.offers(&mut h, &all).unwrap();
        let placed = launched(&cmds);
        assert_eq!(
            placed.len(),
            1,
            "step {step}: one new instance at a time: {cmds:?}"
        );
        let (new_id, _) = placed.into_iter().next().unwrap();
        assert!(new_id.starts_with("svc-2-"), "{new_id}");
        // Nothing more while it starts.
        let cmds = s.offers(&mut h, &all).unwrap();
        assert!(launched(&cmds).is_empty());
        assert!(kills(&cmds).is_empty());
        // It runs: one old instance goes.
        let cmds = s
            .status_update(&mut h, &status(&new_id, TaskState::Running))
            .unwrap();
        let killed = kills(&cmds);
        assert_eq!(killed.len(), 1, "{cmds:?}");
        assert!(killed[0].starts_with("svc-1-"));
        s.status_update(&mut h, &status(&killed[0], TaskState::Killed))
            .unwrap();
        old_killed.extend(killed);
    }
    assert_eq!(old_killed, ["svc-1-0", "svc-1-1", "svc-1-2"]);
    let summary = summary_of(&h);
    assert_eq!(
        (summary["running"].as_u64(), summary["old"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(summary["module"], B);
    let cmds = s.offers(&mut h, &all).unwrap();
    assert!(launched(&cmds).is_empty());
}

#[test]
fn a_restart_reconciles_and_repeats_kills() {
    let (mut s, mut h) = running_service(2);
    send(&mut s, &mut h, r#"{"scale":{"instances":1}}"#).unwrap();
    let mut fresh = Service::default();
    let cmds = fresh.registered(&mut h, &registration(&[])).unwrap();
    assert_eq!(
        cmds,
        [
            cmd::reconcile(vec!["svc-1-0".into(), "svc-1-1".into()]),
            cmd::kill("svc-1-1"),
            Command::Suppress,
        ]
    );
}

#[test]
fn untracked_live_tasks_are_killed_and_other_news_ignored() {
    let (mut s, mut h) = running_service(1);
    let cmds = s
        .status_update(&mut h, &status("svc-9-9", TaskState::Running))
        .unwrap();
    assert_eq!(cmds, [cmd::kill("svc-9-9")]);
    let before = h.state.clone();
    assert!(
        s.status_update(&mut h, &status("svc-9-9", TaskState::Killed))
            .unwrap()
            .is_empty()
    );
    assert!(
        s.status_update(&mut h, &status("other", TaskState::Running))
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.state, before);
}

#[test]
fn a_lost_agent_no_longer_counts_for_the_spread() {
    let (mut s, mut h) = start();
    deploy(&mut s, &mut h, 2);
    s.offers(&mut h, &[offer("a1", 0), offer("a2", 0)]).unwrap();
    assert_eq!(state::agent_count(&h), 2);
    s.agent_lost(&mut h, "a2").unwrap();
    let cmds = s.offers(&mut h, &[offer("a1", 8000)]).unwrap();
    assert_eq!(launched(&cmds).len(), 2, "one agent left: both on it");
}

#[test]
fn bad_messages_are_refused_without_changes() {
    let (mut s, mut h) = running_service(1);
    let before = h.state.clone();
    for body in [
        "{",
        r#"{"scale":{"instances":"many"}}"#,
        r#"{"deploy":{"module":"md5:1"}}"#,
    ] {
        let err = send(&mut s, &mut h, body).unwrap_err();
        assert!(!err.is_empty());
    }
    let msg = Message {
        kind: "submit".into(),
        sender: "bob".into(),
        body: Vec::new(),
    };
    assert!(s.message(&mut h, &msg).unwrap().is_err());
    assert_eq!(h.state, before);
}
