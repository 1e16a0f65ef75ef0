//! `wasmesos agent drain ID` and `wasmesos agent undrain ID`: take an agent
//! out of (and back into) the pool of offered resources, e.g. for
//! maintenance. Without a subcommand, `wasmesos agent` runs an agent.

use std::process::ExitCode;
use std::time::Duration;

use wasmesos_api::proto::{DrainAgentRequest, UndrainAgentRequest};

use crate::client::{MasterArg, connect, failed};
use crate::format::parse_duration;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Stop offering an agent's resources (outstanding offers are
    /// rescinded); its frameworks are told, and what still runs on it is
    /// killed after --deadline.
    Drain {
        /// The agent (see `wasmesos agents`).
        id: String,
        /// Kill the tasks still running on it after this long, e.g. 10m;
        /// without it they run to their end.
        #[arg(long, value_parser = parse_duration)]
        deadline: Option<Duration>,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Offer a drained agent's resources again.
    Undrain {
        id: String,
        #[command(flatten)]
        master: MasterArg,
    },
}

pub async fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Drain {
            id,
            deadline,
            master,
        } => {
            let mut client = connect(&master).await?;
            let agent = client
                .drain_agent(DrainAgentRequest {
                    agent_id: id,
                    deadline_ms: deadline.map_or(0, |d| d.as_millis().max(1) as u64),
                })
                .await
                .map_err(failed)?
                .into_inner();
            match deadline {
                Some(d) => println!(
                    "agent {} is draining: no new offers; its {} task(s) are killed in {}",
                    agent.agent_id,
                    agent.tasks_running,
                    crate::format::duration_ms(d.as_millis() as i64)
                ),
                None => println!(
                    "agent {} is draining: no new offers; its {} task(s) run to their end",
                    agent.agent_id, agent.tasks_running
                ),
            }
        }
        Action::Undrain { id, master } => {
            let mut client = connect(&master).await?;
            let agent = client
                .undrain_agent(UndrainAgentRequest { agent_id: id })
                .await
                .map_err(failed)?
                .into_inner();
            println!("agent {} is offered again", agent.agent_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
