//! What the probes watch: a process tree, a cgroup (v2) subtree, or the
//! whole system; and the probe set.
use std::{
    fmt,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    str::FromStr,
};

use crate::error::ProbeError;

/// The scope of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A process and its descendants (new processes join on fork).
    Pid(u32),
    /// A cgroup v2 directory and all cgroups below it.
    Cgroup(PathBuf),
    /// Every task but the probe process itself.
    System,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pid(p) => write!(f, "pid {p}"),
            Self::Cgroup(c) => write!(f, "cgroup {}", c.display()),
            Self::System => f.write_str("system"),
        }
    }
}

/// One of the five probes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// fsync/fdatasync latency.
    Fsync,
    /// Block request latency per device and RWBS.
    Bio,
    /// Off-CPU time by stack and wait reason.
    Offcpu,
    /// Write-path syscalls per (thread, syscall).
    Writepath,
    /// On-CPU sampling.
    Oncpu,
}

impl ProbeKind {
    /// All probes, in output order.
    pub const ALL: [Self; 5] = [
        Self::Fsync,
        Self::Bio,
        Self::Offcpu,
        Self::Writepath,
        Self::Oncpu,
    ];

    /// The name used in file names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fsync => "fsync",
            Self::Bio => "bio",
            Self::Offcpu => "offcpu",
            Self::Writepath => "writepath",
            Self::Oncpu => "oncpu",
        }
    }
}

impl FromStr for ProbeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown probe {s:?}: expected one of fsync, bio, offcpu, writepath, oncpu")
            })
    }
}

/// Every thread of the processes `tgids`, as listed now in
/// `/proc/TGID/task` (a process that has ended has none).
pub fn threads_of(tgids: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for tgid in tgids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{tgid}/task")) else {
            continue;
        };
        out.extend(
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())),
        );
    }
    out
}

/// The live processes of the tree rooted at `pid` (itself included), from
/// `/proc/*/stat` parent links.
pub fn process_tree(pid: u32) -> Result<Vec<u32>, ProbeError> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(ProbeError::Target(format!("pid {pid}")));
    }
    let mut parents = Vec::new();
    let dir = std::fs::read_dir("/proc").map_err(|e| ProbeError::io("listing", "/proc", e))?;
    for entry in dir.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(pp) = parent_of(p) {
            parents.push((p, pp));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let cur = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    Ok(tree)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Resolves a cgroup argument: an absolute path, or a path relative to the
/// cgroup v2 mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
pub fn resolve_cgroup(arg: &Path) -> Result<PathBuf, ProbeError> {
    if arg.is_absolute() && arg.is_dir() {
        return Ok(arg.to_owned());
    }
    let rel = arg.strip_prefix("/").unwrap_or(arg);
    for root in cgroup2_roots() {
        let p = root.join(rel);
        if p.is_dir() {
            return Ok(p);
        }
    }
    Err(ProbeError::Target(format!("cgroup {}", arg.display())))
}

fn cgroup2_roots() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (_, dir, fstype) = (it.next()?, it.next()?, it.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(dir))
        })
        .collect()
}

/// cgroup v2 ids (directory inode numbers, as `bpf_get_current_cgroup_id`)
/// of a cgroup and every cgroup below it.
pub fn cgroup_ids(dir: &Path) -> Result<Vec<u64>, ProbeError> {
    let mut ids = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::metadata(&d).map_err(|e| ProbeError::io("reading cgroup", &d, e))?;
        ids.push(meta.ino());
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_round_trip() {
        for p in ProbeKind::ALL {
            assert_eq!(p.name().parse::<ProbeKind>().unwrap(), p);
        }
        assert!("kprobe"
            .parse::<ProbeKind>()
            .unwrap_err()
            .contains("fsync, bio"));
    }

    #[test]
    fn tree_contains_self_and_children() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(me).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
    }

    #[test]
    fn missing_pid_is_a_target_error() {
        let err = process_tree(u32::MAX - 1).unwrap_err().to_string();
        assert!(err.contains("not found"), "{err}");
    }
}
