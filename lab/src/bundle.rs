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
    /// Space held back while a run writes its evidence, released just
    /// before the manifest is written, so that a disk that fills up mid-run
    /// still gets a manifest that says the bundle is incomplete.
    pub fn reserve(&self) -> PathBuf {
        self.root.join(RESERVE)
    }
    /// Creates the fixed folders and the reserve.
    pub fn create(&self) -> std::io::Result<()> {
        for d in [self.node_dir(), self.metrics_dir()] {
            std::fs::create_dir_all(d)?;
        }
        // Best effort: a file system without room for it still runs.
        let f = std::fs::File::create(self.reserve())?;
        let held = nix::fcntl::posix_fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            RESERVE_BYTES as libc::off_t,
        );
        if held.is_err() {
            self.release_reserve();
        }
        Ok(())
    }
    /// Gives the reserved space back (idempotent).
    pub fn release_reserve(&self) {
        let _ = std::fs::remove_file(self.reserve());
    }
}

/// File name of the reserve ([`Layout::reserve`]); never sealed.
pub const RESERVE: &str = ".reserve";
/// Size of the reserve: room for the manifest and the small files of a run.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// Run outcome recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Complete,
    Incomplete,
}

/// A plug-in (probe session, load) that failed without stopping the run.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginFailure {
    pub plugin: String,
    pub phase: Option<String>,
    pub error: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub seed: u64,
    pub status: Status,
    /// Why the run is incomplete: the error that ended it, if one did.
    pub error: Option<String>,
    /// Every reason the bundle is `incomplete` (the run's error, evidence
    /// that could not be fetched or written, plug-in failures, expectations
    /// that could not be evaluated); empty when `complete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_reasons: Vec<String>,
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
    /// Expectation outcome from the report: `none`, `pass`, `cannot_evaluate`,
    /// `fail`, or `not_evaluated` (the report could not be rendered); details in verdicts.json.
    pub expectations: String,
    /// The target that ran (kind, arch, accelerator, emulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<vm::TargetInfo>,
    /// Key of the guest image (qemu target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// The node binary as inspected: BLAKE3, build id, arch, symbols, frame pointers, version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_binary_info: Option<serde_json::Value>,
    /// BLAKE3 (hex) of every other file, by path relative to the bundle root.
    pub files: BTreeMap<String, String>,
}

/// BLAKE3 of a regular file, hex. Never follows a symlink (`O_NOFOLLOW`)
/// and never blocks on a FIFO (`O_NONBLOCK`, then `fstat`): anything but a
/// regular file is an `InvalidData` error naming its type.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| no_link(path, e))?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is {}", path.display(), kind_name(&ft)),
        ));
    }
    let mut h = blake3::Hasher::new();
    h.update_reader(f)?;
    Ok(h.finalize().to_hex().to_string())
}

/// `O_NOFOLLOW` on a symlink fails with ELOOP: say what it means.
fn no_link(path: &Path, e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is a symbolic link (not followed)", path.display()),
        )
    } else {
        e
    }
}

fn kind_name(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device node"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// What is under a bundle root: regular files (relative, sorted, the
/// manifest and the reserve left out) and everything else, named with its
/// type and never opened or followed.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<String>,
    pub others: Vec<(String, &'static str)>,
}

/// Walks `root` without following symlinks.
pub fn list_entries(root: &Path) -> std::io::Result<Listing> {
    fn walk(root: &Path, dir: &Path, out: &mut Listing) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            // DirEntry::file_type does not follow symlinks.
            let ft = e.file_type()?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if ft.is_dir() {
                walk(root, &p, out)?;
            } else if ft.is_file() {
                if rel != MANIFEST && rel != RESERVE {
                    out.files.push(rel);
                }
            } else {
                out.others.push((rel, kind_name(&ft)));
            }
        }
        Ok(())
    }
    let mut out = Listing::default();
    walk(root, root, &mut out)?;
    out.files.sort();
    out.others.sort();
    Ok(out)
}

/// Every regular file under `root` except the manifest, relative, sorted.
pub fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    Ok(list_entries(root)?.files)
}

/// Checks a manifest key before it is joined to a bundle root: relative,
/// only normal components (no `..`, no `.`, no empty component).
pub fn check_key(key: &str) -> Result<(), &'static str> {
    use std::path::Component;
    if key.is_empty() {
        return Err("empty");
    }
    if key.contains('\0') {
        return Err("contains a NUL byte");
    }
    if key.starts_with('/') {
        return Err("absolute");
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("contains `..`, `.` or an empty component");
    }
    if !Path::new(key)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err("not a plain relative path");
    }
    Ok(())
}

/// Largest `manifest.json` (or other bundle JSON) read: 64 MiB.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Reads a bundle's JSON file (regular, not through a symlink, at most
/// [`MAX_JSON_BYTES`]).
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| no_link(path, e))?;
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is {}", path.display(), kind_name(&m.file_type())),
        ));
    }
    if m.len() > MAX_JSON_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, more than the {} a bundle file may have",
                path.display(),
                m.len(),
                MAX_JSON_BYTES
            ),
        ));
    }
    let mut b = Vec::with_capacity(m.len() as usize);
    f.take(MAX_JSON_BYTES).read_to_end(&mut b)?;
    Ok(b)
}

