//! Guest architectures and accelerators, and how `accel = "auto"` picks one
//! from facts about this host (a pure function, tested without a host).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A guest (or host) CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Aarch64,
    X86_64,
}

impl Arch {
    /// Debian's name of the architecture.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Aarch64 => "arm64",
            Arch::X86_64 => "amd64",
        }
    }

    /// `uname -m` and Rust's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }

    /// Rust target triple of a Linux guest of this architecture.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
        }
    }

    /// The QEMU system emulator binary for this guest architecture.
    pub fn qemu_system(self) -> &'static str {
        match self {
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::X86_64 => "qemu-system-x86_64",
        }
    }

    /// The serial console device name the guest kernel writes to.
    pub fn console(self) -> &'static str {
        match self {
            Arch::Aarch64 => "ttyAMA0",
            Arch::X86_64 => "ttyS0",
        }
    }

    /// The architecture this program was built for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "aarch64" => Some(Arch::Aarch64),
            "x86_64" => Some(Arch::X86_64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            other => Err(format!(
                "unknown architecture `{other}`: use `aarch64` or `x86_64`"
            )),
        }
    }
}

/// The accelerator a scenario asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    /// KVM or HVF when they can run this guest here, TCG otherwise.
    #[default]
    Auto,
    Kvm,
    Hvf,
    Tcg,
}

/// The accelerator that actually runs a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedAccel {
    Kvm,
    Hvf,
    Tcg,
}

impl ResolvedAccel {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedAccel::Kvm => "kvm",
            ResolvedAccel::Hvf => "hvf",
            ResolvedAccel::Tcg => "tcg",
        }
    }

    /// True when guest instructions are emulated (timings not comparable with hardware).
    pub fn emulated(self) -> bool {
        self == ResolvedAccel::Tcg
    }
}

impl fmt::Display for ResolvedAccel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this host's `/dev/kvm` can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvmState {
    /// No `/dev/kvm`.
    Absent,
    /// `/dev/kvm` exists but this user cannot open it read-write.
    NoAccess,
    /// `/dev/kvm` comes from `kvm_pvm`, which only boots `CONFIG_PVM_GUEST`
    /// kernels: a stock Debian guest kernel never comes up under it.
    Paravirtual,
    /// A hardware KVM (`kvm_intel`, `kvm_amd` or arm64 KVM).
    Usable,
}

/// Facts about the host that decide the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub arch: Option<Arch>,
    pub macos: bool,
    pub kvm: KvmState,
}

impl HostFacts {
    /// Looks at this machine (`/dev/kvm`, `/sys/module`).
    pub fn detect() -> HostFacts {
        HostFacts {
            arch: Arch::host(),
            macos: cfg!(target_os = "macos"),
            kvm: detect_kvm(Path::new("/dev/kvm"), Path::new("/sys/module")),
        }
    }
}

/// Classifies `/dev/kvm` from the device node and the loaded modules.
pub fn detect_kvm(dev: &Path, sys_module: &Path) -> KvmState {
    if !dev.exists() {
        return KvmState::Absent;
    }
    if sys_module.join("kvm_pvm").exists() {
        return KvmState::Paravirtual;
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_err()
    {
        return KvmState::NoAccess;
    }
    KvmState::Usable
}

/// The accelerator chosen for a run and why, for the bundle's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    pub requested: Accel,
    pub accel: ResolvedAccel,
    pub emulated: bool,
    pub reason: String,
}

/// Why a requested accelerator cannot run a guest here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccelError {
    #[error("accel = \"kvm\" cannot run a {guest} guest on this {host} host: KVM only runs guests of the host's architecture; use accel = \"tcg\" or \"auto\"")]
    KvmWrongArch { guest: Arch, host: String },
    #[error("accel = \"kvm\" is unusable here: {why}; use accel = \"tcg\" or \"auto\"")]
    KvmUnusable { why: String },
    #[error("accel = \"hvf\" needs macOS on the guest's architecture ({guest}); use accel = \"tcg\" or \"auto\"")]
    HvfUnavailable { guest: Arch },
}

fn kvm_problem(state: KvmState) -> Option<&'static str> {
    match state {
        KvmState::Usable => None,
        KvmState::Absent => Some("/dev/kvm does not exist (no hardware virtualisation)"),
        KvmState::NoAccess => Some("/dev/kvm cannot be opened read-write by this user"),
        KvmState::Paravirtual => Some(
            "/dev/kvm is kvm_pvm, which boots only CONFIG_PVM_GUEST kernels, not the Debian guest kernel",
        ),
    }
}

