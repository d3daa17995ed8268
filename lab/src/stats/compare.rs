//! Two-sample comparison of figures (a noise-aware diff): the change of the
//! median with the interval of the shift, the exact rank test, Cliff's delta,
//! the Benjamini-Hochberg correction across all figures compared at once, and
//! the verdict sentence ("significant (p = 0.008, n = 5 vs 5)", "within
//! noise", or "no noise estimate" for single runs).

use serde::{Deserialize, Serialize};

use super::multiple::benjamini_hochberg;
use super::rank::{
    cliffs_delta, mann_whitney, median, n_needed, shift, smallest_p, RankTest, Shift,
};
use super::summary::num;
use super::{fmt_p, Direction, Series, Settings, StatsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Significant,
    WithinNoise,
    /// A side has one repetition: no noise estimate, never significant.
    NoNoiseEstimate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    pub figure: String,
    pub phase: Option<String>,
    pub unit: String,
    pub good: Direction,
    pub n_a: usize,
    pub n_b: usize,
    pub median_a: f64,
    pub median_b: f64,
    /// `median_b - median_a`.
    pub change: f64,
    /// `change / |median_a|`; `None` when median A is 0.
    pub change_rel: Option<f64>,
    /// Hodges-Lehmann shift and its interval (two repetitions a side at least).
    pub shift: Option<Shift>,
    pub test: Option<RankTest>,
    /// Benjamini-Hochberg adjusted p over the figures tested together.
    pub p_adjusted: Option<f64>,
    /// How many figures were tested together (the correction's m).
    pub tested: usize,
    pub cliffs_delta: Option<f64>,
    pub outcome: Outcome,
    pub sentence: String,
}

/// Compares each pair (A, B) of one figure; the correction runs over every
/// pair with a noise estimate. Errors name the figure with bad values.
pub fn compare_all(
    pairs: &[(Series, Series)],
    settings: &Settings,
) -> Result<Vec<Comparison>, StatsError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (a, b) in pairs {
        let va = a.checked_values()?;
        let vb = b.checked_values()?;
        let (ma, mb) = (median(&va), median(&vb));
        let change = mb - ma;
        let noise = va.len() >= 2 && vb.len() >= 2;
        out.push(Comparison {
            figure: a.name.clone(),
            phase: a.phase.clone(),
            unit: a.unit.clone(),
            good: a.good,
            n_a: va.len(),
            n_b: vb.len(),
            median_a: ma,
            median_b: mb,
            change,
            change_rel: (ma != 0.0).then(|| change / ma.abs()),
            shift: noise.then(|| shift(&va, &vb, settings.confidence)),
            test: noise.then(|| mann_whitney(&va, &vb)),
            p_adjusted: None,
            tested: 0,
            cliffs_delta: noise.then(|| cliffs_delta(&va, &vb)),
            outcome: Outcome::NoNoiseEstimate,
            sentence: String::new(),
        });
    }
    let tested: Vec<usize> = (0..out.len()).filter(|&i| out[i].test.is_some()).collect();
    let raw: Vec<f64> = tested
        .iter()
        .filter_map(|&i| out[i].test.map(|t| t.p))
        .collect();
    let adj = benjamini_hochberg(&raw);
    let m = tested.len();
    for (k, &i) in tested.iter().enumerate() {
        let c = &mut out[i];
        c.p_adjusted = Some(adj[k]);
        c.tested = m;
        c.outcome = if adj[k] <= settings.alpha {
            Outcome::Significant
        } else {
            Outcome::WithinNoise
        };
    }
    for c in &mut out {
        c.sentence = sentence(c, settings.alpha);
    }
    Ok(out)
}

/// One figure alone (no correction: m = 1).
pub fn compare(a: &Series, b: &Series, settings: &Settings) -> Result<Comparison, StatsError> {
    let mut v = compare_all(&[(a.clone(), b.clone())], settings)?;
    Ok(v.remove(0))
}

