//! QEMU guests: the command line (a pure function, golden-tested under
//! `tests/data/qemu/`), and a running guest that boots a cached image with
//! its disk in snapshot mode (writes thrown away, the base stays clean),
//! forwards guest ports to `127.0.0.1` only, shares a host directory over
//! 9p, waits for the ready marker on the serial console, reaches the guest
//! over ssh with the image's pinned host key, and is always killed with its
//! process group (drop, lab death via `PR_SET_PDEATHSIG`).

use crate::arch::{resolve_accel, Accel, AccelChoice, AccelError, Arch, HostFacts, ResolvedAccel};
use crate::image::Image;
use crate::process::{spawn_group, GroupChild};
use crate::ssh::{self, SshDest, SshError};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tracing::{info, instrument, warn};

/// The line the guest's init prints on the serial console once sshd runs.
pub const READY_MARKER: &str = "QFC-LAB-READY";
/// 9p mount tag of the shared directory; the guest mounts it at [`GUEST_SHARE`].
pub const SHARE_TAG: &str = "host0";
/// Where the guest sees the shared directory.
pub const GUEST_SHARE: &str = "/mnt/host";
/// Guest ports forwarded by default: ssh, node RPC, p2p, metrics.
pub const DEFAULT_GUEST_PORTS: [u16; 4] = [22, 8545, 30303, 6060];

/// `[target.qemu]` in domain form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuConfig {
    pub arch: Arch,
    pub cpus: u32,
    pub mem_mib: u32,
    pub accel: Accel,
    pub boot_timeout_s: u64,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            arch: Arch::Aarch64,
            cpus: 2,
            mem_mib: 2048,
            accel: Accel::Auto,
            boot_timeout_s: 180,
        }
    }
}

/// One `hostfwd` rule: `127.0.0.1:host_port` -> guest `guest_port` (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    pub guest_port: u16,
    pub host_port: u16,
}

/// Everything the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub arch: Arch,
    pub accel: ResolvedAccel,
    pub cpus: u32,
    pub mem_mib: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    pub share_dir: PathBuf,
    pub serial_log: PathBuf,
    pub forwards: Vec<Forward>,
}

/// Escapes a value for QEMU's comma-separated option syntax.
fn qopt(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The CPU model: the host's under KVM/HVF; under TCG a Neoverse N1
/// (Graviton2's core, ARMv8.2 without pointer authentication, which TCG
/// emulates slowly) or QEMU's `max` on x86_64.
pub fn cpu_model(arch: Arch, accel: ResolvedAccel) -> &'static str {
    match (arch, accel) {
        (_, ResolvedAccel::Kvm | ResolvedAccel::Hvf) => "host",
        (Arch::Aarch64, ResolvedAccel::Tcg) => "neoverse-n1",
        (Arch::X86_64, ResolvedAccel::Tcg) => "max",
    }
}

/// The kernel command line.
pub fn kernel_cmdline(arch: Arch) -> String {
    format!(
        "console={} root=/dev/vda rw panic=-1 loglevel=4 net.ifnames=0",
        arch.console()
    )
}

/// The full QEMU argv (program first). Pure: same spec, same argv.
pub fn qemu_args(spec: &LaunchSpec) -> Vec<OsString> {
    let mut a: Vec<String> = vec![spec.arch.qemu_system().to_string()];
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    match spec.arch {
        Arch::Aarch64 => push(&["-machine", "virt"]),
        Arch::X86_64 => push(&["-machine", "q35"]),
    }
    let accel = match spec.accel {
        ResolvedAccel::Tcg => "tcg,thread=multi,tb-size=256".to_string(),
        other => other.as_str().to_string(),
    };
    push(&["-accel", &accel]);
    push(&["-cpu", cpu_model(spec.arch, spec.accel)]);
    push(&["-smp", &spec.cpus.to_string()]);
    push(&["-m", &format!("{}M", spec.mem_mib)]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
    ]);
    push(&[
        "-chardev",
        &format!("file,id=serial0,path={}", qopt(&spec.serial_log)),
    ]);
    push(&["-serial", "chardev:serial0"]);
    // -kernel and -initrd take the path verbatim (no option-list parsing).
    push(&["-kernel", &spec.kernel.display().to_string()]);
    push(&["-initrd", &spec.initrd.display().to_string()]);
    push(&["-append", &kernel_cmdline(spec.arch)]);
    push(&[
        "-drive",
        &format!(
            "if=none,id=disk0,file={},format=qcow2,snapshot=on,cache=unsafe",
            qopt(&spec.disk)
        ),
    ]);
    push(&["-device", "virtio-blk-pci,drive=disk0"]);
    let mut netdev = "user,id=net0,restrict=on,ipv6=off".to_string();
    for f in &spec.forwards {
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{}-:{}",
            f.host_port, f.guest_port
        ));
    }
    push(&["-netdev", &netdev]);
    push(&["-device", "virtio-net-pci,netdev=net0"]);
    push(&[
        "-fsdev",
        &format!(
            "local,id=fs0,path={},security_model=none",
            qopt(&spec.share_dir)
        ),
    ]);
    push(&[
        "-device",
        &format!("virtio-9p-pci,fsdev=fs0,mount_tag={SHARE_TAG}"),
    ]);
    a.into_iter().map(OsString::from).collect()
}

