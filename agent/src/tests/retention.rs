//! Finished tasks' directories are removed after the retention count and
//! age, oldest first, also those an earlier agent process left; their logs
//! then say they were removed.

use std::time::Duration;

use tokio::sync::mpsc;
use wasmesos_api::proto::{self, LogRequest, LogStream, TaskState, agent_message};

use super::{Agent, Setup, module};
use crate::retention::RetentionPolicy;
use crate::tasks::LogSource;

fn keep(n: usize) -> Setup {
    Setup {
        retention: RetentionPolicy {
            keep: n,
            max_age: Duration::from_secs(3600),
        },
        ..Setup::default()
    }
}

/// Waits (a bounded while) for `cond`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn the_oldest_finished_tasks_are_removed_beyond_the_count() {
    let mut agent = Agent::new(keep(2));
    let digest = agent.module(&module(r#"(func (export "_start"))"#));
    for t in ["t1", "t2", "t3"] {
        agent.launch(t, &digest, 0.1, proto::Limits::default());
        agent.until_end(t).await;
    }
    eventually("t1's removal", || !agent.task_dir("t1").exists()).await;
    assert!(agent.task_dir("t2").exists());
    assert!(agent.task_dir("t3").join("sandbox").exists());
    assert_eq!(agent.tasks.finished_kept(), 2);

    assert!(matches!(
        agent.tasks.log_source("fw", "t1", LogStream::Stdout),
        Some(LogSource::Removed)
    ));
    assert!(
        agent
            .tasks
            .log_source("fw", "nope", LogStream::Stdout)
            .is_none()
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = LogRequest {
        request_id: 7,
        framework_id: "fw".into(),
        task_id: "t1".into(),
        stream: LogStream::Stdout as i32,
        follow: false,
        tail_bytes: 0,
    };
    crate::logs::serve(agent.tasks.clone(), req, tx, Default::default()).await;
    match rx.recv().await.and_then(|m| m.msg) {
        Some(agent_message::Msg::Log(data)) => {
            assert!(data.eof);
            assert_eq!(
                data.error,
                "logs of t1 were removed after the retention period"
            );
        }
        other => panic!("expected a log error, got {other:?}"),
    }
}

#[tokio::test]
async fn tasks_past_the_age_are_removed() {
    let mut agent = Agent::new(Setup {
        retention: RetentionPolicy {
            keep: 100,
            max_age: Duration::from_millis(200),
        },
        ..Setup::default()
    });
    let digest = agent.module(&module(r#"(func (export "_start"))"#));
    agent.launch("t1", &digest, 0.1, proto::Limits::default());
    assert_eq!(agent.until_end("t1").await.state(), TaskState::Finished);
    assert!(agent.task_dir("t1").exists());
    eventually("t1's removal by age", || !agent.task_dir("t1").exists()).await;
}

#[tokio::test]
async fn a_restarted_agent_counts_the_tasks_it_finds() {
    let mut agent = Agent::new(keep(10));
    let digest = agent.module(&module(r#"(func (export "_start"))"#));
    for t in ["t1", "t2", "t3"] {
        agent.launch(t, &digest, 0.1, proto::Limits::default());
        agent.until_end(t).await;
        // Distinct end times, for a deterministic order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Agent { work, tasks, .. } = agent;
    drop(tasks);

    let restarted = Agent::in_dir(work, keep(1));
    eventually("the older tasks' removal", || {
        !restarted.task_dir("t1").exists() && !restarted.task_dir("t2").exists()
    })
    .await;
    assert!(restarted.task_dir("t3").exists());
    assert_eq!(restarted.tasks.finished_kept(), 1);
    // Logs of a task an earlier process ran are read from its files.
    assert!(matches!(
        restarted.tasks.log_source("fw", "t3", LogStream::Stdout),
        Some(LogSource::File(_))
    ));
}
