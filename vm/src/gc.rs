//! What a qfc-lab that died without its teardown (SIGKILL, a crash, a
//! power cut) left behind, found and removed: `qfc-lab gc`, and the start
//! of every `qfc-lab run`.
//!
//! Everything a run starts is marked with the pid of the qfc-lab process
//! that owns it, so ownership is read back, never guessed from names:
//! - local processes (nodes, probes, QEMU, ssh clients) carry
//!   [`OWNER_VAR`]`=<pid>` in their environment ([`crate::process`] sets it
//!   on every child);
//! - containers carry the label `qfc-lab.run=<pid>-<nanos>`, and their data
//!   volume, staging directory and cgroup carry the same run id in their
//!   names (`crate::container`).
//! A thing is left over when its owner pid is no longer a live process.
//! Attached eBPF programs need no sweep of their own: their links are file
//! descriptors of the probe process, so they go when it goes.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The owner mark (declared by `process`, which sets it; read here).
pub use crate::process::OWNER_VAR;

/// What one sweep removed, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// One line per thing removed: `container qfc-lab-node-123-456`, `process 789 (qemu-system-aarch64)`.
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

/// True when `pid` is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// The owner pid in a run id `<pid>-<nanos>`.
pub fn owner_of_run_id(run_id: &str) -> Option<u32> {
    run_id.split('-').next()?.parse().ok().filter(|&p| p > 1)
}

/// Sweeps everything whose owner is dead: processes, then containers,
/// volumes, staging directories and cgroups (when a Docker engine answers).
pub fn sweep(docker: Option<&Path>) -> GcReport {
    let mut r = GcReport::default();
    sweep_processes(&mut r);
    if let Some(d) = docker {
        sweep_containers(d, &mut r);
    }
    sweep_dirs(&mut r);
    r
}

/// Process groups marked with a dead owner: SIGKILL to the whole group.
fn sweep_processes(r: &mut GcReport) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let owner = env
            .split(|&b| b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(OWNER_VAR).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse::<u32>().ok());
        let Some(owner) = owner else { continue };
        if owner == me || alive(owner) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32)))
            .map(|p| p.as_raw())
            .unwrap_or(0);
        let target = if pgid > 1 && pgid as u32 != nix::unistd::getpgrp().as_raw() as u32 {
            nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            )
        } else {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
        };
        match target {
            Ok(()) => r
                .removed
                .push(format!("process {pid} ({comm}) of dead qfc-lab {owner}")),
            Err(e) => r
                .errors
                .push(format!("killing process {pid} ({comm}): {e}")),
        }
    }
}

fn docker_lines(docker: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let argv: Vec<std::ffi::OsString> = std::iter::once(docker.as_os_str().to_owned())
        .chain(args.iter().map(Into::into))
        .collect();
    let out = crate::container::cli::run(&argv, &[], Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn sweep_containers(docker: &Path, r: &mut GcReport) {
    match docker_lines(
        docker,
        &[
            "ps",
            "-a",
            "--filter",
            "label=qfc-lab.run",
            "--format",
            "{{.Names}}\t{{.Label \"qfc-lab.run\"}}",
        ],
    ) {
        Ok(lines) => {
            for l in lines {
                let Some((name, run_id)) = l.split_once('\t') else {
                    continue;
                };
                if owner_of_run_id(run_id).is_some_and(|o| !alive(o)) {
                    match docker_lines(docker, &["rm", "-f", name]) {
                        Ok(_) => r.removed.push(format!("container {name}")),
                        Err(e) => r.errors.push(format!("removing container {name}: {e}")),
                    }
                }
            }
        }
        Err(e) => r.errors.push(format!("listing containers: {e}")),
    }
    match docker_lines(
        docker,
        &["volume", "ls", "-q", "--filter", "name=qfc-lab-data-"],
    ) {
        Ok(vols) => {
            for v in vols {
                let dead = v
                    .strip_prefix("qfc-lab-data-")
                    .and_then(owner_of_run_id)
                    .is_some_and(|o| !alive(o));
                if dead {
                    match docker_lines(docker, &["volume", "rm", "-f", &v]) {
                        Ok(_) => r.removed.push(format!("volume {v}")),
                        Err(e) => r.errors.push(format!("removing volume {v}: {e}")),
                    }
                }
            }
        }
        Err(e) => r.errors.push(format!("listing volumes: {e}")),
    }
}

/// Staging directories and the lab's cgroups named after a dead run.
fn sweep_dirs(r: &mut GcReport) {
    let mut dirs: Vec<(PathBuf, &str)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            dirs.push((e.path(), "qfc-lab-container-"));
        }
    }
    for root in ["/sys/fs/cgroup/qfc-lab", "/sys/fs/cgroup/unified/qfc-lab"] {
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                dirs.push((e.path(), "qfc-lab-node-"));
            }
        }
    }
    for (p, prefix) in dirs {
        let dead = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(owner_of_run_id)
            .is_some_and(|o| !alive(o));
        if !dead {
            continue;
        }
        // A cgroup directory is removed with rmdir (it is empty once its
        // processes are gone); a staging directory with its contents.
        let res = if p.starts_with("/sys/fs/cgroup") {
            std::fs::remove_dir(&p)
        } else {
            std::fs::remove_dir_all(&p)
        };
        match res {
            Ok(()) => r.removed.push(format!("directory {}", p.display())),
            Err(e) => r.errors.push(format!("removing {}: {e}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_owner() {
        assert_eq!(owner_of_run_id("4242-123456"), Some(4242));
        assert_eq!(owner_of_run_id("1-5"), None, "never pid 1");
        assert_eq!(owner_of_run_id("x-5"), None);
    }

    #[test]
    fn liveness() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }

    /// A process marked with a dead owner is killed; one marked with a live
    /// owner (this test) and an unmarked one are left alone.
    #[test]
    fn orphans_marked_with_a_dead_owner_are_killed() {
        // A pid that is surely dead: a child that has exited and been reaped.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let dead = gone.id();
        let spawn = |owner: Option<u32>| {
            let mut c = std::process::Command::new("sleep");
            c.arg("300").process_group(0);
            if let Some(o) = owner {
                c.env(OWNER_VAR, o.to_string());
            }
            c.spawn().unwrap()
        };
        use std::os::unix::process::CommandExt;
        let mut orphan = spawn(Some(dead));
        let mut kept = spawn(Some(std::process::id()));
        let mut plain = spawn(None);
        let mut r = GcReport::default();
        sweep_processes(&mut r);
        std::thread::sleep(Duration::from_millis(100));
        let orphan_gone = orphan.try_wait().unwrap().is_some();
        let kept_alive = kept.try_wait().unwrap().is_none();
        let plain_alive = plain.try_wait().unwrap().is_none();
        for c in [&mut orphan, &mut kept, &mut plain] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(orphan_gone, "{r:?}");
        assert!(kept_alive && plain_alive, "{r:?}");
        assert!(
            r.removed
                .iter()
                .any(|l| l.contains(&orphan.id().to_string())),
            "{r:?}"
        );
    }
}
