//! OpenMetrics text of a bundle's figures, for Prometheus and Grafana users:
//! the gauge family `qfc_lab_figure` (one sample per figure, phase and
//! repetition) and `qfc_lab_figure_summary` (median, CI bounds, min, max,
//! CV per figure and phase). Labels: scenario, phase (`whole-run` for
//! figures of the whole run), repetition, figure, unit, stat. A repeated
//! run's `summary/figures.om` has both families ([`write`]); a single run's
//! `figures.om` has the first only, as repetition 1 ([`write_samples`]).

use std::collections::BTreeSet;

use super::summary::{summarize, Summary};
use super::{Series, Settings, StatsError};

/// The `phase` label of a whole-run figure.
pub const WHOLE_RUN: &str = "whole-run";

/// Label value escaping (OpenMetrics: backslash, double quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Sample value: finite numbers as Rust prints them (no exponent),
/// infinities and NaN spelled as OpenMetrics does.
fn val(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "+Inf".into()
    } else if x == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{x:?}")
    }
}

/// The `qfc_lab_figure` family: one sample per figure, phase and repetition.
fn sample_family(sc: &str, series: &[Series]) -> String {
    let mut o = String::new();
    o.push_str("# TYPE qfc_lab_figure gauge\n");
    o.push_str("# HELP qfc_lab_figure A qfc-lab figure (docs/FIGURES.md) in one repetition of a scenario\n");
    for s in series {
        let phase = esc(s.phase.as_deref().unwrap_or(WHOLE_RUN));
        for smp in &s.samples {
            o.push_str(&format!(
                "qfc_lab_figure{{scenario=\"{sc}\",phase=\"{phase}\",repetition=\"{}\",figure=\"{}\",unit=\"{}\"}} {}\n",
                smp.repetition,
                esc(&s.name),
                esc(&s.unit),
                val(smp.value)
            ));
        }
    }
    o
}

/// The exposition of one run's figures (the `qfc_lab_figure` family only:
/// one run has no statistics), ending in `# EOF`. The caller gives each
/// figure and phase once (non-finite values are spelled as OpenMetrics
/// does).
pub fn write_samples(scenario: &str, series: &[Series]) -> String {
    sample_family(&esc(scenario), series) + "# EOF\n"
}

/// The exposition of `series` measured in `scenario`, ending in `# EOF`.
/// Errors on a non-finite value, an empty series, or a figure, phase and
/// repetition given twice.
pub fn write(scenario: &str, series: &[Series], settings: &Settings) -> Result<String, StatsError> {
    let mut seen = BTreeSet::new();
    let mut summaries: Vec<Summary> = Vec::new();
    for s in series {
        let sum = summarize(s, settings)?;
        for smp in &s.samples {
            if !seen.insert((s.name.clone(), s.phase.clone(), smp.repetition)) {
                return Err(StatsError::Duplicate {
                    figure: s.name.clone(),
                    phase: s.phase.clone(),
                    repetition: Some(smp.repetition),
                });
            }
        }
        summaries.push(sum);
    }
    let sc = esc(scenario);
    let mut o = sample_family(&sc, series);
    o.push_str("# TYPE qfc_lab_figure_summary gauge\n");
    o.push_str("# HELP qfc_lab_figure_summary Statistics of a figure over the repetitions (docs/STATISTICS.md)\n");
    for s in &summaries {
        let phase = esc(s.phase.as_deref().unwrap_or(WHOLE_RUN));
        let mut stats = vec![("median", s.median), ("min", s.min), ("max", s.max)];
        if let Some(iv) = s.ci {
            stats.push(("ci_low", iv.lo));
            stats.push(("ci_high", iv.hi));
        }
        if let Some(cv) = s.variation.cv() {
            stats.push(("cv", cv));
        }
        for (stat, x) in stats {
            o.push_str(&format!(
                "qfc_lab_figure_summary{{scenario=\"{sc}\",phase=\"{phase}\",figure=\"{}\",unit=\"{}\",stat=\"{stat}\"}} {}\n",
                esc(&s.figure),
                esc(&s.unit),
                val(x)
            ));
        }
    }
    o.push_str("# EOF\n");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Direction;

    #[test]
    fn labels_escaped_and_duplicates_refused() {
        let s = Series::new("a{k=\"v\"}", "ms", Direction::Lower, &[1.0, 2.0]);
        let t = write("sc\\1", std::slice::from_ref(&s), &Settings::default()).unwrap();
        assert!(t.contains(r#"figure="a{k=\"v\"}""#), "{t}");
        assert!(t.contains(r#"scenario="sc\\1""#), "{t}");
        assert!(t.ends_with("# EOF\n"));
        let e = write("sc", &[s.clone(), s], &Settings::default()).unwrap_err();
        assert!(matches!(e, StatsError::Duplicate { .. }), "{e}");
    }

    #[test]
    fn values_print_without_exponent_loss() {
        assert_eq!(val(1e-7), "1e-7");
        assert_eq!(val(0.5), "0.5");
        assert_eq!(val(3.0), "3.0");
    }
}
