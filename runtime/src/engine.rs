//! The wasmtime engine every task on an agent shares: its configuration
//! (`RuntimeConfig`), the pooling allocator, and the epoch ticker thread that
//! makes busy tasks yield and lets timeouts fire.

use crate::error::RuntimeError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The most address space the pooling allocator may reserve up front. x86-64
/// gives a process 128 TiB; half of it leaves room for everything else.
const MAX_POOL_RESERVATION: u64 = 64 * TIB;

/// Settings of a [`Runtime`](crate::Runtime). `Default` gives the production
/// values.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Wall-time limit of a task whose [`RunSpec`](crate::RunSpec) sets none.
    pub default_timeout: Duration,
    /// Bytes kept per log stream when the agent sets no other cap (the agent
    /// passes it to [`LogFile::create`](crate::LogFile::create)).
    pub default_log_bytes: u64,
    /// How often the epoch advances: the time slice after which a busy task
    /// yields to others, and the resolution of timeouts and kills.
    pub epoch_tick: Duration,
    /// Cap on any task's memory (linear memories plus tables), whatever its
    /// spec asks for. With the pooling allocator this is also the size of the
    /// address-space slot reserved for each linear memory.
    pub max_memory_bytes: u64,
    /// `Some`: the pooling allocator (the default); `None`: allocate each
    /// task's memories and stacks on demand.
    pub pooling: Option<PoolingConfig>,
    /// Native stack available to WebAssembly frames; deeper recursion traps
    /// with "stack overflow".
    pub max_wasm_stack: usize,
    /// Size of each task's fiber stack: `max_wasm_stack` plus room for the
    /// host functions (WASI) that run on it. Address space only: a stack
    /// costs RAM for the pages it touches.
    pub async_stack_size: usize,
    /// Compiled programs kept in memory; the least recently used one is
    /// forgotten beyond this.
    pub max_cached_programs: usize,
    /// Where wasmtime keeps compiled code between restarts (keyed by module
    /// bytes and engine settings). `None`: compile again after a restart.
    pub compile_cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_timeout: Duration::from_secs(3600),
            default_log_bytes: 10 * MIB,
            epoch_tick: Duration::from_millis(10),
            max_memory_bytes: 4 * GIB,
            pooling: Some(PoolingConfig::default()),
            max_wasm_stack: 512 * KIB as usize,
            async_stack_size: 2 * MIB as usize,
            max_cached_programs: 256,
            compile_cache_dir: None,
        }
    }
}

/// Sizes of the pooling allocator. Everything is reserved once, when the
/// runtime starts: a slot per concurrent task, so the count of memory
/// mappings stays bounded (about five per running task) however many tasks
/// come and go.
#[derive(Debug, Clone)]
pub struct PoolingConfig {
    /// Tasks that can run at once. One more fails to instantiate with
    /// [`RuntimeError::AtCapacity`].
    pub max_tasks: u32,
    /// Linear memories across all running tasks. A module task uses one; a
    /// component may use several. Each reserves `max_memory_bytes` plus a
    /// 64 KiB guard of address space (not of RAM).
    pub max_memories: u32,
    /// Core instances across all running tasks (a component has several).
    pub max_core_instances: u32,
    /// Tables across all running tasks.
    pub max_tables: u32,
    /// Elements of any one table.
    pub max_table_elements: usize,
    /// Bytes of each linear memory slot kept resident (zeroed by `memset`
    /// rather than returned to the kernel) when a task ends: makes the next
    /// small task cheaper at the price of RSS.
    pub memory_keep_resident: usize,
}

impl PoolingConfig {
    /// A pool for `max_tasks` concurrent tasks, with room for components'
    /// extra memories, instances and tables.
    pub fn with_max_tasks(max_tasks: u32) -> PoolingConfig {
        PoolingConfig {
            max_tasks,
            max_memories: max_tasks.saturating_mul(2),
            max_core_instances: max_tasks.saturating_mul(4),
            max_tables: max_tasks.saturating_mul(4),
            max_table_elements: 20_000,
            memory_keep_resident: 0,
        }
    }
}

impl Default for PoolingConfig {
    fn default() -> Self {
        PoolingConfig::with_max_tasks(1000)
    }
}

/// Guard region after each linear memory: loads and stores with a static
/// offset below it need no bounds check.
const MEMORY_GUARD: u64 = 64 * KIB;

