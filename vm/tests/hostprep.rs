//! `vm::hostprep::ensure_binfmt` against the real kernel (issue 13, part 1):
//! with the qemu-aarch64 binfmt_misc entry removed, an aarch64 program does
//! not run; after `ensure_binfmt` it runs and exits with its known code.
//! Needs root, an x86_64 host, qemu-user-static and the aarch64 cross gcc
//! (scripts/setup.sh installs both); otherwise reported as ignored with the
//! reason. Serialised with guest image builds by `.config/nextest.toml`.

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::process::Command;
use vm::hostprep::{binfmt_entry_name, ensure_binfmt, BinfmtAction, BINFMT_DIR};
use vm::Arch;

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (binfmt_misc registration)".into());
    }
    if Arch::host() != Some(Arch::X86_64) {
        return Some("needs an x86_64 host (aarch64 is foreign only there)".into());
    }
    if !Path::new("/usr/lib/binfmt.d/qemu-aarch64.conf").exists() {
        return Some("qemu-user-static is not installed (bash scripts/setup.sh)".into());
    }
    if Command::new("aarch64-linux-gnu-gcc")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("aarch64-linux-gnu-gcc is not installed (bash scripts/setup.sh)".into());
    }
    None
}

fn registers_on_demand() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("seven.c");
    let exe = dir.path().join("seven");
    std::fs::write(&src, "int main(void) { return 7; }\n")?;
    let st = Command::new("aarch64-linux-gnu-gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()?;
    if !st.success() {
        return Err(format!("aarch64-linux-gnu-gcc failed: {st}").into());
    }
    let entry = Path::new(BINFMT_DIR).join(binfmt_entry_name(Arch::Aarch64));
    if entry.exists() {
        std::fs::write(&entry, "-1")?;
    }
    let before = Command::new(&exe).status();
    if let Ok(st) = &before {
        return Err(format!("with no binfmt entry the aarch64 program still ran ({st})").into());
    }
    let action = ensure_binfmt(Arch::Aarch64)?;
    assert!(
        matches!(action, BinfmtAction::Registered { .. }),
        "{action:?}"
    );
    let after = Command::new(&exe).status()?;
    assert_eq!(after.code(), Some(7), "the aarch64 program's exit code");
    // Idempotent.
    assert_eq!(ensure_binfmt(Arch::Aarch64)?, BinfmtAction::AlreadyEnabled);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut t = Trial::test("binfmt_registered_on_demand", registers_on_demand);
    if let Some(why) = skip_reason() {
        eprintln!("skipping binfmt_registered_on_demand: {why}");
        t = t.with_ignored_flag(true);
    }
    libtest_mimic::run(&args, vec![t]).exit();
}