fn sentence(c: &Comparison, alpha: f64) -> String {
    let name = match &c.phase {
        Some(p) => format!("{} in phase {p}", c.figure),
        None => c.figure.clone(),
    };
    let rel = match c.change_rel {
        Some(r) => format!(" ({:+.1}%)", r * 100.0),
        None => String::new(),
    };
    let head = format!(
        "{name}: median {} -> {} {}, change {}{rel}",
        num(c.median_a),
        num(c.median_b),
        c.unit,
        signed(c.change)
    );
    let (Some(t), Some(adj), Some(s)) = (c.test, c.p_adjusted, c.shift) else {
        return format!(
            "{head}; no noise estimate (n = {} vs {}): one run cannot tell an effect from noise, run both sides with --repeat 5",
            c.n_a, c.n_b
        );
    };
    let ns = format!("n = {} vs {}", c.n_a, c.n_b);
    let interval = format!(
        ", shift {} [{}, {}] ({:.1}% CI), Cliff's delta {:+.2}",
        signed(s.estimate),
        signed(s.lo),
        signed(s.hi),
        s.confidence * 100.0,
        c.cliffs_delta.unwrap_or(0.0)
    );
    let corrected = if c.tested > 1 {
        format!(
            "; Benjamini-Hochberg adjusted over {} figures: {}",
            c.tested,
            fmt_p(adj)
        )
    } else {
        String::new()
    };
    match c.outcome {
        Outcome::Significant => {
            format!(
                "{head}{interval}; significant ({}, {ns}){corrected}",
                fmt_p(t.p)
            )
        }
        _ => {
            let floor = smallest_p(c.n_a, c.n_b);
            let need = if floor > alpha {
                format!(
                    "; the smallest p at {} vs {} is {:.2}, above alpha = {alpha}: this needs at least {n} vs {n} repetitions",
                    c.n_a,
                    c.n_b,
                    floor,
                    n = n_needed(alpha)
                )
            } else if c.tested > 1 && floor > alpha / c.tested as f64 {
                format!(
                    "; a lone change among {} figures needs p <= {:.4}: at least {n} vs {n} repetitions",
                    c.tested,
                    alpha / c.tested as f64,
                    n = n_needed(alpha / c.tested as f64)
                )
            } else {
                String::new()
            };
            format!(
                "{head}{interval}; within noise ({}, {ns}){corrected}{need}",
                fmt_p(t.p)
            )
        }
    }
}

fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", num(x))
    } else {
        num(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[f64]) -> Series {
        Series::new("fsync.per_block", "1", Direction::Lower, v)
    }

    #[test]
    fn separated_five_vs_five_reads_as_the_issue_says() {
        let c = compare(&s(&[0.0; 5]), &s(&[1.0; 5]), &Settings::default()).unwrap();
        assert_eq!(c.outcome, Outcome::Significant);
        assert!(
            c.sentence.contains("significant (p = 0.008, n = 5 vs 5)"),
            "{}",
            c.sentence
        );
        assert_eq!(c.change_rel, None);
    }

    #[test]
    fn three_vs_three_says_which_n_it_needs() {
        let c = compare(
            &s(&[1.0, 2.0, 3.0]),
            &s(&[7.0, 8.0, 9.0]),
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(c.outcome, Outcome::WithinNoise);
        assert!(
            c.sentence.contains("smallest p at 3 vs 3 is 0.10")
                && c.sentence.contains("at least 4 vs 4"),
            "{}",
            c.sentence
        );
    }

    #[test]
    fn single_runs_carry_no_noise_estimate_and_are_never_significant() {
        for (a, b) in [(vec![1.0], vec![100.0]), (vec![1.0, 1.1, 0.9], vec![100.0])] {
            let c = compare(&s(&a), &s(&b), &Settings::default()).unwrap();
            assert_eq!(c.outcome, Outcome::NoNoiseEstimate);
            assert!(c.sentence.contains("no noise estimate"), "{}", c.sentence);
            assert!(!c.sentence.contains("significant"), "{}", c.sentence);
            assert_eq!(c.p_adjusted, None);
        }
    }

    #[test]
    fn correction_counts_only_tested_figures() {
        let pairs = vec![(s(&[0.0; 5]), s(&[1.0; 5])), (s(&[1.0]), s(&[2.0]))];
        let v = compare_all(&pairs, &Settings::default()).unwrap();
        assert_eq!(v[0].tested, 1);
        assert_eq!(v[0].outcome, Outcome::Significant);
        assert_eq!(v[1].outcome, Outcome::NoNoiseEstimate);
    }

    #[test]
    fn bad_values_name_the_figure() {
        let e = compare(
            &s(&[1.0, f64::INFINITY]),
            &s(&[1.0, 2.0]),
            &Settings::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("fsync.per_block"), "{e}");
    }
}
