//! The fsync family: fsync and fdatasync calls seen by the fsync probe
//! (`probes/<phase>/fsync.json` or bpftrace's `fsync.txt`): counts, rates,
//! calls per block and latency percentiles.

use super::entry::{missing, per_block, per_s, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{FsyncData, PhaseEvidence};
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "fsync",
    title: "fsync (probes/<phase>/fsync.json)",
    intro: r#"Latency percentiles come from power-of-two histograms: the value is the **upper edge of
the bucket** that holds the rank (an upper bound, exact to a factor of two); for
bpftrace's single-value buckets `[0]` and `[1]` the value itself."#,
    figures: &[
        Figure {
            name: "fsync.count",
            selectors: &["comm"],
            unit: "calls",
            good: Direction::Lower,
            doc: "fsync + fdatasync calls seen by the fsync probe",
            eval: |f, p, _| count(f, p),
        },
        Figure {
            name: "fsync.per_s",
            selectors: &["comm"],
            unit: "calls/s",
            good: Direction::Lower,
            doc: "`fsync.count` over the probe window",
            eval: |f, p, _| per_s(count(f, p)?, data(p)?.window_s),
        },
        Figure {
            name: "fsync.per_block",
            selectors: &["comm"],
            unit: "calls/block",
            good: Direction::Lower,
            doc: "`fsync.count` over `node.blocks`",
            eval: |f, p, _| per_block(count(f, p)?, p),
        },
        Figure {
            name: "fsync.p50_us",
            selectors: &["comm"],
            unit: "us",
            good: Direction::Lower,
            doc: "fsync latency median",
            eval: |f, p, _| quantile(f, p, 0.5),
        },
        Figure {
            name: "fsync.p99_us",
            selectors: &["comm"],
            unit: "us",
            good: Direction::Lower,
            doc: "fsync latency p99",
            eval: |f, p, _| quantile(f, p, 0.99),
        },
        Figure {
            name: "fsync.max_us",
            selectors: &["comm"],
            unit: "us",
            good: Direction::Lower,
            doc: "highest non-empty bucket",
            eval: |f, p, _| quantile(f, p, 1.0),
        },
    ],
    notes: "",
};

fn data(p: &PhaseEvidence) -> Result<&FsyncData, String> {
    p.fsync.as_ref().ok_or_else(|| missing(p, "fsync"))
}

/// Calls by `{comm=...}` (0 when that thread made none), or by every thread.
fn count(f: &FigureRef, p: &PhaseEvidence) -> Fig {
    let d = data(p)?;
    Ok(match f.sel("comm") {
        Some(c) => d.calls_by_comm.get(c).copied().unwrap_or(0),
        None => d.calls_by_comm.values().sum(),
    } as f64)
}

/// The upper edge of the log2 bucket that holds quantile `q` (1.0: the highest
/// non-empty bucket).
fn quantile(f: &FigureRef, p: &PhaseEvidence, q: f64) -> Fig {
    let d = data(p)?;
    let h = match f.sel("comm") {
        Some(c) => d.by_comm_us.get(c),
        None => d.latency_us.as_ref(),
    }
    .filter(|h| !h.is_empty())
    .ok_or("no fsync latency recorded (no calls)")?;
    h.quantile(q)
        .map(|v| v as f64)
        .ok_or("empty histogram".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::{eval_in, Ctx};

    fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
        eval_in(&[&FAMILY], name, p, ctx)
    }

    #[test]
    fn missing_evidence_gives_reason_not_number() {
        let mut p = PhaseEvidence::default();
        p.missing.insert("fsync", "fsync.json absent".into());
        let e = eval_name("fsync.count", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("fsync.json absent"), "{e}");
        let e = eval_name("fsync.per_block", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("no fsync evidence"), "{e}");
    }
}
