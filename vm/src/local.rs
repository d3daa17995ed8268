//! The local target: the node runs as a process on this machine.
//!
//! Every process it spawns gets its own process group (so that a Ctrl-C at
//! the terminal reaches only qfc-lab, which then stops them in order) and
//! `PR_SET_PDEATHSIG(SIGKILL)` (so that they die with the spawning thread if
//! qfc-lab itself is killed). Spawn from a thread that lives for the whole
//! run: the death signal fires when the *thread* that forked exits.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::target::{
    ExecOutput, ExitInfo, Imported, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo,
    TargetKind, TargetPath,
};

/// Process groups started and not yet reaped, killed at teardown.
type Groups = Arc<Mutex<HashSet<i32>>>;

/// This machine as a target.
#[derive(Debug)]
pub struct LocalTarget {
    scratch: PathBuf,
    keep_scratch: bool,
    groups: Groups,
    prepared: bool,
}

impl LocalTarget {
    /// A local target whose scratch directory is `scratch` (created by
    /// `prepare`, removed by `teardown` unless `keep_scratch`).
    pub fn new(scratch: PathBuf, keep_scratch: bool) -> Self {
        Self {
            scratch,
            keep_scratch,
            groups: Groups::default(),
            prepared: false,
        }
    }

    /// A fresh scratch directory path under the system temporary directory.
    pub fn default_scratch() -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!("qfc-lab-{}-{nanos}", std::process::id()))
    }
}

fn exit_info(status: ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

fn command(argv: &[OsString]) -> Result<Command, TargetError> {
    let (program, args) = argv.split_first().ok_or_else(TargetError::empty_command)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ok(cmd)
}

/// Own process group, SIGKILL when the spawning thread dies, and the owner
/// mark that `qfc-lab gc` reads ([`crate::process::OWNER_VAR`]).
fn isolate(cmd: &mut Command) {
    cmd.process_group(0);
    cmd.env(crate::process::OWNER_VAR, std::process::id().to_string());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Target for LocalTarget {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: TargetKind::Local,
            arch: std::env::consts::ARCH.to_string(),
            accel: None,
            emulated: false,
        }
    }

    fn prepare(&mut self) -> Result<(), TargetError> {
        std::fs::create_dir_all(&self.scratch).map_err(|source| TargetError::Io {
            what: "create scratch directory",
            path: self.scratch.clone(),
            source,
        })?;
        self.prepared = true;
        Ok(())
    }

    fn scratch_dir(&self) -> TargetPath {
        self.scratch.clone()
    }

    fn ship(&mut self, local: &Path) -> Result<TargetPath, TargetError> {
        local.canonicalize().map_err(|source| TargetError::Io {
            what: "find",
            path: local.to_path_buf(),
            source,
        })
    }

    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Box<dyn RemoteProcess>, TargetError> {
        let mut cmd = command(&spec.argv)?;
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.cwd.as_deref().unwrap_or(&self.scratch))
            .stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut cmd);
        let child = cmd.spawn().map_err(|source| TargetError::Spawn {
            program: spec.argv[0].to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id();
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid as i32);
        tracing::debug!(pid, argv = ?spec.argv, "spawned");
        Ok(Box::new(LocalProcess {
            child,
            exited: None,
            groups: self.groups.clone(),
        }))
    }

    fn exec(&mut self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError> {
        let program = argv
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = command(argv)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| TargetError::Spawn {
            program: program.clone(),
            source,
        })?;
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(TargetError::Spawn { program, source: e }),
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(s) => Ok(ExecOutput {
                code: s.code(),
                stdout,
                stderr,
            }),
            None => Err(TargetError::Timeout { program, timeout }),
        }
    }

    fn free_port(&mut self) -> Result<u16, TargetError> {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| TargetError::Io {
            what: "bind a free port on",
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })?;
        l.local_addr()
            .map(|a| a.port())
            .map_err(|source| TargetError::Io {
                what: "reading the address of",
                path: "a loopback listener".into(),
                source,
            })
    }

    fn forward(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, target_port)))
    }

    fn fetch_dir(&mut self, remote: &Path, local: &Path) -> Result<Imported, TargetError> {
        // The probe output of a local run was written by processes of this
        // machine, but it passes the same gate as a guest's.
        crate::untrusted::import_tree(remote, local, crate::untrusted::Limits::default()).map_err(
            |source| TargetError::Io {
                what: "copying the evidence",
                path: remote.to_path_buf(),
                source,
            },
        )
    }

    fn teardown(&mut self) -> Result<(), TargetError> {
        let groups: Vec<i32> = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for g in groups {
            // Still running (never reaped): kill the whole group.
            let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
        }
        if self.prepared && !self.keep_scratch {
            match std::fs::remove_dir_all(&self.scratch) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TargetError::Io {
                        what: "remove scratch directory",
                        path: self.scratch.clone(),
                        source,
                    })
                }
            }
        }
        self.prepared = false;
        Ok(())
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// A process spawned by [`LocalTarget`].
struct LocalProcess {
    child: Child,
    exited: Option<ExitInfo>,
    groups: Groups,
}

