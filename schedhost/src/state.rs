//! What a scheduler's wasmtime store holds: its durable key-value state (as
//! committed, plus the current callback's uncommitted writes), the log lines
//! of the current callback, a WASI context granting nothing (its stderr is
//! kept to explain traps, see [`crate::stderr`]), and the memory limiter.
//! The host imports (`state`, `log`, `clock`) are implemented here; they
//! answer from memory and never wait.

use std::collections::BTreeMap;
use std::ops::Bound;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wasmesos::scheduler::{clock, log, state, types};
use crate::config::SchedHostConfig;
use crate::stderr::GuestStderr;

/// Longest key accepted by `state.set`.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value accepted by `state.set`.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A log line written by a scheduler during one callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Levels of the scheduler's `log` import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One key-value write of a callback: `None` deletes.
pub type KvWrite = (String, Option<Vec<u8>>);

pub struct SchedState {
    /// A fixed time for the `clock` import (the offline harness's simulated
    /// clock); `None`: the real clock.
    pub(crate) clock: Option<u64>,
    /// The committed key-value state.
    kv: BTreeMap<String, Vec<u8>>,
    /// Bytes of keys and values in `kv`, for the quota.
    kv_bytes: usize,
    /// Writes of the callback in progress (`None` = deleted).
    pending: BTreeMap<String, Option<Vec<u8>>>,
    kv_quota_bytes: usize,
    logs: Vec<LogLine>,
    log_bytes: usize,
    max_log_bytes: usize,
    logs_dropped: u64,
    /// The guest's stderr: read when a callback traps, cleared before each.
    pub(crate) stderr: GuestStderr,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl SchedState {
    pub fn new(config: &SchedHostConfig, kv: BTreeMap<String, Vec<u8>>) -> Self {
        let kv_bytes = kv.iter().map(|(k, v)| k.len() + v.len()).sum();
        let stderr = GuestStderr::default();
        Self {
            clock: None,
            kv,
            kv_bytes,
            pending: BTreeMap::new(),
            kv_quota_bytes: config.kv_quota_bytes,
            logs: Vec::new(),
            log_bytes: 0,
            max_log_bytes: config.log_bytes_per_callback,
            logs_dropped: 0,
            // Nothing granted: no args, env, files or network; stdin and
            // stdout closed. Only stderr is kept, for trap messages.
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            stderr,
            table: ResourceTable::new(),
        }
    }

    /// Ends a callback: its writes become part of the committed view (the
    /// caller commits them to the store, or throws this instance away) and
    /// are returned with its log lines.
    pub(crate) fn finish_callback(&mut self) -> (Vec<KvWrite>, Vec<LogLine>, u64) {
        let writes: Vec<KvWrite> = std::mem::take(&mut self.pending).into_iter().collect();
        for (key, value) in &writes {
            if let Some(old) = self.kv.remove(key) {
                self.kv_bytes -= key.len() + old.len();
            }
            if let Some(v) = value {
                self.kv_bytes += key.len() + v.len();
                self.kv.insert(key.clone(), v.clone());
            }
        }
        let logs = std::mem::take(&mut self.logs);
        self.log_bytes = 0;
        let dropped = std::mem::take(&mut self.logs_dropped);
        (writes, logs, dropped)
    }

    /// Forgets the writes and logs of a callback that failed.
    pub(crate) fn abort_callback(&mut self) {
        self.pending.clear();
        self.logs.clear();
        self.log_bytes = 0;
        self.logs_dropped = 0;
    }

    fn read(&self, key: &str) -> Option<&Vec<u8>> {
        match self.pending.get(key) {
            Some(v) => v.as_ref(),
            None => self.kv.get(key),
        }
    }

    /// Bytes the state would take with the pending writes applied.
    fn projected_bytes(&self, key: &str, new_len: usize) -> usize {
        let old = self.read(key).map(|v| key.len() + v.len()).unwrap_or(0);
        let mut total = self.kv_bytes;
        for (k, v) in &self.pending {
            let committed = self.kv.get(k).map(|c| k.len() + c.len()).unwrap_or(0);
            let pending = v.as_ref().map(|p| k.len() + p.len()).unwrap_or(0);
            total = total + pending - committed;
        }
        total - old + key.len() + new_len
    }
}

impl WasiView for SchedState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for SchedState {}

impl state::Host for SchedState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.read(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "state key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
                key.len()
            ));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "state value for '{key}' is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ));
        }
        let projected = self.projected_bytes(&key, value.len());
        if projected > self.kv_quota_bytes {
            return Err(format!(
                "state quota exceeded: {projected} bytes would be stored, the quota is {}; delete keys you no longer need",
                self.kv_quota_bytes
            ));
        }
        self.pending.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        if self.kv.contains_key(&key) {
            self.pending.insert(key, None);
        } else {
            self.pending.remove(&key);
        }
    }

    fn list(&mut self, prefix: String, after: String, limit: u32) -> Vec<String> {
        let start = if after.is_empty() || after < prefix {
            Bound::Included(prefix.clone())
        } else {
            Bound::Excluded(after)
        };
        let limit = if limit == 0 { u32::MAX } else { limit } as usize;
        let committed = self
            .kv
            .range::<String, _>((start.clone(), Bound::Unbounded))
            .map(|(k, _)| k);
        let pending = self
            .pending
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(k, _)| k);
        // Merge the two ordered key streams, letting pending writes win.
        let mut keys: Vec<&String> = committed
            .take_while(|k| k.starts_with(&prefix))
            .chain(pending.take_while(|k| k.starts_with(&prefix)))
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| self.read(k).is_some())
            .take(limit)
            .cloned()
            .collect()
    }
}

