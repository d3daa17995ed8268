//! What the QEMU and SSH targets share: running [`crate::target`] requests
//! on a machine reached over ssh. Short commands with a timeout, long-running
//! processes whose target pid is reported on the first stdout line by a tiny
//! wrapper (`QFC-PID <pid>`, consumed before the caller sees stdout) and
//! whose process group is recorded for clean-up, free ports on the target,
//! and `ssh -L` tunnels bound to 127.0.0.1.

use crate::process::{spawn_group, GroupChild};
use crate::ssh::{self, shell_join, shell_quote, SshDest, SshError, SshHost};
use crate::target::{ExecOutput, ExitInfo, RemoteProcess, SpawnSpec, TargetError};
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Converts an ssh failure into the trait's error, naming the machine.
pub(crate) fn target_err(e: SshError) -> TargetError {
    TargetError::Ssh(e)
}

fn lossy(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Runs `remote` (a shell command line) with a timeout. A non-zero exit is
/// returned in [`ExecOutput`]; transport failures (exit 255: host key,
/// auth, connection) are errors.
pub(crate) fn exec_timeout(
    dest: &SshDest,
    remote: &str,
    timeout: Duration,
) -> Result<ExecOutput, TargetError> {
    let argv = dest.ssh_args(remote);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_group(cmd).map_err(|source| TargetError::Spawn {
        program: "ssh".into(),
        source,
    })?;
    let mut out = child.child_mut().stdout.take().expect("piped");
    let mut err = child.child_mut().stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|source| TargetError::Wait {
            what: "waiting for ssh".into(),
            source,
        })? {
            break s;
        }
        if crate::process::cancel_requested() {
            let _ = child.kill();
            return Err(TargetError::Interrupted {
                what: format!("ssh {}", dest.host),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(TargetError::Timeout {
                program: format!("ssh {}: {remote}", dest.host),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    if status.code() == Some(255) {
        // Same classification as ssh::exec (host key, auth, reachability).
        return Err(target_err(ssh_failure(dest, remote, status, &stderr)));
    }
    Ok(ExecOutput {
        code: status.code(),
        stdout,
        stderr,
    })
}

fn ssh_failure(
    dest: &SshDest,
    remote: &str,
    status: std::process::ExitStatus,
    stderr: &[u8],
) -> SshError {
    ssh::classify_failure(dest, remote, status, stderr)
}

/// The remote shell command line that starts `spec` under the pid wrapper,
/// in `workdir` unless `spec.cwd` says otherwise, marked with
/// [`crate::ssh::MARK_VAR`] so clean-up can tell our process groups.
pub fn spawn_script(spec: &SpawnSpec, pidfile: &str, workdir: &str) -> String {
    let cwd = spec
        .cwd
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| workdir.to_string());
    let mut words: Vec<String> = Vec::new();
    if !spec.env.is_empty() {
        words.push("env".into());
        for (k, v) in &spec.env {
            words.push(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    words.extend(lossy(&spec.argv));
    // sshd puts each session in its own session and process group, so `$$`
    // is both the pid and the process group id; `exec` keeps them.
    format!(
        "echo \"QFC-PID $$\"; echo $$ > {pf}; export {mark}={wd}; cd {cwd} && exec {cmd}",
        mark = crate::ssh::MARK_VAR,
        wd = shell_quote(workdir),
        pf = shell_quote(pidfile),
        cwd = shell_quote(&cwd),
        cmd = shell_join(&words)
    )
}

/// Reads the `QFC-PID <pid>` line byte by byte (nothing after it is consumed).
fn read_pid_line(r: &mut impl Read) -> std::io::Result<Option<u32>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b)? {
            0 => return Ok(None),
            _ if b[0] == b'\n' => break,
            _ => line.push(b[0]),
        }
        if line.len() > 64 {
            return Ok(None);
        }
    }
    Ok(std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("QFC-PID "))
        .and_then(|p| p.trim().parse::<u32>().ok())
        // Never a pid whose group is everything (`kill -- -1`) or nothing.
        .filter(|&p| p > 1 && p <= i32::MAX as u32))
}

/// A process on an ssh-reached machine.
pub struct SshProcess {
    child: GroupChild,
    pid: u32,
    dest: SshDest,
    /// The working directory its wrapper marked it with.
    workdir: String,
    ended: Option<ExitInfo>,
    stdout: Option<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for SshProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshProcess")
            .field("pid", &self.pid)
            .field("host", &self.dest.host)
            .finish()
    }
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

impl SshProcess {
    fn kill_remote(&self, grace: Duration) -> Result<(), TargetError> {
        let ticks = (grace.as_millis() / 100).max(1);
        let pid = self.pid;
        if pid <= 1 {
            return Err(TargetError::Unsupported(format!(
                "refusing to signal process group {pid} on the target"
            )));
        }
        let script = format!(
            "{ours} ours {pid} || exit 0; kill -TERM -- -{pid} 2>/dev/null; i=0; while [ $i -lt {ticks} ] && kill -0 -- -{pid} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; kill -KILL -- -{pid} 2>/dev/null; true",
            ours = crate::ssh::ours_sh(&self.workdir)
        );
        exec_timeout(&self.dest, &script, grace + Duration::from_secs(30)).map(|_| ())
    }
}

impl RemoteProcess for SshProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn take_stdin(&mut self) -> Option<Box<dyn Write + Send>> {
        self.child
            .child_mut()
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn Write + Send>)
    }

    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .child_mut()
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }

    fn try_wait(&mut self) -> Result<Option<ExitInfo>, TargetError> {
        if let Some(e) = self.ended {
            return Ok(Some(e));
        }
        // The ssh client exits when the remote command does (or the channel dies).
        let st = self.child.try_wait().map_err(|source| TargetError::Wait {
            what: "polling ssh".into(),
            source,
        })?;
        if let Some(st) = st {
            self.ended = Some(exit_info(st));
        }
        Ok(self.ended)
    }

    fn terminate(&mut self, grace: Duration) -> Result<ExitInfo, TargetError> {
        if let Some(e) = self.try_wait()? {
            return Ok(e);
        }
        let remote = self.kill_remote(grace);
        let st = self
            .child
            .terminate(Duration::from_secs(5))
            .map_err(|source| TargetError::Wait {
                what: "stopping ssh".into(),
                source,
            })?;
        let info = exit_info(st);
        self.ended = Some(info);
        remote?;
        Ok(info)
    }
}

