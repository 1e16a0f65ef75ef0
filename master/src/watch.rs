//! Following a job for a client (`WatchJob`, behind `submit --wait`): its
//! attempts as they launch and change state, their output relayed from the
//! agent, and a last event once the job is done — sent only after the
//! output of its last attempt has been drained, so a client that exits on
//! that event has printed everything.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tonic::Status;
use wasmesos_api::proto::{self, JobEvent, LogStream, job_event, master_message};
use wasmesos_api::{AgentId, FrameworkId, JobId, TaskId, TenantId};

use crate::commit::Committer;
use crate::core::{ClusterEvent, CoreHandle, CoreMsg};
use crate::keys;
use crate::logs::{LogRouter, LogSubscription};

/// Longest the output of a finished attempt may keep trickling in.
const DRAIN: Duration = Duration::from_secs(10);

/// Asks a task's agent to stream its logs into a new subscription.
pub async fn open_logs(
    core: &CoreHandle,
    logs: &LogRouter,
    task: &proto::Task,
    stream: LogStream,
    follow: bool,
    tail_bytes: u64,
) -> Result<LogSubscription, Status> {
    let agent = AgentId::new(task.agent_id.clone()).map_err(|_| {
        Status::failed_precondition(format!(
            "task {} never reached an agent ({}): it has no logs",
            task.task_id,
            task.state().name()
        ))
    })?;
    let sub = logs.open(&agent);
    let request = proto::LogRequest {
        request_id: sub.id,
        framework_id: task.framework_id.clone(),
        task_id: task.task_id.clone(),
        stream: stream as i32,
        follow,
        tail_bytes,
    };
    core.ask(|reply| CoreMsg::ToAgent {
        agent: agent.clone(),
        msg: master_message::Msg::LogRequest(request),
        reply,
    })
    .await?;
    Ok(sub)
}

/// The state of one `WatchJob` stream.
pub struct JobWatch {
    pub core: CoreHandle,
    pub committer: Committer,
    pub logs: LogRouter,
    pub tenant: TenantId,
    pub job: proto::Job,
    pub with_logs: bool,
    pub events: broadcast::Receiver<ClusterEvent>,
    pub out: mpsc::Sender<Result<JobEvent, Status>>,
}

/// An attempt's output being relayed: the subscription and how many of
/// its streams have ended.
struct Following {
    sub: LogSubscription,
    ended: u8,
}

impl JobWatch {
    pub async fn run(mut self) {
        let mut followed: Vec<String> = Vec::new();
        let mut output: Option<Following> = None;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            if let Some(latest) = self.job.attempts.last().cloned()
                && !followed.contains(&latest)
                && output.is_none()
            {
                followed.push(latest.clone());
                match self.attempt(&latest).await {
                    Some(task) => {
                        output = self.follow(&task).await;
                        if !self.send(job_event::Event::TaskLaunched(task)).await {
                            return;
                        }
                    }
                    None => continue,
                }
            }
            if self.job.state().is_terminal() {
                if output.is_none() {
                    let _ = self
                        .send(job_event::Event::JobFinished(self.job.clone()))
                        .await;
                    return;
                }
                drain_deadline.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN);
            }
            let deadline = drain_deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(ClusterEvent::Task(t)) if t.job_id == self.job.job_id && t.tenant == self.job.tenant => {
                        if !self.send(job_event::Event::TaskUpdated(t)).await {
                            return;
                        }
                    }
                    Ok(ClusterEvent::Job(j)) if j.job_id == self.job.job_id && j.tenant == self.job.tenant => {
                        self.job = j;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reload().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                data = recv(&mut output) => match data {
                    Some(d) if !d.error.is_empty() => {
                        tracing::debug!("log relay for job {}: {}", self.job.job_id, d.error);
                        output = None;
                    }
                    Some(d) => {
                        if !d.data.is_empty() {
                            let chunk = proto::LogChunk { stream: d.stream, data: d.data };
                            if !self.send(job_event::Event::Output(chunk)).await {
                                return;
                            }
                        }
                        if d.eof && let Some(f) = output.as_mut() {
                            f.ended += 1;
                            if f.ended >= 2 {
                                output = None;
                            }
                        }
                    }
                    None => output = None,
                },
                _ = tokio::time::sleep_until(deadline) => output = None,
                _ = self.out.closed() => return,
            }
        }
    }

    async fn send(&self, event: job_event::Event) -> bool {
        self.out
            .send(Ok(JobEvent { event: Some(event) }))
            .await
            .is_ok()
    }

    async fn attempt(&self, task_id: &str) -> Option<proto::Task> {
        let fw = FrameworkId::new(self.job.framework_id.clone()).ok()?;
        let task = TaskId::new(task_id).ok()?;
        self.committer
            .get(&keys::task(&self.tenant, &fw, &task))
            .await
            .ok()
            .flatten()
    }

    async fn follow(&self, task: &proto::Task) -> Option<Following> {
        if !self.with_logs || task.agent_id.is_empty() {
            return None;
        }
        match open_logs(
            &self.core,
            &self.logs,
            task,
            LogStream::Unspecified,
            true,
            0,
        )
        .await
        {
            Ok(sub) => Some(Following { sub, ended: 0 }),
            Err(e) => {
                tracing::debug!("no output for {}: {}", task.task_id, e.message());
                None
            }
        }
    }

    async fn reload(&mut self) {
        let Ok(id) = JobId::new(self.job.job_id.clone()) else {
            return;
        };
        if let Ok(Some(job)) = self.committer.get(&keys::job(&self.tenant, &id)).await {
            self.job = job;
        }
    }
}

/// The next piece of output, or never when nothing is followed.
async fn recv(output: &mut Option<Following>) -> Option<proto::LogData> {
    match output {
        Some(f) => f.sub.rx.recv().await,
        None => std::future::pending().await,
    }
}
