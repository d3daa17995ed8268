//! The QEMU target (`[target] kind = "qemu"`): boots a guest from the cached
//! image (disk in snapshot mode: every run starts from the same image), runs
//! commands and processes in it over ssh with the image's pinned host key,
//! ships files in and evidence out through the 9p share, and maps guest
//! ports to 127.0.0.1 (QEMU `hostfwd` for the node's RPC, p2p and metrics
//! ports; an `ssh -L` tunnel for any other). Teardown stops the guest's
//! processes and kills QEMU; the serial console log stays in the run
//! directory for the bundle. A guest that dies or loses its channel turns
//! into an error carrying the serial console tail.

use crate::arch::{AccelChoice, HostFacts};
use crate::image::{Image, ImageSummary};
use crate::qemu::{Guest, GuestOptions, QemuConfig, GUEST_SHARE};
use crate::remote::Remote;
use crate::ssh::SshHost;
use crate::target::{
    ExecOutput, Imported, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo, TargetKind,
    TargetPath,
};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::warn;

/// Scratch directory inside the guest (on its snapshot disk).
pub const GUEST_SCRATCH: &str = "/var/lib/qfc-lab/run";
/// Guest ports forwarded by QEMU at boot (besides ssh), handed out first by `free_port`.
pub const FORWARDED_PORTS: [u16; 6] = [8545, 30303, 6060, 8546, 30304, 6061];

/// A QEMU guest as a target.
#[derive(Debug)]
pub struct QemuTarget {
    config: QemuConfig,
    image: Image,
    run_dir: PathBuf,
    host: HostFacts,
    guest: Option<Guest>,
    remote: Option<Remote>,
    shipped: u32,
    fetched: u32,
}

impl QemuTarget {
    /// A guest of `image` with `config`; its serial log, QEMU's stderr and
    /// the 9p share live in `run_dir` (created if missing).
    pub fn new(config: QemuConfig, image: Image, run_dir: PathBuf) -> QemuTarget {
        QemuTarget {
            config,
            image,
            run_dir,
            host: HostFacts::detect(),
            guest: None,
            remote: None,
            shipped: 0,
            fetched: 0,
        }
    }

    /// The image's summary for the bundle manifest (key, arch, kernel).
    pub fn image(&self) -> ImageSummary {
        self.image.summary()
    }

    /// The serial console log (kept after teardown, for the bundle).
    pub fn serial_log(&self) -> PathBuf {
        self.run_dir.join("serial.log")
    }

    /// The accelerator that ran, with the reason (after `prepare`).
    pub fn accel(&self) -> Option<&AccelChoice> {
        self.guest.as_ref().map(|g| &g.accel)
    }

    /// Launch-to-ready of this boot (after `prepare`).
    pub fn launch_to_ready(&self) -> Option<Duration> {
        self.guest.as_ref().map(|g| g.launch_to_ready)
    }

    /// QEMU's pid on this machine (after `prepare`, until teardown).
    pub fn qemu_pid(&self) -> Option<u32> {
        self.guest.as_ref().and_then(Guest::pid)
    }

    /// The QEMU command line that ran (after `prepare`), for the bundle.
    pub fn qemu_argv(&self) -> Option<&[OsString]> {
        self.guest.as_ref().map(|g| g.argv.as_slice())
    }

    fn parts(&mut self) -> Result<(&mut Guest, &mut Remote), TargetError> {
        match (self.guest.as_mut(), self.remote.as_mut()) {
            (Some(g), Some(r)) => Ok((g, r)),
            _ => Err(TargetError::Unsupported(
                "the QEMU guest is not running (not prepared, or torn down)".into(),
            )),
        }
    }

    /// Turns a failure into "the guest died" (with the serial tail) when QEMU is gone.
    fn diagnose(&mut self, e: TargetError) -> TargetError {
        if let Some(g) = self.guest.as_mut() {
            if let Err(dead) = g.check_alive() {
                return TargetError::GuestGone {
                    source: Box::new(e),
                    why: dead.to_string(),
                };
            }
            if matches!(
                e,
                TargetError::Ssh(_)
                    | TargetError::Remote { .. }
                    | TargetError::Exec { .. }
                    | TargetError::Wait { .. }
                    | TargetError::Timeout { .. }
            ) {
                return TargetError::GuestConsole {
                    source: Box::new(e),
                    serial_tail: g.serial_tail(20),
                };
            }
        }
        e
    }
}

/// How long `forward` waits for a guest listener before deciding.
pub const LISTEN_WAIT: Duration = Duration::from_secs(90);

