//! The scheduler's decisions against an in-memory host.

use wasmesos_sdk::{
    Command, Host, MemoryHost, Message, Offer, Registration, Resources, TaskState, TaskStatus,
};

use super::*;

/// The callbacks under the default config (what `registered` with no
/// config sets), one call each: the scheduler keeps nothing else in memory.
fn registered(h: &mut MemoryHost) -> Outcome {
    Jobs::default().registered(h, &registration(&[]))
}

fn offers(h: &mut MemoryHost, offers: &[Offer]) -> Outcome {
    Jobs::default().offers(h, offers)
}

fn status_update(h: &mut MemoryHost, st: &TaskStatus) -> Outcome {
    Jobs::default().status_update(h, st)
}

fn message(h: &mut MemoryHost, m: &Message) -> Outcome<Result<Reply, String>> {
    Jobs::default().message(h, m)
}

fn timer(h: &mut MemoryHost, id: &str) -> Outcome {
    Jobs::default().timer(h, id)
}

fn registration(config: &[(&str, &str)]) -> Registration {
    Registration {
        framework_id: "fw-1".into(),
        name: "jobs".into(),
        role: "default".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reregistered: true,
    }
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MIB: u64 = 1 << 20;

fn submit(h: &mut MemoryHost, job: &str, cpus_milli: u64, max_attempts: u32) {
    submit_with_priority(h, job, cpus_milli, max_attempts, 0);
}

fn submit_with_priority(
    h: &mut MemoryHost,
    job: &str,
    cpus_milli: u64,
    max_attempts: u32,
    priority: i32,
) {
    let body = format!(
        r#"{{"job_id":"{job}","max_attempts":{max_attempts},"priority":{priority},
           "task":{{"module_digest":"{DIGEST}","resources":{{"cpus_milli":{cpus_milli},"mem_bytes":{}}}}}}}"#,
        64 * MIB
    );
    let reply = message(h, &msg("submit", &body)).unwrap().unwrap();
    assert!(reply.body.is_empty());
    assert_eq!(reply.commands, [Command::Revive]);
}

