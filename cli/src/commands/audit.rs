//! `wasmesos audit`: who did what, newest first (operators only):
//! deployments, submissions, kills, drains, role, tenant and token
//! changes, and refusals of authenticated callers.

use std::process::ExitCode;

use wasmesos_api::proto::ListAuditRequest;

use crate::client::{MasterArg, connect, failed};
use crate::format::{Table, ago};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// At most this many entries (at most 1000).
    #[arg(long, default_value = "50")]
    pub limit: u32,
    /// Only entries of tenants whose name contains this.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Only entries of principals whose name contains this (a token id).
    #[arg(long, default_value = "")]
    pub principal: String,
    /// Only actions containing this (`submit`, `token.`, `request`).
    #[arg(long, default_value = "")]
    pub action: String,
    /// Only entries older than this sequence number (to page back).
    #[arg(long, default_value = "0")]
    pub before: u64,
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let entries = client
        .list_audit(ListAuditRequest {
            limit: args.limit,
            tenant: args.tenant,
            principal: args.principal,
            action: args.action,
            before: args.before,
        })
        .await
        .map_err(failed)?
        .into_inner()
        .entries;
    let mut table = Table::new(&[
        "SEQ",
        "WHEN",
        "TENANT",
        "PRINCIPAL",
        "ACTION",
        "TARGET",
        "OUTCOME",
    ]);
    for e in &entries {
        table.row(vec![
            e.seq.to_string(),
            ago(e.ts_ms),
            e.tenant.clone(),
            e.principal.clone(),
            e.action.clone(),
            e.target.clone(),
            e.outcome.clone(),
        ]);
    }
    if table.len() == 0 {
        println!("no audit entries match");
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
