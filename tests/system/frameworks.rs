//! Framework schedulers deployed into a real master: their life cycle, and
//! that a misbehaving one cannot hurt the master or its neighbours.

use crate::harness::{Cluster, eventually, wasmesos};

fn write(c: &Cluster, name: &str, bytes: &[u8]) -> String {
    let path = c.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn deploy_message_show_and_remove() {
    let c = Cluster::start();
    let chaos = write(&c, "chaos.wasm", wasmesos_builtin::CHAOS_SCHEDULER);
    let r = c.run(&[
        "framework",
        "deploy",
        &chaos,
        "--name",
        "chaos",
        "--role",
        "test",
        "--config",
        "a=b",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let list = c.run(&["frameworks"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("chaos") && l.contains("test")),
        "{list:?}"
    );
    let echo = c.run(&["framework", "send", "chaos", "echo"]);
    assert_eq!(echo.stdout.trim(), "echo", "{echo:?}");
    let show = c.run(&["framework", "show", "chaos"]);
    assert!(
        show.stdout.contains("a=b") && show.stdout.contains("running"),
        "{show:?}"
    );

    let gone = c.run(&["framework", "remove", "chaos"]);
    assert_eq!(gone.code, 0, "{gone:?}");
    let again = c.run(&["framework", "send", "chaos", "echo"]);
    assert!(
        again.stderr.contains("no framework named 'chaos'"),
        "{again:?}"
    );
    let builtin = c.run(&["framework", "remove", "jobs"]);
    assert!(builtin.stderr.contains("built in"), "{builtin:?}");
}

#[test]
fn bad_deployments_are_refused_clearly() {
    let c = Cluster::start();
    let chaos = write(&c, "chaos.wasm", wasmesos_builtin::CHAOS_SCHEDULER);
    let hello = c.hello().display().to_string();
    let core = c.run(&["framework", "deploy", &hello, "--name", "h"]);
    assert_ne!(core.code, 0);
    assert!(
        core.stderr.contains("core module, not a component"),
        "{core:?}"
    );
    let text = write(&c, "notes.txt", b"not wasm at all");
    let garbage = c.run(&["framework", "deploy", &text, "--name", "t"]);
    assert!(
        garbage.stderr.contains("not a WebAssembly binary"),
        "{garbage:?}"
    );
    let config = c.run(&[
        "framework",
        "deploy",
        &chaos,
        "--name",
        "x",
        "--config",
        "novalue",
    ]);
    assert!(
        config.stderr.contains("'novalue' is not KEY=VALUE"),
        "{config:?}"
    );
    let name = c.run(&["framework", "deploy", &chaos, "--name", "bad/name"]);
    assert!(name.stderr.contains("framework name"), "{name:?}");
    assert_eq!(
        c.run(&["framework", "deploy", &chaos, "--name", "chaos"])
            .code,
        0
    );
    let taken = c.run(&["framework", "deploy", &chaos, "--name", "chaos"]);
    assert!(taken.stderr.contains("already exists"), "{taken:?}");
    let big = write(&c, "big.json", &vec![b'x'; 1_100_000]);
    let oversized = c.run(&["framework", "send", "chaos", "--file", &big]);
    assert!(
        oversized.stderr.contains("the limit is 1048576"),
        "{oversized:?}"
    );
}

#[test]
fn a_misbehaving_scheduler_is_restarted_and_its_neighbours_keep_working() {
    let c = Cluster::start();
    let chaos = write(&c, "chaos.wasm", wasmesos_builtin::CHAOS_SCHEDULER);
    assert_eq!(
        c.run(&["framework", "deploy", &chaos, "--name", "chaos"])
            .code,
        0
    );
    let hello = c.hello().display().to_string();
    for word in ["trap", "loop", "alloc"] {
        let r = c.run(&["framework", "send", "chaos", word]);
        assert_ne!(r.code, 0, "{word}: {r:?}");
        // Meanwhile the jobs framework serves as usual.
        let ok = c.run(&["submit", &hello, "--wait"]);
        assert_eq!(ok.code, 0, "after {word}: {ok:?}");
        // And chaos itself comes back.
        eventually(&format!("chaos to recover after {word}"), || {
            let r = c.run(&["framework", "send", "chaos", "echo"]);
            (r.code == 0).then_some(())
        });
    }
    let show = c.run(&["framework", "show", "chaos"]);
    assert!(
        show.stdout.contains("chaos: trap requested"),
        "the panic is in the log: {show:?}"
    );
    assert!(
        show.stdout.contains("time limit") || show.stdout.contains("fuel budget"),
        "the loop was stopped by a limit: {show:?}"
    );
    assert!(show.stdout.contains("memory limit"), "{show:?}");
}

#[test]
fn a_scheduler_that_never_starts_is_marked_failed() {
    let c = Cluster::start();
    let chaos = write(&c, "chaos.wasm", wasmesos_builtin::CHAOS_SCHEDULER);
    let r = c.run(&[
        "framework",
        "deploy",
        &chaos,
        "--name",
        "broken",
        "--config",
        "on-registered=trap",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    eventually("the framework to be FAILED", || {
        let list = c.run(&["frameworks"]);
        list.stdout
            .lines()
            .any(|l| l.starts_with("broken") && l.contains("FAILED"))
            .then_some(())
    });
    let send = c.run(&["framework", "send", "broken", "echo"]);
    assert!(send.stderr.contains("FAILED"), "{send:?}");
}

#[test]
fn upgrade_keeps_state_and_a_failed_upgrade_keeps_the_old_scheduler() {
    let c = Cluster::start();
    let jobs = write(&c, "jobs.wasm", wasmesos_builtin::JOBS_SCHEDULER);
    let chaos = write(&c, "chaos.wasm", wasmesos_builtin::CHAOS_SCHEDULER);
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "framework",
        "deploy",
        &jobs,
        "--name",
        "batch",
        "--config",
        "on-registered=trap",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    // Two jobs that can never fit stay queued in the scheduler's state.
    let mut queued = Vec::new();
    for _ in 0..2 {
        let s = c.run(&["submit", &hello, "--framework", "batch", "--cpus", "64"]);
        assert_eq!(s.code, 0, "{s:?}");
        queued.push(s.stdout.trim().to_string());
    }
    let before = c.run(&["framework", "send", "batch", "status"]);
    assert!(before.stdout.contains("\"queued\":2"), "{before:?}");

    // chaos traps in `registered` under this config: the upgrade is refused.
    let refused = c.run(&["framework", "upgrade", "batch", &chaos]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("old one keeps running"),
        "{refused:?}"
    );
    let still = c.run(&["framework", "send", "batch", "status"]);
    assert!(still.stdout.contains("\"queued\":2"), "{still:?}");

    // A good upgrade keeps the queue.
    let ok = c.run(&["framework", "upgrade", "batch", &jobs]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let after = c.run(&["framework", "send", "batch", "status"]);
    assert!(after.stdout.contains("\"queued\":2"), "{after:?}");

    // Killing a queued job tells the scheduler, which drops it.
    let k = c.run(&["task", "kill", &queued[0]]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("killed before it ran"), "{k:?}");
    eventually("the scheduler to drop the cancelled job", || {
        let r = c.run(&["framework", "send", "batch", "status"]);
        (r.stdout.contains("\"queued\":1") && !r.stdout.contains(&queued[0])).then_some(())
    });
}

#[test]
fn removing_a_framework_kills_its_tasks() {
    let c = Cluster::start();
    let jobs = write(&c, "jobs.wasm", wasmesos_builtin::JOBS_SCHEDULER);
    let hello = c.hello().display().to_string();
    assert_eq!(
        c.run(&["framework", "deploy", &jobs, "--name", "batch"])
            .code,
        0
    );
    let s = c.run(&[
        "submit",
        &hello,
        "--framework",
        "batch",
        "--",
        "--sleep-ms",
        "600000",
    ]);
    let task = format!("{}.1", s.stdout.trim());
    c.wait_for_state(&task, "RUNNING");
    let r = c.run(&["framework", "remove", "batch"]);
    assert!(r.stdout.contains("1 running tasks"), "{r:?}");
    c.wait_for_state(&task, "KILLED");
}

#[test]
fn framework_test_runs_a_script_offline_and_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs.wasm");
    std::fs::write(&jobs, wasmesos_builtin::JOBS_SCHEDULER).unwrap();
    let jobs = jobs.display().to_string();
    // The example script in the jobs README: retries with backoff.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/jobs/scripts/retries.json"
    );
    // No master: the harness needs none (and the address is unreachable).
    let ok = wasmesos(
        Some("http://127.0.0.1:1"),
        &["framework", "test", &jobs, "--script", script],
    );
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("timer(retry) -> revive"), "{ok:?}");
    assert!(ok.stdout.contains("PASSED"), "{ok:?}");

    // An expectation that does not hold fails the run with what was found.
    let wrong = dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        r#"[{"submit": {"count": 2}}, {"offer": "all"}, {"expect": {"running": 5}}]"#,
    )
    .unwrap();
    let wrong = wrong.display().to_string();
    let failed = wasmesos(None, &["framework", "test", &jobs, "--script", &wrong]);
    assert_ne!(failed.code, 0, "{failed:?}");
    let out = format!("{}{}", failed.stdout, failed.stderr);
    assert!(out.contains("FAILED"), "{failed:?}");
    assert!(out.contains("running"), "{failed:?}");

    // A script that does not parse names the step.
    std::fs::write(dir.path().join("typo.json"), r#"[{"sumbit": {}}]"#).unwrap();
    let typo = dir.path().join("typo.json").display().to_string();
    let bad = wasmesos(None, &["framework", "test", &jobs, "--script", &typo]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("step 1"), "{bad:?}");
}
