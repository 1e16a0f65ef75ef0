//! What the agent and an executor process say to each other over the
//! executor's stdin and stdout: frames of a 4-byte big-endian length and a
//! JSON message.
//!
//! Agent → executor: [`ToExecutor::Hello`] once (the runtime settings),
//! then per task [`ToExecutor::Run`] and perhaps [`ToExecutor::Cancel`].
//! Executor → agent: [`FromExecutor::Ready`] after the hello, then per task
//! [`FromExecutor::Started`] (instantiated; the task is RUNNING) and
//! [`FromExecutor::Done`] with its outcome — or [`FromExecutor::Refused`]
//! when the task could not be set up at all (a broken module, a sandbox
//! that cannot be opened). Closing the executor's stdin ends it.

use crate::engine::RuntimeConfig;
use crate::run::RunOutcome;
use crate::{PoolingConfig, RuntimeError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts.
const MAX_FRAME: u32 = 16 << 20;

/// The runtime settings an executor builds its engines with: the agent's,
/// so that compiled code in the shared compile cache fits both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// [`RuntimeConfig::max_memory_bytes`].
    pub max_memory_bytes: u64,
    /// [`RuntimeConfig::default_timeout`].
    pub default_timeout: Duration,
    /// [`RuntimeConfig::epoch_tick`].
    pub epoch_tick: Duration,
    /// [`RuntimeConfig::max_wasm_stack`].
    pub max_wasm_stack: usize,
    /// [`RuntimeConfig::async_stack_size`].
    pub async_stack_size: usize,
    /// [`RuntimeConfig::compile_cache_dir`].
    pub compile_cache_dir: Option<PathBuf>,
}

impl Settings {
    /// The settings of `config` that matter to an executor.
    pub fn of(config: &RuntimeConfig) -> Settings {
        Settings {
            max_memory_bytes: config.max_memory_bytes,
            default_timeout: config.default_timeout,
            epoch_tick: config.epoch_tick,
            max_wasm_stack: config.max_wasm_stack,
            async_stack_size: config.async_stack_size,
            compile_cache_dir: config.compile_cache_dir.clone(),
        }
    }

    /// The runtime configuration of an executor: one task at a time on
    /// either engine.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            max_memory_bytes: self.max_memory_bytes,
            default_timeout: self.default_timeout,
            epoch_tick: self.epoch_tick,
            max_wasm_stack: self.max_wasm_stack,
            async_stack_size: self.async_stack_size,
            compile_cache_dir: self.compile_cache_dir.clone(),
            pooling: Some(PoolingConfig::with_max_tasks(1)),
            metered_pooling: Some(PoolingConfig::with_max_tasks(1)),
            max_cached_programs: 32,
            ..RuntimeConfig::default()
        }
    }
}

/// One task for an executor: what a [`RunSpec`](crate::RunSpec) holds, with
/// paths where the spec has open logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The module's digest (`sha256:…`), checked against the bytes.
    pub digest: String,
    /// The module's bytes on disk (the agent's module cache).
    pub module: PathBuf,
    /// `argv`.
    pub args: Vec<String>,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// The sandbox directory.
    pub sandbox: PathBuf,
    /// The stdout log file.
    pub stdout: PathBuf,
    /// The stderr log file.
    pub stderr: PathBuf,
    /// Bytes kept per log.
    pub log_bytes: u64,
    /// The limiter's cap on linear memories and tables.
    pub mem_bytes: u64,
    /// A fuel budget (the program then runs on the fuel engine).
    pub fuel: Option<u64>,
    /// The wall-time limit (`None`: the default).
    pub timeout: Option<Duration>,
}

/// Agent → executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToExecutor {
    /// The first message: how to build the runtime.
    Hello(Settings),
    /// Run a task.
    Run(Box<RunRequest>),
    /// Kill the running task (it then ends [`Exit::Killed`](crate::Exit::Killed)).
    Cancel,
}

/// Executor → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromExecutor {
    /// The runtime is built; tasks may come.
    Ready {
        /// The executor's process id.
        pid: u32,
    },
    /// The task is instantiated and running.
    Started,
    /// The task ended.
    Done(RunOutcome),
    /// The task could not be set up (the agent's problem or its module's,
    /// not the task's run): the reason.
    Refused(String),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The other side closed the pipe.
    #[error("the pipe was closed")]
    Closed,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a message.
    #[error("{0}")]
    Malformed(String),
}

/// Writes one message.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    message: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= MAX_FRAME)
        .ok_or_else(|| {
            FrameError::Malformed(format!("a {}-byte message is too big", body.len()))
        })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    out.write_all(&frame).await.map_err(closed_or_io)?;
    out.flush().await.map_err(closed_or_io)?;
    Ok(())
}

/// Reads one message.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    input: &mut R,
) -> Result<T, FrameError> {
    let len = input.read_u32().await.map_err(closed_or_io)?;
    if len > MAX_FRAME {
        return Err(FrameError::Malformed(format!(
            "a frame of {len} bytes is over the {MAX_FRAME}-byte limit"
        )));
    }
    let mut body = vec![0; len as usize];
    input.read_exact(&mut body).await.map_err(closed_or_io)?;
    serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn closed_or_io(e: std::io::Error) -> FrameError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => FrameError::Closed,
        _ => FrameError::Io(e),
    }
}

impl From<RuntimeError> for FromExecutor {
    fn from(e: RuntimeError) -> Self {
        FromExecutor::Refused(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exit, Usage};

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let done = FromExecutor::Done(RunOutcome {
            exit: Exit::TimedOut(Duration::from_millis(1500)),
            usage: Usage {
                fuel_consumed: 7,
                cpu: Duration::from_micros(3),
                ..Usage::default()
            },
        });
        write_frame(&mut a, &done).await.unwrap();
        write_frame(&mut a, &ToExecutor::Cancel).await.unwrap();
        assert_eq!(read_frame::<_, FromExecutor>(&mut b).await.unwrap(), done);
        assert_eq!(
            read_frame::<_, ToExecutor>(&mut b).await.unwrap(),
            ToExecutor::Cancel
        );
        // Too big, then garbage, then the end.
        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).await.unwrap();
        let err = read_frame::<_, ToExecutor>(&mut b).await.unwrap_err();
        assert!(err.to_string().contains("over the"), "{err}");
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{x}").await.unwrap();
        assert!(matches!(
            read_frame::<_, ToExecutor>(&mut b).await,
            Err(FrameError::Malformed(_))
        ));
        drop(a);
        assert!(matches!(
            read_frame::<_, ToExecutor>(&mut b).await,
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn settings_keep_what_the_compile_cache_depends_on() {
        let config = RuntimeConfig {
            max_memory_bytes: 256 << 20,
            compile_cache_dir: Some("/var/lib/wasmesos/compiled".into()),
            ..RuntimeConfig::default()
        };
        let executor = Settings::of(&config).runtime_config();
        assert_eq!(executor.max_memory_bytes, 256 << 20);
        assert_eq!(executor.compile_cache_dir, config.compile_cache_dir);
        assert_eq!(executor.pooling.unwrap().max_tasks, 1);
    }
}
