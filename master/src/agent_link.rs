//! The `AgentLink` gRPC service: the master's end of each agent's stream,
//! and module downloads for agents.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use wasmesos_api::proto::agent_link_server::AgentLink;
use wasmesos_api::proto::{
    self, AgentMessage, MasterMessage, ModuleChunk, agent_message, master_message,
};
use wasmesos_api::{AgentId, Digest, TenantId};

use crate::auth::principal;
use crate::core::{CoreHandle, CoreMsg};
use crate::logs::LogRouter;
use crate::modules::ModuleStore;

/// How long a new stream may take to send its registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Module bytes per chunk sent to agents.
const CHUNK: usize = 1 << 20;

pub struct AgentLinkService {
    core: CoreHandle,
    logs: LogRouter,
    modules: ModuleStore,
    next_conn: Arc<AtomicU64>,
}

impl AgentLinkService {
    pub fn new(core: CoreHandle, logs: LogRouter, modules: ModuleStore) -> Self {
        Self {
            core,
            logs,
            modules,
            next_conn: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[tonic::async_trait]
impl AgentLink for AgentLinkService {
    type AttachStream = UnboundedReceiverStream<Result<MasterMessage, Status>>;

    async fn attach(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let who = principal(&request)?;
        if !who.is_agent() {
            return Err(Status::permission_denied("only agents may attach"));
        }
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(REGISTER_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no registration within 10s"))??;
        let Some(AgentMessage {
            msg: Some(agent_message::Msg::Register(register)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message on an agent stream must be a registration",
            ));
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let agent = self
            .core
            .ask(|reply| CoreMsg::AgentAttach {
                register,
                conn,
                tx: tx.clone(),
                reply,
            })
            .await?;
        let core = self.core.clone();
        let logs = self.logs.clone();
        tokio::spawn(async move {
            read_agent(agent.clone(), conn, inbound, &core, &logs, &tx).await;
            logs.agent_gone(&agent);
            let _ = core.send(CoreMsg::AgentDetached { agent, conn });
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    type FetchModuleStream = ReceiverStream<Result<ModuleChunk, Status>>;

    async fn fetch_module(
        &self,
        request: Request<proto::FetchModuleRequest>,
    ) -> Result<Response<Self::FetchModuleStream>, Status> {
        let who = principal(&request)?;
        let req = request.into_inner();
        let tenant =
            TenantId::new(req.tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Agents run every tenant's tasks, so fetch every tenant's modules;
        // nobody else reaches this service (see auth.rs).
        if !who.is_agent() {
            return Err(Status::permission_denied(
                "only agents fetch modules by digest",
            ));
        }
        let digest =
            Digest::parse(&req.digest).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let bytes = self
            .modules
            .read(&tenant, &digest)
            .await
            .map_err(|e| Status::not_found(e.to_string()))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in bytes.chunks(CHUNK) {
                if tx
                    .send(Ok(ModuleChunk {
                        data: chunk.to_vec(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Passes an agent's messages on until its stream ends.
async fn read_agent(
    agent: AgentId,
    conn: u64,
    mut inbound: Streaming<AgentMessage>,
    core: &CoreHandle,
    logs: &LogRouter,
    tx: &mpsc::UnboundedSender<Result<MasterMessage, Status>>,
) {
    loop {
        let msg = match inbound.message().await {
            Ok(Some(AgentMessage { msg: Some(msg) })) => msg,
            Ok(Some(_)) => continue,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(agent = %agent, "agent stream ended: {e}");
                return;
            }
        };
        let sent = match msg {
            agent_message::Msg::Heartbeat(_) => core.send(CoreMsg::AgentHeartbeat {
                agent: agent.clone(),
                conn,
            }),
            agent_message::Msg::Status(update) => core.send(CoreMsg::AgentStatus {
                agent: agent.clone(),
                conn,
                update,
            }),
            agent_message::Msg::Log(data) => {
                let id = data.request_id;
                if !logs.deliver(data).await {
                    let _ = tx.send(Ok(MasterMessage {
                        epoch: core.epoch,
                        msg: Some(master_message::Msg::LogCancel(proto::LogCancel {
                            request_id: id,
                        })),
                    }));
                }
                Ok(())
            }
            agent_message::Msg::Register(_) => {
                tracing::warn!(agent = %agent, "ignoring a second registration on one stream");
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
