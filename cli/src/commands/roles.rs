//! `wasmesos roles`: each role's weight, quota, allocation, dominant share
//! and frameworks.

use std::process::ExitCode;

use wasmesos_api::Resources;
use wasmesos_api::proto::ListRolesRequest;

use super::role_args::{format_amounts, format_limit};
use crate::client::{MasterArg, connect, failed};
use crate::format::Table;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let roles = client
        .list_roles(ListRolesRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .roles;
    let mut table = Table::new(&[
        "ROLE",
        "WEIGHT",
        "GUARANTEE",
        "LIMIT",
        "ALLOCATED",
        "SHARE",
        "FRAMEWORKS",
    ]);
    for r in &roles {
        table.row(vec![
            r.name.clone(),
            format!("{}", r.weight),
            format_amounts(&Resources::from(r.guarantee.as_ref())),
            format_limit(r.limit.as_ref()),
            format_amounts(&Resources::from(r.allocated.as_ref())),
            format!("{:.1}%", r.dominant_share * 100.0),
            if r.frameworks.is_empty() {
                "-".into()
            } else {
                r.frameworks.join(",")
            },
        ]);
    }
    if table.len() == 0 {
        println!("no roles: deploy a framework, or `wasmesos role set NAME --weight W`");
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
