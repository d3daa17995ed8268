//! The load family: what the load generator sent and measured per workload
//! (`load/<phase>/summary.json`, `<workload>.hdr`), and the instrument floor it
//! measured before the phase (issue 18).

use super::entry::{missing, pct, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{PhaseEvidence, WorkloadData};
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "load",
    title: "Load (load/<phase>/summary.json, <workload>.hdr)",
    intro: r#"`<workload>` is `rpc`, `tx`, `sync` or `compaction`."#,
    figures: &[
    Figure {
        name: "load.<workload>.requests",
        selectors: &[],
        unit: "requests",
        good: Direction::None,
        doc: "requests sent",
        eval: |f, p, _| stat(f, p, |d| d.requests.map(|v| v as f64), "request count"),
    },
    Figure {
        name: "load.<workload>.ok",
        selectors: &[],
        unit: "requests",
        good: Direction::Higher,
        doc: "requests answered without error",
        eval: |f, p, _| stat(f, p, |d| d.ok.map(|v| v as f64), "ok count"),
    },
    Figure {
        name: "load.<workload>.errors",
        selectors: &[],
        unit: "requests",
        good: Direction::Lower,
        doc: "failed or timed-out requests",
        eval: |f, p, _| stat(f, p, |d| d.errors.map(|v| v as f64), "error count"),
    },
    Figure {
        name: "load.<workload>.dropped",
        selectors: &[],
        unit: "requests",
        good: Direction::Lower,
        doc: "open loop: arrivals never sent (no free slot in time, or the phase ended)",
        eval: |f, p, _| stat(f, p, |d| d.dropped.map(|v| v as f64), "dropped count"),
    },
    Figure {
        name: "load.<workload>.error_pct",
        selectors: &[],
        unit: "%",
        good: Direction::Lower,
        doc: "errors over requests",
        eval: error_pct,
    },
    Figure {
        name: "load.<workload>.throughput_per_s",
        selectors: &[],
        unit: "requests/s",
        good: Direction::Higher,
        doc: "answered requests per second",
        eval: |f, p, _| stat(f, p, |d| d.throughput_per_s, "throughput"),
    },
    Figure {
        name: "load.<workload>.p50_ms",
        selectors: &[],
        unit: "ms",
        good: Direction::Lower,
        doc: "latency median (open loop: from the intended start)",
        eval: |f, p, _| stat(f, p, |d| d.p50_ms, "p50 latency"),
    },
    Figure {
        name: "load.<workload>.p90_ms",
        selectors: &[],
        unit: "ms",
        good: Direction::Lower,
        doc: "latency p90",
        eval: |f, p, _| stat(f, p, |d| d.p90_ms, "p90 latency"),
    },
    Figure {
        name: "load.<workload>.p99_ms",
        selectors: &[],
        unit: "ms",
        good: Direction::Lower,
        doc: "latency p99",
        eval: |f, p, _| {
            stat(
                f,
                p,
                |d| d.p99_ms,
                "p99 latency (percentiles of several phases cannot be merged from summaries)",
            )
        },
    },
    Figure {
        name: "load.<workload>.p999_ms",
        selectors: &[],
        unit: "ms",
        good: Direction::Lower,
        doc: "latency p99.9",
        eval: |f, p, _| stat(f, p, |d| d.p999_ms, "p99.9 latency"),
    },
    Figure {
        name: "load.<workload>.max_ms",
        selectors: &[],
        unit: "ms",
        good: Direction::Lower,
        doc: "largest latency",
        eval: |f, p, _| stat(f, p, |d| d.max_ms, "max latency"),
    },
    Figure {
        name: "load.floor_p50_us",
        selectors: &[],
        unit: "us",
        good: Direction::None,
        doc: "instrument floor: the load generator's own median latency at the phase's rate, against a server that answers at once (measured just before the phase's load clock)",
        eval: |_, p, _| floor(p).map(|(p50, _)| p50),
    },
    Figure {
        name: "load.floor_p99_us",
        selectors: &[],
        unit: "us",
        good: Direction::None,
        doc: "instrument floor p99; a load p99 within 2x of it measures the generator, not the node (the report flags it)",
        eval: |_, p, _| floor(p).map(|(_, p99)| p99),
    },
    ],
    notes: r#"The floor is `floor` in `summary.json` (issue 18): before each phase's load
clock starts, the open loop runs for 1 s (`--floor-ms`) at the peak rate of
the phase's rpc workload (else its tx or sync rate, else 1,000/s for closed
loops and compaction-only phases) against an in-process HTTP server on
loopback that answers at once. Over a whole run the floor is the highest of
its phases'. Bundles written before issue 18 have none: the figures then
say so. An open-loop workload whose target rate was not sustained carries
`pacing.sustained = false` with the shortfall and how far behind schedule
the sends fell; the report prints that sentence under the load table."#,
};

/// The summary of the workload named in `load.<workload>.<stat>`.
fn workload<'a>(f: &FigureRef, p: &'a PhaseEvidence) -> Result<(&'a WorkloadData, String), String> {
    let (w, _) = f.base[5..].split_once('.').ok_or("malformed load figure")?;
    let l = p.load.as_ref().ok_or_else(|| missing(p, "load"))?;
    let d = l
        .get(w)
        .ok_or_else(|| format!("no {w} workload ran in this phase"))?;
    Ok((d, w.to_string()))
}

/// One statistic of the workload, or "the load summary gives no <what>".
fn stat(
    f: &FigureRef,
    p: &PhaseEvidence,
    get: fn(&WorkloadData) -> Option<f64>,
    what: &str,
) -> Fig {
    let (d, w) = workload(f, p)?;
    get(d).ok_or_else(|| format!("the load summary gives no {what} for {w}"))
}

fn error_pct(f: &FigureRef, p: &PhaseEvidence, _: &super::entry::Ctx) -> Fig {
    let e = stat(f, p, |d| d.errors.map(|v| v as f64), "error count")?;
    let r = stat(f, p, |d| d.requests.map(|v| v as f64), "request count")?;
    pct(e, r, "requests")
}

/// (p50, p99) of the instrument floor in microseconds.
fn floor(p: &PhaseEvidence) -> Result<(f64, f64), String> {
    let fl = p
        .load_floor
        .as_ref()
        .ok_or_else(|| missing(p, "load_floor"))?;
    Ok((fl.p50_us, fl.p99_us))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::{eval_in, Ctx};

    fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
        eval_in(&[&FAMILY], name, p, ctx)
    }

    #[test]
    fn load_floor_figures_read_the_floor_or_say_why_not() {
        let mut p = PhaseEvidence::default();
        p.load_floor = Some(crate::report::evidence::LoadFloor {
            rate_per_s: Some(2000.0),
            p50_us: 80.0,
            p99_us: 190.0,
        });
        assert_eq!(
            eval_name("load.floor_p50_us", &p, &Ctx::default()),
            Ok(80.0)
        );
        assert_eq!(
            eval_name("load.floor_p99_us", &p, &Ctx::default()),
            Ok(190.0)
        );
        assert_eq!(
            crate::report::figures::entry::parse_in(&[&FAMILY], "load.floor_p99_us")
                .unwrap()
                .unit,
            "us"
        );
        p.load_floor = None;
        p.missing
            .insert("load_floor", "calibration skipped (floor window 0)".into());
        let e = eval_name("load.floor_p99_us", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("calibration skipped"), "{e}");
    }
}
