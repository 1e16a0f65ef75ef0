//! `wasmesos logs`: a task's stdout and stderr, relayed from its agent.

use std::io::Write;
use std::process::ExitCode;

use wasmesos_api::proto::{LogStream, TaskLogsRequest, TaskRef};

use crate::client::{MasterArg, connect, failed};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The task (TASK, FRAMEWORK/TASK, or a job id for its latest attempt).
    pub task: String,
    /// Keep printing until the task ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Only stdout.
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,
    /// Only stderr.
    #[arg(long)]
    pub stderr: bool,
    /// Only the last N bytes of each stream.
    #[arg(long, value_parser = wasmesos_api::parse_size)]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let stream = if args.stdout {
        LogStream::Stdout
    } else if args.stderr {
        LogStream::Stderr
    } else {
        LogStream::Unspecified
    };
    let mut chunks = client
        .task_logs(TaskLogsRequest {
            task: Some(TaskRef {
                task: args.task.clone(),
            }),
            stream: stream as i32,
            follow: args.follow,
            tail_bytes: args.tail.unwrap_or(0),
        })
        .await
        .map_err(failed)?
        .into_inner();
    while let Some(chunk) = chunks.message().await.map_err(failed)? {
        let _ = match chunk.stream() {
            LogStream::Stderr => std::io::stderr().write_all(&chunk.data),
            _ => std::io::stdout().write_all(&chunk.data),
        };
    }
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}
