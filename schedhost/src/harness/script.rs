//! The harness's script: a JSON list of steps (or an object holding the
//! cluster it wants and the steps), parsed one step at a time so that a bad
//! step is reported by its number and text. The format is documented in
//! the module docs of [`crate::harness`]; the steps are in `step`, the
//! values they are written in in `values`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use wasmesos_api::{AgentId, Resources, parse_resources};

use super::error::ScriptError;
use super::step::Step;

/// A parsed script: the cluster it asks for (everything optional; the
/// command line and [`super::HarnessConfig`] fill the gaps) and its steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    pub cluster: ClusterSpec,
    pub steps: Vec<Step>,
}

/// The cluster a script asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterSpec {
    pub agents: Option<Agents>,
    /// Resources of each agent that does not state its own.
    pub resources: Option<Resources>,
    /// The framework's config (`--config k=v`), handed to `registered`.
    pub config: BTreeMap<String, String>,
    pub name: Option<String>,
    pub role: Option<String>,
}

impl ClusterSpec {
    /// `self`, with whatever `over` sets taking precedence (config keys
    /// are merged).
    pub fn merge(mut self, over: ClusterSpec) -> ClusterSpec {
        self.agents = over.agents.or(self.agents);
        self.resources = over.resources.or(self.resources);
        self.config.extend(over.config);
        self.name = over.name.or(self.name);
        self.role = over.role.or(self.role);
        self
    }
}

/// How many agents, or each one.
#[derive(Clone, Debug, PartialEq)]
pub enum Agents {
    Count(usize),
    List(Vec<AgentEntry>),
}

/// One agent as a script describes it; unset fields get defaults (the next
/// free `agent-N`, the cluster's per-agent resources).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "AgentText")]
pub struct AgentEntry {
    pub id: Option<AgentId>,
    pub resources: Option<Resources>,
    pub attributes: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentText {
    id: Option<String>,
    resources: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl TryFrom<AgentText> for AgentEntry {
    type Error = String;
    fn try_from(t: AgentText) -> Result<Self, String> {
        Ok(AgentEntry {
            id: t
                .id
                .map(AgentId::new)
                .transpose()
                .map_err(|e| e.to_string())?,
            resources: t
                .resources
                .map(|r| parse_resources(&r))
                .transpose()
                .map_err(|e| e.to_string())?,
            attributes: t.attributes.into_iter().collect(),
        })
    }
}

/// The top level of a script written as an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    agents: Option<Value>,
    resources: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    name: Option<String>,
    role: Option<String>,
    steps: Vec<Value>,
}

impl Script {
    /// Parses a script from JSON text.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let value: Value = serde_json::from_str(text).map_err(ScriptError::Json)?;
        Script::from_value(value)
    }

    /// Parses a script from a JSON value (e.g. `serde_json::json!`).
    pub fn from_value(value: Value) -> Result<Script, ScriptError> {
        let (cluster, steps) = match value {
            Value::Array(steps) => (ClusterSpec::default(), steps),
            Value::Object(_) => {
                let h: Header =
                    serde_json::from_value(value).map_err(|e| ScriptError::Shape(e.to_string()))?;
                let agents = h
                    .agents
                    .map(agents)
                    .transpose()
                    .map_err(ScriptError::Shape)?;
                let resources = h
                    .resources
                    .map(|r| parse_resources(&r))
                    .transpose()
                    .map_err(|e| ScriptError::Shape(format!("resources: {e}")))?;
                let cluster = ClusterSpec {
                    agents,
                    resources,
                    config: h.config,
                    name: h.name,
                    role: h.role,
                };
                (cluster, h.steps)
            }
            other => return Err(ScriptError::Shape(format!("found {}", shorten(&other)))),
        };
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_step(i + 1, v))
            .collect::<Result<_, _>>()?;
        Ok(Script { cluster, steps })
    }
}

fn agents(v: Value) -> Result<Agents, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|n| Agents::Count(n as usize))
            .ok_or_else(|| format!("agents: expected a whole number, got {n}")),
        Value::Array(_) => serde_json::from_value(v)
            .map(Agents::List)
            .map_err(|e| format!("agents: {e}")),
        other => Err(format!(
            "agents: expected a number or a list of agents, got {}",
            shorten(&other)
        )),
    }
}

fn parse_step(step: usize, v: Value) -> Result<Step, ScriptError> {
    let found = shorten(&v);
    let err = |reason: String| ScriptError::Step {
        step,
        found: found.clone(),
        reason,
    };
    match &v {
        Value::Object(m) if m.len() == 1 => {}
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            return Err(err(format!(
                "a step is an object with exactly one key naming it, like {{\"offer\": \"all\"}}; this one has {}",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            )));
        }
        _ => {
            return Err(err(
                "a step is an object with one key naming it, like {\"offer\": \"all\"}".into(),
            ));
        }
    }
    let parsed: Step = serde_json::from_value(v).map_err(|e| err(e.to_string()))?;
    parsed.validate().map_err(err)?;
    Ok(parsed)
}

/// A JSON value as compact text, cut to a readable length.
fn shorten(v: &Value) -> String {
    const MAX: usize = 80;
    let text = v.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX - 3).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests;
