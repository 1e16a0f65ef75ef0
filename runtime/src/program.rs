//! Compiled programs and their in-memory cache.
//!
//! A [`Program`] is a validated, Cranelift-compiled task binary with its
//! imports already resolved against the agent's WASI linker (an
//! `InstancePre`), so starting a task is only a cheap instantiation. Code
//! compiled with fuel metering differs from code compiled without, so a
//! program belongs to one engine ([`Metering`]) and the cache maps (digest,
//! engine) to programs: a module is compiled for an engine only when a task
//! first needs it there. Concurrent compiles of one key wait for a single
//! compilation.

use crate::engine::Metering;
use crate::error::RuntimeError;
use crate::sandbox::{ComponentState, ModuleState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use wasmesos_api::Digest;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module};
use wasmtime_wasi::p2::bindings::CommandPre;

/// What kind of binary a program is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A core module using WASI preview 1 (`wasm32-wasip1`), run from `_start`.
    Module,
    /// A component implementing the WASI 0.2 command world (`wasm32-wasip2`),
    /// run through `wasi:cli/run`.
    Component,
}

/// A compiled, linked task binary. Cheap to clone.
#[derive(Clone)]
pub struct Program {
    inner: Arc<ProgramInner>,
}

struct ProgramInner {
    digest: Digest,
    metering: Metering,
    kind: ProgramKind,
    size: usize,
    compile_time: Duration,
    pre: Pre,
}

pub(crate) enum Pre {
    Module(InstancePre<ModuleState>),
    Component(CommandPre<ComponentState>),
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("digest", &self.inner.digest)
            .field("metering", &self.inner.metering)
            .field("kind", &self.inner.kind)
            .field("size", &self.inner.size)
            .finish()
    }
}

impl Program {
    /// The digest of the bytes it was compiled from.
    pub fn digest(&self) -> &Digest {
        &self.inner.digest
    }

    /// The engine it was compiled for.
    pub fn metering(&self) -> Metering {
        self.inner.metering
    }

    /// Module or component.
    pub fn kind(&self) -> ProgramKind {
        self.inner.kind
    }

    /// Size of the binary in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// How long validation and compilation took.
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
    }

    pub(crate) fn pre(&self) -> &Pre {
        &self.inner.pre
    }
}

/// Tells a core module from a component by the header, with a helpful error
/// for anything else.
pub fn detect_kind(bytes: &[u8]) -> Result<ProgramKind, RuntimeError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into_owned();
        let hint = if text.trim_start().starts_with('(') {
            " (this looks like WebAssembly text: convert it to a binary first, e.g. with `wasm-tools parse`)"
        } else {
            ""
        };
        return Err(RuntimeError::NotWasm(format!(
            "expected a binary starting with `\\0asm`, found {} bytes starting {:?}{hint}",
            bytes.len(),
            text
        )));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match (layer, version) {
        (0, 1) => Ok(ProgramKind::Module),
        (1, _) => Ok(ProgramKind::Component),
        _ => Err(RuntimeError::Invalid(format!(
            "unknown WebAssembly binary version {version} (layer {layer})"
        ))),
    }
}

/// Validates and compiles `bytes` for the engine of `metering` and links
/// it against WASI.
pub(crate) fn compile(
    metering: Metering,
    engine: &Engine,
    modules: &Linker<ModuleState>,
    components: &ComponentLinker<ComponentState>,
    digest: &Digest,
    bytes: &[u8],
) -> Result<Program, RuntimeError> {
    let kind = detect_kind(bytes)?;
    let actual = Digest::of(bytes);
    if actual != *digest {
        return Err(RuntimeError::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let started = Instant::now();
    let pre = match kind {
        ProgramKind::Module => {
            let module = Module::from_binary(engine, bytes)
                .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))?;
            match module.get_export("_start") {
                Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
                _ => {
                    return Err(RuntimeError::Unsupported(
                        "the module exports no `_start() -> ()` function: build it as a \
                         WASI command (e.g. a `wasm32-wasip1` binary, not a library)"
                            .into(),
                    ));
                }
            }
            let pre = modules.instantiate_pre(&module).map_err(|e| {
                RuntimeError::Unsupported(format!(
                    "{e:#} (tasks may import only WASI preview 1, `wasi_snapshot_preview1`)"
                ))
            })?;
            Pre::Module(pre)
        }
        ProgramKind::Component => {
            let component = Component::from_binary(engine, bytes)
                .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))?;
            let pre = components.instantiate_pre(&component).map_err(|e| {
                RuntimeError::Unsupported(format!(
                    "{e:#} (task components may import only WASI 0.2)"
                ))
            })?;
            let pre = CommandPre::new(pre).map_err(|e| {
                RuntimeError::Unsupported(format!(
                    "the component is not a WASI command (it must export `wasi:cli/run`): {e:#}"
                ))
            })?;
            Pre::Component(pre)
        }
    };
    Ok(Program {
        inner: Arc::new(ProgramInner {
            digest: *digest,
            metering,
            kind,
            size: bytes.len(),
            compile_time: started.elapsed(),
            pre,
        }),
    })
}

