//! `wasmesos framework …`: deploy, upgrade, show, message and remove
//! framework schedulers (Wasm components hosted by the master).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use wasmesos_api::Resources;
use wasmesos_api::proto::{
    DeployFrameworkRequest, Framework, GetFrameworkRequest, RemoveFrameworkRequest,
    SendMessageRequest, UpgradeFrameworkRequest,
};

use crate::client::{MasterArg, connect, failed};
use crate::commands::submit::upload;
use crate::format::{ago, duration_ms};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Upload a scheduler component and start it as a new framework.
    Deploy {
        /// The scheduler: a component of the wasmesos:scheduler@0.1.0 world.
        component: PathBuf,
        /// The framework's name (unique in your tenant).
        #[arg(long)]
        name: String,
        /// The role whose share it draws from (default: the tenant's
        /// first role; "default" for operators).
        #[arg(long, default_value = "")]
        role: String,
        /// The role's weight in fair sharing.
        #[arg(long, default_value = "1")]
        weight: f64,
        /// Configuration for the scheduler, K=V (repeatable).
        #[arg(long = "config", value_parser = config_arg)]
        config: Vec<(String, String)>,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Swap a framework's scheduler, keeping its state and tasks.
    Upgrade {
        /// The framework.
        name: String,
        /// The new scheduler component.
        component: PathBuf,
        /// A new configuration, K=V (repeatable); replaces the old one
        /// entirely. Without it the configuration stays.
        #[arg(long = "config", value_parser = config_arg)]
        config: Vec<(String, String)>,
        #[command(flatten)]
        master: MasterArg,
    },
    /// A framework's settings, figures and recent log.
    Show {
        name: String,
        /// Lines of log to print.
        #[arg(long, default_value = "20")]
        lines: usize,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Send a message to a framework's scheduler and print its reply.
    Send {
        name: String,
        /// The message (its scheduler decides the format; often JSON).
        #[arg(required_unless_present = "file")]
        body: Option<String>,
        /// Read the message from this file (`-`: standard input).
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Stop a framework: its tasks are killed and its state deleted.
    Remove {
        name: String,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Run a scheduler against a simulated cluster, no master needed.
    Test(crate::commands::framework_test::TestArgs),
}

fn config_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Deploy {
            component,
            name,
            role,
            weight,
            config,
            master,
        } => {
            let mut client = connect(&master).await?;
            let digest = upload_component(&mut client, &component).await?;
            let started = std::time::Instant::now();
            let f = client
                .deploy_framework(DeployFrameworkRequest {
                    name,
                    role,
                    weight,
                    config: config.into_iter().collect::<HashMap<_, _>>(),
                    module_digest: digest,
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "deployed {} ({}) in role {} in {}",
                f.name,
                f.framework_id,
                f.role,
                duration_ms(started.elapsed().as_millis() as i64)
            );
        }
        Action::Upgrade {
            name,
            component,
            config,
            master,
        } => {
            let mut client = connect(&master).await?;
            let digest = upload_component(&mut client, &component).await?;
            let f = client
                .upgrade_framework(UpgradeFrameworkRequest {
                    name,
                    module_digest: digest,
                    replace_config: !config.is_empty(),
                    config: config.into_iter().collect(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!("upgraded {} to {}", f.name, f.module_digest);
        }
        Action::Show {
            name,
            lines,
            master,
        } => {
            let mut client = connect(&master).await?;
            let detail = client
                .get_framework(GetFrameworkRequest { name })
                .await
                .map_err(failed)?
                .into_inner();
            let f = detail
                .framework
                .ok_or_else(|| anyhow!("the master returned no framework"))?;
            print!("{}", show(&f));
            let skip = detail.log.len().saturating_sub(lines);
            if !detail.log.is_empty() {
                println!("log:");
            }
            for line in detail.log.iter().skip(skip) {
                println!(
                    "  {:>9}  {:<5}  {}",
                    ago(line.timestamp_ms),
                    line.level,
                    line.message
                );
            }
        }
        Action::Send {
            name,
            body,
            file,
            master,
        } => {
            let body = match (body, file) {
                (Some(b), _) => b.into_bytes(),
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                        .context("cannot read the message from standard input")?;
                    buf
                }
                (None, Some(f)) => {
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                (None, None) => Vec::new(),
            };
            let mut client = connect(&master).await?;
            let reply = client
                .send_message(SendMessageRequest {
                    framework: name,
                    body,
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!("{}", String::from_utf8_lossy(&reply.body));
        }
        Action::Test(args) => return crate::commands::framework_test::run(args).await,
        Action::Remove { name, master } => {
            let mut client = connect(&master).await?;
            let r = client
                .remove_framework(RemoveFrameworkRequest { name: name.clone() })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "removed {name}; {} running tasks told to stop",
                r.tasks_killed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn upload_component(
    client: &mut crate::client::Client,
    path: &PathBuf,
) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(upload(client, &bytes, &name).await?.to_string())
}

fn show(f: &Framework) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    line("name", f.name.clone());
    line("id", f.framework_id.clone());
    line("tenant", f.tenant.clone());
    line("role", format!("{} (weight {})", f.role, f.weight));
    line("status", f.status.clone());
    line("scheduler", f.module_digest.clone());
    let mut config: Vec<_> = f.config.iter().collect();
    config.sort();
    if !config.is_empty() {
        line(
            "config",
            config
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    line("tasks", f.tasks_running.to_string());
    line(
        "allocated",
        format!(
            "{} (dominant share {:.1}%)",
            Resources::from(f.allocated.as_ref()),
            f.dominant_share * 100.0
        ),
    );
    line(
        "callbacks",
        format!(
            "{} ({} failed) · p50 {}µs · p99 {}µs",
            f.callbacks, f.callback_failures, f.callback_p50_us, f.callback_p99_us
        ),
    );
    line("deployed", ago(f.registered_ms));
    out
}
