//! The cgroup planner: from a hierarchy flavour and a task's limits, the
//! file writes that put them on a cgroup — and the readers of the counters
//! the agent looks at afterwards (OOM kills, CPU throttling).
//!
//! Pure, no I/O: [`tree`](super::tree) performs the writes in the order
//! given. The order matters on v1, where `memory.memsw.limit_in_bytes`
//! (memory plus swap) may never be below `memory.limit_in_bytes`: a limit
//! is raised swap-first and lowered memory-first. Writes equal to what the
//! cgroup already holds are left out, so an executor reused for a task with
//! the same resources costs no write at all.

use crate::cpu::CpuQuota;
use std::time::Duration;

/// The hierarchy a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hierarchy {
    /// cgroup v2: every controller in one directory.
    Unified,
    /// cgroup v1 `memory`.
    Memory,
    /// cgroup v1 `cpu`.
    Cpu,
}

/// Which interface files a cgroup has, as far as the planner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// cgroup v2; `swap`: `memory.swap.max` exists (swap accounting on).
    V2 {
        /// Whether `memory.swap.max` exists.
        swap: bool,
    },
    /// cgroup v1; `memsw`: `memory.memsw.limit_in_bytes` exists
    /// (`swapaccount=1`).
    V1 {
        /// Whether `memory.memsw.limit_in_bytes` exists.
        memsw: bool,
    },
}

/// What a cgroup allows. Zero means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupLimits {
    /// Thousandths of a cpu, enforced per [`CpuQuota::PERIOD`].
    pub cpus_milli: u64,
    /// Bytes of memory (the executor process as a whole: the task's linear
    /// memory plus the executor's own), and no swap beyond it.
    pub mem_bytes: u64,
}

/// One write into a cgroup's interface file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The hierarchy of the file.
    pub hierarchy: Hierarchy,
    /// The file name within the cgroup's directory.
    pub file: &'static str,
    /// What to write.
    pub value: String,
}

/// The smallest `cfs_quota_us` the kernel accepts.
const MIN_QUOTA_US: u64 = 1000;

/// The writes that turn a cgroup holding `previous` (`None`: unknown or
/// fresh — write everything) into one holding `limits`, in order.
pub fn plan(flavor: Flavor, limits: CgroupLimits, previous: Option<CgroupLimits>) -> Vec<Write> {
    let mut writes = Vec::new();
    let mem_changed = previous.is_none_or(|p| p.mem_bytes != limits.mem_bytes);
    let cpu_changed = previous.is_none_or(|p| p.cpus_milli != limits.cpus_milli);
    let w = |hierarchy, file, value: String| Write {
        hierarchy,
        file,
        value,
    };
    let (quota, period) = match CpuQuota::from_milli(limits.cpus_milli) {
        Some(q) => {
            let (quota, period) = q.cfs_quota_us();
            (Some(quota.max(MIN_QUOTA_US)), period)
        }
        None => (None, CpuQuota::PERIOD.as_micros() as u64),
    };
    match flavor {
        Flavor::V2 { swap } => {
            if mem_changed {
                let max = match limits.mem_bytes {
                    0 => "max".to_string(),
                    n => n.to_string(),
                };
                writes.push(w(Hierarchy::Unified, "memory.max", max));
                if swap {
                    let swap_max = if limits.mem_bytes == 0 { "max" } else { "0" };
                    writes.push(w(Hierarchy::Unified, "memory.swap.max", swap_max.into()));
                }
            }
            if cpu_changed {
                let quota = quota.map_or_else(|| "max".to_string(), |q| q.to_string());
                writes.push(w(
                    Hierarchy::Unified,
                    "cpu.max",
                    format!("{quota} {period}"),
                ));
            }
        }
        Flavor::V1 { memsw } => {
            if mem_changed {
                let value = match limits.mem_bytes {
                    0 => "-1".to_string(),
                    n => n.to_string(),
                };
                let limit = w(Hierarchy::Memory, "memory.limit_in_bytes", value.clone());
                if memsw {
                    let with_swap = w(Hierarchy::Memory, "memory.memsw.limit_in_bytes", value);
                    let unlimited = |b: u64| if b == 0 { u64::MAX } else { b };
                    let before = previous.map_or(u64::MAX, |p| unlimited(p.mem_bytes));
                    if unlimited(limits.mem_bytes) > before {
                        writes.extend([with_swap, limit]);
                    } else {
                        writes.extend([limit, with_swap]);
                    }
                } else {
                    writes.push(limit);
                }
            }
            if cpu_changed {
                if previous.is_none() {
                    writes.push(w(Hierarchy::Cpu, "cpu.cfs_period_us", period.to_string()));
                }
                let quota = quota.map_or_else(|| "-1".to_string(), |q| q.to_string());
                writes.push(w(Hierarchy::Cpu, "cpu.cfs_quota_us", quota));
            }
        }
    }
    writes
}

