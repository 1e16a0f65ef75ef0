//! A task's `result` file travels with its terminal status update; usage
//! carries CPU time.

use wasmesos_api::proto::{Limits, TaskState};

use super::{Agent, Setup, module, spin};

/// Writes `times` copies of "42\n" to `result`, then exits with `code`.
fn writes_result(times: u32, code: i32) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 4096) "result")
           (data (i32.const 4160) "42\n")
           (func (export "_start")
             (call $write_file (i32.const 4096) (i32.const 6) (i32.const 4160) (i32.const 3) (i32.const {times}))
             (call $proc_exit (i32.const {code})))"#
    ))
}

#[tokio::test]
async fn a_small_result_is_sent_with_the_terminal_update() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&writes_result(1, 0));
    agent.launch("t1", &digest, 0.1, Limits::default());
    let end = agent.until_end("t1").await;
    assert_eq!(end.state(), TaskState::Finished);
    assert_eq!(end.result, b"42\n");
    assert_eq!(end.message, "");
}

#[tokio::test]
async fn a_failed_task_sends_its_result_too() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&writes_result(2, 3));
    agent.launch("t1", &digest, 0.1, Limits::default());
    let end = agent.until_end("t1").await;
    assert_eq!(end.state(), TaskState::Failed);
    assert_eq!(end.exit_code, Some(3));
    assert_eq!(end.result, b"42\n42\n");
}

#[tokio::test]
async fn a_result_over_64_kib_is_dropped_and_said_so() {
    let mut agent = Agent::new(Setup::default());
    // 3 × 25,000 = 75,000 bytes.
    let digest = agent.module(&writes_result(25_000, 0));
    agent.launch("t1", &digest, 0.1, Limits::default());
    let end = agent.until_end("t1").await;
    assert_eq!(end.state(), TaskState::Finished, "{}", end.message);
    assert!(end.result.is_empty());
    assert!(
        end.message.contains("result dropped") && end.message.contains("at most 64KiB"),
        "{}",
        end.message
    );
}

#[tokio::test]
async fn no_result_file_no_result() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&module(r#"(func (export "_start"))"#));
    agent.launch("t1", &digest, 0.1, Limits::default());
    let end = agent.until_end("t1").await;
    assert_eq!(end.state(), TaskState::Finished);
    assert!(end.result.is_empty());
    let usage = end.usage.unwrap();
    assert_eq!(
        usage.fuel_consumed, 0,
        "no fuel limit: the epoch-only engine"
    );
}

#[tokio::test]
async fn usage_reports_cpu_time_and_fuel_where_metered() {
    let mut agent = Agent::new(Setup::default());
    let digest = agent.module(&spin());
    let limits = Limits {
        timeout_ms: 300,
        ..Limits::default()
    };
    agent.launch("spin", &digest, 1.0, limits);
    let end = agent.until_end("spin").await;
    assert_eq!(end.state(), TaskState::Failed);
    assert_eq!(end.message, "timed out after 300ms");
    let usage = end.usage.unwrap();
    assert!(usage.cpu_ms > 0, "{usage:?}");
    assert!(usage.cpu_ms <= usage.wall_ms + 5, "{usage:?}");

    let metered = Limits {
        fuel: 1_000_000,
        ..Limits::default()
    };
    agent.launch("fuel", &digest, 1.0, metered);
    let end = agent.until_end("fuel").await;
    assert_eq!(end.state(), TaskState::Failed);
    assert_eq!(end.message, "fuel exhausted after 1000000 units");
    assert_eq!(end.usage.unwrap().fuel_consumed, 1_000_000);
}
