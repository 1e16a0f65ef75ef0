//! Schedulable resources in fixed point: cpus and custom scalars in
//! thousandths, memory and disk in bytes. Integer arithmetic means offers and
//! allocations add up exactly (Mesos learnt this the hard way with doubles).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Add, AddAssign};

use crate::proto;
use crate::size::{ParseSizeError, format_size, parse_size};

/// An amount of cpus, memory, disk and custom scalars.
#[derive(Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub cpus_milli: u64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
    /// Custom scalar resources (e.g. `gpus`), in thousandths.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scalars_milli: BTreeMap<String, u64>,
}

impl Resources {
    /// Nothing at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Cpus, memory and disk; no custom scalars.
    pub fn new(cpus: f64, mem_bytes: u64, disk_bytes: u64) -> Self {
        Self {
            cpus_milli: milli(cpus),
            mem_bytes,
            disk_bytes,
            scalars_milli: BTreeMap::new(),
        }
    }

    /// Cpus as a float, for display.
    pub fn cpus(&self) -> f64 {
        self.cpus_milli as f64 / 1000.0
    }

    /// True when every amount is zero.
    pub fn is_empty(&self) -> bool {
        self.cpus_milli == 0
            && self.mem_bytes == 0
            && self.disk_bytes == 0
            && self.scalars_milli.values().all(|v| *v == 0)
    }

    /// True when `self` has at least as much of every resource as `other`.
    pub fn contains(&self, other: &Resources) -> bool {
        self.cpus_milli >= other.cpus_milli
            && self.mem_bytes >= other.mem_bytes
            && self.disk_bytes >= other.disk_bytes
            && other
                .scalars_milli
                .iter()
                .all(|(k, v)| *v == 0 || self.scalars_milli.get(k).copied().unwrap_or(0) >= *v)
    }

    /// `self - other`, or `None` if any amount would go below zero.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        if !self.contains(other) {
            return None;
        }
        Some(self.saturating_sub(other))
    }

    /// `self - other`, clamping each amount at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        let mut scalars = self.scalars_milli.clone();
        for (k, v) in &other.scalars_milli {
            if let Some(mine) = scalars.get_mut(k) {
                *mine = mine.saturating_sub(*v);
            }
        }
        scalars.retain(|_, v| *v > 0);
        Resources {
            cpus_milli: self.cpus_milli.saturating_sub(other.cpus_milli),
            mem_bytes: self.mem_bytes.saturating_sub(other.mem_bytes),
            disk_bytes: self.disk_bytes.saturating_sub(other.disk_bytes),
            scalars_milli: scalars,
        }
    }

    /// The largest fraction of `total` this amount takes of any one
    /// resource kind: the "dominant share" of Dominant Resource Fairness.
    /// Kinds absent from `total` are ignored.
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        fn share(used: u64, total: u64) -> f64 {
            if total == 0 {
                0.0
            } else {
                used as f64 / total as f64
            }
        }
        let mut best = share(self.cpus_milli, total.cpus_milli)
            .max(share(self.mem_bytes, total.mem_bytes))
            .max(share(self.disk_bytes, total.disk_bytes));
        for (k, v) in &self.scalars_milli {
            best = best.max(share(*v, total.scalars_milli.get(k).copied().unwrap_or(0)));
        }
        best
    }
}

impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, other: &Resources) {
        self.cpus_milli += other.cpus_milli;
        self.mem_bytes += other.mem_bytes;
        self.disk_bytes += other.disk_bytes;
        for (k, v) in &other.scalars_milli {
            *self.scalars_milli.entry(k.clone()).or_default() += *v;
        }
    }
}

impl Add<&Resources> for Resources {
    type Output = Resources;
    fn add(mut self, other: &Resources) -> Resources {
        self += other;
        self
    }
}

fn milli(value: f64) -> u64 {
    (value * 1000.0).round().max(0.0) as u64
}

fn format_milli(v: u64) -> String {
    if v.is_multiple_of(1000) {
        format!("{}", v / 1000)
    } else {
        let s = format!("{:.3}", v as f64 / 1000.0);
        s.trim_end_matches('0').to_string()
    }
}

impl fmt::Display for Resources {
    /// `cpus:2 mem:4GiB disk:10GiB gpus:1`, the form `--resources` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpus:{},mem:{},disk:{}",
            format_milli(self.cpus_milli),
            format_size(self.mem_bytes),
            format_size(self.disk_bytes)
        )?;
        for (k, v) in &self.scalars_milli {
            write!(f, ",{k}:{}", format_milli(*v))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resources({self})")
    }
}

