//! Frameworks coming and going: deploy, upgrade (the state and tasks stay,
//! only the scheduler changes), remove (its tasks are killed and its state
//! deleted), messages from `framework send`, and each framework's log — the
//! lines its scheduler wrote and what the host recorded against it.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;
use tonic::Status;
use wasmesos_api::proto::{self, FrameworkLogLine};
use wasmesos_api::{FrameworkId, Principal, Resources, TenantId, now_ms};
use wasmesos_schedhost::{Event, Message, SchedulerComponent};
use wasmesos_store::Op;

use super::{Core, FrameworkEntry, TaskKey};
use crate::commit::{CommitError, put};
use crate::framework::{self, ActorParams, Context, Delivery, Upgrade};
use crate::keys;

/// Lines of log kept per framework.
const LOG_LINES: usize = 500;
/// Largest message body `framework send` may carry.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

type Reply<T> = oneshot::Sender<Result<T, Status>>;

impl Core {
    /// Appends to a framework's log.
    pub(super) fn framework_log(&mut self, fw: &FrameworkId, level: &str, message: String) {
        if let Some(entry) = self.frameworks.get_mut(fw) {
            if entry.log.len() >= LOG_LINES {
                entry.log.pop_front();
            }
            entry.log.push_back(FrameworkLogLine {
                timestamp_ms: now_ms(),
                level: level.to_string(),
                message,
            });
        }
    }

    fn find_framework(&self, tenant: &TenantId, name: &str) -> Option<FrameworkId> {
        self.frameworks
            .iter()
            .find(|(_, f)| &f.tenant == tenant && f.record.name == name)
            .map(|(id, _)| id.clone())
    }

