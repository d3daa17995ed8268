//! Builds the kernel programs (`probes-ebpf`) for `bpfel-unknown-none` and
//! leaves the object in `OUT_DIR/probes`, embedded by `src/ebpf.rs`.
//!
//! Recipe (docs/ARCHITECTURE.md, "probes"): aya-build runs
//! `rustup run /usr cargo build -p probes-ebpf --release --target
//! bpfel-unknown-none -Z build-std=core`, i.e. Debian's rustc-web 1.96 with
//! its rust-web-src (`Toolchain::Custom("/usr")`), `RUSTC_BOOTSTRAP=1` so
//! that `-Z build-std` is allowed, and `bpf-linker` found on PATH: its
//! directory (`$QFC_LAB_CACHE/tools/bin`, default
//! `/var/cache/qfc-lab/tools/bin`) is prepended here.
//! `AYA_BUILD_SKIP=1` skips the eBPF build (the crate then still compiles,
//! with an empty object that fails at load time with a clear error).
use std::{env, path::PathBuf};

use anyhow::{Context as _, Result};

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=QFC_LAB_CACHE");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let cache = env::var_os("QFC_LAB_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/qfc-lab"), PathBuf::from);
    let tools = cache.join("tools").join("bin");
    let mut path = vec![tools.clone()];
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    let path = env::join_paths(path).context("joining PATH with the bpf-linker directory")?;
    // Safe here: the build script is single-threaded at this point.
    env::set_var("PATH", &path);
    env::set_var("RUSTC_BOOTSTRAP", "1");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set by cargo")?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !skip && !tools.join("bpf-linker").exists() && which::which("bpf-linker").is_err() {
        anyhow::bail!(
            "bpf-linker not found in {} nor on PATH: run scripts/setup.sh (it builds bpf-linker 0.13 into $QFC_LAB_CACHE/tools/bin), or set AYA_BUILD_SKIP=1 to build without the eBPF object",
            tools.display()
        );
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let ebpf_dir = manifest_dir.join("..").join("probes-ebpf");
    let ebpf_dir_str = ebpf_dir.to_str().context("probes-ebpf path is not UTF-8")?;
    // The eBPF crate depends on probes-common too: rebuild when it changes.
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("..").join("probes-common").display()
    );
    share_ebpf_target_dir(&out_dir)?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "probes-ebpf",
            root_dir: ebpf_dir_str,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("/usr"),
    )
    .context("building probes-ebpf for bpfel-unknown-none (see probes/build.rs for the recipe)")?;
    if skip {
        // Keep include_bytes_aligned! compiling.
        let obj = out_dir.join("probes");
        if !obj.exists() {
            std::fs::write(&obj, b"").context("writing the empty eBPF object placeholder")?;
        }
    }
    Ok(())
}

/// aya-build gives the nested bpfel cargo a target directory inside
/// `OUT_DIR`, which is new for every profile and feature set of `probes`
/// (the `dev` build, the `test` build of nextest, `-p probes`): each one
/// compiled probes-ebpf and `core` from nothing (76 s on 2 cores, twice in
/// a cold CI run). Pointing that directory at one under the cargo target
/// directory (`<target>/bpfel-build`) lets cargo's own fingerprints make
/// the second build a no-op; cargo's lock on it serializes two at once.
fn share_ebpf_target_dir(out_dir: &std::path::Path) -> Result<()> {
    // OUT_DIR is <target>/<profile>/build/probes-<hash>/out, or
    // <target>/<triple>/<profile>/build/probes-<hash>/out when cross-building.
    let Some(target) = out_dir.ancestors().nth(4) else {
        return Ok(());
    };
    let shared = target.join("bpfel-build");
    let link = out_dir.join("aya-build").join("target").join("probes-ebpf");
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(&shared).with_context(|| format!("creating {}", shared.display()))?;
    std::fs::create_dir_all(link.parent().context("a link has a parent")?)
        .with_context(|| format!("creating {}", link.display()))?;
    std::os::unix::fs::symlink(&shared, &link)
        .with_context(|| format!("linking {} to {}", link.display(), shared.display()))
}
