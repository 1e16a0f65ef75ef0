//! `wasmesos tenant create NAME --roles R[,R…]`, `wasmesos tenant limits
//! NAME` and `wasmesos tenants`: the customers of a cluster, each with its
//! roles and limits (operators only create and change them; a tenant sees
//! itself).

use std::process::ExitCode;

use anyhow::anyhow;
use wasmesos_api::proto::{
    CreateTenantRequest, ListTenantsRequest, SetTenantLimitsRequest, TenantLimits,
};
use wasmesos_api::{format_size, parse_size};

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
        limits: LimitArgs,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Change a tenant's limits: the ones given replace the current ones
    /// (0 removes a limit); the rest stay.
    Limits {
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        master: MasterArg,
    },
}

/// A tenant's limits beside its roles' quotas.
#[derive(clap::Args, Debug)]
pub struct LimitArgs {
    /// Tasks staging or running at once (beyond it, its jobs wait queued).
    #[arg(long)]
    max_running_tasks: Option<u32>,
    /// Largest module it may upload (e.g. 16MiB).
    #[arg(long, value_parser = parse_size)]
    max_module_size: Option<u64>,
    /// Most fuel per task; tasks without a fuel limit get this one.
    #[arg(long)]
    max_task_fuel: Option<u64>,
    /// Most memory per task (e.g. 1GiB).
    #[arg(long, value_parser = parse_size)]
    max_task_mem: Option<u64>,
    /// Requests per second to the master.
    #[arg(long)]
    max_requests_per_second: Option<u32>,
    /// Fuel per callback of its schedulers (below the master's; applies
    /// to schedulers started from now on).
    #[arg(long)]
    max_callback_fuel: Option<u64>,
    /// Memory of each of its schedulers (e.g. 64MiB).
    #[arg(long, value_parser = parse_size)]
    max_callback_mem: Option<u64>,
}

impl LimitArgs {
    /// `current` with the given limits replaced.
    fn applied_to(&self, mut current: TenantLimits) -> TenantLimits {
        if let Some(v) = self.max_running_tasks {
            current.max_running_tasks = v;
        }
        if let Some(v) = self.max_module_size {
            current.max_module_bytes = v;
        }
        if let Some(v) = self.max_task_fuel {
            current.max_task_fuel = v;
        }
        if let Some(v) = self.max_task_mem {
            current.max_task_mem_bytes = v;
        }
        if let Some(v) = self.max_requests_per_second {
            current.max_requests_per_second = v;
        }
        if let Some(v) = self.max_callback_fuel {
            current.max_callback_fuel = v;
        }
        if let Some(v) = self.max_callback_mem {
            current.max_callback_mem_bytes = v;
        }
        current
    }
}

/// `tasks:10 module:16MiB fuel:1000000 mem:1GiB rps:50`, or `-`.
fn describe(l: &TenantLimits) -> String {
    let mut parts = Vec::new();
    if l.max_running_tasks != 0 {
        parts.push(format!("tasks:{}", l.max_running_tasks));
    }
    if l.max_module_bytes != 0 {
        parts.push(format!("module:{}", format_size(l.max_module_bytes)));
    }
    if l.max_task_fuel != 0 {
        parts.push(format!("fuel:{}", l.max_task_fuel));
    }
    if l.max_task_mem_bytes != 0 {
        parts.push(format!("mem:{}", format_size(l.max_task_mem_bytes)));
    }
    if l.max_requests_per_second != 0 {
        parts.push(format!("rps:{}", l.max_requests_per_second));
    }
    if l.max_callback_fuel != 0 {
        parts.push(format!("callback-fuel:{}", l.max_callback_fuel));
    }
    if l.max_callback_mem_bytes != 0 {
        parts.push(format!(
            "callback-mem:{}",
            format_size(l.max_callback_mem_bytes)
        ));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
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
            limits,
            master,
        } => {
            let mut client = connect(&master).await?;
            let t = client
                .create_tenant(CreateTenantRequest {
                    name,
                    roles,
                    limits: Some(limits.applied_to(TenantLimits::default())),
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "tenant {} created (roles {}; limits {})",
                t.name,
                t.roles.join(","),
                describe(&t.limits.unwrap_or_default())
            );
            println!("issue it a token: wasmesos token create {}", t.name);
        }
        Action::Limits {
            name,
            limits,
            master,
        } => {
            let mut client = connect(&master).await?;
            let current = client
                .list_tenants(ListTenantsRequest {})
                .await
                .map_err(failed)?
                .into_inner()
                .tenants
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| anyhow!("no tenant '{name}' (wasmesos tenants lists them)"))?;
            let t = client
                .set_tenant_limits(SetTenantLimitsRequest {
                    name,
                    limits: Some(limits.applied_to(current.limits.unwrap_or_default())),
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "tenant {} limits {}",
                t.name,
                describe(&t.limits.unwrap_or_default())
            );
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
    let mut table = Table::new(&["TENANT", "ROLES", "LIMITS", "CREATED", "BY"]);
    for t in &tenants {
        table.row(vec![
            t.name.clone(),
            t.roles.join(","),
            describe(&t.limits.unwrap_or_default()),
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