fn msg(kind: &str, body: &str) -> Message {
    Message {
        kind: kind.into(),
        sender: "alice".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn offer(id: &str, resources: Resources) -> Offer {
    Offer {
        id: id.into(),
        agent_id: format!("agent-{id}"),
        hostname: "localhost".into(),
        resources,
        attributes: Vec::new(),
    }
}

fn cpus(milli: u64) -> Resources {
    Resources::new(milli, 1024 * MIB, 0)
}

fn status(task: &str, state: TaskState, reconciliation: bool) -> TaskStatus {
    TaskStatus {
        task_id: task.into(),
        state,
        message: "exited with code 1".into(),
        exit_code: Some(1),
        agent_id: None,
        timestamp_ms: 0,
        result: None,
        reconciliation,
    }
}

/// (offer id, task ids) of each launch, in order.
fn launches(cmds: &[Command]) -> Vec<(String, Vec<String>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Launch(l) => Some((
                l.offer_ids.join(","),
                l.tasks.iter().map(|t| t.task_id.clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn declines(cmds: &[Command]) -> Vec<(Vec<String>, f64)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Decline(d) => Some((d.offer_ids.clone(), d.refuse_seconds)),
            _ => None,
        })
        .collect()
}

fn queued_jobs(h: &MemoryHost) -> Vec<String> {
    summary(h).queued_jobs
}

#[test]
fn registered_revives_only_with_work_queued() {
    let mut h = MemoryHost::default();
    assert_eq!(registered(&mut h).unwrap(), [Command::Suppress]);
    submit(&mut h, "a", 100, 1);
    assert_eq!(registered(&mut h).unwrap(), [Command::Revive]);
}

#[test]
fn registered_reconciles_running_attempts() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    submit(&mut h, "b", 100, 1);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        registered(&mut h).unwrap(),
        [
            Command::Reconcile(vec!["a.1".into(), "b.1".into()]),
            Command::Suppress
        ]
    );
}

#[test]
fn submit_refuses_bad_bodies_and_unknown_kinds() {
    let mut h = MemoryHost::default();
    let err = message(&mut h, &msg("submit", "{")).unwrap().unwrap_err();
    assert!(err.starts_with("invalid submission"), "{err}");
    let body = format!(r#"{{"job_id":"j","retries":3,"task":{{"module_digest":"{DIGEST}"}}}}"#);
    let err = message(&mut h, &msg("submit", &body)).unwrap().unwrap_err();
    assert!(err.contains("unknown field `retries`"), "{err}");
    let err = message(&mut h, &msg("shout", "")).unwrap().unwrap_err();
    assert!(err.contains("unknown message kind"), "{err}");
    assert!(
        h.state.is_empty(),
        "a refusal must not write: {:?}",
        h.state
    );
}

#[test]
fn submitting_a_job_twice_queues_it_once() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    submit(&mut h, "a", 100, 1);
    assert_eq!(queued_jobs(&h), ["a"]);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    submit(&mut h, "a", 100, 1);
    assert!(queued_jobs(&h).is_empty(), "a running job is known too");
}

#[test]
fn offers_pack_fifo_and_suppress_when_the_queue_empties() {
    let mut h = MemoryHost::default();
    for job in ["a", "b", "c"] {
        submit(&mut h, job, 500, 1);
    }
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        launches(&cmds),
        [("o1".into(), vec!["a.1".into(), "b.1".into()])]
    );
    assert!(!cmds.contains(&Command::Suppress), "c still waits");
    assert_eq!(queued_jobs(&h), ["c"]);

    let cmds = offers(&mut h, &[offer("o2", cpus(1000)), offer("o3", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o2".into(), vec!["c.1".into()])]);
    assert_eq!(declines(&cmds), [(vec!["o3".into()], 5.0)]);
    assert_eq!(cmds.last(), Some(&Command::Suppress));
    assert_eq!(summary(&h).running, 3);
}

#[test]
fn a_job_that_does_not_fit_waits_without_blocking_smaller_ones() {
    let mut h = MemoryHost::default();
    submit(&mut h, "big", 4000, 1);
    submit(&mut h, "small", 500, 1);
    let cmds = offers(&mut h, &[offer("o1", cpus(1000)), offer("o2", cpus(100))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["small.1".into()])]);
    assert_eq!(declines(&cmds), [(vec!["o2".into()], 1.0)]);
    assert!(!cmds.contains(&Command::Suppress));
    assert_eq!(queued_jobs(&h), ["big"]);
}

#[test]
fn offers_respect_memory_disk_and_scalars() {
    let mut h = MemoryHost::default();
    let body = format!(
        r#"{{"job_id":"gpu","name":"train","task":{{"module_digest":"{DIGEST}","args":["x"],"env":{{"K":"V"}},
           "resources":{{"cpus_milli":100,"mem_bytes":100,"disk_bytes":10,"scalars_milli":{{"gpus":1000}}}},
           "limits":{{"fuel":5,"timeout_ms":6,"log_bytes":7}}}}}}"#
    );
    message(&mut h, &msg("submit", &body)).unwrap().unwrap();
    let no_gpu = offer("o1", Resources::new(1000, 1000, 1000));
    let small_mem = offer(
        "o2",
        Resources::new(1000, 99, 1000).with_scalar("gpus", 1000),
    );
    let small_disk = offer(
        "o3",
        Resources::new(1000, 1000, 9).with_scalar("gpus", 1000),
    );
    let cmds = offers(&mut h, &[no_gpu, small_mem, small_disk]).unwrap();
    assert!(launches(&cmds).is_empty());
    assert_eq!(declines(&cmds)[0].1, 1.0);

    let fits = offer(
        "o4",
        Resources::new(1000, 1000, 1000).with_scalar("gpus", 1000),
    );
    let cmds = offers(&mut h, &[fits]).unwrap();
    let Command::Launch(l) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    let t = &l.tasks[0];
    assert_eq!((t.task_id.as_str(), t.name.as_str()), ("gpu.1", "train"));
    assert_eq!(t.args, ["x"]);
    assert_eq!(t.env, [("K".to_string(), "V".to_string())]);
    assert_eq!(
        t.resources,
        Resources::new(100, 100, 10).with_scalar("gpus", 1000)
    );
    assert_eq!(
        (t.limits.fuel, t.limits.timeout_ms, t.limits.log_bytes),
        (5, 6, 7)
    );
}

