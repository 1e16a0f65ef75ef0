//! Durability at speed: a submission is acknowledged only once stored, so a
//! master killed with -9 in the middle of a burst of submissions loses none
//! that it acknowledged — after a restart every one of them is known and
//! runs to its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::harness::{eventually, wasmesos};
use crate::procs::{Procs, agent, free_port, hello, master};

#[test]
fn every_acknowledged_submission_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::default();
    procs.add("master", master(d, "master", port, &[]).0);
    procs.add("agent", agent(d, "agent", &url));
    let hello = hello(d);

    // Four submitters in a burst, each recording what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let (acked, stop, url, hello) =
                (acked.clone(), stop.clone(), url.clone(), hello.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = wasmesos(
                        Some(&url),
                        &[
                            "submit",
                            &hello,
                            "--cpus",
                            "0.05",
                            "--mem",
                            "16MiB",
                            "--attempts",
                            "3",
                        ],
                    );
                    if r.code == 0 {
                        acked.lock().unwrap().push(r.stdout.trim().to_string());
                    }
                }
            })
        })
        .collect();
    eventually("a few dozen acknowledged submissions", || {
        (acked.lock().unwrap().len() >= 40).then_some(())
    });
    // Mid-burst: no warning, no flush.
    procs.kill("master");
    stop.store(true, Ordering::Relaxed);
    for s in submitters {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    procs.add("master", master(d, "master", port, &[]).0);
    // Every acknowledged job is known and finishes: the agent reconnects
    // and reports the tasks that ended while the master was down; the
    // scheduler's queue survived in its state; a launch stored but never
    // delivered is LOST, and the job's next attempt runs.
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        let tasks = wasmesos(Some(&url), &["tasks", "--limit", "5000"]);
        let finished: std::collections::HashSet<&str> = tasks
            .stdout
            .lines()
            .filter(|l| l.contains("FINISHED"))
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|task| task.rsplit_once('.').map(|(job, _)| job))
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|job| !finished.contains(job.as_str()))
            .collect();
        if missing.is_empty() {
            // LOST only for launches that never reached the agent: a task
            // the agent ran (it has a directory there) ended as reported.
            let ran = |task: &str| {
                std::fs::read_dir(d.join("agent").join("tasks"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|fw| fw.path().join(task).exists())
            };
            let lost_but_ran: Vec<&str> = tasks
                .stdout
                .lines()
                .filter(|l| l.contains("LOST"))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|task| ran(task))
                .collect();
            assert!(
                lost_but_ran.is_empty(),
                "ran, yet reported LOST: {lost_but_ran:?}\n{tasks:?}"
            );
            break;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(d.join("master.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let queue = wasmesos(Some(&url), &["framework", "send", "jobs", "status"]);
            panic!(
                "{} of {} acknowledged jobs did not finish: {missing:?}\n{tasks:?}\n{queue:?}\nmaster log (newest first):\n{}",
                missing.len(),
                acked.len(),
                tail.join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_agent_cut_off_from_every_master_kills_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut procs = Procs::default();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    procs.add("master", master(d, "master", port, &[]).0);
    let agent_addr = d.join("agent.addr");
    let log = d.join("agent.log");
    let mut agent = crate::harness::spawn(
        &[
            "agent",
            "--master",
            &url,
            "--listen",
            "127.0.0.1:0",
            "--resources",
            "cpus:2,mem:2GiB,disk:1GiB",
            "--work-dir",
            &d.join("agent").display().to_string(),
            "--addr-file",
            &agent_addr.display().to_string(),
            "--orphan-timeout",
            "2s",
        ],
        &log,
    );
    crate::harness::wait_for_addr(&agent_addr, &mut agent, &log);
    procs.add("agent", agent);
    let hello = hello(d);
    let r = wasmesos(
        Some(&url),
        &["submit", &hello, "--", "--sleep-ms", "600000"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let task = format!("{}.1", r.stdout.trim());
    eventually("the task to run", || {
        let t = wasmesos(Some(&url), &["task", "show", &task]);
        t.stdout.contains("RUNNING").then_some(())
    });

    // The master goes away for good: after 2 s the agent stops the task
    // rather than let it run beside a retry elsewhere.
    procs.kill("master");
    eventually("the agent to kill its orphaned task", || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        log.contains("no master reachable").then_some(())
    });
    let task_dir = std::fs::read_dir(d.join("agent").join("tasks"))
        .unwrap()
        .flatten()
        .map(|fw| fw.path().join(&task))
        .find(|p| p.exists())
        .expect("the task's directory");
    // Its directory is marked ended (the agent's janitor uses the mark).
    eventually("the task's end to be recorded", || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        (log.contains(&task) && log.contains("KILLED")).then_some(())
    });
    assert!(task_dir.exists());
}
