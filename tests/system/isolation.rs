//! `--isolation cgroups`: a master and an agent whose tasks run in executor
//! processes under cgroups, end to end — skipped, saying why, where this
//! host does not let us make cgroups.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{eventually, spawn, wait_for_addr, wasmesos};
use wasmesos_runtime::cgroups::CgroupTree;

/// The parent cgroup directories an agent with process id `pid` makes (its
/// own cgroup is this test's, which it inherits), or why there are none.
fn agent_cgroups(pid: u32) -> Result<Vec<PathBuf>, String> {
    let probe_name = format!("probe-{}", std::process::id());
    let probe = CgroupTree::create(&probe_name).map_err(|e| e.to_string())?;
    let dirs = probe
        .parents()
        .map(|p| p.with_file_name(format!("wasmesos-{pid}")))
        .collect();
    probe.remove().map_err(|e| e.to_string())?;
    Ok(dirs)
}

/// Agents in cgroup mode remove their cgroups as they stop: more time.
fn stop(child: &mut Child) {
    crate::harness::stop_within(child, Duration::from_secs(20));
}

struct Procs {
    dir: tempfile::TempDir,
    master: Child,
    agent: Option<Child>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        if let Some(agent) = &mut self.agent {
            stop(agent);
        }
        stop(&mut self.master);
        if std::thread::panicking() {
            for log in ["master.log", "agent.log"] {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                eprintln!("--- {log}\n{text}");
            }
        }
    }
}

#[test]
fn tasks_run_in_executors_under_cgroups() {
    if let Err(why) = agent_cgroups(0) {
        println!("skipped: cgroups are not writable here: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let path = |name: &str| d.join(name).display().to_string();
    let mut master = spawn(
        &[
            "master",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &path("master"),
            "--addr-file",
            &path("master.addr"),
        ],
        &d.join("master.log"),
    );
    let addr = wait_for_addr(&d.join("master.addr"), &mut master, &d.join("master.log"));
    let master_url = format!("http://{addr}");
    let mut procs = Procs {
        dir,
        master,
        agent: None,
    };
    let mut agent = spawn(
        &[
            "agent",
            "--master",
            &master_url,
            "--listen",
            "127.0.0.1:0",
            "--resources",
            "cpus:2,mem:2GiB,disk:1GiB",
            "--work-dir",
            &path("agent"),
            "--addr-file",
            &path("agent.addr"),
            "--isolation",
            "cgroups",
            "--executors",
            "2",
        ],
        &d.join("agent.log"),
    );
    wait_for_addr(&d.join("agent.addr"), &mut agent, &d.join("agent.log"));
    let cgroups = agent_cgroups(agent.id()).unwrap();
    procs.agent = Some(agent);
    let run = |args: &[&str]| wasmesos(Some(&master_url), args);
    eventually("the agent to register", || {
        run(&["agents"]).stdout.contains("ACTIVE").then_some(())
    });
    for dir in &cgroups {
        assert!(dir.is_dir(), "the agent made {}", dir.display());
    }
    let hello = d.join("hello.wasm");
    std::fs::write(&hello, wasmesos_builtin::HELLO_TASK).unwrap();
    let hello = hello.display().to_string();

    // The hello task, end to end.
    let r = run(&["submit", &hello, "--wait", "--", "isolated"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("hello from wasmesos!"), "{r:?}");

    // A memory limit holds with the same message as in-process.
    let r = run(&[
        "submit",
        &hello,
        "--wait",
        "--mem",
        "64MiB",
        "--",
        "--alloc-mib",
        "200",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("memory limit 64MiB exceeded"), "{r:?}");

    // Logs of a running task are served from the executor's files, and a
    // kill stops it.
    let r = run(&[
        "submit",
        &hello,
        "--",
        "--print-lines",
        "3",
        "--sleep-ms",
        "600000",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let task = format!("{}.1", r.stdout.trim());
    eventually(&format!("{task} to run"), || {
        run(&["tasks"])
            .stdout
            .lines()
            .any(|l| l.starts_with(&task) && l.contains("RUNNING"))
            .then_some(())
    });
    let logs = eventually("the running task's lines", || {
        let r = run(&["logs", &task, "--stdout"]);
        r.stdout.contains("line 3").then_some(r)
    });
    assert!(logs.stdout.contains("line 1"), "{logs:?}");
    let follower = crate::harness::with_credentials(&mut Command::new(crate::harness::bin()))
        .args(["logs", &task, "--follow", "--master", &master_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let kill = run(&["task", "kill", &task]);
    assert_eq!(kill.code, 0, "{kill:?}");
    eventually(&format!("{task} to be KILLED"), || {
        run(&["tasks"])
            .stdout
            .lines()
            .any(|l| l.starts_with(&task) && l.contains("KILLED"))
            .then_some(())
    });
    let followed: crate::harness::Run = follower.wait_with_output().unwrap().into();
    assert_eq!(followed.code, 0, "{followed:?}");
    assert!(followed.stdout.contains("line 3"), "{followed:?}");

    // The agent serves on after all that.
    let r = run(&["submit", &hello, "--wait", "--", "again"]);
    assert_eq!(r.code, 0, "{r:?}");
    let agent_log = std::fs::read_to_string(d.join("agent.log")).unwrap();
    assert!(
        agent_log.contains("tasks run in executor processes under cgroups"),
        "{agent_log}"
    );

    // Stopping the agent removes its cgroups.
    let mut agent = procs.agent.take().unwrap();
    stop(&mut agent);
    for dir in &cgroups {
        assert!(
            !dir.exists(),
            "{} is removed when the agent stops",
            dir.display()
        );
    }
}