impl From<&proto::Resources> for Resources {
    fn from(p: &proto::Resources) -> Self {
        Resources {
            cpus_milli: p.cpus_milli,
            mem_bytes: p.mem_bytes,
            disk_bytes: p.disk_bytes,
            scalars_milli: p
                .scalars_milli
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

impl From<Option<&proto::Resources>> for Resources {
    fn from(p: Option<&proto::Resources>) -> Self {
        p.map(Resources::from).unwrap_or_default()
    }
}

impl From<&Resources> for proto::Resources {
    fn from(r: &Resources) -> Self {
        proto::Resources {
            cpus_milli: r.cpus_milli,
            mem_bytes: r.mem_bytes,
            disk_bytes: r.disk_bytes,
            scalars_milli: r.scalars_milli.clone().into_iter().collect(),
        }
    }
}

/// Why a `--resources` value did not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseResourcesError {
    #[error("'{0}' is not NAME:AMOUNT (e.g. cpus:2,mem:4GiB,disk:10GiB)")]
    NotPair(String),
    #[error("resource '{0}' is given twice")]
    Duplicate(String),
    #[error("invalid amount '{value}' for {name}: expected a non-negative number")]
    BadNumber { name: String, value: String },
    #[error("invalid {name}: {source}")]
    BadSize {
        name: String,
        #[source]
        source: ParseSizeError,
    },
    #[error("resource name '{0}' must be lower-case letters, digits, '_' or '-'")]
    BadName(String),
}

/// Parses `cpus:2,mem:4GiB,disk:10GiB,gpus:1`. `mem` and `disk` take sizes
/// (see [`parse_size`]); every other name is a plain number.
pub fn parse_resources(text: &str) -> Result<Resources, ParseResourcesError> {
    let mut out = Resources::empty();
    let mut seen = std::collections::BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once(':')
            .ok_or_else(|| ParseResourcesError::NotPair(part.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(ParseResourcesError::BadName(name.to_string()));
        }
        if !seen.insert(name.to_string()) {
            return Err(ParseResourcesError::Duplicate(name.to_string()));
        }
        let number = || -> Result<u64, ParseResourcesError> {
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(milli(v)),
                _ => Err(ParseResourcesError::BadNumber {
                    name: name.to_string(),
                    value: value.to_string(),
                }),
            }
        };
        let size = || {
            parse_size(value).map_err(|source| ParseResourcesError::BadSize {
                name: name.to_string(),
                source,
            })
        };
        match name {
            "cpus" => out.cpus_milli = number()?,
            "mem" => out.mem_bytes = size()?,
            "disk" => out.disk_bytes = size()?,
            other => {
                let v = number()?;
                if v > 0 {
                    out.scalars_milli.insert(other.to_string(), v);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn parses_the_agent_flag() {
        let r = parse_resources("cpus:2,mem:4GiB,disk:10GiB,gpus:1").unwrap();
        assert_eq!(r.cpus_milli, 2000);
        assert_eq!(r.mem_bytes, 4 * GIB);
        assert_eq!(r.disk_bytes, 10 * GIB);
        assert_eq!(r.scalars_milli.get("gpus"), Some(&1000));
        assert_eq!(r.to_string(), "cpus:2,mem:4GiB,disk:10GiB,gpus:1");
        assert_eq!(parse_resources(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(matches!(
            parse_resources("cpus=2"),
            Err(ParseResourcesError::NotPair(_))
        ));
        assert!(matches!(
            parse_resources("cpus:-1"),
            Err(ParseResourcesError::BadNumber { .. })
        ));
        assert!(matches!(
            parse_resources("mem:4XB"),
            Err(ParseResourcesError::BadSize { .. })
        ));
        assert!(matches!(
            parse_resources("cpus:1,cpus:2"),
            Err(ParseResourcesError::Duplicate(_))
        ));
        assert!(matches!(
            parse_resources("CPU:1"),
            Err(ParseResourcesError::BadName(_))
        ));
    }

    #[test]
    fn arithmetic_is_exact() {
        let total = Resources::new(2.0, 4 * GIB, 0);
        let mut used = Resources::empty();
        for _ in 0..10 {
            used += &Resources::new(0.1, 0, 0);
        }
        assert_eq!(used.cpus_milli, 1000);
        let free = total.checked_sub(&used).unwrap();
        assert_eq!(free.cpus_milli, 1000);
        assert!(total.contains(&used));
        assert!(!used.contains(&total));
        assert_eq!(used.checked_sub(&total), None);
        assert_eq!(used.dominant_share(&total), 0.5);
    }

    #[test]
    fn scalars_take_part_in_containment_and_share() {
        let total = parse_resources("cpus:4,gpus:2").unwrap();
        let want = parse_resources("gpus:1").unwrap();
        assert!(total.contains(&want));
        assert!(!Resources::new(4.0, 0, 0).contains(&want));
        assert_eq!(want.dominant_share(&total), 0.5);
        let left = total.checked_sub(&want).unwrap();
        assert_eq!(left.scalars_milli.get("gpus"), Some(&1000));
    }
}
