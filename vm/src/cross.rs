//! Cross-compilation of the binaries shipped into a guest or onto an SSH
//! host (`qfc-refnode`, `qfc-probe`) for `aarch64-unknown-linux-gnu`, with
//! frame pointers. Toolchain: Debian's rustc/cargo 1.96 (`rustc-web`) with
//! the arm64 standard library from `libstd-rust-web-dev:arm64` unpacked into
//! a private sysroot, `gcc-aarch64-linux-gnu` as linker, and RocksDB linked
//! from Debian's arm64 `librocksdb` (unpacked to a second sysroot) rather
//! than built from source. Everything lands under `$QFC_LAB_CACHE/cross/`;
//! cargo's own fingerprints make a warm rebuild take seconds.

use crate::arch::Arch;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing::{info, instrument};

/// arm64 packages unpacked into the RocksDB link sysroot (librocksdb and its
/// shared-library dependencies that the cross gcc does not ship).
pub const ROCKSDB_DEBS: [&str; 8] = [
    "librocksdb-dev",
    "librocksdb7.8",
    "libgflags2.2",
    "liblz4-1",
    "libsnappy1v5",
    "libzstd1",
    "libbz2-1.0",
    "zlib1g",
];

/// Which binaries to build.
#[derive(Debug, Clone)]
pub struct CrossOptions {
    pub arch: Arch,
    /// The cargo workspace root.
    pub workspace: PathBuf,
    /// `(package, binary)` pairs, e.g. `("refnode", "qfc-refnode")`.
    pub bins: Vec<(String, String)>,
    pub release: bool,
    /// Cache root (`$QFC_LAB_CACHE`).
    pub cache_dir: PathBuf,
}

impl CrossOptions {
    /// The reference node and the probe program, release, for `arch`.
    pub fn lab_binaries(arch: Arch, workspace: PathBuf) -> CrossOptions {
        CrossOptions {
            arch,
            workspace,
            bins: vec![
                ("refnode".into(), "qfc-refnode".into()),
                ("probes".into(), "qfc-probe".into()),
            ],
            release: true,
            cache_dir: crate::image::cache_root(),
        }
    }
}

/// Paths of the prepared toolchain pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Holds `usr/lib/rustlib/<target>/lib` (arm64 std).
    pub rust_sysroot: PathBuf,
    /// Holds `usr/lib/aarch64-linux-gnu/librocksdb.so` and its dependencies.
    pub lib_sysroot: PathBuf,
    pub target_dir: PathBuf,
}

