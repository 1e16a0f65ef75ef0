//! Tasks run on their own pool: the agent's runtime (heartbeats, the
//! stream, status updates) keeps going while every task thread spins; at
//! most `max_tasks` run at once and the rest wait in STARTING.

use std::time::{Duration, Instant};

use wasmesos_api::proto::{Limits, TaskState};

use super::{Agent, Setup, module, spin};

/// Runs on the test's own (current-thread) runtime, standing in for the
/// agent's networking runtime.
#[tokio::test(flavor = "current_thread")]
async fn heartbeats_and_updates_flow_while_the_task_threads_are_saturated() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&spin());
    let spinners = ["s1", "s2", "s3", "s4"];
    for s in spinners {
        agent.launch(s, &digest, 0.0, Limits::default());
    }
    for s in spinners {
        agent.until(s, TaskState::Running).await;
    }

    let mut heartbeat = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut ticks = 0;
    while started.elapsed() < Duration::from_millis(500) {
        heartbeat.tick().await;
        ticks += 1;
    }
    // About 50 when the host is idle; a starved runtime would manage a few.
    assert!(ticks >= 15, "only {ticks} heartbeats in 500 ms");

    // A new task still gets through while the spinners run (its updates
    // reach the outbox), and kills reach the spinners.
    let quick = agent.module(&module(r#"(func (export "_start"))"#));
    agent.launch("quick", &quick, 0.1, Limits::default());
    assert_eq!(agent.until_end("quick").await.state(), TaskState::Finished);
    for s in spinners {
        agent.tasks.kill("fw", s);
    }
    for s in spinners {
        let end = agent.until_end(s).await;
        assert_eq!(end.state(), TaskState::Killed);
        assert!(end.usage.unwrap().cpu_ms > 0);
    }
}

#[tokio::test]
async fn beyond_max_tasks_a_task_waits_for_a_slot() {
    let mut agent = Agent::new(Setup {
        max_tasks: 1,
        ..Setup::default()
    });
    let digest = agent.module(&spin());
    agent.launch("first", &digest, 0.0, Limits::default());
    agent.until("first", TaskState::Running).await;
    agent.launch("second", &digest, 0.0, Limits::default());
    agent.until("second", TaskState::Starting).await;
    // It stays STARTING while the first runs.
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        agent.until("second", TaskState::Running),
    )
    .await;
    assert!(waited.is_err(), "the second task ran beside the first");
    agent.tasks.kill("fw", "first");
    assert_eq!(agent.until_end("first").await.state(), TaskState::Killed);
    agent.until("second", TaskState::Running).await;

    // A task killed while it waits for a slot ends without running.
    agent.launch("third", &digest, 0.0, Limits::default());
    agent.until("third", TaskState::Starting).await;
    agent.tasks.kill("fw", "third");
    let end = agent.until_end("third").await;
    assert_eq!(end.state(), TaskState::Killed);
    assert_eq!(end.message, "killed before it started");
    agent.tasks.kill("fw", "second");
    assert_eq!(agent.until_end("second").await.state(), TaskState::Killed);
}
