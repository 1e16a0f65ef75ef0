//! The agent's cgroups on disk: a parent cgroup per hierarchy under the
//! agent's own (`<own>/wasmesos-<name>/`), and below it one leaf per
//! executor process (`exec-N`), kept and reused across tasks and executors.
//!
//! [`CgroupTree::create`] reads this process's layout
//! ([`layout`](super::layout)), makes the parents and fails with what it
//! tried and what to do when cgroups are not writable. A [`Leaf`] applies a
//! task's limits with the writes the [`plan`](super::plan) gives, takes a
//! process in, and reads back OOM kills and CPU throttling. On cgroup v2 a
//! cgroup with processes cannot hand controllers to children; if the
//! agent's own cgroup holds only the agent, the agent moves itself into a
//! leaf `<own>/wasmesos-<name>-agent` first (what systemd's `Delegate=yes`
//! expects of a delegated service).

use super::CgroupError;
use super::layout::{self, Layout};
use super::plan::{self, CgroupLimits, Flavor, Hierarchy};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long removing a leaf waits for its processes to be gone.
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// The agent's parent cgroups.
#[derive(Debug)]
pub struct CgroupTree {
    layout: Layout,
    flavor: Flavor,
    parents: Vec<(Hierarchy, PathBuf)>,
}

impl CgroupTree {
    /// Finds this process's cgroups and creates `wasmesos-<name>` under
    /// them (reusing and emptying one a crashed agent of the same name
    /// left).
    pub fn create(name: &str) -> Result<CgroupTree, CgroupError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))
        };
        let mounts = layout::parse_mountinfo(&read("/proc/self/mountinfo")?)?;
        let members = layout::parse_proc_cgroup(&read("/proc/self/cgroup")?)?;
        let unified = mounts.iter().find(|m| m.unified).and_then(|m| {
            let member = members.iter().find(|g| g.hierarchy == 0)?;
            let rel = member.path.trim_start_matches('/');
            let root = m.root.trim_matches('/');
            let rel = rel
                .strip_prefix(root)
                .unwrap_or(rel)
                .trim_start_matches('/');
            std::fs::read_to_string(m.mount_point.join(rel).join("cgroup.controllers")).ok()
        });
        let layout = Layout::detect(&mounts, &members, unified.as_deref())?;
        CgroupTree::in_layout(layout, name)
    }

    /// Creates `wasmesos-<name>` in the hierarchies of `layout`.
    pub fn in_layout(layout: Layout, name: &str) -> Result<CgroupTree, CgroupError> {
        let dir_name = format!("wasmesos-{name}");
        let (flavor, parents) = match &layout {
            Layout::V2 { own } => {
                enable_controllers(own, &format!("{dir_name}-agent"))?;
                let parent = own.join(&dir_name);
                make_dir(&parent)?;
                write(&parent.join("cgroup.subtree_control"), "+cpu +memory")?;
                let swap = parent.join("memory.swap.max").exists();
                (Flavor::V2 { swap }, vec![(Hierarchy::Unified, parent)])
            }
            Layout::V1 { memory, cpu, .. } => {
                let mem_parent = memory.join(&dir_name);
                let cpu_parent = cpu.join(&dir_name);
                make_dir(&mem_parent)?;
                make_dir(&cpu_parent)?;
                let memsw = mem_parent.join("memory.memsw.limit_in_bytes").exists();
                (
                    Flavor::V1 { memsw },
                    vec![
                        (Hierarchy::Memory, mem_parent),
                        (Hierarchy::Cpu, cpu_parent),
                    ],
                )
            }
        };
        let tree = CgroupTree {
            layout,
            flavor,
            parents,
        };
        // Leaves a crashed agent of the same name left behind.
        for (_, parent) in &tree.parents {
            for entry in std::fs::read_dir(parent)
                .map_err(|e| CgroupError::io("list", parent, e))?
                .flatten()
            {
                if entry.path().is_dir() {
                    kill_members(&entry.path());
                    remove_dir(&entry.path())
                        .map_err(|e| CgroupError::io("remove the stale cgroup", entry.path(), e))?;
                }
            }
        }
        Ok(tree)
    }

    /// The hierarchies in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The interface files the leaves have.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The parent cgroup directories.
    pub fn parents(&self) -> impl Iterator<Item = &Path> {
        self.parents.iter().map(|(_, p)| p.as_path())
    }

    /// Creates (or takes over) the leaf `name`, with no limits known yet.
    pub fn leaf(&self, name: &str) -> Result<Leaf, CgroupError> {
        let mut dirs = Vec::new();
        for (h, parent) in &self.parents {
            let dir = parent.join(name);
            make_dir(&dir)?;
            dirs.push((*h, dir));
        }
        Ok(Leaf {
            name: name.to_string(),
            dirs,
            flavor: self.flavor,
            applied: None,
        })
    }

    /// Removes the parents (their leaves must be gone).
    pub fn remove(&self) -> Result<(), CgroupError> {
        for (_, parent) in &self.parents {
            remove_dir(parent).map_err(|e| CgroupError::io("remove", parent, e))?;
        }
        Ok(())
    }
}

