//! The `Master` gRPC service: what clients (the CLI first) call. Handlers
//! resolve the caller's principal, read the store directly for durable
//! records, and go through the core for anything that changes state or
//! needs live state.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wasmesos_api::proto::master_server::Master;
use wasmesos_api::proto::{self, JobState, LogStream, put_module_request};
use wasmesos_api::{Digest, JobId, Principal};
use wasmesos_schedhost::SchedHost;

use crate::auth::principal;
use crate::commit::Committer;
use crate::core::{CoreHandle, CoreMsg, Query};
use crate::keys;
use crate::logs::LogRouter;
use crate::modules::{ModuleError, ModuleStore};
use crate::resolve::{find_job, resolve_task, visible_frameworks};
use crate::watch::{JobWatch, open_logs};

/// Tasks returned per page unless the client asks for fewer.
const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = 5000;
/// Longest a log snapshot (not `--follow`) may go without a word from the
/// agent before the client is told to try again.
const SNAPSHOT_SILENCE: std::time::Duration = std::time::Duration::from_secs(30);

pub struct MasterService {
    pub core: CoreHandle,
    pub committer: Committer,
    pub modules: ModuleStore,
    pub logs: LogRouter,
    pub host: SchedHost,
}

fn module_status(e: ModuleError) -> Status {
    match e {
        ModuleError::NotWasm { .. }
        | ModuleError::Invalid { .. }
        | ModuleError::Truncated { .. }
        | ModuleError::DigestMismatch { .. }
        | ModuleError::BadDigest(_) => Status::invalid_argument(e.to_string()),
        ModuleError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        ModuleError::NotFound { .. } => Status::not_found(e.to_string()),
        ModuleError::Io(_) | ModuleError::Commit(_) => Status::internal(e.to_string()),
    }
}

