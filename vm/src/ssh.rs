//! SSH hosts: an existing machine (a cloud VM, or a QEMU guest's forwarded
//! port) reached with OpenSSH's `ssh` client, host keys verified against a
//! given `known_hosts` file (`StrictHostKeyChecking=yes`: unknown or changed
//! keys are refused, never accepted). Ship files in (tar over ssh), run short
//! commands, spawn long-running ones with piped stdio (the probe session's
//! line protocol runs over that stdin/stdout), fetch directories back, and
//! clean up: recorded process groups killed, working directory removed.

use crate::process::{spawn_group, GroupChild};
use crate::untrusted::{self, Imported};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tracing::{debug, instrument, warn};

/// Where and how to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshDest {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file (identity).
    pub key: PathBuf,
    /// The only file host keys are checked against.
    pub known_hosts: PathBuf,
    /// Name the host key is looked up under in `known_hosts` instead of
    /// `[host]:port` (QEMU guests: the forwarded port changes every run).
    pub host_key_alias: Option<String>,
    pub connect_timeout_s: u32,
}

/// What went wrong talking to an SSH host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("host key of {host} was refused: it is not in {known_hosts} (or differs from it); add the host's key to that file after checking its fingerprint")]
    HostKeyRejected { host: String, known_hosts: PathBuf },
    #[error("cannot reach {host}: {stderr}; check that sshd runs there and that host and port are right")]
    Unreachable { host: String, stderr: String },
    #[error("{host} refused the key {key}: {stderr}; check user and key")]
    AuthFailed {
        host: String,
        key: PathBuf,
        stderr: String,
    },
    #[error("`{command}` on {host} failed with {status}: {stderr}")]
    CommandFailed {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("remote working directory {workdir} on {host} already exists: remove it or set another [target.ssh] workdir")]
    WorkdirExists { host: String, workdir: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} on {host} did not finish within {timeout_s} s")]
    Timeout {
        host: String,
        what: String,
        timeout_s: u64,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SshError {
    let what = what.into();
    move |source| SshError::Io { what, source }
}

/// The environment variable every process group the lab starts on a host
/// carries, set to its working directory.
pub const MARK_VAR: &str = "QFC_LAB_WORKDIR";

/// A POSIX shell function `ours P`: true when `P` (read back from the
/// remote side) is a process group this lab started from `workdir`: all
/// digits, greater than 1 (never `kill -- -1`), the leader of its group,
/// and marked with [`MARK_VAR`]`=workdir` in its environment. Checked
/// before every remote `kill` of a recorded group.
pub fn ours_sh(workdir: &str) -> String {
    format!(
        "ours() {{ case \"$1\" in ''|*[!0-9]*) return 1;; esac; [ \"$1\" -gt 1 ] || return 1; \
         [ \"$(cut -d' ' -f5 /proc/$1/stat 2>/dev/null)\" = \"$1\" ] || return 1; \
         tr '\\0' '\\n' < /proc/$1/environ 2>/dev/null | grep -qxF {mark}; }};",
        mark = shell_quote(&format!("{MARK_VAR}={workdir}"))
    )
}

/// Quotes `s` for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Joins words into one shell command line, each quoted.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl SshDest {
    fn options(&self) -> Vec<OsString> {
        let mut o: Vec<OsString> = Vec::new();
        let mut opt = |k: &str, v: &str| {
            o.push("-o".into());
            o.push(format!("{k}={v}").into());
        };
        opt("BatchMode", "yes");
        opt("StrictHostKeyChecking", "yes");
        opt(
            "UserKnownHostsFile",
            &self.known_hosts.display().to_string(),
        );
        opt("GlobalKnownHostsFile", "/dev/null");
        opt("UpdateHostKeys", "no");
        opt("CheckHostIP", "no");
        if let Some(alias) = &self.host_key_alias {
            opt("HostKeyAlias", alias);
        }
        opt("IdentitiesOnly", "yes");
        opt("IdentityFile", &self.key.display().to_string());
        opt("PasswordAuthentication", "no");
        opt("KbdInteractiveAuthentication", "no");
        opt("ConnectTimeout", &self.connect_timeout_s.to_string());
        opt("ServerAliveInterval", "5");
        opt("ServerAliveCountMax", "6");
        opt("LogLevel", "ERROR");
        o
    }

    /// `ssh` argv (program first) running `remote_command` (a shell command
    /// line) on this host.
    pub fn ssh_args(&self, remote_command: &str) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["ssh".into(), "-F".into(), "/dev/null".into()];
        a.extend(self.options());
        a.extend([
            "-p".into(),
            self.port.to_string().into(),
            "-l".into(),
            self.user.clone().into(),
            "-T".into(),
            // Options end before the destination, so a host that starts
            // with `-` can never be read as an option.
            "--".into(),
            self.host.clone().into(),
            remote_command.into(),
        ]);
        a
    }

    fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

