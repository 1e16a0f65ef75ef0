//! The wasmtime engines every task on an agent shares: their configuration
//! (`RuntimeConfig`), the pooling allocators, and the epoch ticker thread
//! that makes busy tasks yield and lets timeouts fire.
//!
//! There are two engines, and the choice between them is [`Metering`]:
//! fuel metering makes compiled code count every basic block, which slows
//! compute-heavy code (see `BENCHMARKS.md` for the figures), so only tasks
//! that ask for a fuel limit pay for it. Everything else runs on an
//! epoch-only engine, where time slices, timeouts and kills still work
//! through epoch interruption but no fuel is counted.

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

/// Which of the runtime's two engines compiles a program and runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metering {
    /// Epoch interruption only: the fastest code. Fuel is neither counted
    /// nor limited, so such tasks report `fuel_consumed = 0`.
    EpochOnly,
    /// Fuel metering as well: for tasks with a fuel budget (and callers who
    /// want fuel counted).
    Fuel,
}

impl Metering {
    /// Both engines, in the order the runtime keeps them.
    pub const ALL: [Metering; 2] = [Metering::EpochOnly, Metering::Fuel];

    /// The engine a task with this fuel budget needs: fuel only when it has
    /// a budget.
    pub fn for_fuel(fuel: Option<u64>) -> Metering {
        if fuel.is_some() {
            Metering::Fuel
        } else {
            Metering::EpochOnly
        }
    }

    /// `epoch-only` or `fuel`.
    pub fn name(self) -> &'static str {
        match self {
            Metering::EpochOnly => "epoch-only",
            Metering::Fuel => "fuel",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Metering::EpochOnly => 0,
            Metering::Fuel => 1,
        }
    }
}

impl std::fmt::Display for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// The epoch-only engine's allocator. `Some`: the pooling allocator
    /// (the default); `None`: allocate each task's memories and stacks on
    /// demand.
    pub pooling: Option<PoolingConfig>,
    /// The fuel engine's allocator, sized separately: every pool slot costs
    /// memory mappings up front (two per stack), and tasks with a fuel
    /// limit are expected to be the minority.
    pub metered_pooling: Option<PoolingConfig>,
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
    /// bytes and engine settings, so the two engines never share an entry).
    /// Loading compiled code from disk trusts it completely, so the runtime
    /// creates this directory private (0700) and refuses one that another
    /// user could write (see [`RuntimeError::UnsafeCacheDir`]). `None`:
    /// compile again after a restart.
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
            metered_pooling: Some(PoolingConfig::with_max_tasks(250)),
            max_wasm_stack: 512 * KIB as usize,
            async_stack_size: 2 * MIB as usize,
            max_cached_programs: 256,
            compile_cache_dir: None,
        }
    }
}

impl RuntimeConfig {
    /// This configuration with pools for `max_tasks` tasks without a fuel
    /// limit and `max_metered_tasks` with one (keeping on-demand allocation
    /// where it was chosen), and `max_memory_bytes` lowered, if need be, so
    /// that every slot of both pools fits the address space the pools may
    /// reserve.
    pub fn with_max_tasks(mut self, max_tasks: u32, max_metered_tasks: u32) -> RuntimeConfig {
        if self.pooling.is_some() {
            self.pooling = Some(PoolingConfig::with_max_tasks(max_tasks));
        }
        if self.metered_pooling.is_some() {
            self.metered_pooling = Some(PoolingConfig::with_max_tasks(max_metered_tasks));
        }
        if let Some(per_slot) = MAX_POOL_RESERVATION.checked_div(self.pooled_memories()) {
            let fits = per_slot.saturating_sub(MEMORY_GUARD) / WASM_PAGE * WASM_PAGE;
            self.max_memory_bytes = self.max_memory_bytes.min(fits.max(WASM_PAGE));
        }
        self
    }

    /// Linear memory slots across both pools.
    fn pooled_memories(&self) -> u64 {
        [&self.pooling, &self.metered_pooling]
            .into_iter()
            .flatten()
            .map(|p| u64::from(p.max_memories.max(p.max_tasks)))
            .sum()
    }

    /// Fiber stack slots across both pools (each costs two memory mappings
    /// for as long as the runtime lives).
    pub fn pooled_stacks(&self) -> u64 {
        [&self.pooling, &self.metered_pooling]
            .into_iter()
            .flatten()
            .map(|p| u64::from(p.max_tasks))
            .sum()
    }