impl Drop for SshProcess {
    fn drop(&mut self) {
        if self.ended.is_none() {
            if let Err(e) = self.kill_remote(Duration::from_secs(2)) {
                warn!(pid = self.pid, error = %e, "could not stop remote process on drop");
            }
            let _ = self.child.kill();
        }
    }
}

/// Session state shared by the QEMU and SSH targets.
#[derive(Debug)]
pub(crate) struct Remote {
    pub host: SshHost,
    handed_ports: HashSet<u16>,
    tunnels: Vec<GroupChild>,
    spawned: u32,
}

impl Remote {
    pub fn new(host: SshHost) -> Remote {
        Remote {
            host,
            handed_ports: HashSet::new(),
            tunnels: Vec::new(),
            spawned: 0,
        }
    }

    pub fn exec(&self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError> {
        if argv.is_empty() {
            return Err(TargetError::empty_command());
        }
        let remote = format!(
            "cd {} && {}",
            shell_quote(self.host.workdir()),
            shell_join(&lossy(argv))
        );
        exec_timeout(self.host.dest(), &remote, timeout)
    }

    pub fn spawn(&mut self, spec: &SpawnSpec) -> Result<SshProcess, TargetError> {
        if spec.argv.is_empty() {
            return Err(TargetError::empty_command());
        }
        self.spawned += 1;
        let name = format!(
            "{}-{}",
            self.spawned,
            Path::new(&spec.argv[0])
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let pidfile = self.host.path(&format!(".qfc-pids/{name}"));
        let script = spawn_script(spec, &pidfile, self.host.workdir());
        let dest = self.host.dest().clone();
        let argv = dest.ssh_args(&script);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_group(cmd).map_err(|source| TargetError::Spawn {
            program: "ssh".into(),
            source,
        })?;
        let mut stdout = child.child_mut().stdout.take().expect("piped");
        let pid = read_pid_line(&mut stdout).map_err(|source| TargetError::Wait {
            what: "reading from ssh".into(),
            source,
        })?;
        let Some(pid) = pid else {
            let st = child.terminate(Duration::from_secs(2)).ok();
            let mut err = String::new();
            if let Some(mut e) = child.child_mut().stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let e = match st {
                Some(st) if st.code() == Some(255) => {
                    ssh_failure(&dest, &script, st, err.as_bytes()).to_string()
                }
                _ => format!("{}: {}", lossy(&spec.argv).join(" "), err.trim()),
            };
            return Err(TargetError::Remote {
                what: format!("could not start a process on {}", dest.host),
                message: e,
            });
        };
        debug!(pid, name, "remote process started");
        Ok(SshProcess {
            child,
            pid,
            dest,
            workdir: self.host.workdir().to_string(),
            ended: None,
            stdout: Some(Box::new(stdout)),
        })
    }

    /// A port that nothing listens on in the target, not handed out before.
    /// `preferred` ports (forwarded ones, for QEMU) are tried first.
    pub fn free_port(&mut self, preferred: &[u16]) -> Result<u16, TargetError> {
        let out = exec_timeout(
            self.host.dest(),
            "ss -Htln 2>/dev/null || netstat -tln",
            Duration::from_secs(60),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let listening: HashSet<u16> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|a| a.rsplit(':').next())
            .filter_map(|p| p.parse().ok())
            .collect();
        let pick = preferred
            .iter()
            .copied()
            .chain((0..2000u32).map(|i| 20000 + ((i * 7919 + std::process::id()) % 30000) as u16))
            .find(|p| !listening.contains(p) && !self.handed_ports.contains(p));
        let port = pick
            .ok_or_else(|| TargetError::Unsupported("no free port found on the target".into()))?;
        self.handed_ports.insert(port);
        Ok(port)
    }

    /// Local addresses listening on TCP `port` in the target (`ss -Htln`).
    pub fn listeners(&self, port: u16) -> Result<Vec<String>, TargetError> {
        let out = exec_timeout(self.host.dest(), "ss -Htln", Duration::from_secs(60))?;
        Ok(parse_listeners(&String::from_utf8_lossy(&out.stdout), port))
    }

    /// `ssh -N -L 127.0.0.1:<free>:127.0.0.1:<target_port>`, kept until teardown.
    pub fn tunnel(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        let local = crate::qemu::free_ports(1).map_err(|source| TargetError::Io {
            what: "picking a free local port on",
            path: "127.0.0.1".into(),
            source,
        })?[0];
        let dest = self.host.dest();
        let argv = tunnel_args(dest, local, target_port);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_group(cmd).map_err(|source| TargetError::Spawn {
            program: "ssh".into(),
            source,
        })?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, local));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().map_err(|source| TargetError::Wait {
                what: "polling the ssh tunnel".into(),
                source,
            })? {
                let mut err = String::new();
                if let Some(mut e) = child.child_mut().stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(TargetError::Remote {
                    what: format!(
                        "ssh tunnel 127.0.0.1:{local} -> {}:{target_port} exited with {st}",
                        dest.host
                    ),
                    message: err.trim().to_string(),
                });
            }
            // Not a test connection: ssh would forward it and use up a
            // one-shot server on the target.
            if local_listening(local) {
                break;
            }
            if Instant::now() > deadline {
                return Err(TargetError::Timeout {
                    program: "ssh tunnel".into(),
                    timeout: Duration::from_secs(30),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.tunnels.push(child);
        Ok(addr)
    }

    /// Drops tunnels and forgets the remote session (its machine is gone).
    pub fn forget(&mut self) {
        for mut t in self.tunnels.drain(..) {
            let _ = t.kill();
        }
        self.host.forget();
    }

    /// Kills tunnels and every recorded process group, removes the workdir.
    pub fn teardown(&mut self) -> Result<(), TargetError> {
        for mut t in self.tunnels.drain(..) {
            let _ = t.kill();
        }
        self.host
            .cleanup(Duration::from_secs(5))
            .map_err(target_err)
    }
}

/// Local addresses of `ss -Htln` lines listening on `port`.
pub fn parse_listeners(ss: &str, port: u16) -> Vec<String> {
    ss.lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter(|a| a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) == Some(port))
        .map(|a| {
            a.rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// True when something listens on TCP `port` on this machine (/proc/net/tcp).
fn local_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .map(|t| {
                t.lines().skip(1).any(|l| {
                    let mut w = l.split_whitespace();
                    let local = w.nth(1).unwrap_or("");
                    let state = w.nth(1).unwrap_or("");
                    state == "0A"
                        && local
                            .rsplit(':')
                            .next()
                            .and_then(|p| u16::from_str_radix(p, 16).ok())
                            == Some(port)
                })
            })
            .unwrap_or(false)
    })
}

/// argv of an `ssh -L` tunnel bound to 127.0.0.1 only. Pure.
pub fn tunnel_args(dest: &SshDest, local_port: u16, target_port: u16) -> Vec<OsString> {
    let mut a = dest.ssh_args("");
    // Drop the trailing `-- HOST ""` (no remote command with -N); options
    // go before `--`, the host after it.
    a.truncate(a.len() - 3);
    a.extend([
        "-N".into(),
        "-o".into(),
        "ExitOnForwardFailure=yes".into(),
        "-L".into(),
        format!("127.0.0.1:{local_port}:127.0.0.1:{target_port}").into(),
        "--".into(),
        dest.host.clone().into(),
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_script_reports_pid_and_quotes() {
        let spec = SpawnSpec {
            argv: vec![
                "/w/bin/qfc-refnode".into(),
                "--datadir".into(),
                "/w/data dir".into(),
            ],
            env: vec![("RUST_LOG".into(), "info".into())],
            cwd: None,
            stdin: false,
        };
        assert_eq!(
            spawn_script(&spec, "/w/.qfc-pids/1-qfc-refnode", "/w"),
            "echo \"QFC-PID $$\"; echo $$ > /w/.qfc-pids/1-qfc-refnode; export QFC_LAB_WORKDIR=/w; cd /w && exec env RUST_LOG=info /w/bin/qfc-refnode --datadir '/w/data dir'"
        );
    }

    #[test]
    fn pid_line_is_consumed_alone() {
        let mut r = std::io::Cursor::new(b"QFC-PID 4242\nready 1\n".to_vec());
        assert_eq!(read_pid_line(&mut r).unwrap(), Some(4242));
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "ready 1\n");
        assert_eq!(
            read_pid_line(&mut std::io::Cursor::new(b"".to_vec())).unwrap(),
            None
        );
    }

    #[test]
    fn listeners_from_ss() {
        let ss = "LISTEN 0 128 127.0.0.1:8545 0.0.0.0:*\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 128 [::]:22 [::]:*\nLISTEN 0 5 *:6060 *:*\n";
        assert_eq!(parse_listeners(ss, 8545), ["127.0.0.1"]);
        assert_eq!(parse_listeners(ss, 22), ["0.0.0.0", "[::]"]);
        assert_eq!(parse_listeners(ss, 6060), ["*"]);
        assert!(parse_listeners(ss, 30303).is_empty());
    }

    #[test]
    fn tunnel_binds_loopback_only() {
        let d = SshDest {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            key: "/k".into(),
            known_hosts: "/kh".into(),
            host_key_alias: None,
            connect_timeout_s: 5,
        };
        let a: Vec<String> = tunnel_args(&d, 41000, 8545)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let j = a.join(" ");
        assert!(
            j.ends_with("-N -o ExitOnForwardFailure=yes -L 127.0.0.1:41000:127.0.0.1:8545 -- h"),
            "{j}"
        );
        assert!(j.contains("StrictHostKeyChecking=yes"));
    }
}
