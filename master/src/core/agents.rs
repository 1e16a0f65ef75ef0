//! Agents: registration and re-registration (with reconciliation of the
//! tasks an agent reports against those the master believes it runs),
//! heartbeats, disconnection, and loss after `agent_timeout`.

use std::collections::HashSet;
use std::time::Instant;

use wasmesos_api::proto::{self, AgentState, TaskState, master_message};
use wasmesos_api::{AgentId, FrameworkId, Resources, TaskId, now_ms};
use wasmesos_schedhost::Event;

use tonic::Status;

use super::{AgentConn, AgentEntry, AgentTx, AttachReply, Core, TaskKey};
use crate::commit::{CommitError, put};
use crate::framework::Delivery;
use crate::keys;

impl Core {
    pub(super) async fn attach_agent(
        &mut self,
        register: proto::RegisterAgent,
        conn: u64,
        tx: AgentTx,
        reply: AttachReply,
    ) -> Result<(), CommitError> {
        let refuse = |reply: AttachReply, message: String| {
            let _ = reply.send(Err(Status::failed_precondition(message)));
            Ok(())
        };
        if register.epoch > self.epoch {
            return refuse(
                reply,
                format!(
                    "this master's epoch {} is older than the epoch {} the agent has seen: it is not the leader",
                    self.epoch, register.epoch
                ),
            );
        }
        let total = Resources::from(register.resources.as_ref());
        if total.is_empty() {
            return refuse(
                reply,
                "the agent offers no resources: start it with --resources cpus:N,mem:SIZE".into(),
            );
        }
        if let Err(message) = check_reservations(&register, &total) {
            return refuse(reply, message);
        }
        let mut ops = Vec::new();
        let id = if register.agent_id.is_empty() {
            self.seq.agent += 1;
            ops.push(crate::core::recover::seq_op("agent", self.seq.agent));
            AgentId::new(format!("agent-{}", self.seq.agent))
        } else {
            AgentId::new(register.agent_id.clone())
        };
        let id = match id {
            Ok(id) => id,
            Err(e) => return refuse(reply, e.to_string()),
        };
        let known = self.agents.get(&id).map(|a| &a.record);
        let registered_ms = known.map(|r| r.registered_ms).unwrap_or_else(now_ms);
        // Draining is the operator's decision: it outlives reconnections.
        let (draining, drain_deadline_ms) =
            known.map_or((false, 0), |r| (r.draining, r.drain_deadline_ms));
        let record = proto::Agent {
            agent_id: id.to_string(),
            hostname: register.hostname.clone(),
            address: register.address.clone(),
            total: Some((&total).into()),
            attributes: register.attributes.clone(),
            registered_ms,
            version: register.version.clone(),
            reserved: register.reserved.clone(),
            draining,
            drain_deadline_ms,
            ..Default::default()
        };
        ops.push(put(keys::agent(&id), &record));

        let entry = self.agents.entry(id.clone()).or_insert_with(|| AgentEntry {
            record: record.clone(),
            conn: None,
            allocated: Resources::empty(),
            offered: Resources::empty(),
            last_seen: Instant::now(),
            tasks: HashSet::new(),
        });
        entry.record = record;
        entry.record.state = AgentState::Active as i32;
        entry.conn = Some(AgentConn { id: conn, tx });
        entry.last_seen = Instant::now();
        tracing::info!(agent = %id, address = %register.address, resources = %total, "agent attached");

        let heartbeat_interval_ms = self.cfg.heartbeat_interval.as_millis() as u64;
        let agent = id.clone();
        self.write(ops, move |core| {
            let registered = master_message::Msg::Registered(proto::AgentRegistered {
                agent_id: agent.to_string(),
                heartbeat_interval_ms,
            });
            let _ = reply.send(
                core.send_to_agent(&agent, registered)
                    .map(|_| agent.clone()),
            );
        });
        self.reconcile_agent(&id, &register.tasks).await?;
        self.allocation_pending = true;
        Ok(())
    }

