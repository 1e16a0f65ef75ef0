//! Start-up: rebuild the live state from the store. Agents come back
//! disconnected (they re-attach, or time out and lose their tasks), still
//! draining if they were; roles keep their weights and quotas; every
//! framework's scheduler is started again (and told `registered` with its
//! durable state), and the tasks that were active hold their resources
//! again. The built-in jobs framework is deployed, or upgraded in place when
//! the bundled scheduler changed.

use std::collections::HashSet;
use std::time::Instant;

use wasmesos_api::proto::{self, AgentState};
use wasmesos_api::{AgentId, FrameworkId, Resources, TaskId, TenantId, now_ms};
use wasmesos_store::Op;

use super::{ActiveTask, AgentEntry, Core};
use crate::commit::{CommitError, Committer, put};
use crate::keys;

/// The write that persists counter `name` at `value`.
pub(crate) fn seq_op(name: &str, value: u64) -> Op {
    Op::Put {
        key: keys::seq(name),
        value: value.to_string().into_bytes(),
        lease: None,
    }
}

/// The stored value of counter `name` (0 before its first use).
pub(crate) async fn read_seq(committer: &Committer, name: &str) -> Result<u64, CommitError> {
    let key = keys::seq(name);
    match committer.store().get(&key).await? {
        None => Ok(0),
        Some(kv) => {
            String::from_utf8_lossy(&kv.value)
                .parse()
                .map_err(|e: std::num::ParseIntError| CommitError::Corrupt {
                    key,
                    reason: e.to_string(),
                })
        }
    }
}

impl Core {
    pub(super) async fn recover(&mut self) -> Result<(), CommitError> {
        self.seq.job = self.read_seq("job").await?;
        self.seq.agent = self.read_seq("agent").await?;
        self.seq.framework = self.read_seq("framework").await?;
        self.seq.audit = self.read_seq("audit").await?;

        for record in self.committer.list::<proto::Agent>(keys::AGENTS).await? {
            if record.state() == AgentState::Gone {
                continue;
            }
            let Ok(id) = AgentId::new(record.agent_id.clone()) else {
                continue;
            };
            let mut record = record;
            record.set_state(AgentState::Disconnected);
            self.agents.insert(
                id,
                AgentEntry {
                    record,
                    conn: None,
                    allocated: Resources::empty(),
                    offered: Resources::empty(),
                    last_seen: Instant::now(),
                    tasks: HashSet::new(),
                },
            );
        }

        for record in self.committer.list::<proto::Role>(keys::ROLES).await? {
            self.roles.insert(record.name.clone(), record);
        }

        if self.cfg.builtin_jobs {
            let mut owners = vec![(TenantId::default_tenant(), "default".to_string())];
            for t in self.registry.tenants() {
                if let (Ok(id), Some(role)) = (TenantId::new(t.name.clone()), t.roles.first()) {
                    owners.push((id, role.clone()));
                }
            }
            for (tenant, role) in owners {
                if let Some((ops, _)) = self.builtin_jobs(&tenant, &role).await? {
                    self.committer.commit(ops).await?;
                }
            }
        }
        for record in self
            .committer
            .list::<proto::Framework>(keys::FRAMEWORKS)
            .await?
        {
            self.start_framework(record);
        }

        let mut lost = Vec::new();
        for record in self.committer.list::<proto::Task>(keys::TASKS).await? {
            self.task_counts.add(record.state());
            if !record.state().is_active() {
                continue;
            }
            let (Ok(fw), Ok(task), Ok(agent), Ok(tenant)) = (
                FrameworkId::new(record.framework_id.clone()),
                TaskId::new(record.task_id.clone()),
                AgentId::new(record.agent_id.clone()),
                TenantId::new(record.tenant.clone()),
            ) else {
                continue;
            };
            let resources =
                Resources::from(record.spec.as_ref().and_then(|s| s.resources.as_ref()));
            let key = (fw.clone(), task);
            if let Some(a) = self.agents.get_mut(&agent) {
                a.tasks.insert(key.clone());
                a.allocated += &resources;
            } else {
                lost.push(key.clone());
            }
            if let Some(f) = self.frameworks.get_mut(&fw) {
                f.allocated += &resources;
                f.tasks_running += 1;
            }
            self.tasks.insert(
                key,
                ActiveTask {
                    record,
                    tenant,
                    agent,
                    resources,
                    kill_requested: false,
                },
            );
        }
        // Each scheduler hears, after `registered`, where its tasks stand:
        // implicit reconciliation, so no framework has to ask.
        for (key, task) in &self.tasks {
            self.notify_framework(&key.0, &task.record, true);
        }
        for key in lost {
            self.master_transition(
                &key,
                proto::TaskState::Lost,
                "its agent is gone".to_string(),
            )
            .await?;
        }
        tracing::info!(
            agents = self.agents.len(),
            frameworks = self.frameworks.len(),
            active_tasks = self.tasks.len(),
            "recovered state"
        );
        Ok(())
    }

    async fn read_seq(&self, name: &str) -> Result<u64, CommitError> {
        read_seq(&self.committer, name).await
    }

    /// The bundled jobs scheduler as `tenant`'s framework "jobs" in
    /// `role`: a new record, or the existing one pointed at the bundled
    /// bytes if they changed (its durable state is kept: an upgrade in
    /// place), with the writes that store it; `None` if it is up to date.
    pub(super) async fn builtin_jobs(
        &mut self,
        tenant: &TenantId,
        role: &str,
    ) -> Result<Option<(Vec<Op>, proto::Framework)>, CommitError> {
        let module = self
            .modules
            .put_bytes(tenant, wasmesos_builtin::JOBS_SCHEDULER, "jobs scheduler")
            .await
            .map_err(|e| CommitError::Corrupt {
                key: "builtin jobs scheduler".into(),
                reason: e.to_string(),
            })?;
        let key = keys::framework(tenant, super::submit::DEFAULT_FRAMEWORK);
        let existing: Option<proto::Framework> = self.committer.read(&key).await?;
        let mut ops = Vec::new();
        let record = match existing {
            Some(r) if r.module_digest == module.digest => return Ok(None),
            Some(mut r) => {
                tracing::info!(%tenant, from = %r.module_digest, to = %module.digest, "upgrading the built-in jobs framework");
                r.module_digest = module.digest;
                r
            }
            None => {
                self.seq.framework += 1;
                ops.push(seq_op("framework", self.seq.framework));
                proto::Framework {
                    framework_id: format!("fw-{}", self.seq.framework),
                    tenant: tenant.to_string(),
                    name: super::submit::DEFAULT_FRAMEWORK.to_string(),
                    role: role.to_string(),
                    weight: 1.0,
                    module_digest: module.digest,
                    registered_ms: now_ms(),
                    builtin: true,
                    ..Default::default()
                }
            }
        };
        ops.push(put(key, &record));
        Ok(Some((ops, record)))
    }
}
