//! A role's quota: a guarantee it is offered first, and a limit it never
//! exceeds.
//!
//! The guarantee is plain [`Resources`]: a kind it holds none of is not
//! guaranteed. A limit must tell "no limit on disk" from "a limit of zero
//! gpus", so it is [`ResourceLimits`], where every kind is limited or not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmesos_api::Resources;

use crate::kinds::{Kind, map_kinds};

/// A role's guarantee and limit. The default is neither.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// While a role holds less than this of some kind, and has a framework
    /// that wants offers, it is offered resources before any role is
    /// offered by fair share.
    pub guarantee: Resources,
    /// What the role's frameworks may hold at most (tasks plus outstanding
    /// offers). Offers are cut down to fit.
    pub limit: ResourceLimits,
}

/// Upper bounds on some kinds of resource; kinds without a bound are
/// unlimited. The default limits nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub cpus_milli: Option<u64>,
    pub mem_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    /// Custom scalars, in thousandths; a listed kind is limited, even to 0.
    #[serde(default)]
    pub scalars_milli: BTreeMap<String, u64>,
}

impl ResourceLimits {
    /// True when no kind is limited.
    pub fn is_unlimited(&self) -> bool {
        self.cpus_milli.is_none()
            && self.mem_bytes.is_none()
            && self.disk_bytes.is_none()
            && self.scalars_milli.is_empty()
    }

    /// The bound on `kind`, if it has one.
    pub(crate) fn of(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Cpus => self.cpus_milli,
            Kind::Mem => self.mem_bytes,
            Kind::Disk => self.disk_bytes,
            Kind::Scalar(name) => self.scalars_milli.get(name).copied(),
        }
    }

    /// True when `amount` is within every bound.
    pub fn allows(&self, amount: &Resources) -> bool {
        let within = |kind: Kind, have: u64| self.of(kind).is_none_or(|max| have <= max);
        within(Kind::Cpus, amount.cpus_milli)
            && within(Kind::Mem, amount.mem_bytes)
            && within(Kind::Disk, amount.disk_bytes)
            && amount
                .scalars_milli
                .iter()
                .all(|(name, v)| within(Kind::Scalar(name), *v))
    }

    /// The most of `offer` that a holder of `allocated` may take: each
    /// limited kind cut to what is left under its bound (nothing, if the
    /// holder is already at or over it).
    pub fn cut(&self, offer: &Resources, allocated: &Resources) -> Resources {
        map_kinds(offer, |kind, v| match self.of(kind) {
            Some(max) => v.min(max.saturating_sub(kind.of(allocated))),
            None => v,
        })
    }
}

impl ResourceLimits {
    /// True when no cut of any pool for a holder of `allocated` can be
    /// worth offering: every kind that could make an offer allocatable
    /// (those `min_allocatable` sets) is bounded, with less than the
    /// minimum left under its bound. Never true when the minimum is empty
    /// (anything non-empty is worth offering then).
    pub(crate) fn exhausted(&self, allocated: &Resources, min_allocatable: &Resources) -> bool {
        if min_allocatable.is_empty() {
            return false;
        }
        let mut exhausted = true;
        map_kinds(min_allocatable, |kind, min| {
            if min > 0 {
                let room = self
                    .of(kind)
                    .map(|max| max.saturating_sub(kind.of(allocated)));
                exhausted &= room.is_some_and(|room| room < min);
            }
            min
        });
        exhausted
    }
}

/// True while `allocated` holds less than `guarantee` of some kind.
pub fn below_guarantee(guarantee: &Resources, allocated: &Resources) -> bool {
    !allocated.contains(guarantee)
}

