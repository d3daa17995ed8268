//! The write-path family: write and sync syscalls seen by the write-path probe
//! (`probes/<phase>/writepath.json` or bpftrace's `writepath.txt`): counts by
//! thread and syscall, rates, and latency p99 per syscall.

use super::entry::{missing, per_s, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{PhaseEvidence, WritePathData};
use crate::stats::Direction;

/// The syscalls `writepath.writes` counts.
const WRITES: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];
/// The syscalls `writepath.fsyncs` counts.
const SYNCS: &[&str] = &["fsync", "fdatasync", "sync_file_range"];

pub const FAMILY: Family = Family {
    name: "writepath",
    title: "Write path (probes/<phase>/writepath.json)",
    intro: "",
    figures: &[
        Figure {
            name: "writepath.writes",
            selectors: &["comm"],
            unit: "calls",
            good: Direction::None,
            doc: "write, pwrite64, writev, pwritev, pwritev2",
            eval: |f, p, _| calls(f, p, Some(WRITES)),
        },
        Figure {
            name: "writepath.writes_per_s",
            selectors: &["comm"],
            unit: "calls/s",
            good: Direction::None,
            doc: "`writepath.writes` over the probe window",
            eval: |f, p, _| per_s(calls(f, p, Some(WRITES))?, data(p)?.window_s),
        },
        Figure {
            name: "writepath.fsyncs",
            selectors: &["comm"],
            unit: "calls",
            good: Direction::Lower,
            doc: "fsync, fdatasync, sync_file_range (write-path probe)",
            eval: |f, p, _| calls(f, p, Some(SYNCS)),
        },
        Figure {
            name: "writepath.fsyncs_per_s",
            selectors: &["comm"],
            unit: "calls/s",
            good: Direction::Lower,
            doc: "`writepath.fsyncs` over the probe window",
            eval: |f, p, _| per_s(calls(f, p, Some(SYNCS))?, data(p)?.window_s),
        },
        Figure {
            name: "writepath.syscalls",
            selectors: &["comm", "syscall"],
            unit: "calls",
            good: Direction::None,
            doc: "every write-path syscall",
            eval: |f, p, _| calls(f, p, None),
        },
        Figure {
            name: "writepath.p99_us",
            selectors: &["syscall"],
            unit: "us",
            good: Direction::Lower,
            doc: "latency p99 of one syscall (default `write`)",
            eval: p99_us,
        },
    ],
    notes: "",
};

fn data(p: &PhaseEvidence) -> Result<&WritePathData, String> {
    p.writepath.as_ref().ok_or_else(|| missing(p, "writepath"))
}

/// Calls on `{comm=...}` (any thread without it) of the syscalls in `set`, or
/// of `{syscall=...}` (any syscall without it) when `set` is `None`.
fn calls(f: &FigureRef, p: &PhaseEvidence, set: Option<&[&str]>) -> Fig {
    let d = data(p)?;
    let n: u64 = d
        .ops
        .iter()
        .filter(|((c, _), _)| f.sel("comm").is_none_or(|x| x == c))
        .filter(|((_, sc), _)| match set {
            Some(set) => set.contains(&sc.as_str()),
            None => f.sel("syscall").is_none_or(|x| x == sc),
        })
        .map(|(_, n)| *n)
        .sum();
    Ok(n as f64)
}

/// Latency p99 of `{syscall=...}` (default `write`).
fn p99_us(f: &FigureRef, p: &PhaseEvidence, _: &super::entry::Ctx) -> Fig {
    let d = data(p)?;
    let sc = f.sel("syscall").unwrap_or("write");
    d.lat_us_by_syscall
        .get(sc)
        .and_then(|h| h.quantile(0.99))
        .map(|v| v as f64)
        .ok_or_else(|| format!("no {sc} latency recorded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::{eval_in, Ctx};

    fn eval_name(name: &str, p: &PhaseEvidence) -> Fig {
        eval_in(&[&FAMILY], name, p, &Ctx::default())
    }

    /// Known answer: 3 writes and 2 fdatasyncs by `node`, 1 write by `other`,
    /// over a 2 s window.
    #[test]
    fn counts_of_known_calls() {
        let mut d = WritePathData {
            window_s: Some(2.0),
            ..Default::default()
        };
        for (c, s, n) in [
            ("node", "write", 3),
            ("node", "fdatasync", 2),
            ("other", "pwrite64", 1),
        ] {
            d.ops.insert((c.into(), s.into()), n);
        }
        let p = PhaseEvidence {
            writepath: Some(d),
            ..Default::default()
        };
        let f = |n: &str| eval_name(n, &p).unwrap();
        assert_eq!(f("writepath.writes"), 4.0);
        assert_eq!(f("writepath.writes{comm=node}"), 3.0);
        assert_eq!(f("writepath.writes_per_s"), 2.0);
        assert_eq!(f("writepath.fsyncs"), 2.0);
        assert_eq!(f("writepath.fsyncs_per_s{comm=node}"), 1.0);
        assert_eq!(f("writepath.syscalls"), 6.0);
        assert_eq!(f("writepath.syscalls{syscall=pwrite64}"), 1.0);
        let e = eval_name("writepath.p99_us", &p).unwrap_err();
        assert!(e.contains("no write latency"), "{e}");
    }
}
