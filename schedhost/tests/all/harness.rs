//! The offline harness (`wasmesos_schedhost::harness`) with real components:
//! the jobs scheduler runs scripted submissions to completion on a
//! simulated cluster, retries and gives up, survives a master restart and
//! an agent loss; an invalid launch is recorded and answered with ERROR;
//! a trapping scheduler is re-instantiated and recorded; and failed
//! expectations say what was found instead.

use serde_json::{Value, json};
use wasmesos_api::{AgentId, Resources};
use wasmesos_schedhost::harness::{
    FailureKind, Harness, HarnessConfig, HarnessError, Report, Script, run_script,
};
use wasmesos_schedhost::{SchedHost, SchedHostConfig, SchedulerComponent};

use crate::common::{chaos, jobs};

/// Framework config for the jobs scheduler: retry a failed attempt at
/// once. Its retry backoff reads the scheduler's clock, which is the real
/// one even in the harness (the host has no way to set it), so a backoff
/// would wait out real time while the simulated clock races ahead.
fn no_backoff() -> Value {
    json!({"retry-backoff-ms": "0"})
}

/// Runs `script` (a JSON value; its cluster settings applied) against a
/// component compiled on `host`.
async fn run(host: &SchedHost, component: &SchedulerComponent, script: Value) -> Report {
    let script = Script::from_value(script).expect("the script parses");
    let config = HarnessConfig::from_cluster(&script.cluster).expect("a valid cluster");
    run_script(host, component, config, &script).await
}

async fn run_jobs(script: Value) -> Report {
    let (host, component) = jobs(SchedHostConfig::default());
    run(&host, &component, script).await
}

/// The callback lines of the transcript (no notes, no verdict).
fn lines(report: &Report) -> Vec<String> {
    report
        .transcript(false)
        .lines()
        .filter(|l| l.starts_with("[t=") && !l.contains("] -- "))
        .map(str::to_string)
        .collect()
}

fn expect_passed(report: &Report) {
    assert!(
        report.passed(),
        "{:?}\n{}",
        report.problems(),
        report.transcript(true)
    );
}

#[tokio::test]
async fn jobs_run_a_script_of_submits_to_completion_on_three_agents() {
    let report = run_jobs(json!({
        "agents": 3,
        "steps": [
            // 30 one-cpu jobs on 12 cpus: three rounds of launches.
            {"submit": {"cpus": 1, "mem": "256MiB", "count": 30}},
            {"expect": {"jobs": {"*": "queued"}, "running": 0, "suppressed": false}},
            {"offer": "all"},
            {"expect": {"running": 12, "launched": ["job-1.1", "job-12.1"], "not_launched": ["job-13.1"]}},
            {"run": {"rounds": 10}},
            {"expect": {"jobs": {"*": "finished"}, "running": 0, "all_free": true, "suppressed": true}},
        ],
    }))
    .await;
    expect_passed(&report);
    let s = &report.summary;
    assert_eq!(s.launched, 30);
    assert_eq!(s.jobs.get("FINISHED"), Some(&30));
    assert_eq!(s.tasks.get("FINISHED"), Some(&30));
    assert_eq!((s.failures, s.invalid), (0, 0));
    // The run stopped once the queue was empty and offers suppressed.
    let notes: Vec<&str> = report.record.notes().map(|n| n.text.as_str()).collect();
    assert!(
        notes.iter().any(|n| n.starts_with("run: idle after")),
        "{notes:?}"
    );

    // The transcript: one line per callback, launches with their agent and
    // resources.
    let lines = lines(&report);
    assert_eq!(lines[0], "[t=0.0s] registered -> suppress");
    assert_eq!(lines[1], "[t=0.0s] submit(job-1) -> accepted; revive");
    let first_offers = lines
        .iter()
        .find(|l| l.contains("offers(3)"))
        .expect("an offers line");
    assert!(
        first_offers.contains("launch job-1.1, job-2.1, job-3.1, job-4.1 on agent-")
            && first_offers.contains("(cpus:4,mem:1GiB)"),
        "{first_offers}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("status(job-30.1 FINISHED exit 0) -> nothing"))
    );
    assert!(
        report
            .transcript(false)
            .lines()
            .last()
            .unwrap()
            .starts_with("PASSED: ")
    );
}

