//! Task state changes: reported by agents (acknowledged only once stored, so
//! an agent retries until the master has it) or decided by the master itself
//! (LOST agents, kills of unreachable tasks). Each change updates the task
//! record and its job in one transaction, frees resources of finished tasks,
//! and is passed on to the task's framework.

use wasmesos_api::proto::{self, TaskState, TaskUsage, master_message};
use wasmesos_api::{AgentId, FrameworkId, TaskId, now_ms};
use wasmesos_schedhost::{Event, TaskStatus};

use super::{ClusterEvent, Core, TaskKey};
use crate::commit::{CommitError, put};
use crate::framework::Delivery;
use crate::{jobs, keys};

/// A change to apply to an active task.
pub(super) struct Transition {
    pub state: TaskState,
    pub message: String,
    pub exit_code: Option<i32>,
    pub usage: Option<TaskUsage>,
    pub result: Vec<u8>,
    pub timestamp_ms: i64,
}

impl Core {
    pub(super) async fn status_update(
        &mut self,
        agent: &AgentId,
        conn: u64,
        update: proto::StatusUpdate,
    ) -> Result<(), CommitError> {
        let (Ok(fw), Ok(task)) = (
            FrameworkId::new(update.framework_id.clone()),
            TaskId::new(update.task_id.clone()),
        ) else {
            self.ack(agent, conn, update.update_id);
            return Ok(());
        };
        let key = (fw, task);
        let state = update.state();
        let relevant = self.tasks.get(&key).is_some_and(|t| {
            &t.agent == agent
                && state != TaskState::Unspecified
                && (state.is_terminal() || (state as i32) > t.record.state)
        });
        if relevant {
            self.transition(
                &key,
                Transition {
                    state,
                    message: update.message.clone(),
                    exit_code: update.exit_code,
                    usage: update.usage,
                    result: update.result.clone(),
                    timestamp_ms: update.timestamp_ms,
                },
            )
            .await?;
        }
        // Queued behind the transition: acknowledged only once stored.
        self.ack(agent, conn, update.update_id);
        Ok(())
    }

    /// Acknowledges an update once everything before it has committed, on
    /// the connection it came in on (a newer connection gets it resent).
    fn ack(&mut self, agent: &AgentId, conn: u64, update_id: String) {
        let agent = agent.clone();
        self.write(Vec::new(), move |core| {
            let current = core
                .agents
                .get(&agent)
                .and_then(|a| a.conn.as_ref())
                .is_some_and(|c| c.id == conn);
            if current {
                let ack = master_message::Msg::Ack(proto::StatusAck { update_id });
                let _ = core.send_to_agent(&agent, ack);
            }
        });
    }

    /// A transition the master decides on its own.
    pub(super) async fn master_transition(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        message: String,
    ) -> Result<(), CommitError> {
        self.transition(
            key,
            Transition {
                state,
                message,
                exit_code: None,
                usage: None,
                result: Vec::new(),
                timestamp_ms: now_ms(),
            },
        )
        .await
    }

    pub(super) async fn transition(
        &mut self,
        key: &TaskKey,
        t: Transition,
    ) -> Result<(), CommitError> {
        let Some(active) = self.tasks.get(key) else {
            return Ok(());
        };
        let tenant = active.tenant.clone();
        let mut record = active.record.clone();
        self.task_counts.moved(record.state(), t.state);
        record.set_state(t.state);
        record.message = t.message;
        if t.exit_code.is_some() {
            record.exit_code = t.exit_code;
        }
        if t.usage.is_some() {
            record.usage = t.usage;
        }
        if !t.result.is_empty() {
            record.result = t.result;
        }
        let ts = if t.timestamp_ms > 0 {
            t.timestamp_ms
        } else {
            now_ms()
        };
        if t.state == TaskState::Running && record.started_ms == 0 {
            record.started_ms = ts;
        }
        if t.state.is_terminal() {
            record.finished_ms = ts;
        }

        let mut ops = vec![put(keys::task(&tenant, &key.0, &key.1), &record)];
        let job = self.job_after(&tenant, &record, jobs::on_task).await?;
        if let Some((job_key, job)) = &job {
            ops.push(put(job_key.clone(), job));
        }
        if t.state.is_terminal() {
            self.release_task(key);
        } else if let Some(active) = self.tasks.get_mut(key) {
            active.record = record.clone();
        }
        tracing::debug!(framework = %key.0, task = %key.1, state = t.state.name(), "task update");
        let fw = key.0.clone();
        self.write(ops, move |core| {
            core.publish(ClusterEvent::Task(record.clone()));
            if let Some((_, job)) = job {
                core.publish(ClusterEvent::Job(job));
            }
            core.notify_framework(&fw, &record, false);
        });
        Ok(())
    }

    /// Reads the job `task` belongs to and applies `change`, returning its
    /// key and new record; `None` for tasks launched outside a job.
    pub(super) async fn job_after(
        &self,
        tenant: &wasmesos_api::TenantId,
        task: &proto::Task,
        change: fn(&mut proto::Job, &proto::Task),
    ) -> Result<Option<(String, proto::Job)>, CommitError> {
        let Ok(job_id) = wasmesos_api::JobId::new(task.job_id.clone()) else {
            return Ok(None);
        };
        let key = keys::job(tenant, &job_id);
        let Some(mut job) = self.committer.read::<proto::Job>(&key).await? else {
            return Ok(None);
        };
        change(&mut job, task);
        Ok(Some((key, job)))
    }

    /// Frees what a task that ended held.
    fn release_task(&mut self, key: &TaskKey) {
        let Some(active) = self.tasks.remove(key) else {
            return;
        };
        if let Some(agent) = self.agents.get_mut(&active.agent) {
            agent.tasks.remove(key);
            agent.allocated = agent.allocated.saturating_sub(&active.resources);
        }
        if let Some(fw) = self.frameworks.get_mut(&key.0) {
            fw.allocated = fw.allocated.saturating_sub(&active.resources);
            fw.tasks_running = fw.tasks_running.saturating_sub(1);
        }
        self.allocation_pending = true;
    }

    /// Passes a task's state on to its framework's scheduler.
    pub(super) fn notify_framework(
        &self,
        fw: &FrameworkId,
        record: &proto::Task,
        reconciliation: bool,
    ) {
        let Some(entry) = self.frameworks.get(fw) else {
            return;
        };
        let Ok(task_id) = TaskId::new(record.task_id.clone()) else {
            return;
        };
        entry
            .actor
            .deliver(Delivery::plain(Event::StatusUpdate(TaskStatus {
                task_id,
                state: record.state(),
                message: record.message.clone(),
                exit_code: record.exit_code,
                agent_id: AgentId::new(record.agent_id.clone()).ok(),
                timestamp_ms: record
                    .finished_ms
                    .max(record.started_ms)
                    .max(record.created_ms) as u64,
                result: (!record.result.is_empty()).then(|| record.result.clone()),
                reconciliation,
            })));
    }
}