    /// Tasks the master thought the agent ran but it does not report are
    /// LOST; tasks it runs that the master does not know as active are
    /// killed.
    async fn reconcile_agent(
        &mut self,
        id: &AgentId,
        reported: &[proto::RunningTask],
    ) -> Result<(), CommitError> {
        let mut running = HashSet::new();
        for t in reported {
            let (Ok(fw), Ok(task)) = (
                FrameworkId::new(t.framework_id.clone()),
                TaskId::new(t.task_id.clone()),
            ) else {
                continue;
            };
            let key = (fw, task);
            let known = self.tasks.get(&key).filter(|a| &a.agent == id);
            // Unknown tasks, and kills that could not be delivered while the
            // agent was away, are (re)sent now. A task reported in a
            // terminal state has ended already: its update follows.
            let ended = TaskState::try_from(t.state).is_ok_and(|s| s.is_terminal());
            if !ended && known.is_none_or(|a| a.kill_requested) {
                let kill = master_message::Msg::Kill(proto::KillTaskOrder {
                    framework_id: key.0.to_string(),
                    task_id: key.1.to_string(),
                });
                let agent = id.clone();
                self.write(Vec::new(), move |core| {
                    let _ = core.send_to_agent(&agent, kill);
                });
            }
            running.insert(key);
        }
        let missing: Vec<TaskKey> = self
            .agents
            .get(id)
            .map(|a| {
                a.tasks
                    .iter()
                    .filter(|k| !running.contains(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in missing {
            self.master_transition(
                &key,
                TaskState::Lost,
                format!("agent {id} came back without this task"),
            )
            .await?;
        }
        Ok(())
    }

    pub(super) fn heartbeat(&mut self, id: &AgentId, conn: u64) {
        if let Some(a) = self.agents.get_mut(id)
            && a.conn.as_ref().is_some_and(|c| c.id == conn)
        {
            a.last_seen = Instant::now();
        }
    }

    pub(super) fn detach_agent(&mut self, id: &AgentId, conn: u64) {
        let Some(a) = self.agents.get_mut(id) else {
            return;
        };
        if a.conn.as_ref().is_none_or(|c| c.id != conn) {
            return; // a newer connection replaced this one
        }
        a.conn = None;
        a.last_seen = Instant::now();
        a.record.state = AgentState::Disconnected as i32;
        tracing::warn!(agent = %id, "agent disconnected; its tasks are kept until it returns or times out");
        self.rescind_offers_on(id);
    }

    /// Agents silent past their heartbeat are dropped; agents gone longer
    /// than `agent_timeout` are lost, with their tasks.
    pub(super) async fn check_agents(&mut self) -> Result<(), CommitError> {
        let now = Instant::now();
        let silent_limit = self.cfg.heartbeat_interval * 5;
        let mut silent = Vec::new();
        let mut lost = Vec::new();
        for (id, a) in &self.agents {
            match &a.conn {
                Some(c) if now.duration_since(a.last_seen) > silent_limit => {
                    silent.push((id.clone(), c.id))
                }
                None if now.duration_since(a.last_seen) > self.cfg.agent_timeout => {
                    lost.push(id.clone())
                }
                _ => {}
            }
        }
        for (id, conn) in silent {
            tracing::warn!(agent = %id, "no heartbeat for {silent_limit:?}; dropping its connection");
            self.detach_agent(&id, conn);
        }
        for id in lost {
            self.lose_agent(&id).await?;
        }
        Ok(())
    }

    async fn lose_agent(&mut self, id: &AgentId) -> Result<(), CommitError> {
        let timeout = self.cfg.agent_timeout;
        let keys: Vec<TaskKey> = self
            .agents
            .get(id)
            .map(|a| a.tasks.iter().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.master_transition(
                &key,
                TaskState::Lost,
                format!("agent {id} lost: no contact for {}s", timeout.as_secs()),
            )
            .await?;
        }
        let Some(mut entry) = self.agents.remove(id) else {
            return Ok(());
        };
        entry.record.state = AgentState::Gone as i32;
        tracing::warn!(agent = %id, "agent lost");
        let agent = id.clone();
        self.write(vec![put(keys::agent(id), &entry.record)], move |core| {
            for fw in core.frameworks.values() {
                fw.actor
                    .deliver(Delivery::plain(Event::AgentLost(agent.clone())));
            }
        });
        Ok(())
    }
}

/// Why an agent's reservations cannot be taken: a role name that is no
/// valid role, or more reserved in all than the agent offers.
fn check_reservations(register: &proto::RegisterAgent, total: &Resources) -> Result<(), String> {
    let mut reserved = Resources::empty();
    for (role, resources) in &register.reserved {
        FrameworkId::new(role.clone()).map_err(|e| format!("--reserve {role}: role {e}"))?;
        reserved += &Resources::from(resources);
    }
    if !total.contains(&reserved) {
        return Err(format!(
            "the agent reserves {reserved} in all but offers only {total}: reservations are part of --resources"
        ));
    }
    Ok(())
}