impl QemuTarget {
    fn forward_inner(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        let (guest, remote) = self.parts()?;
        let Ok(fast) = guest.host_addr(target_port) else {
            return remote.tunnel(target_port);
        };
        let deadline = std::time::Instant::now() + LISTEN_WAIT;
        loop {
            let hosts = remote.listeners(target_port)?;
            if hosts
                .iter()
                .any(|h| matches!(h.as_str(), "0.0.0.0" | "*" | "[::]" | "10.0.2.15"))
            {
                return Ok(fast);
            }
            if !hosts.is_empty() {
                tracing::info!(target_port, "guest listener is loopback-only: forwarding through ssh (bind 0.0.0.0 in the guest for the faster hostfwd path)");
                return remote.tunnel(target_port);
            }
            if std::time::Instant::now() > deadline {
                warn!(
                    target_port,
                    "nothing listens on the guest port yet: returning its hostfwd address"
                );
                return Ok(fast);
            }
            crate::process::sleep_or_cancel(Duration::from_millis(500)).map_err(|source| {
                TargetError::Io {
                    what: "waiting for a guest listener",
                    path: PathBuf::from(format!("guest port {target_port}")),
                    source,
                }
            })?;
        }
    }
}

impl Target for QemuTarget {
    fn info(&self) -> TargetInfo {
        let accel = self.guest.as_ref().map(|g| g.accel.clone());
        TargetInfo {
            kind: TargetKind::Qemu,
            arch: self.config.arch.as_str().to_string(),
            emulated: accel.as_ref().map(|a| a.emulated).unwrap_or(true),
            accel: accel.map(|a| a.accel.as_str().to_string()),
        }
    }

    fn prepare(&mut self) -> Result<(), TargetError> {
        std::fs::create_dir_all(&self.run_dir).map_err(|source| TargetError::Io {
            what: "creating",
            path: self.run_dir.clone(),
            source,
        })?;
        let opts = GuestOptions {
            config: self.config.clone(),
            guest_ports: FORWARDED_PORTS.to_vec(),
            run_dir: self.run_dir.clone(),
        };
        let guest = Guest::launch(&self.image, &opts, &self.host).map_err(TargetError::Qemu)?;
        let host = match SshHost::connect(guest.ssh_dest().clone(), GUEST_SCRATCH) {
            Ok(h) => h,
            Err(e) => {
                let tail = guest.serial_tail(30);
                drop(guest);
                return Err(TargetError::GuestConsole {
                    source: Box::new(TargetError::Ssh(e)),
                    serial_tail: tail,
                });
            }
        };
        for d in ["in", "out"] {
            let p = guest.share_dir.join(d);
            std::fs::create_dir_all(&p).map_err(|source| TargetError::Io {
                what: "creating",
                path: p,
                source,
            })?;
        }
        self.guest = Some(guest);
        self.remote = Some(Remote::new(host));
        Ok(())
    }

    /// The private working directory made at `prepare` (under
    /// [`GUEST_SCRATCH`]); [`GUEST_SCRATCH`] itself before that.
    fn scratch_dir(&self) -> TargetPath {
        self.remote
            .as_ref()
            .map(|r| PathBuf::from(r.host.workdir()))
            .unwrap_or_else(|| PathBuf::from(GUEST_SCRATCH))
    }

