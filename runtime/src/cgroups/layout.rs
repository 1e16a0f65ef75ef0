//! Which cgroup hierarchies this process can use, worked out from the text
//! of `/proc/self/mountinfo` (where cgroup filesystems are mounted and
//! which controllers each carries) and `/proc/self/cgroup` (which cgroup
//! this process sits in, per hierarchy).
//!
//! Pure: [`Layout::detect`] takes the texts (and the unified hierarchy's
//! `cgroup.controllers`, if one is mounted) and decides; the file reading
//! is in [`tree`](super::tree). cgroup v2 is chosen when its unified
//! hierarchy has both `cpu` and `memory`; otherwise v1 with separate `memory`
//! and `cpu` hierarchies. A hybrid host (v1 controllers plus a v2 mount with
//! none of them, as systemd sets up) therefore uses v1.

use super::CgroupError;
use std::path::{Path, PathBuf};

/// A cgroup filesystem from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The cgroup at the mount point (`/` unless a sub-tree is mounted).
    pub root: String,
    /// `cgroup2`: the unified hierarchy.
    pub unified: bool,
    /// For v1: the controllers it carries (`cpu`, `cpuacct`, `memory`…);
    /// empty for v2 (its controllers are in `cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// Parses the cgroup mounts out of `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, CgroupError> {
    let mut mounts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| CgroupError::Parse {
            file: "/proc/self/mountinfo",
            line: n + 1,
            why: why.to_string(),
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| bad("no ` - ` separator"))?;
        if dash < 6 || fields.len() < dash + 4 {
            return Err(bad("too few fields"));
        }
        let fstype = fields[dash + 1];
        let unified = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if unified {
            Vec::new()
        } else {
            fields[dash + 3]
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_string)
                .collect()
        };
        mounts.push(CgroupMount {
            mount_point: PathBuf::from(unescape(fields[4])),
            root: unescape(fields[3]),
            unified,
            controllers,
        });
    }
    Ok(mounts)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The hierarchy id (0 for the unified hierarchy).
    pub hierarchy: u32,
    /// Its controllers (`cpu,cpuacct` → two); empty for v2.
    pub controllers: Vec<String>,
    /// This process's cgroup in it.
    pub path: String,
}