    /// The framework `name` as `principal` may act on it.
    fn framework_for(&self, principal: &Principal, name: &str) -> Result<FrameworkId, Status> {
        self.find_framework(&principal.tenant, name)
            .or_else(|| {
                // Operators may name another tenant's framework when the
                // name is unique.
                let matches: Vec<&FrameworkId> = self
                    .frameworks
                    .iter()
                    .filter(|(_, f)| principal.is_operator() && f.record.name == name)
                    .map(|(id, _)| id)
                    .collect();
                (matches.len() == 1).then(|| matches[0].clone())
            })
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no framework named '{name}' (wasmesos frameworks lists them)"
                ))
            })
    }

    /// Starts a framework's actor and registers it.
    pub(super) fn start_framework(&mut self, record: proto::Framework) {
        let (Ok(id), Ok(tenant)) = (
            FrameworkId::new(record.framework_id.clone()),
            TenantId::new(record.tenant.clone()),
        ) else {
            tracing::error!(framework = %record.name, "stored framework has a malformed id; skipped");
            return;
        };
        let actor = framework::spawn(ActorParams {
            id: id.clone(),
            tenant: tenant.clone(),
            record: record.clone(),
            host: self.host.clone(),
            modules: self.modules.clone(),
            committer: self.committer.clone(),
            core: self.me.clone(),
            limits: self.callback_limits(&tenant),
        });
        self.frameworks.insert(
            id,
            FrameworkEntry {
                record,
                tenant,
                actor,
                allocated: Resources::empty(),
                suppressed: false,
                healthy: false,
                status: "starting".into(),
                filters: Vec::new(),
                offers: HashMap::new(),
                timers: HashMap::new(),
                tasks_running: 0,
                callbacks: 0,
                failures: 0,
                log: VecDeque::new(),
                latencies: VecDeque::new(),
                fuel_total: 0,
                callback_micros_total: 0,
            },
        );
    }

    pub(super) fn deploy(
        &mut self,
        principal: Principal,
        mut request: proto::DeployFrameworkRequest,
        reply: Reply<proto::Framework>,
    ) {
        if request.role.is_empty() {
            request.role = self.default_role(&principal);
        }
        if let Err(status) = self.check_role(&principal, &request.role) {
            let _ = reply.send(Err(status));
            return;
        }
        if self
            .find_framework(&principal.tenant, &request.name)
            .is_some()
        {
            let _ = reply.send(Err(Status::already_exists(format!(
                "framework '{}' already exists (wasmesos framework upgrade {} FILE replaces its scheduler)",
                request.name, request.name
            ))));
            return;
        }
        self.seq.framework += 1;
        let record = proto::Framework {
            framework_id: format!("fw-{}", self.seq.framework),
            tenant: principal.tenant.to_string(),
            name: request.name,
            role: request.role,
            weight: if request.weight > 0.0 {
                request.weight
            } else {
                1.0
            },
            module_digest: request.module_digest,
            config: request.config,
            registered_ms: now_ms(),
            builtin: false,
            ..Default::default()
        };
        let ops = vec![
            super::recover::seq_op("framework", self.seq.framework),
            put(keys::framework(&principal.tenant, &record.name), &record),
        ];
        tracing::info!(framework = %record.name, role = %record.role, "framework deployed");
        self.start_framework(record.clone());
        self.write(ops, move |_| {
            let _ = reply.send(Ok(record));
        });
    }

    pub(super) fn upgrade(
        &mut self,
        principal: Principal,
        request: proto::UpgradeFrameworkRequest,
        component: SchedulerComponent,
        reply: Reply<proto::Framework>,
    ) {
        let id = match self.framework_for(&principal, &request.name) {
            Ok(id) => id,
            Err(status) => {
                let _ = reply.send(Err(status));
                return;
            }
        };
        let entry = &self.frameworks[&id];
        let mut record = entry.record.clone();
        record.module_digest = request.module_digest;
        if request.replace_config {
            record.config = request.config;
        }
        let (done, verdict) = oneshot::channel();
        entry.actor.upgrade(Upgrade {
            record: record.clone(),
            component,
            done,
        });
        let me = self.me.clone();
        // The actor answers once the new scheduler started (or failed to);
        // the record changes only if it did.
        tokio::spawn(async move {
            let outcome = verdict
                .await
                .unwrap_or_else(|_| Err("the framework stopped".into()));
            let _ = me.send(super::CoreMsg::Upgraded {
                framework: id,
                record,
                outcome,
                reply,
            });
        });
    }

    pub(super) fn upgraded(
        &mut self,
        id: FrameworkId,
        record: proto::Framework,
        outcome: Result<(), String>,
        reply: Reply<proto::Framework>,
    ) {
        if let Err(reason) = outcome {
            let _ = reply.send(Err(Status::failed_precondition(format!(
                "the new scheduler did not start, the old one keeps running: {reason}"
            ))));
            return;
        }
        let Some(entry) = self.frameworks.get_mut(&id) else {
            let _ = reply.send(Err(Status::not_found(
                "the framework was removed meanwhile",
            )));
            return;
        };
        entry.record.module_digest = record.module_digest.clone();
        entry.record.config = record.config.clone();
        let key = keys::framework(&entry.tenant, &record.name);
        tracing::info!(framework = %record.name, digest = %record.module_digest, "framework upgraded");
        self.write(vec![put(key, &record)], move |_| {
            let _ = reply.send(Ok(record));
        });
    }

    pub(super) async fn remove(
        &mut self,
        principal: Principal,
        name: String,
        reply: Reply<proto::RemoveFrameworkResponse>,
    ) -> Result<(), CommitError> {
        let id = match self.framework_for(&principal, &name) {
            Ok(id) => id,
            Err(status) => {
                let _ = reply.send(Err(status));
                return Ok(());
            }
        };
        if self.frameworks[&id].record.builtin {
            let _ = reply.send(Err(Status::failed_precondition(format!(
                "'{name}' is built in: the master needs it for `wasmesos submit`"
            ))));
            return Ok(());
        }
        let offers: Vec<_> = self.frameworks[&id].offers.keys().cloned().collect();
        for offer in offers {
            self.remove_offer(&id, &offer);
        }
        let Some(entry) = self.frameworks.remove(&id) else {
            return Ok(());
        };
        entry.actor.stop();
        let tasks: Vec<TaskKey> = self
            .tasks
            .keys()
            .filter(|(f, _)| f == &id)
            .cloned()
            .collect();
        for key in &tasks {
            if let Some(t) = self.tasks.get_mut(key) {
                t.kill_requested = true;
            }
        }
        let prefix = keys::fw_kv_prefix(&entry.tenant, &id);
        let mut ops: Vec<Op> = self
            .committer
            .range_all(&prefix)
            .await?
            .into_keys()
            .map(|key| Op::Delete { key })
            .collect();
        ops.push(Op::Delete {
            key: keys::framework(&entry.tenant, &entry.record.name),
        });
        tracing::info!(framework = %name, tasks = tasks.len(), "framework removed");
        let record = entry.record;
        let killed = tasks.len() as u32;
        self.write(ops, move |core| {
            for key in &tasks {
                core.send_kill(key);
            }
            let _ = reply.send(Ok(proto::RemoveFrameworkResponse {
                framework: Some(record),
                tasks_killed: killed,
            }));
        });
        self.allocation_pending = true;
        Ok(())
    }

    pub(super) fn send_message(
        &mut self,
        principal: Principal,
        request: proto::SendMessageRequest,
        reply: Reply<proto::SendMessageResponse>,
    ) {
        let id = match self.framework_for(&principal, &request.framework) {
            Ok(id) => id,
            Err(status) => {
                let _ = reply.send(Err(status));
                return;
            }
        };
        self.frameworks[&id].actor.deliver(Delivery::with(
            Event::Message(Message {
                kind: "user".into(),
                sender: principal.name,
                body: request.body,
            }),
            Context::Message(reply),
        ));
    }

    /// A framework's record, live figures and log.
    pub(super) fn framework_detail(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<proto::FrameworkDetail, Status> {
        let id = self.framework_for(principal, name)?;
        let view = self
            .framework_views(None)
            .into_iter()
            .find(|f| f.framework_id == id.as_str());
        Ok(proto::FrameworkDetail {
            framework: view,
            log: self.frameworks[&id].log.iter().cloned().collect(),
        })
    }
}
