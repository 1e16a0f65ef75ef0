//! Whether this process can hold the tasks a configuration allows: memory
//! mappings (`vm.max_map_count`) and open files (`RLIMIT_NOFILE`) are the
//! limits that bite first at thousands of concurrent tasks.
//!
//! The costs below were measured with the sleepers benchmark (`cargo bench
//! -p wasmesos-runtime --bench launch`, and `wasmesos bench runtime
//! --sleepers`): a pooled fiber stack is a stack plus its guard page, two
//! mappings from the moment the runtime starts; a running task makes its
//! memory slot accessible (splitting the pool's reservation: two more) and
//! holds one descriptor, its sandbox directory. Log files are opened only
//! while being appended to, so they cost none.

use crate::engine::{Metering, RuntimeConfig};
use crate::error::RuntimeError;

/// Mappings of each pooled fiber stack: the stack and its guard page.
pub const MAPS_PER_STACK_SLOT: u64 = 2;
/// Mappings a running task adds with the pooling allocator: its memory's
/// accessible pages split the pool's reservation.
pub const MAPS_PER_POOLED_TASK: u64 = 2;
/// Mappings a running task adds without pooling: its memory reservation and
/// its fiber stack, each with a guard.
pub const MAPS_PER_UNPOOLED_TASK: u64 = 4;
/// The process itself: code, heap arenas, thread stacks (blocking pools
/// included). Generous: an agent measures a few hundred.
pub const MAPS_BASE: u64 = 1_500;
/// Descriptors a running task holds: its sandbox directory (files the task
/// opens itself come on top).
pub const FDS_PER_TASK: u64 = 1;
/// The process itself: listeners, connections, epoll, logs being served.
pub const FDS_BASE: u64 = 512;
/// Above this share of a limit the configuration fits, with a warning.
const CLOSE: f64 = 0.9;

/// The limits of this process that bound how many tasks it can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// `vm.max_map_count`, if readable.
    pub max_map_count: Option<u64>,
    /// The soft `RLIMIT_NOFILE`; `None` if unlimited.
    pub open_files: Option<u64>,
}

impl HostLimits {
    /// Reads them for this process, first raising the soft open-files
    /// limit to the hard one (what a daemon expecting many tasks wants).
    pub fn of_this_process() -> HostLimits {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut nofile = getrlimit(Resource::Nofile);
        if nofile.current < nofile.maximum || nofile.maximum.is_none() {
            let raised = rustix::process::Rlimit {
                current: nofile.maximum,
                maximum: nofile.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                nofile.current = nofile.maximum;
            }
        }
        let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        HostLimits {
            max_map_count,
            open_files: nofile.current,
        }
    }
}

/// What a configuration needs at worst: every pool reserved and
/// `max_tasks` tasks running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Memory mappings.
    pub maps: u64,
    /// Open file descriptors.
    pub open_files: u64,
}

impl Needs {
    /// For `config` with at most `max_tasks` tasks running at once.
    pub fn of(config: &RuntimeConfig, max_tasks: u64) -> Needs {
        let per_task = if config.pool(Metering::EpochOnly).is_some() {
            MAPS_PER_POOLED_TASK
        } else {
            MAPS_PER_UNPOOLED_TASK
        };
        Needs {
            maps: MAPS_BASE + MAPS_PER_STACK_SLOT * config.pooled_stacks() + per_task * max_tasks,
            open_files: FDS_BASE + FDS_PER_TASK * max_tasks,
        }
    }
}

