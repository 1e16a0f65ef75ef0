//! The JSON shapes of the API's objects, made from the same protobuf records
//! the gRPC API returns. Sizes come as bytes (for arithmetic) and as text
//! (for people); cpus as a number of cpus; states by their printed names,
//! as the CLI prints them.

use serde_json::{Map, Value, json};
use wasmesos_api::proto::{self, AgentState};
use wasmesos_api::{Resources, format_size, job_state_name};

pub fn resources(r: Option<&proto::Resources>) -> Value {
    let r = Resources::from(r);
    let scalars: Map<String, Value> = r
        .scalars_milli
        .iter()
        .map(|(k, v)| (k.clone(), json!(*v as f64 / 1000.0)))
        .collect();
    json!({
        "cpus": r.cpus(),
        "mem_bytes": r.mem_bytes,
        "disk_bytes": r.disk_bytes,
        "mem": format_size(r.mem_bytes),
        "disk": format_size(r.disk_bytes),
        "scalars": scalars,
    })
}

/// A quota limit: only the kinds it bounds (absent kinds are unlimited).
pub fn limit(l: &proto::ResourceLimits) -> Value {
    let mut out = Map::new();
    if let Some(v) = l.cpus_milli {
        out.insert("cpus".into(), json!(v as f64 / 1000.0));
    }
    if let Some(v) = l.mem_bytes {
        out.insert("mem".into(), json!(format_size(v)));
        out.insert("mem_bytes".into(), json!(v));
    }
    if let Some(v) = l.disk_bytes {
        out.insert("disk".into(), json!(format_size(v)));
        out.insert("disk_bytes".into(), json!(v));
    }
    for (name, v) in &l.scalars_milli {
        out.insert(name.clone(), json!(*v as f64 / 1000.0));
    }
    Value::Object(out)
}

/// The state the CLI's `agents` table prints.
pub fn agent_state(a: &proto::Agent) -> &'static str {
    match a.state() {
        AgentState::Active => "ACTIVE",
        AgentState::Disconnected => "DISCONNECTED",
        AgentState::Gone => "GONE",
        AgentState::Unspecified => "UNKNOWN",
    }
}

pub fn agent(a: &proto::Agent) -> Value {
    json!({
        "id": a.agent_id,
        "hostname": a.hostname,
        "address": a.address,
        "state": agent_state(a),
        "version": a.version,
        "total": resources(a.total.as_ref()),
        "used": resources(a.used.as_ref()),
        "tasks_running": a.tasks_running,
        "registered_ms": a.registered_ms,
        "last_heartbeat_ms": a.last_heartbeat_ms,
        "draining": a.draining,
        "drain_deadline_ms": a.drain_deadline_ms,
        "attributes": a.attributes,
        "reserved": a.reserved.iter()
            .map(|(role, r)| (role.clone(), resources(Some(r))))
            .collect::<Map<_, _>>(),
    })
}

pub fn framework(f: &proto::Framework) -> Value {
    json!({
        "id": f.framework_id,
        "name": f.name,
        "tenant": f.tenant,
        "role": f.role,
        "weight": f.weight,
        "status": f.status,
        "builtin": f.builtin,
        "module_digest": f.module_digest,
        "config": f.config,
        "registered_ms": f.registered_ms,
        "tasks_running": f.tasks_running,
        "dominant_share": f.dominant_share,
        "allocated": resources(f.allocated.as_ref()),
        "callbacks": f.callbacks,
        "callback_failures": f.callback_failures,
        "callback_p50_us": f.callback_p50_us,
        "callback_p99_us": f.callback_p99_us,
    })
}

pub fn role(r: &proto::Role) -> Value {
    json!({
        "name": r.name,
        "weight": r.weight,
        "configured": r.configured,
        "guarantee": resources(r.guarantee.as_ref()),
        "limit": r.limit.as_ref().map(limit),
        "allocated": resources(r.allocated.as_ref()),
        "dominant_share": r.dominant_share,
        "frameworks": r.frameworks,
        "updated_ms": r.updated_ms,
    })
}

/// A task in a list: what a table row needs.
pub fn task_row(t: &proto::Task) -> Value {
    json!({
        "id": t.task_id,
        "name": t.name,
        "framework": t.framework_name,
        "framework_id": t.framework_id,
        "job_id": t.job_id,
        "agent_id": t.agent_id,
        "state": t.state().name(),
        "exit_code": t.exit_code,
        "message": t.message,
        "created_ms": t.created_ms,
        "started_ms": t.started_ms,
        "finished_ms": t.finished_ms,
    })
}

/// A task in full: spec, limits, usage and result size.
pub fn task(t: &proto::Task) -> Value {
    let mut v = task_row(t);
    let spec = t.spec.clone().unwrap_or_default();
    let limits = spec.limits.unwrap_or_default();
    let usage = t.usage.unwrap_or_default();
    let extra = json!({
        "tenant": t.tenant,
        "spec": {
            "module_digest": spec.module_digest,
            "args": spec.args,
            "env": spec.env,
            "resources": resources(spec.resources.as_ref()),
        },
        "limits": {
            "fuel": limits.fuel,
            "timeout_ms": limits.timeout_ms,
            "log_bytes": limits.log_bytes,
        },
        // Reported by the agent with the task's last status: zero while it
        // runs.
        "usage": {
            "fuel_consumed": usage.fuel_consumed,
            "wall_ms": usage.wall_ms,
            "cpu_ms": usage.cpu_ms,
            "cpu_throttled_ms": usage.cpu_throttled_ms,
            "peak_mem_bytes": usage.peak_mem_bytes,
            "stdout_bytes": usage.stdout_bytes,
            "stderr_bytes": usage.stderr_bytes,
            "log_bytes_dropped": usage.log_bytes_dropped,
        },
        "result_bytes": t.result.len(),
    });
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    v
}

pub fn job(j: &proto::Job) -> Value {
    json!({
        "id": j.job_id,
        "name": j.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        "framework": j.framework_name,
        "state": job_state_name(j.state()),
        "submitted_ms": j.submitted_ms,
        "attempts": j.attempts,
    })
}
