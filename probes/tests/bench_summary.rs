//! Known answers for the overhead bench's summarizer
//! (probes/bench/node_overhead_table.py, issue 12's overhead bar).
//!
//! Synthetic raw files with a known probe cost: a node whose throughput is
//! proportional to the share of its core that RocksDB's background threads
//! leave it (drawn per window between 0.55 and 0.92, as the real node's
//! compactions come and go) times `effect` in `on` windows, with 1% of
//! other noise per second.
//! The raw figure is then far off at times; the adjusted one must recover
//! the effect, and the verdict must follow the bars. The summarizer runs
//! with the machine's python3, as the bench does.
use std::{fmt::Write as _, path::Path, process::Command};

/// xorshift64*: a seeded stream in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes run.json, windows.tsv and seconds.tsv of `blocks` blocks of
/// `dwarf` into `dir`; `bg` false leaves the background column out (a run
/// of the bench before it had one).
fn write_run(dir: &Path, effect: f64, blocks: u32, bg: bool, seed: u64) {
    let mut rng = Rng(seed);
    let run = serde_json::json!({
        "hz": "100", "modes": "dwarf", "probes": "oncpu,offcpu", "w": "10",
        "blocks": blocks.to_string(), "cycles": "8", "warm": "20", "accounts": "256",
        "block_ms": "50", "ustack": "16384", "pin": "1", "load_start": "0 0 0",
        "started": "2026-12-06T00:00Z", "ended": "2026-12-06T01:00Z", "load_end": "0 0 0",
        "kernel": "test", "cpus": "2",
    });
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    let bg_col = if bg { "\tbg_ticks" } else { "" };
    let mut windows =
        format!("window\tblock\tmode\tside\tseconds\taccepted\tnode_ticks\tprobe_ticks{bg_col}\n");
    let mut seconds =
        format!("window\tblock\tmode\tside\tsecond\tseconds\taccepted\tnode_ticks{bg_col}\n");
    let mut w = 0;
    for b in 1..=blocks {
        let pattern = if b % 2 == 1 {
            ["off", "on", "on", "off"]
        } else {
            ["on", "off", "off", "on"]
        };
        for side in pattern {
            w += 1;
            let (mut acc, mut ticks, mut bg_ticks) = (0u64, 0u64, 0u64);
            // The compactions' share is drawn per window (they last
            // seconds), so the raw figure of a block is off by tens of
            // percent and only the adjustment can recover the effect.
            let fg = 0.55 + 0.37 * rng.next();
            for s in 1..=10 {
                let noise = 1.0 + 0.02 * (rng.next() - 0.5);
                let on = if side == "on" { effect } else { 1.0 };
                let a = (12_000.0 * fg * on * noise).round() as u64;
                let t = 100u64;
                let g = (100.0 * (1.0 - fg)).round() as u64;
                let g_col = if bg { format!("\t{g}") } else { String::new() };
                writeln!(
                    seconds,
                    "{w}\t{b}\tdwarf\t{side}\t{s}\t1.000\t{a}\t{t}{g_col}"
                )
                .unwrap();
                (acc, ticks, bg_ticks) = (acc + a, ticks + t, bg_ticks + g);
            }
            let probe = u64::from(side == "on");
            let g_col = if bg {
                format!("\t{bg_ticks}")
            } else {
                String::new()
            };
            writeln!(
                windows,
                "{w}\t{b}\tdwarf\t{side}\t10.000\t{acc}\t{ticks}\t{probe}{g_col}"
            )
            .unwrap();
        }
    }
    std::fs::write(dir.join("windows.tsv"), windows).unwrap();
    std::fs::write(dir.join("seconds.tsv"), seconds).unwrap();
}

fn summarize(dir: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/node_overhead_table.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "the summarizer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The adjusted figure and its interval of `figure` for `dwarf`.
fn adjusted(table: &str, figure: &str) -> (f64, f64, f64) {
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("| mode | figure | adjusted"))
        .find(|l| l.starts_with(&format!("| dwarf | {figure} |")))
        .unwrap_or_else(|| panic!("no adjusted {figure} row in:\n{table}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let v: f64 = cells[3].parse().unwrap();
    let (lo, hi) = cells[4].split_once(" to ").unwrap();
    (v, lo.parse().unwrap(), hi.parse().unwrap())
}

fn verdict(table: &str) -> &str {
    table
        .lines()
        .find(|l| l.starts_with("Targets (issue 12"))
        .expect("a verdict line")
}

/// Summarizes a synthetic run of 16 blocks with a known `effect` and
/// checks the adjusted figures: throughput within 1 point of `effect` and
/// inside its interval, CPU per 1,000 tx within 1.2 points of its
/// inverse; returns the verdict line.
fn recovered(effect: f64, seed: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), effect, 16, true, seed);
    let t = summarize(dir.path());
    let (v, lo, hi) = adjusted(&t, "throughput");
    assert!(
        (v - effect).abs() < 0.01,
        "adjusted throughput {v}, known {effect}\n{t}"
    );
    assert!(
        lo <= effect && effect <= hi,
        "interval {lo}-{hi} misses {effect}\n{t}"
    );
    let (c, _, _) = adjusted(&t, "node CPU-s per 1,000 tx");
    assert!(
        (c - 1.0 / effect).abs() < 0.012,
        "adjusted CPU {c}, known {}\n{t}",
        1.0 / effect
    );
    verdict(&t).to_owned()
}

#[test]
fn a_five_percent_cost_is_recovered_and_misses_the_bar() {
    let line = recovered(0.95, 7);
    assert!(
        line.contains("Adjusted for the compactions' share: throughput missed"),
        "{line}"
    );
}

#[test]
fn no_cost_is_recovered_and_meets_the_bar() {
    let line = recovered(1.0, 11);
    assert!(
        line.contains("Adjusted for the compactions' share: throughput met")
            && line.contains("node CPU per 1,000 tx met"),
        "{line}"
    );
}

#[test]
fn a_run_without_the_background_column_has_no_adjusted_figure() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), 0.95, 16, false, 7);
    let t = summarize(dir.path());
    assert!(!t.contains("adjusted on / off"), "{t}");
    assert!(!verdict(&t).contains("Adjusted"), "{t}");
}
