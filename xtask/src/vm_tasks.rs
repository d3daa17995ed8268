//! xtask commands around the `vm` crate: guest image, cross-compilation,
//! launch-to-ready benchmark. Thin: the work is in `vm`.

use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;
use vm::{image, Arch};

#[derive(clap::Args)]
pub struct ImageBuildArgs {
    #[arg(long, default_value = "aarch64")]
    arch: Arch,
    /// Re-resolve package versions and rebuild the root filesystem.
    #[arg(long)]
    refresh: bool,
}

pub fn image_build(a: ImageBuildArgs) -> anyhow::Result<()> {
    let mut opts = image::BuildOptions::new(a.arch);
    opts.refresh = a.refresh;
    let img = image::build_verbose(&opts).context("building the guest image")?;
    println!("{}", serde_json::to_string_pretty(&img.summary())?);
    Ok(())
}

#[derive(clap::Args)]
pub struct CrossArgs {
    #[arg(long, default_value = "aarch64")]
    arch: Arch,
    /// Debug profile instead of release.
    #[arg(long)]
    debug: bool,
    /// Only these binaries, as PACKAGE:BIN (default: refnode:qfc-refnode probes:qfc-probe).
    #[arg(long = "bin")]
    bins: Vec<String>,
}

pub fn cross(a: CrossArgs) -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut opts = vm::cross::CrossOptions::lab_binaries(a.arch, workspace);
    opts.release = !a.debug;
    if !a.bins.is_empty() {
        opts.bins = a
            .bins
            .iter()
            .map(|b| {
                b.split_once(':')
                    .map(|(p, n)| (p.to_string(), n.to_string()))
                    .with_context(|| format!("--bin {b}: expected PACKAGE:BIN"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    let started = Instant::now();
    let out = vm::cross::build(&opts).context("cross-compiling")?;
    for (bin, path) in out {
        println!("{bin} {}", path.display());
    }
    eprintln!("[cross] {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 3)]
    runs: u32,
    #[arg(long, default_value = "aarch64")]
    arch: Arch,
}

pub fn guest_bench(a: BenchArgs) -> anyhow::Result<()> {
    let opts = image::BuildOptions::new(a.arch);
    let img = image::cached(&opts)?.with_context(|| {
        format!(
            "no cached {} image: run `cargo xtask image-build --arch {}` first",
            a.arch, a.arch
        )
    })?;
    let host = vm::HostFacts::detect();
    let mut times = Vec::new();
    for i in 0..a.runs {
        let dir = tempfile_dir()?;
        let gopts = vm::GuestOptions {
            config: vm::QemuConfig {
                arch: a.arch,
                ..Default::default()
            },
            guest_ports: vec![],
            run_dir: dir.clone(),
        };
        let mut g = vm::Guest::launch(&img, &gopts, &host).context("booting the guest")?;
        let t = g.launch_to_ready.as_secs_f64();
        println!(
            "run {}: launch-to-ready {t:.2} s (accel {}, {})",
            i + 1,
            g.accel.accel,
            g.accel.reason
        );
        times.push(t);
        g.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "launch-to-ready over {} runs: min {:.2} s, median {:.2} s, max {:.2} s",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "qfc-guest-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let d = d.with_extension(format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
