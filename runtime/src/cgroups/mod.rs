//! Linux cgroups for tasks run in executor processes: which hierarchies
//! this host has ([`layout`]: parsed from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`, v2 preferred, v1 and hybrid hosts handled), what to
//! write to put a task's cpu and memory limits on a cgroup ([`plan`]: pure,
//! the kernel's counters read back too), and doing it ([`tree`]: the
//! agent's parent cgroup and one reusable leaf per executor).
//!
//! Neighbours: the executor pool ([`crate::executor`]) owns the leaves and
//! applies a task's limits before handing it to an executor; the agent
//! creates the tree at start when `--isolation cgroups` is asked for.

pub mod layout;
pub mod plan;
pub mod tree;

pub use layout::Layout;
pub use plan::{CgroupLimits, Flavor, Hierarchy};
pub use tree::{CgroupTree, Leaf};

use std::path::PathBuf;

/// What went wrong finding or using cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A `/proc` file did not read as expected.
    #[error("{file} line {line}: {why}")]
    Parse {
        /// The file.
        file: &'static str,
        /// Its line, from 1.
        line: usize,
        /// What was wrong.
        why: String,
    },
    /// Neither a v2 hierarchy with `cpu` and `memory` nor v1 hierarchies
    /// for both were found.
    #[error(
        "no usable cpu and memory cgroup controllers ({0}); run the agent where cgroup v2 \
         delegates cpu and memory to it, or where the v1 cpu and memory hierarchies are \
         mounted, or use --isolation in-process"
    )]
    NoControllers(String),
    /// A cgroup file or directory could not be read, written or made.
    #[error("cannot {action} {}: {source}{hint}", path.display())]
    Io {
        /// What was being done (`create`, `write 50000 to`, …).
        action: String,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// What to do about it, when there is something to say.
        hint: &'static str,
    },
}

impl CgroupError {
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let hint = match source.raw_os_error() {
            Some(1 | 13 | 30) => {
                " (cgroups are not writable by the agent here: run it as root or in a cgroup \
                 delegated to its user, e.g. under systemd with Delegate=yes, or use \
                 --isolation in-process)"
            }
            Some(16) => {
                " (the cgroup is busy: it still holds processes, or a limit is below current usage)"
            }
            _ => "",
        };
        CgroupError::Io {
            action: action.into(),
            path: path.into(),
            source,
            hint,
        }
    }
}
