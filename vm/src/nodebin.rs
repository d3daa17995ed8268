//! Inspection of a node binary before the lab runs it: ELF architecture
//! against the target's, GNU build id, symbols and debug info, a
//! frame-pointer heuristic, BLAKE3 and the `--version` string, for the
//! manifest and for warnings (user stacks of a binary without frame pointers
//! or without symbols truncate or stay unsymbolized). Also what the real
//! qfc-node lacks compared with the reference node, so that scenarios fail
//! validation or fall back openly instead of silently.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

/// Errors of binary inspection.
#[derive(Debug, thiserror::Error)]
pub enum NodeBinError {
    /// The file could not be read.
    #[error("cannot read node binary {path}: {source}: check the path in [node] binary")]
    Read {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF executable.
    #[error("{path} is not an ELF executable ({reason}): give a Linux build of the node")]
    NotElf {
        /// The binary.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Built for another architecture than the target's.
    #[error("{path} is built for {binary_arch} but the target is {target_arch}: build the node for {target_arch} (e.g. cargo build --target {target_arch}-unknown-linux-gnu)")]
    ArchMismatch {
        /// The binary.
        path: PathBuf,
        /// Its architecture.
        binary_arch: String,
        /// The target's.
        target_arch: String,
    },
}

/// Whether the code keeps frame pointers, judged from function prologues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FramePointers {
    /// Most functions set up a frame pointer.
    Yes,
    /// Few do: frame-pointer unwinding truncates user stacks.
    No,
    /// No function symbols to judge from (stripped binary).
    Unknown,
}

/// Facts about a node binary, recorded in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct NodeBinary {
    /// The file inspected.
    pub path: PathBuf,
    /// BLAKE3 of the file, hex.
    pub blake3: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Architecture, as `uname -m` prints it.
    pub arch: String,
    /// GNU build id, hex.
    pub build_id: Option<String>,
    /// Function symbols in `.symtab`.
    pub function_symbols: usize,
    /// Has DWARF (`.debug_info` or `.debug_line`).
    pub debug_info: bool,
    /// Share of sampled functions with a frame-pointer prologue.
    pub frame_pointer_share: Option<f64>,
    /// The verdict from that share.
    pub frame_pointers: FramePointers,
    /// First line of `BINARY --version`, when it was run.
    pub version: Option<String>,
    /// Human-readable warnings (empty when the binary profiles well).
    pub warnings: Vec<String>,
}

/// `uname -m` name of an ELF machine.
fn arch_name(a: object::Architecture) -> String {
    match a {
        object::Architecture::X86_64 => "x86_64".into(),
        object::Architecture::Aarch64 => "aarch64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// True when the bytes at a function's start set up a frame pointer.
/// x86_64: `push %rbp; mov %rsp,%rbp` (after an optional `endbr64`);
/// aarch64: `mov x29, sp` or `add x29, sp, #imm` among the first 8
/// instructions.
pub fn has_fp_prologue(arch: object::Architecture, code: &[u8]) -> bool {
    match arch {
        object::Architecture::X86_64 => {
            let c = code
                .strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa][..])
                .unwrap_or(code);
            c.starts_with(&[0x55, 0x48, 0x89, 0xe5])
        }
        object::Architecture::Aarch64 => code.chunks_exact(4).take(8).any(|w| {
            let insn = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            // ADD (immediate), 64-bit, Rd = x29, Rn = sp; imm12 and shift free.
            insn & 0xff80_03ff == 0x9100_03fd
        }),
        _ => false,
    }
}

/// Verdict from the share of frame-pointer prologues (pure).
pub fn fp_verdict(with: usize, sampled: usize) -> (Option<f64>, FramePointers) {
    if sampled < 20 {
        return (None, FramePointers::Unknown);
    }
    let share = with as f64 / sampled as f64;
    (
        Some(share),
        if share >= 0.5 {
            FramePointers::Yes
        } else {
            FramePointers::No
        },
    )
}