/// The piece of `pool` offered to a role below its guarantee, in the
/// guarantee stage: each kind the role is still short of is cut to what
/// it lacks, and every other kind comes in the same proportion of the pool
/// as the largest of those cuts (so a guarantee of cpus alone still brings
/// memory to run on). Empty when the pool holds none of what is missing.
pub fn guarantee_slice(
    pool: &Resources,
    guarantee: &Resources,
    allocated: &Resources,
) -> Resources {
    let missing = |kind: Kind| kind.of(guarantee).saturating_sub(kind.of(allocated));
    // The largest fraction missing / pool over the kinds the role lacks and
    // the pool has, as an exact ratio (numerator, denominator), capped at 1.
    let mut fraction = (0u128, 1u128);
    map_kinds(pool, |kind, have| {
        let want = missing(kind);
        if want > 0 && have > 0 {
            let candidate = (u128::from(want.min(have)), u128::from(have));
            if candidate.0 * fraction.1 > fraction.0 * candidate.1 {
                fraction = candidate;
            }
        }
        have
    });
    let (num, den) = fraction;
    map_kinds(pool, |kind, have| {
        if missing(kind) > 0 {
            have.min(missing(kind))
        } else {
            // Rounded up, so that a tiny share of a kind is not lost, and
            // never more than the pool has.
            (u128::from(have) * num).div_ceil(den).min(u128::from(have)) as u64
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesos_api::parse_resources;

    fn r(text: &str) -> Resources {
        parse_resources(text).unwrap()
    }

    #[test]
    fn a_limit_cuts_only_the_kinds_it_bounds() {
        let limit = ResourceLimits {
            cpus_milli: Some(4000),
            scalars_milli: [("gpus".to_string(), 0)].into(),
            ..Default::default()
        };
        let offer = r("cpus:8,mem:16GiB,disk:1GiB,gpus:2");
        assert_eq!(
            limit.cut(&offer, &r("cpus:1")),
            r("cpus:3,mem:16GiB,disk:1GiB")
        );
        assert_eq!(limit.cut(&offer, &r("cpus:9")), r("mem:16GiB,disk:1GiB"));
        assert_eq!(ResourceLimits::default().cut(&offer, &r("cpus:100")), offer);
        assert!(limit.allows(&r("cpus:4,mem:1TiB")));
        assert!(!limit.allows(&r("cpus:4,gpus:1")));
        assert!(ResourceLimits::default().is_unlimited() && !limit.is_unlimited());
    }

    #[test]
    fn a_guarantee_slice_covers_what_is_missing_and_a_matching_share_of_the_rest() {
        let pool = r("cpus:4,mem:16GiB,disk:8GiB");
        // Short of 1 cpu: a quarter of the agent.
        assert_eq!(
            guarantee_slice(&pool, &r("cpus:2"), &r("cpus:1")),
            r("cpus:1,mem:4GiB,disk:2GiB")
        );
        // Short of 1 cpu and 8 GiB: half the agent for memory, 1 cpu.
        assert_eq!(
            guarantee_slice(&pool, &r("cpus:1,mem:8GiB"), &Resources::empty()),
            r("cpus:1,mem:8GiB,disk:4GiB")
        );
        // Short of more than the pool: all of it.
        assert_eq!(
            guarantee_slice(&pool, &r("cpus:10"), &Resources::empty()),
            pool
        );
        // Met, or short of what the pool lacks: nothing.
        assert!(guarantee_slice(&pool, &r("cpus:1"), &r("cpus:1")).is_empty());
        assert!(guarantee_slice(&pool, &r("gpus:1"), &Resources::empty()).is_empty());
    }

    #[test]
    fn a_limit_is_exhausted_when_no_minimum_kind_has_room() {
        let limit = ResourceLimits {
            cpus_milli: Some(4000),
            mem_bytes: Some(8 << 30),
            ..Default::default()
        };
        let min = r("cpus:0.01,mem:32MiB");
        assert!(limit.exhausted(&r("cpus:4,mem:8GiB"), &min));
        assert!(limit.exhausted(&r("cpus:3.995,mem:8GiB"), &min));
        assert!(
            !limit.exhausted(&r("cpus:3.99,mem:8GiB"), &min),
            "0.01 cpus left"
        );
        assert!(!limit.exhausted(&r("cpus:4,mem:7GiB"), &min), "1 GiB left");
        let cpus_only = ResourceLimits {
            cpus_milli: Some(0),
            ..Default::default()
        };
        assert!(
            !cpus_only.exhausted(&Resources::empty(), &min),
            "memory is unlimited"
        );
        assert!(!limit.exhausted(&r("cpus:4,mem:8GiB"), &Resources::empty()));
    }

    #[test]
    fn below_guarantee_while_short_of_any_kind() {
        assert!(below_guarantee(&r("cpus:2,mem:1GiB"), &r("cpus:3")));
        assert!(!below_guarantee(
            &r("cpus:2,mem:1GiB"),
            &r("cpus:3,mem:1GiB")
        ));
        assert!(!below_guarantee(&Resources::empty(), &Resources::empty()));
    }
}
