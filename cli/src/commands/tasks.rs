//! `wasmesos tasks`: tasks and queued jobs, oldest first.

use std::process::ExitCode;

use anyhow::anyhow;
use wasmesos_api::now_ms;
use wasmesos_api::proto::{ListTasksRequest, Task, TaskState};

use crate::client::{MasterArg, connect, failed};
use crate::format::{Table, ago, duration_ms};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only tasks in this state (e.g. running, failed).
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks of this framework.
    #[arg(long)]
    pub framework: Option<String>,
    /// Only tasks on this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Show only the newest N.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let state = match &args.state {
        None => TaskState::Unspecified,
        Some(s) => TaskState::parse(s).ok_or_else(|| {
            anyhow!("unknown state '{s}': one of staging, starting, running, finished, failed, killed, lost, error")
        })?,
    };
    let mut client = connect(&args.master).await?;
    let mut tasks: Vec<Task> = Vec::new();
    let mut queued = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_tasks(ListTasksRequest {
                state: state as i32,
                framework: args.framework.clone().unwrap_or_default(),
                agent_id: args.agent.clone().unwrap_or_default(),
                include_queued: state == TaskState::Unspecified && args.agent.is_none(),
                limit: 1000,
                page_token: page_token.clone(),
            })
            .await
            .map_err(failed)?
            .into_inner();
        tasks.extend(page.tasks);
        queued.extend(page.queued);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    tasks.sort_by_key(|t| t.created_ms);
    queued.sort_by_key(|j| j.submitted_ms);

    let mut table = Table::new(&[
        "ID",
        "NAME",
        "FRAMEWORK",
        "AGENT",
        "STATE",
        "STARTED",
        "DURATION",
        "EXIT",
    ]);
    let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
    for t in &tasks {
        let end = if t.finished_ms > 0 {
            t.finished_ms
        } else {
            now_ms()
        };
        let duration = if t.started_ms > 0 {
            duration_ms(end - t.started_ms)
        } else {
            "-".to_string()
        };
        rows.push((
            t.created_ms,
            vec![
                t.task_id.clone(),
                t.name.clone(),
                t.framework_name.clone(),
                dash(&t.agent_id),
                t.state().name().to_string(),
                ago(t.started_ms),
                duration,
                t.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
            ],
        ));
    }
    for j in &queued {
        let name = j.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        rows.push((
            j.submitted_ms,
            vec![
                j.job_id.clone(),
                name,
                j.framework_name.clone(),
                "-".into(),
                "QUEUED".into(),
                "-".into(),
                format!("waiting {}", duration_ms(now_ms() - j.submitted_ms)),
                "-".into(),
            ],
        ));
    }
    rows.sort_by_key(|(ts, _)| *ts);
    let skip = args
        .limit
        .map(|n| rows.len().saturating_sub(n))
        .unwrap_or(0);
    for (_, row) in rows.into_iter().skip(skip) {
        table.row(row);
    }
    if table.len() == 0 {
        println!("no tasks");
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}