    /// Copies the file into the 9p share, then onto the guest's own disk
    /// (`<scratch>/bin/<name>`, mode kept) so it runs from ext4, not 9p.
    fn ship(&mut self, local: &Path) -> Result<TargetPath, TargetError> {
        let name = local
            .file_name()
            .ok_or_else(|| {
                TargetError::Unsupported(format!("{} has no file name", local.display()))
            })?
            .to_owned();
        self.shipped += 1;
        let slot = format!("in/{}", self.shipped);
        let bin = self.scratch_dir().join("bin");
        let (guest, remote) = self.parts()?;
        let dir = guest.share_dir.join(&slot);
        std::fs::create_dir_all(&dir).map_err(|source| TargetError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        std::fs::copy(local, dir.join(&name)).map_err(|source| TargetError::Io {
            what: "copying into the 9p share",
            path: local.into(),
            source,
        })?;
        let target = bin.join(&name);
        let script = format!(
            "mkdir -p {bin} && cp {src} {dst} && rm -rf {slotdir}",
            bin = crate::ssh::shell_quote(&bin.display().to_string()),
            src = crate::ssh::shell_quote(&format!(
                "{GUEST_SHARE}/{slot}/{}",
                name.to_string_lossy()
            )),
            dst = crate::ssh::shell_quote(&target.display().to_string()),
            slotdir = crate::ssh::shell_quote(&format!("{GUEST_SHARE}/{slot}")),
        );
        let out = remote.exec(
            &["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(300),
        );
        match out {
            Ok(o) if o.success() => Ok(target),
            Ok(o) => Err(TargetError::Exec {
                argv: format!("copying {} into the guest", local.display()),
                code: o.code,
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            }),
            Err(e) => Err(self.diagnose(e)),
        }
    }

    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Box<dyn RemoteProcess>, TargetError> {
        let r = self.parts().and_then(|(_, r)| r.spawn(spec));
        match r {
            Ok(p) => Ok(Box::new(p) as Box<dyn RemoteProcess>),
            Err(e) => Err(self.diagnose(e)),
        }
    }

    fn exec(&mut self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError> {
        let r = self.parts().and_then(|(_, r)| r.exec(argv, timeout));
        r.map_err(|e| self.diagnose(e))
    }

    fn free_port(&mut self) -> Result<u16, TargetError> {
        let r = self
            .parts()
            .and_then(|(_, r)| r.free_port(&FORWARDED_PORTS));
        r.map_err(|e| self.diagnose(e))
    }

    /// The guest's only network is QEMU's user-mode NAT, reachable from this
    /// machine solely through `hostfwd` rules bound to 127.0.0.1: binding
    /// 0.0.0.0 in the guest exposes nothing further and lets the node's
    /// pre-forwarded ports take the direct hostfwd path instead of an ssh tunnel.
    fn listen_host(&self) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }

    /// QEMU's `hostfwd` reaches the guest's 10.0.2.15, not its loopback: a
    /// listener on 0.0.0.0 (or 10.0.2.15) of a pre-forwarded port gets the
    /// fast hostfwd address; a loopback-only listener (or any other port)
    /// gets an `ssh -L` tunnel. Waits up to [`LISTEN_WAIT`] for the listener
    /// to appear, since the orchestrator forwards right after spawning.
    fn forward(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        let r = self.forward_inner(target_port);
        r.map_err(|e| self.diagnose(e))
    }

    fn gone(&mut self) -> Option<String> {
        self.guest
            .as_mut()
            .and_then(|g| g.check_alive().err())
            .map(|e| e.to_string())
    }

    /// The guest copies the directory into the 9p share; this side moves it
    /// into `local`.
    fn fetch_dir(&mut self, remote_dir: &Path, local: &Path) -> Result<Imported, TargetError> {
        self.fetched += 1;
        let slot = format!("out/{}", self.fetched);
        let (guest, remote) = self.parts()?;
        let share_slot = guest.share_dir.join(&slot);
        let script = format!(
            "mkdir -p {dst} && cp -a {src}/. {dst}/",
            src = crate::ssh::shell_quote(&remote_dir.display().to_string()),
            dst = crate::ssh::shell_quote(&format!("{GUEST_SHARE}/{slot}")),
        );
        let out = remote.exec(
            &["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(600),
        );
        match out {
            Ok(o) if o.success() => {}
            Ok(o) => {
                return Err(TargetError::Exec {
                    argv: format!("copying {} out of the guest", remote_dir.display()),
                    code: o.code,
                    stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
                })
            }
            Err(e) => return Err(self.diagnose(e)),
        }
        // The share holds what the guest wrote: links, FIFOs and devices
        // among it stay there.
        let imported =
            crate::untrusted::import_tree(&share_slot, local, crate::untrusted::Limits::default())
                .map_err(|source| TargetError::Io {
                    what: "copying the guest's evidence out of the 9p share",
                    path: share_slot.clone(),
                    source,
                });
        let _ = std::fs::remove_dir_all(&share_slot);
        imported
    }

    fn teardown(&mut self) -> Result<(), TargetError> {
        let mut result = Ok(());
        let alive = self
            .guest
            .as_mut()
            .map(|g| g.check_alive().is_ok())
            .unwrap_or(false);
        if let Some(mut r) = self.remote.take() {
            if !alive {
                // The guest is gone with its processes; its disk was a snapshot.
                r.forget();
            } else if let Err(e) = r.teardown() {
                // Stops the guest's processes (probes detach as they exit).
                warn!(error = %e, "guest clean-up failed; QEMU is killed anyway");
                result = Err(e);
            }
        }
        if let Some(mut g) = self.guest.take() {
            g.shutdown();
        }
        let _ = std::fs::remove_dir_all(self.run_dir.join("share"));
        result
    }
}

impl Drop for QemuTarget {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
