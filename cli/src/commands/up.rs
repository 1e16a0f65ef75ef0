//! `wasmesos up`: a whole single-machine cluster in one process — a master
//! on the embedded store and one local agent that dials it over loopback,
//! exactly as a remote agent would. `--demo` also runs the bundled hello
//! task and shows its output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use wasmesos_agent::AgentConfig;
use wasmesos_api::proto::{JobSpec, Limits, LogStream, SubmitRequest, TaskSpec};
use wasmesos_api::{Resources, parse_size};

use super::{default_data_dir, detect_resources, init_logging, interrupted, resources_arg};
use crate::client::{connect_as, failed};
use crate::commands::submit::{describe_end, upload, wait};
use crate::config::CliConfig;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The master's address (gRPC and HTTP); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub listen: SocketAddr,
    /// The local agent's own address (health); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5051")]
    pub agent_listen: SocketAddr,
    /// What the local agent offers (default: this machine's cpus, its memory
    /// less 1 GiB, 10 GiB of disk).
    #[arg(long, value_parser = resources_arg)]
    pub resources: Option<Resources>,
    /// State of the master and the agent (default: ~/.local/share/wasmesos).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write the master's bound address here once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Run the bundled hello task once the cluster is up and print its output.
    #[arg(long)]
    pub demo: bool,
    /// Quieter logs (warnings only).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub isolation: super::agent::IsolationArgs,
    #[command(flatten)]
    pub tokens: super::master::TokenFiles,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.quiet && std::env::var_os("RUST_LOG").is_none() {
        init_logging_with("warn");
    } else {
        init_logging();
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut master_cfg = wasmesos_master::MasterConfig::new(args.listen, data_dir.join("master"));
    master_cfg.addr_file = args.addr_file.clone();
    args.tokens.apply(&mut master_cfg);
    let admin_file = master_cfg
        .admin_token_file
        .clone()
        .expect("a default admin token file");
    let agent_file = master_cfg
        .agent_token_file
        .clone()
        .expect("a default agent token file");
    let master = wasmesos_master::start(master_cfg)
        .await
        .context("the master could not start")?;
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .with_context(|| format!("cannot read {}", path.display()))
    };
    let admin_token = read(&admin_file)?;

    let resources = args.resources.clone().unwrap_or_else(detect_resources);
    let mut agent_cfg = AgentConfig::new(
        &master.advertise,
        args.agent_listen,
        resources.clone(),
        data_dir.join("agent"),
    );
    args.isolation.apply(&mut agent_cfg);
    agent_cfg.token = wasmesos_api::Bearer::new(Some(&read(&agent_file)?))?;
    let agent = wasmesos_agent::start(agent_cfg)
        .await
        .context("the local agent could not start")?;

    println!("wasmesos is up");
    println!("  master  {}  (gRPC and HTTP)", master.advertise);
    println!(
        "  web UI  {}/   (JSON API {}/api/v1/summary, metrics {}/metrics)",
        master.advertise, master.advertise, master.advertise
    );
    println!(
        "  agent   {}  offering {} (isolation {})",
        agent.addr,
        resources,
        args.isolation.isolation.name()
    );
    println!("  data    {}", data_dir.display());
    // The CLI's config file: every command now reaches this cluster as
    // its admin, with nothing to export.
    let config = CliConfig {
        master: Some(master.advertise.clone()),
        token: Some(admin_token.clone()),
        ca_file: None,
    };
    let env_hint = match config.save() {
        Ok(path) => {
            println!(
                "  admin   token in {} (the CLI uses it from {})",
                admin_file.display(),
                path.display()
            );
            String::new()
        }
        Err(e) => {
            println!(
                "  admin   token in {} (could not save the CLI's config: {e:#})",
                admin_file.display()
            );
            format!(
                "export WASMESOS_MASTER={} WASMESOS_TOKEN_FILE={}\n  ",
                master.advertise,
                admin_file.display()
            )
        }
    };
    println!("  sign in to the web UI with the admin token (wasmesos token create issues more)");

    let hello = data_dir.join("examples").join("hello.wasm");
    write_example(&hello).context("cannot write the bundled hello example")?;
    if args.demo {
        demo(&master.advertise, &admin_token, &hello).await?;
    }
    println!();
    println!("Try:");
    println!(
        "  {env_hint}wasmesos submit {} --wait -- hello world",
        hello.display()
    );
    println!(
        "  wasmesos submit {} --env GREETING=hi --name nightly",
        hello.display()
    );
    println!("  wasmesos tasks");
    println!("  wasmesos agents");
    println!("  wasmesos frameworks");
    println!("Serving until Ctrl-C.");

    let shutdown = master.shutdown_handle();
    let stopper = tokio::spawn(async move {
        interrupted().await;
        shutdown.shutdown();
    });
    let result = master.wait().await;
    stopper.abort();
    agent.shutdown();
    let _ = agent.wait().await;
    result.context("the master stopped")?;
    println!("wasmesos stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_logging_with(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The bundled hello task, on disk so people can submit it themselves.
fn write_example(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, wasmesos_builtin::HELLO_TASK)
}

/// Submits the hello task through the API like any client, and prints what
/// it printed.
async fn demo(master: &str, token: &str, hello: &Path) -> anyhow::Result<()> {
    let mut client = connect_as(master, Some(token), None).await?;
    let digest = upload(&mut client, wasmesos_builtin::HELLO_TASK, "hello.wasm").await?;
    let args = vec!["hello".to_string(), "world".to_string()];
    let spec = JobSpec {
        name: "hello-demo".into(),
        task: Some(TaskSpec {
            module_digest: digest.to_string(),
            args: args.clone(),
            env: [(
                "GREETING".to_string(),
                "from wasmesos up --demo".to_string(),
            )]
            .into(),
            resources: Some((&Resources::new(0.1, parse_size("64MiB")?, 0)).into()),
            limits: Some(Limits::default()),
        }),
        max_attempts: 1,
        priority: 0,
    };
    let job = client
        .submit(SubmitRequest {
            framework: String::new(),
            idempotency_key: String::new(),
            spec: Some(spec),
        })
        .await
        .map_err(failed)?
        .into_inner();
    println!();
    println!(
        "Ran the hello task as {} (wasmesos submit {} --wait -- {}):",
        job.job_id,
        hello.display(),
        args.join(" ")
    );
    let mut output = Vec::new();
    let finished = wait(&mut client, &job.job_id, &mut |stream, data| {
        if stream != LogStream::Stderr {
            output.extend_from_slice(data);
        }
    })
    .await?;
    for line in String::from_utf8_lossy(&output).lines() {
        println!("  | {line}");
    }
    println!("  {}", describe_end(&finished));
    Ok(())
}
