//! Operators at run time: a role's weight and quota set with the CLI and
//! shown by `wasmesos roles`; an agent drained (its running task killed at
//! the deadline, no new task landing on it) and undrained.

use crate::harness::{Cluster, Run, eventually};

/// The whitespace-separated cells of the first line of `r` starting with
/// `first`.
fn row(r: &Run, first: &str) -> Option<Vec<String>> {
    r.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

/// The agent `task` runs on, from `wasmesos tasks`.
fn agent_of(c: &Cluster, task: &str) -> String {
    let tasks = c.run(&["tasks"]);
    let header = row(&tasks, "ID").expect("a header");
    let column = header
        .iter()
        .position(|h| h == "AGENT")
        .expect("AGENT column");
    row(&tasks, task).unwrap_or_else(|| panic!("no {task}: {tasks:?}"))[column].clone()
}

#[test]
fn roles_are_set_and_listed_and_a_drained_agent_gets_no_new_tasks() {
    let c = Cluster::start_with(2);

    let set = c.run(&[
        "role",
        "set",
        "batch",
        "--weight",
        "3",
        "--guarantee",
        "cpus:1,mem:1GiB",
        "--limit",
        "cpus:4,mem:4GiB",
    ]);
    assert_eq!(set.code, 0, "{set:?}");
    let reweigh = c.run(&["role", "set", "default", "--weight", "2"]);
    assert_eq!(reweigh.code, 0, "{reweigh:?}");
    let roles = c.run(&["roles"]);
    assert_eq!(roles.code, 0, "{roles:?}");
    let batch = row(&roles, "batch").unwrap_or_else(|| panic!("{roles:?}"));
    assert_eq!(
        batch[1..4],
        ["3", "cpus:1,mem:1GiB", "cpus:4,mem:4GiB"],
        "{roles:?}"
    );
    let default = row(&roles, "default").unwrap_or_else(|| panic!("{roles:?}"));
    assert_eq!(default[1], "2", "{roles:?}");
    assert_eq!(
        default.last().map(String::as_str),
        Some("jobs"),
        "{roles:?}"
    );

    for (args, error) in [
        (vec!["--weight", "-1"], "positive"),
        (vec!["--guarantee", "cpus:8"], "above the limit"),
        (vec!["--limit", "cpu:4"], "unknown resource 'cpu'"),
        (vec![], "nothing to set"),
    ] {
        let mut full = vec!["role", "set", "batch"];
        full.extend(args);
        let r = c.run(&full);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(r.stderr.contains(error), "expected '{error}': {r:?}");
    }

    // A task that would run for ten minutes, on whichever agent it lands.
    let hello = c.hello().display().to_string();
    let r = c.run(&["submit", &hello, "--", "--sleep-ms", "600000"]);
    assert_eq!(r.code, 0, "{r:?}");
    let sleeper = format!("{}.1", r.stdout.trim());
    c.wait_for_state(&sleeper, "RUNNING");
    let drained = agent_of(&c, &sleeper);

    let drain = c.run(&["agent", "drain", &drained, "--deadline", "1s"]);
    assert_eq!(drain.code, 0, "{drain:?}");
    let agents = c.run(&["agents"]);
    let line = row(&agents, &drained).unwrap_or_else(|| panic!("{agents:?}"));
    assert!(line.contains(&"DRAINING".to_string()), "{agents:?}");
    c.wait_for_state(&sleeper, "KILLED");

    for i in 0..3 {
        let r = c.run(&[
            "submit",
            &hello,
            "--wait",
            "--name",
            &format!("after-drain-{i}"),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let tasks = c.run(&["tasks"]);
    let header = row(&tasks, "ID").unwrap();
    let column = header.iter().position(|h| h == "AGENT").unwrap();
    let after: Vec<Vec<String>> = tasks
        .stdout
        .lines()
        .filter(|l| l.contains("after-drain-"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(after.len(), 3, "{tasks:?}");
    for task in &after {
        assert_ne!(
            task[column], drained,
            "a task landed on the drained agent: {tasks:?}"
        );
    }

    let undrain = c.run(&["agent", "undrain", &drained]);
    assert_eq!(undrain.code, 0, "{undrain:?}");
    eventually("the agent to be ACTIVE again", || {
        let agents = c.run(&["agents"]);
        row(&agents, &drained)
            .filter(|l| l.contains(&"ACTIVE".to_string()))
            .map(|_| ())
    });
}
