//! Arithmetic on the WIT `resources` record, in fixed point like the host's
//! (cpus and scalars in thousandths, memory and disk in bytes), so that what
//! a scheduler subtracts from an offer matches what the master accounts.
//!
//! Custom scalars travel as a list of pairs; these methods treat the list as
//! a map (a name listed twice counts as the sum) and return it sorted by
//! name without zero entries.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};

use crate::Resources;

impl Default for Resources {
    fn default() -> Self {
        Self::empty()
    }
}

impl Resources {
    /// Nothing at all.
    pub fn empty() -> Self {
        Resources {
            cpus_milli: 0,
            mem_bytes: 0,
            disk_bytes: 0,
            scalars_milli: Vec::new(),
        }
    }

    /// Cpus (in thousandths), memory and disk; no custom scalars.
    pub fn new(cpus_milli: u64, mem_bytes: u64, disk_bytes: u64) -> Self {
        Resources {
            cpus_milli,
            mem_bytes,
            disk_bytes,
            scalars_milli: Vec::new(),
        }
    }

    /// The same amount plus `milli` thousandths of the custom scalar `name`.
    pub fn with_scalar(mut self, name: &str, milli: u64) -> Self {
        self.scalars_milli.push((name.to_string(), milli));
        self.scalars_milli = normalise(scalar_map(&self.scalars_milli));
        self
    }

    /// How much of the custom scalar `name` there is, in thousandths.
    pub fn scalar(&self, name: &str) -> u64 {
        self.scalars_milli
            .iter()
            .filter(|(k, _)| k == name)
            .fold(0u64, |sum, (_, v)| sum.saturating_add(*v))
    }

    /// True when every amount is zero.
    pub fn is_empty(&self) -> bool {
        self.cpus_milli == 0
            && self.mem_bytes == 0
            && self.disk_bytes == 0
            && self.scalars_milli.iter().all(|(_, v)| *v == 0)
    }

    /// True when `self` has at least as much of every resource as `other`.
    pub fn contains(&self, other: &Resources) -> bool {
        self.cpus_milli >= other.cpus_milli
            && self.mem_bytes >= other.mem_bytes
            && self.disk_bytes >= other.disk_bytes
            && scalar_map(&other.scalars_milli)
                .iter()
                .all(|(k, v)| self.scalar(k) >= *v)
    }

    /// `self - other`, or `None` if any amount would go below zero.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        if !self.contains(other) {
            return None;
        }
        let mut scalars = scalar_map(&self.scalars_milli);
        for (k, v) in scalar_map(&other.scalars_milli) {
            if let Some(mine) = scalars.get_mut(&k) {
                *mine -= v;
            }
        }
        Some(Resources {
            cpus_milli: self.cpus_milli - other.cpus_milli,
            mem_bytes: self.mem_bytes - other.mem_bytes,
            disk_bytes: self.disk_bytes - other.disk_bytes,
            scalars_milli: normalise(scalars),
        })
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        let mut scalars = scalar_map(&self.scalars_milli);
        for (k, v) in scalar_map(&other.scalars_milli) {
            let mine = scalars.entry(k).or_default();
            *mine = mine.checked_add(v)?;
        }
        Some(Resources {
            cpus_milli: self.cpus_milli.checked_add(other.cpus_milli)?,
            mem_bytes: self.mem_bytes.checked_add(other.mem_bytes)?,
            disk_bytes: self.disk_bytes.checked_add(other.disk_bytes)?,
            scalars_milli: normalise(scalars),
        })
    }
}

/// Saturates rather than wrapping: amounts near `u64::MAX` are nonsense
/// anyway, and a scheduler callback should not trap over them.
impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, other: &Resources) {
        let mut scalars = scalar_map(&self.scalars_milli);
        for (k, v) in scalar_map(&other.scalars_milli) {
            let mine = scalars.entry(k).or_default();
            *mine = mine.saturating_add(v);
        }
        self.cpus_milli = self.cpus_milli.saturating_add(other.cpus_milli);
        self.mem_bytes = self.mem_bytes.saturating_add(other.mem_bytes);
        self.disk_bytes = self.disk_bytes.saturating_add(other.disk_bytes);
        self.scalars_milli = normalise(scalars);
    }
}