/// Inspects a binary's bytes (pure apart from hashing); `target_arch` as
/// `uname -m` prints it.
pub fn inspect_bytes(
    path: &Path,
    data: &[u8],
    target_arch: &str,
) -> Result<NodeBinary, NodeBinError> {
    let file = object::File::parse(data).map_err(|e| NodeBinError::NotElf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(NodeBinError::NotElf {
            path: path.to_path_buf(),
            reason: format!("{:?} format", file.format()),
        });
    }
    let arch = arch_name(file.architecture());
    if arch != target_arch {
        return Err(NodeBinError::ArchMismatch {
            path: path.to_path_buf(),
            binary_arch: arch,
            target_arch: target_arch.into(),
        });
    }
    let build_id = file.build_id().ok().flatten().map(hex::encode);
    let debug_info = file.section_by_name(".debug_info").is_some()
        || file.section_by_name(".debug_line").is_some();
    let text = file.section_by_name(".text");
    let text_range = text.as_ref().map(|s| (s.address(), s.address() + s.size()));
    let text_data = text.as_ref().and_then(|s| s.data().ok()).unwrap_or(&[]);
    let mut funcs = 0usize;
    let (mut sampled, mut with) = (0usize, 0usize);
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 || !sym.is_definition() {
            continue;
        }
        funcs += 1;
        // Tiny functions (thunks, getters) often need no frame: skip them.
        if sym.size() < 32 {
            continue;
        }
        if let Some((lo, hi)) = text_range {
            let a = sym.address();
            if a >= lo && a + 16 <= hi {
                let off = (a - lo) as usize;
                sampled += 1;
                if has_fp_prologue(
                    file.architecture(),
                    &text_data[off..(off + 32).min(text_data.len())],
                ) {
                    with += 1;
                }
            }
        }
    }
    let (share, fp) = fp_verdict(with, sampled);
    let mut warnings = Vec::new();
    if funcs == 0 {
        warnings.push(format!(
            "{} has no symbol table (stripped): user stacks will show addresses, not qfc-node frames; build without strip",
            path.display()
        ));
    }
    if fp == FramePointers::No {
        warnings.push(format!(
            "{} keeps frame pointers in only {:.0}% of its functions: user stacks will truncate unless the scenario sets `[probes] unwind = \"auto\"` (or the binary is built with RUSTFLAGS=\"-C force-frame-pointers=yes\")",
            path.display(),
            share.unwrap_or(0.0) * 100.0
        ));
    }
    if build_id.is_none() {
        warnings.push(format!("{} has no GNU build id", path.display()));
    }
    Ok(NodeBinary {
        path: path.to_path_buf(),
        blake3: blake3::hash(data).to_hex().to_string(),
        size_bytes: data.len() as u64,
        arch,
        build_id,
        function_symbols: funcs,
        debug_info,
        frame_pointer_share: share,
        frame_pointers: fp,
        version: None,
        warnings,
    })
}

