//! Helpers shared by the test modules: hosts with chosen limits, the two
//! components, events, and reading a callback's output.

use std::collections::BTreeMap;

use wasmesos_api::{AgentId, FrameworkId, OfferId, Resources};
use wasmesos_schedhost::{
    CallbackOutput, Event, KvWrite, Message, Offer, Registration, SchedHost, SchedHostConfig,
    SchedulerComponent, SchedulerInstance,
};

/// A host with `config`, and `bytes` compiled on it (a component belongs to
/// the engine that compiled it, so each host compiles its own).
pub fn compiled(config: SchedHostConfig, bytes: &[u8]) -> (SchedHost, SchedulerComponent) {
    let host = SchedHost::new(config).expect("scheduler host");
    let component = host.compile(bytes).expect("component compiles");
    (host, component)
}

pub fn chaos(config: SchedHostConfig) -> (SchedHost, SchedulerComponent) {
    compiled(config, wasmesos_builtin::CHAOS_SCHEDULER)
}

pub fn jobs(config: SchedHostConfig) -> (SchedHost, SchedulerComponent) {
    compiled(config, wasmesos_builtin::JOBS_SCHEDULER)
}

/// A fresh instance with empty state.
pub async fn fresh(host: &SchedHost, component: &SchedulerComponent) -> SchedulerInstance {
    host.instantiate(component, BTreeMap::new())
        .await
        .expect("instantiates")
}

/// `registered`, first start, with framework config `config`.
pub fn registered(config: &[(&str, &str)]) -> Event {
    Event::Registered(Registration {
        framework_id: FrameworkId::new("fw-1").unwrap(),
        name: "test".to_string(),
        role: "*".to_string(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reregistered: false,
    })
}

/// A message of `kind` with `body`.
pub fn message(kind: &str, body: &[u8]) -> Event {
    Event::Message(Message {
        kind: kind.to_string(),
        sender: "admin".to_string(),
        body: body.to_vec(),
    })
}

/// A "user" message: for chaos, the word naming what to do.
pub fn user(body: &str) -> Event {
    message("user", body.as_bytes())
}

/// An offer of one agent's cpus and memory.
pub fn offer(id: &str, agent: &str, cpus: f64, mem_bytes: u64) -> Offer {
    Offer {
        id: OfferId::new(id).unwrap(),
        agent_id: AgentId::new(agent).unwrap(),
        hostname: format!("{agent}.local"),
        resources: Resources::new(cpus, mem_bytes, 0),
        attributes: Vec::new(),
    }
}

/// The reply of a message callback: the body as text, or the refusal.
pub fn reply(out: &CallbackOutput) -> Result<String, String> {
    match out.reply.as_ref().expect("a message callback replies") {
        Ok(body) => Ok(String::from_utf8_lossy(body).into_owned()),
        Err(refusal) => Err(refusal.clone()),
    }
}

/// Applies a callback's writes to `kv`, as the master's commit would.
pub fn apply(kv: &mut BTreeMap<String, Vec<u8>>, writes: &[KvWrite]) {
    for (key, value) in writes {
        match value {
            Some(v) => kv.insert(key.clone(), v.clone()),
            None => kv.remove(key),
        };
    }
}

/// The keys a callback wrote (set or deleted), in order.
pub fn written_keys(out: &CallbackOutput) -> Vec<&str> {
    out.kv_writes.iter().map(|(k, _)| k.as_str()).collect()
}
