//! The executor process's side: read a hello, build a [`Runtime`] for one
//! task at a time, then run the tasks the agent sends exactly as the agent
//! runs them in-process (same engines, limits and messages), writing their
//! logs to the task's files and answering with each outcome.
//!
//! The CPU quota is left to the executor's cgroup (`cpu.max`), so tasks run
//! here without the in-process throttle. Logs are flushed to their files
//! every [`FLUSH_EVERY`] while a task runs, so the agent can follow them by
//! reading the files. The executor exits when its stdin closes (the agent
//! retired it, or died), killing a task that is still running.

use super::ExecutorError;
use super::protocol::{FromExecutor, RunRequest, ToExecutor, read_frame, write_frame};
use crate::{CancellationToken, InstantiateError, LogFile, Metering, RunOutcome, RunSpec, Runtime};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use wasmesos_api::Digest;

/// How often a running task's logs are moved to their files.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Serves the agent on this process's stdin and stdout until stdin closes.
/// Builds its own single-threaded tokio runtime: call it from `main`, not
/// from async code.
pub fn serve_stdio() -> Result<(), ExecutorError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Pipes (as the agent gives) are read and written through epoll;
        // tokio's stdin/stdout would hop to a blocking thread for every
        // read and write, which costs more than a trivial task.
        let input: Box<dyn AsyncRead + Unpin + Send> =
            match pipe_end(std::io::stdin().as_fd()).and_then(pipe::Receiver::from_file) {
                Ok(pipe) => Box::new(pipe),
                Err(_) => Box::new(tokio::io::stdin()),
            };
        let output: Box<dyn AsyncWrite + Unpin + Send> =
            match pipe_end(std::io::stdout().as_fd()).and_then(pipe::Sender::from_file) {
                Ok(pipe) => Box::new(pipe),
                Err(_) => Box::new(tokio::io::stdout()),
            };
        serve(input, output).await
    })
}

/// A file of its own for a standard stream's descriptor.
fn pipe_end(fd: BorrowedFd<'_>) -> std::io::Result<std::fs::File> {
    Ok(std::fs::File::from(fd.try_clone_to_owned()?))
}

/// Serves the agent on `input` and `output` until `input` closes.
pub async fn serve<R, W>(mut input: R, mut output: W) -> Result<(), ExecutorError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let settings = match read_frame(&mut input).await {
        Ok(ToExecutor::Hello(settings)) => settings,
        Ok(other) => {
            return Err(ExecutorError::Protocol(format!(
                "expected a hello first, got {other:?}"
            )));
        }
        Err(e) => return Err(ExecutorError::Protocol(format!("reading the hello: {e}"))),
    };
    let runtime = Runtime::new(settings.runtime_config())?;
    send(
        &mut output,
        &FromExecutor::Ready {
            pid: std::process::id(),
        },
    )
    .await?;

    // Messages are read apart from the task, so a cancel reaches it while
    // it runs.
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match read_frame::<_, ToExecutor>(&mut input).await {
                Ok(message) => {
                    if tx.send(message).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!("executor input ended: {e}");
                    return;
                }
            }
        }
    });
    while let Some(message) = rx.recv().await {
        match message {
            ToExecutor::Run(request) => {
                let reply = run(&runtime, *request, &mut rx, &mut output).await?;
                send(&mut output, &reply).await?;
            }
            // A cancel that came after its task ended.
            ToExecutor::Cancel => {}
            ToExecutor::Hello(_) => {
                return Err(ExecutorError::Protocol("a second hello".into()));
            }
        }
    }
    Ok(())
}

async fn send<W: AsyncWrite + Unpin>(
    output: &mut W,
    message: &FromExecutor,
) -> Result<(), ExecutorError> {
    write_frame(output, message)
        .await
        .map_err(|e| ExecutorError::Protocol(format!("answering the agent: {e}")))
}

/// Runs one task; the reply is `Done` or `Refused` (`Started` is sent on
/// the way).
async fn run<W: AsyncWrite + Unpin>(
    runtime: &Runtime,
    request: RunRequest,
    rx: &mut mpsc::UnboundedReceiver<ToExecutor>,
    output: &mut W,
) -> Result<FromExecutor, ExecutorError> {
    let digest = match Digest::parse(&request.digest) {
        Ok(d) => d,
        Err(e) => return Ok(FromExecutor::Refused(e.to_string())),
    };
    let metering = Metering::for_fuel(request.fuel);
    let program = match runtime.cached(&digest, metering) {
        Some(p) => p,
        None => {
            let bytes = match std::fs::read(&request.module) {
                Ok(b) => b,
                Err(e) => {
                    return Ok(FromExecutor::Refused(format!(
                        "cannot read the module {}: {e}",
                        request.module.display()
                    )));
                }
            };
            let rt = runtime.clone();
            let compiled =
                tokio::task::spawn_blocking(move || rt.compile(&digest, &bytes, metering))
                    .await
                    .map_err(|e| ExecutorError::Protocol(format!("compiling: {e}")))?;
            match compiled {
                Ok(p) => p,
                Err(e) => return Ok(e.into()),
            }
        }
    };
    let logs = (
        LogFile::create(&request.stdout, request.log_bytes),
        LogFile::create(&request.stderr, request.log_bytes),
    );
    let (stdout, stderr) = match logs {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return Ok(FromExecutor::Refused(format!(
                "cannot create the task's logs: {e}"
            )));
        }
    };
    let spec = RunSpec {
        args: request.args,
        env: request.env,
        sandbox: Some(request.sandbox),
        mem_bytes: request.mem_bytes,
        fuel: request.fuel,
        cpu: None,
        timeout: request.timeout,
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    };
    let instance = match runtime.instantiate(&program, spec).await {
        Ok(instance) => instance,
        Err(InstantiateError::Task(outcome)) => return Ok(FromExecutor::Done(outcome)),
        Err(InstantiateError::Runtime(e)) => return Ok(e.into()),
    };
    send(output, &FromExecutor::Started).await?;

    let cancel = CancellationToken::new();
    let running = instance.run(cancel.clone());
    tokio::pin!(running);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut agent_gone = false;
    let outcome: RunOutcome = loop {
        tokio::select! {
            outcome = &mut running => break outcome,
            message = rx.recv(), if !agent_gone => match message {
                Some(ToExecutor::Cancel) => cancel.cancel(),
                Some(other) => {
                    tracing::warn!("ignoring {other:?} while a task runs");
                }
                None => {
                    agent_gone = true;
                    cancel.cancel();
                }
            },
            _ = flush.tick() => {
                stdout.flush();
                stderr.flush();
            }
        }
    };
    if agent_gone {
        return Err(ExecutorError::Protocol(
            "the agent closed the pipe while a task ran".into(),
        ));
    }
    Ok(FromExecutor::Done(outcome))
}