#[test]
fn no_work_declines_for_five_seconds_and_suppresses() {
    let mut h = MemoryHost::default();
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        cmds,
        [cmd::decline(vec!["o1".into()], 5.0), Command::Suppress]
    );
}

#[test]
fn failures_retry_after_a_backoff_in_their_place_until_attempts_run_out() {
    let mut h = MemoryHost {
        now_ms: 10_000,
        ..MemoryHost::default()
    };
    submit(&mut h, "flaky", 1000, 3);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    submit(&mut h, "later", 1000, 1);

    // Attempt 1 failed: the retry waits a second, with a timer to fetch it.
    let cmds = status_update(&mut h, &status("flaky.1", TaskState::Failed, false)).unwrap();
    assert_eq!(cmds, [cmd::set_timer(RETRY_TIMER, 1000)]);
    assert_eq!(summary(&h).retrying_jobs, ["flaky"]);
    assert_eq!(queued_jobs(&h), ["later"]);
    // Meanwhile offers go to the jobs that are queued.
    let cmds = offers(&mut h, &[offer("o2", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o2".into(), vec!["later.1".into()])]);

    // A timer that fires early (or a stray one) moves nothing.
    h.now_ms = 10_999;
    assert_eq!(
        timer(&mut h, RETRY_TIMER).unwrap(),
        [cmd::set_timer(RETRY_TIMER, 1)]
    );
    assert!(timer(&mut h, "other").unwrap().is_empty());
    h.now_ms = 11_000;
    assert_eq!(timer(&mut h, RETRY_TIMER).unwrap(), [Command::Revive]);
    assert_eq!(queued_jobs(&h), ["flaky"]);
    assert_eq!(summary(&h).retrying, 0);

    // Attempt 2 fails too: twice the delay.
    offers(&mut h, &[offer("o3", cpus(1000))]).unwrap();
    let cmds = status_update(&mut h, &status("flaky.2", TaskState::Lost, false)).unwrap();
    assert_eq!(cmds, [cmd::set_timer(RETRY_TIMER, 2000)]);
    h.now_ms = 13_000;
    timer(&mut h, RETRY_TIMER).unwrap();
    let cmds = offers(&mut h, &[offer("o4", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o4".into(), vec!["flaky.3".into()])]);

    // The last attempt failed: no more.
    let cmds = status_update(&mut h, &status("flaky.3", TaskState::Error, false)).unwrap();
    assert!(cmds.is_empty(), "no fourth attempt: {cmds:?}");
    assert_eq!(summary(&h).running, 1, "later.1 still runs");
    assert!(h.get("job/flaky").is_none());
    assert!(h.logs.iter().any(|(_, m)| m.contains("giving up after 3")));
}

#[test]
fn a_retry_goes_back_ahead_of_jobs_submitted_after_it() {
    let mut h = MemoryHost::default();
    submit(&mut h, "first", 1000, 2);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    submit(&mut h, "second", 1000, 1);
    status_update(&mut h, &status("first.1", TaskState::Failed, false)).unwrap();
    h.now_ms += 1000;
    timer(&mut h, RETRY_TIMER).unwrap();
    assert_eq!(queued_jobs(&h), ["first", "second"]);
}

#[test]
fn retry_timers_cover_the_earliest_and_are_rearmed_on_registration() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 1000, 5);
    submit(&mut h, "b", 1000, 5);
    offers(&mut h, &[offer("o1", cpus(2000))]).unwrap();
    status_update(&mut h, &status("a.1", TaskState::Failed, false)).unwrap();
    // b fails later, with a later due time: the timer stays on a's.
    h.now_ms = 400;
    let cmds = status_update(&mut h, &status("b.1", TaskState::Failed, false)).unwrap();
    assert_eq!(cmds, [cmd::set_timer(RETRY_TIMER, 600)]);
    assert_eq!(summary(&h).retrying_jobs, ["a", "b"]);

    // After a restart (timers are lost), registration sets it again.
    h.now_ms = 500;
    assert_eq!(
        registered(&mut h).unwrap(),
        [Command::Suppress, cmd::set_timer(RETRY_TIMER, 500)]
    );
    // Long overdue: fire at once, and both go.
    h.now_ms = 5000;
    assert_eq!(
        registered(&mut h).unwrap(),
        [Command::Suppress, cmd::set_timer(RETRY_TIMER, 0)]
    );
    assert_eq!(timer(&mut h, RETRY_TIMER).unwrap(), [Command::Revive]);
    assert_eq!(queued_jobs(&h), ["a", "b"]);
}

#[test]
fn the_backoff_is_configurable_and_zero_retries_at_once() {
    let mut h = MemoryHost::default();
    let mut jobs = Jobs::default();
    let cmds = jobs
        .registered(
            &mut h,
            &registration(&[("retry-backoff-ms", "0"), ("retry-backoff-max-ms", "5")]),
        )
        .unwrap();
    assert_eq!(cmds, [Command::Suppress]);
    submit(&mut h, "a", 1000, 2);
    jobs.offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let cmds = jobs
        .status_update(&mut h, &status("a.1", TaskState::Failed, false))
        .unwrap();
    assert_eq!(cmds, [Command::Revive]);
    assert_eq!(queued_jobs(&h), ["a"]);

    let bad = Jobs::default().registered(&mut h, &registration(&[("retry-backoff-ms", "1s")]));
    let err = bad.unwrap_err().to_string();
    assert!(err.contains("retry-backoff-ms"), "{err}");
}

#[test]
fn higher_priorities_go_first_and_equal_ones_in_submission_order() {
    let mut h = MemoryHost::default();
    submit_with_priority(&mut h, "low-1", 1000, 1, -5);
    submit_with_priority(&mut h, "mid-1", 1000, 1, 0);
    submit_with_priority(&mut h, "high-1", 1000, 1, 10);
    submit_with_priority(&mut h, "mid-2", 1000, 1, 0);
    submit_with_priority(&mut h, "high-2", 1000, 1, 10);
    submit_with_priority(&mut h, "top", 1000, 1, i32::MAX);
    submit_with_priority(&mut h, "bottom", 1000, 1, i32::MIN);
    assert_eq!(
        queued_jobs(&h),
        [
            "top", "high-1", "high-2", "mid-1", "mid-2", "low-1", "bottom"
        ]
    );
    // One job's room: the highest takes it.
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["top.1".into()])]);
    let cmds = offers(&mut h, &[offer("o2", cpus(2000))]).unwrap();
    assert_eq!(
        launches(&cmds),
        [("o2".into(), vec!["high-1.1".into(), "high-2.1".into()])]
    );
}

#[test]
fn a_launch_refused_because_the_job_ended_is_not_retried() {
    let mut h = MemoryHost::default();
    submit(&mut h, "gone", 100, 3);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let mut refused = status("gone.1", TaskState::Error, false);
    refused.message = "job gone is already killed".into();
    assert!(status_update(&mut h, &refused).unwrap().is_empty());
    assert!(h.get("job/gone").is_none());
    assert_eq!(summary(&h).retrying, 0);
}

#[test]
fn finished_and_killed_are_forgotten_and_redelivery_is_ignored() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 3);
    submit(&mut h, "b", 100, 3);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let running = status("a.1", TaskState::Running, false);
    assert!(status_update(&mut h, &running).unwrap().is_empty());
    assert_eq!(summary(&h).running, 2);

    for state in [TaskState::Finished, TaskState::Killed] {
        let task = if state == TaskState::Finished {
            "a.1"
        } else {
            "b.1"
        };
        assert!(
            status_update(&mut h, &status(task, state, false))
                .unwrap()
                .is_empty()
        );
        let before = h.state.clone();
        // The master may deliver an event again after a failed commit.
        assert!(
            status_update(&mut h, &status(task, state, false))
                .unwrap()
                .is_empty()
        );
        let failed = status(task, TaskState::Failed, false);
        assert!(status_update(&mut h, &failed).unwrap().is_empty());
        assert_eq!(h.state, before);
    }
    assert_eq!(summary(&h).running, 0);
    assert_eq!(h.state.keys().collect::<Vec<_>>(), ["seq"]);
}

