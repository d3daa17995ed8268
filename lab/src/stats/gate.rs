//! The regression gate: a figure's good direction and a threshold decide
//! whether a comparison is a regression. A regression is a significant
//! change (after the correction) in the figure's bad direction whose change
//! of the median is past the threshold; figures without a direction and
//! comparisons without a noise estimate are never regressions.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::compare::{Comparison, Outcome};
use super::summary::num;
use super::{Direction, StatsError};

/// How far the median may move in the bad direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Threshold {
    /// Fraction of median A (`10%` is 0.10). From a median of 0 any change
    /// is past it.
    Relative(f64),
    /// In the figure's unit.
    Absolute(f64),
}

impl FromStr for Threshold {
    type Err = StatsError;
    fn from_str(t: &str) -> Result<Self, StatsError> {
        let err = |why: &str| StatsError::Threshold {
            entry: t.to_string(),
            why: why.to_string(),
        };
        let t2 = t.trim();
        let (num, rel) = match t2.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t2, false),
        };
        let x: f64 = num
            .parse()
            .map_err(|_| err("not a number (optionally followed by %)"))?;
        if !x.is_finite() || x < 0.0 {
            return Err(err("must be a finite number >= 0"));
        }
        Ok(if rel {
            Threshold::Relative(x / 100.0)
        } else {
            Threshold::Absolute(x)
        })
    }
}

/// `--fail-on-regression` thresholds: `FIGURE=T` entries and at most one
/// bare default `T`, comma separated (`10%,fsync.per_block=0.5`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Thresholds {
    pub default: Option<Threshold>,
    pub per_figure: Vec<(String, Threshold)>,
}

impl Thresholds {
    pub fn parse(spec: &str) -> Result<Thresholds, StatsError> {
        let mut t = Thresholds::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = |why: &str| StatsError::Threshold {
                entry: entry.to_string(),
                why: why.to_string(),
            };
            // the figure name may contain '=' inside {labels}: split at the last one
            match entry.rsplit_once('=') {
                Some((fig, th)) if !fig.trim().is_empty() => {
                    let fig = fig.trim().to_string();
                    if t.per_figure.iter().any(|(f, _)| *f == fig) {
                        return Err(err("this figure has two thresholds"));
                    }
                    // the error names the whole entry, figure included
                    let th = th.parse().map_err(|e| match e {
                        StatsError::Threshold { why, .. } => err(&why),
                        other => other,
                    })?;
                    t.per_figure.push((fig, th));
                }
                Some(_) => return Err(err("the figure name before '=' is empty")),
                None => {
                    if t.default.is_some() {
                        return Err(err("a second default threshold"));
                    }
                    t.default = Some(entry.parse()?);
                }
            }
        }
        Ok(t)
    }

    /// The figure's own threshold, else the default.
    pub fn for_figure(&self, figure: &str) -> Option<Threshold> {
        self.per_figure
            .iter()
            .find(|(f, _)| f == figure)
            .map(|(_, t)| *t)
            .or(self.default)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateResult {
    pub figure: String,
    pub regression: bool,
    pub reason: String,
}

/// Whether `c` is a regression past `threshold`.
pub fn gate(c: &Comparison, threshold: Threshold) -> GateResult {
    let r = |regression: bool, reason: String| GateResult {
        figure: c.figure.clone(),
        regression,
        reason,
    };
    let bad = match c.good {
        Direction::None => return r(false, "no good direction declared: not gated".into()),
        Direction::Higher => c.change < 0.0,
        Direction::Lower => c.change > 0.0,
    };
    match c.outcome {
        Outcome::NoNoiseEstimate => {
            return r(false, "no noise estimate (single run): cannot gate".into())
        }
        Outcome::WithinNoise => return r(false, "within noise".into()),
        Outcome::Significant => {}
    }
    if !bad {
        return r(false, "significant change in the good direction".into());
    }
    let (past, limit) = match threshold {
        Threshold::Absolute(t) => (c.change.abs() > t, format!("{} {}", num(t), c.unit)),
        Threshold::Relative(f) => (
            match c.change_rel {
                Some(rel) => rel.abs() > f,
                None => c.change != 0.0,
            },
            format!("{:.1}%", f * 100.0),
        ),
    };
    if past {
        r(
            true,
            format!(
                "regression: median moved {} {} in the bad direction, past {limit}",
                num(c.change.abs()),
                c.unit
            ),
        )
    } else {
        r(
            false,
            format!("significant but within the threshold {limit}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::compare::compare;
    use crate::stats::{Series, Settings};

    fn cmp(good: Direction, a: &[f64], b: &[f64]) -> Comparison {
        compare(
            &Series::new("f", "ms", good, a),
            &Series::new("f", "ms", good, b),
            &Settings::default(),
        )
        .unwrap()
    }

    const A: [f64; 5] = [10.0, 10.1, 9.9, 10.2, 9.8];
    const B: [f64; 5] = [12.0, 12.1, 11.9, 12.2, 11.8];

    #[test]
    fn direction_and_threshold_decide() {
        let up = cmp(Direction::Lower, &A, &B); // +20%, significant
        assert!(gate(&up, "10%".parse().unwrap()).regression);
        assert!(!gate(&up, "30%".parse().unwrap()).regression);
        assert!(gate(&up, "1.5".parse().unwrap()).regression);
        assert!(!gate(&up, "2.5".parse().unwrap()).regression);
        let good = cmp(Direction::Higher, &A, &B);
        assert!(!gate(&good, "0%".parse().unwrap()).regression);
        let down = cmp(Direction::Higher, &B, &A);
        assert!(gate(&down, "0%".parse().unwrap()).regression);
        let none = cmp(Direction::None, &A, &B);
        assert!(!gate(&none, "0%".parse().unwrap()).regression);
    }

    #[test]
    fn noise_and_single_runs_never_gate() {
        let same = cmp(Direction::Lower, &A, &[10.0, 10.1, 9.9, 10.2, 9.8]);
        assert!(!gate(&same, "0%".parse().unwrap()).regression);
        let single = cmp(Direction::Lower, &[1.0], &[100.0]);
        let g = gate(&single, "0%".parse().unwrap());
        assert!(!g.regression && g.reason.contains("no noise estimate"));
    }

    #[test]
    fn from_zero_any_rise_is_past_a_relative_threshold() {
        let c = cmp(Direction::Lower, &[0.0; 5], &[1.0; 5]);
        assert!(gate(&c, "50%".parse().unwrap()).regression);
    }

    #[test]
    fn threshold_specs() {
        let t = Thresholds::parse("10%, fsync.per_block=0.5, bio.p99_us{rwbs=W}=25%").unwrap();
        assert_eq!(t.default, Some(Threshold::Relative(0.10)));
        assert_eq!(
            t.for_figure("fsync.per_block"),
            Some(Threshold::Absolute(0.5))
        );
        assert_eq!(
            t.for_figure("bio.p99_us{rwbs=W}"),
            Some(Threshold::Relative(0.25))
        );
        assert_eq!(t.for_figure("other"), Some(Threshold::Relative(0.10)));
        let e = Thresholds::parse("fsync.per_block=abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"fsync.per_block=abc\""), "{e}");
        for bad in ["x=abc", "=5%", "5%,6%", "-1", "f=1,f=2", "NaN"] {
            let e = Thresholds::parse(bad).unwrap_err().to_string();
            assert!(e.contains("threshold"), "{bad}: {e}");
        }
    }
}