/// What went wrong with a guest.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error(transparent)]
    Accel(#[from] AccelError),
    #[error("{program} not found: install it (scripts/setup.sh installs qemu-system-arm and qemu-system-x86 from bookworm-backports)")]
    QemuMissing { program: String },
    #[error("the image is for {image}, the guest for {guest}: build the image with `qfc-lab image build --arch {guest}`")]
    ArchMismatch { image: Arch, guest: Arch },
    #[error("guest did not print its ready marker within {timeout_s} s (accelerator {accel}); serial console tail:\n{serial_tail}")]
    BootTimeout {
        timeout_s: u64,
        accel: ResolvedAccel,
        serial_tail: String,
    },
    #[error("QEMU exited with {status} {when}; serial console tail:\n{serial_tail}")]
    Died {
        status: String,
        when: &'static str,
        serial_tail: String,
    },
    #[error("the guest came up but ssh failed: {source}; serial console tail:\n{serial_tail}")]
    Channel {
        #[source]
        source: SshError,
        serial_tail: String,
    },
    #[error("guest port {guest_port} is not forwarded: add it to the guest's forwarded ports")]
    NotForwarded { guest_port: u16 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QemuError {
    let what = what.into();
    move |source| QemuError::Io { what, source }
}

/// Picks `n` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The last `max_lines` lines of a (serial) log file, lossily decoded.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        "(serial console empty)".into()
    } else {
        tail
    }
}

/// How to launch a guest.
#[derive(Debug, Clone)]
pub struct GuestOptions {
    pub config: QemuConfig,
    /// Guest TCP ports forwarded to free ports on 127.0.0.1; 22 is always added.
    pub guest_ports: Vec<u16>,
    /// Directory for the serial log and the 9p share (kept for the bundle).
    pub run_dir: PathBuf,
}

/// A booted guest. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Guest {
    child: Option<GroupChild>,
    pub arch: Arch,
    pub accel: AccelChoice,
    pub forwards: Vec<Forward>,
    pub serial_log: PathBuf,
    pub share_dir: PathBuf,
    pub argv: Vec<OsString>,
    /// From spawning QEMU to the ready marker plus a first ssh command.
    pub launch_to_ready: Duration,
    ssh: SshDest,
}

