//! The allocator's knobs.

use serde::{Deserialize, Serialize};
use wasmesos_api::Resources;

/// Mesos' default `min_allocatable_resources` for cpus: 0.01 cpus. Less than
/// this is too little to run anything, and offering it only churns offers.
pub const DEFAULT_MIN_ALLOCATABLE_CPUS_MILLI: u64 = 10;

/// Mesos' default `min_allocatable_resources` for memory: 32 MiB, enough
/// for a small task.
pub const DEFAULT_MIN_ALLOCATABLE_MEM_BYTES: u64 = 32 << 20;

/// How the allocator behaves; [`Config::default`] follows Mesos' defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// An agent's free resources are offered only if they hold at least this
    /// much of *any one* kind set here (non-zero). The default (0.01 cpus,
    /// 32 MiB memory) means "at least 0.01 cpus OR at least 32 MiB".
    /// Empty means any non-empty free resources are offered.
    pub min_allocatable: Resources,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_allocatable: Resources {
                cpus_milli: DEFAULT_MIN_ALLOCATABLE_CPUS_MILLI,
                mem_bytes: DEFAULT_MIN_ALLOCATABLE_MEM_BYTES,
                ..Resources::empty()
            },
        }
    }
}

impl Config {
    /// True when `free` is worth offering (see [`Config::min_allocatable`]).
    pub fn allocatable(&self, free: &Resources) -> bool {
        if free.is_empty() {
            return false;
        }
        let min = &self.min_allocatable;
        if min.is_empty() {
            return true;
        }
        let enough = |have: u64, want: u64| want > 0 && have >= want;
        enough(free.cpus_milli, min.cpus_milli)
            || enough(free.mem_bytes, min.mem_bytes)
            || enough(free.disk_bytes, min.disk_bytes)
            || min.scalars_milli.iter().any(|(kind, want)| {
                enough(free.scalars_milli.get(kind).copied().unwrap_or(0), *want)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn default_wants_a_hundredth_of_a_cpu_or_32_mib() {
        let config = Config::default();
        assert!(config.allocatable(&Resources::new(0.01, 0, 0)));
        assert!(config.allocatable(&Resources::new(0.0, 32 * MIB, 0)));
        assert!(config.allocatable(&Resources::new(0.01, 1, 0)));
        assert!(!config.allocatable(&Resources::new(0.009, 31 * MIB, 0)));
        assert!(!config.allocatable(&Resources::new(0.0, 0, 1 << 40)));
        assert!(!config.allocatable(&Resources::empty()));
    }

    #[test]
    fn custom_scalars_can_qualify() {
        let config = Config {
            min_allocatable: wasmesos_api::parse_resources("cpus:1,gpus:1").unwrap(),
        };
        assert!(config.allocatable(&wasmesos_api::parse_resources("gpus:1").unwrap()));
        assert!(!config.allocatable(&wasmesos_api::parse_resources("cpus:0.5").unwrap()));
    }

    #[test]
    fn empty_minimum_offers_anything_non_empty() {
        let config = Config {
            min_allocatable: Resources::empty(),
        };
        assert!(config.allocatable(&Resources::new(0.001, 0, 0)));
        assert!(!config.allocatable(&Resources::empty()));
    }
}