/// Inspects a binary file for a target of architecture `target_arch`.
pub fn inspect(path: &Path, target_arch: &str) -> Result<NodeBinary, NodeBinError> {
    let data = std::fs::read(path).map_err(|source| NodeBinError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let nb = inspect_bytes(path, &data, target_arch)?;
    for w in &nb.warnings {
        tracing::warn!("{w}");
    }
    Ok(nb)
}

/// `BINARY --version` (pure).
pub fn version_argv(binary: &Path) -> Vec<OsString> {
    vec![binary.as_os_str().to_owned(), "--version".into()]
}

/// The version string from `--version` output: its first non-empty line.
pub fn parse_version(stdout: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

/// The version string of a node binary already on `target` (where it can
/// run: an aarch64 binary runs in the aarch64 guest, not here); `None`,
/// with a warning, when `--version` fails.
pub fn version_on(
    target: &mut dyn crate::target::Target,
    binary_on_target: &Path,
) -> Option<String> {
    stdout_on(target, &version_argv(binary_on_target)).and_then(|o| parse_version(&o))
}

/// The stdout of a short node command on `target` (`--version`, `--help`);
/// `None`, with a warning naming the command, when it fails or cannot run.
fn stdout_on(target: &mut dyn crate::target::Target, argv: &[OsString]) -> Option<Vec<u8>> {
    let what = argv
        .get(1)
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    match target.exec(argv, std::time::Duration::from_secs(30)) {
        Ok(o) if o.success() => Some(o.stdout),
        Ok(o) => {
            tracing::warn!(code = ?o.code, stderr = %String::from_utf8_lossy(&o.stderr), "node {what} failed");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "node {what} could not run");
            None
        }
    }
}

/// `BINARY --help` (pure).
pub fn help_argv(binary: &Path) -> Vec<OsString> {
    vec![binary.as_os_str().to_owned(), "--help".into()]
}

/// The long flags (`--name`) a clap `--help` text lists, in order, once each.
pub fn parse_help_flags(stdout: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stdout);
    let mut flags: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        // Option lines start with `-x, --name` or `--name`; descriptions do not.
        if !l.starts_with('-') {
            continue;
        }
        for word in
            l.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        {
            if let Some(name) = word.strip_prefix("--") {
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    let f = format!("--{name}");
                    if !flags.contains(&f) {
                        flags.push(f);
                    }
                }
            }
        }
    }
    flags
}

/// The long flags the node binary on `target` accepts, from its `--help`;
/// `None` (with a warning) when `--help` fails or lists none.
pub fn flags_on(
    target: &mut dyn crate::target::Target,
    binary_on_target: &Path,
) -> Option<Vec<String>> {
    stdout_on(target, &help_argv(binary_on_target))
        .map(|o| parse_help_flags(&o))
        .filter(|f| !f.is_empty())
}

/// Fits a node command line to the flags the binary accepts: every
/// `--flag` it does not list is dropped with its value (when the next
/// argument is not itself a flag) and named in the returned notes, and
/// `--rpc` is added when the binary lists it (qfc-node before the notes'
/// version serves JSON-RPC only with `--rpc`). `accepted = None` (unknown)
/// keeps the command line as it is. Pure.
pub fn fit_args(args: &[OsString], accepted: Option<&[String]>) -> (Vec<OsString>, Vec<String>) {
    let Some(accepted) = accepted else {
        return (args.to_vec(), Vec::new());
    };
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut notes = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        let is_flag = a.starts_with("--");
        let name = a.split('=').next().unwrap_or_default().to_string();
        let takes_value = !a.contains('=')
            && args
                .get(i + 1)
                .is_some_and(|n| !n.to_string_lossy().starts_with("--"));
        if is_flag && !accepted.iter().any(|f| *f == name) {
            if takes_value {
                notes.push(format!(
                    "{name} {} dropped: the node binary does not list {name} in --help",
                    args[i + 1].to_string_lossy()
                ));
                i += 2;
            } else {
                notes.push(format!(
                    "{name} dropped: the node binary does not list {name} in --help"
                ));
                i += 1;
            }
            continue;
        }
        out.push(args[i].clone());
        i += 1;
    }
    if accepted.iter().any(|f| f == "--rpc") && !out.iter().any(|a| a == "--rpc") {
        out.push("--rpc".into());
        notes.push("--rpc added: this node binary serves JSON-RPC only when --rpc is given".into());
    }
    (out, notes)
}