/// Counters of the program cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Programs compiled (successfully or not).
    pub compiled: u64,
    /// `compile` calls answered from the cache (or by waiting for a
    /// concurrent compile of the same digest).
    pub hits: u64,
    /// Programs held now.
    pub programs: usize,
}

type Cell = Arc<OnceLock<Result<Program, RuntimeError>>>;

struct Entry {
    cell: Cell,
    last_used: u64,
}

/// A program's place in the cache: its digest and engine.
type Key = (Digest, Metering);

/// Compiled programs by digest and engine, least recently used evicted
/// beyond a bound.
pub(crate) struct ProgramCache {
    capacity: usize,
    entries: Mutex<HashMap<Key, Entry>>,
    clock: AtomicU64,
    compiled: AtomicU64,
    hits: AtomicU64,
}

impl ProgramCache {
    pub(crate) fn new(capacity: usize) -> ProgramCache {
        ProgramCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            compiled: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached program, or the result of `compile` (run once per key
    /// even when called concurrently). Failures are not kept.
    pub(crate) fn get_or_compile(
        &self,
        key: Key,
        compile: impl FnOnce() -> Result<Program, RuntimeError>,
    ) -> Result<Program, RuntimeError> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let cell = {
            let mut entries = self.lock();
            let cell = entries
                .entry(key)
                .and_modify(|e| e.last_used = now)
                .or_insert_with(|| Entry {
                    cell: Arc::default(),
                    last_used: now,
                })
                .cell
                .clone();
            if entries.len() > self.capacity {
                let oldest = entries
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
            cell
        };
        let mut ran = false;
        let result = cell
            .get_or_init(|| {
                ran = true;
                self.compiled.fetch_add(1, Ordering::Relaxed);
                compile()
            })
            .clone();
        if !ran {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_err() {
            let mut entries = self.lock();
            if entries
                .get(&key)
                .is_some_and(|e| Arc::ptr_eq(&e.cell, &cell))
            {
                entries.remove(&key);
            }
        }
        result
    }

    /// The cached program for `key`, if compiled successfully.
    pub(crate) fn get(&self, key: Key) -> Option<Program> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock();
        let entry = entries.get_mut(&key)?;
        let program = entry.cell.get()?.as_ref().ok()?.clone();
        entry.last_used = now;
        Some(program)
    }

    /// Drops `digest`'s programs for every engine from the cache (running
    /// tasks keep theirs).
    pub(crate) fn forget(&self, digest: &Digest) -> bool {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|(d, _), _| d != digest);
        entries.len() != before
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            programs: self.lock().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kinds_and_explains_garbage() {
        assert_eq!(
            detect_kind(b"\0asm\x01\0\0\0").unwrap(),
            ProgramKind::Module
        );
        assert_eq!(
            detect_kind(b"\0asm\x0d\0\x01\0").unwrap(),
            ProgramKind::Component
        );
        let err = detect_kind(b"hello world").unwrap_err().to_string();
        assert!(err.starts_with("not a WebAssembly module"), "{err}");
        let err = detect_kind(b"(module)").unwrap_err().to_string();
        assert!(err.contains("WebAssembly text"), "{err}");
        let err = detect_kind(b"\0asm\x02\0\0\0").unwrap_err().to_string();
        assert!(err.starts_with("invalid module"), "{err}");
    }
}