/// Parses `/proc/self/cgroup`.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, CgroupError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| CgroupError::Parse {
            file: "/proc/self/cgroup",
            line: n + 1,
            why: why.to_string(),
        };
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected ID:CONTROLLERS:PATH"));
        };
        let hierarchy = id
            .parse()
            .map_err(|_| bad("the hierarchy id is not a number"))?;
        out.push(Membership {
            hierarchy,
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect(),
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// The hierarchies the agent uses, each as the directory of the agent's
/// own cgroup in it (executors' cgroups go below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy, with `cpu` and `memory` available.
    V2 {
        /// This process's cgroup directory.
        own: PathBuf,
    },
    /// Separate v1 hierarchies for `memory` and `cpu` (which may be
    /// co-mounted with others, e.g. `cpu,cpuacct`).
    V1 {
        /// This process's cgroup directory in the memory hierarchy.
        memory: PathBuf,
        /// This process's cgroup directory in the cpu hierarchy.
        cpu: PathBuf,
        /// A v2 mount without the cpu and memory controllers, if there is
        /// one (a hybrid layout); unused, reported at start.
        unified: Option<PathBuf>,
    },
}

impl Layout {
    /// Decides from the parsed mounts and memberships. `unified_controllers`
    /// is the content of the v2 mount's `cgroup.controllers` at this
    /// process's cgroup (`None` if there is no v2 mount or it cannot be
    /// read).
    pub fn detect(
        mounts: &[CgroupMount],
        memberships: &[Membership],
        unified_controllers: Option<&str>,
    ) -> Result<Layout, CgroupError> {
        let v2 = mounts.iter().find(|m| m.unified);
        let v2_own = v2.and_then(|m| {
            let member = memberships.iter().find(|g| g.hierarchy == 0)?;
            own_dir(m, &member.path)
        });
        if let Some(own) = &v2_own {
            let has =
                |c: &str| unified_controllers.is_some_and(|t| t.split_whitespace().any(|x| x == c));
            if has("cpu") && has("memory") {
                return Ok(Layout::V2 { own: own.clone() });
            }
        }
        let v1 = |controller: &str| -> Result<PathBuf, String> {
            let mount = mounts
                .iter()
                .find(|m| !m.unified && m.controllers.iter().any(|c| c == controller))
                .ok_or_else(|| format!("no v1 `{controller}` hierarchy is mounted"))?;
            let member = memberships
                .iter()
                .find(|g| g.hierarchy != 0 && g.controllers.iter().any(|c| c == controller))
                .ok_or_else(|| format!("/proc/self/cgroup lists no `{controller}` cgroup"))?;
            own_dir(mount, &member.path).ok_or_else(|| {
                format!(
                    "this process's `{controller}` cgroup {} is outside the mount at {} (root {})",
                    member.path,
                    mount.mount_point.display(),
                    mount.root
                )
            })
        };
        match (v1("memory"), v1("cpu")) {
            (Ok(memory), Ok(cpu)) => Ok(Layout::V1 {
                memory,
                cpu,
                unified: v2_own,
            }),
            (memory, cpu) => {
                let mut found = Vec::new();
                match (v2, &v2_own) {
                    (Some(m), Some(_)) => found.push(format!(
                        "cgroup v2 at {} offers only [{}]",
                        m.mount_point.display(),
                        unified_controllers.unwrap_or("").trim()
                    )),
                    (Some(m), None) => found.push(format!(
                        "cgroup v2 at {} but this process is in no cgroup of it",
                        m.mount_point.display()
                    )),
                    (None, _) => found.push("no cgroup v2 mount".to_string()),
                }
                found.extend(memory.err());
                found.extend(cpu.err());
                Err(CgroupError::NoControllers(found.join("; ")))
            }
        }
    }

    /// A line for the agent's log: which hierarchies it uses.
    pub fn describe(&self) -> String {
        match self {
            Layout::V2 { own } => format!("cgroup v2 (unified) under {}", own.display()),
            Layout::V1 {
                memory,
                cpu,
                unified,
            } => {
                let hybrid = match unified {
                    Some(u) => format!(
                        "; hybrid host: the v2 mount at {} has no cpu/memory controllers and is not used",
                        u.display()
                    ),
                    None => String::new(),
                };
                format!(
                    "cgroup v1: memory under {}, cpu under {}{hybrid}",
                    memory.display(),
                    cpu.display()
                )
            }
        }
    }
}

/// The directory of cgroup `path` (as `/proc/self/cgroup` names it) under
/// `mount`, or `None` when the mount does not contain it.
fn own_dir(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rel = path.strip_prefix(root)?;
    if !rel.is_empty() && !rel.starts_with('/') {
        // `/kubepods/pod10` is not inside `/kubepods/pod1`.
        return None;
    }
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        Path::new(&mount.mount_point).join(rel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine kind: v1 controllers under /sys/fs/cgroup/<name>, an
    /// empty cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID_MOUNTINFO: &str = "\
22 1 0:20 / / rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/78ea
2:cpuacct:/
1:cpu:/
0::/
";

    const V2_MOUNTINFO: &str = "\
25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    const V2_CGROUP: &str = "0::/system.slice/wasmesos-agent.service\n";

    /// Classic v1 with cpu and cpuacct co-mounted, as most distributions
    /// did before v2.
    const V1_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
";
    const V1_CGROUP: &str = "\
5:memory:/user.slice
3:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-0.slice/session-1.scope
";

    fn detect(
        mountinfo: &str,
        cgroup: &str,
        controllers: Option<&str>,
    ) -> Result<Layout, CgroupError> {
        Layout::detect(
            &parse_mountinfo(mountinfo).unwrap(),
            &parse_proc_cgroup(cgroup).unwrap(),
            controllers,
        )
    }

    #[test]
    fn parses_mountinfo() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO).unwrap();
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(mounts[0].controllers, ["cpu"]);
        assert_eq!(mounts[3].controllers, ["xattr"]);
        assert!(mounts[4].unified);
        let v1 = parse_mountinfo(V1_MOUNTINFO).unwrap();
        assert_eq!(v1[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(v1[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        // Escaped spaces in mount points.
        let odd = "1 2 0:3 /sub /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
        let m = &parse_mountinfo(odd).unwrap()[0];
        assert_eq!(m.mount_point, Path::new("/mnt/my cgroups"));
        assert_eq!(m.root, "/sub");
        let err = parse_mountinfo("garbage line\n").unwrap_err().to_string();
        assert!(err.contains("/proc/self/mountinfo line 1"), "{err}");
    }

    #[test]
    fn parses_proc_cgroup() {
        let g = parse_proc_cgroup(V1_CGROUP).unwrap();
        assert_eq!(g[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(g[1].path, "/user.slice");
        assert!(
            g[2].controllers.is_empty(),
            "named hierarchies carry no controller"
        );
        let g = parse_proc_cgroup(V2_CGROUP).unwrap();
        assert_eq!(g[0].hierarchy, 0);
        assert_eq!(g[0].path, "/system.slice/wasmesos-agent.service");
        assert!(parse_proc_cgroup("x:y\n").is_err());
        assert!(parse_proc_cgroup("x:y:/\n").is_err());
    }

    #[test]
    fn hybrid_uses_the_v1_controllers() {
        let layout = detect(HYBRID_MOUNTINFO, HYBRID_CGROUP, Some("hugetlb\n")).unwrap();
        assert_eq!(
            layout,
            Layout::V1 {
                memory: "/sys/fs/cgroup/memory/process_api/78ea".into(),
                cpu: "/sys/fs/cgroup/cpu".into(),
                unified: Some("/sys/fs/cgroup/unified".into()),
            }
        );
        assert!(
            layout.describe().contains("hybrid"),
            "{}",
            layout.describe()
        );
    }

    #[test]
    fn v2_with_both_controllers_is_preferred() {
        let layout = detect(V2_MOUNTINFO, V2_CGROUP, Some("cpuset cpu io memory pids\n")).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                own: "/sys/fs/cgroup/system.slice/wasmesos-agent.service".into()
            }
        );
        // v2 even beside v1 mounts, once it has the controllers.
        let layout = detect(HYBRID_MOUNTINFO, HYBRID_CGROUP, Some("cpu memory")).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                own: "/sys/fs/cgroup/unified".into()
            }
        );
    }

    #[test]
    fn v1_with_co_mounted_cpu() {
        let layout = detect(V1_MOUNTINFO, V1_CGROUP, None).unwrap();
        assert_eq!(
            layout,
            Layout::V1 {
                memory: "/sys/fs/cgroup/memory/user.slice".into(),
                cpu: "/sys/fs/cgroup/cpu,cpuacct/user.slice".into(),
                unified: None,
            }
        );
    }

    #[test]
    fn v2_without_controllers_and_no_v1_is_refused_with_what_was_found() {
        let err = detect(V2_MOUNTINFO, V2_CGROUP, Some("pids\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("offers only [pids]"), "{err}");
        assert!(err.contains("no v1 `memory` hierarchy"), "{err}");
        let err = detect("", "", None).unwrap_err().to_string();
        assert!(err.contains("no cgroup v2 mount"), "{err}");
    }

    #[test]
    fn a_mounted_sub_tree_is_resolved_against_its_root() {
        // A container that sees its own cgroup mounted at /sys/fs/cgroup.
        let mountinfo = "40 30 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = detect(mountinfo, "0::/kubepods/pod1/c1\n", Some("cpu memory")).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                own: "/sys/fs/cgroup/c1".into()
            }
        );
        // A cgroup outside the mounted sub-tree cannot be reached.
        let err = detect(mountinfo, "0::/elsewhere\n", Some("cpu memory")).unwrap_err();
        assert!(err.to_string().contains("in no cgroup of it"), "{err}");
        let m = &parse_mountinfo(mountinfo).unwrap()[0];
        assert_eq!(own_dir(m, "/kubepods/pod10"), None);
        assert_eq!(own_dir(m, "/kubepods/pod1"), Some("/sys/fs/cgroup".into()));
    }
}
