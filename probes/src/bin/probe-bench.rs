//! `probe-bench`: helpers of the cross-checks in docs/BENCHMARKS.md
//! (driven by probes/bench/bench.sh): collapse `perf script` output with
//! inferno's perf collapser (the code behind `inferno-collapse-perf`),
//! compare the leaf-frame ("top frame") shares of two folded files, and
//! compare their inclusive (any-frame) shares of the heaviest functions and
//! of each one's immediate callers (issue 12's oracle against `perf record
//! --call-graph dwarf`, driven by probes/bench/oracle_dwarf.sh).
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
    /// Inclusive shares of perf's `--top` heaviest functions, and of each
    /// one's `--callers` heaviest immediate callers, in both folded files,
    /// plus the heaviest leaves by name; fails if any share differs by more
    /// than `--max-pp` points or a heavy leaf of perf's has no sample of
    /// ours. The first frame (thread name) is not a function; names lose
    /// `_[k]` and Rust's `::h<16 hex>` suffix; frames perf does not show
    /// (inlined functions, which `perf script` leaves out) are skipped.
    Inclusive {
        ours: PathBuf,
        perf: PathBuf,
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long, default_value_t = 2)]
        callers: usize,
        /// Leaves at or above this share (%) of perf's must be in ours.
        #[arg(long, default_value_t = 1.0)]
        leaf_min_pct: f64,
        #[arg(long, default_value_t = 2.0)]
        max_pp: f64,
    },
}

/// A frame name as both profiles are compared: no `_[k]` annotation, no
/// Rust legacy hash suffix (`::h` and 16 hex digits), no trailing `()`
/// (inferno's perf collapser cuts C++ names at their argument list, which
/// takes `operator()` down to `operator`).
fn norm(frame: &str) -> String {
    let f = frame.trim_end_matches("_[k]");
    let f = f.strip_suffix("()").unwrap_or(f);
    match f.rfind("::h") {
        Some(i) if f.len() == i + 19 && f[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            f[..i].to_owned()
        }
        _ => f.to_owned(),
    }
}

/// The stacks of a folded file, root first (every frame, the thread or
/// process name included), with their counts; lines that do not parse are
/// skipped.
fn read_folded(path: &PathBuf) -> Result<Vec<(Vec<String>, u64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (stack, n) = line.rsplit_once(' ')?;
            let n = n.parse::<u64>().ok()?;
            Some((stack.split(';').map(str::to_owned).collect(), n))
        })
        .collect())
}

/// Stacks (root first, thread name dropped, names normalized) with counts.
fn stacks(path: &PathBuf) -> Result<Vec<(Vec<String>, u64)>> {
    Ok(read_folded(path)?
        .into_iter()
        .map(|(f, n)| (f.iter().skip(1).map(|x| norm(x)).collect(), n))
        .collect())
}

/// Inclusive weight per function, per (caller, function) pair, per leaf,
/// and the total; `known` (if given) keeps only the frames it holds.
#[allow(clippy::type_complexity, reason = "three tallies of one pass")]
fn inclusive(
    st: &[(Vec<String>, u64)],
    known: Option<&std::collections::HashSet<String>>,
) -> (
    BTreeMap<String, u64>,
    BTreeMap<(String, String), u64>,
    BTreeMap<String, u64>,
    u64,
) {
    let (mut f, mut pairs, mut leaves, mut total) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), 0);
    for (frames, n) in st {
        let frames: Vec<&String> = frames
            .iter()
            .filter(|x| known.is_none_or(|k| k.contains(*x)))
            .collect();
        total += n;
        if let Some(l) = frames.last() {
            *leaves.entry((*l).clone()).or_default() += n;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, x) in frames.iter().enumerate() {
            // Recursion counts a sample once per function and pair.
            if seen.insert(("", x.as_str())) {
                *f.entry((*x).clone()).or_default() += n;
            }
            if i > 0 {
                let c = frames[i - 1];
                if seen.insert((c.as_str(), x.as_str())) {
                    *pairs.entry((c.clone(), (*x).clone())).or_default() += n;
                }
            }
        }
    }
    (f, pairs, leaves, total)
}

