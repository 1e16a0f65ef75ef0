//! Submitting the hello task and getting its output and exit code back.

use crate::harness::{Cluster, eventually};

#[test]
fn hello_runs_end_to_end_with_args_and_env() {
    let c = Cluster::start();
    let hello = c.hello();
    let r = c.run(&[
        "submit",
        &hello.display().to_string(),
        "--wait",
        "--env",
        "GREETING=hi",
        "--",
        "arg1",
        "arg2",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("hello from wasmesos!"), "{r:?}");
    assert!(r.stdout.contains("arg: arg1"), "{r:?}");
    assert!(r.stdout.contains("arg: arg2"), "{r:?}");
    assert!(r.stdout.contains("env: GREETING=hi"), "{r:?}");
    // Only what the spec gives: nothing inherited from the agent.
    assert!(!r.stdout.contains("env: PATH="), "{r:?}");
}

#[test]
fn exit_codes_and_stderr_come_back() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "submit", &hello, "--wait", "--", "--stderr", "oops", "--exit", "3",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("oops"), "{r:?}");
    assert!(
        r.stderr.contains("FAILED") && r.stderr.contains("exited with code 3"),
        "{r:?}"
    );
}

#[test]
fn a_trapping_task_fails_with_the_trap_and_the_cluster_keeps_serving() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&["submit", &hello, "--wait", "--", "--trap"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("FAILED"), "{r:?}");
    assert!(r.stderr.contains("unreachable"), "{r:?}");
    let again = c.run(&["submit", &hello, "--wait"]);
    assert_eq!(again.code, 0, "{again:?}");
}

#[test]
fn submit_prints_the_job_id_and_tasks_lists_it() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "submit", &hello, "--name", "nightly", "--cpus", "0.5", "--mem", "64MiB",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let job = r.stdout.trim().to_string();
    assert!(job.starts_with("job-"), "{r:?}");
    let task = format!("{job}.1");
    c.wait_for_state(&task, "FINISHED");
    let tasks = c.run(&["tasks"]);
    let line = tasks.stdout.lines().find(|l| l.starts_with(&task)).unwrap();
    assert!(
        line.contains("nightly") && line.contains("jobs"),
        "{tasks:?}"
    );
    let show = c.run(&["task", "show", &task]);
    assert!(show.stdout.contains("cpus:0.5,mem:64MiB"), "{show:?}");
    let logs = c.run(&["logs", &task]);
    assert!(logs.stdout.contains("hello from wasmesos!"), "{logs:?}");
}

#[test]
fn many_queued_jobs_all_finish() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let mut jobs = Vec::new();
    for _ in 0..30 {
        let r = c.run(&["submit", &hello, "--cpus", "0.5"]);
        assert_eq!(r.code, 0, "{r:?}");
        jobs.push(r.stdout.trim().to_string());
    }
    eventually("every job to finish", || {
        let r = c.run(&["tasks", "--state", "finished"]);
        jobs.iter()
            .all(|j| r.stdout.contains(&format!("{j}.1 ")))
            .then_some(())
    });
    let agents = c.run(&["agents"]);
    assert!(
        agents.stdout.contains("0/2"),
        "all resources are free again: {agents:?}"
    );
}

#[test]
fn the_same_idempotency_key_gives_the_same_job() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let first = c.run(&["submit", &hello, "--idempotency-key", "nightly-2026-11-25"]);
    let second = c.run(&["submit", &hello, "--idempotency-key", "nightly-2026-11-25"]);
    let other = c.run(&["submit", &hello, "--idempotency-key", "nightly-2026-11-26"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout, second.stdout);
    assert_ne!(first.stdout, other.stdout);
}

#[test]
fn limits_in_the_submission_reach_the_task() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let timed_out = c.run(&[
        "submit",
        &hello,
        "--wait",
        "--timeout",
        "300ms",
        "--",
        "--spin",
    ]);
    assert_eq!(timed_out.code, 1, "{timed_out:?}");
    assert!(timed_out.stderr.contains("timed out"), "{timed_out:?}");

    let fuel = c.run(&[
        "submit", &hello, "--wait", "--fuel", "1000000", "--", "--spin",
    ]);
    assert_eq!(fuel.code, 1, "{fuel:?}");
    assert!(fuel.stderr.contains("fuel"), "{fuel:?}");

    let memory = c.run(&[
        "submit",
        &hello,
        "--wait",
        "--mem",
        "16MiB",
        "--",
        "--alloc-mib",
        "64",
    ]);
    assert_eq!(memory.code, 1, "{memory:?}");
    assert!(
        memory.stderr.contains("memory limit 16MiB exceeded"),
        "{memory:?}"
    );

    // The same task within its limits.
    let fits = c.run(&[
        "submit",
        &hello,
        "--wait",
        "--mem",
        "64MiB",
        "--",
        "--alloc-mib",
        "8",
    ]);
    assert_eq!(fits.code, 0, "{fits:?}");
}

#[test]
fn the_sandbox_is_the_tasks_only_filesystem() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let ok = c.run(&["submit", &hello, "--wait", "--", "--write", "note.txt"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let escape = c.run(&[
        "submit",
        &hello,
        "--wait",
        "--",
        "--write",
        "../escaped.txt",
    ]);
    assert_ne!(escape.code, 0, "{escape:?}");
    assert!(!c.dir.path().join("agent/tasks/escaped.txt").exists());
}
