//! Script parsing: every step form reads into the right [`Step`], and a bad
//! script is refused with the step's number, its text and the reason.

use std::time::Duration;

use serde_json::json;
use wasmesos_api::proto::{JobState, TaskState};
use wasmesos_api::{AgentId, Resources, TaskId};

use super::*;
use crate::harness::step::*;
use crate::harness::values::*;

const MIB: u64 = 1 << 20;

fn one(step: Value) -> Step {
    let script = Script::from_value(json!([step])).expect("parses");
    script.steps.into_iter().next().expect("one step")
}

/// The error for a script of `steps`, as text.
fn error(steps: Value) -> String {
    Script::from_value(steps).unwrap_err().to_string()
}

#[test]
fn every_step_form_parses() {
    let Step::Submit(s) = one(json!({"submit": {"cpus": 0.5, "mem": "128MiB", "attempts": 3}}))
    else {
        panic!("not a submit")
    };
    assert_eq!(s.task_resources(), Resources::new(0.5, 128 * MIB, 0));
    assert_eq!(s.max_attempts(), 3);

    assert_eq!(one(json!({"offer": "all"})), Step::Offer(OfferTarget::All));
    assert_eq!(
        one(json!({"offer": ["agent-2"]})),
        Step::Offer(OfferTarget::Agents(vec![AgentId::new("agent-2").unwrap()]))
    );
    assert_eq!(
        one(json!({"run": {"rounds": 10}})),
        Step::Run(Run {
            rounds: 10,
            every: Dur(Duration::from_secs(1)),
            finish: Finish::State(TaskState::Finished),
        })
    );
    assert!(matches!(
        one(json!({"run": {"finish": "none"}})),
        Step::Run(Run {
            rounds: 100,
            finish: Finish::None,
            ..
        })
    ));
    let Step::Status(s) =
        one(json!({"status": {"task": "job-1.1", "state": "failed", "exit_code": 3}}))
    else {
        panic!("not a status")
    };
    assert_eq!(s.task, TaskId::new("job-1.1").unwrap());
    assert_eq!(s.state, StateName(TaskState::Failed));
    assert_eq!(s.exit_code, Some(3));
    assert_eq!(
        one(json!({"finish_all": "FINISHED"})),
        Step::FinishAll(StateName(TaskState::Finished))
    );
    assert_eq!(
        one(json!({"advance": "1.5s"})),
        Step::Advance(Dur(Duration::from_millis(1500)))
    );
    assert_eq!(
        one(json!({"advance": 2})),
        Step::Advance(Dur(Duration::from_secs(2)))
    );
    assert_eq!(
        one(json!({"agent_lost": "agent-2"})),
        Step::AgentLost(AgentId::new("agent-2").unwrap())
    );
    assert_eq!(one(json!({"restart": true})), Step::Restart(true));
    let Step::Message(m) = one(json!({"message": {"kind": "user", "body": "hi"}})) else {
        panic!("not a message")
    };
    assert_eq!(m.body_bytes(), b"hi");
    let Step::Message(m) = one(json!({"message": {"json": {"a": 1}}})) else {
        panic!("not a message")
    };
    assert_eq!(
        (m.kind.as_str(), m.body_bytes()),
        ("user", br#"{"a":1}"#.to_vec())
    );
    let Step::Expect(e) = one(json!({"expect": {
        "running": 3,
        "launched": ["job-1.1"],
        "jobs": {"*": "finished"},
        "kv": {"ends": null},
    }})) else {
        panic!("not an expect")
    };
    assert_eq!(e.running, Some(3));
    assert_eq!(e.launched, Some(vec![TaskId::new("job-1.1").unwrap()]));
    assert_eq!(e.jobs.unwrap()["*"], JobStateName(JobState::Finished));
    assert_eq!(e.kv.unwrap()["ends"], Value::Null);
}

#[test]
fn the_object_form_sets_the_cluster() {
    let script = Script::parse(
        r#"{"agents": [{"id": "big", "resources": "cpus:8,mem:16GiB"}, {}],
            "resources": "cpus:1,mem:1GiB",
            "config": {"k": "v"},
            "steps": [{"offer": "all"}]}"#,
    )
    .unwrap();
    let Some(Agents::List(agents)) = &script.cluster.agents else {
        panic!("{:?}", script.cluster.agents)
    };
    assert_eq!(agents[0].id, Some(AgentId::new("big").unwrap()));
    assert_eq!(agents[0].resources, Some(Resources::new(8.0, 16 << 30, 0)));
    assert_eq!(agents[1], AgentEntry::default());
    assert_eq!(
        script.cluster.resources,
        Some(Resources::new(1.0, 1 << 30, 0))
    );
    assert_eq!(script.cluster.config["k"], "v");
    assert_eq!(script.steps.len(), 1);

    let counted = Script::parse(r#"{"agents": 3, "steps": []}"#).unwrap();
    assert_eq!(counted.cluster.agents, Some(Agents::Count(3)));
}

#[test]
fn the_submit_body_is_the_masters() {
    let s = Submit {
        env: [("K".to_string(), "V".to_string())].into(),
        timeout: Some(Dur(Duration::from_secs(2))),
        ..Submit::default()
    };
    let body: Value = serde_json::from_slice(&s.body("job-7")).unwrap();
    assert_eq!(body["job_id"], "job-7");
    assert_eq!(body["name"], "job-7", "the name defaults to the job id");
    assert_eq!(body["max_attempts"], 1);
    assert_eq!(body["task"]["env"]["K"], "V");
    assert_eq!(body["task"]["resources"]["cpus_milli"], 100);
    assert_eq!(body["task"]["resources"]["mem_bytes"], 64 * MIB);
    assert_eq!(body["task"]["limits"]["timeout_ms"], 2000);
    assert_eq!(
        body["task"]["module_digest"],
        placeholder_module().to_string()
    );
    assert!(body.get("priority").is_none(), "sent only when set");
    let urgent = Submit {
        priority: Some(5),
        ..Submit::default()
    };
    let body: Value = serde_json::from_slice(&urgent.body("job-8")).unwrap();
    assert_eq!(body["priority"], 5);
}

#[test]
fn bad_steps_are_reported_by_number_and_text() {
    let cases: &[(Value, &str)] = &[
        (
            json!([{"offer": "all"}, {"sumbit": {}}]),
            "step 2 {\"sumbit\":{}}: unknown variant `sumbit`, expected one of",
        ),
        (
            json!([{"submit": {"cpu": 1}}]),
            "step 1 {\"submit\":{\"cpu\":1}}: unknown field `cpu`",
        ),
        (
            json!([{"offer": "all", "advance": "1s"}]),
            "step 1 {\"advance\":\"1s\",\"offer\":\"all\"}: a step is an object with exactly one key",
        ),
        (json!(["offer"]), "step 1 \"offer\": a step is an object"),
        (json!([{"advance": "soon"}]), "invalid duration \"soon\""),
        (json!([{"offer": "some"}]), "offer takes \"all\" or a list"),
        (
            json!([{"status": {"task": "t", "state": "done"}}]),
            "unknown task state \"done\"",
        ),
        (
            json!([{"finish_all": "running"}]),
            "finish_all takes a terminal state",
        ),
        (json!([{"restart": false}]), "restart takes true"),
        (json!([{"expect": {}}]), "expect names nothing to check"),
        (
            json!([{"submit": {"cpus": 1, "resources": "cpus:1"}}]),
            "either \"resources\" or \"cpus\"",
        ),
        (
            json!([{"submit": {"job_id": "j", "count": 2}}]),
            "cannot take one \"job_id\"",
        ),
        (json!([{"submit": {"mem": "lots"}}]), "invalid size 'lots'"),
        (
            json!([{"agent_lost": "a/b"}]),
            "agent id 'a/b' may contain only",
        ),
        (
            json!([{"expect": {"jobs": {"job-1": "done"}}}]),
            "unknown job state \"done\"",
        ),
    ];
    for (steps, want) in cases {
        let got = error(steps.clone());
        assert!(got.contains(want), "for {steps}: {got}");
    }
}

#[test]
fn long_steps_are_shortened_in_errors() {
    let long = "x".repeat(200);
    let got = error(json!([{"message": {"body": long, "colour": 1}}]));
    assert!(got.starts_with("step 1 {\"message\":"), "{got}");
    assert!(got.contains("...: unknown field `colour`"), "{got}");
    assert!(got.len() < 300, "{got}");
}

#[test]
fn a_bad_shape_says_what_a_script_is() {
    assert!(error(json!("run")).contains("must be a list of steps"));
    assert!(error(json!({"agents": 2})).contains("missing field `steps`"));
    assert!(error(json!({"agents": "many", "steps": []})).contains("agents: expected a number"));
    let not_json = Script::parse("[{\"offer\": \"all\"},]").unwrap_err();
    assert!(
        not_json.to_string().contains("not valid JSON") && not_json.to_string().contains("line 1"),
        "{not_json}"
    );
}

#[test]
fn durations_and_merges() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("-1s").is_err());

    let script = ClusterSpec {
        agents: Some(Agents::Count(2)),
        resources: Some(Resources::new(1.0, MIB, 0)),
        config: [("a".to_string(), "1".to_string())].into(),
        ..ClusterSpec::default()
    };
    let flags = ClusterSpec {
        agents: Some(Agents::Count(5)),
        config: [("b".to_string(), "2".to_string())].into(),
        ..ClusterSpec::default()
    };
    let merged = script.merge(flags);
    assert_eq!(merged.agents, Some(Agents::Count(5)));
    assert_eq!(merged.resources, Some(Resources::new(1.0, MIB, 0)));
    assert_eq!(merged.config.len(), 2);
}
