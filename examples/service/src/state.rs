//! The durable layout of the service scheduler in `state` (memory is only
//! a cache: the master may start a fresh instance at any event):
//!
//! | key | value |
//! |---|---|
//! | `spec` | the [`Spec`]: what should run, and its generation |
//! | `next` | the number the next instance's task id gets |
//! | `inst/<task-id>` | an [`Instance`] launched and not yet terminal |
//! | `agent/<agent-id>` | an agent seen in an offer (not yet lost): the spread counts them |
//! | `backoff` | the [`Backoff`] for restarts after failures |
//!
//! Task ids are `svc-<generation>-<n>` with `n` from `next`, never reused
//! (the master refuses a task id it has seen).

use serde::{Deserialize, Serialize};
use wasmesos_sdk::{Host, HostError};

use crate::spec::Spec;

const SPEC: &str = "spec";
const NEXT: &str = "next";
pub const INSTANCES: &str = "inst/";
const AGENTS: &str = "agent/";
const BACKOFF: &str = "backoff";

/// An instance: a task launched and not yet terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub generation: u64,
    /// Its number (from `next`): higher is newer.
    pub n: u64,
    pub agent_id: String,
    /// Reported RUNNING.
    pub running: bool,
    /// When it was launched, then when it was reported RUNNING.
    pub since_ms: u64,
    /// We asked for it to be killed: it no longer counts.
    pub killing: bool,
}

/// Consecutive failures and when the next restart may launch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub failures: u32,
    pub until_ms: u64,
}

pub fn spec(h: &impl Host) -> Result<Option<Spec>, HostError> {
    h.get_json(SPEC)
}

pub fn set_spec(h: &mut impl Host, spec: &Spec) -> Result<(), HostError> {
    h.set_json(SPEC, spec)
}

/// The number the next instance gets.
pub fn next(h: &impl Host) -> Result<u64, HostError> {
    Ok(h.get_json(NEXT)?.unwrap_or(0))
}

pub fn set_next(h: &mut impl Host, n: u64) -> Result<(), HostError> {
    h.set_json(NEXT, &n)
}

pub fn task_id(generation: u64, n: u64) -> String {
    format!("svc-{generation}-{n}")
}

/// Every instance, by task id, in key order.
pub fn instances(h: &impl Host) -> Result<Vec<(String, Instance)>, HostError> {
    h.list_all(INSTANCES)
        .into_iter()
        .filter_map(|key| {
            let value = h.get_json::<Instance>(&key).transpose()?;
            Some(value.map(|i| (key[INSTANCES.len()..].to_string(), i)))
        })
        .collect()
}

pub fn instance(h: &impl Host, task_id: &str) -> Result<Option<Instance>, HostError> {
    h.get_json(&format!("{INSTANCES}{task_id}"))
}

pub fn set_instance(h: &mut impl Host, task_id: &str, i: &Instance) -> Result<(), HostError> {
    h.set_json(&format!("{INSTANCES}{task_id}"), i)
}

pub fn remove_instance(h: &mut impl Host, task_id: &str) {
    h.delete(&format!("{INSTANCES}{task_id}"))
}

/// Remembers an agent; writes only when it is new.
pub fn add_agent(h: &mut impl Host, agent_id: &str) -> Result<(), HostError> {
    let key = format!("{AGENTS}{agent_id}");
    if h.get(&key).is_none() {
        h.set(&key, b"")?;
    }
    Ok(())
}

pub fn remove_agent(h: &mut impl Host, agent_id: &str) {
    h.delete(&format!("{AGENTS}{agent_id}"))
}

pub fn agent_count(h: &impl Host) -> usize {
    h.list_all(AGENTS).len()
}

pub fn backoff(h: &impl Host) -> Result<Backoff, HostError> {
    Ok(h.get_json(BACKOFF)?.unwrap_or_default())
}

pub fn set_backoff(h: &mut impl Host, b: &Backoff) -> Result<(), HostError> {
    if *b == Backoff::default() {
        h.delete(BACKOFF);
        return Ok(());
    }
    h.set_json(BACKOFF, b)
}
