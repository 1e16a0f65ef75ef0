//! Human names of task and job states, as the CLI and the UI print them.

use crate::proto::{JobState, TaskState};

impl TaskState {
    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Lost
                | TaskState::Error
        )
    }

    /// Whether a task in this state holds its agent's resources.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Staging | TaskState::Starting | TaskState::Running
        )
    }

    /// `STAGING`, `RUNNING`, ... (Mesos' names without the `TASK_` prefix).
    pub fn name(self) -> &'static str {
        task_state_name(self)
    }

    /// Parses a state name as [`TaskState::name`] prints it (any case).
    pub fn parse(text: &str) -> Option<TaskState> {
        let upper = text.trim().to_ascii_uppercase();
        let upper = upper.strip_prefix("TASK_").unwrap_or(&upper);
        [
            TaskState::Staging,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
            TaskState::Error,
        ]
        .into_iter()
        .find(|s| s.name() == upper)
    }
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Killed
        )
    }
}

/// The printed name of a task state.
pub fn task_state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Unspecified => "UNKNOWN",
        TaskState::Staging => "STAGING",
        TaskState::Starting => "STARTING",
        TaskState::Running => "RUNNING",
        TaskState::Finished => "FINISHED",
        TaskState::Failed => "FAILED",
        TaskState::Killed => "KILLED",
        TaskState::Lost => "LOST",
        TaskState::Error => "ERROR",
    }
}

/// The printed name of a job state.
pub fn job_state_name(state: JobState) -> &'static str {
    match state {
        JobState::Unspecified => "UNKNOWN",
        JobState::Queued => "QUEUED",
        JobState::Running => "RUNNING",
        JobState::Finished => "FINISHED",
        JobState::Failed => "FAILED",
        JobState::Killed => "KILLED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for s in [TaskState::Staging, TaskState::Running, TaskState::Lost] {
            assert_eq!(TaskState::parse(s.name()), Some(s));
        }
        assert_eq!(TaskState::parse("task_failed"), Some(TaskState::Failed));
        assert_eq!(TaskState::parse("bogus"), None);
        assert!(TaskState::Killed.is_terminal());
        assert!(!TaskState::Running.is_terminal());
    }
}
