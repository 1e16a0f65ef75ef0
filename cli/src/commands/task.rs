//! `wasmesos task …`: act on one task.

use std::process::ExitCode;

use wasmesos_api::proto::{GetTaskRequest, KillTaskRequest, Task, TaskRef};
use wasmesos_api::{Resources, format_size};

use crate::client::{MasterArg, connect, failed};
use crate::format::{ago, duration_ms};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Kill a task (or a queued job).
    Kill {
        /// TASK, FRAMEWORK/TASK, or a job id.
        task: String,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Show a task's spec, state and resource use.
    Show {
        /// TASK, FRAMEWORK/TASK, or a job id for its latest attempt.
        task: String,
        #[command(flatten)]
        master: MasterArg,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Kill { task, master } => {
            let mut client = connect(&master).await?;
            let r = client
                .kill_task(KillTaskRequest {
                    task: Some(TaskRef { task: task.clone() }),
                })
                .await
                .map_err(failed)?
                .into_inner();
            match (r.task, r.job) {
                (Some(t), _) => println!("kill sent to {} on {}", t.task_id, t.agent_id),
                (None, Some(j)) => println!("{} killed before it ran", j.job_id),
                (None, None) => println!("{task} killed"),
            }
        }
        Action::Show { task, master } => {
            let mut client = connect(&master).await?;
            let t = client
                .get_task(GetTaskRequest {
                    task: Some(TaskRef { task }),
                })
                .await
                .map_err(failed)?
                .into_inner();
            print!("{}", show(&t));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(t: &Task) -> String {
    let spec = t.spec.clone().unwrap_or_default();
    let limits = spec.limits.unwrap_or_default();
    let usage = t.usage.unwrap_or_default();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    line("task", t.task_id.clone());
    line("name", t.name.clone());
    line(
        "framework",
        format!("{} ({})", t.framework_name, t.framework_id),
    );
    if !t.job_id.is_empty() {
        line("job", t.job_id.clone());
    }
    line("agent", t.agent_id.clone());
    line("state", t.state().name().to_string());
    if !t.message.is_empty() {
        line("message", t.message.clone());
    }
    if let Some(code) = t.exit_code {
        line("exit code", code.to_string());
    }
    line("module", spec.module_digest.clone());
    line("args", format!("{:?}", spec.args));
    let mut env: Vec<_> = spec.env.iter().collect();
    env.sort();
    line(
        "env",
        env.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    line(
        "resources",
        Resources::from(spec.resources.as_ref()).to_string(),
    );
    line(
        "limits",
        format!(
            "fuel {} · timeout {} · logs {}",
            if limits.fuel == 0 {
                "unmetered".into()
            } else {
                limits.fuel.to_string()
            },
            if limits.timeout_ms == 0 {
                "default".into()
            } else {
                duration_ms(limits.timeout_ms as i64)
            },
            if limits.log_bytes == 0 {
                "default".into()
            } else {
                format_size(limits.log_bytes)
            },
        ),
    );
    line("created", ago(t.created_ms));
    line("started", ago(t.started_ms));
    line("finished", ago(t.finished_ms));
    line(
        "usage",
        format!(
            "wall {} · cpu {}{} · fuel {} · peak mem {} · stdout {} · stderr {}{}",
            duration_ms(usage.wall_ms as i64),
            duration_ms(usage.cpu_ms as i64),
            if usage.cpu_throttled_ms > 0 {
                format!(
                    " (held back {} by its cpus)",
                    duration_ms(usage.cpu_throttled_ms as i64)
                )
            } else {
                String::new()
            },
            if usage.fuel_consumed == 0 && limits.fuel == 0 {
                "not counted".to_string()
            } else {
                usage.fuel_consumed.to_string()
            },
            format_size(usage.peak_mem_bytes),
            format_size(usage.stdout_bytes),
            format_size(usage.stderr_bytes),
            if usage.log_bytes_dropped > 0 {
                format!(
                    " · {} dropped at the log cap",
                    format_size(usage.log_bytes_dropped)
                )
            } else {
                String::new()
            }
        ),
    );
    if !t.result.is_empty() {
        line("result", result_preview(&t.result));
    }
    out
}

/// How many bytes of a result `task show` prints.
const RESULT_PREVIEW: usize = 64;

/// `12B "42\n"`, or for longer or binary results their size and first
/// bytes.
fn result_preview(result: &[u8]) -> String {
    let head = &result[..result.len().min(RESULT_PREVIEW)];
    let text = String::from_utf8_lossy(head);
    let more = if result.len() > head.len() { "…" } else { "" };
    format!(
        "{} {:?}{more}",
        format_size(result.len() as u64),
        text.as_ref()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_previewed_with_their_size() {
        assert_eq!(result_preview(b"42\n"), "3B \"42\\n\"");
        let long = vec![b'x'; 100];
        let shown = result_preview(&long);
        assert!(shown.starts_with("100B \"xxx"), "{shown}");
        assert!(shown.ends_with('…'), "{shown}");
    }
}
