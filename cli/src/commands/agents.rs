//! `wasmesos agents`: the agents, their resources and heartbeats, and
//! which are draining (`wasmesos agent drain`).

use std::process::ExitCode;

use wasmesos_api::Resources;
use wasmesos_api::proto::{AgentState, ListAgentsRequest};

use crate::client::{MasterArg, connect, failed};
use crate::format::{Table, ago, used_of};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let agents = client
        .list_agents(ListAgentsRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .agents;
    let mut table = Table::new(&[
        "ID",
        "HOSTNAME",
        "ADDRESS",
        "STATE",
        "CPUS",
        "MEM",
        "DISK",
        "TASKS",
        "HEARTBEAT",
    ]);
    for a in &agents {
        let [cpus, mem, disk] = used_of(
            &Resources::from(a.used.as_ref()),
            &Resources::from(a.total.as_ref()),
        );
        let state = match (a.state(), a.draining) {
            (AgentState::Active, true) => "DRAINING",
            (AgentState::Active, false) => "ACTIVE",
            (AgentState::Disconnected, true) => "DISCONNECTED,DRAINING",
            (AgentState::Disconnected, false) => "DISCONNECTED",
            (AgentState::Gone, _) => "GONE",
            (AgentState::Unspecified, _) => "UNKNOWN",
        };
        table.row(vec![
            a.agent_id.clone(),
            a.hostname.clone(),
            a.address.clone(),
            state.into(),
            cpus,
            mem,
            disk,
            a.tasks_running.to_string(),
            ago(a.last_heartbeat_ms),
        ]);
    }
    if table.len() == 0 {
        println!(
            "no agents: start one with `wasmesos agent --master {}`",
            args.master.masters().unwrap_or_default()
        );
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
