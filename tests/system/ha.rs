//! High availability on a real etcd: two master processes share it, one
//! leads and one stands by; the CLI and the agent follow the leader; when
//! the leader is killed (-9) the standby takes over with everything it had
//! stored — jobs, a framework's durable state, modules — and the agent
//! re-registers.

use wasmesos_testkit::Etcd;

use crate::harness::{eventually, wasmesos};
use crate::procs::{Procs, agent, hello, master, wait_for_agent};

fn ha_master(
    dir: &std::path::Path,
    name: &str,
    etcd: &Etcd,
    port: u16,
) -> (std::process::Child, String) {
    let url = etcd.url();
    master(dir, name, port, &["--store", &url, "--leader-ttl", "3s"])
}

#[test]
fn a_standby_takes_over_when_the_leader_dies() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, a_url) = ha_master(d, "master-a", &etcd, 0);
    let (b, b_url) = ha_master(d, "master-b", &etcd, 0);
    let mut procs = Procs::default();
    procs.add("a", a);
    procs.add("b", b);
    let both = format!("{b_url},{a_url}");

    // The standby answers with where the leader is; the CLI follows it.
    let status = eventually("the standby to be listed", || {
        let r = wasmesos(Some(&both), &["status"]);
        (r.code == 0 && r.stdout.contains(&format!("standbys    {b_url}"))).then_some(r)
    });
    assert!(
        status.stdout.contains(&format!("master      {a_url}")),
        "{status:?}"
    );
    assert!(status.stdout.contains("store       etcd:"), "{status:?}");
    let direct = wasmesos(Some(&b_url), &["status"]);
    assert!(
        direct.stdout.contains(&a_url),
        "one standby address is enough: {direct:?}"
    );

    procs.add("agent", agent(d, "agent", &both));
    wait_for_agent(&both, "the agent to register with the leader");

    let hello = hello(d);
    let before = wasmesos(
        Some(&both),
        &["submit", &hello, "--wait", "--name", "before"],
    );
    assert_eq!(before.code, 0, "{before:?}");
    // A job that can never fit waits in the jobs scheduler's durable state.
    let waiting = wasmesos(Some(&both), &["submit", &hello, "--cpus", "64"]);
    assert_eq!(waiting.code, 0, "{waiting:?}");
    let waiting = waiting.stdout.trim().to_string();

    // Meanwhile the standby compiled the frameworks' schedulers, so that
    // taking over does not wait for them.
    eventually("the standby to precompile the jobs scheduler", || {
        let log = std::fs::read_to_string(d.join("master-b.log")).unwrap_or_default();
        log.contains("scheduler precompiled").then_some(())
    });

    // The leader dies without a word.
    procs.kill("a");
    let status = eventually("the standby to lead", || {
        let r = wasmesos(Some(&both), &["status"]);
        (r.code == 0 && r.stdout.contains(&format!("master      {b_url}"))).then_some(r)
    });
    assert!(status.stdout.contains("(epoch 2,"), "{status:?}");
    wait_for_agent(&both, "the agent to re-register with the new leader");

    // Everything stored is there: the finished task, the waiting job in
    // the scheduler's state, and the module (its bytes fetched from etcd).
    let tasks = wasmesos(Some(&both), &["tasks"]);
    assert!(
        tasks
            .stdout
            .lines()
            .any(|l| l.contains("before") && l.contains("FINISHED")),
        "{tasks:?}"
    );
    let queue = wasmesos(Some(&both), &["framework", "send", "jobs", "status"]);
    assert!(queue.stdout.contains(&waiting), "{queue:?}");
    let after = wasmesos(Some(&both), &["submit", &hello, "--wait", "--", "after"]);
    assert_eq!(after.code, 0, "{after:?}");
    assert!(after.stdout.contains("after"), "{after:?}");

    // The old leader, restarted, stands by.
    let a_port = a_url.rsplit(':').next().unwrap().parse().unwrap();
    let (a, _) = ha_master(d, "master-a", &etcd, a_port);
    procs.add("a", a);
    eventually("the restarted master to stand by", || {
        let log = std::fs::read_to_string(d.join("master-a.log")).unwrap_or_default();
        let r = wasmesos(Some(&b_url), &["status"]);
        (log.contains("standing by") && r.stdout.contains(&format!("standbys    {a_url}")))
            .then_some(())
    });
}

#[test]
fn a_bad_store_url_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let r = wasmesos(
        None,
        &["master", "--store", "zookeeper://x", "--data-dir", &data],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("expected etcd://"), "{r:?}");
    let r = wasmesos(
        None,
        &[
            "master",
            "--store",
            "etcd://127.0.0.1:1",
            "--data-dir",
            &data,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("cannot reach etcd at http://127.0.0.1:1"),
        "{r:?}"
    );
}

#[test]
fn a_leader_cut_off_from_etcd_steps_down_and_leads_again_when_it_is_back() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = crate::procs::free_port();
    let (a, url) = ha_master(d, "master-a", &etcd, port);
    let mut procs = Procs::default();
    procs.add("a", a);
    procs.add("agent", agent(d, "agent", &url));
    wait_for_agent(&url, "the agent");
    let hello = hello(d);
    let r = wasmesos(Some(&url), &["submit", &hello, "--wait"]);
    assert_eq!(r.code, 0, "{r:?}");

    // etcd freezes for longer than the lease: the leader cannot renew it
    // and steps down on its own clock, without waiting for etcd to say so.
    etcd.pause();
    let log = d.join("master-a.log");
    eventually("the leader to step down", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("stopped leading").then_some(())
    });
    etcd.resume();

    // Back: it leads again (a new epoch), the agent returns, work runs.
    let status = eventually("the master to lead again", || {
        let r = wasmesos(Some(&url), &["status"]);
        (r.code == 0 && r.stdout.contains("(epoch 2,")).then_some(r)
    });
    assert!(status.stdout.contains(&url), "{status:?}");
    wait_for_agent(&url, "the agent to come back");
    let r = wasmesos(Some(&url), &["submit", &hello, "--wait", "--", "again"]);
    assert_eq!(r.code, 0, "{r:?}");
}
