//! Submissions and kills from clients.
//!
//! A submission becomes a message to its framework's scheduler; the job
//! record, its idempotency key and the scheduler's own state changes commit
//! together when the scheduler accepts it (see `callbacks`). The same
//! idempotency key always yields the same job, also while the first
//! submission is still in flight.

use tokio::sync::oneshot;
use tonic::Status;
use wasmesos_api::proto::{self, JobState};
use wasmesos_api::{Digest, FrameworkId, JobId, Principal, Resources, TaskId, TenantId, now_ms};
use wasmesos_schedhost::{Event, Message};

use super::{ClusterEvent, Core};
use crate::commit::{CommitError, put};
use crate::framework::{Context, Delivery, PendingSubmit};
use crate::keys;

/// The framework submissions go to when the request names none.
pub const DEFAULT_FRAMEWORK: &str = "jobs";

/// A client's task reference, resolved against the store.
#[derive(Clone, Debug)]
pub(crate) enum ResolvedTask {
    Task {
        tenant: TenantId,
        framework: FrameworkId,
        task: TaskId,
    },
    /// A job with no attempt yet.
    QueuedJob { tenant: TenantId, job: JobId },
}

pub(super) type SubmitReply = oneshot::Sender<Result<proto::SubmitResponse, Status>>;

impl Core {
    /// Answers a submission and any duplicates that waited for it.
    pub(super) fn answer_submit(
        &mut self,
        p: PendingSubmit,
        answer: Result<proto::SubmitResponse, Status>,
    ) {
        if !p.idempotency_key.is_empty()
            && let (Ok(tenant), Ok(fw)) = (
                TenantId::new(p.job.tenant.clone()),
                FrameworkId::new(p.job.framework_id.clone()),
            )
        {
            let idem = keys::idempotency(&tenant, &fw, &p.idempotency_key);
            for waiter in self.idem_waiters.remove(&idem).unwrap_or_default() {
                let dup = answer.clone().map(|mut r| {
                    r.created = false;
                    r
                });
                let _ = waiter.send(dup);
            }
        }
        let _ = p.reply.send(answer);
    }
}

impl Core {
    pub(super) async fn submit(
        &mut self,
        principal: Principal,
        request: proto::SubmitRequest,
        reply: SubmitReply,
    ) -> Result<(), CommitError> {
        match self.prepare_submit(&principal, request).await {
            Ok(Prepared::Existing(response)) => {
                let _ = reply.send(Ok(response));
            }
            Ok(Prepared::InFlight(idem)) => {
                self.idem_waiters.entry(idem).or_default().push(reply);
            }
            Ok(Prepared::New {
                fw,
                pending_job,
                key,
                body,
            }) => {
                let delivery = Delivery::with(
                    Event::Message(Message {
                        kind: "submit".into(),
                        sender: principal.name.clone(),
                        body,
                    }),
                    Context::Submit(Box::new(PendingSubmit {
                        job: pending_job,
                        idempotency_key: key,
                        reply,
                    })),
                );
                self.frameworks[&fw].actor.deliver(delivery);
            }
            Err(Ok(status)) => {
                let _ = reply.send(Err(status));
            }
            Err(Err(e)) => {
                let _ = reply.send(Err(Status::unavailable(e.to_string())));
                return Err(e);
            }
        }
        Ok(())
    }