/// On v2: makes sure `own`'s children get the cpu and memory controllers,
/// moving this process out of `own` into `agent_leaf` if it is alone there.
fn enable_controllers(own: &Path, agent_leaf: &str) -> Result<(), CgroupError> {
    let control = own.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    let has = |c: &str| enabled.split_whitespace().any(|x| x == c);
    if has("cpu") && has("memory") {
        return Ok(());
    }
    match std::fs::write(&control, "+cpu +memory") {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(16) => {}
        Err(e) => return Err(CgroupError::io("write +cpu +memory to", &control, e)),
    }
    // EBUSY: `own` holds processes ("no internal processes" rule).
    let me = std::process::id();
    let procs_file = own.join("cgroup.procs");
    let procs = std::fs::read_to_string(&procs_file)
        .map_err(|e| CgroupError::io("read", &procs_file, e))?;
    let others: Vec<&str> = procs
        .split_whitespace()
        .filter(|p| p.parse() != Ok(me))
        .collect();
    if !others.is_empty() {
        return Err(CgroupError::io(
            format!(
                "enable cpu and memory for child cgroups (it also holds processes {}, not only \
                 the agent; start the agent in a cgroup of its own, e.g. `systemd-run --scope -p \
                 Delegate=yes wasmesos agent …`) in",
                others.join(" ")
            ),
            &control,
            std::io::Error::from_raw_os_error(16),
        ));
    }
    let leaf = own.join(agent_leaf);
    make_dir(&leaf)?;
    write(&leaf.join("cgroup.procs"), &me.to_string())?;
    tracing::info!(cgroup = %leaf.display(), "moved the agent into a leaf cgroup of its own");
    write(&control, "+cpu +memory")
}

/// An executor's cgroup: one directory per hierarchy.
#[derive(Debug)]
pub struct Leaf {
    name: String,
    dirs: Vec<(Hierarchy, PathBuf)>,
    flavor: Flavor,
    applied: Option<CgroupLimits>,
}

impl Leaf {
    /// Its directory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory in each hierarchy.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// The limits last applied.
    pub fn applied(&self) -> Option<CgroupLimits> {
        self.applied
    }

    fn dir(&self, hierarchy: Hierarchy) -> &Path {
        self.dirs
            .iter()
            .find(|(h, _)| *h == hierarchy)
            .map(|(_, d)| d.as_path())
            .expect("the planner only names hierarchies of the tree's flavour")
    }

    /// Puts `limits` on the cgroup (writing only what changed since the
    /// last time).
    pub fn apply(&mut self, limits: CgroupLimits) -> Result<(), CgroupError> {
        for w in plan::plan(self.flavor, limits, self.applied) {
            if let Err(e) = write(&self.dir(w.hierarchy).join(w.file), &w.value) {
                // What the cgroup holds is no longer known.
                self.applied = None;
                return Err(e);
            }
        }
        self.applied = Some(limits);
        Ok(())
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// OOM kills in the cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let (h, file) = plan::oom_file(self.flavor);
        std::fs::read_to_string(self.dir(h).join(file))
            .map(|t| plan::oom_kills(&t))
            .unwrap_or(0)
    }

    /// Time its processes were held back by the cpu quota so far.
    pub fn throttled(&self) -> Duration {
        let h = plan::cpu_stat_hierarchy(self.flavor);
        std::fs::read_to_string(self.dir(h).join("cpu.stat"))
            .map(|t| plan::throttled(self.flavor, &t))
            .unwrap_or_default()
    }

    /// Kills whatever is left in it and removes it.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            kill_members(dir);
            remove_dir(dir).map_err(|e| CgroupError::io("remove", dir, e))?;
        }
        Ok(())
    }
}

fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CgroupError::io("create the cgroup", dir, e)),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| CgroupError::io(format!("write {value} to"), path, e))
}

/// SIGKILLs what is in the cgroup at `dir` and removes it, logging a
/// failure (for shutdown, where nothing else can be done about it).
pub(crate) fn kill_and_remove(dir: &Path) {
    kill_members(dir);
    if let Err(e) = remove_dir(dir) {
        tracing::warn!(cgroup = %dir.display(), "cannot remove the cgroup: {e}");
    }
}

/// SIGKILLs every process in the cgroup at `dir`.
fn kill_members(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// rmdir, retrying while killed processes are still on their way out.
fn remove_dir(dir: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + REMOVE_PATIENCE;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(16) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}
