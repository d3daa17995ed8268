//! Kernel facilities of this machine that a run needs, set up on demand so
//! that `qfc-lab run` works after a reboot or on a fresh machine without a
//! separate services script: binfmt_misc (foreign-architecture binaries run
//! through qemu-user while a guest image is built). tracefs is mounted by the
//! probe program itself (`probes::tracefs::ensure_mounted`).
//!
//! Setting these up needs root; without it the error says exactly what to run.

use std::path::{Path, PathBuf};

use crate::arch::Arch;

/// Where binfmt_misc lives.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static puts its binfmt descriptions.
pub const BINFMT_CONF_DIR: &str = "/usr/lib/binfmt.d";

/// What stopped the set-up.
#[derive(Debug, thiserror::Error)]
pub enum HostPrepError {
    #[error("{what} needs root (qfc-lab runs as uid {uid}): run qfc-lab as root, or once `sudo bash scripts/services.sh`")]
    NotRoot { what: String, uid: u32 },
    #[error("{conf} is missing: install qemu-user-static (bash scripts/setup.sh installs it)")]
    NoQemuUser { conf: PathBuf },
    #[error("{what} failed: {source}; run `sudo bash scripts/services.sh` or do it by hand")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "binfmt_misc entry {entry} is still not enabled after registering it: check `cat {entry}`"
    )]
    StillDisabled { entry: PathBuf },
}

/// What [`ensure_binfmt`] did, for the progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinfmtAction {
    /// Binaries of this architecture run natively.
    Native,
    /// Already registered and enabled.
    AlreadyEnabled,
    /// Registered now (and binfmt_misc mounted first when `mounted`).
    Registered { mounted: bool },
}

/// Name of the binfmt_misc entry for `arch` (Debian's qemu-user-static).
pub fn binfmt_entry_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Aarch64 => "qemu-aarch64",
        Arch::X86_64 => "qemu-x86_64",
    }
}

fn enabled(entry: &Path) -> bool {
    std::fs::read_to_string(entry)
        .map(|s| s.starts_with("enabled"))
        .unwrap_or(false)
}

/// Makes binaries of `arch` runnable on this machine through qemu-user:
/// mounts binfmt_misc when it is not mounted and registers Debian's
/// description of the interpreter. Idempotent; a no-op for the host's own
/// architecture.
pub fn ensure_binfmt(arch: Arch) -> Result<BinfmtAction, HostPrepError> {
    ensure_binfmt_in(arch, Path::new(BINFMT_DIR), Path::new(BINFMT_CONF_DIR))
}

fn ensure_binfmt_in(
    arch: Arch,
    dir: &Path,
    conf_dir: &Path,
) -> Result<BinfmtAction, HostPrepError> {
    if Arch::host() == Some(arch) {
        return Ok(BinfmtAction::Native);
    }
    let name = binfmt_entry_name(arch);
    let entry = dir.join(name);
    if enabled(&entry) {
        return Ok(BinfmtAction::AlreadyEnabled);
    }
    let uid = nix::unistd::geteuid().as_raw();
    if uid != 0 {
        return Err(HostPrepError::NotRoot {
            what: format!("registering {name} in binfmt_misc"),
            uid,
        });
    }
    let register = dir.join("register");
    let mut mounted = false;
    if !register.exists() {
        nix::mount::mount(
            Some("binfmt_misc"),
            dir,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| HostPrepError::Io {
            what: format!("mounting binfmt_misc at {}", dir.display()),
            source: e.into(),
        })?;
        mounted = true;
    }
    if entry.exists() {
        // Registered but disabled: enable it.
        std::fs::write(&entry, b"1").map_err(|source| HostPrepError::Io {
            what: format!("enabling {}", entry.display()),
            source,
        })?;
    } else {
        let conf = conf_dir.join(format!("{name}.conf"));
        let line =
            std::fs::read(&conf).map_err(|_| HostPrepError::NoQemuUser { conf: conf.clone() })?;
        std::fs::write(&register, line.trim_ascii_end()).map_err(|source| HostPrepError::Io {
            what: format!(
                "registering {} through {}",
                conf.display(),
                register.display()
            ),
            source,
        })?;
    }
    if !enabled(&entry) {
        return Err(HostPrepError::StillDisabled { entry });
    }
    Ok(BinfmtAction::Registered { mounted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign() -> Arch {
        match Arch::host() {
            Some(Arch::Aarch64) => Arch::X86_64,
            _ => Arch::Aarch64,
        }
    }

    #[test]
    fn host_arch_needs_nothing() {
        if let Some(a) = Arch::host() {
            assert_eq!(
                ensure_binfmt_in(a, Path::new("/nonexistent"), Path::new("/nonexistent")).unwrap(),
                BinfmtAction::Native
            );
        }
    }

    #[test]
    fn an_enabled_entry_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let a = foreign();
        std::fs::write(
            d.path().join(binfmt_entry_name(a)),
            "enabled\ninterpreter x\n",
        )
        .unwrap();
        assert_eq!(
            ensure_binfmt_in(a, d.path(), Path::new("/nonexistent")).unwrap(),
            BinfmtAction::AlreadyEnabled
        );
    }

    #[test]
    fn a_missing_description_names_the_package_or_root() {
        // A fake binfmt dir with a `register` file (so nothing is mounted) and
        // no description: as root the error names qemu-user-static, otherwise
        // it says that root is needed and what to run.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        let conf = tempfile::tempdir().unwrap();
        let e = ensure_binfmt_in(foreign(), d.path(), conf.path()).unwrap_err();
        if nix::unistd::geteuid().is_root() {
            assert!(matches!(e, HostPrepError::NoQemuUser { .. }), "{e}");
            assert!(e.to_string().contains("qemu-user-static"), "{e}");
        } else {
            assert!(matches!(e, HostPrepError::NotRoot { .. }), "{e}");
            assert!(e.to_string().contains("scripts/services.sh"), "{e}");
        }
    }
}