    async fn prepare_submit(
        &mut self,
        principal: &Principal,
        request: proto::SubmitRequest,
    ) -> Result<Prepared, Result<Status, CommitError>> {
        let tenant = principal.tenant.clone();
        let name = if request.framework.is_empty() {
            DEFAULT_FRAMEWORK
        } else {
            request.framework.as_str()
        };
        let fw_id = self
            .frameworks
            .iter()
            .find(|(_, f)| f.tenant == tenant && f.record.name == name)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                Ok(Status::not_found(format!(
                    "no framework named '{name}' for tenant {tenant} (wasmesos frameworks lists them)"
                )))
            })?;
        let fw_name = self.frameworks[&fw_id].record.name.clone();
        let mut spec = request
            .spec
            .ok_or_else(|| Ok(Status::invalid_argument("the submission has no job spec")))?;
        let task = spec
            .task
            .as_mut()
            .ok_or_else(|| Ok(Status::invalid_argument("the job spec has no task")))?;
        self.check_task_limits(&tenant, task).map_err(Ok)?;
        let digest = Digest::parse(&task.module_digest)
            .map_err(|e| Ok(Status::invalid_argument(e.to_string())))?;
        let resources = Resources::from(task.resources.as_ref());
        if resources.mem_bytes == 0 {
            return Err(Ok(Status::invalid_argument(
                "the job asks for no memory: --mem is both its share of an agent and its memory cap",
            )));
        }
        let module = self
            .modules
            .stat(&tenant, &digest)
            .await
            .map_err(|e| Ok(Status::internal(e.to_string())))?;
        if module.is_none() {
            return Err(Ok(Status::failed_precondition(format!(
                "module {digest} has not been uploaded (PutModule first)"
            ))));
        }

        let key = request.idempotency_key;
        if !key.is_empty() {
            let idem = keys::idempotency(&tenant, &fw_id, &key);
            if self.idem_waiters.contains_key(&idem) {
                return Ok(Prepared::InFlight(idem));
            }
            if let Some(value) = self.committer.read_raw(&idem).await.map_err(Err)? {
                let job_id = String::from_utf8_lossy(&value).to_string();
                let job = match JobId::new(job_id.clone()) {
                    Ok(id) => self
                        .committer
                        .read::<proto::Job>(&keys::job(&tenant, &id))
                        .await
                        .map_err(Err)?,
                    Err(_) => None,
                };
                return Ok(Prepared::Existing(proto::SubmitResponse {
                    job_id,
                    created: false,
                    job,
                }));
            }
        }

        self.seq.job += 1;
        let job_id = format!("job-{}", self.seq.job);
        if spec.name.is_empty() {
            spec.name = job_id.clone();
        }
        let mut job = proto::Job {
            job_id: job_id.clone(),
            tenant: tenant.to_string(),
            framework_id: fw_id.to_string(),
            framework_name: fw_name,
            idempotency_key: key.clone(),
            spec: Some(spec.clone()),
            submitted_ms: now_ms(),
            principal: principal.name.clone(),
            ..Default::default()
        };
        job.set_state(JobState::Queued);
        if !key.is_empty() {
            // Later submissions with this key wait for this one's outcome.
            self.idem_waiters
                .insert(keys::idempotency(&tenant, &fw_id, &key), Vec::new());
        }
        Ok(Prepared::New {
            fw: fw_id,
            body: submission_json(&job_id, &spec),
            pending_job: job,
            key,
        })
    }

    pub(super) async fn kill(
        &mut self,
        principal: Principal,
        target: ResolvedTask,
        reply: oneshot::Sender<Result<proto::KillTaskResponse, Status>>,
    ) -> Result<(), CommitError> {
        let (tenant, key) = match target {
            ResolvedTask::QueuedJob { tenant, job } => {
                match self.kill_queued(&principal, &tenant, &job).await? {
                    Ok((key, job)) => {
                        let sender = principal.name.clone();
                        self.write(vec![put(key, &job)], move |core| {
                            core.publish(ClusterEvent::Job(job.clone()));
                            core.tell_cancelled(&job, sender);
                            let _ = reply.send(Ok(proto::KillTaskResponse {
                                task: None,
                                job: Some(job),
                            }));
                        });
                    }
                    Err(status) => {
                        let _ = reply.send(Err(status));
                    }
                }
                return Ok(());
            }
            ResolvedTask::Task {
                tenant,
                framework,
                task,
            } => (tenant, (framework, task)),
        };
        if !principal.may_access(&tenant) {
            let _ = reply.send(Err(Status::permission_denied("not your task")));
            return Ok(());
        }
        let Some(active) = self.tasks.get_mut(&key) else {
            let record: Option<proto::Task> = self
                .committer
                .read(&keys::task(&tenant, &key.0, &key.1))
                .await?;
            let _ = reply.send(Err(Status::failed_precondition(match record {
                Some(r) => format!("task {} already ended: {}", r.task_id, r.state().name()),
                None => format!("no task {}", key.1),
            })));
            return Ok(());
        };
        active.kill_requested = true;
        let record = active.record.clone();
        // After what is pending: a launch still waiting to commit must
        // reach the agent before its kill.
        self.write(Vec::new(), move |core| core.send_kill(&key));
        let _ = reply.send(Ok(proto::KillTaskResponse {
            task: Some(record),
            job: None,
        }));
        Ok(())
    }

    /// Tells a job's framework that the job was killed before it launched
    /// it (a "cancel" message), so it can drop it from its queue.
    fn tell_cancelled(&self, job: &proto::Job, sender: String) {
        let Some(fw) = FrameworkId::new(job.framework_id.clone())
            .ok()
            .and_then(|id| self.frameworks.get(&id))
        else {
            return;
        };
        let body = serde_json::json!({ "job_id": job.job_id }).to_string();
        fw.actor.deliver(Delivery::plain(Event::Message(Message {
            kind: "cancel".into(),
            sender,
            body: body.into_bytes(),
        })));
    }

    /// Marks a job with no running attempt KILLED; its framework's later
    /// launches of it are refused.
    async fn kill_queued(
        &mut self,
        principal: &Principal,
        tenant: &TenantId,
        job_id: &JobId,
    ) -> Result<Result<(String, proto::Job), Status>, CommitError> {
        if !principal.may_access(tenant) {
            return Ok(Err(Status::permission_denied("not your job")));
        }
        let key = keys::job(tenant, job_id);
        let Some(mut job) = self.committer.read::<proto::Job>(&key).await? else {
            return Ok(Err(Status::not_found(format!("no job {job_id}"))));
        };
        if job.state() != JobState::Queued {
            return Ok(Err(Status::failed_precondition(format!(
                "job {job_id} is {}: kill its running attempt instead",
                wasmesos_api::job_state_name(job.state())
            ))));
        }
        job.set_state(JobState::Killed);
        job.finished_ms = now_ms();
        job.message = format!("killed by {} before it ran", principal.name);
        Ok(Ok((key, job)))
    }
}

