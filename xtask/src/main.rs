//! Project automation that is not a product feature (`cargo xtask <command>`).
//!
//! - `image-build [--arch aarch64|x86_64] [--refresh] [--bench]`: build or look up the
//!   cached guest image (the same library call as `qfc-lab image build`).
//! - `cross [--arch aarch64] [--debug]`: cross-compile `qfc-refnode` and
//!   `qfc-probe` for the guest, with frame pointers.
//! - `guest-bench [--runs N]`: boot the cached aarch64 guest N times and print
//!   launch-to-ready times (docs/BENCHMARKS.md).
//! - `guest-probe-cost [--reps N] [--count N] [--docs]`: the guest's
//!   per-event probe cost beside bpftrace's, on the bench flavour of the
//!   image (`image-build --bench`), written into docs/BENCHMARKS.md.
//! - `guest-loadgen-bench [--rates "200 1000"] [--docs]`: loadgen/bench.sh
//!   (qfc-load against oha) driving the reference node in the guest.
//! - `cycles [--root DIR]`: list every import cycle between files in the
//!   workspace and fail when there is one (run by scripts/test.sh).
//! - `figures-doc [--check]`: write docs/FIGURES.md from the figure registry.

mod cycles;
mod figures_doc;
mod vm_tasks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "qfc-lab project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or find in the cache) the guest image.
    ImageBuild(vm_tasks::ImageBuildArgs),
    /// Cross-compile the node and the probe program for a guest architecture.
    Cross(vm_tasks::CrossArgs),
    /// Measure launch-to-ready of the guest (warm image cache).
    GuestBench(vm_tasks::BenchArgs),
    /// The guest's probe cost per event beside bpftrace's (bench image flavour).
    GuestProbeCost(vm_tasks::ProbeCostArgs),
    /// loadgen/bench.sh against the reference node in a guest.
    GuestLoadgenBench(vm_tasks::LoadgenBenchArgs),
    /// List the import cycles between files; fail when there is one.
    Cycles(cycles::CyclesArgs),
    /// Write docs/FIGURES.md from the figure registry (or check it).
    FiguresDoc(figures_doc::FiguresDocArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::ImageBuild(a) => vm_tasks::image_build(a),
        Cmd::Cross(a) => vm_tasks::cross(a),
        Cmd::GuestBench(a) => vm_tasks::guest_bench(a),
        Cmd::GuestProbeCost(a) => vm_tasks::guest_probe_cost(a),
        Cmd::GuestLoadgenBench(a) => vm_tasks::guest_loadgen_bench(a),
        Cmd::Cycles(a) => cycles::run(a),
        Cmd::FiguresDoc(a) => figures_doc::run(a),
    }
}
