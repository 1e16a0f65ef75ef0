//! [`Runtime`]: the engine, the WASI linkers, the program cache and the
//! epoch ticker, shared by every task on the agent.

use crate::engine::{EpochTicker, RuntimeConfig, build_engine};
use crate::error::{InstantiateError, RuntimeError};
use crate::limits::TaskLimiter;
use crate::program::{self, CacheStats, Pre, Program, ProgramCache};
use crate::run::{Ended, Entry, Instance, Meter, RunOutcome, RunSpec, TaskLogs, conclude, race};
use crate::sandbox::{ComponentState, HasLimits, ModuleState, World, wasi_builder};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmesos_api::Digest;
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::{Engine, Linker, PoolConcurrencyLimitError, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{I32Exit, ResourceTable};

/// Fuel between two yields: a few milliseconds of computation, and the
/// error bound of `fuel_consumed` for a task stopped from outside.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Runs tasks. Cheap to clone: all clones share one engine, one cache and
/// one epoch thread, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    engine: Engine,
    modules: Linker<ModuleState>,
    components: ComponentLinker<ComponentState>,
    cache: ProgramCache,
    /// With the pooling allocator: one permit per pool slot, so a task is
    /// refused up front rather than failing halfway for want of a stack.
    admission: Option<Arc<Semaphore>>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine (reserving the pooling allocator's address space)
    /// and starts the epoch thread.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = build_engine(&config)?;
        let link_err = |e: wasmtime::Error| RuntimeError::Config(format!("linking WASI: {e:#}"));
        let mut modules = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |s: &mut ModuleState| &mut s.wasi)
            .map_err(link_err)?;
        let mut components = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components).map_err(link_err)?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let admission = config
            .pooling
            .as_ref()
            .map(|p| Arc::new(Semaphore::new(p.max_tasks as usize)));
        Ok(Runtime {
            inner: Arc::new(Inner {
                cache: ProgramCache::new(config.max_cached_programs),
                config,
                engine,
                modules,
                components,
                admission,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Detects module or component from the bytes, checks they hash to
    /// `digest`, validates, compiles with Cranelift and links against WASI —
    /// once per digest: later calls (and concurrent ones) get the cached
    /// program. CPU-heavy on a miss: call it from `spawn_blocking`.
    pub fn compile(&self, digest: &Digest, bytes: &[u8]) -> Result<Program, RuntimeError> {
        let inner = &self.inner;
        inner.cache.get_or_compile(digest, || {
            let program = program::compile(
                &inner.engine,
                &inner.modules,
                &inner.components,
                digest,
                bytes,
            );
            match &program {
                Ok(p) => tracing::info!(
                    %digest, kind = ?p.kind(), bytes = p.size(),
                    ms = p.compile_time().as_millis() as u64, "compiled program"
                ),
                Err(e) => tracing::info!(%digest, error = %e, "program rejected"),
            }
            program
        })
    }

    /// The compiled program for `digest`, if it is in the cache.
    pub fn cached(&self, digest: &Digest) -> Option<Program> {
        self.inner.cache.get(digest)
    }

    /// Drops a program from the cache; returns whether it was there.
    pub fn forget(&self, digest: &Digest) -> bool {
        self.inner.cache.forget(digest)
    }

    /// Counters of the program cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Creates the task's store (fresh WASI context, memory limiter, fuel,
    /// epoch yields) and instantiates `program` in it without running its
    /// entry point. A start function, if any, runs here under the task's
    /// limits and timeout.
    ///
    /// With the pooling allocator at most `pooling.max_tasks` instances
    /// exist at once (instantiated or running); one more is refused with
    /// [`RuntimeError::AtCapacity`]. On any failure the task's logs are
    /// closed: create fresh ones to try again.
    pub async fn instantiate(
        &self,
        program: &Program,
        spec: RunSpec,
    ) -> Result<Instance, InstantiateError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let RunSpec {
            args,
            env,
            sandbox,
            mem_bytes,
            fuel,
            timeout,
            stdout,
            stderr,
        } = spec;
        let logs = TaskLogs::new(stdout.clone(), stderr.clone());
        let permit = match &self.inner.admission {
            Some(slots) => Some(slots.clone().try_acquire_owned().map_err(|_| {
                RuntimeError::AtCapacity(format!(
                    "{} tasks",
                    config.pooling.as_ref().map_or(0, |p| p.max_tasks)
                ))
            })?),
            None => None,
        };
        let meter = Meter {
            started,
            timeout: timeout.unwrap_or(config.default_timeout),
            fuel: fuel.unwrap_or(u64::MAX),
            metered: fuel.is_some(),
        };
        let limits = TaskLimiter::new(mem_bytes.min(config.max_memory_bytes));
        let mut wasi = wasi_builder(&World {
            args: &args,
            env: &env,
            sandbox: &sandbox,
            stdout: &stdout,
            stderr: &stderr,
        })?;
        // A start function must not escape the task's timeout either.
        let never = CancellationToken::new();

        let entry = match program.pre() {
            Pre::Module(pre) => {
                let state = ModuleState {
                    wasi: wasi.build_p1(),
                    limits,
                };
                let mut store = self.store(state, &meter)?;
                let call = pre.instantiate_async(&mut store);
                let instance = match race(call, meter.timeout, &never).await {
                    Ended::Returned(Ok(instance)) => instance,
                    ended => return Err(failed(&store, &meter, &logs, ended.discard())),
                };
                let start = instance
                    .get_typed_func::<(), ()>(&mut store, "_start")
                    .map_err(|e| RuntimeError::Instantiate(format!("{e:#}")))?;
                Entry::Module { store, start }
            }
            Pre::Component(pre) => {
                let state = ComponentState {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                    limits,
                };
                let mut store = self.store(state, &meter)?;
                let call = pre.instantiate_async(&mut store);
                let command = match race(call, meter.timeout, &never).await {
                    Ended::Returned(Ok(command)) => command,
                    ended => return Err(failed(&store, &meter, &logs, ended.discard())),
                };
                Entry::Component { store, command }
            }
        };
        Ok(Instance {
            entry,
            meter,
            logs,
            permit,
        })
    }

    /// A store with the task's limiter, fuel and epoch behaviour.
    fn store<T: HasLimits + Send + 'static>(
        &self,
        state: T,
        meter: &Meter,
    ) -> Result<Store<T>, RuntimeError> {
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s: &mut T| s.limits_mut() as &mut dyn ResourceLimiter);
        store
            .set_fuel(meter.fuel)
            .map_err(|e| RuntimeError::Instantiate(format!("setting fuel: {e:#}")))?;
        // Yield to the executor at every tick (letting timers, kills and
        // other tasks run), then carry on.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        // Also yield every FUEL_YIELD_INTERVAL units: compiled code keeps its
        // fuel count in a register and stores it only at calls and fuel
        // yields (not at epoch yields), so without this a task stopped by a
        // timeout or kill in a tight loop would report almost no fuel.
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(|e| RuntimeError::Instantiate(format!("setting fuel: {e:#}")))?;
        Ok(store)
    }
}

/// Why instantiation ended without an instance: the agent's problem (a full
/// pool, an unexpected wasmtime error) or the task's (a trap, its memory).
fn failed<T: HasLimits>(
    store: &Store<T>,
    meter: &Meter,
    logs: &TaskLogs,
    ended: Ended,
) -> InstantiateError {
    if let Ended::Returned(Err(e)) = &ended {
        if let Some(full) = e.downcast_ref::<PoolConcurrencyLimitError>() {
            return RuntimeError::AtCapacity(full.to_string()).into();
        }
        let tasks_fault = e.is::<Trap>() || e.is::<I32Exit>() || store.data().limits().exceeded();
        if !tasks_fault {
            return RuntimeError::Instantiate(format!("{e:#}")).into();
        }
    }
    let (exit, mut usage) = conclude(store, meter, ended);
    logs.finish(&mut usage);
    InstantiateError::Task(RunOutcome { exit, usage })
}
