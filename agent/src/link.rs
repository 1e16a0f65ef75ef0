//! The agent's one stream to its master. The agent dials; the master never
//! dials agents. A session registers (with the tasks still running, so the
//! master can reconcile), heartbeats, hands launches and kills to the task
//! manager, sends status updates until acknowledged, and serves log
//! requests. When the stream breaks the agent dials again, trying each known
//! master in turn with a growing delay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use wasmesos_api::proto::agent_link_client::AgentLinkClient;
use wasmesos_api::proto::{self, AgentMessage, MasterMessage, agent_message, master_message};
use wasmesos_runtime::CancellationToken;

use crate::config::AgentConfig;
use crate::identity::{Identity, IdentityFile};
use crate::tasks::TaskManager;

/// Unacknowledged updates are sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(5);

/// What the agent knows about its link, for its health endpoint.
#[derive(Default, Clone, Debug)]
pub struct LinkStatus {
    pub master: Option<String>,
    pub connected: bool,
    /// Since when no master has been connected (`None` while one is).
    pub disconnected_since: Option<std::time::Instant>,
    pub agent_id: String,
    pub last_error: Option<String>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot reach master at {master}: {reason} (is it running? try `wasmesos up`)")]
    Unreachable { master: String, reason: String },
    #[error("master at {master} refused this agent: {reason}")]
    Refused { master: String, reason: String },
    #[error("stream to {master} broke: {reason}")]
    Broken { master: String, reason: String },
    #[error("master at {master} is a standby; the leader is at {leader}")]
    Standby { master: String, leader: String },
    #[error("cannot save the agent's identity: {0}")]
    Identity(std::io::Error),
}