fn command_from(argv: &[OsString]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

pub(crate) fn classify_failure(
    dest: &SshDest,
    command: &str,
    status: ExitStatus,
    stderr: &[u8],
) -> SshError {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let host = dest.label();
    if status.code() == Some(255) {
        if text.contains("Host key verification failed")
            || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || text.contains("No ED25519 host key is known")
            || text.contains("host key for")
        {
            return SshError::HostKeyRejected {
                host,
                known_hosts: dest.known_hosts.clone(),
            };
        }
        if text.contains("Permission denied") {
            return SshError::AuthFailed {
                host,
                key: dest.key.clone(),
                stderr: text,
            };
        }
        if text.contains("Connection refused")
            || text.contains("timed out")
            || text.contains("Connection closed")
            || text.contains("Connection reset")
            || text.contains("No route to host")
            || text.contains("Could not resolve")
        {
            return SshError::Unreachable { host, stderr: text };
        }
    }
    SshError::CommandFailed {
        host,
        command: command.to_string(),
        status: status.to_string(),
        stderr: tail(&text, 2000),
    }
}

/// Waits for the done signal of a transfer: `true` when it came, `false` at
/// `timeout` or as soon as a cancel is requested.
fn wait_done(done: &std::sync::mpsc::Receiver<()>, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if crate::process::cancel_requested() {
            return false;
        }
        match done.recv_timeout(Duration::from_millis(50)) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    false
}

/// The head of a long command line, for messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// How long one short remote command ([`exec`]) may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one transfer ([`SshHost::ship`]) may take.
pub const SHIP_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs `remote_command` once and returns its output; a non-zero exit is an
/// error, and so is a command still running after [`EXEC_TIMEOUT`].
pub fn exec(dest: &SshDest, remote_command: &str) -> Result<Output, SshError> {
    let out = crate::process::run_output(
        command_from(&dest.ssh_args(remote_command)),
        Some(EXEC_TIMEOUT),
    )
    .map_err(io_err("running ssh (is openssh-client installed?)"))?
    .ok_or_else(|| SshError::Timeout {
        host: dest.label(),
        what: format!("`{}`", short(remote_command)),
        timeout_s: EXEC_TIMEOUT.as_secs(),
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(classify_failure(
            dest,
            remote_command,
            out.status,
            &out.stderr,
        ))
    }
}

/// Waits until `true` runs on the host, retrying connection failures
/// (sshd still starting) until `timeout`. Host-key and auth refusals fail at once.
pub fn wait_until_reachable(dest: &SshDest, timeout: Duration) -> Result<(), SshError> {
    let deadline = Instant::now() + timeout;
    loop {
        match exec(dest, "true") {
            Ok(_) => return Ok(()),
            Err(e @ (SshError::Unreachable { .. } | SshError::CommandFailed { .. }))
                if Instant::now() < deadline =>
            {
                debug!(error = %e, "ssh not ready yet");
                crate::process::sleep_or_cancel(Duration::from_millis(300))
                    .map_err(io_err("waiting for ssh"))?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A session with one host: a private working directory that [`SshHost::cleanup`]
/// removes, and the process groups started in it.
#[derive(Debug)]
pub struct SshHost {
    dest: SshDest,
    workdir: String,
    cleaned: bool,
}

impl SshHost {
    /// Checks the host (key, login) and creates `workdir`, which must not exist.
    #[instrument(skip(dest), fields(host = %dest.host, port = dest.port))]
    /// Connects and makes a private working directory (`mktemp -d`, mode
    /// 0700) under `base` on the host, created if missing: never a
    /// predictable path in a world-writable directory.
    pub fn connect(dest: SshDest, base: &str) -> Result<SshHost, SshError> {
        let b = shell_quote(base.trim_end_matches('/'));
        let out = exec(
            &dest,
            &format!(
                "mkdir -p {b} && wd=$(mktemp -d {b}/qfc-lab.XXXXXXXXXX) && mkdir \"$wd/.qfc-pids\" && printf '%s\\n' \"$wd\""
            ),
        )?;
        let wd = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let prefix = format!("{}/qfc-lab.", base.trim_end_matches('/'));
        let suffix_ok = wd
            .strip_prefix(&prefix)
            .is_some_and(|s| s.len() >= 6 && s.bytes().all(|c| c.is_ascii_alphanumeric()));
        if !suffix_ok {
            return Err(SshError::CommandFailed {
                host: dest.label(),
                command: "mktemp -d".into(),
                status: "unexpected output".into(),
                stderr: format!("expected a directory under {prefix}*, got {wd:?}"),
            });
        }
        Ok(SshHost {
            dest,
            workdir: wd,
            cleaned: false,
        })
    }

    pub fn dest(&self) -> &SshDest {
        &self.dest
    }

    /// Absolute remote path of the working directory.
    pub fn workdir(&self) -> &str {
        &self.workdir
    }

    /// Absolute remote path of `rel` inside the working directory.
    pub fn path(&self, rel: &str) -> String {
        format!(
            "{}/{}",
            self.workdir.trim_end_matches('/'),
            rel.trim_start_matches('/')
        )
    }

    /// Runs a shell command line in the working directory.
    pub fn exec(&self, command: &str) -> Result<Output, SshError> {
        exec(
            &self.dest,
            &format!("cd {} && {command}", shell_quote(&self.workdir)),
        )
    }

    /// Copies local files or directories into `remote_rel` (a directory inside
    /// the working directory), keeping their base names and modes.
    #[instrument(skip(self, sources), fields(host = %self.dest.host))]
    pub fn ship(&self, sources: &[&Path], remote_rel: &str) -> Result<(), SshError> {
        let target = self.path(remote_rel);
        let mut tar = Command::new("tar");
        tar.arg("-cf").arg("-");
        for s in sources {
            let parent = s
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = s.file_name().ok_or_else(|| SshError::Io {
                what: format!("shipping {}", s.display()),
                source: std::io::Error::other("path has no file name"),
            })?;
            tar.arg("-C").arg(parent).arg(name);
        }
        let remote = format!("mkdir -p {t} && tar -C {t} -xf -", t = shell_quote(&target));
        pipe(
            tar,
            command_from(&self.dest.ssh_args(&remote)),
            &self.dest,
            &remote,
        )
    }

    /// Copies the remote `remote_rel` (file or directory, inside the working
    /// directory) into the local directory `local_dir`, through the
    /// untrusted-evidence gate ([`crate::untrusted`]): what the host sends
    /// is read as a tar stream here, never unpacked by a local `tar`.
    #[instrument(skip(self), fields(host = %self.dest.host))]
    pub fn fetch(
        &self,
        remote_rel: &str,
        local_dir: &Path,
        timeout: Duration,
    ) -> Result<Imported, SshError> {
        let full = self.path(remote_rel);
        let (parent, name) = full.rsplit_once('/').unwrap_or((".", full.as_str()));
        let parent = if parent.is_empty() { "/" } else { parent };
        self.fetch_tar(parent, name, local_dir, timeout)
    }

    /// Copies the contents of the remote directory `remote_rel` (inside the
    /// working directory) into `local_dir`, through the same gate.
    pub fn fetch_contents(
        &self,
        remote_rel: &str,
        local_dir: &Path,
        timeout: Duration,
    ) -> Result<Imported, SshError> {
        self.fetch_tar(&self.path(remote_rel), ".", local_dir, timeout)
    }

    fn fetch_tar(
        &self,
        dir: &str,
        member: &str,
        local_dir: &Path,
        timeout: Duration,
    ) -> Result<Imported, SshError> {
        let remote = format!("tar -C {} -cf - {}", shell_quote(dir), shell_quote(member));
        let mut cmd = command_from(&self.dest.ssh_args(&remote));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_group(cmd).map_err(io_err(format!("starting ssh for `{remote}`")))?;
        let stdout = child.child_mut().stdout.take().expect("piped stdout");
        let mut stderr = child.child_mut().stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stderr.read_to_end(&mut b);
            b
        });
        // The watchdog ends ssh at the deadline; the reader then sees EOF.
        let pid = child.id();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if !wait_done(&done_rx, timeout) && pid > 1 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return true;
            }
            false
        });
        let imported = untrusted::import_tar(stdout, local_dir, untrusted::Limits::default());
        let status = child.child_mut().wait().map_err(io_err("waiting for ssh"));
        let _ = done_tx.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let err = err_reader.join().unwrap_or_default();
        if timed_out {
            if crate::process::cancel_requested() {
                return Err(SshError::Io {
                    what: format!("fetching {dir}/{member}"),
                    source: crate::process::cancelled_error(),
                });
            }
            return Err(SshError::Timeout {
                host: self.dest.label(),
                what: format!("fetching {dir}/{member}"),
                timeout_s: timeout.as_secs(),
            });
        }
        let status = status?;
        if !status.success() {
            return Err(classify_failure(&self.dest, &remote, status, &err));
        }
        imported.map_err(io_err(format!(
            "reading the tar stream of {dir}/{member} into {}",
            local_dir.display()
        )))
    }

    /// Starts a long-running command in the working directory with piped
    /// stdin/stdout/stderr. Its remote process group id is recorded under
    /// `.qfc-pids/<name>` so that [`SshHost::cleanup`] can stop it even when
    /// the connection is gone. Dropping the returned handle ends the local
    /// ssh client only.
    pub fn spawn(&self, name: &str, command: &str) -> Result<GroupChild, SshError> {
        let pidfile = self.path(&format!(".qfc-pids/{name}"));
        // sshd starts every session in a new session (setsid), so `$$` of
        // the remote shell is also its process group id; `exec` keeps it.
        let remote = format!(
            "cd {wd} && echo $$ > {pf} && export {mark}={wd} && exec {command}",
            mark = MARK_VAR,
            wd = shell_quote(&self.workdir),
            pf = shell_quote(&pidfile)
        );
        let mut cmd = command_from(&self.dest.ssh_args(&remote));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        spawn_group(cmd).map_err(io_err(format!("starting ssh for `{name}`")))
    }

    /// Marks the session cleaned without contacting the host (its machine is
    /// gone, e.g. a QEMU guest that died: nothing is left to clean).
    pub fn forget(&mut self) {
        self.cleaned = true;
    }

    /// Stops every recorded process group (TERM, then KILL after `grace`)
    /// and removes the working directory. Idempotent.
    #[instrument(skip(self), fields(host = %self.dest.host))]
    pub fn cleanup(&mut self, grace: Duration) -> Result<(), SshError> {
        if self.cleaned {
            return Ok(());
        }
        let wd = shell_quote(&self.workdir);
        let script = format!(
            "d={wd}/.qfc-pids; {ours} pgs=; \
             if [ -d \"$d\" ]; then \
               for f in \"$d\"/*; do [ -f \"$f\" ] || continue; p=$(head -c 16 \"$f\"); ours \"$p\" && pgs=\"$pgs $p\"; done; \
               for p in $pgs; do kill -TERM -- -\"$p\" 2>/dev/null; done; \
               i=0; while [ $i -lt {ticks} ]; do alive=0; \
                 for p in $pgs; do kill -0 -- -\"$p\" 2>/dev/null && alive=1; done; \
                 [ $alive = 0 ] && break; sleep 0.1; i=$((i+1)); done; \
               for p in $pgs; do kill -KILL -- -\"$p\" 2>/dev/null; done; \
             fi; rm -rf {wd}",
            ours = ours_sh(&self.workdir),
            ticks = (grace.as_millis() / 100).max(1)
        );
        exec(&self.dest, &script)?;
        self.cleaned = true;
        Ok(())
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        if !self.cleaned {
            if let Err(e) = self.cleanup(Duration::from_secs(2)) {
                warn!(error = %e, workdir = %self.workdir, "ssh clean-up on drop failed");
            }
        }
    }
}

/// Runs `producer | consumer`, one of which is ssh; reports the failing side.
fn pipe(
    mut producer: Command,
    mut consumer: Command,
    dest: &SshDest,
    remote: &str,
) -> Result<(), SshError> {
    producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = producer
        .spawn()
        .map_err(io_err("starting the sending side"))?;
    let out = p.stdout.take().expect("piped stdout");
    consumer
        .stdin(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let c = consumer
        .spawn()
        .map_err(io_err("starting the receiving side"))?;
    // Both sides are killed at the deadline; the waits below then return.
    let pids = [p.id(), c.id()];
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if !wait_done(&done_rx, SHIP_TIMEOUT) {
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return true;
        }
        false
    });
    let c_out = c
        .wait_with_output()
        .map_err(io_err("waiting for the receiving side"));
    let _ = done_tx.send(());
    if watchdog.join().unwrap_or(false) {
        let _ = p.wait();
        if crate::process::cancel_requested() {
            return Err(SshError::Io {
                what: format!("the transfer `{}`", short(remote)),
                source: crate::process::cancelled_error(),
            });
        }
        return Err(SshError::Timeout {
            host: dest.label(),
            what: format!("the transfer `{}`", short(remote)),
            timeout_s: SHIP_TIMEOUT.as_secs(),
        });
    }
    let c_out = c_out?;
    let mut p_err = Vec::new();
    if let Some(mut e) = p.stderr.take() {
        let _ = e.read_to_end(&mut p_err);
    }
    let p_status = p.wait().map_err(io_err("waiting for the sending side"))?;
    // Whichever side is ssh decides the error class.
    let is_ssh = |c: &Command| c.get_program() == "ssh";
    if !p_status.success() {
        return Err(if is_ssh(&producer) {
            classify_failure(dest, remote, p_status, &p_err)
        } else {
            SshError::CommandFailed {
                host: "localhost".into(),
                command: "tar (sending)".into(),
                status: p_status.to_string(),
                stderr: String::from_utf8_lossy(&p_err).trim().to_string(),
            }
        });
    }
    if !c_out.status.success() {
        return Err(if is_ssh(&consumer) {
            classify_failure(dest, remote, c_out.status, &c_out.stderr)
        } else {
            SshError::CommandFailed {
                host: "localhost".into(),
                command: "tar (receiving)".into(),
                status: c_out.status.to_string(),
                stderr: String::from_utf8_lossy(&c_out.stderr).trim().to_string(),
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/d-1.txt"), "abc/d-1.txt");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_join(&["echo", "$HOME", "x"]), "echo '$HOME' x");
    }

    #[test]
    fn ssh_args_verify_host_keys_and_never_prompt() {
        let d = SshDest {
            host: "127.0.0.1".into(),
            port: 2222,
            user: "root".into(),
            key: "/k/id".into(),
            known_hosts: "/k/known_hosts".into(),
            host_key_alias: Some("qfc-lab-guest".into()),
            connect_timeout_s: 10,
        };
        let a: Vec<String> = d
            .ssh_args("uname -m")
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = a.join(" ");
        assert_eq!(a[0], "ssh");
        for needle in [
            "-F /dev/null",
            "-o StrictHostKeyChecking=yes",
            "-o UserKnownHostsFile=/k/known_hosts",
            "-o GlobalKnownHostsFile=/dev/null",
            "-o BatchMode=yes",
            "-o HostKeyAlias=qfc-lab-guest",
            "-o IdentityFile=/k/id",
            "-p 2222",
            "-l root",
        ] {
            assert!(joined.contains(needle), "missing {needle} in {joined}");
        }
        assert_eq!(&a[a.len() - 3..], ["--", "127.0.0.1", "uname -m"]);
        assert!(!joined.contains("StrictHostKeyChecking=no"));
        assert!(!joined.contains("accept-new"));
    }
}
