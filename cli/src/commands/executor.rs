//! `wasmesos executor` (hidden): an executor process of an agent running
//! with `--isolation cgroups`. The agent starts it, puts it in a cgroup and
//! sends it tasks over stdin/stdout (length-prefixed JSON); it runs them
//! with the task runtime exactly as the agent would in-process. Not for
//! people: it exits when its stdin closes.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

/// Serves the agent on stdin/stdout on a single-threaded runtime of its
/// own (so it is called before `main` builds the usual one). Its logs go to
/// stderr (stdout is the channel to the agent).
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    wasmesos_runtime::executor::serve_stdio()?;
    Ok(ExitCode::SUCCESS)
}
