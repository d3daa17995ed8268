//! Shared by the bundle fuzz targets: turns one fuzz input into a small
//! bundle directory under a per-process scratch directory.
//!
//! The input is split on the byte 0xFF (never part of UTF-8 text, so the
//! split does not constrain what a text file holds); segment `i` becomes
//! the file `files[i]` under the bundle root, an empty or missing segment
//! leaves that file out. A canary file sits next to the bundle root: a
//! reader that follows a tampered name out of the bundle finds it, and the
//! targets assert that it never does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The per-process scratch directory (`$TMPDIR/lab-fuzz-<target>-<pid>`).
pub fn scratch(target: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("lab-fuzz-{target}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create scratch dir");
        d
    })
}

/// Writes `data` split on 0xFF into `root` (emptied first) as `files`.
pub fn write_bundle(root: &Path, files: &[&str], data: &[u8]) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).expect("create bundle dir");
    for (rel, seg) in files.iter().zip(data.split(|b| *b == 0xFF)) {
        if seg.is_empty() {
            continue;
        }
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("create dir");
        std::fs::write(&p, seg).expect("write bundle file");
    }
}
