//! The master's rules on crafted cluster states, without a component:
//! valid launches take resources and filter the rest, every kind of
//! invalid launch is refused with its reason and an ERROR update, offers
//! lapse unless held, declines filter until revive, holds and timers are
//! capped, kills and reconciliation answer with states.

use std::time::Duration;

use wasmesos_api::proto::{JobState, TaskState};
use wasmesos_api::{AgentId, Digest, OfferId, Resources, TaskId};

use super::*;
use crate::event::{Limits, TaskStatus};
use crate::harness::cluster::{AgentSpec, Due, SimJob};

const MIB: u64 = 1 << 20;

/// A cluster of `n` default agents, and the offers of one round.
fn cluster(n: usize) -> (Cluster, HarnessConfig, Vec<OfferId>) {
    let config = HarnessConfig::with_agents(n);
    let mut c = Cluster::new(config.framework_id.clone(), "default".into(), 0);
    for a in &config.agents {
        c.add_agent(a).unwrap();
    }
    let offers = c.allocate(None).into_iter().map(|o| o.id).collect();
    (c, config, offers)
}

fn task(id: &str, cpus: f64, mem: u64) -> TaskLaunch {
    TaskLaunch {
        task_id: TaskId::new(id).unwrap(),
        name: id.to_string(),
        module_digest: Digest::of(b"m"),
        args: vec![],
        env: vec![],
        resources: Resources::new(cpus, mem, 0),
        limits: Limits::default(),
    }
}

fn launch(offers: &[&OfferId], tasks: Vec<TaskLaunch>) -> Command {
    Command::Launch {
        offer_ids: offers.iter().map(|o| (*o).clone()).collect(),
        tasks,
    }
}

fn oid(id: &str) -> OfferId {
    OfferId::new(id).unwrap()
}

fn statuses(applied: &Applied) -> Vec<(String, TaskState, String)> {
    applied
        .events
        .iter()
        .map(|e| match e {
            Event::StatusUpdate(TaskStatus {
                task_id,
                state,
                message,
                ..
            }) => (task_id.to_string(), *state, message.clone()),
            other => panic!("not a status: {other:?}"),
        })
        .collect()
}

#[test]
fn a_valid_launch_takes_its_resources_and_filters_the_rest() {
    let (mut c, config, offers) = cluster(1);
    let applied = c.apply(
        &config,
        &offers,
        &[launch(&[&offers[0]], vec![task("t1", 1.0, 64 * MIB)])],
    );
    assert!(applied.invalid.is_empty(), "{:?}", applied.invalid);
    assert_eq!(applied.launches[0].tasks, [TaskId::new("t1").unwrap()]);
    assert_eq!(applied.launches[0].agent.as_str(), "agent-1");
    assert_eq!(
        statuses(&applied),
        [("t1".to_string(), TaskState::Running, String::new())]
    );
    assert!(applied.lapsed.is_empty());
    assert_eq!(c.offers().count(), 0, "the offer is consumed");
    let agent = AgentId::new("agent-1").unwrap();
    assert_eq!(c.agents[&agent].allocated, Resources::new(1.0, 64 * MIB, 0));
    // What the task did not take is filtered: the same free resources are
    // not offered again at once.
    assert!(c.allocate(None).is_empty());
    assert!(c.why_no_offers().contains("filtered"));
}

