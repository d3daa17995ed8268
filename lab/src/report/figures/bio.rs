//! The block-IO family: completed block-IO requests seen by the bio probe
//! (`probes/<phase>/bio.json` or bpftrace's `bio.txt`): counts, bytes, write
//! throughput and service-time percentiles, by RWBS.

use super::entry::{missing, per_s, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{BioData, PhaseEvidence};
use crate::report::hist::Log2Hist;
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "bio",
    title: "Block IO (probes/<phase>/bio.json)",
    intro: "",
    figures: &[
        Figure {
            name: "bio.count",
            selectors: &["rwbs"],
            unit: "requests",
            good: Direction::None,
            doc: "completed block-IO requests (all RWBS without selector)",
            eval: |f, p, _| Ok(hist(f, data(p)?).total() as f64),
        },
        Figure {
            name: "bio.p50_us",
            selectors: &["rwbs"],
            unit: "us",
            good: Direction::Lower,
            doc: "block-IO service time median",
            eval: |f, p, _| quantile(f, p, 0.5),
        },
        Figure {
            name: "bio.p99_us",
            selectors: &["rwbs"],
            unit: "us",
            good: Direction::Lower,
            doc: "block-IO service time p99",
            eval: |f, p, _| quantile(f, p, 0.99),
        },
        Figure {
            name: "bio.max_us",
            selectors: &["rwbs"],
            unit: "us",
            good: Direction::Lower,
            doc: "highest non-empty bucket",
            eval: |f, p, _| quantile(f, p, 1.0),
        },
        Figure {
            name: "bio.bytes",
            selectors: &["rwbs"],
            unit: "bytes",
            good: Direction::None,
            doc: "bytes of completed requests",
            eval: bytes,
        },
        Figure {
            name: "bio.write_mib_per_s",
            selectors: &[],
            unit: "MiB/s",
            good: Direction::None,
            doc: "bytes of requests whose RWBS contains `W`, over the window",
            eval: write_mib_per_s,
        },
    ],
    notes: r#"`rwbs=` takes the kernel's RWBS string as printed: `W`, `WS` (sync write), `FWS`
(flush + sync write, what fdatasync issues), `WM`, `R`, `RA`, ..."#,
};

fn data(p: &PhaseEvidence) -> Result<&BioData, String> {
    p.bio.as_ref().ok_or_else(|| missing(p, "bio"))
}

/// The service-time histogram of `{rwbs=...}` (empty when none had it), or of
/// every request: the probe's total, else the sum over RWBS.
fn hist(f: &FigureRef, d: &BioData) -> Log2Hist {
    match f.sel("rwbs") {
        Some(r) => d.by_rwbs_us.get(r).cloned().unwrap_or_default(),
        None => match &d.latency_us {
            Some(h) => h.clone(),
            None => {
                let mut all = Log2Hist::default();
                for h in d.by_rwbs_us.values() {
                    all.merge(h);
                }
                all
            }
        },
    }
}

fn quantile(f: &FigureRef, p: &PhaseEvidence, q: f64) -> Fig {
    hist(f, data(p)?)
        .quantile(q)
        .map(|v| v as f64)
        .ok_or_else(|| match f.sel("rwbs") {
            Some(r) => format!("no block-IO request with RWBS {r} in this phase"),
            None => "no block-IO request in this phase".into(),
        })
}

fn bytes(f: &FigureRef, p: &PhaseEvidence, _: &super::entry::Ctx) -> Fig {
    let d = data(p)?;
    Ok(match f.sel("rwbs") {
        Some(r) => d.bytes_by_rwbs.get(r).copied().unwrap_or(0),
        None => d.bytes_by_rwbs.values().sum(),
    } as f64)
}

/// Bytes of requests whose RWBS has a `W` (W, WS, FWS, WM...), in MiB per second.
fn write_mib_per_s(_: &FigureRef, p: &PhaseEvidence, _: &super::entry::Ctx) -> Fig {
    let d = data(p)?;
    let b: u64 = d
        .bytes_by_rwbs
        .iter()
        .filter(|(k, _)| k.contains('W'))
        .map(|(_, v)| v)
        .sum();
    per_s(b as f64 / (1024.0 * 1024.0), d.window_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::{eval_in, Ctx};

    fn eval_name(name: &str, p: &PhaseEvidence) -> Fig {
        eval_in(&[&FAMILY], name, p, &Ctx::default())
    }

    /// Known answer: 3 `W` requests in [8, 16) us and 1 `R` in [64, 128) us;
    /// 2 MiB written over a 2 s window.
    #[test]
    fn counts_bytes_and_percentiles_of_known_requests() {
        use crate::report::hist::Bucket;
        let mut d = BioData {
            window_s: Some(2.0),
            ..Default::default()
        };
        let h = |lo, hi, count| Log2Hist::from_buckets([Bucket { lo, hi, count }]);
        d.by_rwbs_us.insert("W".into(), h(8, 16, 3));
        d.by_rwbs_us.insert("R".into(), h(64, 128, 1));
        d.bytes_by_rwbs.insert("W".into(), 2 * 1024 * 1024);
        d.bytes_by_rwbs.insert("R".into(), 4096);
        let p = PhaseEvidence {
            bio: Some(d),
            ..Default::default()
        };
        let f = |n: &str| eval_name(n, &p).unwrap();
        assert_eq!(f("bio.count"), 4.0);
        assert_eq!(f("bio.count{rwbs=W}"), 3.0);
        assert_eq!(f("bio.p50_us{rwbs=W}"), 16.0);
        assert_eq!(f("bio.max_us"), 128.0);
        assert_eq!(f("bio.bytes{rwbs=R}"), 4096.0);
        assert_eq!(f("bio.write_mib_per_s"), 1.0);
        let e = eval_name("bio.p99_us{rwbs=FWS}", &p).unwrap_err();
        assert!(e.contains("no block-IO request with RWBS FWS"), "{e}");
    }
}