#[test]
fn reconciliation_answers_are_handled_like_updates() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 2);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let cmds = status_update(&mut h, &status("a.1", TaskState::Running, true)).unwrap();
    assert!(cmds.is_empty());
    let cmds = status_update(&mut h, &status("a.1", TaskState::Lost, true)).unwrap();
    assert_eq!(cmds, [cmd::set_timer(RETRY_TIMER, 1000)]);
    assert_eq!(summary(&h).retrying_jobs, ["a"]);
    // An answer about a task we never launched changes nothing.
    let cmds = status_update(&mut h, &status("zzz.1", TaskState::Lost, true)).unwrap();
    assert!(cmds.is_empty());
}

#[test]
fn user_messages_get_a_summary() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 1000, 1);
    submit(&mut h, "b", 1000, 1);
    submit(&mut h, "c", 1000, 1);
    offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    let reply = message(&mut h, &msg("user", "")).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"queued":2,"retrying":0,"running":1,"queued_jobs":["b","c"],
                           "retrying_jobs":[],"running_tasks":["a.1"]})
    );
    assert!(reply.commands.is_empty());
}

#[test]
fn a_long_queue_is_scanned_in_pages() {
    let mut h = MemoryHost::default();
    for i in 0..250 {
        submit(&mut h, &format!("j{i:03}"), 10, 1);
    }
    let cmds = offers(&mut h, &[offer("o1", Resources::new(2000, 1 << 40, 0))]).unwrap();
    let launched = &launches(&cmds)[0].1;
    assert_eq!(launched.len(), 200);
    assert_eq!(launched[199], "j199.1");
    assert_eq!(summary(&h).queued, 50);
    assert!(!cmds.contains(&Command::Suppress));
}

