//! Resource arguments about roles, in the `cpus:2,mem:4GiB` form of
//! `--resources`: an agent's `--reserve ROLE:RESOURCES`, and a role's
//! `--guarantee` and `--limit` (where a kind left out is unlimited, and a
//! kind given as 0 is limited to nothing).

use wasmesos_api::proto::ResourceLimits;
use wasmesos_api::{Resources, parse_resources};

/// For clap: `ROLE:cpus:2,mem:4GiB`.
pub fn reserve_arg(text: &str) -> Result<(String, Resources), String> {
    let (role, resources) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not ROLE:RESOURCES (e.g. db:cpus:2,mem:4GiB)"))?;
    let role = role.trim();
    if role.is_empty() {
        return Err(format!("'{text}' names no role (e.g. db:cpus:2,mem:4GiB)"));
    }
    let resources = parse_resources(resources).map_err(|e| e.to_string())?;
    if resources.is_empty() {
        return Err(format!("'{text}' reserves nothing"));
    }
    Ok((role.to_string(), resources))
}

/// For clap: a guarantee, `cpus:10,mem:20GiB`.
pub fn guarantee_arg(text: &str) -> Result<Resources, String> {
    parse_resources(text).map_err(|e| e.to_string())
}

/// A `--limit`: bounds, or none at all (`none`).
#[derive(Clone, Debug, PartialEq)]
pub struct Limit(pub Option<ResourceLimits>);

/// For clap: a limit, `cpus:10,mem:20GiB`; `none` for no limit.
pub fn limit_arg(text: &str) -> Result<Limit, String> {
    if text.trim() == "none" {
        return Ok(Limit(None));
    }
    let amounts = parse_resources(text).map_err(|e| e.to_string())?;
    let mut limits = ResourceLimits::default();
    // parse_resources checked every part; only the names are needed here,
    // to tell a kind limited to 0 from a kind left out.
    for name in text
        .split(',')
        .filter_map(|part| part.split_once(':'))
        .map(|(name, _)| name.trim())
    {
        match name {
            "cpus" => limits.cpus_milli = Some(amounts.cpus_milli),
            "mem" => limits.mem_bytes = Some(amounts.mem_bytes),
            "disk" => limits.disk_bytes = Some(amounts.disk_bytes),
            other => {
                let amount = amounts.scalars_milli.get(other).copied().unwrap_or(0);
                limits.scalars_milli.insert(other.to_string(), amount);
            }
        }
    }
    Ok(Limit(Some(limits)))
}

/// `cpus:10,mem:20GiB` for a limit; `-` for none.
pub fn format_limit(limit: Option<&ResourceLimits>) -> String {
    let Some(limit) = limit else {
        return "-".into();
    };
    let mut parts = Vec::new();
    if let Some(v) = limit.cpus_milli {
        parts.push(format!("cpus:{}", milli(v)));
    }
    if let Some(v) = limit.mem_bytes {
        parts.push(format!("mem:{}", wasmesos_api::format_size(v)));
    }
    if let Some(v) = limit.disk_bytes {
        parts.push(format!("disk:{}", wasmesos_api::format_size(v)));
    }
    let mut scalars: Vec<_> = limit.scalars_milli.iter().collect();
    scalars.sort();
    for (name, v) in scalars {
        parts.push(format!("{name}:{}", milli(*v)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// Amounts as `cpus:10,mem:20GiB`, naming only the kinds they hold; `-`
/// for nothing.
pub fn format_amounts(guarantee: &Resources) -> String {
    let mut parts = Vec::new();
    if guarantee.cpus_milli > 0 {
        parts.push(format!("cpus:{}", milli(guarantee.cpus_milli)));
    }
    if guarantee.mem_bytes > 0 {
        parts.push(format!(
            "mem:{}",
            wasmesos_api::format_size(guarantee.mem_bytes)
        ));
    }
    if guarantee.disk_bytes > 0 {
        parts.push(format!(
            "disk:{}",
            wasmesos_api::format_size(guarantee.disk_bytes)
        ));
    }
    for (name, v) in &guarantee.scalars_milli {
        parts.push(format!("{name}:{}", milli(*v)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn milli(v: u64) -> String {
    let text = format!("{:.3}", v as f64 / 1000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_names_a_role_and_what_it_gets() {
        let (role, r) = reserve_arg("db:cpus:2,mem:4GiB").unwrap();
        assert_eq!(role, "db");
        assert_eq!(r, parse_resources("cpus:2,mem:4GiB").unwrap());
        assert!(reserve_arg("cpus2").is_err());
        assert!(reserve_arg(":cpus:2").is_err());
        assert!(reserve_arg("db:cpus:0").is_err());
        assert!(reserve_arg("db:cpus:x").is_err());
    }

    #[test]
    fn a_limit_bounds_only_the_kinds_it_names() {
        let limit = limit_arg("cpus:10,mem:20GiB,gpus:0").unwrap().0.unwrap();
        assert_eq!(limit.cpus_milli, Some(10_000));
        assert_eq!(limit.mem_bytes, Some(20 << 30));
        assert_eq!(limit.disk_bytes, None);
        assert_eq!(limit.scalars_milli.get("gpus"), Some(&0));
        assert_eq!(format_limit(Some(&limit)), "cpus:10,mem:20GiB,gpus:0");
        assert_eq!(limit_arg("none").unwrap(), Limit(None));
        assert!(limit_arg("cpus:-1").is_err());
        assert_eq!(format_limit(None), "-");
    }

    #[test]
    fn a_guarantee_shows_what_it_holds() {
        let g = guarantee_arg("cpus:0.5,mem:1GiB").unwrap();
        assert_eq!(format_amounts(&g), "cpus:0.5,mem:1GiB");
        assert_eq!(format_amounts(&Resources::empty()), "-");
    }
}
