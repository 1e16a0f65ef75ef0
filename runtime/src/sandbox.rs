//! What a task sees of the world: exactly its arguments and environment, an
//! empty stdin, stdout/stderr going to its [`LogFile`]s, its sandbox
//! directory preopened as `/`, host clocks and randomness, and no network.
//! Also the store states (`ModuleState`, `ComponentState`) that carry the
//! WASI context and the memory limiter.

use crate::error::RuntimeError;
use crate::limits::TaskLimiter;
use crate::logs::LogFile;
use bytes::Bytes;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The most bytes a guest may hand over in one WASI 0.2 write.
const WRITE_PERMIT: usize = 64 * 1024;

/// Store state of a WASI preview 1 module task.
pub(crate) struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: TaskLimiter,
}

/// Store state of a WASI 0.2 component task.
pub(crate) struct ComponentState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: TaskLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Access to the limiter, whatever the store state.
pub(crate) trait HasLimits {
    fn limits(&self) -> &TaskLimiter;
    fn limits_mut(&mut self) -> &mut TaskLimiter;
}

impl HasLimits for ModuleState {
    fn limits(&self) -> &TaskLimiter {
        &self.limits
    }
    fn limits_mut(&mut self) -> &mut TaskLimiter {
        &mut self.limits
    }
}

impl HasLimits for ComponentState {
    fn limits(&self) -> &TaskLimiter {
        &self.limits
    }
    fn limits_mut(&mut self) -> &mut TaskLimiter {
        &mut self.limits
    }
}

/// The parts of a task's world that a spec decides.
pub(crate) struct World<'a> {
    pub(crate) args: &'a [String],
    pub(crate) env: &'a [(String, String)],
    pub(crate) sandbox: Option<&'a Path>,
    pub(crate) stdout: &'a LogFile,
    pub(crate) stderr: &'a LogFile,
}

/// A WASI context builder granting exactly `world`.
pub(crate) fn wasi_builder(world: &World<'_>) -> Result<WasiCtxBuilder, RuntimeError> {
    let mut b = WasiCtxBuilder::new();
    b.args(world.args)
        .envs(world.env)
        .stdout(LogStream(world.stdout.clone()))
        .stderr(LogStream(world.stderr.clone()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .initial_cwd("/");
    if let Some(sandbox) = world.sandbox {
        b.preopened_dir(sandbox, "/", FsPerms::ReadWrite)
            .map_err(|e| RuntimeError::Sandbox {
                path: sandbox.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
    }
    Ok(b)
}

/// Connects a guest's stdout or stderr to a [`LogFile`].
#[derive(Clone)]
struct LogStream(LogFile);

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