impl Add<&Resources> for Resources {
    type Output = Resources;
    fn add(mut self, other: &Resources) -> Resources {
        self += other;
        self
    }
}

/// The scalars as a map, summing names listed more than once.
pub(crate) fn scalar_map(list: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut map = BTreeMap::new();
    for (k, v) in list {
        let sum: &mut u64 = map.entry(k.clone()).or_default();
        *sum = sum.saturating_add(*v);
    }
    map
}

/// Back to the WIT list: sorted by name, zero amounts dropped.
pub(crate) fn normalise(map: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    map.into_iter().filter(|(_, v)| *v > 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gib(n: u64) -> u64 {
        n << 30
    }

    #[test]
    fn contains_compares_every_kind() {
        let agent = Resources::new(4000, gib(8), gib(10)).with_scalar("gpus", 2000);
        assert!(agent.contains(&Resources::new(4000, gib(8), gib(10))));
        assert!(agent.contains(&Resources::new(500, 1, 0).with_scalar("gpus", 2000)));
        assert!(!agent.contains(&Resources::new(4001, 0, 0)));
        assert!(!agent.contains(&Resources::new(0, gib(8) + 1, 0)));
        assert!(!agent.contains(&Resources::new(0, 0, gib(11))));
        assert!(!agent.contains(&Resources::empty().with_scalar("gpus", 2001)));
        assert!(!agent.contains(&Resources::empty().with_scalar("fpgas", 1)));
        // Asking for zero of a scalar the agent lacks is asking for nothing.
        let zero = Resources {
            scalars_milli: vec![("fpgas".into(), 0)],
            ..Resources::empty()
        };
        assert!(agent.contains(&zero));
    }

    #[test]
    fn checked_sub_is_exact_and_refuses_to_go_negative() {
        let offer = Resources::new(1000, 300, 10).with_scalar("gpus", 1000);
        let task = Resources::new(333, 100, 0).with_scalar("gpus", 1000);
        let left = offer.checked_sub(&task).unwrap();
        assert_eq!(left, Resources::new(667, 200, 10));
        let left = left.checked_sub(&Resources::new(333, 100, 0)).unwrap();
        let left = left.checked_sub(&Resources::new(333, 100, 0)).unwrap();
        assert_eq!(left, Resources::new(1, 0, 10));
        assert_eq!(left.checked_sub(&Resources::new(2, 0, 0)), None);
        assert_eq!(left.checked_sub(&task), None);
    }

    #[test]
    fn add_merges_scalars_sorted_without_zeros() {
        let a = Resources {
            scalars_milli: vec![("z".into(), 1), ("a".into(), 0), ("z".into(), 2)],
            ..Resources::new(1, 2, 3)
        };
        let b = Resources::new(10, 20, 30).with_scalar("m", 5);
        let sum = a.clone() + &b;
        assert_eq!(sum.cpus_milli, 11);
        assert_eq!(sum.mem_bytes, 22);
        assert_eq!(sum.disk_bytes, 33);
        assert_eq!(sum.scalars_milli, vec![("m".into(), 5), ("z".into(), 3)]);
        assert_eq!(a.checked_add(&b), Some(sum));
        assert_eq!(Resources::new(u64::MAX, 0, 0).checked_add(&b), None);
    }

    #[test]
    fn scalar_and_is_empty() {
        let r = Resources::empty().with_scalar("gpus", 500);
        assert_eq!(r.scalar("gpus"), 500);
        assert_eq!(r.scalar("fpgas"), 0);
        assert!(!r.is_empty());
        assert!(Resources::default().is_empty());
    }
}
