//! The scheduler host: one wasmtime engine (fuel and epoch interruption on)
//! and linker shared by every framework, an epoch ticker, a worker pool of
//! its own for callbacks, and compilation of scheduler components into
//! ready-to-instantiate form (cached by digest in memory, and on disk when a
//! cache directory is given).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use crate::bindings::{Scheduler, SchedulerPre};
use crate::config::SchedHostConfig;
use crate::error::LoadError;
use crate::instance::{Limiter, SchedulerInstance, StoreData, classify};
use crate::state::SchedState;

/// A compiled scheduler component, ready to instantiate any number of times.
#[derive(Clone)]
pub struct SchedulerComponent {
    pre: SchedulerPre<StoreData>,
}

/// Limits for one instance below the host's (`None`: the host's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceLimits {
    pub fuel_per_callback: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Hosts scheduler components. Cheap to clone.
#[derive(Clone)]
pub struct SchedHost {
    inner: Arc<Inner>,
}

/// The world versions this host implements.
pub const SUPPORTED_WORLDS: &[&str] = &["wasmesos:scheduler@0.1.0"];

/// Compiled components kept in memory, by digest.
const CACHED_COMPONENTS: usize = 64;

struct Inner {
    engine: Engine,
    linker: Linker<StoreData>,
    config: SchedHostConfig,
    stop_ticker: Arc<AtomicBool>,
    workers: Option<tokio::runtime::Runtime>,
    components: Mutex<VecDeque<(String, SchedulerComponent)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
        if let Some(rt) = self.workers.take() {
            // Never blocks, so dropping the host inside async code is fine.
            rt.shutdown_background();
        }
    }
}

impl SchedHost {
    /// Creates the engine, links the host imports and WASI (with nothing
    /// granted: components built by Rust for wasm32-wasip2 import WASI even
    /// when they never use it), and starts the epoch ticker.
    pub fn new(config: SchedHostConfig) -> Result<Self, LoadError> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(true);
        if let Some(dir) = &config.compile_cache_dir {
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(dir);
            let cache = wasmtime::Cache::new(cc).map_err(|e| {
                LoadError::Engine(format!("compile cache in {}: {e}", dir.display()))
            })?;
            wasm.cache(Some(cache));
        }
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::<StoreData>::new(&engine);
        Scheduler::add_to_linker::<StoreData, HasSelf<SchedState>>(&mut linker, |d| &mut d.state)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), config.epoch_tick, stop_ticker.clone())
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        let workers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("schedhost-worker")
            .enable_all()
            .build()
            .map_err(|e| LoadError::Engine(format!("cannot start the scheduler workers: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                stop_ticker,
                workers: Some(workers),
                components: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// Runs `future` on the scheduler workers, apart from the caller's
    /// threads: callbacks never compete with the master's network and
    /// store work for a thread.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.inner.workers {
            Some(rt) => rt.spawn(future),
            None => tokio::spawn(future),
        }
    }

    fn components(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, SchedulerComponent)>> {
        self.inner
            .components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// [`compile`](Self::compile), remembering the result under `key` (the
    /// module's digest): deploying, restarting and upgrading a framework
    /// compile each component once.
    pub fn compile_cached(&self, key: &str, bytes: &[u8]) -> Result<SchedulerComponent, LoadError> {
        if let Some((_, c)) = self.components().iter().find(|(k, _)| k == key) {
            return Ok(c.clone());
        }
        let component = self.compile(bytes)?;
        let mut cache = self.components();
        if cache.len() >= CACHED_COMPONENTS {
            cache.pop_front();
        }
        cache.push_back((key.to_string(), component.clone()));
        Ok(component)
    }

    /// The limits this host applies.
    pub fn config(&self) -> &SchedHostConfig {
        &self.inner.config
    }

    /// Compiles a scheduler component and checks that it fits the world.
    /// Compiling is the expensive step (Cranelift); do it once per digest.
    pub fn compile(&self, bytes: &[u8]) -> Result<SchedulerComponent, LoadError> {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm),
        }
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        check_version(&self.inner.engine, &component)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = SchedulerPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        release_freed_memory();
        Ok(SchedulerComponent { pre })
    }

    /// Starts a fresh instance with `kv` as its durable state. The component's
    /// start-up code runs under the same limits as a callback.
    pub async fn instantiate(
        &self,
        component: &SchedulerComponent,
        kv: BTreeMap<String, Vec<u8>>,
    ) -> Result<SchedulerInstance, LoadError> {
        self.instantiate_limited(component, kv, InstanceLimits::default())
            .await
    }

    /// [`SchedHost::instantiate`] under tighter limits (a tenant's): each
    /// limit is the lower of the host's and `limits`'.
    pub async fn instantiate_limited(
        &self,
        component: &SchedulerComponent,
        kv: BTreeMap<String, Vec<u8>>,
        limits: InstanceLimits,
    ) -> Result<SchedulerInstance, LoadError> {
        let mut config = self.inner.config.clone();
        if let Some(fuel) = limits.fuel_per_callback {
            config.fuel_per_callback = config.fuel_per_callback.min(fuel);
        }
        if let Some(bytes) = limits.memory_bytes {
            config.memory_bytes = config.memory_bytes.min(bytes);
        }
        let config = &config;
        let data = StoreData {
            state: SchedState::new(config, kv),
            limiter: Limiter::new(config),
            deadline: Instant::now() + config.callback_timeout,
        };
        let mut store = Store::new(&self.inner.engine, data);
        store.limiter(|d| &mut d.limiter);
        store
            .set_fuel(config.fuel_per_callback)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let bindings = match component.pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => {
                let err = classify("start", &e, &store, config);
                return Err(LoadError::Start(err.to_string()));
            }
        };
        Ok(SchedulerInstance::new(store, bindings, config.clone()))
    }
}

/// Advances the engine's epoch every `tick` until `stop` is set. A plain
/// thread: it must keep ticking even when every async worker is busy
/// running guest code.
fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let tick = tick.max(Duration::from_millis(1));
    std::thread::Builder::new()
        .name("schedhost-epoch".to_string())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .map(|_| ())
}

/// Hands memory freed by a compile back to the system. Compiling a large
/// component (an 18 MB Python one) churns hundreds of MiB through the
/// allocator; glibc keeps what was freed in its arenas (measured: a master
/// at 402 MiB RSS after one Python deploy, 192 MiB after a trim).
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it is safe
    // to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Refuses a component built against another version of our package, naming
/// the versions this host implements.
fn check_version(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let Some(rest) = name.strip_prefix("wasmesos:scheduler/") else {
            continue;
        };
        let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
        let world = format!("wasmesos:scheduler@{version}");
        if !SUPPORTED_WORLDS.contains(&world.as_str()) {
            return Err(LoadError::WrongVersion {
                found: world,
                supported: SUPPORTED_WORLDS.join(", "),
            });
        }
    }
    Ok(())
}
