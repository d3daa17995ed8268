//! A run's key figures as data (issue 15): `figures.json` (versioned, with
//! a JSON Schema under `docs/schema/`) and `figures.om` (OpenMetrics), both
//! written by [`super::render_bundle`] into every single-run bundle, next to
//! `verdicts.json`.
//!
//! The key figures of a phase are those `diff` compares
//! ([`super::diff::DIFF_FIGURES`]) and each workload's load statistics
//! ([`super::diff::LOAD_STATS`]): [`key_figures`]. `run --repeat` builds its
//! statistics from the same list ([`series`]), so a repeated run's
//! `summary/summary.json` and its repetitions' `figures.json` name the same
//! figures. A figure that cannot be evaluated in a phase is listed under
//! `not_evaluated` with the reason: it is not a value, and it is not dropped
//! without a word.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::evidence::{Bundle, PhaseEvidence};
use super::figures::{eval_name, parse_figure, Ctx};
use crate::stats::{Direction, Sample, Series};

/// `figures.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FiguresFile {
    pub schema_version: u32,
    pub scenario: String,
    pub seed: Option<u64>,
    /// Whether the target was emulated (QEMU TCG): compare shares and
    /// counts, not times.
    pub emulated: Option<bool>,
    /// Every key figure that could be evaluated, by phase, in the phases'
    /// order, then by name.
    pub figures: Vec<FigureValue>,
    /// Key figures that could not be evaluated, with the reason.
    pub not_evaluated: Vec<NotEvaluated>,
}

/// One figure's value in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FigureValue {
    pub phase: String,
    /// As in docs/FIGURES.md, with its selectors.
    pub figure: String,
    pub unit: String,
    /// Which way is better (the regression gate's direction).
    pub good: Direction,
    /// Always finite.
    pub value: f64,
}

/// A key figure without a value in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotEvaluated {
    pub phase: String,
    pub figure: String,
    pub reason: String,
}

/// The key figures of a phase: those `diff` compares, and each workload's
/// load statistics.
pub fn key_figures(p: &PhaseEvidence) -> Vec<String> {
    let mut names: Vec<String> = super::diff::DIFF_FIGURES
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in p.load.iter().flat_map(|l| l.keys()) {
        for s in super::diff::LOAD_STATS {
            names.push(format!("load.{w}.{s}"));
        }
    }
    names
}

/// Evaluates every key figure of every phase of `b`.
pub fn figures_of(b: &Bundle) -> FiguresFile {
    let ctx = Ctx {
        emulated: b.emulated,
    };
    let mut figures = Vec::new();
    let mut not_evaluated = Vec::new();
    for p in &b.phases {
        for name in key_figures(p) {
            let (unit, good) = parse_figure(&name)
                .map(|f| (f.unit.to_string(), f.good))
                .unwrap_or_else(|_| (String::new(), Direction::None));
            match eval_name(&name, p, &ctx) {
                Ok(v) if v.is_finite() => figures.push(FigureValue {
                    phase: p.name.clone(),
                    figure: name,
                    unit,
                    good,
                    value: v,
                }),
                Ok(v) => not_evaluated.push(NotEvaluated {
                    phase: p.name.clone(),
                    figure: name,
                    reason: format!("the value is not finite ({v})"),
                }),
                Err(reason) => not_evaluated.push(NotEvaluated {
                    phase: p.name.clone(),
                    figure: name,
                    reason,
                }),
            }
        }
    }
    FiguresFile {
        schema_version: crate::schema::SCHEMA_VERSION,
        scenario: b.scenario.name.clone(),
        seed: b.scenario.seed,
        emulated: b.emulated,
        figures,
        not_evaluated,
    }
}

/// Per phase and figure, one series over the repetitions (numbered as
/// given); a repetition without a value adds no sample to that figure.
pub fn series<'a>(reps: impl IntoIterator<Item = (u32, &'a FiguresFile)>) -> Vec<Series> {
    let mut out: BTreeMap<(String, String), Series> = BTreeMap::new();
    for (k, f) in reps {
        for v in &f.figures {
            out.entry((v.phase.clone(), v.figure.clone()))
                .or_insert_with(|| Series {
                    name: v.figure.clone(),
                    phase: Some(v.phase.clone()),
                    unit: v.unit.clone(),
                    good: v.good,
                    samples: Vec::new(),
                })
                .samples
                .push(Sample {
                    repetition: k,
                    value: v.value,
                });
        }
    }
    out.into_values().collect()
}

/// `figures.om`: the figures of one run as OpenMetrics (repetition 1, no
/// statistics family: one run has no spread).
pub fn openmetrics(f: &FiguresFile) -> String {
    crate::stats::openmetrics::write_samples(&f.scenario, &series([(1, f)]))
}
