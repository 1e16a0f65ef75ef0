//! The example frameworks deployed into a real master, driven through the
//! CLI: `service` (N instances spread across agents, replaced when killed,
//! scaled down, upgraded one at a time), `pi` (fan-out and results) and the
//! built-in `jobs` scheduler's priorities and retries.

use std::collections::BTreeSet;

use wasmesos_api::Digest;

use crate::harness::{Cluster, eventually};

fn write(c: &Cluster, name: &str, bytes: &[u8]) -> String {
    let path = c.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Runs `module` once as a job that must succeed: the upload it does is
/// what makes the master hold the module for framework launches.
fn upload(c: &Cluster, module: &str, args: &[&str]) {
    let mut cmd = vec!["submit", module, "--wait", "--"];
    cmd.extend(args);
    let r = c.run(&cmd);
    assert_eq!(r.code, 0, "{r:?}");
}

/// `framework send NAME BODY`, which must succeed; the reply.
fn send(c: &Cluster, framework: &str, body: &str) -> String {
    let r = c.run(&["framework", "send", framework, body]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_string()
}

/// The number after `"key":` in a compact JSON reply.
fn number(json: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// (task id, agent) of the framework's RUNNING tasks, from `wasmesos tasks`.
fn running(c: &Cluster, framework: &str) -> Vec<(String, String)> {
    let r = c.run(&["tasks", "--framework", framework, "--state", "running"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout
        .lines()
        .skip(1) // the header
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // ID NAME FRAMEWORK AGENT STATE …; service tasks' names have no spaces.
            (cols.len() > 4 && cols[4] == "RUNNING").then(|| (cols[0].into(), cols[3].into()))
        })
        .collect()
}

/// Waits for exactly `n` running tasks of `framework`, all of whose ids
/// start with `prefix`.
fn wait_running(c: &Cluster, framework: &str, n: usize, prefix: &str) -> Vec<(String, String)> {
    eventually(
        &format!("{n} running {prefix}* tasks of {framework}"),
        || {
            let tasks = running(c, framework);
            (tasks.len() == n && tasks.iter().all(|(id, _)| id.starts_with(prefix)))
                .then_some(tasks)
        },
    )
}

fn agents(tasks: &[(String, String)]) -> BTreeSet<&str> {
    tasks.iter().map(|(_, a)| a.as_str()).collect()
}

/// The hello task with a custom section appended: a different module
/// (digest) that behaves the same, to upgrade to.
fn hello_v2() -> Vec<u8> {
    let mut bytes = wasmesos_builtin::HELLO_TASK.to_vec();
    // Section id 0 (custom), size 4: a name of 2 bytes ("v2") and 1 byte.
    bytes.extend_from_slice(&[0, 4, 2, b'v', b'2', b'!']);
    bytes
}

#[test]
fn service_keeps_n_instances_spread_replaced_scaled_and_upgraded() {
    let c = Cluster::start_with(3);
    let hello = c.hello().display().to_string();
    upload(&c, &hello, &[]);
    let digest = Digest::of(wasmesos_builtin::HELLO_TASK).to_string();
    let service = write(&c, "service.wasm", wasmesos_builtin::SERVICE_SCHEDULER);
    let r = c.run(&[
        "framework",
        "deploy",
        &service,
        "--name",
        "web",
        "--role",
        "web",
        "--config",
        &format!("module={digest}"),
        "--config",
        "instances=3",
        "--config",
        "args=--sleep-ms 600000",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    // Three instances, one per agent.
    let first = wait_running(&c, "web", 3, "svc-1-");
    assert_eq!(agents(&first).len(), 3, "spread across agents: {first:?}");
    let status = send(&c, "web", r#"{"status":{}}"#);
    assert_eq!(number(&status, "running"), Some(3.0), "{status}");
    assert!(status.contains(&digest), "{status}");

    // Killed from outside: replaced (after the restart backoff), on the
    // agent it left, so the spread holds.
    let (victim, victim_agent) = first[0].clone();
    let k = c.run(&["task", "kill", &format!("web/{victim}")]);
    assert_eq!(k.code, 0, "{k:?}");
    let replaced = eventually("the killed instance to be replaced", || {
        let tasks = running(&c, "web");
        (tasks.len() == 3 && !tasks.iter().any(|(id, _)| *id == victim)).then_some(tasks)
    });
    assert_eq!(agents(&replaced).len(), 3, "{replaced:?}");
    let newcomer = replaced
        .iter()
        .find(|(id, _)| !first.iter().any(|(f, _)| f == id))
        .expect("a new instance");
    assert_eq!(newcomer.1, victim_agent, "{replaced:?}");
    c.wait_for_state(&victim, "KILLED");

    // Scaled down: one goes and is not replaced.
    let reply = send(&c, "web", r#"{"scale":{"instances":2}}"#);
    assert_eq!(number(&reply, "instances"), Some(2.0), "{reply}");
    assert_eq!(number(&reply, "killing"), Some(1.0), "{reply}");
    let two = wait_running(&c, "web", 2, "svc-1-");
    assert_eq!(agents(&two).len(), 2, "{two:?}");

    // A rolling upgrade to another module, one instance at a time.
    let v2 = write(&c, "hello-v2.wasm", &hello_v2());
    upload(&c, &v2, &[]);
    let digest2 = Digest::of(&hello_v2()).to_string();
    let reply = send(
        &c,
        "web",
        &format!(r#"{{"upgrade":{{"module":"{digest2}"}}}}"#),
    );
    assert_eq!(number(&reply, "generation"), Some(2.0), "{reply}");
    assert_eq!(number(&reply, "old"), Some(2.0), "{reply}");
    eventually("the upgrade to finish", || {
        let s = send(&c, "web", "status");
        let counted = ["running", "starting", "old"]
            .iter()
            .map(|k| number(&s, k).unwrap_or(0.0))
            .sum::<f64>();
        // Never more than one instance beyond the two wanted.
        assert!(counted <= 3.0, "{s}");
        (number(&s, "running") == Some(2.0) && number(&s, "old") == Some(0.0)).then_some(())
    });
    let upgraded = wait_running(&c, "web", 2, "svc-2-");
    let show = c.run(&["task", "show", &format!("web/{}", upgraded[0].0)]);
    assert!(show.stdout.contains(&digest2), "{show:?}");
    for (old, _) in &two {
        c.wait_for_state(old, "KILLED");
    }
}

#[test]
fn pi_fans_out_tasks_and_combines_their_results() {
    let c = Cluster::start();
    let pi_task = write(&c, "pi-task.wasm", wasmesos_builtin::PI_TASK);
    upload(&c, &pi_task, &["--samples", "1000", "--seed", "1"]);
    let digest = Digest::of(wasmesos_builtin::PI_TASK).to_string();
    let pi = write(&c, "pi.wasm", wasmesos_builtin::PI_SCHEDULER);
    let r = c.run(&["framework", "deploy", &pi, "--name", "pi"]);
    assert_eq!(r.code, 0, "{r:?}");

    let reply = send(
        &c,
        "pi",
        &format!(r#"{{"run":{{"tasks":20,"samples":200000,"module":"{digest}"}}}}"#),
    );
    assert!(reply.contains(r#""state":"running""#), "{reply}");
    assert_eq!(number(&reply, "tasks"), Some(20.0), "{reply}");

    let done = eventually("the run to finish", || {
        let s = send(&c, "pi", r#"{"status":{}}"#);
        s.contains(r#""state":"finished""#).then_some(s)
    });
    assert_eq!(number(&done, "failed"), Some(0.0), "{done}");
    assert_eq!(
        number(&done, "done"),
        Some(20.0),
        "every result counted: {done}"
    );
    assert_eq!(number(&done, "samples"), Some(4_000_000.0), "{done}");
    let estimate = number(&done, "pi").expect("an estimate");
    assert!((estimate - std::f64::consts::PI).abs() < 0.01, "{done}");
}

#[test]
fn a_later_high_priority_job_runs_before_an_earlier_low_priority_one() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let submit = |extra: &[&str]| {
        let mut args = vec!["submit", &hello, "--cpus", "2"];
        args.extend(extra);
        args.extend(["--", "--sleep-ms", "600000"]);
        let r = c.run(&args);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.trim().to_string()
    };
    // The blocker takes the whole agent.
    let blocker = submit(&[]);
    c.wait_for_state(&format!("{blocker}.1"), "RUNNING");
    let low = submit(&["--priority", "-1"]);
    let high = submit(&["--priority", "5"]);
    c.wait_for_state(&low, "QUEUED");
    c.wait_for_state(&high, "QUEUED");

    let k = c.run(&["task", "kill", &format!("{blocker}.1")]);
    assert_eq!(k.code, 0, "{k:?}");
    c.wait_for_state(&format!("{high}.1"), "RUNNING");
    c.wait_for_state(&low, "QUEUED");
    let summary = send(&c, "jobs", "status");
    assert!(
        summary.contains(&format!(r#""queued_jobs":["{low}"]"#)),
        "{summary}"
    );
}

#[test]
fn a_failed_attempt_is_retried_after_its_backoff() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "submit",
        &hello,
        "--attempts",
        "2",
        "--wait",
        "--",
        "--exit",
        "3",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    let job = eventually("the job to show its attempts", || {
        let tasks = c.run(&["tasks"]);
        tasks.stdout.lines().find_map(|l| {
            l.split_whitespace()
                .next()?
                .strip_suffix(".2")
                .map(str::to_string)
        })
    });
    c.wait_for_state(&format!("{job}.1"), "FAILED");
    c.wait_for_state(&format!("{job}.2"), "FAILED");
    let show = c.run(&["framework", "show", "jobs", "--lines", "50"]);
    assert!(show.stdout.contains("retrying in 1000 ms"), "{show:?}");
    assert!(show.stdout.contains("giving up after 2"), "{show:?}");
}