    /// The pool (if any) of the engine for `metering`.
    pub fn pool(&self, metering: Metering) -> Option<&PoolingConfig> {
        match metering {
            Metering::EpochOnly => self.pooling.as_ref(),
            Metering::Fuel => self.metered_pooling.as_ref(),
        }
    }
}

/// Sizes of the pooling allocator. Everything is reserved once, when the
/// runtime starts: a slot per concurrent task, so the count of memory
/// mappings stays bounded (two per stack slot from the start, two more per
/// running task: see [`capacity`](crate::capacity)) however many tasks
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
    /// Bytes of each linear memory (and table) slot kept resident (reset
    /// by copying rather than returned to the kernel) when a task ends: the
    /// next task in the slot takes no page faults there and the end costs
    /// no `madvise`. 64 KiB (the default) more than doubled the rate of
    /// trivial launches (see BENCHMARKS.md); the price is RSS, at most this
    /// much per slot ever used (with `PAGEMAP_SCAN`, only the pages a task
    /// touched).
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
            memory_keep_resident: 64 * KIB as usize,
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

/// A WebAssembly page: memory sizes are multiples of it.
const WASM_PAGE: u64 = 64 * KIB;

/// Checks what both engines share: limits, and that both pools together fit
/// the address space they may reserve.
pub(crate) fn check_config(config: &RuntimeConfig) -> Result<(), RuntimeError> {
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

    for pool in [&config.pooling, &config.metered_pooling]
        .into_iter()
        .flatten()
    {
        if pool.max_tasks == 0 {
            return bad("pooling.max_tasks must be at least 1".into());
        }
    }
    let memories = config.pooled_memories();
    let reserved = memories.saturating_mul(config.max_memory_bytes + MEMORY_GUARD);
    if reserved > MAX_POOL_RESERVATION {
        return bad(format!(
            "the pooling allocators would reserve {} of address space \
             ({memories} memories of {} each): lower the task counts \
             or max_memory_bytes",
            wasmesos_api::format_size(reserved),
            wasmesos_api::format_size(config.max_memory_bytes)
        ));
    }
    Ok(())
}

/// Builds the engine for `metering`: Cranelift, epoch interruption, fuel if
/// asked, the pooling (or on-demand) allocator. Call [`check_config`] first.
pub(crate) fn build_engine(
    config: &RuntimeConfig,
    metering: Metering,
) -> Result<Engine, RuntimeError> {
    let mut wt = Config::new();
    wt.consume_fuel(metering == Metering::Fuel)
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

    match config.pool(metering) {
        Some(pool) => {
            // A slot is exactly the largest memory any task may have, so a
            // memory never moves and the slab is one reservation.
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
                .linear_memory_keep_resident(pool.memory_keep_resident)
                .table_keep_resident(pool.memory_keep_resident)
                // Reset only the pages a task touched (Linux 6.7+; where the
                // kernel lacks it, the whole kept prefix is reset), so a
                // freed slot keeps resident only what its task used of the
                // first `memory_keep_resident` bytes.
                .pagemap_scan(wasmtime::Enabled::Auto);
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

    Engine::new(&wt)
        .map_err(|e| RuntimeError::Config(format!("wasmtime engine ({}): {e:#}", metering.name())))
}

/// Advances the engines' epochs every tick until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engines: Vec<Engine>, tick: Duration) -> Result<EpochTicker, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("wasmesos-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::park_timeout(tick);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
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
        let built = check_config(&config).and_then(|()| build_engine(&config, Metering::Fuel));
        match built {
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

    #[test]
    fn sizing_for_many_tasks_shrinks_slots_to_fit_the_address_space() {
        let config = RuntimeConfig::default().with_max_tasks(10_000, 2_500);
        assert!(config.max_memory_bytes < 4 * GIB);
        assert_eq!(config.max_memory_bytes % WASM_PAGE, 0);
        assert_eq!(config.pooled_stacks(), 12_500);
        check_config(&config).unwrap();
        // Few tasks keep the full 4 GiB slots.
        let small = RuntimeConfig::default().with_max_tasks(100, 10);
        assert_eq!(small.max_memory_bytes, 4 * GIB);
        check_config(&small).unwrap();
    }
}
