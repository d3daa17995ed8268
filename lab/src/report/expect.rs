//! Scenario expectations (`[[expect]]`) and their verdicts: pass, fail, or cannot-evaluate
//! with the reason. `verdicts.json` is written from [`Verdicts`].
//!
//! It decides: an expectation with `phase` is judged on that phase alone, one without
//! on the whole run ([`merge_phases`], computed once); a name the registry refuses, a
//! missing phase, a figure that cannot be computed or a non-finite value is
//! "cannot evaluate" with the reason, never pass or fail; the comparison itself is
//! [`Op::holds`] (a relative tolerance of 1e-9 at the bound).

use serde::{Deserialize, Serialize};

use super::evidence::{merge_phases, Bundle};
use super::figures::{evaluate, parse_figure, Ctx};

/// The scenario's comparison, under the name the verdicts use.
pub use super::spec::CompareOp as Op;
pub use super::spec::ExpectSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    CannotEvaluate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verdict {
    pub figure: String,
    /// `null`: the whole run.
    pub phase: Option<String>,
    pub op: Op,
    pub bound: f64,
    pub value: Option<f64>,
    pub unit: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Verdict {
    /// One line: `FAIL fsync.per_block in stress: 0 (bound >= 1)`.
    pub fn sentence(&self) -> String {
        let scope = scope(self.phase.as_deref());
        match self.status {
            Status::Pass | Status::Fail => format!(
                "{} {} {scope}: {} (bound {} {})",
                if self.status == Status::Pass {
                    "PASS"
                } else {
                    "FAIL"
                },
                self.figure,
                super::render::cell(&Ok(self.value.unwrap_or(f64::NAN)), &self.unit),
                self.op.symbol(),
                super::render::num(self.bound)
            ),
            Status::CannotEvaluate => format!(
                "CANNOT EVALUATE {} {scope} (bound {} {}): {}",
                self.figure,
                self.op.symbol(),
                super::render::num(self.bound),
                self.reason.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Where an expectation is judged, in words: `in phase load`, or `over the
/// whole run` (verdict sentences, JUnit case names, repeated runs' names).
pub fn scope(phase: Option<&str>) -> String {
    match phase {
        Some(p) => format!("in phase {p}"),
        None => "over the whole run".into(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verdicts {
    /// Version of this file's format (`lab::schema::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub scenario: String,
    pub seed: Option<u64>,
    pub pass: usize,
    pub fail: usize,
    pub cannot_evaluate: usize,
    pub verdicts: Vec<Verdict>,
}

impl Verdicts {
    pub fn any_failed(&self) -> bool {
        self.fail > 0
    }

    /// `verdicts.junit.xml`: one test case per expectation, a fail as a
    /// `<failure>`, a cannot-evaluate as an `<error>` (not a pass).
    pub fn junit(&self) -> String {
        let cases: Vec<crate::stats::junit::Case> =
            self.verdicts.iter().map(Verdict::case).collect();
        crate::stats::junit::write(&self.scenario, &cases)
    }
}

impl Verdict {
    /// The verdict as a JUnit test case, named as in a repeated run's
    /// `summary/verdicts.junit.xml` (without its statistic).
    fn case(&self) -> crate::stats::junit::Case {
        use crate::stats::junit::{Case, CaseOutcome};
        let scope = scope(self.phase.as_deref());
        Case {
            name: format!(
                "{} {scope}: {} {}",
                self.figure,
                self.op.symbol(),
                super::render::num(self.bound)
            ),
            outcome: match self.status {
                Status::Pass => CaseOutcome::Pass,
                Status::Fail => CaseOutcome::Fail,
                Status::CannotEvaluate => CaseOutcome::CannotEvaluate,
            },
            message: self.sentence(),
        }
    }
}

/// Evaluates every expectation of the bundle's scenario.
pub fn evaluate_all(b: &Bundle, specs: &[ExpectSpec]) -> Verdicts {
    let ctx = Ctx {
        emulated: b.emulated,
    };
    let mut whole = None;
    let mut out = Verdicts {
        schema_version: crate::schema::SCHEMA_VERSION,
        scenario: b.scenario.name.clone(),
        seed: b.scenario.seed,
        ..Default::default()
    };
    for s in specs {
        let mut v = Verdict {
            figure: s.figure.clone(),
            phase: s.phase.clone(),
            op: s.op,
            bound: s.value,
            value: None,
            unit: String::new(),
            status: Status::CannotEvaluate,
            reason: None,
            why: s.why.clone(),
        };
        let result = match parse_figure(&s.figure) {
            Err(e) => Err(e.to_string()),
            Ok(f) => {
                v.unit = f.unit.to_string();
                match &s.phase {
                    Some(name) => match b.phases.iter().find(|p| &p.name == name) {
                        Some(p) => evaluate(&f, p, &ctx),
                        None => Err(format!(
                            "the bundle has no phase {name:?} (phases: {})",
                            b.phases
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    },
                    None => {
                        let w =
                            whole.get_or_insert_with(|| merge_phases(&b.phases, &b.metrics_series));
                        evaluate(&f, w, &ctx)
                    }
                }
            }
        };
        match result {
            Ok(x) if x.is_finite() => {
                v.value = Some(x);
                v.status = if s.op.holds(x, s.value) {
                    Status::Pass
                } else {
                    Status::Fail
                };
            }
            Ok(x) => v.reason = Some(format!("the figure is not a finite number ({x})")),
            Err(r) => v.reason = Some(r),
        }
        match v.status {
            Status::Pass => out.pass += 1,
            Status::Fail => out.fail += 1,
            Status::CannotEvaluate => out.cannot_evaluate += 1,
        }
        out.verdicts.push(v);
    }
    out
}