/// Hashes every file of the bundle into `manifest.files` and writes it.
///
/// Refuses (with the entries named) a bundle holding anything but regular
/// files and directories: a symlink, FIFO, socket or device node is never
/// followed, opened or sealed.
pub fn seal(layout: &Layout, manifest: &mut Manifest) -> std::io::Result<()> {
    manifest.files.clear();
    let listing = list_entries(&layout.root)?;
    if !listing.others.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the bundle holds entries that are not regular files: {}",
                listing
                    .others
                    .iter()
                    .map(|(p, k)| format!("{p} ({k})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    for rel in listing.files {
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
    /// A manifest key that is absolute or leaves the bundle: never opened.
    BadKey(String, &'static str),
    /// An entry that is not a regular file (symlink, FIFO, device, socket,
    /// or a directory where the manifest names a file): never opened.
    NotRegular(String, &'static str),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "missing: {p}"),
            Self::Extra(p) => write!(f, "extra: {p} (not in the manifest)"),
            Self::Changed(p) => write!(f, "changed: {p} (BLAKE3 differs from the manifest)"),
            Self::BadKey(p, why) => write!(f, "refused manifest key {p:?}: {why}"),
            Self::NotRegular(p, k) => write!(f, "not a regular file: {p} is {k} (not opened)"),
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
/// Nothing outside the bundle is ever opened: keys are checked first, every
/// path component is checked not to be a symlink, and only regular files
/// are read.
pub fn verify(root: &Path) -> Result<(Manifest, Vec<Problem>), VerifyError> {
    let mpath = root.join(MANIFEST);
    let bytes = read_small(&mpath).map_err(|source| VerifyError::Io {
        path: mpath.clone(),
        source,
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| VerifyError::Manifest {
            path: mpath.clone(),
            source,
        })?;
    let present = list_entries(root).map_err(|source| VerifyError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    for (rel, want) in &manifest.files {
        if let Err(why) = check_key(rel) {
            problems.push(Problem::BadKey(rel.clone(), why));
            continue;
        }
        match entry_kind(root, rel) {
            None => problems.push(Problem::Missing(rel.clone())),
            Some(Err(kind)) => problems.push(Problem::NotRegular(rel.clone(), kind)),
            Some(Ok(())) => match hash_file(&root.join(rel)) {
                Ok(got) if &got == want => {}
                _ => problems.push(Problem::Changed(rel.clone())),
            },
        }
    }
    for rel in present.files {
        if !manifest.files.contains_key(&rel) {
            problems.push(Problem::Extra(rel));
        }
    }
    for (rel, kind) in present.others {
        if !manifest.files.contains_key(&rel) {
            problems.push(Problem::NotRegular(rel, kind));
        }
    }
    Ok((manifest, problems))
}

/// `None` when `rel` does not exist under `root`; `Err(kind)` when it, or
/// a directory on its way, is anything but a real directory / regular file.
fn entry_kind(root: &Path, rel: &str) -> Option<Result<(), &'static str>> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut cur = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        let m = std::fs::symlink_metadata(&cur).ok()?;
        let ft = m.file_type();
        let last = i + 1 == parts.len();
        if last && !ft.is_file() {
            return Some(Err(kind_name(&ft)));
        }
        if !last && !ft.is_dir() {
            return Some(Err(kind_name(&ft)));
        }
    }
    Some(Ok(()))
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
            incomplete_reasons: vec![],
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
    fn verify_refuses_bad_keys_links_and_fifos_without_opening_them() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        layout.create().unwrap();
        std::fs::write(layout.root.join("a.txt"), b"a").unwrap();
        let mut m = manifest();
        seal(&layout, &mut m).unwrap();
        assert!(
            !m.files.contains_key(RESERVE),
            "the reserve is never sealed"
        );
        // Hostile edits: keys that leave the bundle, a symlink in place of a
        // file, a symlinked directory on the way, a FIFO (opening it would hang).
        let h = m.files["a.txt"].clone();
        for k in [
            "../../etc/passwd",
            "/etc/passwd",
            "x/../a.txt",
            "./a.txt",
            "linkdir/passwd",
        ] {
            m.files.insert(k.into(), h.clone());
        }
        std::os::unix::fs::symlink("/etc", layout.root.join("linkdir")).unwrap();
        std::fs::remove_file(layout.root.join("a.txt")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", layout.root.join("a.txt")).unwrap();
        nix::unistd::mkfifo(&layout.root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        m.files.insert("fifo".into(), h.clone());
        std::fs::write(layout.manifest(), serde_json::to_vec(&m).unwrap()).unwrap();
        let problems = verify(dir.path()).unwrap().1;
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for (key, want) in [
            ("../../etc/passwd", "refused manifest key"),
            ("/etc/passwd", "refused manifest key"),
            ("x/../a.txt", "refused manifest key"),
            ("./a.txt", "refused manifest key"),
            ("linkdir/passwd", "a symbolic link"),
            ("a.txt", "a symbolic link"),
            ("fifo", "a FIFO"),
        ] {
            assert!(
                text.iter().any(|t| t.contains(key) && t.contains(want)),
                "{key}: {want} not in {text:#?}"
            );
        }
        // seal refuses the same tree, naming the entries.
        let e = seal(&layout, &mut manifest()).unwrap_err();
        assert!(e.to_string().contains("fifo (a FIFO)"), "{e}");
        assert!(e.to_string().contains("linkdir (a symbolic link)"), "{e}");
    }

    #[test]
    fn a_huge_manifest_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join(MANIFEST)).unwrap();
        f.set_len(MAX_JSON_BYTES + 1).unwrap();
        let e = verify(dir.path()).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
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
