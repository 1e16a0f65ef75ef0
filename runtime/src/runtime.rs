//! [`Runtime`]: the two engines (epoch-only and fuel), their WASI linkers
//! and pools, the program cache and the epoch ticker, shared by every task
//! on the agent.

use crate::cpu::{CpuMeter, accounted};
use crate::engine::{EpochTicker, Metering, RuntimeConfig, build_engine, check_config};
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

/// Runs tasks. Cheap to clone: all clones share the engines, one cache and
/// one epoch thread, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    /// Indexed by [`Metering::index`].
    engines: [EngineSet; 2],
    cache: ProgramCache,
    _ticker: EpochTicker,
}

/// One engine with what is tied to it: linkers and pool admission.
struct EngineSet {
    metering: Metering,
    engine: Engine,
    modules: Linker<ModuleState>,
    components: ComponentLinker<ComponentState>,
    /// With the pooling allocator: one permit per pool slot, so a task is
    /// refused up front rather than failing halfway for want of a stack.
    admission: Option<Arc<Semaphore>>,
    max_tasks: u32,
}

impl EngineSet {
    fn new(config: &RuntimeConfig, metering: Metering) -> Result<EngineSet, RuntimeError> {
        let engine = build_engine(config, metering)?;
        let link_err = |e: wasmtime::Error| RuntimeError::Config(format!("linking WASI: {e:#}"));
        let mut modules = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |s: &mut ModuleState| &mut s.wasi)
            .map_err(link_err)?;
        let mut components = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components).map_err(link_err)?;
        let pool = config.pool(metering);
        Ok(EngineSet {
            metering,
            engine,
            modules,
            components,
            admission: pool.map(|p| Arc::new(Semaphore::new(p.max_tasks as usize))),
            max_tasks: pool.map_or(0, |p| p.max_tasks),
        })
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds both engines (reserving their pools' address space), prepares
    /// the compile cache directory and starts the epoch thread.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        check_config(&config)?;
        if let Some(dir) = &config.compile_cache_dir {
            crate::cache_dir::prepare(dir)?;
        }
        let engines = [
            EngineSet::new(&config, Metering::EpochOnly)?,
            EngineSet::new(&config, Metering::Fuel)?,
        ];
        let ticker = EpochTicker::start(
            engines.iter().map(|e| e.engine.clone()).collect(),
            config.epoch_tick,
        )?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                cache: ProgramCache::new(config.max_cached_programs),
                config,
                engines,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn engine(&self, metering: Metering) -> &EngineSet {
        &self.inner.engines[metering.index()]
    }

    /// Detects module or component from the bytes, checks they hash to
    /// `digest`, validates, compiles with Cranelift for the engine of
    /// `metering` and links against WASI — once per digest and engine:
    /// later calls (and concurrent ones) get the cached program. CPU-heavy
    /// on a miss: call it from `spawn_blocking`.
    pub fn compile(
        &self,
        digest: &Digest,
        bytes: &[u8],
        metering: Metering,
    ) -> Result<Program, RuntimeError> {
        let set = self.engine(metering);
        self.inner.cache.get_or_compile((*digest, metering), || {
            let program = program::compile(
                metering,
                &set.engine,
                &set.modules,
                &set.components,
                digest,
                bytes,
            );
            match &program {
                Ok(p) => tracing::info!(
                    %digest, kind = ?p.kind(), %metering, bytes = p.size(),
                    ms = p.compile_time().as_millis() as u64, "compiled program"
                ),
                Err(e) => tracing::info!(%digest, error = %e, "program rejected"),
            }
            program
        })
    }

    /// The compiled program for `digest` on the engine of `metering`, if it
    /// is in the cache.
    pub fn cached(&self, digest: &Digest, metering: Metering) -> Option<Program> {
        self.inner.cache.get((*digest, metering))
    }

    /// Drops a digest's programs (for both engines) from the cache; returns
    /// whether any was there.
    pub fn forget(&self, digest: &Digest) -> bool {
        self.inner.cache.forget(digest)
    }

    /// Counters of the program cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Creates the task's store (fresh WASI context, memory limiter, fuel
    /// on the fuel engine, epoch yields) and instantiates `program` in it
    /// without running its entry point. A start function, if any, runs here
    /// under the task's limits, CPU quota and timeout.
    ///
    /// A task with a fuel limit needs a program compiled for
    /// [`Metering::Fuel`] ([`RuntimeError::NeedsFuelEngine`] otherwise).
    /// With the pooling allocator at most `max_tasks` instances of an
    /// engine exist at once (instantiated or running); one more is refused
    /// with [`RuntimeError::AtCapacity`]. On any failure the task's logs are
    /// closed: create fresh ones to try again.
    pub async fn instantiate(
        &self,
        program: &Program,
        spec: RunSpec,
    ) -> Result<Instance, InstantiateError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let set = self.engine(program.metering());
        let RunSpec {
            args,
            env,
            sandbox,
            mem_bytes,
            fuel,
            cpu,
            timeout,
            stdout,
            stderr,
        } = spec;
        let logs = TaskLogs::new(stdout.clone(), stderr.clone());
        if fuel.is_some() && set.metering != Metering::Fuel {
            return Err(RuntimeError::NeedsFuelEngine.into());
        }
        let permit = match &set.admission {
            Some(slots) => Some(slots.clone().try_acquire_owned().map_err(|_| {
                RuntimeError::AtCapacity(format!(
                    "{} tasks on the {} engine",
                    set.max_tasks, set.metering
                ))
            })?),
            None => None,
        };
        let meter = Meter {
            started,
            timeout: timeout.unwrap_or(config.default_timeout),
            engine: set.metering,
            fuel: fuel.unwrap_or(u64::MAX),
            metered: fuel.is_some(),
        };
        let mut cpu = CpuMeter::new(cpu);
        let limits = TaskLimiter::new(mem_bytes.min(config.max_memory_bytes));
        let mut wasi = wasi_builder(&World {
            args: &args,
            env: &env,
            sandbox: sandbox.as_deref(),
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
                let mut store = self.store(set, state, &meter)?;
                let call = accounted(pre.instantiate_async(&mut store), &mut cpu);
                let instance = match race(call, meter.timeout, &never).await {
                    Ended::Returned(Ok(instance)) => instance,
                    ended => return Err(failed(&store, &meter, &cpu, &logs, ended.discard())),
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
                let mut store = self.store(set, state, &meter)?;
                let call = accounted(pre.instantiate_async(&mut store), &mut cpu);
                let command = match race(call, meter.timeout, &never).await {
                    Ended::Returned(Ok(command)) => command,
                    ended => return Err(failed(&store, &meter, &cpu, &logs, ended.discard())),
                };
                Entry::Component { store, command }
            }
        };
        Ok(Instance {
            entry,
            meter,
            cpu,
            logs,
            permit,
        })
    }

    /// A store on `set`'s engine with the task's limiter, fuel and epoch
    /// behaviour.
    fn store<T: HasLimits + Send + 'static>(
        &self,
        set: &EngineSet,
        state: T,
        meter: &Meter,
    ) -> Result<Store<T>, RuntimeError> {
        let mut store = Store::new(&set.engine, state);
        store.limiter(|s: &mut T| s.limits_mut() as &mut dyn ResourceLimiter);
        // Yield to the executor at every tick (letting timers, kills, the
        // CPU quota and other tasks run), then carry on.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        if set.metering == Metering::Fuel {
            let fuel_err =
                |e: wasmtime::Error| RuntimeError::Instantiate(format!("setting fuel: {e:#}"));
            store.set_fuel(meter.fuel).map_err(fuel_err)?;
            // Also yield every FUEL_YIELD_INTERVAL units: compiled code keeps
            // its fuel count in a register and stores it only at calls and
            // fuel yields (not at epoch yields), so without this a task
            // stopped by a timeout or kill in a tight loop would report
            // almost no fuel.
            store
                .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
                .map_err(fuel_err)?;
        }
        Ok(store)
    }
}

/// Why instantiation ended without an instance: the agent's problem (a full
/// pool, an unexpected wasmtime error) or the task's (a trap, its memory).
fn failed<T: HasLimits>(
    store: &Store<T>,
    meter: &Meter,
    cpu: &CpuMeter,
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
    let (exit, mut usage) = conclude(store, meter, cpu, ended);
    logs.finish(&mut usage);
    InstantiateError::Task(RunOutcome { exit, usage })
}
