//! What the service should run, and the requests that change it: the
//! "user" messages (`{"deploy": …}`, `{"upgrade": …}`, `{"scale": …}`,
//! `{"status": {}}`) and the operator's config, which seeds the spec at the
//! first registration.

use serde::{Deserialize, Serialize};
use wasmesos_sdk::{Registration, cpus_milli, parse_size};

/// Most instances a service may ask for: each is a state key and a task.
pub const MAX_INSTANCES: u32 = 1000;
/// Cpus per instance unless told otherwise.
const DEFAULT_CPUS_MILLI: u64 = 100;
/// Memory per instance (also its cap) unless told otherwise.
const DEFAULT_MEM_BYTES: u64 = 64 << 20;

/// The desired state, kept durably under `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The module every instance runs: `sha256:<hex>`.
    pub module: String,
    pub instances: u32,
    pub cpus_milli: u64,
    pub mem_bytes: u64,
    pub args: Vec<String>,
    /// Each instance's wall-time limit; 0 = the agent's default.
    pub timeout_ms: u64,
    /// Bumped whenever what an instance runs changes (module, args,
    /// resources, limits): instances of older generations are replaced one
    /// at a time.
    pub generation: u64,
}

impl Spec {
    /// True when `other` runs instances differently (not just more or fewer).
    fn template_differs(&self, other: &Spec) -> bool {
        (
            &self.module,
            &self.args,
            self.cpus_milli,
            self.mem_bytes,
            self.timeout_ms,
        ) != (
            &other.module,
            &other.args,
            other.cpus_milli,
            other.mem_bytes,
            other.timeout_ms,
        )
    }
}

/// A size as a string ("64MiB") or a number of bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// Arguments as a list, or one string split on spaces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Args {
    List(Vec<String>),
    Line(String),
}

impl Args {
    fn into_vec(self) -> Vec<String> {
        match self {
            Args::List(v) => v,
            Args::Line(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// Fields to set; those absent keep their current value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub module: Option<String>,
    pub instances: Option<u32>,
    pub cpus: Option<f64>,
    pub mem: Option<Size>,
    pub args: Option<Args>,
    pub timeout_ms: Option<u64>,
}

/// A new module (and optionally new args), rolled out one instance at a
/// time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    pub module: String,
    pub args: Option<Args>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub instances: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// A "user" message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Deploy(Deploy),
    Upgrade(Upgrade),
    Scale(Scale),
    Status(Nothing),
}

impl Request {
    /// Parses a message body; an empty body (or the word `status`) asks
    /// for the status.
    pub fn parse(body: &[u8]) -> Result<Request, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the message is not UTF-8".to_string())?;
        if matches!(text.trim(), "" | "status") {
            return Ok(Request::Status(Nothing {}));
        }
        serde_json::from_str(text).map_err(|e| {
            format!(
                "invalid request: {e}; expected {{\"deploy\": {{…}}}}, {{\"upgrade\": {{\"module\": …}}}}, \
                 {{\"scale\": {{\"instances\": N}}}} or {{\"status\": {{}}}}"
            )
        })
    }

    /// The change a request makes, as a deploy (`None` for status).
    pub fn into_deploy(self) -> Option<Deploy> {
        match self {
            Request::Deploy(d) => Some(d),
            Request::Upgrade(u) => Some(Deploy {
                module: Some(u.module),
                args: u.args,
                ..Deploy::default()
            }),
            Request::Scale(s) => Some(Deploy {
                instances: Some(s.instances),
                ..Deploy::default()
            }),
            Request::Status(_) => None,
        }
    }
}

impl Deploy {
    /// The deploy the operator's config describes, if it names a module
    /// (keys `module`, `instances`, `cpus`, `mem`, `args`, `timeout-ms`).
    pub fn from_config(info: &Registration) -> Result<Option<Deploy>, String> {
        if info.config("module").is_none() {
            return Ok(None);
        }
        Ok(Some(Deploy {
            module: info.config("module").map(|m| m.trim().to_string()),
            instances: info.config_parse("instances")?,
            cpus: info.config_parse("cpus")?,
            mem: info.config("mem").map(|m| Size::Text(m.to_string())),
            args: info.config("args").map(|a| Args::Line(a.to_string())),
            timeout_ms: info.config_parse("timeout-ms")?,
        }))
    }

