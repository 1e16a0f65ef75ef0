//! `wasmesos role set NAME`: change a role's weight and quota at run time.
//! The master stores them, so they outlive restarts.

use std::process::ExitCode;

use anyhow::bail;
use wasmesos_api::Resources;
use wasmesos_api::proto::{ResourceLimits, SetRoleRequest};

use super::role_args::{Limit, format_amounts, format_limit, guarantee_arg, limit_arg};
use crate::client::{MasterArg, connect, failed};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Create or change a role. Settings not given keep their value.
    Set {
        /// The role.
        name: String,
        /// Its weight in fair sharing: weight 2 is entitled to twice the
        /// dominant share of weight 1.
        #[arg(long, allow_negative_numbers = true)]
        weight: Option<f64>,
        /// Offered first: while the role holds less than this and wants
        /// offers, it is served before fair sharing, e.g. cpus:10,mem:20GiB
        /// (empty: no guarantee).
        #[arg(long, value_parser = guarantee_arg, allow_hyphen_values = true)]
        guarantee: Option<Resources>,
        /// Never exceeded, e.g. cpus:10,mem:20GiB; kinds left out are
        /// unlimited, `gpus:0` allows none; `none` removes the limit.
        #[arg(long, value_parser = limit_arg)]
        limit: Option<Limit>,
        /// Both the guarantee and the limit (Mesos' quota).
        #[arg(long, value_parser = limit_arg, conflicts_with_all = ["guarantee", "limit"])]
        quota: Option<Limit>,
        #[command(flatten)]
        master: MasterArg,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Action::Set {
        name,
        weight,
        guarantee,
        limit,
        quota,
        master,
    } = args.action;
    if weight.is_none() && guarantee.is_none() && limit.is_none() && quota.is_none() {
        bail!("nothing to set: give --weight, --guarantee, --limit or --quota");
    }
    let mut request = SetRoleRequest {
        name,
        weight,
        guarantee: guarantee.as_ref().map(Into::into),
        ..Default::default()
    };
    let set_limit = |request: &mut SetRoleRequest, limit: Option<ResourceLimits>| match limit {
        Some(limit) => request.limit = Some(limit),
        None => request.clear_limit = true,
    };
    if let Some(Limit(limit)) = limit {
        set_limit(&mut request, limit);
    }
    if let Some(Limit(quota)) = quota {
        let guarantee = quota.as_ref().map(limits_as_amounts).unwrap_or_default();
        request.guarantee = Some((&guarantee).into());
        set_limit(&mut request, quota);
    }
    let mut client = connect(&master).await?;
    let role = client.set_role(request).await.map_err(failed)?.into_inner();
    println!(
        "role {}: weight {}, guarantee {}, limit {}",
        role.name,
        role.weight,
        format_amounts(&Resources::from(role.guarantee.as_ref())),
        format_limit(role.limit.as_ref()),
    );
    Ok(ExitCode::SUCCESS)
}

/// A quota's amounts as a guarantee.
fn limits_as_amounts(limits: &ResourceLimits) -> Resources {
    Resources {
        cpus_milli: limits.cpus_milli.unwrap_or(0),
        mem_bytes: limits.mem_bytes.unwrap_or(0),
        disk_bytes: limits.disk_bytes.unwrap_or(0),
        scalars_milli: limits
            .scalars_milli
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        action: Action,
    }

    fn parse(args: &[&str]) -> Result<Action, clap::Error> {
        let mut full = vec!["wasmesos", "set", "batch"];
        full.extend(args);
        Cli::try_parse_from(full).map(|cli| cli.action)
    }

    #[test]
    fn every_setting_parses_and_quota_excludes_the_others() {
        let Action::Set {
            weight,
            guarantee,
            limit,
            quota,
            ..
        } = parse(&["--weight", "-1", "--guarantee", "cpus:1", "--limit", "none"]).unwrap();
        assert_eq!(weight, Some(-1.0), "the master explains what is wrong");
        assert_eq!(
            guarantee,
            Some(wasmesos_api::parse_resources("cpus:1").unwrap())
        );
        assert_eq!(limit, Some(Limit(None)));
        assert_eq!(quota, None);
        let Action::Set { quota, .. } = parse(&["--quota", "cpus:2"]).unwrap();
        assert_eq!(
            quota.and_then(|q| q.0).and_then(|q| q.cpus_milli),
            Some(2000)
        );
        assert!(parse(&["--quota", "cpus:2", "--limit", "cpus:3"]).is_err());
        assert!(parse(&["--limit", "cpus:x"]).is_err());
    }

    #[test]
    fn a_quota_guarantees_what_it_limits() {
        let limits = ResourceLimits {
            cpus_milli: Some(2000),
            scalars_milli: [("gpus".to_string(), 0)].into(),
            ..Default::default()
        };
        assert_eq!(
            limits_as_amounts(&limits),
            wasmesos_api::parse_resources("cpus:2").unwrap()
        );
    }
}
