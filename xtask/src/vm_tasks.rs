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
    /// The bench flavour: the default packages and the benchmarks' peers
    /// (bpftrace), a separate root filesystem and image key.
    #[arg(long)]
    bench: bool,
}

pub fn image_build(a: ImageBuildArgs) -> anyhow::Result<()> {
    let mut opts = image::BuildOptions::new(a.arch);
    opts.refresh = a.refresh;
    if a.bench {
        opts.flavor = image::Flavor::Bench;
    }
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

#[derive(clap::Args)]
pub struct ProbeCostArgs {
    #[arg(long, default_value = "aarch64")]
    arch: Arch,
    /// Interleaved rounds (untraced, each attach point, bpftrace).
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// dd's one-byte writes per run (emulated: 10x slower than this machine).
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Where the raw results go (default: a new directory under the temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the table into docs/BENCHMARKS.md between the
    /// `guest-probe-cost` markers.
    #[arg(long)]
    docs: bool,
}

/// The guest's probe-cost table (issue 17): the bench flavour of the image
/// (with bpftrace), the cross-built qfc-probe, `probes/bench/dd_cost.sh`
/// run inside the guest, its raw output fetched back as untrusted input and
/// summarized here by `dd_cost_table.py`, the same as bench.sh's host table.
/// Named steps: `bench_image` -> `cross_bin` -> `run_in_guest` ->
/// `summarize` (-> the docs table).
pub fn guest_probe_cost(a: ProbeCostArgs) -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bench = workspace.join("probes/bench");
    let out = match a.out.clone() {
        Some(o) => {
            std::fs::create_dir_all(&o)?;
            o
        }
        None => tempfile_dir()?,
    };
    let started = Instant::now();
    let img = bench_image(a.arch)?;
    let probe = cross_bin(a.arch, &workspace, "probes", "qfc-probe")?;
    let raw = out.join("guest");
    // A rerun into the same --out must not summarize an earlier run's files.
    let _ = std::fs::remove_dir_all(&raw);
    run_in_guest(&a, img, &probe, &bench, &out, &raw)?;
    let table = summarize(&bench, &raw)?;
    eprintln!(
        "[probe-cost] {:.0} s in all; raw results in {}",
        started.elapsed().as_secs_f64(),
        raw.display()
    );
    println!("{table}");
    if a.docs {
        let block = out.join("doc-block.md");
        std::fs::write(
            &block,
            format!(
                "Written by `cargo xtask guest-probe-cost --reps {} --count {} --docs` \
                 ({} guest under QEMU TCG, the bench image flavour with Debian's bpftrace; \
                 release `qfc-probe` cross-built).\n\n{table}",
                a.reps, a.count, a.arch
            ),
        )?;
        let st = std::process::Command::new("bash")
            .arg(workspace.join("scripts/write-table.sh"))
            .arg("guest-probe-cost")
            .arg(&block)
            .arg(workspace.join("docs/BENCHMARKS.md"))
            .status()?;
        anyhow::ensure!(st.success(), "write-table.sh: {st}");
        eprintln!("[probe-cost] docs/BENCHMARKS.md updated");
    }
    Ok(())
}

fn bench_image(arch: Arch) -> anyhow::Result<image::Image> {
    let mut opts = image::BuildOptions::new(arch);
    opts.flavor = image::Flavor::Bench;
    image::build_verbose(&opts).context("building the bench flavour of the guest image")
}

/// One release binary cross-built for `arch` (cached: seconds when warm).
fn cross_bin(
    arch: Arch,
    workspace: &std::path::Path,
    package: &str,
    bin: &str,
) -> anyhow::Result<PathBuf> {
    let mut opts = vm::cross::CrossOptions::lab_binaries(arch, workspace.to_path_buf());
    opts.bins = vec![(package.into(), bin.into())];
    let built = vm::cross::build(&opts).with_context(|| format!("cross-compiling {bin}"))?;
    built
        .into_iter()
        .map(|(_, p)| p)
        .next()
        .with_context(|| format!("the cross-build gave no {bin}"))
}

fn run_in_guest(
    a: &ProbeCostArgs,
    img: image::Image,
    probe: &std::path::Path,
    bench: &std::path::Path,
    out: &std::path::Path,
    raw: &std::path::Path,
) -> anyhow::Result<()> {
    use vm::Target;
    with_guest(a.arch, img, out.join("qemu"), |t| {
        let probe = t.ship(probe)?;
        t.ship(&bench.join("lib.sh"))?;
        let script = t.ship(&bench.join("dd_cost.sh"))?;
        let dir = t.scratch_dir().join("dd");
        // Under emulation bpftrace compiles its programs for tens of seconds.
        let cmd = format!(
            "PROBE_READY_S=300 bash {script} {dir} {reps} {count} {probe} 2>&1 | tail -n 40",
            script = script.display(),
            dir = dir.display(),
            reps = a.reps,
            count = a.count,
            probe = probe.display(),
        );
        let o = t.exec(
            &[
                "bash".into(),
                "-o".into(),
                "pipefail".into(),
                "-c".into(),
                cmd.into(),
            ],
            std::time::Duration::from_secs(4 * 3600),
        )?;
        anyhow::ensure!(
            o.success(),
            "dd_cost.sh in the guest failed:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let imported = t.fetch_dir(&dir, raw)?;
        anyhow::ensure!(
            imported.refused.is_empty(),
            "the guest's results had entries refused on import: {:?}",
            imported.refused
        );
        Ok(())
    })
}

/// Boots a guest of `img`, runs `f` on it, and tears the guest down
/// whatever `f` returned.
fn with_guest<T>(
    arch: Arch,
    img: image::Image,
    run_dir: PathBuf,
    f: impl FnOnce(&mut vm::QemuTarget) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use vm::Target;
    let config = vm::QemuConfig {
        arch,
        ..Default::default()
    };
    let mut t = vm::QemuTarget::new(config, img, run_dir);
    let r = match t.prepare().context("booting the guest") {
        Ok(()) => f(&mut t),
        Err(e) => Err(e),
    };
    let _ = t.teardown();
    r
}

fn summarize(bench: &std::path::Path, raw: &std::path::Path) -> anyhow::Result<String> {
    let o = std::process::Command::new("python3")
        .arg(bench.join("dd_cost_table.py"))
        .arg(raw)
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "dd_cost_table.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(std::fs::read_to_string(raw.join("cost.md"))?)
}

#[derive(clap::Args)]
pub struct LoadgenBenchArgs {
    #[arg(long, default_value = "aarch64")]
    arch: Arch,
    /// Fixed rates (loadgen/bench.sh's RATES): what the emulated node answers.
    #[arg(long, default_value = "200 1000")]
    rates: String,
    /// Interleaved pairs.
    #[arg(long, default_value_t = 5)]
    pairs: u32,
    /// Build profile of this machine's qfc-load (target/PROFILE/qfc-load).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Write the table into docs/BENCHMARKS.md between the
    /// `loadgen-bench-guest` markers.
    #[arg(long)]
    docs: bool,
}

/// loadgen/bench.sh against the reference node in a guest (issue 18): the
/// node runs where a `target.kind = "qemu"` scenario runs it, both tools run
/// on this machine, as `qfc-lab run` drives a guest. Named steps: the
/// cached image -> `cross_bin` (qfc-refnode) -> boot, ship, start the node
/// on the forwarded RPC port -> loadgen/bench.sh with `RPC` set -> teardown.
pub fn guest_loadgen_bench(a: LoadgenBenchArgs) -> anyhow::Result<()> {
    use vm::Target;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let img = image::build_verbose(&image::BuildOptions::new(a.arch))
        .context("building the guest image")?;
    let node = cross_bin(a.arch, &workspace, "refnode", "qfc-refnode")?;
    let out = tempfile_dir()?;
    with_guest(a.arch, img, out.join("qemu"), |t| {
        let node = t.ship(&node)?;
        let data = t.scratch_dir().join("data");
        let argv: Vec<std::ffi::OsString> = vec![
            node.into(),
            "--dev".into(),
            "--datadir".into(),
            data.into(),
            "--rpc-addr".into(),
            "0.0.0.0:8545".into(),
            "--metrics-addr".into(),
            "0.0.0.0:6060".into(),
            "--p2p-port".into(),
            "30303".into(),
            "--lab-p2p-host".into(),
            "0.0.0.0".into(),
            "--lab-block-interval-ms".into(),
            "1000".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        let mut proc = t.spawn(&vm::SpawnSpec {
            argv,
            env: vec![],
            cwd: None,
            stdin: false,
        })?;
        let rpc = t.forward(8545)?;
        let st = std::process::Command::new("bash")
            .arg(workspace.join("loadgen/bench.sh"))
            .current_dir(&workspace)
            .env("RPC", rpc.to_string())
            .env(
                "NODE_DESC",
                format!(
                    "one release `qfc-refnode --dev` in the {} guest (QEMU TCG, 2 vCPUs), \
                     its RPC port forwarded to {rpc}, both tools on this machine",
                    a.arch
                ),
            )
            .env("MARKERS", "loadgen-bench-guest")
            .env("RATES", &a.rates)
            .env("PAIRS", a.pairs.to_string())
            .env("PROFILE", &a.profile)
            .env("OUT", out.join("bench"))
            .env(
                "DOCS",
                if a.docs {
                    workspace.join("docs/BENCHMARKS.md").into_os_string()
                } else {
                    std::ffi::OsString::new()
                },
            )
            .status()?;
        let _ = proc.terminate(std::time::Duration::from_secs(5));
        anyhow::ensure!(st.success(), "loadgen/bench.sh: {st}");
        Ok(())
    })
}
