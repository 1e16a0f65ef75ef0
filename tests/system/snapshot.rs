//! `wasmesos snapshot save` from a running cluster, `restore` into a fresh
//! embedded store and into an empty etcd; a master started on either has
//! the tasks, jobs, frameworks with their durable state, and modules.

use wasmesos_testkit::Etcd;

use crate::harness::wasmesos;
use crate::procs::{Procs, agent, hello, master, wait_for_agent};

/// What a restored cluster must show: the finished task, the waiting job in
/// the jobs scheduler's state, the deployed framework, and a module whose
/// bytes it still has (a task of it runs without another upload).
fn check_restored(url: &str, waiting: &str, hello: &str) {
    let tasks = wasmesos(Some(url), &["tasks"]);
    assert!(
        tasks
            .stdout
            .lines()
            .any(|l| l.contains("before") && l.contains("FINISHED")),
        "{tasks:?}"
    );
    let queue = wasmesos(Some(url), &["framework", "send", "jobs", "status"]);
    assert!(queue.stdout.contains(waiting), "{queue:?}");
    let frameworks = wasmesos(Some(url), &["frameworks"]);
    assert!(frameworks.stdout.contains("batch"), "{frameworks:?}");
    let again = wasmesos(Some(url), &["submit", hello, "--wait", "--", "again"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("again"), "{again:?}");
}

#[test]
fn a_snapshot_restores_into_embedded_and_etcd_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut procs = Procs::default();
    let (m, url) = master(d, "master", 0, &[]);
    procs.add("master", m);
    procs.add("agent", agent(d, "agent", &url));
    wait_for_agent(&url, "the agent");
    let hello = hello(d);
    let jobs = d.join("jobs.wasm");
    std::fs::write(&jobs, wasmesos_builtin::JOBS_SCHEDULER).unwrap();
    let r = wasmesos(
        Some(&url),
        &["submit", &hello, "--wait", "--name", "before"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = wasmesos(Some(&url), &["submit", &hello, "--cpus", "64"]);
    let waiting = r.stdout.trim().to_string();
    let r = wasmesos(
        Some(&url),
        &[
            "framework",
            "deploy",
            &jobs.display().to_string(),
            "--name",
            "batch",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");

    let file = d.join("cluster.snap");
    let file_arg = file.display().to_string();
    let saved = wasmesos(Some(&url), &["snapshot", "save", &file_arg]);
    assert_eq!(saved.code, 0, "{saved:?}");
    assert!(saved.stdout.contains("saved"), "{saved:?}");
    procs.kill("master");
    procs.kill("agent");

    // Into a new data dir (embedded store).
    let restored = d.join("restored");
    let r = wasmesos(
        None,
        &[
            "snapshot",
            "restore",
            &file_arg,
            "--data-dir",
            &restored.join("master").display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("modules"), "{r:?}");
    // Not twice into the same store.
    let twice = wasmesos(
        None,
        &[
            "snapshot",
            "restore",
            &file_arg,
            "--data-dir",
            &restored.join("master").display().to_string(),
        ],
    );
    assert_ne!(twice.code, 0, "{twice:?}");
    assert!(twice.stderr.contains("not empty"), "{twice:?}");
    std::fs::create_dir_all(&restored).unwrap();
    let (m, url) = master(&restored, "master", 0, &[]);
    procs.add("master", m);
    procs.add("agent", agent(&restored, "agent", &url));
    check_restored(&url, &waiting, &hello);
    procs.kill("master");
    procs.kill("agent");

    // Into an empty etcd, then a master on it.
    let etcd = Etcd::start();
    let on_etcd = d.join("on-etcd");
    let r = wasmesos(
        None,
        &[
            "snapshot",
            "restore",
            &file_arg,
            "--store",
            &etcd.url(),
            "--data-dir",
            &on_etcd.join("master").display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let (m, url) = master(&on_etcd, "master", 0, &["--store", &etcd.url()]);
    procs.add("master", m);
    procs.add("agent", agent(&on_etcd, "agent", &url));
    check_restored(&url, &waiting, &hello);

    // Not a snapshot at all.
    let garbage = d.join("garbage");
    std::fs::write(&garbage, b"hello").unwrap();
    let r = wasmesos(
        None,
        &[
            "snapshot",
            "restore",
            &garbage.display().to_string(),
            "--data-dir",
            &d.join("other").display().to_string(),
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not a wasmesos snapshot"), "{r:?}");
}
