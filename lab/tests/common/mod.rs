//! Helpers shared by the end-to-end test binaries of `lab` (run_targets,
//! t1_findings): where qfc-lab and its siblings are, assertions, and trials
//! that are reported as ignored, with the reason, when what they need is
//! missing (never as passed).
#![allow(dead_code)] // each test binary uses its own part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};

pub fn lab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qfc-lab"))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary built next to qfc-lab.
pub fn sibling(name: &str) -> Option<PathBuf> {
    let p = lab().parent()?.join(name);
    p.is_file().then_some(p)
}

pub fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

/// `Ok` when this machine's Docker engine answers.
pub fn docker_reachable() -> Result<(), String> {
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "dockerd is not reachable ({}): start it with scripts/services.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "docker client not found ({e}): run scripts/setup.sh"
        )),
    }
}

/// A trial that also needs qfc-refnode and qfc-probe next to qfc-lab;
/// ignored, with the reason printed, when `need` or they are missing.
pub fn trial(name: &str, f: fn() -> Result<(), Failed>, need: Result<(), String>) -> Trial {
    let need = need.and_then(|_| {
        for b in ["qfc-refnode", "qfc-probe"] {
            if sibling(b).is_none() {
                return Err(format!(
                    "{b} is not built next to qfc-lab: cargo build --bins"
                ));
            }
        }
        Ok(())
    });
    match need {
        Ok(()) => Trial::test(name, f),
        Err(why) => {
            eprintln!("{name}: skipped: {why}");
            Trial::test(name, f).with_ignored_flag(true)
        }
    }
}
