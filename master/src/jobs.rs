//! A job's state follows from its attempts: pure functions the core applies
//! in the same transaction as the task change that drives them.
//!
//! A job is QUEUED until an attempt launches, RUNNING while one is active,
//! and ends FINISHED (an attempt exited 0), KILLED (an attempt was killed)
//! or FAILED (the last allowed attempt failed). A failed attempt with
//! attempts left puts the job back to QUEUED: its framework retries it.

use wasmesos_api::proto::{Job, JobState, Task, TaskState};

/// The attempt number of a task named `JOB.N`.
fn attempt_number(task_id: &str) -> u32 {
    task_id
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// Records that `task` was launched as an attempt of `job`.
pub fn on_launch(job: &mut Job, task: &Task) {
    if !job.attempts.contains(&task.task_id) {
        job.attempts.push(task.task_id.clone());
    }
    if !job.state().is_terminal() {
        job.set_state(JobState::Running);
        job.message.clear();
    }
}

/// Updates `job` for a state change of its attempt `task`.
pub fn on_task(job: &mut Job, task: &Task) {
    if job.state().is_terminal() {
        return;
    }
    let state = task.state();
    if !state.is_terminal() {
        job.set_state(JobState::Running);
        return;
    }
    job.exit_code = task.exit_code;
    let max = job
        .spec
        .as_ref()
        .map(|s| s.max_attempts)
        .unwrap_or(0)
        .max(1);
    let attempt = attempt_number(&task.task_id);
    let (next, message) = match state {
        TaskState::Finished => (JobState::Finished, String::new()),
        TaskState::Killed => (JobState::Killed, task.message.clone()),
        _ if attempt < max => (
            JobState::Queued,
            format!(
                "attempt {attempt} of {max} {}: {}; retrying",
                state.name(),
                task.message
            ),
        ),
        _ => (JobState::Failed, task.message.clone()),
    };
    job.set_state(next);
    job.message = message;
    if next.is_terminal() {
        job.finished_ms = task.finished_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesos_api::proto::JobSpec;

    fn job(max_attempts: u32) -> Job {
        let mut j = Job {
            job_id: "job-1".into(),
            spec: Some(JobSpec {
                max_attempts,
                ..Default::default()
            }),
            ..Default::default()
        };
        j.set_state(JobState::Queued);
        j
    }

    fn task(id: &str, state: TaskState, exit: Option<i32>) -> Task {
        let mut t = Task {
            task_id: id.into(),
            exit_code: exit,
            message: "exited with code 3".into(),
            finished_ms: 42,
            ..Default::default()
        };
        t.set_state(state);
        t
    }

    #[test]
    fn success_finishes_the_job() {
        let mut j = job(1);
        on_launch(&mut j, &task("job-1.1", TaskState::Staging, None));
        assert_eq!(j.state(), JobState::Running);
        on_task(&mut j, &task("job-1.1", TaskState::Finished, Some(0)));
        assert_eq!(j.state(), JobState::Finished);
        assert_eq!(j.exit_code, Some(0));
        assert_eq!(j.finished_ms, 42);
        assert_eq!(j.attempts, vec!["job-1.1"]);
    }

    #[test]
    fn failures_retry_until_attempts_run_out() {
        let mut j = job(2);
        on_launch(&mut j, &task("job-1.1", TaskState::Staging, None));
        on_task(&mut j, &task("job-1.1", TaskState::Failed, Some(3)));
        assert_eq!(j.state(), JobState::Queued);
        assert!(j.message.contains("retrying"), "{}", j.message);
        on_launch(&mut j, &task("job-1.2", TaskState::Staging, None));
        on_task(&mut j, &task("job-1.2", TaskState::Failed, Some(3)));
        assert_eq!(j.state(), JobState::Failed);
        assert_eq!(j.exit_code, Some(3));
        assert_eq!(j.attempts.len(), 2);
    }

    #[test]
    fn kill_ends_the_job_and_terminal_jobs_stay_put() {
        let mut j = job(3);
        on_task(&mut j, &task("job-1.1", TaskState::Killed, None));
        assert_eq!(j.state(), JobState::Killed);
        on_task(&mut j, &task("job-1.2", TaskState::Finished, Some(0)));
        assert_eq!(j.state(), JobState::Killed);
    }
}
