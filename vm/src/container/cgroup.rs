//! Where a process sits in the cgroup hierarchies, for probes filtered to a
//! container (`qfc-probe --cgroup PATH`), on cgroup v2 and v1 hosts.
//!
//! The probes filter by cgroup v2 id (`bpf_get_current_cgroup_id` reads the
//! default, unified hierarchy). On a pure v2 host Docker puts each container
//! in its own v2 cgroup. On a hybrid v1 host (this machine: v1 controllers
//! plus an empty `cgroup2` at `/sys/fs/cgroup/unified`), Docker's cgroupfs
//! driver creates v1 cgroups only and the container's processes stay in the
//! v2 root, where a cgroup filter cannot tell them from anything else. There
//! [`ensure_v2`] creates a controller-less v2 cgroup for the container under
//! `unified/qfc-lab/` and moves the container's main process into it (its
//! threads move with it, children inherit it); Docker does not notice, and
//! [`remove_v2`] deletes it once the container is gone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::target::TargetError;

/// One line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupLine {
    /// Hierarchy id (0 for the v2 hierarchy).
    pub hierarchy: u32,
    /// Controllers (`memory`, `cpu,cpuacct`, `name=systemd`; empty for v2).
    pub controllers: String,
    /// Path relative to the hierarchy's mount point.
    pub path: String,
}

/// Parses `/proc/PID/cgroup`.
pub fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let hierarchy = it.next()?.parse().ok()?;
            let controllers = it.next()?.to_string();
            let path = it.next()?.to_string();
            Some(CgroupLine {
                hierarchy,
                controllers,
                path,
            })
        })
        .collect()
}

/// Mount points of cgroup file systems, from `/proc/self/mountinfo`-like
/// `/proc/mounts` text: `(fstype, mount point, options)`.
pub fn parse_cgroup_mounts(mounts: &str) -> Vec<(String, PathBuf, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                .then(|| (f[2].to_string(), PathBuf::from(f[1]), f[3].to_string()))
        })
        .collect()
}

/// The cgroups of one process on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessCgroups {
    /// `2` on a pure v2 host, `1` when v1 controllers are mounted (hybrid).
    pub host_version: u8,
    /// Absolute path of the process's v2 cgroup, when a v2 hierarchy is mounted.
    pub v2: Option<PathBuf>,
    /// True when `v2` is the root of the v2 hierarchy (a filter there
    /// matches every process).
    pub v2_is_root: bool,
    /// Absolute paths of the process's v1 cgroups, one per mounted controller set.
    pub v1: Vec<(String, PathBuf)>,
}

/// Resolves a process's cgroup lines against the mounts (pure).
pub fn resolve(lines: &[CgroupLine], mounts: &[(String, PathBuf, String)]) -> ProcessCgroups {
    let v2_mount = mounts
        .iter()
        .find(|(t, _, _)| t == "cgroup2")
        .map(|(_, m, _)| m.clone());
    let has_v1 = mounts.iter().any(|(t, _, _)| t == "cgroup");
    let mut out = ProcessCgroups {
        host_version: if has_v1 { 1 } else { 2 },
        v2: None,
        v2_is_root: false,
        v1: Vec::new(),
    };
    for l in lines {
        let rel = l.path.trim_start_matches('/');
        if l.hierarchy == 0 && l.controllers.is_empty() {
            if let Some(m) = &v2_mount {
                out.v2 = Some(if rel.is_empty() {
                    m.clone()
                } else {
                    m.join(rel)
                });
                out.v2_is_root = rel.is_empty();
            }
            continue;
        }
        // A v1 mount whose options name every controller of the line.
        let wanted: Vec<&str> = l.controllers.split(',').collect();
        if let Some((_, m, _)) = mounts.iter().find(|(t, _, opts)| {
            t == "cgroup" && {
                let o: Vec<&str> = opts.split(',').collect();
                wanted.iter().all(|w| o.contains(w))
            }
        }) {
            out.v1.push((
                l.controllers.clone(),
                if rel.is_empty() {
                    m.clone()
                } else {
                    m.join(rel)
                },
            ));
        }
    }
    out
}

/// The cgroups of a process on this host.
pub fn of_pid(pid: u32) -> Result<ProcessCgroups, TargetError> {
    let p = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = std::fs::read_to_string(&p).map_err(|source| TargetError::Io {
        what: "reading",
        path: p,
        source,
    })?;
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|source| TargetError::Io {
        what: "reading",
        path: "/proc/mounts".into(),
        source,
    })?;
    Ok(resolve(
        &parse_proc_cgroup(&text),
        &parse_cgroup_mounts(&mounts),
    ))
}

/// Gives `pid` a v2 cgroup of its own named `name` when it sits in the v2
/// root (hybrid hosts), and returns the process's v2 cgroup path.
pub fn ensure_v2(pid: u32, name: &str) -> Result<PathBuf, TargetError> {
    let cg = of_pid(pid)?;
    let v2 = cg.v2.clone().ok_or_else(|| {
        TargetError::container(format!(
            "no cgroup v2 hierarchy is mounted, so probes cannot filter process {pid} by cgroup: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or filter by pid"
        ))
    })?;
    if !cg.v2_is_root {
        return Ok(v2);
    }
    let dir = v2.join("qfc-lab").join(name);
    std::fs::create_dir_all(&dir).map_err(|source| TargetError::Io {
        what: "creating cgroup",
        path: dir.clone(),
        source,
    })?;
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, pid.to_string()).map_err(|source| TargetError::Io {
        what: "moving the node into",
        path: procs,
        source,
    })?;
    tracing::info!(pid, cgroup = %dir.display(), "gave the container a cgroup v2 of its own");
    Ok(dir)
}

/// Removes a cgroup created by [`ensure_v2`] (it must be empty by then).
pub fn remove_v2(dir: &Path) {
    if dir.components().any(|c| c.as_os_str() == "qfc-lab") {
        if let Err(e) = std::fs::remove_dir(dir) {
            tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove the lab's cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
proc /proc proc rw 0 0
";

    #[test]
    fn hybrid_v1_container_sits_in_v2_root() {
        let text = "9:name=systemd:/docker/abc\n4:memory:/docker/abc\n1:cpu:/docker/abc\n0::/\n";
        let cg = resolve(
            &parse_proc_cgroup(text),
            &parse_cgroup_mounts(HYBRID_MOUNTS),
        );
        assert_eq!(cg.host_version, 1);
        assert_eq!(cg.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert!(cg.v2_is_root);
        assert!(cg
            .v1
            .contains(&("memory".into(), "/sys/fs/cgroup/memory/docker/abc".into())));
        assert!(cg.v1.contains(&(
            "name=systemd".into(),
            "/sys/fs/cgroup/systemd/docker/abc".into()
        )));
        assert_eq!(cg.v1.len(), 3);
    }

    #[test]
    fn pure_v2_container_has_its_scope() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        let text = "0::/system.slice/docker-abc.scope\n";
        let cg = resolve(&parse_proc_cgroup(text), &parse_cgroup_mounts(mounts));
        assert_eq!(cg.host_version, 2);
        assert_eq!(
            cg.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/system.slice/docker-abc.scope"))
        );
        assert!(!cg.v2_is_root);
        assert!(cg.v1.is_empty());
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse_proc_cgroup("nonsense\n\nx:y\n").is_empty());
    }

    #[test]
    fn this_process_resolves() {
        let cg = of_pid(std::process::id()).unwrap();
        assert!(cg.v2.is_some() || !cg.v1.is_empty(), "{cg:?}");
    }
}
