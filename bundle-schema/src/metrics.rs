//! `metrics/series.jsonl`: one line per scrape of the node's `/metrics`
//! during a phase, written by `lab` (the spine) and read by the report.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `metrics/series.jsonl` line. The spine writes
/// `{"t_ns", "phase", "samples"}` for a scrape and `{"t_ns", "phase", "error"}`
/// for a failed one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricsLine {
    /// When the scrape started, the spine's CLOCK_MONOTONIC ns.
    pub t_ns: u64,
    /// The phase the scrape belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The exposition parsed by [`crate::prom::parse`]: series key -> value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<BTreeMap<String, f64>>,
    /// Why the scrape failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exposition as text. Written by no producer: the report's fixture
    /// bundles (`lab/tests/data/report/*`) store their scrapes this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prom: Option<String>,
}

impl MetricsLine {
    /// Every sample of the line: `samples` and the parsed `prom` text.
    pub fn all_samples(&self) -> BTreeMap<String, f64> {
        let mut out = self.samples.clone().unwrap_or_default();
        if let Some(p) = &self.prom {
            out.extend(crate::prom::parse(p));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_a_scrape_and_of_a_failed_one() {
        let ok = MetricsLine {
            t_ns: 3,
            phase: Some("stress".into()),
            samples: Some(crate::prom::parse("x{cf=\"a}\"} 2\n")),
            ..Default::default()
        };
        let failed = MetricsLine {
            t_ns: 4,
            phase: Some("stress".into()),
            error: Some("connection refused".into()),
            ..Default::default()
        };
        for l in [ok, failed] {
            let text = serde_json::to_string(&l).unwrap();
            assert!(!text.contains("null"), "{text}");
            assert_eq!(serde_json::from_str::<MetricsLine>(&text).unwrap(), l);
        }
    }
}