fn store_error(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("store: {e}"))
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn put_module(
        &self,
        request: Request<Streaming<proto::PutModuleRequest>>,
    ) -> Result<Response<proto::Module>, Status> {
        let who = principal(&request)?;
        let mut parts = request.into_inner();
        let header = match parts.message().await? {
            Some(proto::PutModuleRequest {
                part: Some(put_module_request::Part::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "an upload starts with a header (size, digest, name)",
                ));
            }
        };
        let mut upload = self
            .modules
            .begin(header.size, &header.name)
            .await
            .map_err(module_status)?;
        while let Some(part) = parts.message().await? {
            match part.part {
                Some(put_module_request::Part::Chunk(bytes)) => {
                    upload.write(&bytes).await.map_err(module_status)?
                }
                _ => return Err(Status::invalid_argument("only one header per upload")),
            }
        }
        let module = upload
            .finish(&who.tenant, Some(&header.digest))
            .await
            .map_err(module_status)?;
        Ok(Response::new(module))
    }

    async fn stat_module(
        &self,
        request: Request<proto::StatModuleRequest>,
    ) -> Result<Response<proto::StatModuleResponse>, Status> {
        let who = principal(&request)?;
        let digest = Digest::parse(&request.get_ref().digest)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let module = self
            .modules
            .stat(&who.tenant, &digest)
            .await
            .map_err(module_status)?;
        Ok(Response::new(proto::StatModuleResponse {
            exists: module.is_some(),
            module,
        }))
    }

    async fn submit(
        &self,
        request: Request<proto::SubmitRequest>,
    ) -> Result<Response<proto::SubmitResponse>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let response = self
            .core
            .ask(|reply| CoreMsg::Submit {
                principal: who,
                request,
                reply,
            })
            .await?;
        Ok(Response::new(response))
    }

    type WatchJobStream = ReceiverStream<Result<proto::JobEvent, Status>>;

    async fn watch_job(
        &self,
        request: Request<proto::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        let job_id = JobId::new(req.job_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Subscribe before reading, so no change can slip between the two.
        let events = self.core.subscribe();
        let frameworks = visible_frameworks(&self.core, &who).await?;
        let (tenant, job) = find_job(&self.committer, &who, &frameworks, &job_id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no job {job_id}")))?;
        let (out, rx) = mpsc::channel(256);
        let watch = JobWatch {
            core: self.core.clone(),
            committer: self.committer.clone(),
            logs: self.logs.clone(),
            tenant,
            job,
            with_logs: req.logs,
            events,
            out,
        };
        tokio::spawn(watch.run());
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_tasks(
        &self,
        request: Request<proto::ListTasksRequest>,
    ) -> Result<Response<proto::ListTasksResponse>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        Ok(Response::new(self.list_tasks_for(&who, req).await?))
    }

    async fn get_task(
        &self,
        request: Request<proto::GetTaskRequest>,
    ) -> Result<Response<proto::Task>, Status> {
        let who = principal(&request)?;
        let text = request.into_inner().task.unwrap_or_default().task;
        let resolved = resolve_task(&self.core, &self.committer, &who, &text).await?;
        resolved.task.map(Response::new).ok_or_else(|| {
            Status::not_found(format!("job {text} has no attempt yet: it is queued"))
        })
    }

    async fn kill_task(
        &self,
        request: Request<proto::KillTaskRequest>,
    ) -> Result<Response<proto::KillTaskResponse>, Status> {
        let who = principal(&request)?;
        let text = request.into_inner().task.unwrap_or_default().task;
        let resolved = resolve_task(&self.core, &self.committer, &who, &text).await?;
        let response = self
            .core
            .ask(|reply| CoreMsg::Kill {
                principal: who,
                target: resolved.target,
                reply,
            })
            .await?;
        Ok(Response::new(response))
    }

    type TaskLogsStream = ReceiverStream<Result<proto::LogChunk, Status>>;

    async fn task_logs(
        &self,
        request: Request<proto::TaskLogsRequest>,
    ) -> Result<Response<Self::TaskLogsStream>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        let stream = req.stream();
        let text = req.task.unwrap_or_default().task;
        let resolved = resolve_task(&self.core, &self.committer, &who, &text).await?;
        let task = resolved.task.ok_or_else(|| {
            Status::failed_precondition(format!("job {text} has not started yet: no logs"))
        })?;
        let mut sub = open_logs(
            &self.core,
            &self.logs,
            &task,
            stream,
            req.follow,
            req.tail_bytes,
        )
        .await?;
        let expected = if stream == LogStream::Unspecified {
            2
        } else {
            1
        };
        let (tx, rx) = mpsc::channel(64);
        let follow = req.follow;
        let agent = task.agent_id.clone();
        tokio::spawn(async move {
            let mut ended = 0;
            loop {
                // A snapshot comes at once from a live agent; one that says
                // nothing for this long is not going to.
                let next = if follow {
                    sub.rx.recv().await
                } else {
                    match tokio::time::timeout(SNAPSHOT_SILENCE, sub.rx.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let msg = format!(
                                "agent {agent} did not send the log within {}s; try again",
                                SNAPSHOT_SILENCE.as_secs()
                            );
                            let _ = tx.send(Err(Status::unavailable(msg))).await;
                            return;
                        }
                    }
                };
                let Some(d) = next else { return };
                if !d.error.is_empty() {
                    let _ = tx.send(Err(Status::unavailable(d.error))).await;
                    return;
                }
                if !d.data.is_empty()
                    && tx
                        .send(Ok(proto::LogChunk {
                            stream: d.stream,
                            data: d.data,
                        }))
                        .await
                        .is_err()
                {
                    return;
                }
                if d.eof {
                    ended += 1;
                    if ended >= expected {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_agents(
        &self,
        request: Request<proto::ListAgentsRequest>,
    ) -> Result<Response<proto::ListAgentsResponse>, Status> {
        principal(&request)?;
        let agents = self.core.query(Query::Agents).await?;
        Ok(Response::new(proto::ListAgentsResponse { agents }))
    }

    async fn list_frameworks(
        &self,
        request: Request<proto::ListFrameworksRequest>,
    ) -> Result<Response<proto::ListFrameworksResponse>, Status> {
        let who = principal(&request)?;
        let frameworks = visible_frameworks(&self.core, &who).await?;
        Ok(Response::new(proto::ListFrameworksResponse { frameworks }))
    }

    async fn get_status(
        &self,
        request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::ClusterStatus>, Status> {
        principal(&request)?;
        Ok(Response::new(self.core.query(Query::Status).await?))
    }

    async fn deploy_framework(
        &self,
        request: Request<proto::DeployFrameworkRequest>,
    ) -> Result<Response<proto::Framework>, Status> {
        let who = principal(&request)?;
        let mut req = request.into_inner();
        crate::frameworks::check_deploy(&mut req)?;
        crate::frameworks::compile(&self.modules, &self.host, &who, &req.module_digest).await?;
        let record = self
            .core
            .ask(|reply| CoreMsg::Deploy {
                principal: who,
                request: req,
                reply,
            })
            .await?;
        Ok(Response::new(record))
    }

    async fn upgrade_framework(
        &self,
        request: Request<proto::UpgradeFrameworkRequest>,
    ) -> Result<Response<proto::Framework>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        let component =
            crate::frameworks::compile(&self.modules, &self.host, &who, &req.module_digest).await?;
        let record = self
            .core
            .ask(|reply| CoreMsg::Upgrade {
                principal: who,
                request: req,
                component,
                reply,
            })
            .await?;
        Ok(Response::new(record))
    }

    async fn remove_framework(
        &self,
        request: Request<proto::RemoveFrameworkRequest>,
    ) -> Result<Response<proto::RemoveFrameworkResponse>, Status> {
        let who = principal(&request)?;
        let name = request.into_inner().name;
        let response = self
            .core
            .ask(|reply| CoreMsg::Remove {
                principal: who,
                name,
                reply,
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_framework(
        &self,
        request: Request<proto::GetFrameworkRequest>,
    ) -> Result<Response<proto::FrameworkDetail>, Status> {
        let who = principal(&request)?;
        let name = request.into_inner().name;
        let detail = self
            .core
            .query(|reply| Query::Framework(who, name, reply))
            .await??;
        Ok(Response::new(detail))
    }

    async fn send_message(
        &self,
        request: Request<proto::SendMessageRequest>,
    ) -> Result<Response<proto::SendMessageResponse>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        crate::frameworks::check_message(&req)?;
        let response = self
            .core
            .ask(|reply| CoreMsg::SendMessage {
                principal: who,
                request: req,
                reply,
            })
            .await?;
        Ok(Response::new(response))
    }
}

impl MasterService {
    /// One page of the caller's tasks, filtered, in key order
    /// (tenant, framework, task id); plus queued jobs on the first page.
    pub async fn list_tasks_for(
        &self,
        who: &Principal,
        req: proto::ListTasksRequest,
    ) -> Result<proto::ListTasksResponse, Status> {
        let prefix = if who.operator {
            keys::TASKS.to_string()
        } else {
            keys::tasks_of(&who.tenant)
        };
        if !req.page_token.is_empty() && !req.page_token.starts_with(&prefix) {
            return Err(Status::invalid_argument("page token from another listing"));
        }
        let limit = match req.limit as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let state = req.state();
        let mut tasks = Vec::new();
        let mut after = (!req.page_token.is_empty()).then(|| req.page_token.clone());
        let mut next_page_token = String::new();
        'pages: loop {
            let page = self
                .committer
                .store()
                .range(&prefix, after.as_deref(), limit)
                .await
                .map_err(store_error)?;
            for kv in &page.kvs {
                let task: proto::Task =
                    crate::commit::decode(&kv.key, &kv.value).map_err(store_error)?;
                let keep = (state == proto::TaskState::Unspecified || task.state() == state)
                    && (req.framework.is_empty()
                        || task.framework_name == req.framework
                        || task.framework_id == req.framework)
                    && (req.agent_id.is_empty() || task.agent_id == req.agent_id);
                if keep {
                    tasks.push(task);
                    if tasks.len() == limit {
                        next_page_token = kv.key.clone();
                        break 'pages;
                    }
                }
            }
            if !page.more {
                break;
            }
            after = page.kvs.last().map(|kv| kv.key.clone());
        }
        let mut queued = Vec::new();
        if req.include_queued && req.page_token.is_empty() {
            let prefix = if who.operator {
                keys::JOBS.to_string()
            } else {
                keys::jobs_of(&who.tenant)
            };
            for job in self
                .committer
                .list::<proto::Job>(&prefix)
                .await
                .map_err(store_error)?
            {
                let matches = req.framework.is_empty()
                    || job.framework_name == req.framework
                    || job.framework_id == req.framework;
                if job.state() == JobState::Queued && matches {
                    queued.push(job);
                }
            }
        }
        Ok(proto::ListTasksResponse {
            tasks,
            queued,
            next_page_token,
        })
    }
}
