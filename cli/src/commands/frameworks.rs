//! `wasmesos frameworks`: frameworks, their roles, tasks and shares.

use std::process::ExitCode;

use wasmesos_api::proto::ListFrameworksRequest;

use crate::client::{MasterArg, connect, failed};
use crate::format::Table;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let frameworks = client
        .list_frameworks(ListFrameworksRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .frameworks;
    let mut table = Table::new(&[
        "NAME", "ID", "TENANT", "ROLE", "WEIGHT", "TASKS", "SHARE", "STATUS",
    ]);
    for f in &frameworks {
        table.row(vec![
            f.name.clone(),
            f.framework_id.clone(),
            f.tenant.clone(),
            f.role.clone(),
            format!("{}", f.weight),
            f.tasks_running.to_string(),
            format!("{:.1}%", f.dominant_share * 100.0),
            f.status.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