impl Guest {
    /// Boots `image` and waits until it is reachable over ssh.
    #[instrument(skip(image, opts, host), fields(arch = %opts.config.arch))]
    pub fn launch(
        image: &Image,
        opts: &GuestOptions,
        host: &HostFacts,
    ) -> Result<Guest, QemuError> {
        let cfg = &opts.config;
        if image.arch != cfg.arch {
            return Err(QemuError::ArchMismatch {
                image: image.arch,
                guest: cfg.arch,
            });
        }
        let accel = resolve_accel(cfg.accel, cfg.arch, host)?;
        if accel.emulated {
            warn!(reason = %accel.reason, "guest runs under TCG emulation");
        }
        let program = cfg.arch.qemu_system();
        if which::which(program).is_err() {
            return Err(QemuError::QemuMissing {
                program: program.into(),
            });
        }
        let share_dir = opts.run_dir.join("share");
        std::fs::create_dir_all(&share_dir)
            .map_err(io_err(format!("creating {}", share_dir.display())))?;
        let serial_log = opts.run_dir.join("serial.log");
        let mut guest_ports = vec![22u16];
        for p in &opts.guest_ports {
            if !guest_ports.contains(p) {
                guest_ports.push(*p);
            }
        }
        // A port picked free may be taken before QEMU binds it: retry a few times.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let host_ports =
                free_ports(guest_ports.len()).map_err(io_err("picking free ports on 127.0.0.1"))?;
            let forwards: Vec<Forward> = guest_ports
                .iter()
                .zip(host_ports)
                .map(|(&guest_port, host_port)| Forward {
                    guest_port,
                    host_port,
                })
                .collect();
            let spec = LaunchSpec {
                arch: cfg.arch,
                accel: accel.accel,
                cpus: cfg.cpus,
                mem_mib: cfg.mem_mib,
                kernel: image.kernel.clone(),
                initrd: image.initrd.clone(),
                disk: image.disk.clone(),
                share_dir: share_dir.clone(),
                serial_log: serial_log.clone(),
                forwards: forwards.clone(),
            };
            let argv = qemu_args(&spec);
            let _ = std::fs::remove_file(&serial_log);
            let qemu_log = opts.run_dir.join("qemu.stderr.log");
            let stderr = std::fs::File::create(&qemu_log)
                .map_err(io_err(format!("creating {}", qemu_log.display())))?;
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(stderr);
            info!(accel = %accel.accel, attempt, "launching QEMU");
            let started = Instant::now();
            let mut child = spawn_group(cmd).map_err(io_err(format!("starting {program}")))?;
            let ssh_port = forwards[0].host_port;
            let ssh = image.ssh_dest(ssh_port);
            match wait_ready(
                &mut child,
                &serial_log,
                &qemu_log,
                Duration::from_secs(cfg.boot_timeout_s),
                accel.accel,
            ) {
                Ok(()) => {}
                Err(QemuError::Died {
                    status,
                    serial_tail,
                    ..
                }) if attempt < 3
                    && std::fs::read_to_string(&qemu_log)
                        .unwrap_or_default()
                        .contains("host forwarding") =>
                {
                    warn!(%status, %serial_tail, "a forwarded port was taken; retrying with other ports");
                    continue;
                }
                Err(e) => return Err(e),
            }
            let remaining = Duration::from_secs(cfg.boot_timeout_s)
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(20));
            if let Err(source) = ssh::wait_until_reachable(&ssh, remaining) {
                let _ = child.kill();
                return Err(QemuError::Channel {
                    source,
                    serial_tail: log_tail(&serial_log, 40),
                });
            }
            let launch_to_ready = started.elapsed();
            info!(
                launch_to_ready_ms = launch_to_ready.as_millis() as u64,
                "guest ready"
            );
            return Ok(Guest {
                child: Some(child),
                arch: cfg.arch,
                accel,
                forwards,
                serial_log,
                share_dir,
                argv,
                launch_to_ready,
                ssh,
            });
        }
    }

    /// The ssh destination of the guest (root, pinned host key).
    pub fn ssh_dest(&self) -> &SshDest {
        &self.ssh
    }

    /// The `127.0.0.1` address that reaches `guest_port`.
    pub fn host_addr(&self, guest_port: u16) -> Result<SocketAddr, QemuError> {
        self.forwards
            .iter()
            .find(|f| f.guest_port == guest_port)
            .map(|f| SocketAddr::from((Ipv4Addr::LOCALHOST, f.host_port)))
            .ok_or(QemuError::NotForwarded { guest_port })
    }

    /// Ok while QEMU runs; `Died` with the serial tail once it has exited.
    pub fn check_alive(&mut self) -> Result<(), QemuError> {
        let Some(child) = self.child.as_mut() else {
            return Err(QemuError::Died {
                status: "killed".into(),
                when: "after shutdown",
                serial_tail: log_tail(&self.serial_log, 40),
            });
        };
        match child.try_wait().map_err(io_err("polling QEMU"))? {
            None => Ok(()),
            Some(status) => Err(QemuError::Died {
                status: status.to_string(),
                when: "mid-run",
                serial_tail: log_tail(&self.serial_log, 40),
            }),
        }
    }

    /// The serial console's last lines.
    pub fn serial_tail(&self, lines: usize) -> String {
        log_tail(&self.serial_log, lines)
    }

    /// QEMU's pid (its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(GroupChild::id)
    }

    /// Kills QEMU (its forwarded ports close with it). Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            info!("QEMU killed");
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_ready(
    child: &mut GroupChild,
    serial_log: &Path,
    qemu_log: &Path,
    timeout: Duration,
    accel: ResolvedAccel,
) -> Result<(), QemuError> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read(serial_log)
            .map(|b| {
                b.windows(READY_MARKER.len())
                    .any(|w| w == READY_MARKER.as_bytes())
            })
            .unwrap_or(false)
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait().map_err(io_err("polling QEMU"))? {
            let qemu_err = std::fs::read_to_string(qemu_log).unwrap_or_default();
            return Err(QemuError::Died {
                status: format!("{status} ({})", qemu_err.trim()),
                when: "before the guest was ready",
                serial_tail: log_tail(serial_log, 40),
            });
        }
        if crate::process::cancel_requested() {
            let _ = child.kill();
            return Err(QemuError::Io {
                what: "waiting for the guest to boot".into(),
                source: crate::process::cancelled_error(),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(QemuError::BootTimeout {
                timeout_s: timeout.as_secs(),
                accel,
                serial_tail: log_tail(serial_log, 40),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
