//! Turning what a user typed (`job-7.1`, `jobs/job-7.1`, `job-7`) into a
//! task, within what the caller may see. A task id is unique within its
//! framework, so a bare id is looked up in every framework the caller can
//! see; a job id stands for its latest attempt.

use tonic::Status;
use wasmesos_api::proto;
use wasmesos_api::{FrameworkId, JobId, Principal, TaskId, TenantId};

use crate::commit::Committer;
use crate::core::{CoreHandle, Query, ResolvedTask};
use crate::keys;

/// What a reference resolved to, with the task's record when there is one.
pub struct Resolved {
    pub target: ResolvedTask,
    pub task: Option<proto::Task>,
}

fn store_error(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("store: {e}"))
}

/// The frameworks the caller may see.
pub async fn visible_frameworks(
    core: &CoreHandle,
    principal: &Principal,
) -> Result<Vec<proto::Framework>, Status> {
    let tenant = (!principal.is_operator()).then(|| principal.tenant.clone());
    core.query(|reply| Query::Frameworks(tenant, reply)).await
}

/// Resolves `text` for `principal`.
pub async fn resolve_task(
    core: &CoreHandle,
    committer: &Committer,
    principal: &Principal,
    text: &str,
) -> Result<Resolved, Status> {
    let text = text.trim();
    let (fw_name, id) = match text.split_once('/') {
        Some((fw, id)) => (Some(fw), id),
        None => (None, text),
    };
    let frameworks: Vec<proto::Framework> = visible_frameworks(core, principal)
        .await?
        .into_iter()
        .filter(|f| fw_name.is_none_or(|n| f.name == n))
        .collect();
    if let Some(name) = fw_name
        && frameworks.is_empty()
    {
        return Err(Status::not_found(format!("no framework named '{name}'")));
    }

    if let Ok(task_id) = TaskId::new(id) {
        let mut found = Vec::new();
        for f in &frameworks {
            let (Ok(tenant), Ok(fw)) = (
                TenantId::new(f.tenant.clone()),
                FrameworkId::new(f.framework_id.clone()),
            ) else {
                continue;
            };
            let record: Option<proto::Task> = committer
                .get(&keys::task(&tenant, &fw, &task_id))
                .await
                .map_err(store_error)?;
            if let Some(r) = record {
                found.push((tenant, fw, f.name.clone(), r));
            }
        }
        if found.len() > 1 {
            let names: Vec<String> = found.iter().map(|f| f.2.clone()).collect();
            return Err(Status::invalid_argument(format!(
                "task {id} exists in frameworks {}: name one, as FRAMEWORK/{id}",
                names.join(", ")
            )));
        }
        if let Some((tenant, framework, _, record)) = found.pop() {
            return Ok(Resolved {
                target: ResolvedTask::Task {
                    tenant,
                    framework,
                    task: task_id,
                },
                task: Some(record),
            });
        }
    }

    if let Ok(job_id) = JobId::new(id)
        && let Some((tenant, job)) = find_job(committer, principal, &frameworks, &job_id).await?
    {
        let latest = job.attempts.last().cloned();
        let fw = FrameworkId::new(job.framework_id.clone())
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Some(attempt) = latest.and_then(|a| TaskId::new(a).ok()) {
            let record = committer
                .get(&keys::task(&tenant, &fw, &attempt))
                .await
                .map_err(store_error)?;
            return Ok(Resolved {
                target: ResolvedTask::Task {
                    tenant,
                    framework: fw,
                    task: attempt,
                },
                task: record,
            });
        }
        return Ok(Resolved {
            target: ResolvedTask::QueuedJob {
                tenant,
                job: job_id,
            },
            task: None,
        });
    }
    Err(Status::not_found(format!(
        "no task or job '{text}' (wasmesos tasks lists them)"
    )))
}

/// A job by id, in the caller's tenant or (for operators) any tenant that
/// has a framework.
pub async fn find_job(
    committer: &Committer,
    principal: &Principal,
    frameworks: &[proto::Framework],
    job_id: &JobId,
) -> Result<Option<(TenantId, proto::Job)>, Status> {
    let mut tenants: Vec<TenantId> = vec![principal.tenant.clone()];
    if principal.is_operator() {
        for f in frameworks {
            if let Ok(t) = TenantId::new(f.tenant.clone())
                && !tenants.contains(&t)
            {
                tenants.push(t);
            }
        }
    }
    for tenant in tenants {
        let job: Option<proto::Job> = committer
            .get(&keys::job(&tenant, job_id))
            .await
            .map_err(store_error)?;
        if let Some(job) = job {
            return Ok(Some((tenant, job)));
        }
    }
    Ok(None)
}