#[test]
fn invalid_launches_are_refused_with_reasons_and_error_updates() {
    let (mut c, config, offers) = cluster(2);
    let (o1, o2) = (&offers[0], &offers[1]);
    let applied = c.apply(
        &config,
        &offers,
        &[
            launch(&[&oid("o-99")], vec![task("a", 1.0, MIB)]),
            launch(&[o1, o2], vec![task("b", 1.0, MIB)]),
            launch(&[o1, o1], vec![task("c", 1.0, MIB)]),
            launch(&[], vec![task("d", 1.0, MIB)]),
            launch(
                &[o1],
                vec![
                    task("e", 1.0, 0),
                    task("f", 8.0, MIB),
                    task("g", 1.0, MIB),
                    task("g", 1.0, MIB),
                ],
            ),
            launch(&[o1], vec![task("h", 1.0, MIB)]),
        ],
    );
    let reasons: Vec<(usize, &str, &str)> = applied
        .invalid
        .iter()
        .map(|i| {
            (
                i.command,
                i.task.as_ref().unwrap().as_str(),
                i.reason.as_str(),
            )
        })
        .collect();
    let expect = [
        (
            0,
            "a",
            "offer o-99 is not valid: it lapsed, was used or was rescinded",
        ),
        (1, "b", "a launch may use offers of one agent only"),
        (2, "c", "is named twice"),
        (3, "d", "the launch names no offers"),
        (4, "e", "the task asks for no memory"),
        (
            4,
            "f",
            "the task needs cpus:8,mem:1MiB but its offers have only cpus:4,",
        ),
        (4, "g", "task id g is already in use"),
        (5, "h", "is not valid: it lapsed, was used or was rescinded"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((command, task, reason), (want_cmd, want_task, want)) in reasons.iter().zip(expect) {
        assert_eq!((*command, *task), (want_cmd, want_task));
        assert!(reason.contains(want), "{task}: {reason}");
    }
    // Each refused task got an ERROR update with the reason; g launched.
    let updates = statuses(&applied);
    let errors: Vec<&str> = updates
        .iter()
        .filter(|(_, s, _)| *s == TaskState::Error)
        .map(|(t, _, _)| t.as_str())
        .collect();
    assert_eq!(errors, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    assert!(updates.contains(&("g".into(), TaskState::Running, String::new())));
    assert_eq!(c.task("e").unwrap().state, TaskState::Error);
    assert!(!c.task("e").unwrap().launched);
    assert_eq!(
        c.task("g").unwrap().state,
        TaskState::Running,
        "the first g stays"
    );
    // o-2 was never used: it lapsed.
    assert_eq!(applied.lapsed, std::slice::from_ref(o2));
}

#[test]
fn an_attempt_of_a_finished_job_is_refused() {
    let (mut c, config, offers) = cluster(1);
    c.jobs.insert(
        "job-1".into(),
        SimJob {
            id: "job-1".into(),
            max_attempts: 2,
            state: JobState::Finished,
            attempts: vec![TaskId::new("job-1.1").unwrap()],
            exit_code: Some(0),
            message: String::new(),
        },
    );
    let applied = c.apply(
        &config,
        &offers,
        &[launch(&[&offers[0]], vec![task("job-1.2", 1.0, MIB)])],
    );
    assert!(
        applied.invalid[0]
            .reason
            .contains("job job-1 is already FINISHED")
    );
}

#[test]
fn declines_filter_until_revive_and_suppress_stops_offers() {
    let (mut c, config, offers) = cluster(1);
    let decline = Command::Decline {
        offer_ids: offers.clone(),
        refuse: Duration::from_secs(10),
    };
    let applied = c.apply(&config, &offers, &[decline]);
    assert!(applied.lapsed.is_empty(), "declined, not lapsed");
    assert!(c.allocate(None).is_empty());
    c.now_ms = 10_000;
    assert_eq!(c.allocate(None).len(), 1, "the filter expired");

    let (mut c, config, offers) = cluster(1);
    c.apply(&config, &offers, &[]);
    assert!(c.allocate(None).is_empty(), "a lapse filters too");
    c.apply(&config, &[], &[Command::Revive]);
    let again: Vec<OfferId> = c.allocate(None).into_iter().map(|o| o.id).collect();
    assert_eq!(again.len(), 1, "revive cleared the filter");
    c.apply(
        &config,
        &again,
        &[Command::Suppress, Command::Revive, Command::Suppress],
    );
    c.filters.clear();
    assert!(c.allocate(None).is_empty());
    assert_eq!(c.why_no_offers(), "the framework is suppressed");
}

#[test]
fn holds_are_capped_and_outlive_the_callback() {
    let (mut c, mut config, offers) = cluster(2);
    config.max_held_offers = 1;
    let hold = Command::Hold {
        offer_ids: offers.clone(),
        duration: Duration::from_secs(600),
    };
    let applied = c.apply(&config, &offers, &[hold]);
    assert_eq!(c.held_offers(), 1);
    let (held, _) = c.offers().next().unwrap();
    let held = held.clone();
    assert_eq!(c.offers[&held].held_until_ms, Some(60_000), "capped at 60s");
    assert!(applied.notes.iter().any(|n| n.contains("capped")));
    assert!(applied.notes.iter().any(|n| n.contains("already holds 1")));
    assert_eq!(applied.lapsed.len(), 1);
    // A later callback (a timer, say) may launch on the held offer.
    let later = c.apply(&config, &[], &[launch(&[&held], vec![task("t", 1.0, MIB)])]);
    assert!(later.invalid.is_empty(), "{:?}", later.invalid);
    assert_eq!(c.held_offers(), 0);
}

#[test]
fn kills_and_reconciliation_answer_with_states() {
    let (mut c, config, offers) = cluster(1);
    c.apply(
        &config,
        &offers,
        &[launch(
            &[&offers[0]],
            vec![task("t1", 1.0, MIB), task("t2", 1.0, MIB)],
        )],
    );
    let applied = c.apply(
        &config,
        &[],
        &[
            Command::Kill(TaskId::new("t1").unwrap()),
            Command::Kill(TaskId::new("nope").unwrap()),
            Command::Reconcile(vec![]),
            Command::Reconcile(vec![
                TaskId::new("t1").unwrap(),
                TaskId::new("ghost").unwrap(),
            ]),
        ],
    );
    let updates = statuses(&applied);
    assert_eq!(
        updates
            .iter()
            .map(|(t, s, _)| (t.as_str(), *s))
            .collect::<Vec<_>>(),
        [
            ("t1", TaskState::Killed),
            ("t2", TaskState::Running),
            ("t1", TaskState::Killed),
            ("ghost", TaskState::Lost),
        ]
    );
    assert_eq!(updates[3].2, "the master knows no such task");
    assert!(applied.notes[0].contains("kill of nope ignored"));
    let agent = AgentId::new("agent-1").unwrap();
    assert_eq!(c.agents[&agent].allocated, Resources::new(1.0, MIB, 0));
}

#[test]
fn timers_are_set_replaced_cancelled_and_capped() {
    let (mut c, mut config, _) = cluster(1);
    config.max_timers = 2;
    let set = |id: &str, ms: u64| Command::SetTimer {
        id: id.into(),
        after: Duration::from_millis(ms),
    };
    let applied = c.apply(
        &config,
        &[],
        &[set("a", 500), set("b", 100), set("a", 50), set("c", 1)],
    );
    assert_eq!(
        c.timers(),
        ["a", "b"],
        "a replaced (now first); c over the cap"
    );
    assert!(applied.notes[0].contains("timer c refused"));
    c.apply(&config, &[], &[Command::CancelTimer("a".into())]);
    assert_eq!(c.timers(), ["b"]);
}

#[test]
fn timers_and_holds_come_due_in_time_order() {
    let (mut c, config, offers) = cluster(1);
    let set = |id: &str, ms: u64| Command::SetTimer {
        id: id.into(),
        after: Duration::from_millis(ms),
    };
    let hold = Command::Hold {
        offer_ids: offers.clone(),
        duration: Duration::from_millis(200),
    };
    c.apply(
        &config,
        &offers,
        &[set("late", 300), set("b", 200), set("a", 200), hold],
    );
    assert_eq!(c.next_due(199), None);
    assert_eq!(
        c.next_due(250),
        Some((200, Due::Hold(offers[0].clone()))),
        "holds first"
    );
    c.offers.clear();
    assert_eq!(
        c.next_due(250),
        Some((200, Due::Timer("b".into()))),
        "then as set"
    );
    c.timers.remove("b");
    assert_eq!(c.next_due(250), Some((200, Due::Timer("a".into()))));
    c.timers.remove("a");
    assert_eq!(c.next_due(250), None);
    assert_eq!(c.next_due(300), Some((300, Due::Timer("late".into()))));
}

#[test]
fn agents_are_numbered_from_one() {
    assert_eq!(
        AgentSpec::numbered(3, Resources::empty()).id.as_str(),
        "agent-3"
    );
}
