//! `wasmesos`: the daemons (`up`, `master`, `agent`) and the client of the
//! master's API. Plural nouns list (`tasks`, `agents`, `frameworks`);
//! singular nouns act (`task kill`). One file per subcommand under
//! `commands/`; `client` connects with errors a person can act on;
//! `format` draws tables, sizes and durations.

mod client;
mod commands;
mod config;
mod format;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wasmesos",
    version,
    about = "A cluster manager for WebAssembly tasks, in the spirit of Apache Mesos",
    after_help = "Start a single-machine cluster with `wasmesos up`, then `wasmesos submit hello.wasm --wait`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a master and one local agent in this process (embedded store).
    Up(commands::up::Args),
    /// Run a master.
    Master(commands::master::Args),
    /// Run an agent that offers this machine's resources to a master (or
    /// drain / undrain one).
    Agent(commands::agent::Args),
    /// Upload a module and submit it as a job.
    Submit(commands::submit::Args),
    /// List tasks (and queued jobs).
    Tasks(commands::tasks::Args),
    /// List agents.
    Agents(commands::agents::Args),
    /// List frameworks.
    Frameworks(commands::frameworks::Args),
    /// List roles: weights, quotas, allocations and shares.
    Roles(commands::roles::Args),
    /// Act on one role (set its weight and quota).
    Role(commands::role::Args),
    /// Act on one framework (deploy, upgrade, show, send, remove).
    Framework(commands::framework::Args),
    /// Print a task's stdout/stderr.
    Logs(commands::logs::Args),
    /// Act on one task.
    Task(commands::task::Args),
    /// The master's status.
    Status(commands::status::Args),
    /// Act on tenants (create).
    Tenant(commands::tenant::Args),
    /// List tenants and their roles.
    Tenants(commands::tenant::ListArgs),
    /// Issue or revoke a bearer token.
    Token(commands::token::Args),
    /// List tokens (never their secrets).
    Tokens(commands::token::ListArgs),
    /// Who the configured token is: principal, tenant, roles.
    Whoami(commands::token::WhoAmIArgs),
    /// Who did what, newest first (operators).
    Audit(commands::audit::Args),
    /// Save the cluster's state to a file, or restore one into an empty store.
    Snapshot(commands::snapshot::Args),
    /// Measure submit latency and queued-job throughput on a running cluster.
    Bench(commands::bench::Args),
    /// An agent's executor process (started by the agent with --isolation cgroups).
    #[command(hide = true)]
    Executor(commands::executor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Executor(a) = cli.command {
        // Its own single-threaded runtime: one task at a time.
        return match commands::executor::run(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: executor: {}", describe(&e));
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(a) => commands::up::run(a).await,
            Command::Master(a) => commands::master::run(a).await,
            Command::Agent(a) => commands::agent::run(a).await,
            Command::Submit(a) => commands::submit::run(a).await,
            Command::Tasks(a) => commands::tasks::run(a).await,
            Command::Agents(a) => commands::agents::run(a).await,
            Command::Frameworks(a) => commands::frameworks::run(a).await,
            Command::Roles(a) => commands::roles::run(a).await,
            Command::Role(a) => commands::role::run(a).await,
            Command::Framework(a) => commands::framework::run(a).await,
            Command::Logs(a) => commands::logs::run(a).await,
            Command::Task(a) => commands::task::run(a).await,
            Command::Status(a) => commands::status::run(a).await,
            Command::Tenant(a) => commands::tenant::run(a).await,
            Command::Tenants(a) => commands::tenant::list(a).await,
            Command::Token(a) => commands::token::run(a).await,
            Command::Tokens(a) => commands::token::list(a).await,
            Command::Whoami(a) => commands::token::whoami(a).await,
            Command::Audit(a) => commands::audit::run(a).await,
            Command::Snapshot(a) => commands::snapshot::run(a).await,
            Command::Bench(a) => commands::bench::run(a).await,
            Command::Executor(_) => unreachable!("run before the runtime is built"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, skipping causes whose text the
/// line already holds (many errors include their source in their message).
fn describe(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
