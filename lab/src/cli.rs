//! Command-line arguments of `qfc-lab` (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Scenario files in, reproducible evidence bundles out.
#[derive(Debug, Parser)]
#[command(name = "qfc-lab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its evidence bundle.
    Run(RunArgs),
    /// Check scenario files without running them.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `KEY=VALUE` overrides, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Recompute every hash of a bundle and name each missing, extra or changed file.
    Verify {
        /// Bundle directory.
        dir: PathBuf,
    },
    /// Re-render a bundle's report (report.md, report.html, verdicts.json and .junit.xml,
    /// figures.json and .om, timeline.svg);
    /// exits 1 when an expectation fails.
    Report(crate::report::cli::ReportArgs),
    /// Compare two bundles phase by phase (differential flame graphs, verdict sentences);
    /// repeated bundles (`run --repeat`) with a noise estimate per figure, and
    /// `--fail-on-regression` exits 1 on a significant change in a figure's bad direction.
    Diff(crate::report::cli::DiffArgs),
    /// Read a directory in T1's format and show its figures (and a bundle's next to them).
    #[command(name = "import-t1")]
    ImportT1(crate::report::cli::ImportT1Args),
    /// Judge a capture's findings against bundles (`findings t1 BUNDLE... --baseline T1DIR`).
    #[command(subcommand)]
    Findings(crate::report::cli::FindingsCommand),
    /// Capture with the probes alone, like T1's runner but all probes at once
    /// (the same program and flags as `qfc-probe`).
    Probe(probes::cli::Args),
    /// Guest images for the qemu target.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Drive a node for one phase with the load generator and print the summary
    /// (the same flags as `qfc-load`).
    Load(loadgen::cli::LoadArgs),
    /// Remove what a killed qfc-lab left behind (processes, containers,
    /// volumes, staging directories, cgroups); `run` does it first, too.
    Gc,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Override a scenario key, e.g. `--set node.refnode.synced_commit=true`
    /// (dotted path; phases by index: `phase.0.duration_s=5`; VALUE is TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Bundle directory (overrides `[bundle] dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Repetitions (overrides `[run] repeat`): each a whole run in
    /// `rep-01/` ... of one parent bundle, with `summary/` statistics.
    #[arg(long, value_name = "N")]
    pub repeat: Option<u32>,
    /// Print machine-readable events (one JSON object per line) instead of progress bars.
    #[arg(long)]
    pub json: bool,
    /// Node binary (overrides `[node] binary` and the default next to qfc-lab).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// `qfc-probe` binary (default: next to qfc-lab).
    #[arg(long)]
    pub probe_binary: Option<PathBuf>,
    /// Keep the target's scratch directory (node datadir) after the run.
    #[arg(long)]
    pub keep_scratch: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the Debian bookworm guest image offline (or find it in the cache,
    /// keyed by the recipe and package versions) and print its summary.
    Build {
        /// Guest architecture.
        #[arg(long, default_value = "aarch64")]
        arch: vm::Arch,
        /// Re-resolve package versions and rebuild the root filesystem.
        #[arg(long)]
        refresh: bool,
    },
}