    /// The spec after this deploy, from `current` (None: nothing deployed
    /// yet). The generation moves on when instances would run differently.
    pub fn apply(self, current: Option<&Spec>) -> Result<Spec, String> {
        let module = match (self.module, current) {
            (Some(m), _) => m,
            (None, Some(c)) => c.module.clone(),
            (None, None) => return Err("nothing is deployed yet: name a module".into()),
        };
        check_digest(&module)?;
        let instances = self.instances.or(current.map(|c| c.instances)).unwrap_or(1);
        if instances > MAX_INSTANCES {
            return Err(format!(
                "at most {MAX_INSTANCES} instances, not {instances}"
            ));
        }
        let cpus_milli = match self.cpus {
            Some(c) => cpus_milli(c)?,
            None => current.map_or(DEFAULT_CPUS_MILLI, |c| c.cpus_milli),
        };
        let mem_bytes = match self.mem {
            Some(Size::Bytes(b)) => b,
            Some(Size::Text(t)) => parse_size(&t)?,
            None => current.map_or(DEFAULT_MEM_BYTES, |c| c.mem_bytes),
        };
        if mem_bytes == 0 {
            return Err("mem must be more than 0: it is each instance's memory cap".into());
        }
        let mut spec = Spec {
            module,
            instances,
            cpus_milli,
            mem_bytes,
            args: match self.args {
                Some(a) => a.into_vec(),
                None => current.map(|c| c.args.clone()).unwrap_or_default(),
            },
            timeout_ms: self
                .timeout_ms
                .or(current.map(|c| c.timeout_ms))
                .unwrap_or(0),
            generation: current.map_or(1, |c| c.generation),
        };
        if current.is_some_and(|c| c.template_differs(&spec)) {
            spec.generation += 1;
        }
        Ok(spec)
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "module {digest:?} must be sha256:<64 lower-case hex digits>"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn deploy(json: &str) -> Deploy {
        Request::parse(json.as_bytes())
            .unwrap()
            .into_deploy()
            .unwrap()
    }

    #[test]
    fn a_first_deploy_fills_in_defaults() {
        let spec = deploy(&format!(r#"{{"deploy":{{"module":"{A}"}}}}"#))
            .apply(None)
            .unwrap();
        assert_eq!(
            spec,
            Spec {
                module: A.into(),
                instances: 1,
                cpus_milli: 100,
                mem_bytes: 64 << 20,
                args: Vec::new(),
                timeout_ms: 0,
                generation: 1,
            }
        );
        let full = deploy(&format!(
            r#"{{"deploy":{{"module":"{A}","instances":3,"cpus":0.25,"mem":"32MiB","args":["--x","1"],"timeout_ms":9}}}}"#
        ))
        .apply(None)
        .unwrap();
        assert_eq!(
            (
                full.instances,
                full.cpus_milli,
                full.mem_bytes,
                full.timeout_ms
            ),
            (3, 250, 32 << 20, 9)
        );
        assert_eq!(full.args, ["--x", "1"]);
        let bytes = deploy(&format!(
            r#"{{"deploy":{{"module":"{A}","mem":1000,"args":"a  b"}}}}"#
        ))
        .apply(None)
        .unwrap();
        assert_eq!((bytes.mem_bytes, bytes.args.len()), (1000, 2));
    }

    #[test]
    fn scaling_keeps_the_generation_and_other_changes_bump_it() {
        let v1 = deploy(&format!(r#"{{"deploy":{{"module":"{A}","instances":3}}}}"#))
            .apply(None)
            .unwrap();
        let scaled = deploy(r#"{"scale":{"instances":5}}"#)
            .apply(Some(&v1))
            .unwrap();
        assert_eq!((scaled.instances, scaled.generation), (5, 1));
        let same = deploy(&format!(r#"{{"upgrade":{{"module":"{A}"}}}}"#))
            .apply(Some(&scaled))
            .unwrap();
        assert_eq!(same.generation, 1, "nothing changed");
        let v2 = deploy(&format!(r#"{{"upgrade":{{"module":"{B}"}}}}"#))
            .apply(Some(&scaled))
            .unwrap();
        assert_eq!((v2.module.as_str(), v2.instances, v2.generation), (B, 5, 2));
        let v3 = deploy(r#"{"deploy":{"cpus":0.5}}"#)
            .apply(Some(&v2))
            .unwrap();
        assert_eq!(
            (v3.cpus_milli, v3.generation, v3.module.as_str()),
            (500, 3, B)
        );
    }

    #[test]
    fn bad_requests_say_why() {
        let cases = [
            ("{", "invalid request"),
            (r#"{"launch":{}}"#, "unknown variant `launch`"),
            (r#"{"deploy":{"modul":"x"}}"#, "unknown field `modul`"),
        ];
        for (body, want) in cases {
            let err = Request::parse(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        let cases = [
            (r#"{"scale":{"instances":2}}"#.to_string(), "name a module"),
            (
                r#"{"deploy":{"module":"sha256:XY"}}"#.to_string(),
                "64 lower-case hex",
            ),
            (
                format!(r#"{{"deploy":{{"module":"{A}","instances":5000}}}}"#),
                "at most 1000",
            ),
            (
                format!(r#"{{"deploy":{{"module":"{A}","mem":"lots"}}}}"#),
                "not a size",
            ),
            (
                format!(r#"{{"deploy":{{"module":"{A}","mem":0}}}}"#),
                "more than 0",
            ),
            (
                format!(r#"{{"deploy":{{"module":"{A}","cpus":-1}}}}"#),
                "cpus",
            ),
        ];
        for (body, want) in cases {
            let err = deploy(&body).apply(None).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        for status in ["", " status ", r#"{"status":{}}"#] {
            assert_eq!(
                Request::parse(status.as_bytes()).unwrap(),
                Request::Status(Nothing {})
            );
        }
    }

    #[test]
    fn config_seeds_a_deploy() {
        let info = Registration {
            framework_id: "fw".into(),
            name: "web".into(),
            role: "r".into(),
            config: [
                ("module", A),
                ("instances", "2"),
                ("cpus", "0.2"),
                ("mem", "16MiB"),
                ("args", "--sleep-ms 600000"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            reregistered: false,
        };
        let spec = Deploy::from_config(&info)
            .unwrap()
            .unwrap()
            .apply(None)
            .unwrap();
        assert_eq!(
            (spec.instances, spec.cpus_milli, spec.mem_bytes),
            (2, 200, 16 << 20)
        );
        assert_eq!(spec.args, ["--sleep-ms", "600000"]);
        let empty = Registration {
            config: Vec::new(),
            ..info.clone()
        };
        assert_eq!(Deploy::from_config(&empty), Ok(None));
        let bad = Registration {
            config: vec![
                ("module".into(), A.into()),
                ("instances".into(), "x".into()),
            ],
            ..info
        };
        assert!(Deploy::from_config(&bad).unwrap_err().contains("instances"));
    }
}