/// What went wrong cross-compiling.
#[derive(Debug, thiserror::Error)]
pub enum CrossError {
    #[error(
        "cross-compiling for {arch} is not supported from this host: build on a {arch} machine"
    )]
    Unsupported { arch: Arch },
    #[error("{tool} is missing: run scripts/setup.sh (it installs {package})")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("`{command}` failed with {status}:\n{output_tail}")]
    Failed {
        command: String,
        status: String,
        output_tail: String,
    },
    #[error("cargo succeeded but {path} is missing")]
    NoOutput { path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CrossError {
    let what = what.into();
    move |source| CrossError::Io { what, source }
}

fn run(cmd: &mut Command) -> Result<String, CrossError> {
    let command = format!("{cmd:?}");
    // Cancellable (Ctrl-C): the whole cargo process group is killed.
    let owned = std::mem::replace(cmd, Command::new("true"));
    let out = crate::process::run_output(owned, None)
        .map_err(io_err(format!("running {command}")))?
        .expect("no timeout was set");
    if !out.status.success() {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = all.lines().collect();
        return Err(CrossError::Failed {
            command,
            status: out.status.to_string(),
            output_tail: lines[lines.len().saturating_sub(40)..].join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads (private apt config) and unpacks the arm64 std and RocksDB
/// packages. Idempotent: a stamp file skips the work next time.
#[instrument(skip(cache_dir))]
pub fn prepare_toolchain(arch: Arch, cache_dir: &Path) -> Result<Toolchain, CrossError> {
    if arch != Arch::Aarch64 || Arch::host() != Some(Arch::X86_64) {
        return Err(CrossError::Unsupported { arch });
    }
    for (tool, package) in [
        ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        ("dpkg-deb", "dpkg"),
    ] {
        if which::which(tool).is_err() {
            return Err(CrossError::ToolMissing { tool, package });
        }
    }
    if !Path::new("/usr/bin/rustc").is_file() || !Path::new("/usr/bin/cargo").is_file() {
        return Err(CrossError::ToolMissing {
            tool: "/usr/bin/rustc",
            package: "rustc-web cargo-web",
        });
    }
    let root = cache_dir.join("cross");
    let tc = Toolchain {
        rust_sysroot: root.join(format!("rust-sysroot-{}", arch.debian())),
        lib_sysroot: root.join(format!("lib-sysroot-{}", arch.debian())),
        target_dir: root.join("target"),
    };
    let stamp = root.join(format!("toolchain-{}.done", arch.debian()));
    if stamp.is_file() {
        return Ok(tc);
    }
    let debs = root.join(format!("debs-{}", arch.debian()));
    let recipe_dir = root.join("recipe");
    std::fs::create_dir_all(&recipe_dir)
        .map_err(io_err(format!("creating {}", recipe_dir.display())))?;
    let fetch = recipe_dir.join("fetch-debs.sh");
    let text = crate::image::RECIPE
        .iter()
        .find(|(n, _)| *n == "fetch-debs.sh")
        .map(|(_, t)| *t)
        .expect("fetch-debs.sh is part of the recipe");
    std::fs::write(&fetch, text).map_err(io_err(format!("writing {}", fetch.display())))?;
    let apt_dir = cache_dir.join("apt").join(arch.debian());
    let mut pkgs: Vec<&str> = vec!["libstd-rust-web-dev"];
    pkgs.extend(ROCKSDB_DEBS);
    info!(?pkgs, "fetching arm64 packages for cross-compilation");
    let out = run(Command::new("sh")
        .arg(&fetch)
        .arg(arch.debian())
        .arg(&apt_dir)
        .arg(&debs)
        .args(&pkgs))?;
    let _ = std::fs::remove_dir_all(&tc.rust_sysroot);
    let _ = std::fs::remove_dir_all(&tc.lib_sysroot);
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(_), Some(file)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let dest = if name == "libstd-rust-web-dev" {
            &tc.rust_sysroot
        } else {
            &tc.lib_sysroot
        };
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(debs.join(file))
            .arg(dest))?;
    }
    let std_dir = tc
        .rust_sysroot
        .join("usr/lib/rustlib")
        .join(arch.rust_target())
        .join("lib");
    if !std_dir.is_dir() {
        return Err(CrossError::NoOutput { path: std_dir });
    }
    std::fs::write(&stamp, out).map_err(io_err(format!("writing {}", stamp.display())))?;
    Ok(tc)
}

/// The cargo invocation (argv, program first) and its environment. Pure.
pub fn cargo_command(
    opts: &CrossOptions,
    tc: &Toolchain,
) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
    let target = opts.arch.rust_target();
    let mut argv: Vec<OsString> = vec![
        "/usr/bin/cargo".into(),
        "build".into(),
        "--locked".into(),
        "--target".into(),
        target.into(),
    ];
    if opts.release {
        argv.push("--release".into());
    }
    for (pkg, bin) in &opts.bins {
        argv.extend(["-p".into(), pkg.into(), "--bin".into(), bin.into()]);
    }
    let libdir = tc.lib_sysroot.join("usr/lib/aarch64-linux-gnu");
    let upper = target.to_uppercase().replace('-', "_");
    let lower = target.replace('-', "_");
    // zlib and bzip2 ship in /lib/<triple> (not /usr/lib) in bookworm.
    let libdir2 = tc.lib_sysroot.join("lib/aarch64-linux-gnu");
    let rustflags = format!(
        "--sysroot={} -C force-frame-pointers=yes -C link-arg=-Wl,-rpath-link,{}:{} -C link-arg=-L{}",
        tc.rust_sysroot.join("usr").display(),
        libdir.display(),
        libdir2.display(),
        libdir.display()
    );
    let env: Vec<(OsString, OsString)> = vec![
        ("RUSTC".into(), "/usr/bin/rustc".into()),
        ("CARGO_TARGET_DIR".into(), tc.target_dir.clone().into()),
        (
            format!("CARGO_TARGET_{upper}_LINKER").into(),
            "aarch64-linux-gnu-gcc".into(),
        ),
        (
            format!("CARGO_TARGET_{upper}_RUSTFLAGS").into(),
            rustflags.into(),
        ),
        (format!("CC_{lower}").into(), "aarch64-linux-gnu-gcc".into()),
        (
            format!("CXX_{lower}").into(),
            "aarch64-linux-gnu-g++".into(),
        ),
        (format!("AR_{lower}").into(), "aarch64-linux-gnu-ar".into()),
        ("ROCKSDB_LIB_DIR".into(), libdir.clone().into()),
        (
            format!("BINDGEN_EXTRA_CLANG_ARGS_{lower}").into(),
            "--sysroot=/usr/aarch64-linux-gnu -I/usr/lib/gcc-cross/aarch64-linux-gnu/12/include"
                .into(),
        ),
        ("PKG_CONFIG_ALLOW_CROSS".into(), "1".into()),
    ];
    (argv, env)
}

/// Where cargo puts a binary built by [`cargo_command`].
pub fn output_path(opts: &CrossOptions, tc: &Toolchain, bin: &str) -> PathBuf {
    tc.target_dir
        .join(opts.arch.rust_target())
        .join(if opts.release { "release" } else { "debug" })
        .join(bin)
}

/// Cross-builds `opts.bins`; returns `(binary name, path)` pairs.
#[instrument(skip(opts), fields(arch = %opts.arch))]
pub fn build(opts: &CrossOptions) -> Result<Vec<(String, PathBuf)>, CrossError> {
    let tc = prepare_toolchain(opts.arch, &opts.cache_dir)?;
    let (argv, env) = cargo_command(opts, &tc);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(&opts.workspace);
    // The rustup proxy's and the host build's settings must not leak in.
    for k in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in &env {
        cmd.env(k, v);
    }
    info!(command = ?argv, "cross-compiling");
    run(&mut cmd)?;
    opts.bins
        .iter()
        .map(|(_, bin)| {
            let p = output_path(opts, &tc, bin);
            if p.is_file() {
                Ok((bin.clone(), p))
            } else {
                Err(CrossError::NoOutput { path: p })
            }
        })
        .collect()
}

/// True when `path` is an ELF executable for `arch` (e_machine check).
pub fn is_elf_for(path: &Path, arch: Arch) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return false;
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    machine
        == match arch {
            Arch::Aarch64 => 183,
            Arch::X86_64 => 62,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_command_keeps_frame_pointers_and_links_debian_rocksdb() {
        let opts = CrossOptions {
            arch: Arch::Aarch64,
            workspace: "/ws".into(),
            bins: vec![("refnode".into(), "qfc-refnode".into())],
            release: true,
            cache_dir: "/c".into(),
        };
        let tc = Toolchain {
            rust_sysroot: "/c/cross/rust-sysroot-arm64".into(),
            lib_sysroot: "/c/cross/lib-sysroot-arm64".into(),
            target_dir: "/c/cross/target".into(),
        };
        let (argv, env) = cargo_command(&opts, &tc);
        let argv: Vec<String> = argv.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "/usr/bin/cargo",
                "build",
                "--locked",
                "--target",
                "aarch64-unknown-linux-gnu",
                "--release",
                "-p",
                "refnode",
                "--bin",
                "qfc-refnode"
            ]
        );
        let get = |k: &str| {
            env.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .unwrap_or_else(|| panic!("{k} not set"))
        };
        let flags = get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS");
        assert!(flags.contains("-C force-frame-pointers=yes"), "{flags}");
        assert!(
            flags.contains("--sysroot=/c/cross/rust-sysroot-arm64/usr"),
            "{flags}"
        );
        assert!(flags.contains(
            "-rpath-link,/c/cross/lib-sysroot-arm64/usr/lib/aarch64-linux-gnu:/c/cross/lib-sysroot-arm64/lib/aarch64-linux-gnu"
        ));
        assert_eq!(
            get("ROCKSDB_LIB_DIR"),
            "/c/cross/lib-sysroot-arm64/usr/lib/aarch64-linux-gnu"
        );
        assert_eq!(get("RUSTC"), "/usr/bin/rustc");
        assert_eq!(
            output_path(&opts, &tc, "qfc-refnode"),
            Path::new("/c/cross/target/aarch64-unknown-linux-gnu/release/qfc-refnode")
        );
    }
}
