//! The registry of named figures computed from a phase's evidence
//! (`fsync.per_block`, `oncpu.share{area=hashing}`, `load.rpc.p99_ms`, ...).
//!
//! Each figure is one [`Figure`] entry (name, selectors, unit, doc, evaluation
//! function) in the file of its family, with the family's tests beside it;
//! [`FAMILIES`] lists the families in the order docs/FIGURES.md shows them, and
//! that file is generated from them ([`markdown`]). A figure that cannot be
//! computed says why: its value is `Err(reason)`, never a made-up number.

mod bio;
mod capture;
mod doc;
mod entry;
mod fsync;
mod load;
mod offcpu;
mod oncpu;
mod probes;
mod rocksdb;
mod writepath;

pub use entry::{blocks, Ctx, Family, Fig, Figure, FigureError, FigureRef};

use crate::report::evidence::PhaseEvidence;

/// Every family of figures, in the order of docs/FIGURES.md.
pub const FAMILIES: &[&Family] = &[
    &oncpu::FAMILY,
    &offcpu::FAMILY,
    &fsync::FAMILY,
    &writepath::FAMILY,
    &bio::FAMILY,
    &rocksdb::FAMILY,
    &load::FAMILY,
    &capture::FAMILY,
    &probes::FAMILY,
];

/// Every figure of the registry.
pub fn all() -> impl Iterator<Item = &'static Figure> {
    FAMILIES.iter().flat_map(|f| f.figures.iter())
}

/// Parses and checks a figure name against the registry.
pub fn parse_figure(text: &str) -> Result<FigureRef, FigureError> {
    entry::parse_in(FAMILIES, text)
}

/// Evaluates a figure on one phase.
pub fn evaluate(f: &FigureRef, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
    entry::evaluate_in(FAMILIES, f, p, ctx)
}

/// Parses and evaluates in one step (for the report's tables).
pub fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
    entry::eval_in(FAMILIES, name, p, ctx)
}

/// docs/FIGURES.md as the registry says it should be.
pub fn markdown() -> String {
    doc::markdown(FAMILIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_are_checked() {
        let f = parse_figure("bio.p99_us{rwbs=W}").unwrap();
        assert_eq!(f.base, "bio.p99_us");
        assert_eq!(f.selectors["rwbs"], "W");
        assert!(parse_figure("load.rpc.p99_ms").is_ok());
        assert!(parse_figure("oncpu.share_matching:blake3::").is_ok());
        assert!(matches!(
            parse_figure("fsync.per_blok"),
            Err(FigureError::Unknown { hint, .. }) if hint.contains("fsync.per_block")
        ));
        assert!(matches!(
            parse_figure("fsync.count{rwbs=W}"),
            Err(FigureError::BadSelector { .. })
        ));
        assert!(matches!(
            parse_figure("oncpu.share{area=hash}"),
            Err(FigureError::BadValue { .. })
        ));
        assert!(matches!(
            parse_figure("oncpu.share_matching:("),
            Err(FigureError::BadRegex { .. })
        ));
    }

    /// The gate's directions (issue 15): costs are lower-is-better,
    /// throughput higher, counts and shares undirected, and a parsed name
    /// carries its entry's direction.
    #[test]
    fn good_directions() {
        use crate::stats::Direction;
        let good = |n: &str| parse_figure(n).unwrap().good;
        assert_eq!(good("fsync.per_block"), Direction::Lower);
        assert_eq!(good("offcpu.disk_write_stall"), Direction::Lower);
        assert_eq!(good("bio.p99_us{rwbs=W}"), Direction::Lower);
        assert_eq!(good("load.rpc.p99_ms"), Direction::Lower);
        assert_eq!(good("load.rpc.throughput_per_s"), Direction::Higher);
        assert_eq!(good("node.blocks"), Direction::Higher);
        assert_eq!(good("oncpu.share{area=hashing}"), Direction::None);
        assert_eq!(good("fsync.count"), Direction::Lower);
    }

    /// Every entry's name parses back to itself (placeholders filled in), its
    /// selectors are accepted, and no name is registered twice.
    #[test]
    fn every_entry_parses_to_itself() {
        let mut seen = std::collections::BTreeSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "{} is registered twice", f.name);
            let text = f
                .name
                .replace("<workload>", "rpc")
                .replace("<regex>", "blake3");
            let r = parse_figure(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.def, f.name);
            assert_eq!(r.unit, f.unit);
            for s in f.selectors {
                let v = match *s {
                    "area" => "hashing",
                    "role" => "tokio",
                    "reason" => "disk",
                    _ => "x",
                };
                let with = format!("{text}{{{s}={v}}}");
                assert!(parse_figure(&with).is_ok(), "{with}");
            }
        }
    }
}