enum Prepared {
    Existing(proto::SubmitResponse),
    /// A submission with the same idempotency key is in flight.
    InFlight(String),
    New {
        fw: FrameworkId,
        pending_job: proto::Job,
        key: String,
        body: Vec<u8>,
    },
}

/// The body of a "submit" message, as the SDK's `Submission` reads it.
fn submission_json(job_id: &str, spec: &proto::JobSpec) -> Vec<u8> {
    let task = spec.task.clone().unwrap_or_default();
    let r = task.resources.unwrap_or_default();
    let l = task.limits.unwrap_or_default();
    let mut body = serde_json::json!({
        "job_id": job_id,
        "name": spec.name,
        "max_attempts": spec.max_attempts.max(1),
        "task": {
            "module_digest": task.module_digest,
            "args": task.args,
            "env": task.env,
            "resources": {
                "cpus_milli": r.cpus_milli,
                "mem_bytes": r.mem_bytes,
                "disk_bytes": r.disk_bytes,
                "scalars_milli": r.scalars_milli,
            },
            "limits": {
                "fuel": l.fuel,
                "timeout_ms": l.timeout_ms,
                "log_bytes": l.log_bytes,
            },
        },
    });
    // Only when set: a scheduler that predates priorities (and refuses
    // unknown fields) still accepts ordinary jobs.
    if spec.priority != 0 {
        body["priority"] = spec.priority.into();
    }
    body.to_string().into_bytes()
}
