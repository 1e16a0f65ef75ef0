//! The scheduler host: one wasmtime engine (fuel and epoch interruption on)
//! and linker shared by every framework, an epoch ticker, and compilation of
//! scheduler components into ready-to-instantiate form.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Hosts scheduler components. Cheap to clone.
#[derive(Clone)]
pub struct SchedHost {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<StoreData>,
    config: SchedHostConfig,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
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
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::<StoreData>::new(&engine);
        Scheduler::add_to_linker::<StoreData, HasSelf<SchedState>>(&mut linker, |d| &mut d.state)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), config.epoch_tick, stop_ticker.clone())
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                stop_ticker,
            }),
        })
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
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = SchedulerPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        Ok(SchedulerComponent { pre })
    }

    /// Starts a fresh instance with `kv` as its durable state. The component's
    /// start-up code runs under the same limits as a callback.
    pub async fn instantiate(
        &self,
        component: &SchedulerComponent,
        kv: BTreeMap<String, Vec<u8>>,
    ) -> Result<SchedulerInstance, LoadError> {
        let config = &self.inner.config;
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
