//! Per-figure statistics of repeated runs: median with its confidence
//! interval, min, max, coefficient of variation, and whether the figure is
//! noisy, has no variation, or was measured once.

use serde::{Deserialize, Serialize};

use super::interval::{median_interval, Interval};
use super::{median_sorted, sorted, Series, Settings, StatsError};

/// How much a figure moves between repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Variation {
    /// One repetition: no noise estimate.
    SingleRun,
    /// Every repetition gave the same value (e.g. 0 fsyncs per block):
    /// coefficient of variation 0 by definition, never a division.
    NoVariation,
    /// Coefficient of variation `sd / |mean|` (sample sd, n - 1).
    Cv { cv: f64, noisy: bool },
    /// The values vary around a mean of 0 (|mean| <= 1e-9 of the largest
    /// |value|): the coefficient of variation is undefined, and the figure
    /// is flagged noisy since its spread dwarfs its level.
    ZeroMean { sd: f64 },
}

impl Variation {
    pub fn noisy(&self) -> bool {
        match self {
            Variation::Cv { noisy, .. } => *noisy,
            Variation::ZeroMean { .. } => true,
            Variation::SingleRun | Variation::NoVariation => false,
        }
    }

    /// The coefficient of variation where it is defined (0 for no variation).
    pub fn cv(&self) -> Option<f64> {
        match self {
            Variation::Cv { cv, .. } => Some(*cv),
            Variation::NoVariation => Some(0.0),
            Variation::SingleRun | Variation::ZeroMean { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub figure: String,
    pub phase: Option<String>,
    pub unit: String,
    pub n: usize,
    pub median: f64,
    /// `None` with one repetition.
    pub ci: Option<Interval>,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub variation: Variation,
}

/// Statistics of one figure; an error for no values or a non-finite one.
pub fn summarize(series: &Series, settings: &Settings) -> Result<Summary, StatsError> {
    let v = series.checked_values()?;
    let s = sorted(&v);
    let n = s.len();
    // computed on values scaled by the largest |value|, so that figures near
    // f64::MAX neither overflow the sum nor the squares
    let scale = s[0].abs().max(s[n - 1].abs());
    let scaled: Vec<f64> = if scale > 0.0 {
        s.iter().map(|x| x / scale).collect()
    } else {
        s.clone()
    };
    let mean_scaled = scaled.iter().sum::<f64>() / n as f64;
    let mean = if scale > 0.0 {
        mean_scaled * scale
    } else {
        0.0
    };
    let (min, max) = (s[0], s[n - 1]);
    let variation = variation(&scaled, mean_scaled, scale, settings.noisy_cv);
    Ok(Summary {
        figure: series.name.clone(),
        phase: series.phase.clone(),
        unit: series.unit.clone(),
        n,
        median: median_sorted(&s),
        ci: median_interval(&s, settings.confidence),
        min,
        max,
        mean,
        variation,
    })
}

/// `s`: sorted values divided by `scale` (their largest |value|), `mean`
/// their mean.
fn variation(s: &[f64], mean: f64, scale: f64, noisy_cv: f64) -> Variation {
    let n = s.len();
    if n == 1 {
        return Variation::SingleRun;
    }
    if s[0] == s[n - 1] {
        return Variation::NoVariation;
    }
    let sd = (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    if mean.abs() <= 1e-9 {
        return Variation::ZeroMean { sd: sd * scale };
    }
    let cv = sd / mean.abs();
    Variation::Cv {
        cv,
        noisy: cv > noisy_cv,
    }
}

impl Summary {
    /// `fsync.per_block: median 1.00 [1.00, 1.00] (n = 5), no variation`.
    pub fn sentence(&self) -> String {
        let name = match &self.phase {
            Some(p) => format!("{} in phase {p}", self.figure),
            None => self.figure.clone(),
        };
        let ci = match &self.ci {
            Some(iv) => format!(
                " [{}, {}] ({:.1}% CI)",
                num(iv.lo),
                num(iv.hi),
                iv.confidence * 100.0
            ),
            None => String::new(),
        };
        let var = match self.variation {
            Variation::SingleRun => "one run, no noise estimate".to_string(),
            Variation::NoVariation => "no variation".to_string(),
            Variation::Cv { cv, noisy } => format!(
                "CV {:.1}%{}",
                cv * 100.0,
                if noisy { ", noisy" } else { "" }
            ),
            Variation::ZeroMean { .. } => "mean 0, CV undefined, noisy".to_string(),
        };
        format!(
            "{name}: median {} {}{ci}, min {}, max {} (n = {}), {var}",
            num(self.median),
            self.unit,
            num(self.min),
            num(self.max),
            self.n
        )
    }
}

/// Short numbers for sentences: 4 significant digits, trailing zeros dropped.
pub(crate) fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{}", if x == 0.0 { 0.0 } else { x });
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Direction;

    fn sum(v: &[f64]) -> Summary {
        summarize(
            &Series::new("f", "ms", Direction::Lower, v),
            &Settings::default(),
        )
        .unwrap()
    }

    #[test]
    fn known_answer_five_values() {
        let s = sum(&[10.0, 12.0, 11.0, 9.0, 13.0]);
        assert_eq!(s.median, 11.0);
        assert_eq!((s.min, s.max, s.n), (9.0, 13.0, 5));
        let ci = s.ci.unwrap();
        assert_eq!((ci.lo, ci.hi), (9.0, 13.0));
        // sd = sqrt(10/4) = 1.5811, mean 11
        let Variation::Cv { cv, noisy } = s.variation else {
            panic!("{s:?}")
        };
        assert!((cv - 2.5f64.sqrt() / 11.0).abs() < 1e-12);
        assert!(noisy, "CV 14% is above 10%");
    }

    #[test]
    fn equal_values_are_no_variation_even_at_zero() {
        for v in [0.0, 3.0] {
            let s = sum(&[v; 5]);
            assert_eq!(s.variation, Variation::NoVariation);
            assert_eq!(s.variation.cv(), Some(0.0));
            assert!(!s.variation.noisy());
        }
    }

    #[test]
    fn zero_mean_is_defined_and_noisy() {
        let s = sum(&[-1.0, 1.0, -2.0, 2.0]);
        assert!(matches!(s.variation, Variation::ZeroMean { .. }));
        assert!(s.variation.noisy());
        assert_eq!(s.variation.cv(), None);
    }

    #[test]
    fn numbers_in_sentences() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(2.3), "2.3");
        assert_eq!(num(204.04), "204");
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(123456.0), "123456");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn one_value_is_a_single_run() {
        let s = sum(&[4.0]);
        assert_eq!(s.variation, Variation::SingleRun);
        assert_eq!(s.ci, None);
        assert!(s.sentence().contains("no noise estimate"));
    }

    #[test]
    fn bad_values_are_errors_naming_the_repetition() {
        let e = summarize(
            &Series::new("f", "ms", Direction::Lower, &[1.0, f64::NAN]),
            &Settings::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("repetition 2"), "{e}");
        let e = summarize(
            &Series::new("f", "ms", Direction::Lower, &[]),
            &Settings::default(),
        )
        .unwrap_err();
        assert!(matches!(e, StatsError::Empty { .. }));
    }
}
