//! Per-kind arithmetic on [`Resources`] that quotas and reservations need
//! and `wasmesos-api` does not offer: element-wise minimum, and the visit
//! of every kind an amount holds.

use wasmesos_api::Resources;

/// One kind of resource: cpus, memory, disk, or a custom scalar by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    Cpus,
    Mem,
    Disk,
    Scalar(&'a str),
}

impl Kind<'_> {
    /// How much of this kind `r` holds.
    pub(crate) fn of(&self, r: &Resources) -> u64 {
        match self {
            Kind::Cpus => r.cpus_milli,
            Kind::Mem => r.mem_bytes,
            Kind::Disk => r.disk_bytes,
            Kind::Scalar(name) => r.scalars_milli.get(*name).copied().unwrap_or(0),
        }
    }
}

/// A copy of `r` with each kind's amount replaced by `f(kind, amount)`.
/// Only the kinds `r` holds are visited (cpus, mem and disk always).
pub(crate) fn map_kinds<'a>(
    r: &'a Resources,
    mut f: impl FnMut(Kind<'a>, u64) -> u64,
) -> Resources {
    Resources {
        cpus_milli: f(Kind::Cpus, r.cpus_milli),
        mem_bytes: f(Kind::Mem, r.mem_bytes),
        disk_bytes: f(Kind::Disk, r.disk_bytes),
        scalars_milli: r
            .scalars_milli
            .iter()
            .map(|(name, v)| (name.clone(), f(Kind::Scalar(name), *v)))
            // Zero scalars are dropped, as `Resources` arithmetic does.
            .filter(|(_, v)| *v > 0)
            .collect(),
    }
}

/// The element-wise minimum of `a` and `b`.
pub(crate) fn min(a: &Resources, b: &Resources) -> Resources {
    map_kinds(a, |kind, v| v.min(kind.of(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesos_api::parse_resources;

    #[test]
    fn min_takes_the_smaller_amount_of_each_kind() {
        let a = parse_resources("cpus:4,mem:1GiB,gpus:2,fpgas:1").unwrap();
        let b = parse_resources("cpus:2,mem:8GiB,gpus:3").unwrap();
        assert_eq!(
            min(&a, &b),
            parse_resources("cpus:2,mem:1GiB,gpus:2").unwrap()
        );
        assert_eq!(min(&a, &b), min(&b, &a));
    }
}