/// Builds the engine: Cranelift, fuel metering, epoch interruption, the
/// pooling (or on-demand) allocator.
pub(crate) fn build_engine(config: &RuntimeConfig) -> Result<Engine, RuntimeError> {
    let bad = |what: String| Err(RuntimeError::Config(what));
    if config.epoch_tick.is_zero() {
        return bad("epoch_tick must be greater than zero".into());
    }
    if config.max_memory_bytes < 64 * KIB || config.max_memory_bytes > 4 * GIB {
        return bad(format!(
            "max_memory_bytes is {}: it must be between 64KiB and 4GiB (32-bit WebAssembly)",
            config.max_memory_bytes
        ));
    }
    if config.async_stack_size <= config.max_wasm_stack {
        return bad(format!(
            "async_stack_size ({}) must exceed max_wasm_stack ({}) to leave room for host calls",
            config.async_stack_size, config.max_wasm_stack
        ));
    }

    let mut wt = Config::new();
    wt.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .async_stack_size(config.async_stack_size)
        // Shared memories escape the per-task limiter; tasks are single threaded.
        .wasm_threads(false)
        // No collector is compiled in (the GC proposal needs wasmtime's
        // `gc-drc` feature); reference types still work without it.
        .gc_support(false)
        .memory_guard_size(MEMORY_GUARD)
        .guard_before_linear_memory(false);

    match &config.pooling {
        Some(pool) => {
            // A slot is exactly the largest memory any task may have, so a
            // memory never moves and the slab is one reservation.
            let reserved = u64::from(pool.max_memories) * (config.max_memory_bytes + MEMORY_GUARD);
            if reserved > MAX_POOL_RESERVATION {
                return bad(format!(
                    "the pooling allocator would reserve {} of address space \
                     ({} memories of {} each): lower pooling.max_tasks/max_memories \
                     or max_memory_bytes",
                    wasmesos_api::format_size(reserved),
                    pool.max_memories,
                    wasmesos_api::format_size(config.max_memory_bytes)
                ));
            }
            if pool.max_tasks == 0 {
                return bad("pooling.max_tasks must be at least 1".into());
            }
            let slot = usize::try_from(config.max_memory_bytes)
                .map_err(|_| RuntimeError::Config("max_memory_bytes too large".into()))?;
            wt.memory_reservation(config.max_memory_bytes)
                .memory_reservation_for_growth(0)
                .memory_may_move(false);
            let mut p = PoolingAllocationConfig::new();
            p.total_component_instances(pool.max_tasks)
                .total_stacks(pool.max_tasks)
                .total_core_instances(pool.max_core_instances.max(pool.max_tasks))
                .total_memories(pool.max_memories.max(pool.max_tasks))
                .total_tables(pool.max_tables.max(pool.max_tasks))
                .table_elements(pool.max_table_elements)
                .max_memory_size(slot)
                .linear_memory_keep_resident(pool.memory_keep_resident);
            wt.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
        None => {
            // On demand: a small reservation per memory (growth beyond it
            // moves the memory), so thousands of tasks do not reserve
            // gigabytes of address space each.
            wt.memory_reservation(16 * MIB)
                .memory_reservation_for_growth(64 * MIB)
                .memory_may_move(true);
        }
    }

    if let Some(dir) = &config.compile_cache_dir {
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(dir);
        let cache = wasmtime::Cache::new(cc).map_err(|e| {
            RuntimeError::Config(format!(
                "compile cache in {} cannot be used: {e}",
                dir.display()
            ))
        })?;
        wt.cache(Some(cache));
    }

    Engine::new(&wt).map_err(|e| RuntimeError::Config(format!("wasmtime engine: {e:#}")))
}

/// Advances the engine's epoch every tick until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<EpochTicker, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("wasmesos-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Config(format!("cannot start the epoch thread: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(config: RuntimeConfig) -> String {
        match build_engine(&config) {
            Ok(_) => panic!("expected a configuration error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_configurations_that_cannot_work() {
        let err = error_of(RuntimeConfig {
            pooling: Some(PoolingConfig::with_max_tasks(100_000)),
            ..RuntimeConfig::default()
        });
        assert!(err.contains("address space"), "{err}");
        let err = error_of(RuntimeConfig {
            max_memory_bytes: 8 * GIB,
            ..RuntimeConfig::default()
        });
        assert!(err.contains("max_memory_bytes"), "{err}");
        let err = error_of(RuntimeConfig {
            async_stack_size: 256 * KIB as usize,
            ..RuntimeConfig::default()
        });
        assert!(err.contains("async_stack_size"), "{err}");
    }
}
