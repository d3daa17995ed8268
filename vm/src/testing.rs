//! Test fixtures shared by the `vm` and `lab` test suites: an OpenSSH server
//! on a free loopback port with host and user keys generated in a temporary
//! directory (the SSH target's real peer in tests), and the one golden-file
//! comparison ([`golden`]). Nothing here is used by a run.

use crate::process::{spawn_group, GroupChild};
use crate::ssh::SshDest;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds (`true`) or `timeout` passes
/// (`false`): tests wait on a condition, never on a fixed sleep.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Compares `got` with the golden file at `path`. With `QFC_BLESS=1`
/// (exactly) the file is written instead; otherwise a missing golden file
/// is a failure, never a silent write. The error names the first differing
/// line and how to accept an intended change.
pub fn golden(path: &Path, got: &str) -> Result<(), String> {
    if std::env::var_os("QFC_BLESS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        return std::fs::write(path, got).map_err(|e| format!("{}: {e}", path.display()));
    }
    let want = match std::fs::read_to_string(path) {
        Ok(w) => w,
        Err(e) => {
            return Err(format!(
                "golden file {} cannot be read ({e}); if this case is new, create it with QFC_BLESS=1 and review it",
                path.display()
            ))
        }
    };
    if want == got {
        return Ok(());
    }
    let line = want
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .map(|i| i + 1)
        .unwrap_or(want.lines().count().min(got.lines().count()) + 1);
    Err(format!(
        "{} differs from the output at line {line}:\n--- expected\n{want}--- got\n{got}\nif the change is intended, re-run with QFC_BLESS=1",
        path.display()
    ))
}

/// A running sshd on `127.0.0.1:port`, stopped (and its keys removed) on drop.
pub struct LoopbackSshd {
    _child: GroupChild,
    dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The user it accepts (this process's user).
    pub user: String,
}

impl LoopbackSshd {
    /// Why this machine cannot run one, if it cannot (sshd or the client missing).
    pub fn unavailable() -> Option<&'static str> {
        if !Path::new("/usr/sbin/sshd").exists() {
            Some("/usr/sbin/sshd is missing (apt-get install openssh-server)")
        } else if which::which("ssh").is_err() || which::which("ssh-keygen").is_err() {
            Some("the ssh client is missing (apt-get install openssh-client)")
        } else {
            None
        }
    }

    /// Starts sshd with fresh keys; `known_hosts` (see [`Self::path`]) holds
    /// its host key, `id_user` the accepted user key, `other_host_key` a key
    /// it does not have.
    pub fn start() -> Result<LoopbackSshd, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        keygen(&d.join("host_key"))?;
        keygen(&d.join("id_user"))?;
        keygen(&d.join("other_host_key"))?;
        std::fs::copy(d.join("id_user.pub"), d.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let user = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .trim()
        .to_string();
        let cfg = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nUseDNS no\nPrintMotd no\nMaxSessions 32\nMaxStartups 32\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), cfg).map_err(|e| e.to_string())?;
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_pub =
            std::fs::read_to_string(d.join("host_key.pub")).map_err(|e| e.to_string())?;
        let mut f = host_pub.split_whitespace();
        let (kt, kb) = (f.next().unwrap_or_default(), f.next().unwrap_or_default());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kt} {kb}\n"),
        )
        .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
        cmd.stderr(std::fs::File::create(d.join("sshd.log")).map_err(|e| e.to_string())?);
        let child = spawn_group(cmd).map_err(|e| format!("starting sshd: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                return Err(format!("sshd did not listen on 127.0.0.1:{port}: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(LoopbackSshd {
            _child: child,
            dir,
            port,
            user,
        })
    }

    /// A file of its temporary directory (`known_hosts`, `id_user`, `sshd.log`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Where and how to reach it.
    pub fn dest(&self) -> SshDest {
        SshDest {
            host: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key: self.path("id_user"),
            known_hosts: self.path("known_hosts"),
            host_key_alias: None,
            connect_timeout_s: 10,
        }
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("ssh-keygen failed: {st}"))
}
