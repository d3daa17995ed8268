//! The evidence bundle on disk: its layout (the only place that knows it,
//! see docs/ARCHITECTURE.md "Bundle layout"), the manifest with the BLAKE3
//! of every file, and `verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest at the bundle root.
pub const MANIFEST: &str = "manifest.json";

/// Paths inside a bundle.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }
    pub fn scenario(&self) -> PathBuf {
        self.root.join("scenario.toml")
    }
    pub fn context_json(&self) -> PathBuf {
        self.root.join("context.json")
    }
    pub fn context_txt(&self) -> PathBuf {
        self.root.join("context.txt")
    }
    pub fn timeline(&self) -> PathBuf {
        self.root.join("timeline.json")
    }
    pub fn node_dir(&self) -> PathBuf {
        self.root.join("node")
    }
    pub fn metrics_dir(&self) -> PathBuf {
        self.root.join("metrics")
    }
    pub fn metrics_phase(&self, phase: &str) -> PathBuf {
        self.metrics_dir().join(format!("{phase}.prom"))
    }
    pub fn metrics_series(&self) -> PathBuf {
        self.metrics_dir().join("series.jsonl")
    }
    pub fn probes_dir(&self) -> PathBuf {
        self.root.join("probes")
    }
    pub fn load_dir(&self) -> PathBuf {
        self.root.join("load")
    }
    pub fn load_phase(&self, phase: &str) -> PathBuf {
        self.load_dir().join(phase)
    }
    /// Creates the fixed folders.
    pub fn create(&self) -> std::io::Result<()> {
        for d in [self.node_dir(), self.metrics_dir()] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// Run outcome recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Complete,
    Incomplete,
}

/// A plug-in (probe session, load) that failed without stopping the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginFailure {
    pub plugin: String,
    pub phase: Option<String>,
    pub error: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub seed: u64,
    pub status: Status,
    /// Why the run is incomplete.
    pub error: Option<String>,
    pub plugin_failures: Vec<PluginFailure>,
    pub scenario_file: String,
    pub scenario_as_written: String,
    pub overrides: Vec<String>,
    pub scenario_resolved: serde_json::Value,
    pub qfc_lab_version: String,
    pub qfc_lab_git_commit: String,
    pub node_binary: Option<String>,
    pub node_binary_blake3: Option<String>,
    /// Wall-clock time, metadata only (RFC 3339 UTC).
    pub started_utc: String,
    pub ended_utc: String,
    /// Expectation outcome from the report: `none`, `pass`, `pass_with_cannot_evaluate`,
    /// `fail`, or `not_evaluated` (the report could not be rendered); details in verdicts.json.
    pub expectations: String,
    /// The target that ran (kind, arch, accelerator, emulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<serde_json::Value>,
    /// Key of the guest image (qemu target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// The node binary as inspected: BLAKE3, build id, arch, symbols, frame pointers, version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_binary_info: Option<serde_json::Value>,
    /// BLAKE3 (hex) of every other file, by path relative to the bundle root.
    pub files: BTreeMap<String, String>,
}

/// BLAKE3 of a file, hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Every regular file under `root` except the manifest, relative, sorted.
pub fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                if rel != MANIFEST {
                    out.push(rel);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// Hashes every file of the bundle into `manifest.files` and writes it.
pub fn seal(layout: &Layout, manifest: &mut Manifest) -> std::io::Result<()> {
    manifest.files.clear();
    for rel in list_files(&layout.root)? {
        let h = hash_file(&layout.root.join(&rel))?;
        manifest.files.insert(rel, h);
    }
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    write_atomic(&layout.manifest(), &json)
}

/// Writes a file through a temporary name and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// One discrepancy found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing(String),
    Extra(String),
    Changed(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "missing: {p}"),
            Self::Extra(p) => write!(f, "extra: {p} (not in the manifest)"),
            Self::Changed(p) => write!(f, "changed: {p} (BLAKE3 differs from the manifest)"),
        }
    }
}

/// Errors of `verify` that prevent comparing at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}; is this a qfc-lab bundle directory?")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Recomputes every hash; returns the manifest and each problem found.
pub fn verify(root: &Path) -> Result<(Manifest, Vec<Problem>), VerifyError> {
    let mpath = root.join(MANIFEST);
    let bytes = std::fs::read(&mpath).map_err(|source| VerifyError::Io {
        path: mpath.clone(),
        source,
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| VerifyError::Manifest {
            path: mpath.clone(),
            source,
        })?;
    let present = list_files(root).map_err(|source| VerifyError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    for (rel, want) in &manifest.files {
        let p = root.join(rel);
        if !p.is_file() {
            problems.push(Problem::Missing(rel.clone()));
            continue;
        }
        match hash_file(&p) {
            Ok(got) if &got == want => {}
            _ => problems.push(Problem::Changed(rel.clone())),
        }
    }
    for rel in present {
        if !manifest.files.contains_key(&rel) {
            problems.push(Problem::Extra(rel));
        }
    }
    Ok((manifest, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            name: "t".into(),
            seed: 1,
            status: Status::Complete,
            error: None,
            plugin_failures: vec![],
            scenario_file: "t.toml".into(),
            scenario_as_written: String::new(),
            overrides: vec![],
            scenario_resolved: serde_json::Value::Null,
            qfc_lab_version: "0".into(),
            qfc_lab_git_commit: "x".into(),
            node_binary: None,
            node_binary_blake3: None,
            started_utc: String::new(),
            ended_utc: String::new(),
            expectations: "not_evaluated".into(),
            target: None,
            image_key: None,
            node_binary_info: None,
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn verify_names_missing_extra_and_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        layout.create().unwrap();
        std::fs::write(layout.root.join("a.txt"), b"a").unwrap();
        std::fs::write(layout.node_dir().join("stdout.log"), b"log").unwrap();
        std::fs::write(layout.root.join("gone.txt"), b"g").unwrap();
        let mut m = manifest();
        seal(&layout, &mut m).unwrap();
        assert_eq!(verify(dir.path()).unwrap().1, vec![]);
        std::fs::write(layout.node_dir().join("stdout.log"), b"log!").unwrap();
        std::fs::remove_file(layout.root.join("gone.txt")).unwrap();
        std::fs::write(layout.root.join("new.txt"), b"n").unwrap();
        let problems = verify(dir.path()).unwrap().1;
        assert_eq!(
            problems,
            vec![
                Problem::Missing("gone.txt".into()),
                Problem::Changed("node/stdout.log".into()),
                Problem::Extra("new.txt".into()),
            ]
        );
    }
}
