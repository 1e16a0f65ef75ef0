//! Tasks over time: following logs, killing, and state that outlives a
//! restart.

use crate::harness::{Cluster, Up, eventually};

#[test]
fn a_running_task_can_be_followed_and_killed() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "submit",
        &hello,
        "--",
        "--print-lines",
        "3",
        "--sleep-ms",
        "600000",
    ]);
    let task = format!("{}.1", r.stdout.trim());
    c.wait_for_state(&task, "RUNNING");
    let logs = eventually("the task's first lines", || {
        let r = c.run(&["logs", &task, "--stdout"]);
        r.stdout.contains("line 3").then_some(r)
    });
    assert!(logs.stdout.contains("line 1"), "{logs:?}");

    // A follower ends when the task does.
    let follower =
        crate::harness::with_credentials(&mut std::process::Command::new(crate::harness::bin()))
            .args(["logs", &task, "--follow", "--master", &c.master])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let kill = c.run(&["task", "kill", &task]);
    assert_eq!(kill.code, 0, "{kill:?}");
    c.wait_for_state(&task, "KILLED");
    let followed: crate::harness::Run = follower.wait_with_output().unwrap().into();
    assert_eq!(followed.code, 0, "{followed:?}");
    assert!(followed.stdout.contains("line 3"), "{followed:?}");
    let again = c.run(&["task", "kill", &task]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already ended"), "{again:?}");
}

#[test]
fn a_restarted_up_still_lists_finished_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hello = dir.path().join("hello.wasm");
    std::fs::write(&hello, wasmesos_builtin::HELLO_TASK).unwrap();
    let hello = hello.display().to_string();

    let up = Up::start(&data);
    let r = up.run(&["submit", &hello, "--wait", "--name", "before-restart"]);
    assert_eq!(r.code, 0, "{r:?}");
    up.stop();

    let up = Up::start(&data);
    let tasks = up.run(&["tasks"]);
    let line = tasks
        .stdout
        .lines()
        .find(|l| l.contains("before-restart"))
        .unwrap_or_else(|| panic!("finished task missing after restart: {tasks:?}"));
    assert!(line.contains("FINISHED"), "{tasks:?}");
    let logs = up.run(&["logs", line.split_whitespace().next().unwrap()]);
    assert!(logs.stdout.contains("hello from wasmesos!"), "{logs:?}");
    // And it still runs new work.
    let again = up.run(&["submit", &hello, "--wait"]);
    assert_eq!(again.code, 0, "{again:?}");
}