#[tokio::test]
async fn a_failing_attempt_is_retried_then_given_up() {
    let report = run_jobs(json!({"config": no_backoff(), "steps": [
        {"submit": {"attempts": 2}},
        {"offer": "all"},
        {"expect": {"launched": ["job-1.1"], "jobs": {"job-1": "running"}}},
        {"status": {"task": "job-1.1", "state": "failed", "exit_code": 3}},
        {"expect": {"jobs": {"job-1": "queued"}, "suppressed": false, "log": "retrying"}},
        {"offer": "all"},
        {"expect": {"launched": ["job-1.2"], "running": 1}},
        {"status": {"task": "job-1.2", "state": "failed", "exit_code": 3}},
        {"run": {"rounds": 3}},
        {"expect": {
            "jobs": {"job-1": "failed"},
            "tasks": {"job-1.1": "failed", "job-1.2": "failed"},
            "not_launched": ["job-1.3"],
            "log": "giving up after 2 attempt(s)",
            "all_free": true,
        }},
    ]}))
    .await;
    expect_passed(&report);
    let lines = lines(&report);
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("status(job-1.1 FAILED exit 3) -> revive")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("status(job-1.2 FAILED exit 3) -> nothing")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn an_invalid_launch_is_recorded_and_answered_with_error() {
    // The master refuses such a submission up front; the harness delivers
    // it as written, so the jobs scheduler queues it and launches a task
    // that asks for no memory.
    let script = json!([
        {"submit": {"mem": 0}},
        {"offer": "all"},
        {"expect": {"running": 0, "tasks": {"job-1.1": "error"}, "jobs": {"job-1": "queued"}}},
    ]);
    let report = run_jobs(script.clone()).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(!report.passed(), "invalid commands fail the run");
    assert_eq!(
        report.problems(),
        ["the scheduler issued 1 invalid command(s)"]
    );
    let bad = report
        .record
        .callbacks()
        .find(|c| !c.invalid.is_empty())
        .expect("a callback with an invalid launch");
    assert_eq!(bad.event.name(), "offers");
    assert_eq!(bad.invalid[0].task.as_ref().unwrap().as_str(), "job-1.1");
    assert!(bad.invalid[0].reason.contains("asks for no memory"));
    assert!(bad.launches.iter().all(|l| l.tasks.is_empty()));
    let lines = lines(&report);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("-> INVALID launch job-1.1: the task asks for no memory")),
        "{lines:#?}"
    );
    // The scheduler heard of it as an ERROR status, with the reason.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[t=0.0s] status(job-1.1 ERROR)")),
        "{lines:#?}"
    );
    let json = report.to_json();
    let entry = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["invalid"].as_array().is_some_and(|i| !i.is_empty()))
        .unwrap();
    assert_eq!(entry["invalid"][0]["task"], "job-1.1");
    assert_eq!(
        entry["commands"][0]["launch"]["tasks"][0]["resources"],
        "cpus:0.1"
    );

    // A script that states the invalid commands it expects passes.
    let mut steps = script.as_array().unwrap().clone();
    steps.push(json!({"expect": {"invalid": 1}}));
    let expected = run_jobs(Value::Array(steps)).await;
    expect_passed(&expected);
}

#[tokio::test]
async fn a_restart_keeps_the_queue() {
    let (host, component) = jobs(SchedHostConfig::default());
    let script = Script::from_value(json!({
        "agents": [{"resources": "cpus:1,mem:1GiB"}],
        "steps": [
            {"submit": {"cpus": 1, "count": 3}},
            {"offer": "all"},
            {"expect": {"launched": ["job-1.1"], "not_launched": ["job-2.1", "job-3.1"]}},
            {"restart": true},
            {"expect": {"running": 1, "suppressed": false}},
        ],
    }))
    .unwrap();
    let config = HarnessConfig::from_cluster(&script.cluster).unwrap();
    let mut harness = Harness::start(&host, &component, config).await.unwrap();
    harness.run(&script).await.unwrap();

    // The new instance came up from the committed state: it reconciled
    // the running attempt and revived for the two queued jobs.
    let after_restart: Vec<String> = harness
        .report(None)
        .transcript(false)
        .lines()
        .skip_while(|l| !l.contains("-- restart"))
        .map(str::to_string)
        .collect();
    assert!(
        after_restart[1].ends_with("registered (again) -> reconcile job-1.1; revive"),
        "{after_restart:#?}"
    );
    // Told twice where job-1.1 stands: the master's implicit
    // reconciliation, then the answer to the scheduler's own.
    assert!(
        after_restart[2..4]
            .iter()
            .all(|l| l.ends_with("reconciled(job-1.1 RUNNING) -> nothing")),
        "{after_restart:#?}"
    );
    assert!(harness.cluster().kv().keys().any(|k| k.starts_with("q/")));

    let rest = Script::from_value(json!([
        {"run": {"rounds": 10}},
        {"expect": {"jobs": {"*": "finished"}, "all_free": true}},
    ]))
    .unwrap();
    harness.run(&rest).await.unwrap();
    let order: Vec<String> = harness
        .record()
        .launched()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(order, ["job-1.1", "job-2.1", "job-3.1"], "FIFO kept");
    assert!(harness.report(None).passed());
}