/// Which node a scenario runs (`[node] kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// This workspace's reference node.
    Refnode,
    /// The real qfc-node.
    QfcNode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_prologues() {
        use object::Architecture::X86_64;
        assert!(has_fp_prologue(X86_64, &[0x55, 0x48, 0x89, 0xe5, 0x90]));
        assert!(has_fp_prologue(
            X86_64,
            &[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5]
        ));
        // sub $0x28,%rsp: no frame pointer.
        assert!(!has_fp_prologue(X86_64, &[0x48, 0x83, 0xec, 0x28]));
    }

    #[test]
    fn aarch64_prologues() {
        use object::Architecture::Aarch64;
        // stp x29, x30, [sp, #-16]!; mov x29, sp
        let a = [0xfd, 0x7b, 0xbf, 0xa9, 0xfd, 0x03, 0x00, 0x91];
        assert!(has_fp_prologue(Aarch64, &a));
        // sub sp, sp, #0x40; stp x29, x30, [sp, #0x30]; add x29, sp, #0x30
        let b = [
            0xff, 0x03, 0x01, 0xd1, 0xfd, 0x7b, 0x03, 0xa9, 0xfd, 0xc3, 0x00, 0x91,
        ];
        assert!(has_fp_prologue(Aarch64, &b));
        // add x0, sp, #0x30 is not a frame pointer.
        assert!(!has_fp_prologue(Aarch64, &[0xe0, 0xc3, 0x00, 0x91]));
    }

    #[test]
    fn verdicts() {
        assert_eq!(fp_verdict(3, 10), (None, FramePointers::Unknown));
        assert_eq!(fp_verdict(90, 100).1, FramePointers::Yes);
        assert_eq!(fp_verdict(5, 100).1, FramePointers::No);
    }

    #[test]
    fn this_test_binary_is_inspected() {
        // The workspace builds with frame pointers (.cargo/config.toml) and
        // keeps symbols in test binaries.
        let me = std::env::current_exe().unwrap();
        let nb = inspect(&me, std::env::consts::ARCH).unwrap();
        assert_eq!(nb.arch, std::env::consts::ARCH);
        assert!(nb.function_symbols > 1000, "{nb:?}");
        assert!(nb.build_id.is_some());
        assert_eq!(nb.blake3.len(), 64);
        assert_eq!(
            nb.frame_pointers,
            FramePointers::Yes,
            "share {:?}",
            nb.frame_pointer_share
        );
        let other = if nb.arch == "x86_64" {
            "aarch64"
        } else {
            "x86_64"
        };
        let e = inspect(&me, other).unwrap_err().to_string();
        assert!(
            e.contains("but the target is") && e.contains("build the node for"),
            "{e}"
        );
    }

    #[test]
    fn not_elf_is_a_clear_error() {
        let e = inspect_bytes(Path::new("x.sh"), b"#!/bin/sh\n", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.sh is not an ELF executable"), "{e}");
    }

    #[test]
    fn help_flags_and_fitting() {
        let help = b"Usage: qfc-node [OPTIONS]\n\nOptions:\n  -d, --datadir <DATADIR>\n          Data directory [default: ./data]\n      --rpc\n          Enable RPC\n      --log-level <LOG_LEVEL>\n          Log level; see --foo in text\n      --dev\n  -h, --help\n";
        let f = parse_help_flags(help);
        assert_eq!(f, ["--datadir", "--rpc", "--log-level", "--dev", "--help"]);
        let args: Vec<OsString> = [
            "--datadir",
            "/d",
            "--db-statistics",
            "--dev",
            "--snapshot-interval-secs",
            "5",
            "--log-level",
            "info",
        ]
        .map(OsString::from)
        .to_vec();
        let (out, notes) = fit_args(&args, Some(&f));
        assert_eq!(
            out,
            ["--datadir", "/d", "--dev", "--log-level", "info", "--rpc"].map(OsString::from)
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("--db-statistics dropped"), "{notes:?}");
        assert!(
            notes[1].starts_with("--snapshot-interval-secs 5 dropped"),
            "{notes:?}"
        );
        assert!(notes[2].starts_with("--rpc added"), "{notes:?}");
        assert_eq!(fit_args(&args, None), (args.clone(), vec![]));
    }

    #[test]
    fn versions_and_capabilities() {
        assert_eq!(
            parse_version(b"\nqfc-node 0.1.0\nmore\n").as_deref(),
            Some("qfc-node 0.1.0")
        );
        assert_eq!(
            version_argv(Path::new("/b")),
            ["/b", "--version"].map(OsString::from)
        );
    }
}
