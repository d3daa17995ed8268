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
    ignored_unless(name, f, need)
}

/// A trial, ignored with the reason printed when `need` is an error (never
/// passed without running).
pub fn ignored_unless(
    name: &str,
    f: fn() -> Result<(), Failed>,
    need: Result<(), String>,
) -> Trial {
    match need {
        Ok(()) => Trial::test(name, f),
        Err(why) => {
            eprintln!("{name}: skipped: {why}");
            Trial::test(name, f).with_ignored_flag(true)
        }
    }
}

/// The venv's Python (scripts/setup.sh builds it in `$QFC_LAB_CACHE/pyenv`)
/// when it can import every module of `modules` (comma-separated); else why
/// not, for the caller to report the check as skipped.
pub fn venv_python(modules: &str) -> Result<PathBuf, String> {
    let cache = std::env::var_os("QFC_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/qfc-lab"));
    let py = cache.join("pyenv/bin/python");
    if !py.is_file() {
        return Err(format!("{} is missing: run scripts/setup.sh", py.display()));
    }
    match Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(o) if o.status.success() => Ok(py),
        Ok(o) => Err(format!(
            "{} cannot import {modules} ({}): run scripts/setup.sh",
            py.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {}: {e}", py.display())),
    }
}

/// What `scripts/validate-schemas.py` found.
#[derive(serde::Deserialize)]
pub struct Validation {
    /// `(schema file, JSON file)` pairs validated.
    pub validated: Vec<(String, String)>,
    /// One line per error: `file: /path in the document: message`.
    pub errors: Vec<String>,
}

/// Runs `scripts/validate-schemas.py` (Python's `jsonschema`, not ours)
/// with the venv's `py` on `args`: bundle directories, or `--as SCHEMA FILE`.
pub fn validate_schemas(py: &Path, args: &[&std::ffi::OsStr]) -> Result<Validation, Failed> {
    let o = Command::new(py)
        .arg(repo().join("scripts/validate-schemas.py"))
        .args(args)
        .output()?;
    if !matches!(o.status.code(), Some(0 | 1)) {
        return Err(format!(
            "validate-schemas.py: {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}