#[tokio::test]
async fn a_lost_agent_loses_its_tasks_and_the_job_is_retried() {
    let report = run_jobs(json!({
        "agents": 2,
        "config": no_backoff(),
        "steps": [
            {"submit": {"cpus": 4, "attempts": 2, "count": 2}},
            {"offer": "all"},
            {"expect": {"running": 2}},
            {"agent_lost": "agent-2"},
            {"expect": {"running": 1, "tasks": {"job-1.1": "lost"}, "jobs": {"job-1": "queued"}}},
            {"run": {"rounds": 10}},
            {"expect": {"jobs": {"*": "finished"}, "all_free": true}},
        ],
    }))
    .await;
    expect_passed(&report);
    let lines = lines(&report);
    let lost = lines
        .iter()
        .position(|l| l.contains("LOST"))
        .expect("a LOST status");
    assert!(lines[lost].ends_with("LOST) -> revive"), "{}", lines[lost]);
    assert!(lines[lost + 1].ends_with("agent-lost(agent-2) -> nothing"));
    assert_eq!(report.summary.launched, 3, "one attempt relaunched");
    assert_eq!(report.summary.tasks.get("LOST"), Some(&1));
}

#[tokio::test]
async fn failed_expectations_say_what_was_found() {
    let report = run_jobs(json!([
        {"submit": {"count": 2}},
        {"offer": "all"},
        {"expect": {"running": 3, "jobs": {"job-1": "finished"}, "kv": {"run/job-1.1": null}, "timers": ["t"]}},
        {"finish_all": "finished"},
    ]))
    .await;
    let Some(HarnessError::Expectation { step, message }) = &report.error else {
        panic!("{:?}", report.error)
    };
    assert_eq!(
        *step, 3,
        "steps count from 1; the 2 submissions are one step"
    );
    for want in [
        "running: expected 3 active task(s), found 2 (job-1.1 RUNNING, job-2.1 RUNNING)",
        "jobs: job-1 is RUNNING, expected FINISHED",
        "kv: run/job-1.1 is \"{",
        "expected it absent",
        "timers: expected [t], found []",
    ] {
        assert!(message.contains(want), "{want:?} not in {message}");
    }
    assert!(!report.passed());
    assert!(report.problems()[0].starts_with("step 3: expectation failed: running:"));
    // The run stopped there: the tasks were never finished.
    assert_eq!(report.summary.tasks.get("RUNNING"), Some(&2));
    assert!(
        report
            .transcript(false)
            .contains("-- expect FAILED: running:")
    );

    // A step that cannot be carried out stops the run the same way.
    let report = run_jobs(json!([{"status": {"task": "job-9.1", "state": "finished"}}])).await;
    assert_eq!(
        report.error.unwrap().to_string(),
        "step 1 (status): no task job-9.1 was launched (tasks: none)"
    );
}