/// Leaf frame -> samples, with kernel-frame annotations removed.
fn leaf_shares(path: &PathBuf, comm: Option<&str>) -> Result<(BTreeMap<String, u64>, u64)> {
    let mut m = BTreeMap::new();
    let mut total = 0;
    for (frames, n) in read_folded(path)? {
        if comm.is_some_and(|c| frames.first().map(String::as_str) != Some(c)) {
            continue;
        }
        let leaf = frames.last().map_or("", |l| l.trim_end_matches("_[k]"));
        *m.entry(leaf.to_owned()).or_default() += n;
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
        Cmd::Inclusive {
            ours,
            perf,
            top,
            callers,
            leaf_min_pct,
            max_pp,
        } => {
            let (a, b) = (stacks(&ours)?, stacks(&perf)?);
            let known: std::collections::HashSet<String> =
                b.iter().flat_map(|(f, _)| f.iter().cloned()).collect();
            let (fa, pa, la, ta) = inclusive(&a, Some(&known));
            let (fb, pb, lb, tb) = inclusive(&b, None);
            anyhow::ensure!(ta > 0 && tb > 0, "no samples: ours {ta}, perf {tb}");
            let pct = |n: u64, t: u64| n as f64 * 100.0 / t as f64;
            let mut heavy: Vec<(&String, &u64)> = fb.iter().collect();
            heavy.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
            let mut worst: (f64, String) = (0.0, String::new());
            let mut note = |d: f64, what: String| {
                if d.abs() > worst.0.abs() {
                    worst = (d, what);
                }
            };
            println!("| function (perf's {top} heaviest, inclusive) | qfc-probe % ({ta}) | perf % ({tb}) | diff (pp) |");
            println!("|---|---:|---:|---:|");
            let mut rows = Vec::new();
            for (name, n) in heavy.iter().take(top) {
                let (x, y) = (pct(fa.get(*name).copied().unwrap_or(0), ta), pct(**n, tb));
                note(x - y, format!("`{name}`"));
                println!("| `{name}` | {x:.2} | {y:.2} | {:+.2} |", x - y);
                let mut cs: Vec<(&(String, String), &u64)> =
                    pb.iter().filter(|((_, f), _)| f == *name).collect();
                cs.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
                for (pair, m) in cs.into_iter().take(callers) {
                    let (x, y) = (pct(pa.get(pair).copied().unwrap_or(0), ta), pct(*m, tb));
                    rows.push(format!(
                        "| `{}` -> `{}` | {x:.2} | {y:.2} | {:+.2} |",
                        pair.0,
                        pair.1,
                        x - y
                    ));
                    note(x - y, format!("`{}` -> `{}`", pair.0, pair.1));
                }
            }
            println!("\n| immediate caller -> function (perf's {callers} heaviest per function) | qfc-probe % | perf % | diff (pp) |");
            println!("|---|---:|---:|---:|");
            for r in rows {
                println!("{r}");
            }
            let mut missing = Vec::new();
            println!("\n| leaf (perf's at >= {leaf_min_pct}%) | qfc-probe % | perf % |");
            println!("|---|---:|---:|");
            let mut lv: Vec<(&String, &u64)> = lb.iter().collect();
            lv.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
            for (name, n) in lv {
                let y = pct(*n, tb);
                if y < leaf_min_pct {
                    break;
                }
                let x = pct(la.get(name).copied().unwrap_or(0), ta);
                if x == 0.0 {
                    missing.push(name.clone());
                }
                println!("| `{name}` | {x:.2} | {y:.2} |");
            }
            println!(
                "\nlargest difference: {:+.2} pp at {} (limit {max_pp} pp); perf leaves with no sample of ours: {}",
                worst.0,
                worst.1,
                if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }
            );
            anyhow::ensure!(
                worst.0.abs() <= max_pp && missing.is_empty(),
                "inclusive shares differ by {:+.2} pp at {}, or perf leaves are missing: {missing:?}",
                worst.0,
                worst.1
            );
        }
    }
    Ok(())
}
