//! Newtype identifiers. Each is a short string of `[A-Za-z0-9._-]`, so that
//! it can be embedded in store keys (`/`-separated) and file names safely.

use std::fmt;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} '{value}' is longer than {max} characters")]
    TooLong {
        kind: &'static str,
        value: String,
        max: usize,
    },
    #[error(
        "{kind} '{value}' may contain only letters, digits, '.', '_' and '-' (and must not start with '.')"
    )]
    BadChar { kind: &'static str, value: String },
}

/// Longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 128;

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            value: value.to_string(),
            max: MAX_ID_LEN,
        });
    }
    let ok = !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(IdError::BadChar {
            kind,
            value: value.to_string(),
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An agent, assigned by the master at first registration.
    AgentId,
    "agent id"
);
id_type!(
    /// A framework, assigned by the master when it is deployed.
    FrameworkId,
    "framework id"
);
id_type!(
    /// A task, chosen by its framework; unique within the framework.
    TaskId,
    "task id"
);
id_type!(
    /// A submitted job; its attempts are tasks named `JOB.1`, `JOB.2`, ...
    JobId,
    "job id"
);
id_type!(
    /// An offer of one agent's resources to one framework; lives in memory only.
    OfferId,
    "offer id"
);
id_type!(
    /// A tenant: the owner of frameworks, jobs, tasks and modules.
    TenantId,
    "tenant"
);

impl JobId {
    /// The task id of attempt `n` (1-based) of this job.
    pub fn attempt(&self, n: u32) -> TaskId {
        TaskId(format!("{}.{n}", self.0))
    }
}

impl TaskId {
    /// The job this task is an attempt of, if it is named `JOB.N`.
    pub fn job(&self) -> Option<JobId> {
        let (job, n) = self.0.rsplit_once('.')?;
        n.parse::<u32>().ok()?;
        JobId::new(job).ok()
    }
}

impl TenantId {
    /// The tenant that owns everything until tenancy arrives, and the
    /// operator's own objects.
    pub fn default_tenant() -> Self {
        Self("default".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        assert_eq!(TaskId::new("job-1.2").unwrap().as_str(), "job-1.2");
        assert!(AgentId::new("a_B-9").is_ok());
    }

    #[test]
    fn rejects_what_would_break_keys_or_paths() {
        for bad in ["", "a/b", "..", ".hidden", "a b", "ä", "a:b"] {
            assert!(TaskId::new(bad).is_err(), "{bad:?} accepted");
        }
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(matches!(TaskId::new(long), Err(IdError::TooLong { .. })));
    }

    #[test]
    fn job_attempts_round_trip() {
        let job = JobId::new("job-42").unwrap();
        let task = job.attempt(3);
        assert_eq!(task.as_str(), "job-42.3");
        assert_eq!(task.job(), Some(job));
        assert_eq!(TaskId::new("web").unwrap().job(), None);
        assert_eq!(TaskId::new("a.b").unwrap().job(), None);
    }

    #[test]
    fn serde_validates() {
        let ok: TaskId = serde_json::from_str("\"t.1\"").unwrap();
        assert_eq!(ok.as_str(), "t.1");
        assert!(serde_json::from_str::<TaskId>("\"a/b\"").is_err());
    }
}
