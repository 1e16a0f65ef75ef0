//! `wasmesos status`: what the master says about itself.

use std::process::ExitCode;

use wasmesos_api::Resources;
use wasmesos_api::proto::GetStatusRequest;

use crate::client::{MasterArg, connect, failed};
use crate::format::{ago, used_of};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub master: MasterArg,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let s = client
        .get_status(GetStatusRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    let total = Resources::from(s.total.as_ref());
    let used = Resources::from(s.used.as_ref());
    let [cpus, mem, disk] = used_of(&used, &total);
    println!(
        "master      {} (epoch {}, up since {})",
        s.advertise,
        s.leader_epoch,
        ago(s.started_ms)
    );
    let standbys: Vec<&str> = s
        .masters
        .iter()
        .map(String::as_str)
        .filter(|m| *m != s.advertise)
        .collect();
    if !s.masters.is_empty() {
        let list = if standbys.is_empty() {
            "none".to_string()
        } else {
            standbys.join(", ")
        };
        println!("standbys    {list}");
    }
    println!("version     {}", s.version);
    println!("store       {}", s.store);
    println!("agents      {} active", s.agents_active);
    println!("frameworks  {}", s.frameworks);
    println!("tasks       {} active", s.tasks_active);
    println!("resources   cpus {cpus}  mem {mem}  disk {disk} (used/total)");
    println!(
        "memory      {} resident",
        wasmesos_api::format_size(s.rss_bytes)
    );
    Ok(ExitCode::SUCCESS)
}
