//! The `Master` gRPC service: what clients (the CLI first) call. Handlers
//! resolve the caller's principal, read the store directly for durable
//! records, and go through the core for anything that changes state or
//! needs live state.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wasmesos_api::proto::master_server::Master;
use wasmesos_api::proto::{self, LogStream, put_module_request};
use wasmesos_api::{Digest, JobId, Principal};
use wasmesos_schedhost::SchedHost;

use crate::auth::principal;
use crate::commit::Committer;
use crate::core::{CoreHandle, CoreMsg, Query};
use crate::logs::LogRouter;
use crate::modules::{ModuleError, ModuleStore};
use crate::resolve::{find_job, resolve_task, visible_frameworks};
use crate::watch::{JobWatch, open_logs};

/// Longest a log snapshot (not `--follow`) may go without a word from the
/// agent before the client is told to try again.
const SNAPSHOT_SILENCE: std::time::Duration = std::time::Duration::from_secs(30);

pub struct MasterService {
    pub core: CoreHandle,
    pub committer: Committer,
    pub modules: ModuleStore,
    pub logs: LogRouter,
    pub host: SchedHost,
    pub registry: std::sync::Arc<crate::tenancy::Registry>,
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
        let max = self.registry.limits(&who.tenant).max_module_bytes;
        if max != 0 && header.size > max {
            return Err(Status::resource_exhausted(format!(
                "tenant '{}' may upload modules of at most {}; this one is {}",
                who.tenant,
                wasmesos_api::format_size(max),
                wasmesos_api::format_size(header.size)
            )));
        }
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
        let target = format!(
            "{}/{}",
            if request.framework.is_empty() {
                "jobs"
            } else {
                request.framework.as_str()
            },
            request.spec.as_ref().map_or("", |s| s.name.as_str())
        );
        let response = self
            .core
            .ask_audited(who, "job.submit", target, |principal, reply| {
                CoreMsg::Submit {
                    principal,
                    request,
                    reply,
                }
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
        let target = text.clone();
        let response = self
            .core
            .ask_audited(who, "task.kill", target, |principal, reply| CoreMsg::Kill {
                principal,
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

    async fn drain_agent(
        &self,
        request: Request<proto::DrainAgentRequest>,
    ) -> Result<Response<proto::Agent>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.agent_id.clone();
        let agent = self
            .core
            .ask_audited(who, "agent.drain", target, |principal, reply| {
                CoreMsg::DrainAgent {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(agent))
    }

    async fn undrain_agent(
        &self,
        request: Request<proto::UndrainAgentRequest>,
    ) -> Result<Response<proto::Agent>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.agent_id.clone();
        let agent = self
            .core
            .ask_audited(who, "agent.undrain", target, |principal, reply| {
                CoreMsg::UndrainAgent {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(agent))
    }

    async fn list_roles(
        &self,
        request: Request<proto::ListRolesRequest>,
    ) -> Result<Response<proto::ListRolesResponse>, Status> {
        principal(&request)?;
        let roles = self.core.query(Query::Roles).await?;
        Ok(Response::new(proto::ListRolesResponse { roles }))
    }

    type SnapshotStream = ReceiverStream<Result<proto::SnapshotChunk, Status>>;

    async fn snapshot(
        &self,
        request: Request<proto::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let who = principal(&request)?;
        if !who.is_operator() {
            return Err(Status::permission_denied(
                "only operators may take a snapshot of the whole cluster",
            ));
        }
        let store = self.committer.store().clone();
        let modules = self.modules.clone();
        let mut bytes = Vec::new();
        let summary = crate::snapshot::write(
            &store,
            |digest| {
                let modules = modules.clone();
                async move { modules.read_any(&digest).await }
            },
            &mut bytes,
        )
        .await
        .map_err(|e| Status::unavailable(format!("cannot take a snapshot: {e}")))?;
        tracing::info!(
            revision = summary.revision,
            keys = summary.keys,
            modules = summary.modules,
            bytes = bytes.len(),
            "snapshot taken"
        );
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in bytes.chunks(1 << 20) {
                let chunk = proto::SnapshotChunk {
                    data: chunk.to_vec(),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn set_role(
        &self,
        request: Request<proto::SetRoleRequest>,
    ) -> Result<Response<proto::Role>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.name.clone();
        let role = self
            .core
            .ask_audited(who, "role.set", target, |principal, reply| {
                CoreMsg::SetRole {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(role))
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
        let mut status = self.core.query(Query::Status).await?;
        let store = self.committer.store();
        if store.shared() {
            status.masters = crate::standby::masters(store)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Ok(Response::new(status))
    }

    async fn deploy_framework(
        &self,
        request: Request<proto::DeployFrameworkRequest>,
    ) -> Result<Response<proto::Framework>, Status> {
        let who = principal(&request)?;
        let mut req = request.into_inner();
        crate::frameworks::check_deploy(&mut req)?;
        crate::frameworks::compile(&self.modules, &self.host, &who, &req.module_digest).await?;
        let target = req.name.clone();
        let record = self
            .core
            .ask_audited(who, "framework.deploy", target, |principal, reply| {
                CoreMsg::Deploy {
                    principal,
                    request: req,
                    reply,
                }
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
        let target = req.name.clone();
        let record = self
            .core
            .ask_audited(who, "framework.upgrade", target, |principal, reply| {
                CoreMsg::Upgrade {
                    principal,
                    request: req,
                    component,
                    reply,
                }
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
        let target = name.clone();
        let response = self
            .core
            .ask_audited(who, "framework.remove", target, |principal, reply| {
                CoreMsg::Remove {
                    principal,
                    name,
                    reply,
                }
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
        let target = req.framework.clone();
        let response = self
            .core
            .ask_audited(who, "framework.send", target, |principal, reply| {
                CoreMsg::SendMessage {
                    principal,
                    request: req,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn who_am_i(
        &self,
        request: Request<proto::WhoAmIRequest>,
    ) -> Result<Response<proto::WhoAmIResponse>, Status> {
        let who = principal(&request)?;
        let kind = match who.kind {
            wasmesos_api::PrincipalKind::Operator => proto::TokenKind::Operator,
            wasmesos_api::PrincipalKind::Tenant => proto::TokenKind::Tenant,
            wasmesos_api::PrincipalKind::Agent => proto::TokenKind::Agent,
        };
        Ok(Response::new(proto::WhoAmIResponse {
            roles: self.registry.roles_of(&who).unwrap_or_default(),
            name: who.name,
            tenant: who.tenant.to_string(),
            kind: kind as i32,
        }))
    }

    async fn create_tenant(
        &self,
        request: Request<proto::CreateTenantRequest>,
    ) -> Result<Response<proto::Tenant>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.name.clone();
        let tenant = self
            .core
            .ask_audited(who, "tenant.create", target, |principal, reply| {
                CoreMsg::CreateTenant {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(tenant))
    }

    async fn set_tenant_limits(
        &self,
        request: Request<proto::SetTenantLimitsRequest>,
    ) -> Result<Response<proto::Tenant>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.name.clone();
        let tenant = self
            .core
            .ask_audited(who, "tenant.limits", target, |principal, reply| {
                CoreMsg::SetTenantLimits {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(tenant))
    }

    async fn list_tenants(
        &self,
        request: Request<proto::ListTenantsRequest>,
    ) -> Result<Response<proto::ListTenantsResponse>, Status> {
        let who = principal(&request)?;
        let tenants = self
            .registry
            .tenants()
            .into_iter()
            .filter(|t| who.is_operator() || t.name == who.tenant.as_str())
            .collect();
        Ok(Response::new(proto::ListTenantsResponse { tenants }))
    }

    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let who = principal(&request)?;
        let request = request.into_inner();
        let target = request.tenant.clone();
        let created = self
            .core
            .ask_audited(who, "token.create", target, |principal, reply| {
                CoreMsg::CreateToken {
                    principal,
                    request,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(created))
    }

    async fn list_tokens(
        &self,
        request: Request<proto::ListTokensRequest>,
    ) -> Result<Response<proto::ListTokensResponse>, Status> {
        let who = principal(&request)?;
        let only = request.into_inner().tenant;
        let tokens = self
            .registry
            .tokens()
            .into_iter()
            .filter(|t| who.is_operator() || t.tenant == who.tenant.as_str())
            .filter(|t| only.is_empty() || t.tenant == only)
            .map(crate::core::public_token)
            .collect();
        Ok(Response::new(proto::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::Token>, Status> {
        let who = principal(&request)?;
        let id = request.into_inner().id;
        let target = id.clone();
        let token = self
            .core
            .ask_audited(who, "token.revoke", target, |principal, reply| {
                CoreMsg::RevokeToken {
                    principal,
                    id,
                    reply,
                }
            })
            .await?;
        Ok(Response::new(token))
    }

    async fn list_audit(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<proto::ListAuditResponse>, Status> {
        let who = principal(&request)?;
        if !who.is_operator() {
            return Err(Status::permission_denied(
                "only operators may read the audit log",
            ));
        }
        let entries = crate::audit_log::read(&self.committer, request.into_inner())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(proto::ListAuditResponse { entries }))
    }
}

impl MasterService {
    /// One page of the caller's tasks (see `task_list`: the web UI lists
    /// them with the same function).
    pub async fn list_tasks_for(
        &self,
        who: &Principal,
        req: proto::ListTasksRequest,
    ) -> Result<proto::ListTasksResponse, Status> {
        crate::task_list::list_tasks(&self.committer, who, req, &Default::default()).await
    }
}