/// Keeps a session with some master until `shutdown`.
pub async fn run(
    cfg: Arc<AgentConfig>,
    tasks: TaskManager,
    identity: IdentityFile,
    status: Arc<Mutex<LinkStatus>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0usize;
    loop {
        let master = cfg.masters[attempt % cfg.masters.len()].clone();
        let session = Session {
            cfg: &cfg,
            tasks: &tasks,
            identity: &identity,
            status: &status,
            master: master.clone(),
        };
        let result = tokio::select! {
            r = session.run() => r,
            _ = shutdown.changed() => return,
        };
        set_status(&status, |s| {
            s.connected = false;
            s.disconnected_since
                .get_or_insert_with(std::time::Instant::now);
        });
        tasks.outbox().detach();
        tasks.modules().set_client(None);
        match result {
            Ok(()) => {
                tracing::warn!(%master, "master closed the stream; reconnecting");
                delay = Duration::from_millis(100);
            }
            Err(SessionError::Standby { master, leader }) => {
                // Not a failure: go where the standby points (if it is one
                // of ours, else the next), soon. During a failover the
                // leader it names may be gone; the rotation goes on.
                tracing::info!(%master, %leader, "a standby; trying the leader");
                attempt = match cfg.masters.iter().position(|m| *m == leader) {
                    Some(i) if leader != master => i,
                    _ => attempt + 1,
                };
                delay = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!("{e}; retrying in {delay:?}");
                set_status(&status, |s| s.last_error = Some(e.to_string()));
                attempt += 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(cfg.max_reconnect_delay);
    }
}

/// Kills every task once no master has been reachable for
/// `orphan_timeout` (see [`AgentConfig::orphan_timeout`]); checks every
/// second until `shutdown`. Counting starts when the agent starts, so an
/// agent that never reaches a master does the same.
pub async fn watch_for_orphaning(
    orphan_timeout: Duration,
    tasks: TaskManager,
    status: Arc<Mutex<LinkStatus>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let cut_off = {
            let s = status.lock().unwrap_or_else(|p| p.into_inner());
            match (s.connected, s.disconnected_since) {
                (true, _) => None,
                (false, Some(since)) => Some(since.elapsed()),
                (false, None) => Some(started.elapsed()),
            }
        };
        if cut_off.is_some_and(|d| d >= orphan_timeout) {
            let killed = tasks.kill_all();
            if killed > 0 {
                tracing::warn!(
                    tasks = killed,
                    "no master reachable for {orphan_timeout:?}: killed this agent's tasks, \
                     which the master will have declared lost"
                );
            }
        }
    }
}

fn set_status(status: &Mutex<LinkStatus>, f: impl FnOnce(&mut LinkStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

struct Session<'a> {
    cfg: &'a AgentConfig,
    tasks: &'a TaskManager,
    identity: &'a IdentityFile,
    status: &'a Mutex<LinkStatus>,
    master: String,
}

impl Session<'_> {
    fn unreachable(&self, reason: impl ToString) -> SessionError {
        SessionError::Unreachable {
            master: self.master.clone(),
            reason: reason.to_string(),
        }
    }

    fn broken(&self, reason: impl ToString) -> SessionError {
        SessionError::Broken {
            master: self.master.clone(),
            reason: reason.to_string(),
        }
    }

    /// What a registration reports: the tasks running, and those whose
    /// last updates the master has not acknowledged (in their latest
    /// state), so that it neither takes them for lost nor kills them.
    fn reported_tasks(&self) -> Vec<proto::RunningTask> {
        let mut tasks = self.tasks.running();
        let running: std::collections::HashSet<(String, String)> = tasks
            .iter()
            .map(|t| (t.framework_id.clone(), t.task_id.clone()))
            .collect();
        tasks.extend(
            self.tasks
                .outbox()
                .unacknowledged_tasks()
                .into_iter()
                .filter(|t| !running.contains(&(t.framework_id.clone(), t.task_id.clone()))),
        );
        tasks
    }

    async fn run(self) -> Result<(), SessionError> {
        let channel = wasmesos_api::endpoint(
            &self.master,
            self.cfg.ca_pem.as_deref(),
            self.cfg.allow_plaintext,
        )
        .map_err(|e| self.unreachable(e))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| self.unreachable(source_chain(&e)))?;
        let mut client = AgentLinkClient::new(self.cfg.token.clone().wrap(channel))
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        let mut ident = self.identity.load().map_err(SessionError::Identity)?;

        let (tx, rx) = mpsc::unbounded_channel::<AgentMessage>();
        let register = proto::RegisterAgent {
            agent_id: ident.agent_id.clone(),
            hostname: self.cfg.hostname.clone().unwrap_or_else(hostname),
            address: format!("http://{}", self.cfg.listen),
            resources: Some((&self.cfg.resources).into()),
            attributes: self.cfg.attributes.clone().into_iter().collect(),
            reserved: self
                .cfg
                .reserved
                .iter()
                .map(|(role, r)| (role.clone(), r.into()))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            tasks: self.reported_tasks(),
            epoch: ident.epoch,
        };
        let _ = tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Register(register)),
        });
        let mut inbound = client
            .attach(UnboundedReceiverStream::new(rx))
            .await
            .map_err(|s| match standby_leader(&s) {
                Some(leader) => SessionError::Standby {
                    master: self.master.clone(),
                    leader,
                },
                None => SessionError::Refused {
                    master: self.master.clone(),
                    reason: s.message().to_string(),
                },
            })?
            .into_inner();

        let first = inbound
            .message()
            .await
            .map_err(|s| self.broken(s.message()))?;
        let registered = match first.and_then(|m| m.msg.map(|msg| (m.epoch, msg))) {
            Some((epoch, master_message::Msg::Registered(r))) => {
                ident.epoch = ident.epoch.max(epoch);
                r
            }
            Some((_, master_message::Msg::Refused(r))) => {
                return Err(SessionError::Refused {
                    master: self.master.clone(),
                    reason: r.reason,
                });
            }
            _ => return Err(self.broken("expected a registration answer")),
        };
        if ident.agent_id != registered.agent_id {
            ident.agent_id = registered.agent_id.clone();
        }
        self.identity.save(&ident).map_err(SessionError::Identity)?;
        tracing::info!(agent = %ident.agent_id, master = %self.master, "registered with master");
        set_status(self.status, |s| {
            s.master = Some(self.master.clone());
            s.connected = true;
            s.disconnected_since = None;
            s.agent_id = ident.agent_id.clone();
            s.last_error = None;
        });
        self.tasks.modules().set_client(Some(client.clone()));
        self.tasks.outbox().attach(tx.clone());

        let interval = Duration::from_millis(registered.heartbeat_interval_ms.max(100));
        let beat_tx = tx.clone();
        let outbox_tasks = self.tasks.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            let mut seq = 0;
            loop {
                tick.tick().await;
                seq += 1;
                let beat = AgentMessage {
                    msg: Some(agent_message::Msg::Heartbeat(proto::Heartbeat { seq })),
                };
                if beat_tx.send(beat).is_err() {
                    return;
                }
                outbox_tasks.outbox().resend_older_than(RESEND_AFTER);
            }
        });
        let mut logs: HashMap<u64, CancellationToken> = HashMap::new();
        let result = self.serve(&mut inbound, &tx, &mut ident, &mut logs).await;
        heartbeat.abort();
        for token in logs.values() {
            token.cancel();
        }
        result
    }

    /// Carries out the master's messages until the stream ends.
    async fn serve(
        &self,
        inbound: &mut tonic::Streaming<MasterMessage>,
        tx: &mpsc::UnboundedSender<AgentMessage>,
        ident: &mut Identity,
        logs: &mut HashMap<u64, CancellationToken>,
    ) -> Result<(), SessionError> {
        loop {
            let Some(msg) = inbound
                .message()
                .await
                .map_err(|s| self.broken(s.message()))?
            else {
                return Ok(());
            };
            if msg.epoch < ident.epoch {
                tracing::warn!(
                    "ignoring a message from master epoch {} (this agent has seen {})",
                    msg.epoch,
                    ident.epoch
                );
                continue;
            }
            if msg.epoch > ident.epoch {
                ident.epoch = msg.epoch;
                self.identity.save(ident).map_err(SessionError::Identity)?;
            }
            let Some(msg) = msg.msg else { continue };
            match msg {
                master_message::Msg::Launch(l) => {
                    for t in l.tasks {
                        self.tasks.launch(t);
                    }
                }
                master_message::Msg::Kill(k) => self.tasks.kill(&k.framework_id, &k.task_id),
                master_message::Msg::Ack(a) => self.tasks.outbox().ack(&a.update_id),
                master_message::Msg::LogRequest(req) => {
                    logs.retain(|_, t| !t.is_cancelled());
                    let token = CancellationToken::new();
                    logs.insert(req.request_id, token.clone());
                    tokio::spawn(crate::logs::serve(
                        self.tasks.clone(),
                        req,
                        tx.clone(),
                        token,
                    ));
                }
                master_message::Msg::LogCancel(c) => {
                    if let Some(token) = logs.remove(&c.request_id) {
                        token.cancel();
                    }
                }
                master_message::Msg::Refused(r) => {
                    return Err(SessionError::Refused {
                        master: self.master.clone(),
                        reason: r.reason,
                    });
                }
                master_message::Msg::Registered(_) => {}
            }
        }
    }
}

/// The leader a standby master named in its refusal, if this is one.
fn standby_leader(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get("wasmesos-leader")
        .and_then(|v| v.to_str().ok())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// The machine's hostname, or "localhost".
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// An error with its causes ("transport error: connection refused").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
