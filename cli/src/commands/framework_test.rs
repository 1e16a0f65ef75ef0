//! `wasmesos framework test sched.wasm --agents 3 --script s.json`: runs a
//! scheduler component against a simulated cluster — no master, network
//! or store; the harness in `wasmesos_schedhost::harness`, whose module docs
//! describe the script — and prints what it did, one line per callback
//! (`--json`: the whole record). Exits non-zero when an expectation failed,
//! the scheduler failed, or it issued invalid commands.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wasmesos_api::Resources;
use wasmesos_schedhost::harness::{
    Agents, ClusterSpec, HarnessConfig, OfferTarget, Script, Step, run_script,
};
use wasmesos_schedhost::{SchedHost, SchedHostConfig};

use super::resources_arg;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The scheduler component to test (.wasm, built for wasm32-wasip2).
    pub scheduler: PathBuf,
    /// The script to run (JSON; `-` reads stdin). Without one, the
    /// scheduler starts and is offered the cluster once.
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Simulated agents (default: the script's, else 1).
    #[arg(long)]
    pub agents: Option<usize>,
    /// Each agent's resources (default: the script's, else
    /// cpus:4,mem:8GiB,disk:10GiB).
    #[arg(long, value_parser = resources_arg)]
    pub resources: Option<Resources>,
    /// Framework config handed to `registered`, K=V (repeatable; adds to
    /// and overrides the script's).
    #[arg(long = "config", value_parser = config_arg)]
    pub config: Vec<(String, String)>,
    /// Print the whole record as JSON instead of the transcript.
    #[arg(long)]
    pub json: bool,
    /// Show each callback's log lines, state writes and fuel.
    #[arg(long, short)]
    pub verbose: bool,
}

fn config_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not K=V")),
    }
}

pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let script = read_script(args.script.as_ref())?;
    let flags = ClusterSpec {
        agents: args.agents.map(Agents::Count),
        resources: args.resources,
        config: args.config.into_iter().collect(),
        ..ClusterSpec::default()
    };
    let config = HarnessConfig::from_cluster(&script.cluster.clone().merge(flags))?;

    let path = &args.scheduler;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The limits the master hosts schedulers with, so that what passes
    // here fits there.
    let host = SchedHost::new(SchedHostConfig::default())?;
    // Compiling is seconds of Cranelift work: off the async workers.
    let compiler = host.clone();
    let component = tokio::task::spawn_blocking(move || compiler.compile(&bytes))
        .await
        .context("the compiler thread failed")?
        .with_context(|| format!("cannot load {}", path.display()))?;

    let report = run_script(&host, &component, config, &script).await;
    if args.json {
        println!("{}", report.to_json_pretty());
    } else {
        print!("{}", report.transcript(args.verbose));
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_script(path: Option<&PathBuf>) -> anyhow::Result<Script> {
    let Some(path) = path else {
        return Ok(Script {
            steps: vec![Step::Offer(OfferTarget::All)],
            ..Script::default()
        });
    };
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the script from stdin")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the script {}", path.display()))?
    };
    Script::parse(&text).with_context(|| format!("invalid script {}", path.display()))
}