#[tokio::test]
async fn a_trapping_scheduler_is_reinstantiated_and_recorded() {
    let (host, component) = chaos(SchedHostConfig::default());
    let report = run(
        &host,
        &component,
        json!([
            {"message": {"body": "trap"}},
            {"message": {"body": "sane"}},
            {"expect": {"reply": "sane", "failures": 3}},
        ]),
    )
    .await;
    expect_passed(&report);
    let failures: Vec<_> = report.record.failures().collect();
    assert_eq!(failures.len(), 3);
    for (i, f) in failures.iter().enumerate() {
        let failure = f.failure.as_ref().unwrap();
        assert_eq!(failure.kind, FailureKind::Trap);
        assert!(failure.message.contains("chaos: trap requested"));
        assert_eq!(f.attempt, i as u32 + 1);
        assert_eq!(failure.retried, i < 2);
    }
    // Between attempts, a fresh instance was told `registered`.
    let lines = lines(&report);
    assert!(
        lines[1].contains("message(user \"trap\") !! trap: "),
        "{lines:#?}"
    );
    assert!(lines[1].ends_with("(attempt 1; re-instantiating)"));
    assert!(lines[2].ends_with("registered (again) -> suppress"));
    assert!(lines[5].ends_with("(attempt 3; giving up)"));
    assert!(
        report
            .record
            .notes()
            .any(|n| n.text == "message abandoned after 3 failed attempt(s)")
    );

    // Without the expectation, the failures fail the run.
    let report = run(&host, &component, json!([{"message": {"body": "trap"}}])).await;
    assert_eq!(
        report.problems(),
        ["the scheduler failed 3 callback(s) (1 event(s) abandoned)"]
    );
}

#[tokio::test]
async fn a_scheduler_that_cannot_start_stops_the_run() {
    // Six failures in a row and the master marks a framework FAILED.
    let (host, component) = chaos(SchedHostConfig::default());
    let report = run(
        &host,
        &component,
        json!({"config": {"on-registered": "trap"}, "steps": [{"offer": "all"}]}),
    )
    .await;
    let Some(HarnessError::SchedulerFailed { failures, reason }) = &report.error else {
        panic!("{:?}", report.error)
    };
    assert_eq!(*failures, 6);
    assert!(reason.contains("trap requested"), "{reason}");
    let kinds: Vec<_> = report
        .record
        .callbacks()
        .map(|c| c.failure.as_ref().map(|f| (f.kind, f.retried)))
        .collect();
    let mut want = vec![Some((FailureKind::Trap, true)); 5];
    want.push(Some((FailureKind::Trap, false)));
    assert_eq!(kinds, want);
    assert!(
        report
            .transcript(false)
            .contains("-- the framework FAILED: 6 failures in a row"),
        "{}",
        report.transcript(false)
    );
}

#[tokio::test]
async fn offers_follow_the_masters_rules() {
    // A job only the big agent fits: the jobs scheduler declines the small
    // one for 1s, so it is not offered again within that second; a round
    // over every agent then offers only the big one.
    let (host, component) = jobs(SchedHostConfig::default());
    let script = Script::from_value(json!([
        {"submit": {"cpus": 2}},
        {"offer": ["agent-2"]},
        {"offer": ["agent-2"]},
        {"advance": "1s"},
        {"offer": ["agent-2"]},
        {"offer": "all"},
        {"expect": {"running": 1, "suppressed": true}},
        {"offer": "all"},
    ]))
    .unwrap();
    let mut config = HarnessConfig::with_agents(2);
    config.agents[1].resources = Resources::new(1.0, 1 << 30, 0);
    let mut harness = Harness::start(&host, &component, config).await.unwrap();
    harness.run(&script).await.unwrap();
    let report = harness.report(None);
    let transcript = report.transcript(false);
    let want = [
        "[t=0.0s] offers(1) -> decline 1 offer (1s)",
        "[t=0.0s] -- no offers: the free resources are filtered (declined or lapsed recently)",
        "[t=1.0s] offers(1) -> decline 1 offer (1s)",
        "[t=1.0s] offers(1) -> launch job-1.1 on agent-1 (cpus:2,mem:64MiB); suppress",
        "[t=1.0s] -- no offers: the framework is suppressed",
    ];
    let mut from = 0;
    for line in want {
        let at = transcript[from..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} not (in order) in\n{transcript}"));
        from += at + line.len();
    }
    let agent = harness.cluster().agent("agent-1").unwrap();
    assert_eq!(agent.id, AgentId::new("agent-1").unwrap());
    assert_eq!(agent.allocated, Resources::new(2.0, 64 << 20, 0));
    assert_eq!(
        harness.cluster().free(&agent.id),
        Resources::new(2.0, (8 << 30) - (64 << 20), 10 << 30)
    );
    assert!(report.passed(), "{transcript}");
}
