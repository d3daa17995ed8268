//! The leaf of the report: what a scenario's `[[expect]]` entry says, the
//! comparison it makes ([`CompareOp`]) and how that comparison is judged. It
//! refers to no other module of the crate, so the scenario parser, the bundle
//! inputs and the verdicts can all use it without an import cycle.

use serde::{Deserialize, Serialize};

/// The comparison of an expectation (one type: the scenario parser and the report
/// read the same `op` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum CompareOp {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Ge => ">=",
            CompareOp::Gt => ">",
            CompareOp::Le => "<=",
            CompareOp::Lt => "<",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    /// `==` and `!=` compare with a relative tolerance of 1e-9; the tolerance
    /// also makes `>=`/`<=` hold (and `>`/`<` fail) at the bound, so that a
    /// figure computed as 0.1 + 0.2 meets a bound written as 0.3.
    pub fn holds(self, v: f64, bound: f64) -> bool {
        let eq = (v - bound).abs() <= 1e-9 * v.abs().max(bound.abs()).max(1.0);
        match self {
            CompareOp::Ge => v >= bound || eq,
            CompareOp::Gt => v > bound && !eq,
            CompareOp::Le => v <= bound || eq,
            CompareOp::Lt => v < bound && !eq,
            CompareOp::Eq => eq,
            CompareOp::Ne => !eq,
        }
    }
}

/// Which statistic of a repeated run's values an expectation judges
/// (`stat = "median" | "all" | "ci"`; issue 15). One run is judged on its
/// one value whatever the `stat`. Judged by `stats::verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stat {
    /// The median: pass or fail.
    Median,
    /// Every repetition: pass if all hold, fail if any does not (the
    /// default over repetitions: what each repetition's own verdict says).
    All,
    /// The confidence interval of the median: pass if the whole interval
    /// holds, fail if none of it does, inconclusive if it straddles.
    Ci,
}

impl Stat {
    pub fn name(self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::All => "all",
            Stat::Ci => "ci",
        }
    }
}

/// One `[[expect]]` entry as written in the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub figure: String,
    #[serde(default)]
    pub phase: Option<String>,
    pub op: CompareOp,
    pub value: f64,
    #[serde(default)]
    pub why: Option<String>,
    /// Over repetitions: which statistic is judged (`None`: `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Stat>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        assert!(CompareOp::Ge.holds(1.0, 1.0));
        assert!(!CompareOp::Gt.holds(1.0, 1.0));
        assert!(CompareOp::Lt.holds(0.5, 1.0));
        assert!(CompareOp::Eq.holds(0.1 + 0.2, 0.3));
        assert!(CompareOp::Ne.holds(0.0, 1.0));
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
        assert_eq!(s.expect[0].op, CompareOp::Ge);
        assert_eq!(s.expect[0].stat, None);
        let s: S =
            toml::from_str("[[expect]]\nfigure = \"x\"\nop = \">=\"\nvalue = 1\nstat = \"ci\"\n")
                .unwrap();
        assert_eq!(s.expect[0].stat, Some(Stat::Ci));
        assert!(toml::from_str::<S>(
            "[[expect]]\nfigure = \"x\"\nop = \">=\"\nvalue = 1\nstat = \"mean\"\n"
        )
        .is_err());
        assert!(
            toml::from_str::<S>("[[expect]]\nfigure = \"x\"\nop = \"=>\"\nvalue = 1\n").is_err()
        );
    }
}
