//! `wasmesos tenant create NAME --roles R[,R…]` and `wasmesos tenants`:
//! the customers of a cluster, each with its roles (operators only create
//! them; a tenant sees itself).

use std::process::ExitCode;

use wasmesos_api::proto::{CreateTenantRequest, ListTenantsRequest};

use crate::client::{MasterArg, connect, failed};
use crate::format::{Table, ago};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Create a tenant with its roles; its own jobs framework runs in the
    /// first. Then issue it a token: `wasmesos token create NAME`.
    Create {
        name: String,
        /// The roles its frameworks may use, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        master: MasterArg,
    },
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Create {
            name,
            roles,
            master,
        } => {
            let mut client = connect(&master).await?;
            let t = client
                .create_tenant(CreateTenantRequest { name, roles })
                .await
                .map_err(failed)?
                .into_inner();
            println!("tenant {} created (roles {})", t.name, t.roles.join(","));
            println!("issue it a token: wasmesos token create {}", t.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let tenants = client
        .list_tenants(ListTenantsRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .tenants;
    let mut table = Table::new(&["TENANT", "ROLES", "CREATED", "BY"]);
    for t in &tenants {
        table.row(vec![
            t.name.clone(),
            t.roles.join(","),
            ago(t.created_ms),
            t.created_by.clone(),
        ]);
    }
    if table.len() == 0 {
        println!("no tenants: `wasmesos tenant create NAME --roles ROLE` creates one");
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
