//! Limits every scheduler callback runs under, with their defaults.

use std::time::Duration;

/// Limits of the scheduler host. Each applies per framework.
#[derive(Clone, Debug)]
pub struct SchedHostConfig {
    /// Cap on the scheduler's linear memory. 64 MiB holds the state of a
    /// busy queue many times over; a component that needs more is likely
    /// leaking.
    pub memory_bytes: u64,
    /// Cap on table elements (function references), for the same reason.
    pub table_elements: usize,
    /// Fuel (≈ wasm instructions) one callback may burn: about a second of
    /// compute, far above what turning 10,000 offers into decisions takes.
    pub fuel_per_callback: u64,
    /// Wall time one callback may take, enforced by epoch interruption.
    pub callback_timeout: Duration,
    /// How often the epoch advances: the granularity of the time limit and
    /// of yields to other work on the master's threads.
    pub epoch_tick: Duration,
    /// Bytes of keys and values a framework may keep in its durable state.
    pub kv_quota_bytes: usize,
    /// Bytes of log lines kept per callback; the rest are counted and dropped.
    pub log_bytes_per_callback: usize,
    /// Callback time a framework may use per second (a token bucket over
    /// one second); past it, its next callback waits. Keeps one busy
    /// framework from taking the scheduler workers from the others.
    pub cpu_per_second: Duration,
    /// Threads that run scheduler callbacks, apart from the master's
    /// network and store work.
    pub worker_threads: usize,
    /// Compiled components are kept here across restarts (a large component
    /// takes seconds to compile). `None`: compile on every start.
    pub compile_cache_dir: Option<std::path::PathBuf>,
}

impl Default for SchedHostConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            fuel_per_callback: 2_000_000_000,
            callback_timeout: Duration::from_secs(1),
            epoch_tick: Duration::from_millis(10),
            kv_quota_bytes: 64 << 20,
            log_bytes_per_callback: 64 << 10,
            cpu_per_second: Duration::from_millis(500),
            worker_threads: 2,
            compile_cache_dir: None,
        }
    }
}