/// The file and hierarchy counting OOM kills in a cgroup: v2
/// `memory.events`, v1 `memory.oom_control` (both have an `oom_kill` line).
pub fn oom_file(flavor: Flavor) -> (Hierarchy, &'static str) {
    match flavor {
        Flavor::V2 { .. } => (Hierarchy::Unified, "memory.events"),
        Flavor::V1 { .. } => (Hierarchy::Memory, "memory.oom_control"),
    }
}

/// The hierarchy of `cpu.stat`.
pub fn cpu_stat_hierarchy(flavor: Flavor) -> Hierarchy {
    match flavor {
        Flavor::V2 { .. } => Hierarchy::Unified,
        Flavor::V1 { .. } => Hierarchy::Cpu,
    }
}

/// The value of `key` in a flat-keyed file (`key value` lines), as in
/// `memory.events`, `memory.oom_control` and `cpu.stat`.
pub fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Processes the kernel's OOM killer has killed in the cgroup, from its
/// [`oom_file`] (0 when the kernel does not say).
pub fn oom_kills(text: &str) -> u64 {
    counter(text, "oom_kill").unwrap_or(0)
}

/// Time the cgroup's processes were held back by its cpu quota, from its
/// `cpu.stat` (v2 `throttled_usec`, v1 `throttled_time` in nanoseconds).
pub fn throttled(flavor: Flavor, cpu_stat: &str) -> Duration {
    match flavor {
        Flavor::V2 { .. } => {
            Duration::from_micros(counter(cpu_stat, "throttled_usec").unwrap_or(0))
        }
        Flavor::V1 { .. } => Duration::from_nanos(counter(cpu_stat, "throttled_time").unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(writes: &[Write]) -> Vec<(Hierarchy, &str, &str)> {
        writes
            .iter()
            .map(|w| (w.hierarchy, w.file, w.value.as_str()))
            .collect()
    }

    const HALF_CPU_64MIB: CgroupLimits = CgroupLimits {
        cpus_milli: 500,
        mem_bytes: 64 << 20,
    };

    #[test]
    fn v2_memory_swap_and_cpu_max() {
        let writes = plan(Flavor::V2 { swap: true }, HALF_CPU_64MIB, None);
        assert_eq!(
            files(&writes),
            [
                (Hierarchy::Unified, "memory.max", "67108864"),
                (Hierarchy::Unified, "memory.swap.max", "0"),
                (Hierarchy::Unified, "cpu.max", "50000 100000"),
            ]
        );
        // No swap accounting: no swap file; no limits: "max".
        let writes = plan(Flavor::V2 { swap: false }, CgroupLimits::default(), None);
        assert_eq!(
            files(&writes),
            [
                (Hierarchy::Unified, "memory.max", "max"),
                (Hierarchy::Unified, "cpu.max", "max 100000"),
            ]
        );
    }

    #[test]
    fn v1_limits_quota_and_period() {
        let writes = plan(Flavor::V1 { memsw: false }, HALF_CPU_64MIB, None);
        assert_eq!(
            files(&writes),
            [
                (Hierarchy::Memory, "memory.limit_in_bytes", "67108864"),
                (Hierarchy::Cpu, "cpu.cfs_period_us", "100000"),
                (Hierarchy::Cpu, "cpu.cfs_quota_us", "50000"),
            ]
        );
        let none = plan(Flavor::V1 { memsw: false }, CgroupLimits::default(), None);
        assert_eq!(none[0].value, "-1");
        assert_eq!(none[2].value, "-1");
    }

    #[test]
    fn v1_memsw_is_raised_first_and_lowered_last() {
        let v1 = Flavor::V1 { memsw: true };
        // A fresh cgroup is unlimited: lowering, memory first.
        let writes = plan(v1, HALF_CPU_64MIB, None);
        assert_eq!(writes[0].file, "memory.limit_in_bytes");
        assert_eq!(writes[1].file, "memory.memsw.limit_in_bytes");
        assert_eq!(writes[1].value, "67108864");
        // Raising from 64 MiB to 128 MiB: swap limit first.
        let bigger = CgroupLimits {
            mem_bytes: 128 << 20,
            ..HALF_CPU_64MIB
        };
        let writes = plan(v1, bigger, Some(HALF_CPU_64MIB));
        assert_eq!(
            files(&writes),
            [
                (
                    Hierarchy::Memory,
                    "memory.memsw.limit_in_bytes",
                    "134217728"
                ),
                (Hierarchy::Memory, "memory.limit_in_bytes", "134217728"),
            ]
        );
        // Back down: memory first.
        let writes = plan(v1, HALF_CPU_64MIB, Some(bigger));
        assert_eq!(writes[0].file, "memory.limit_in_bytes");
        // To no limit at all is a raise.
        let writes = plan(v1, CgroupLimits::default(), Some(HALF_CPU_64MIB));
        assert_eq!(writes[0].file, "memory.memsw.limit_in_bytes");
        assert_eq!(writes[0].value, "-1");
    }

    #[test]
    fn unchanged_limits_need_no_writes() {
        for flavor in [Flavor::V1 { memsw: true }, Flavor::V2 { swap: true }] {
            assert!(plan(flavor, HALF_CPU_64MIB, Some(HALF_CPU_64MIB)).is_empty());
            let more_cpu = CgroupLimits {
                cpus_milli: 2000,
                ..HALF_CPU_64MIB
            };
            let writes = plan(flavor, more_cpu, Some(HALF_CPU_64MIB));
            assert_eq!(writes.len(), 1, "{writes:?}");
            assert!(writes[0].value.starts_with("200000"), "{writes:?}");
        }
    }

    #[test]
    fn a_tiny_share_gets_the_smallest_quota_the_kernel_takes() {
        let tiny = CgroupLimits {
            cpus_milli: 5,
            mem_bytes: 0,
        };
        let writes = plan(Flavor::V2 { swap: false }, tiny, None);
        assert_eq!(writes[1].value, "1000 100000");
        let writes = plan(Flavor::V1 { memsw: false }, tiny, None);
        assert_eq!(writes[2].value, "1000");
    }

    #[test]
    fn reads_counters() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kills(events), 1);
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(oom_kills(oom_control), 3);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
        let v1_stat = "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\n";
        assert_eq!(
            throttled(Flavor::V1 { memsw: false }, v1_stat),
            Duration::from_millis(250)
        );
        let v2_stat = "usage_usec 100\nnr_throttled 1\nthrottled_usec 1500\n";
        assert_eq!(
            throttled(Flavor::V2 { swap: false }, v2_stat),
            Duration::from_micros(1500)
        );
        assert_eq!(counter("a 1\nab 2\n", "ab"), Some(2));
        assert_eq!(counter("a x\n", "a"), None);
        assert_eq!(oom_file(Flavor::V2 { swap: true }).1, "memory.events");
        assert_eq!(
            cpu_stat_hierarchy(Flavor::V1 { memsw: true }),
            Hierarchy::Cpu
        );
    }
}