impl LocalProcess {
    fn reaped(&mut self, status: ExitStatus) -> ExitInfo {
        let info = exit_info(status);
        self.exited = Some(info);
        // The leader is gone; kill stragglers of its group before forgetting it.
        let pgid = self.child.id() as i32;
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pgid);
        info
    }
}

impl RemoteProcess for LocalProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn take_stdin(&mut self) -> Option<Box<dyn Write + Send>> {
        self.child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn Write + Send>)
    }
    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }
    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }
    fn try_wait(&mut self) -> Result<Option<ExitInfo>, TargetError> {
        if let Some(e) = self.exited {
            return Ok(Some(e));
        }
        match self.child.try_wait() {
            Ok(Some(s)) => Ok(Some(self.reaped(s))),
            Ok(None) => Ok(None),
            Err(source) => Err(TargetError::Wait {
                what: format!("wait for pid {}", self.child.id()),
                source,
            }),
        }
    }
    fn terminate(&mut self, grace: Duration) -> Result<ExitInfo, TargetError> {
        if let Some(e) = self.try_wait()? {
            return Ok(e);
        }
        let pgid = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(e) = self.try_wait()? {
                return Ok(e);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!(pid = self.child.id(), "did not stop after SIGTERM, killing");
        let _ = killpg(pgid, Signal::SIGKILL);
        let status = self.child.wait().map_err(|source| TargetError::Wait {
            what: format!("wait for pid {}", self.child.id()),
            source,
        })?;
        Ok(self.reaped(status))
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.terminate(Duration::from_millis(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> LocalTarget {
        let mut t = LocalTarget::new(LocalTarget::default_scratch(), false);
        t.prepare().unwrap();
        t
    }

    #[test]
    fn exec_captures_output_and_code() {
        let mut t = target();
        let out = t
            .exec(
                &[
                    "sh".into(),
                    "-c".into(),
                    "echo hi; echo err >&2; exit 3".into(),
                ],
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
        t.teardown().unwrap();
    }

    #[test]
    fn exec_times_out() {
        let mut t = target();
        let err = t
            .exec(&["sleep".into(), "5".into()], Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, TargetError::Timeout { .. }), "{err}");
        t.teardown().unwrap();
    }

    #[test]
    fn terminate_stops_the_whole_group_and_teardown_removes_scratch() {
        let mut t = target();
        let scratch = t.scratch_dir();
        // The shell starts a grandchild that ignores nothing; both must go.
        let mut p = t
            .spawn(&SpawnSpec {
                argv: vec!["sh".into(), "-c".into(), "sleep 30 & echo $!; wait".into()],
                ..Default::default()
            })
            .unwrap();
        let mut out = p.take_stdout().unwrap();
        let mut buf = [0u8; 32];
        let n = out.read(&mut buf).unwrap();
        let grandchild: i32 = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let info = p.terminate(Duration::from_secs(2)).unwrap();
        assert_eq!(info.signal, Some(libc::SIGTERM));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!Path::new(&format!("/proc/{grandchild}")).exists() || is_zombie(grandchild));
        t.teardown().unwrap();
        assert!(!scratch.exists());
        t.teardown().unwrap(); // idempotent
    }

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    }

    #[test]
    fn free_port_is_bindable() {
        let mut t = target();
        let p = t.free_port().unwrap();
        TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        assert_eq!(t.forward(p).unwrap().port(), p);
        t.teardown().unwrap();
    }
}