#[test]
fn an_unreadable_queue_entry_is_dropped() {
    let mut h = MemoryHost::default();
    submit(&mut h, "a", 100, 1);
    let key = h.list("q/", "", 1)[0].clone();
    h.set(&key, b"garbage").unwrap();
    submit(&mut h, "b", 100, 1);
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["b.1".into()])]);
    assert!(h.get("job/a").is_none());
    assert!(
        h.logs
            .iter()
            .any(|(level, _)| *level == wasmesos_sdk::Level::Error)
    );
}

#[test]
fn entries_of_the_earlier_layout_still_run() {
    let mut h = MemoryHost::default();
    h.set("ends", br#"{"front":1,"back":2}"#).unwrap();
    let old = format!(
        r#"{{"job":{{"job_id":"old","task":{{"module_digest":"{DIGEST}","resources":{{"cpus_milli":100,"mem_bytes":1}}}}}},"attempt":1}}"#
    );
    h.set("q/8000000000000000/old", old.as_bytes()).unwrap();
    h.set_json("job/old", "q/8000000000000000/old").unwrap();
    assert_eq!(registered(&mut h).unwrap(), [Command::Revive]);
    assert!(h.get("ends").is_none());
    assert_eq!(queued_jobs(&h), ["old"]);
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(launches(&cmds), [("o1".into(), vec!["old.1".into()])]);
}

#[test]
fn a_cancelled_job_leaves_the_queue_and_a_running_one_is_left_to_its_kill() {
    let mut h = MemoryHost::default();
    submit(&mut h, "job-1", 100, 1);
    submit(&mut h, "job-2", 100, 1);
    let cancel = |h: &mut MemoryHost, job: &str| {
        let body = format!(r#"{{"job_id":"{job}"}}"#);
        message(h, &msg("cancel", &body)).unwrap().unwrap()
    };
    assert!(
        cancel(&mut h, "job-1").commands.is_empty(),
        "job-2 still waits"
    );
    assert_eq!(queued_jobs(&h), ["job-2"]);

    // job-2 launches; a cancel for it changes nothing (its kill ends it).
    let cmds = offers(&mut h, &[offer("o1", cpus(1000))]).unwrap();
    assert_eq!(
        launches(&cmds),
        [("o1".to_string(), vec!["job-2.1".to_string()])]
    );
    assert!(cancel(&mut h, "job-2").commands.is_empty());
    assert!(queue::running(&h, "job-2.1").unwrap().is_some());

    // The last waiting job cancelled: offers stop.
    submit(&mut h, "job-3", 100, 1);
    assert_eq!(cancel(&mut h, "job-3").commands, [Command::Suppress]);
    assert!(queued_jobs(&h).is_empty());
    assert!(!queue::known(&h, "job-3"));
    // Unknown jobs and bodies without a job id are ignored.
    assert!(cancel(&mut h, "job-9").commands.is_empty());
    let odd = message(&mut h, &msg("cancel", "{}")).unwrap().unwrap();
    assert!(odd.commands.is_empty());
}