impl log::Host for SchedState {
    fn write(&mut self, level: types::Level, message: String) {
        if self.log_bytes + message.len() > self.max_log_bytes {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
        let level = match level {
            types::Level::Trace => LogLevel::Trace,
            types::Level::Debug => LogLevel::Debug,
            types::Level::Info => LogLevel::Info,
            types::Level::Warn => LogLevel::Warn,
            types::Level::Error => LogLevel::Error,
        };
        self.logs.push(LogLine { level, message });
    }
}

impl clock::Host for SchedState {
    fn now_ms(&mut self) -> u64 {
        self.clock
            .unwrap_or_else(|| wasmesos_api::now_ms().max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Host as _;

    fn state_with(entries: &[(&str, &str)]) -> SchedState {
        let kv = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        SchedState::new(&SchedHostConfig::default(), kv)
    }

    #[test]
    fn reads_see_own_writes_and_deletes() {
        let mut s = state_with(&[("a", "1"), ("b", "2")]);
        s.set("a".into(), b"9".to_vec()).unwrap();
        s.delete("b".into());
        s.set("c".into(), b"3".to_vec()).unwrap();
        assert_eq!(s.get("a".into()), Some(b"9".to_vec()));
        assert_eq!(s.get("b".into()), None);
        assert_eq!(s.list(String::new(), String::new(), 0), vec!["a", "c"]);
        let (writes, _, _) = s.finish_callback();
        assert_eq!(writes.len(), 3);
        assert_eq!(s.get("b".into()), None);
        assert_eq!(s.get("c".into()), Some(b"3".to_vec()));
    }

    #[test]
    fn list_pages_by_prefix() {
        let mut s = state_with(&[("q/1", ""), ("q/2", ""), ("r/1", "")]);
        s.set("q/3".into(), vec![]).unwrap();
        assert_eq!(s.list("q/".into(), String::new(), 2), vec!["q/1", "q/2"]);
        assert_eq!(s.list("q/".into(), "q/2".into(), 2), vec!["q/3"]);
        assert!(s.list("z/".into(), String::new(), 0).is_empty());
    }

    #[test]
    fn abort_forgets_the_callback() {
        let mut s = state_with(&[("a", "1")]);
        s.set("a".into(), b"2".to_vec()).unwrap();
        s.abort_callback();
        assert_eq!(s.get("a".into()), Some(b"1".to_vec()));
    }

    #[test]
    fn limits_are_enforced_with_reasons() {
        let config = SchedHostConfig {
            kv_quota_bytes: 100,
            ..SchedHostConfig::default()
        };
        let mut s = SchedState::new(&config, BTreeMap::new());
        assert!(s.set(String::new(), vec![]).is_err());
        assert!(
            s.set("k".into(), vec![0; MAX_VALUE_BYTES + 1])
                .unwrap_err()
                .contains("limit")
        );
        s.set("k".into(), vec![0; 90]).unwrap();
        // Overwriting the same key does not count twice.
        s.set("k".into(), vec![0; 95]).unwrap();
        let err = s.set("j".into(), vec![0; 10]).unwrap_err();
        assert!(err.contains("quota"), "{err}");
        s.delete("k".into());
        s.set("j".into(), vec![0; 10]).unwrap();
    }
}
