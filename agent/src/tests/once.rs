//! Exactly-once launches: a task is started at most once per agent work
//! dir, across agent restarts.

use wasmesos_api::proto::{Limits, TaskState};

use super::{Agent, Setup, module};

/// Appends a line to `count` in its sandbox each time it runs.
fn counts_runs() -> Vec<u8> {
    module(
        r#"(data (i32.const 4096) "count")
           (data (i32.const 4160) "ran\n")
           (func (export "_start")
             (call $write_file (i32.const 4096) (i32.const 5) (i32.const 4160) (i32.const 4) (i32.const 1)))"#,
    )
}

#[tokio::test]
async fn a_launch_seen_before_is_not_run_again_even_after_a_restart() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&counts_runs());
    agent.launch("t1", &digest, 0.1, Limits::default());
    assert_eq!(agent.until_end("t1").await.state(), TaskState::Finished);

    // The same launch again (a master resending it), by a new agent process
    // on the same work dir.
    let work = agent.work;
    let mut again = Agent::in_dir(work, Setup::default());
    again.launch("t1", &digest, 0.1, Limits::default());
    let end = again.until_end("t1").await;
    assert_eq!(end.state(), TaskState::Lost);
    assert!(end.message.contains("not started again"), "{}", end.message);
    let count = std::fs::read_to_string(again.task_dir("t1").join("sandbox/count")).unwrap();
    assert_eq!(count, "ran\n", "the task ran exactly once");
}
