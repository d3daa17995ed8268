//! `probe-bench`: helpers of the cross-checks in docs/BENCHMARKS.md
//! (driven by probes/bench/bench.sh): collapse `perf script` output with
//! inferno's perf collapser (the code behind `inferno-collapse-perf`), and
//! compare the leaf-frame ("top frame") shares of two folded files.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, Write},
    path::PathBuf,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use inferno::collapse::Collapse as _;

#[derive(Parser)]
#[command(name = "probe-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// `perf script` text -> folded stacks on stdout.
    CollapsePerf { input: PathBuf },
    /// Leaf-frame shares of two folded files, as a markdown table; fails if
    /// any of the top frames differs by more than `--max-pp` points.
    Compare {
        ours: PathBuf,
        perf: PathBuf,
        /// Only stacks whose root frame (process name) is this.
        #[arg(long)]
        comm: Option<String>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long, default_value_t = 2.0)]
        max_pp: f64,
    },
}

/// Leaf frame -> samples, with kernel-frame annotations removed.
fn leaf_shares(path: &PathBuf, comm: Option<&str>) -> Result<(BTreeMap<String, u64>, u64)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut m = BTreeMap::new();
    let mut total = 0;
    for line in text.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        let mut frames = stack.split(';');
        if let Some(c) = comm {
            if frames.next() != Some(c) {
                continue;
            }
        }
        let leaf = stack
            .rsplit(';')
            .next()
            .unwrap_or("")
            .trim_end_matches("_[k]")
            .to_owned();
        *m.entry(leaf).or_default() += n;
        total += n;
    }
    Ok((m, total))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::CollapsePerf { input } => {
            let f = File::open(&input).with_context(|| format!("opening {}", input.display()))?;
            let mut folder = inferno::collapse::perf::Folder::default();
            let mut out = std::io::stdout().lock();
            folder
                .collapse(BufReader::new(f), &mut out)
                .context("collapsing perf script output")?;
            out.flush()?;
        }
        Cmd::Compare {
            ours,
            perf,
            comm,
            top,
            max_pp,
        } => {
            let (a, ta) = leaf_shares(&ours, comm.as_deref())?;
            let (b, tb) = leaf_shares(&perf, comm.as_deref())?;
            anyhow::ensure!(ta > 0 && tb > 0, "no samples: ours {ta}, perf {tb}");
            let mut frames: Vec<(&String, u64)> = a.iter().map(|(k, v)| (k, *v)).collect();
            frames.sort_by(|x, y| y.1.cmp(&x.1));
            println!(
                "| top frame | qfc-probe % ({ta} samples) | perf % ({tb} samples) | diff (pp) |"
            );
            println!("|---|---:|---:|---:|");
            let mut worst: f64 = 0.0;
            for (f, n) in frames.into_iter().take(top) {
                let pa = n as f64 * 100.0 / ta as f64;
                let pb = b.get(f).copied().unwrap_or(0) as f64 * 100.0 / tb as f64;
                worst = worst.max((pa - pb).abs());
                println!("| `{f}` | {pa:.2} | {pb:.2} | {:+.2} |", pa - pb);
            }
            println!("\nlargest difference: {worst:.2} pp (limit {max_pp} pp)");
            anyhow::ensure!(
                worst <= max_pp,
                "top-frame shares differ by {worst:.2} pp, more than {max_pp}"
            );
        }
    }
    Ok(())
}
