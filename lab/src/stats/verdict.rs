//! Expectations on distributions: `[[expect]]` with `stat = "median" |
//! "all" | "ci"` judged on a figure's repetitions, giving pass, fail or
//! inconclusive (the interval straddles the bound). Inconclusive is not a
//! pass. A single run is judged on its one value, as before repetitions.

use serde::{Deserialize, Serialize};

use super::interval::median_interval;
use super::summary::num;
use super::{check_values, median_sorted, sorted, Settings, StatsError};
use crate::scenario::CompareOp as Op;

/// Which statistic of the repetitions the bound applies to (the
/// scenario's `stat` key; the type lives in the report's leaf).
pub use crate::report::spec::Stat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DistVerdict {
    pub stat: Stat,
    pub op: Op,
    pub bound: f64,
    pub n: usize,
    pub median: f64,
    /// The interval judged (`stat = "ci"`, two repetitions or more).
    pub interval: Option<(f64, f64)>,
    /// Repetitions (1-based positions) that break the bound (`stat = "all"`).
    pub failing: Vec<usize>,
    pub outcome: Outcome,
    pub detail: String,
}

fn sym(op: Op) -> &'static str {
    match op {
        Op::Ge => ">=",
        Op::Gt => ">",
        Op::Le => "<=",
        Op::Lt => "<",
        Op::Eq => "==",
        Op::Ne => "!=",
    }
}

/// Judges `values` (one per repetition, in order) against `op bound`.
pub fn judge(
    figure: &str,
    values: &[f64],
    stat: Stat,
    op: Op,
    bound: f64,
    settings: &Settings,
) -> Result<DistVerdict, StatsError> {
    check_values(figure, values)?;
    let s = sorted(values);
    let n = s.len();
    let median = median_sorted(&s);
    let holds = |v: f64| op.holds(v, bound);
    let b = format!("bound {} {}", sym(op), num(bound));
    let mut v = DistVerdict {
        stat,
        op,
        bound,
        n,
        median,
        interval: None,
        failing: Vec::new(),
        outcome: Outcome::Fail,
        detail: String::new(),
    };
    if n == 1 {
        v.outcome = pass_fail(holds(median));
        v.detail = format!("one run: {} ({b})", num(median));
        return Ok(v);
    }
    match stat {
        Stat::Median => {
            v.outcome = pass_fail(holds(median));
            v.detail = format!("median {} of {n} runs ({b})", num(median));
        }
        Stat::All => {
            v.failing = (1..=n).filter(|&i| !holds(values[i - 1])).collect();
            v.outcome = pass_fail(v.failing.is_empty());
            v.detail = if v.failing.is_empty() {
                format!("all {n} runs hold, {}..{} ({b})", num(s[0]), num(s[n - 1]))
            } else {
                format!(
                    "runs {:?} of {n} break it, {}..{} ({b})",
                    v.failing,
                    num(s[0]),
                    num(s[n - 1])
                )
            };
        }
        Stat::Ci => {
            let iv = median_interval(&s, settings.confidence).ok_or_else(|| StatsError::Empty {
                figure: figure.to_string(),
            })?;
            v.interval = Some((iv.lo, iv.hi));
            v.outcome = interval_outcome(op, bound, iv.lo, iv.hi);
            v.detail = format!(
                "median {} [{}, {}] ({:.1}% CI, n = {n}) ({b}){}",
                num(median),
                num(iv.lo),
                num(iv.hi),
                iv.confidence * 100.0,
                if v.outcome == Outcome::Inconclusive {
                    ": the interval straddles the bound, run more repetitions"
                } else {
                    ""
                }
            );
        }
    }
    Ok(v)
}

fn pass_fail(ok: bool) -> Outcome {
    if ok {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}

/// Pass if `op bound` holds on all of `[lo, hi]`, fail if on none of it.
pub fn interval_outcome(op: Op, bound: f64, lo: f64, hi: f64) -> Outcome {
    let (l, h) = (op.holds(lo, bound), op.holds(hi, bound));
    match op {
        Op::Ge | Op::Gt | Op::Le | Op::Lt => match (l, h) {
            (true, true) => Outcome::Pass,
            (false, false) => Outcome::Fail,
            _ => Outcome::Inconclusive,
        },
        // == holds on all of it only when it is the point `bound`
        Op::Eq => {
            if l && h {
                Outcome::Pass
            } else if bound < lo || bound > hi {
                Outcome::Fail
            } else {
                Outcome::Inconclusive
            }
        }
        Op::Ne => {
            if !l && !h {
                Outcome::Fail
            } else if bound < lo || bound > hi {
                Outcome::Pass
            } else {
                Outcome::Inconclusive
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(v: &[f64], stat: Stat, op: Op, bound: f64) -> DistVerdict {
        judge("f", v, stat, op, bound, &Settings::default()).unwrap()
    }

    #[test]
    fn median_all_ci_on_one_series() {
        let v = [10.0, 11.0, 12.0, 13.0, 30.0];
        assert_eq!(j(&v, Stat::Median, Op::Le, 12.0).outcome, Outcome::Pass);
        let all = j(&v, Stat::All, Op::Le, 12.0);
        assert_eq!(all.outcome, Outcome::Fail);
        assert_eq!(all.failing, vec![4, 5]);
        // n = 5: interval [10, 30] straddles 12
        let ci = j(&v, Stat::Ci, Op::Le, 12.0);
        assert_eq!(ci.outcome, Outcome::Inconclusive);
        assert_eq!(ci.interval, Some((10.0, 30.0)));
        assert!(ci.detail.contains("straddles"));
        assert_eq!(j(&v, Stat::Ci, Op::Le, 30.0).outcome, Outcome::Pass);
        assert_eq!(j(&v, Stat::Ci, Op::Lt, 10.0).outcome, Outcome::Fail);
        assert_eq!(j(&v, Stat::Ci, Op::Gt, 9.0).outcome, Outcome::Pass);
    }

    #[test]
    fn single_run_keeps_value_against_bound() {
        for stat in [Stat::Median, Stat::All, Stat::Ci] {
            assert_eq!(j(&[5.0], stat, Op::Ge, 1.0).outcome, Outcome::Pass);
            assert_eq!(j(&[0.0], stat, Op::Ge, 1.0).outcome, Outcome::Fail);
        }
    }

    #[test]
    fn equality_operators_on_intervals() {
        assert_eq!(interval_outcome(Op::Eq, 0.0, 0.0, 0.0), Outcome::Pass);
        assert_eq!(interval_outcome(Op::Eq, 0.0, 1.0, 2.0), Outcome::Fail);
        assert_eq!(
            interval_outcome(Op::Eq, 1.5, 1.0, 2.0),
            Outcome::Inconclusive
        );
        assert_eq!(interval_outcome(Op::Ne, 0.0, 1.0, 2.0), Outcome::Pass);
        assert_eq!(interval_outcome(Op::Ne, 1.0, 1.0, 1.0), Outcome::Fail);
        assert_eq!(
            interval_outcome(Op::Ne, 1.5, 1.0, 2.0),
            Outcome::Inconclusive
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(judge("f", &[], Stat::Ci, Op::Ge, 1.0, &Settings::default()).is_err());
        assert!(judge(
            "f",
            &[f64::NAN],
            Stat::All,
            Op::Ge,
            1.0,
            &Settings::default()
        )
        .is_err());
    }
}