/// Checks that `config` with `max_tasks` running fits `limits`. `Ok` holds
/// warnings for limits it comes close to; `Err` says which limit is too
/// small, by how much, and what to lower or raise.
pub fn check(
    config: &RuntimeConfig,
    max_tasks: u64,
    limits: &HostLimits,
) -> Result<Vec<String>, RuntimeError> {
    let needs = Needs::of(config, max_tasks);
    let stacks = config.pooled_stacks();
    let mut warnings = Vec::new();
    if let Some(limit) = limits.max_map_count {
        let what = format!(
            "{max_tasks} tasks need about {} memory mappings ({MAPS_PER_STACK_SLOT} per pooled \
             stack × {stacks} slots, up to {} per running task, {MAPS_BASE} for the agent itself) \
             and vm.max_map_count is {limit}",
            needs.maps,
            needs
                .maps
                .saturating_sub(MAPS_BASE + MAPS_PER_STACK_SLOT * stacks)
                / max_tasks.max(1),
        );
        if needs.maps > limit {
            return Err(RuntimeError::HostLimits(format!(
                "{what}: lower --max-tasks / --max-metered-tasks, or raise the limit \
                 (sysctl -w vm.max_map_count={})",
                round_up(needs.maps * 5 / 4)
            )));
        }
        if needs.maps as f64 > CLOSE * limit as f64 {
            warnings.push(format!("{what}: close to the limit"));
        }
    }
    if let Some(limit) = limits.open_files {
        let what = format!(
            "{max_tasks} tasks need about {} open files ({FDS_PER_TASK} per running task plus \
             what tasks open themselves, {FDS_BASE} for the agent itself) and the open-files \
             limit (ulimit -n) is {limit}",
            needs.open_files
        );
        if needs.open_files > limit {
            return Err(RuntimeError::HostLimits(format!(
                "{what}: lower --max-tasks, or raise the limit (ulimit -n {}, or LimitNOFILE= \
                 in the agent's systemd unit)",
                round_up(needs.open_files * 5 / 4)
            )));
        }
        if needs.open_files as f64 > CLOSE * limit as f64 {
            warnings.push(format!("{what}: close to the limit"));
        }
    }
    Ok(warnings)
}

/// A round number at least `n` (to suggest as a new limit).
fn round_up(n: u64) -> u64 {
    n.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: HostLimits = HostLimits {
        max_map_count: Some(65_530),
        open_files: Some(20_000),
    };

    #[test]
    fn ten_thousand_tasks_fit_this_machine_kind() {
        let config = RuntimeConfig::default().with_max_tasks(10_000, 2_500);
        let warnings = check(&config, 10_000, &HERE).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let needs = Needs::of(&config, 10_000);
        assert_eq!(needs.maps, 1_500 + 2 * 12_500 + 2 * 10_000);
    }

    #[test]
    fn too_many_tasks_are_refused_with_the_numbers() {
        let config = RuntimeConfig::default().with_max_tasks(20_000, 5_000);
        let err = check(&config, 20_000, &HERE).unwrap_err().to_string();
        assert!(err.contains("vm.max_map_count is 65530"), "{err}");
        assert!(err.contains("lower --max-tasks"), "{err}");
        assert!(err.contains("sysctl -w vm.max_map_count="), "{err}");

        let roomy = HostLimits {
            max_map_count: Some(1 << 20),
            open_files: Some(20_000),
        };
        let err = check(&config, 20_000, &roomy).unwrap_err().to_string();
        assert!(err.contains("open-files"), "{err}");
        assert!(err.contains("ulimit -n"), "{err}");
    }

    #[test]
    fn close_to_a_limit_is_a_warning() {
        let config = RuntimeConfig::default().with_max_tasks(13_000, 3_250);
        let warnings = check(&config, 13_000, &HERE).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("close to the limit"));
    }

    #[test]
    fn unknown_limits_are_not_checked() {
        let none = HostLimits {
            max_map_count: None,
            open_files: None,
        };
        let config = RuntimeConfig::default().with_max_tasks(20_000, 5_000);
        assert!(check(&config, 20_000, &none).unwrap().is_empty());
    }

    #[test]
    fn suggestions_are_round() {
        assert_eq!(round_up(100_001), 131_072);
        assert_eq!(round_up(0), 1);
    }
}
