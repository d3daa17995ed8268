//! The lab does not assume an x86_64 host (issue 13, part 6): the files a
//! fresh machine's set-up reads (`.cargo/config.toml`, `scripts/`, the
//! container recipe `vm/container/`) hold no x86_64-only literal such as a
//! multiarch library path or a pinned Debian architecture, and no
//! machine-specific absolute path. Names of both architectures' own
//! targets (`[target.x86_64-unknown-linux-gnu]`, `qemu-system-x86_64`) are
//! fine: they are chosen by the host, not assumed.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Literals that pin the host to x86_64 or to one machine.
const PINNED: [&str; 7] = [
    "x86_64-linux-gnu/",
    "/usr/lib/x86_64-linux-gnu",
    "--arch=amd64",
    "_amd64.deb",
    "/work/",
    "/root/",
    "/home/",
];

fn files() -> Vec<PathBuf> {
    let mut out = vec![root().join(".cargo/config.toml")];
    for dir in ["scripts", "vm/container"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        out.extend(v);
    }
    out
}

#[test]
fn no_x86_64_only_literals_in_setup_files() {
    let mut hits = Vec::new();
    let list = files();
    assert!(list.len() >= 4, "expected the set-up files, got {list:?}");
    for f in list {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for p in PINNED {
                if line.contains(p) {
                    hits.push(format!("{}:{}: {p:?} in {line:?}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "x86_64-only or machine-specific literals (derive them from the host instead):\n{}",
        hits.join("\n")
    );
}

/// The checker itself catches a pinned literal.
#[test]
fn the_checker_sees_a_pinned_path() {
    let line = "ROCKSDB_LIB_DIR = \"/usr/lib/x86_64-linux-gnu\"";
    assert!(PINNED.iter().any(|p| line.contains(p)));
}
