//! What the master gives a scheduler besides events: durable key-value
//! state, a log and a clock. [`Host`] puts a trait over those imports so a
//! scheduler's decision logic can run against [`Imports`] inside the master
//! and against [`MemoryHost`] in native unit tests.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Level;
use crate::bindings::wasmesos::scheduler::{clock, log, state};

/// Longest key the master accepts (see `wit/scheduler.wit`).
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value the master accepts.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum HostError {
    /// The host refused a write (a key or value over its limit).
    Refused { key: String, reason: String },
    /// A value could not be encoded to, or decoded from, JSON.
    Json { key: String, reason: String },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Refused { key, reason } => write!(f, "state refused key {key:?}: {reason}"),
            HostError::Json { key, reason } => write!(f, "bad JSON under key {key:?}: {reason}"),
        }
    }
}

impl std::error::Error for HostError {}

/// The imports of the `scheduler` world, plus typed helpers over them.
pub trait Host {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`; it commits with the callback.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Removes `key` (a missing key is not an error).
    fn delete(&mut self, key: &str);
    /// Up to `limit` keys starting with `prefix`, in order, after `after`
    /// (exclusive; empty = from the start).
    fn list(&self, prefix: &str, after: &str, limit: u32) -> Vec<String>;
    /// Writes to the framework's log, kept by the master.
    fn log(&mut self, level: Level, message: &str);
    /// Milliseconds since the Unix epoch, as the master sees it.
    fn now_ms(&self) -> u64;

    /// The JSON value under `key`, decoded; `Ok(None)` when absent.
    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HostError> {
        match self.get(key) {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| HostError::Json {
                    key: key.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Stores `value` as JSON under `key`.
    fn set_json<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), HostError> {
        let bytes = serde_json::to_vec(value).map_err(|e| HostError::Json {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.set(key, &bytes)
    }

    /// Every key starting with `prefix`, in order, read page by page.
    fn list_all(&self, prefix: &str) -> Vec<String> {
        const PAGE: u32 = 1000;
        let mut keys: Vec<String> = Vec::new();
        loop {
            let after = keys.last().map(String::as_str).unwrap_or("");
            let page = self.list(prefix, after, PAGE);
            let done = page.len() < PAGE as usize;
            keys.extend(page);
            if done {
                return keys;
            }
        }
    }

    fn debug(&mut self, message: &str) {
        self.log(Level::Debug, message)
    }
    fn info(&mut self, message: &str) {
        self.log(Level::Info, message)
    }
    fn warn(&mut self, message: &str) {
        self.log(Level::Warn, message)
    }
    fn error(&mut self, message: &str) {
        self.log(Level::Error, message)
    }
}

/// The real imports, answered by the master. Calling them outside a wasm
/// guest panics (wit-bindgen's native fallback), hence [`MemoryHost`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Imports;

impl Host for Imports {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        state::get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        state::set(key, value).map_err(|reason| HostError::Refused {
            key: key.to_string(),
            reason,
        })
    }
    fn delete(&mut self, key: &str) {
        state::delete(key)
    }
    fn list(&self, prefix: &str, after: &str, limit: u32) -> Vec<String> {
        state::list(prefix, after, limit)
    }
    fn log(&mut self, level: Level, message: &str) {
        log::write(level, message)
    }
    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }
}

/// An in-memory host for tests, with the master's key and value limits.
#[derive(Debug, Default, Clone)]
pub struct MemoryHost {
    pub state: BTreeMap<String, Vec<u8>>,
    pub logs: Vec<(Level, String)>,
    pub now_ms: u64,
}

impl Host for MemoryHost {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        let refuse = |reason: String| {
            Err(HostError::Refused {
                key: key.to_string(),
                reason,
            })
        };
        if key.len() > MAX_KEY_BYTES {
            return refuse(format!("key longer than {MAX_KEY_BYTES} bytes"));
        }
        if value.len() > MAX_VALUE_BYTES {
            return refuse(format!("value larger than {MAX_VALUE_BYTES} bytes"));
        }
        self.state.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&mut self, key: &str) {
        self.state.remove(key);
    }
    fn list(&self, prefix: &str, after: &str, limit: u32) -> Vec<String> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = if after.is_empty() {
            Included(prefix.to_string())
        } else {
            Excluded(after.to_string())
        };
        self.state
            .range::<String, _>((start, Unbounded))
            .map(|(k, _)| k)
            .skip_while(|k| k.as_str() < prefix)
            .take_while(|k| k.starts_with(prefix))
            .take(limit as usize)
            .cloned()
            .collect()
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_by_prefix() {
        let mut h = MemoryHost::default();
        for k in ["a", "q/1", "q/2", "q/3", "r/1"] {
            h.set(k, b"x").unwrap();
        }
        assert_eq!(h.list("q/", "", 2), ["q/1", "q/2"]);
        assert_eq!(h.list("q/", "q/2", 10), ["q/3"]);
        assert_eq!(h.list("q/", "a", 10), ["q/1", "q/2", "q/3"]);
        assert_eq!(h.list_all("q/"), ["q/1", "q/2", "q/3"]);
        assert!(h.list("z", "", 10).is_empty());
    }

    #[test]
    fn list_all_crosses_pages() {
        let mut h = MemoryHost::default();
        for i in 0..2500 {
            h.set(&format!("k/{i:05}"), b"").unwrap();
        }
        let keys = h.list_all("k/");
        assert_eq!(keys.len(), 2500);
        assert_eq!(keys[1000], "k/01000");
    }

    #[test]
    fn json_round_trip_and_errors() {
        let mut h = MemoryHost::default();
        h.set_json("n", &vec![1, 2, 3]).unwrap();
        assert_eq!(h.get_json::<Vec<u32>>("n").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(h.get_json::<u32>("missing").unwrap(), None);
        assert!(matches!(
            h.get_json::<u32>("n"),
            Err(HostError::Json { .. })
        ));
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(h.set("big", &big), Err(HostError::Refused { .. })));
    }
}
