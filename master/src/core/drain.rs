//! Draining an agent (`wasmesos agent drain`): no new offers are made from
//! it, its outstanding offers are rescinded, its frameworks are told, and
//! at the deadline whatever still runs on it is killed. The state lives in
//! the agent's record, so a master restart keeps draining it.
//!
//! Schedulers have no callback for this (`wit/scheduler.wit` has none that
//! fits, and the contract is versioned), so frameworks are told through
//! their log (`wasmesos framework show`); they see the agent's offers stop.

use std::collections::BTreeMap;

use tokio::sync::oneshot;
use tonic::Status;
use wasmesos_api::proto;
use wasmesos_api::{AgentId, FrameworkId, Principal, now_ms};

use super::{Core, TaskKey};
use crate::commit::put;
use crate::keys;

type Reply<T> = oneshot::Sender<Result<T, Status>>;

impl Core {
    pub(super) fn drain_agent(
        &mut self,
        principal: Principal,
        request: proto::DrainAgentRequest,
        reply: Reply<proto::Agent>,
    ) {
        let id = match self.agent_for(&principal, &request.agent_id, "drain") {
            Ok(id) => id,
            Err(status) => {
                let _ = reply.send(Err(status));
                return;
            }
        };
        let deadline_ms = match request.deadline_ms {
            0 => 0,
            ms => now_ms().saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
        };
        let entry = self.agents.get_mut(&id).expect("found above");
        entry.record.draining = true;
        entry.record.drain_deadline_ms = deadline_ms;
        let record = entry.record.clone();
        tracing::info!(agent = %id, deadline_ms, "agent draining");
        self.rescind_offers_on(&id);
        let when = if deadline_ms == 0 {
            "they run to their end".to_string()
        } else {
            format!(
                "what still runs there is killed in {}s",
                request.deadline_ms.div_ceil(1000)
            )
        };
        for (fw, tasks) in self.tasks_by_framework(&id) {
            self.framework_log(
                &fw,
                "warn",
                format!(
                    "agent {id} is draining: no more offers from it; {tasks} task(s) of this framework run there and {when}"
                ),
            );
        }
        self.reply_with_agent(&id, record, reply);
    }

    pub(super) fn undrain_agent(
        &mut self,
        principal: Principal,
        request: proto::UndrainAgentRequest,
        reply: Reply<proto::Agent>,
    ) {
        let id = match self.agent_for(&principal, &request.agent_id, "undrain") {
            Ok(id) => id,
            Err(status) => {
                let _ = reply.send(Err(status));
                return;
            }
        };
        let entry = self.agents.get_mut(&id).expect("found above");
        entry.record.draining = false;
        entry.record.drain_deadline_ms = 0;
        let record = entry.record.clone();
        tracing::info!(agent = %id, "agent undrained");
        for (fw, _) in self.tasks_by_framework(&id) {
            self.framework_log(&fw, "info", format!("agent {id} is no longer draining"));
        }
        self.allocation_pending = true;
        self.reply_with_agent(&id, record, reply);
    }

    /// Kills what still runs on draining agents past their deadline. Each
    /// task is asked once; an agent that is away gets the kill when it
    /// returns.
    pub(super) fn enforce_drain_deadlines(&mut self) {
        let now = now_ms();
        let due: Vec<(AgentId, Vec<TaskKey>)> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.record.draining
                    && a.record.drain_deadline_ms > 0
                    && a.record.drain_deadline_ms <= now
            })
            .map(|(id, a)| {
                let left = a
                    .tasks
                    .iter()
                    .filter(|k| self.tasks.get(*k).is_some_and(|t| !t.kill_requested))
                    .cloned()
                    .collect();
                (id.clone(), left)
            })
            .filter(|(_, left): &(AgentId, Vec<TaskKey>)| !left.is_empty())
            .collect();
        for (agent, keys) in due {
            tracing::warn!(agent = %agent, tasks = keys.len(), "drain deadline passed; killing what still runs");
            for key in &keys {
                if let Some(task) = self.tasks.get_mut(key) {
                    task.kill_requested = true;
                }
                self.framework_log(
                    &key.0,
                    "warn",
                    format!(
                        "task {} killed: agent {agent} reached its drain deadline",
                        key.1
                    ),
                );
            }
            self.write(Vec::new(), move |core| {
                for key in &keys {
                    core.send_kill(key);
                }
            });
        }
    }

    /// The agent `text` names, if `principal` may drain it.
    fn agent_for(&self, principal: &Principal, text: &str, verb: &str) -> Result<AgentId, Status> {
        if !principal.is_operator() {
            return Err(Status::permission_denied(format!(
                "only operators may {verb} agents"
            )));
        }
        let id = AgentId::new(text.trim()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !self.agents.contains_key(&id) {
            return Err(Status::not_found(format!(
                "no agent {id} (wasmesos agents lists them)"
            )));
        }
        Ok(id)
    }

    /// How many active tasks each framework has on `agent`.
    fn tasks_by_framework(&self, agent: &AgentId) -> BTreeMap<FrameworkId, usize> {
        let mut by_framework = BTreeMap::new();
        if let Some(a) = self.agents.get(agent) {
            for (fw, _) in &a.tasks {
                *by_framework.entry(fw.clone()).or_default() += 1;
            }
        }
        by_framework
    }

    /// Stores the agent's record and answers with its live view.
    fn reply_with_agent(&mut self, id: &AgentId, record: proto::Agent, reply: Reply<proto::Agent>) {
        let agent = id.clone();
        self.write(vec![put(keys::agent(id), &record)], move |core| {
            let view = core
                .agent_views()
                .into_iter()
                .find(|a| a.agent_id == agent.as_str());
            let _ = reply.send(Ok(view.unwrap_or(record)));
        });
    }
}