/// Picks the accelerator for a `guest` on `host`: KVM (Linux, same arch) or
/// HVF (macOS, same arch) when asked for or when `auto` finds them usable,
/// TCG emulation otherwise.
pub fn resolve_accel(
    requested: Accel,
    guest: Arch,
    host: &HostFacts,
) -> Result<AccelChoice, AccelError> {
    let same_arch = host.arch == Some(guest);
    let host_name = host.arch.map_or("unknown", Arch::as_str).to_string();
    let choice = |accel: ResolvedAccel, reason: String| AccelChoice {
        requested,
        accel,
        emulated: accel.emulated(),
        reason,
    };
    match requested {
        Accel::Tcg => Ok(choice(
            ResolvedAccel::Tcg,
            "TCG requested: guest instructions are emulated, timings are not comparable with hardware".into(),
        )),
        Accel::Kvm => {
            if host.macos {
                return Err(AccelError::KvmUnusable {
                    why: "KVM is Linux-only (this is macOS: use hvf)".into(),
                });
            }
            if !same_arch {
                return Err(AccelError::KvmWrongArch {
                    guest,
                    host: host_name,
                });
            }
            match kvm_problem(host.kvm) {
                None => Ok(choice(ResolvedAccel::Kvm, "KVM requested and usable".into())),
                Some(why) => Err(AccelError::KvmUnusable { why: why.into() }),
            }
        }
        Accel::Hvf => {
            if host.macos && same_arch {
                Ok(choice(ResolvedAccel::Hvf, "HVF requested".into()))
            } else {
                Err(AccelError::HvfUnavailable { guest })
            }
        }
        Accel::Auto => {
            if host.macos && same_arch {
                return Ok(choice(ResolvedAccel::Hvf, "auto: macOS host of the guest's architecture".into()));
            }
            if !host.macos && same_arch && host.kvm == KvmState::Usable {
                return Ok(choice(ResolvedAccel::Kvm, "auto: hardware KVM for a guest of the host's architecture".into()));
            }
            let why = if !same_arch {
                format!("the {guest} guest differs from the {host_name} host")
            } else if host.macos {
                "HVF is unavailable".to_string()
            } else {
                kvm_problem(host.kvm).unwrap_or("KVM unusable").to_string()
            };
            Ok(choice(
                ResolvedAccel::Tcg,
                format!("auto fell back to TCG emulation because {why}: timings are not comparable with hardware"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(arch: Arch, kvm: KvmState) -> HostFacts {
        HostFacts {
            arch: Some(arch),
            macos: false,
            kvm,
        }
    }

    #[test]
    fn auto_on_this_kind_of_host_falls_back_to_tcg() {
        // x86_64 host whose /dev/kvm is kvm_pvm (issue 6).
        let host = linux(Arch::X86_64, KvmState::Paravirtual);
        let c = resolve_accel(Accel::Auto, Arch::Aarch64, &host).unwrap();
        assert_eq!(c.accel, ResolvedAccel::Tcg);
        assert!(c.emulated);
        let c = resolve_accel(Accel::Auto, Arch::X86_64, &host).unwrap();
        assert_eq!(c.accel, ResolvedAccel::Tcg);
        assert!(c.reason.contains("kvm_pvm"), "{}", c.reason);
    }

    #[test]
    fn auto_takes_hardware_kvm_for_same_arch() {
        let host = linux(Arch::Aarch64, KvmState::Usable);
        let c = resolve_accel(Accel::Auto, Arch::Aarch64, &host).unwrap();
        assert_eq!(c.accel, ResolvedAccel::Kvm);
        assert!(!c.emulated);
        let c = resolve_accel(Accel::Auto, Arch::X86_64, &host).unwrap();
        assert_eq!(c.accel, ResolvedAccel::Tcg);
    }

    #[test]
    fn auto_takes_hvf_on_apple_silicon() {
        let host = HostFacts {
            arch: Some(Arch::Aarch64),
            macos: true,
            kvm: KvmState::Absent,
        };
        assert_eq!(
            resolve_accel(Accel::Auto, Arch::Aarch64, &host)
                .unwrap()
                .accel,
            ResolvedAccel::Hvf
        );
    }

    #[test]
    fn explicit_kvm_is_refused_with_a_reason() {
        let host = linux(Arch::X86_64, KvmState::Paravirtual);
        let e = resolve_accel(Accel::Kvm, Arch::X86_64, &host).unwrap_err();
        assert!(e.to_string().contains("kvm_pvm"), "{e}");
        let e = resolve_accel(
            Accel::Kvm,
            Arch::Aarch64,
            &linux(Arch::X86_64, KvmState::Usable),
        )
        .unwrap_err();
        assert!(matches!(e, AccelError::KvmWrongArch { .. }));
        let e = resolve_accel(Accel::Hvf, Arch::Aarch64, &host).unwrap_err();
        assert!(matches!(e, AccelError::HvfUnavailable { .. }));
    }

    #[test]
    fn detect_kvm_sees_pvm_module() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("kvm");
        let sys = dir.path().join("module");
        std::fs::create_dir_all(&sys).unwrap();
        assert_eq!(detect_kvm(&dev, &sys), KvmState::Absent);
        std::fs::write(&dev, b"").unwrap();
        assert_eq!(detect_kvm(&dev, &sys), KvmState::Usable);
        std::fs::create_dir_all(sys.join("kvm_pvm")).unwrap();
        assert_eq!(detect_kvm(&dev, &sys), KvmState::Paravirtual);
    }
}
