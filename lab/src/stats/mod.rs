//! Statistics of repeated runs (issue 15): what the lab can say about a
//! figure measured once per repetition. Pure functions over a narrow input,
//! [`Series`] (a figure's name, unit, good direction and one value per
//! repetition), so `run --repeat`, `diff` and the report wire it in without
//! this module knowing the bundle layout.
//!
//! - [`summary`]: median, its confidence interval ([`interval`]), min, max,
//!   coefficient of variation, the noisy flag and "no variation".
//! - [`rank`]: the exact two-sided rank test (Mann-Whitney, ties by
//!   midranks), the Hodges-Lehmann shift with its interval, Cliff's delta.
//! - [`compare`]: two-sample comparisons of many figures with the
//!   Benjamini-Hochberg correction ([`multiple`]) and their verdict sentences.
//! - [`verdict`]: `[[expect]]` on distributions (`stat = median | all | ci`),
//!   pass, fail or inconclusive.
//! - [`gate`]: regression or not, from a figure's good direction and a threshold.
//! - [`junit`], [`openmetrics`]: writers for CI systems and Prometheus.
//!
//! The methods, and why these, are in docs/STATISTICS.md.

pub mod compare;
pub mod gate;
pub mod interval;
pub mod junit;
pub mod multiple;
pub mod openmetrics;
pub mod rank;
pub mod summary;
pub mod verdict;

use serde::{Deserialize, Serialize};

/// Which way a figure should move (declared per figure; the gate uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, fsyncs per block, stall share).
    Lower,
    /// Neither: reported, never gated.
    None,
}

/// One repetition's value of a figure. Failed repetitions are not samples:
/// the caller leaves them out (and names them elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// 1-based repetition number (`rep-01` is 1).
    pub repetition: u32,
    pub value: f64,
}

/// A figure measured once per repetition: the input of every function here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Series {
    /// Figure name as in docs/FIGURES.md, e.g. `bio.p99_us{rwbs=W}`.
    pub name: String,
    /// `None`: the whole run; else the phase name.
    pub phase: Option<String>,
    pub unit: String,
    pub good: Direction,
    pub samples: Vec<Sample>,
}

impl Series {
    /// A series whose repetitions are numbered 1..=n in order.
    pub fn new(name: &str, unit: &str, good: Direction, values: &[f64]) -> Series {
        Series {
            name: name.to_string(),
            phase: None,
            unit: unit.to_string(),
            good,
            samples: values
                .iter()
                .enumerate()
                .map(|(i, &value)| Sample {
                    repetition: i as u32 + 1,
                    value,
                })
                .collect(),
        }
    }

    pub fn values(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.value).collect()
    }

    /// `bio.p99_us{rwbs=W}` or `bio.p99_us{rwbs=W} in phase load`.
    pub fn label(&self) -> String {
        match &self.phase {
            Some(p) => format!("{} in phase {p}", self.name),
            None => self.name.clone(),
        }
    }

    /// The values, checked: at least one, all finite.
    pub fn checked_values(&self) -> Result<Vec<f64>, StatsError> {
        if let Some(s) = self.samples.iter().find(|s| !s.value.is_finite()) {
            return Err(StatsError::NotFinite {
                figure: self.label(),
                repetition: s.repetition as usize,
                value: s.value,
            });
        }
        let v = self.values();
        check_values(&self.label(), &v)?;
        Ok(v)
    }
}

/// Knobs of the methods; [`Settings::default`] is what the lab uses and
/// what docs/STATISTICS.md documents.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Settings {
    /// Nominal confidence of every interval (0.95).
    pub confidence: f64,
    /// Significance level of the rank test, after the correction (0.05).
    pub alpha: f64,
    /// A figure whose coefficient of variation is above this is noisy (0.10).
    pub noisy_cv: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            confidence: 0.95,
            alpha: 0.05,
            noisy_cv: NOISY_CV,
        }
    }
}

/// The documented noisy threshold: a coefficient of variation above 10%.
pub const NOISY_CV: f64 = 0.10;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("figure {figure}: no values (every repetition failed or the figure is missing); run more repetitions or check the figure name")]
    Empty { figure: String },
    #[error("figure {figure}: repetition {repetition} has the non-finite value {value}; the figure cannot be summarized, check how it is computed")]
    NotFinite {
        figure: String,
        repetition: usize,
        value: f64,
    },
    #[error(
        "threshold {entry:?}: {why}; write FIGURE=10% or FIGURE=0.5, or a bare default such as 10%"
    )]
    Threshold { entry: String, why: String },
    #[error("figure {figure} appears twice in one output (phase {phase:?}, repetition {repetition:?}); each figure, phase and repetition must be unique")]
    Duplicate {
        figure: String,
        phase: Option<String>,
        repetition: Option<u32>,
    },
}

/// At least one value, all finite (`repetition` in the error is 1-based).
pub fn check_values(figure: &str, v: &[f64]) -> Result<(), StatsError> {
    if v.is_empty() {
        return Err(StatsError::Empty {
            figure: figure.to_string(),
        });
    }
    if let Some((i, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(StatsError::NotFinite {
            figure: figure.to_string(),
            repetition: i + 1,
            value,
        });
    }
    Ok(())
}

/// Sorted copy (values are finite: checked before).
pub(crate) fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Median of sorted values (mean of the two middle ones when n is even;
/// NaN for none: callers check for values first, this only never panics).
pub(crate) fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// `p = 0.008`, `p = 0.25`, `p < 0.0001`: the form of every sentence.
pub fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".to_string()
    } else if p < 0.1 {
        format!("p = {p:.3}")
    } else {
        format!("p = {p:.2}")
    }
}
