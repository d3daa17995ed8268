//! Scenario expectations (`[[expect]]`) and their verdicts: pass, fail, or cannot-evaluate
//! with the reason. `verdicts.json` is written from [`Verdicts`].

use serde::{Deserialize, Serialize};

use super::evidence::{merge_phases, Bundle};
use super::figures::{evaluate, parse_figure, Ctx};

/// The scenario's comparison (one type: the scenario parser and the report
/// read the same `op` strings).
pub use crate::scenario::CompareOp as Op;

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// `==` and `!=` compare with a relative tolerance of 1e-9.
    pub fn holds(self, v: f64, bound: f64) -> bool {
        let eq = (v - bound).abs() <= 1e-9 * v.abs().max(bound.abs()).max(1.0);
        match self {
            Op::Ge => v >= bound || eq,
            Op::Gt => v > bound && !eq,
            Op::Le => v <= bound || eq,
            Op::Lt => v < bound && !eq,
            Op::Eq => eq,
            Op::Ne => !eq,
        }
    }
}

/// One `[[expect]]` entry as written in the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub figure: String,
    #[serde(default)]
    pub phase: Option<String>,
    pub op: Op,
    pub value: f64,
    #[serde(default)]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    CannotEvaluate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        let scope = match &self.phase {
            Some(p) => format!("in phase {p}"),
            None => "over the whole run".into(),
        };
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdicts {
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
}

/// Evaluates every expectation of the bundle's scenario.
pub fn evaluate_all(b: &Bundle, specs: &[ExpectSpec]) -> Verdicts {
    let ctx = Ctx {
        emulated: b.emulated,
    };
    let mut whole = None;
    let mut out = Verdicts {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        assert!(Op::Ge.holds(1.0, 1.0));
        assert!(!Op::Gt.holds(1.0, 1.0));
        assert!(Op::Lt.holds(0.5, 1.0));
        assert!(Op::Eq.holds(0.1 + 0.2, 0.3));
        assert!(Op::Ne.holds(0.0, 1.0));
    }

    #[test]
    fn spec_toml() {
        #[derive(Deserialize)]
        struct S {
            expect: Vec<ExpectSpec>,
        }
        let s: S = toml::from_str(
            "[[expect]]\nfigure = \"fsync.per_block\"\nphase = \"stress\"\nop = \">=\"\nvalue = 1.0\n",
        )
        .unwrap();
        assert_eq!(s.expect[0].op, Op::Ge);
        assert!(
            toml::from_str::<S>("[[expect]]\nfigure = \"x\"\nop = \"=>\"\nvalue = 1\n").is_err()
        );
    }
}
