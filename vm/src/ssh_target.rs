//! The SSH target (`[target] kind = "ssh"`): an existing host, for example a
//! Graviton cloud VM, reached with the user's key and verified against a
//! given `known_hosts` (unknown keys refused). Files go in and out as tar
//! over ssh, ports come back through `ssh -L` tunnels on 127.0.0.1, and
//! teardown stops every process group started and removes the working
//! directory, leaving nothing behind.

use crate::remote::{target_err, Remote, SshProcess};
use crate::ssh::{SshDest, SshHost};
use crate::target::{
    ExecOutput, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo, TargetKind, TargetPath,
};
use crate::untrusted::Imported;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[target.ssh]` in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTargetConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    /// Base directory on the host: `prepare` makes a private working
    /// directory under it (`mktemp -d`), `teardown` removes that one.
    pub workdir: String,
}

/// An existing host as a target.
#[derive(Debug)]
pub struct SshTarget {
    config: SshTargetConfig,
    remote: Option<Remote>,
    arch: String,
}

impl SshTarget {
    pub fn new(config: SshTargetConfig) -> SshTarget {
        SshTarget {
            config,
            remote: None,
            arch: String::new(),
        }
    }

    fn dest(&self) -> SshDest {
        SshDest {
            host: self.config.host.clone(),
            port: self.config.port,
            user: self.config.user.clone(),
            key: self.config.key.clone(),
            known_hosts: self.config.known_hosts.clone(),
            host_key_alias: None,
            connect_timeout_s: 15,
        }
    }

    fn remote(&mut self) -> Result<&mut Remote, TargetError> {
        self.remote.as_mut().ok_or_else(|| {
            TargetError::Unsupported("the ssh target is not prepared (or already torn down)".into())
        })
    }
}

impl Target for SshTarget {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: TargetKind::Ssh,
            arch: self.arch.clone(),
            accel: None,
            emulated: false,
        }
    }

    fn prepare(&mut self) -> Result<(), TargetError> {
        let host = SshHost::connect(self.dest(), &self.config.workdir).map_err(target_err)?;
        let out = host.exec("uname -m").map_err(target_err)?;
        self.arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.remote = Some(Remote::new(host));
        Ok(())
    }

    /// The private working directory made at `prepare` (`mktemp -d` under
    /// the configured `workdir`); the configured base before that.
    fn scratch_dir(&self) -> TargetPath {
        self.remote
            .as_ref()
            .map(|r| PathBuf::from(r.host.workdir()))
            .unwrap_or_else(|| PathBuf::from(&self.config.workdir))
    }

    fn ship(&mut self, local: &Path) -> Result<TargetPath, TargetError> {
        let r = self.remote()?;
        r.host.ship(&[local], "bin").map_err(target_err)?;
        let name = local.file_name().ok_or_else(|| {
            TargetError::Unsupported(format!("{} has no file name", local.display()))
        })?;
        Ok(PathBuf::from(r.host.path("bin")).join(name))
    }

    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Box<dyn RemoteProcess>, TargetError> {
        let p: SshProcess = self.remote()?.spawn(spec)?;
        Ok(Box::new(p))
    }

    fn exec(&mut self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError> {
        self.remote()?.exec(argv, timeout)
    }

    fn free_port(&mut self) -> Result<u16, TargetError> {
        self.remote()?.free_port(&[])
    }

    fn forward(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        self.remote()?.tunnel(target_port)
    }

    fn fetch_dir(&mut self, remote: &Path, local: &Path) -> Result<Imported, TargetError> {
        let r = self.remote()?;
        fetch_into(&r.host, remote, local)
    }

    fn teardown(&mut self) -> Result<(), TargetError> {
        match self.remote.take() {
            Some(mut r) => r.teardown(),
            None => Ok(()),
        }
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// How long one fetch of evidence may take before it is abandoned.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Copies the remote directory `remote` into `local` (its contents, not the
/// directory itself), as a tar stream read through the untrusted gate.
pub(crate) fn fetch_into(
    host: &SshHost,
    remote: &Path,
    local: &Path,
) -> Result<Imported, TargetError> {
    let remote = remote.display().to_string();
    let rel = remote
        .strip_prefix(host.workdir())
        .map(|r| r.trim_start_matches('/').to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            TargetError::Unsupported(format!(
                "{remote} is outside the target's scratch directory {}",
                host.workdir()
            ))
        })?;
    host.fetch_contents(&rel, local, FETCH_TIMEOUT)
        .map_err(target_err)
}
