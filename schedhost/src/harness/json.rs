//! The record as JSON (`wasmesos framework test --json`): events and
//! commands in a readable form — ids as strings, resources as
//! `cpus:0.5,mem:64MiB`, states by name, bodies and state values as text
//! when they are UTF-8 (else as a list of bytes).

use serde_json::{Value, json};
use wasmesos_api::Resources;

use super::record::{CallbackRecord, Entry, Report};
use crate::event::{Command, Event, TaskLaunch};
use crate::state::LogLevel;

/// Resources as `--resources` takes them, leaving out what is zero.
pub fn compact(r: &Resources) -> String {
    let text = r.to_string();
    let parts: Vec<&str> = text
        .split(',')
        .filter(|p| !(p.ends_with(":0") || p.ends_with(":0B")))
        .collect();
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(",")
    }
}

/// Bytes as text when they are UTF-8, else as a list of numbers.
pub(crate) fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!(b),
    }
}

pub(crate) fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// An event in readable JSON.
pub fn event(e: &Event) -> Value {
    match e {
        Event::Registered(r) => json!({"registered": {
            "framework_id": r.framework_id.as_str(),
            "name": r.name,
            "role": r.role,
            "config": r.config.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "reregistered": r.reregistered,
        }}),
        Event::Offers(offers) => json!({"offers": offers.iter().map(|o| json!({
            "id": o.id.as_str(),
            "agent": o.agent_id.as_str(),
            "hostname": o.hostname,
            "resources": compact(&o.resources),
        })).collect::<Vec<_>>()}),
        Event::OfferRescinded(id) => json!({"offer_rescinded": id.as_str()}),
        Event::StatusUpdate(s) => json!({"status_update": {
            "task": s.task_id.as_str(),
            "state": s.state.name(),
            "message": s.message,
            "exit_code": s.exit_code,
            "agent": s.agent_id.as_ref().map(|a| a.as_str()),
            "timestamp_ms": s.timestamp_ms,
            "result": s.result.as_deref().map(bytes),
            "reconciliation": s.reconciliation,
        }}),
        Event::Message(m) => json!({"message": {
            "kind": m.kind,
            "sender": m.sender,
            "body": bytes(&m.body),
        }}),
        Event::AgentLost(a) => json!({"agent_lost": a.as_str()}),
        Event::Timer(id) => json!({"timer": id}),
    }
}

fn task(t: &TaskLaunch) -> Value {
    json!({
        "task_id": t.task_id.as_str(),
        "name": t.name,
        "module": t.module_digest.to_string(),
        "args": t.args,
        "env": t.env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "resources": compact(&t.resources),
        "limits": {
            "fuel": t.limits.fuel,
            "timeout_ms": t.limits.timeout_ms,
            "log_bytes": t.limits.log_bytes,
        },
    })
}

/// A command in readable JSON.
pub fn command(c: &Command) -> Value {
    fn ids(ids: &[wasmesos_api::OfferId]) -> Vec<&str> {
        ids.iter().map(|i| i.as_str()).collect()
    }
    match c {
        Command::Launch { offer_ids, tasks } => json!({"launch": {
            "offers": ids(offer_ids),
            "tasks": tasks.iter().map(task).collect::<Vec<_>>(),
        }}),
        Command::Decline { offer_ids, refuse } => json!({"decline": {
            "offers": ids(offer_ids),
            "refuse_seconds": refuse.as_secs_f64(),
        }}),
        Command::Kill(t) => json!({"kill": t.as_str()}),
        Command::Reconcile(ts) => {
            json!({"reconcile": ts.iter().map(|t| t.as_str()).collect::<Vec<_>>()})
        }
        Command::Suppress => json!("suppress"),
        Command::Revive => json!("revive"),
        Command::Hold {
            offer_ids,
            duration,
        } => json!({"hold": {"offers": ids(offer_ids), "seconds": duration.as_secs_f64()}}),
        Command::SetTimer { id, after } => {
            json!({"set_timer": {"id": id, "after_ms": after.as_millis() as u64}})
        }
        Command::CancelTimer(id) => json!({"cancel_timer": id}),
    }
}

fn callback(c: &CallbackRecord) -> Value {
    let mut v = json!({
        "type": "callback",
        "t_ms": c.t_ms,
        "step": c.step,
        "callback": c.event.name(),
        "attempt": c.attempt,
        "event": event(&c.event),
    });
    if let Some(f) = &c.failure {
        v["failure"] = json!({"kind": f.kind.name(), "message": f.message, "retried": f.retried});
        return v;
    }
    v["commands"] = c.commands.iter().map(command).collect();
    v["rejected"] = json!(c.rejected);
    v["invalid"] = c
        .invalid
        .iter()
        .map(|i| json!({"command": i.command, "task": i.task.as_ref().map(|t| t.as_str()), "reason": i.reason}))
        .collect();
    v["launched"] = c
        .launches
        .iter()
        .map(|l| json!({"command": l.command, "agent": l.agent.as_str(), "tasks": l.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(), "resources": compact(&l.resources)}))
        .collect();
    v["lapsed"] = c.lapsed.iter().map(|o| json!(o.as_str())).collect();
    v["notes"] = json!(c.notes);
    v["reply"] = match &c.reply {
        None => Value::Null,
        Some(Ok(body)) => json!({"ok": bytes(body)}),
        Some(Err(refusal)) => json!({"refused": refusal}),
    };
    v["kv_writes"] = c
        .kv_writes
        .iter()
        .map(|(k, val)| json!({"key": k, "value": val.as_deref().map(bytes)}))
        .collect();
    v["logs"] = c
        .logs
        .iter()
        .map(|l| json!({"level": level(l.level), "message": l.message}))
        .collect();
    v["logs_dropped"] = json!(c.logs_dropped);
    v["fuel_used"] = json!(c.fuel_used);
    v["elapsed_us"] = json!(c.elapsed.as_micros() as u64);
    v
}

fn report(r: &Report) -> Value {
    let s = &r.summary;
    let entries: Vec<Value> = r
        .record
        .entries
        .iter()
        .map(|e| match e {
            Entry::Callback(c) => callback(c),
            Entry::Note(n) => {
                json!({"type": "note", "t_ms": n.t_ms, "step": n.step, "text": n.text})
            }
        })
        .collect();
    json!({
        "passed": r.passed(),
        "problems": r.problems(),
        "summary": {
            "t_ms": s.t_ms,
            "callbacks": s.callbacks,
            "failures": s.failures,
            "abandoned": s.abandoned,
            "invalid": s.invalid,
            "launched": s.launched,
            "tasks": s.tasks,
            "jobs": s.jobs,
        },
        "entries": entries,
    })
}

impl Report {
    /// The whole record and the verdict as JSON.
    pub fn to_json(&self) -> Value {
        report(self)
    }

    /// [`Report::to_json`], pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_json())
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
