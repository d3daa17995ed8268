//! JUnit XML of verdicts, for CI systems: one `<testcase>` per expectation;
//! a fail is a `<failure>`, an inconclusive or not-evaluable expectation an
//! `<error>` (it is not a pass, and it is not a measured failure either).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CaseOutcome {
    Pass,
    Fail,
    Inconclusive,
    CannotEvaluate,
}

/// One verdict as JUnit sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Case {
    /// e.g. `fsync.per_block in phase load: median <= 1`.
    pub name: String,
    pub outcome: CaseOutcome,
    /// One line: what was measured against what.
    pub message: String,
}

impl Case {
    pub fn from_verdict(name: &str, v: &super::verdict::DistVerdict) -> Case {
        use super::verdict::Outcome;
        Case {
            name: name.to_string(),
            outcome: match v.outcome {
                Outcome::Pass => CaseOutcome::Pass,
                Outcome::Fail => CaseOutcome::Fail,
                Outcome::Inconclusive => CaseOutcome::Inconclusive,
            },
            message: v.detail.clone(),
        }
    }
}

/// XML text escaping for attribute values and character data; characters
/// XML 1.0 forbids (controls other than tab, newline, return) become `?`.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            '\t' => o.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// The JUnit document: one suite named `suite` (the scenario), cases in order.
pub fn write(suite: &str, cases: &[Case]) -> String {
    let count = |o: CaseOutcome| cases.iter().filter(|c| c.outcome == o).count();
    let failures = count(CaseOutcome::Fail);
    let errors = count(CaseOutcome::Inconclusive) + count(CaseOutcome::CannotEvaluate);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"qfc-lab\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
        cases.len()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\">\n",
        esc(suite),
        cases.len()
    ));
    let class = format!("qfc-lab.{}", esc(suite));
    for c in cases {
        let head = format!(
            "    <testcase classname=\"{class}\" name=\"{}\"",
            esc(&c.name)
        );
        let (tag, kind) = match c.outcome {
            CaseOutcome::Pass => {
                x.push_str(&format!("{head}/>\n"));
                continue;
            }
            CaseOutcome::Fail => ("failure", "fail"),
            CaseOutcome::Inconclusive => ("error", "inconclusive"),
            CaseOutcome::CannotEvaluate => ("error", "cannot-evaluate"),
        };
        x.push_str(&format!(
            "{head}>\n      <{tag} type=\"{kind}\" message=\"{}\">{}</{tag}>\n    </testcase>\n",
            esc(&c.message),
            esc(&c.message)
        ));
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_counts() {
        let x = write(
            "a<b",
            &[
                Case {
                    name: "x{k=\"v\"} & y".into(),
                    outcome: CaseOutcome::Fail,
                    message: "1 < 2\n".into(),
                },
                Case {
                    name: "p".into(),
                    outcome: CaseOutcome::Pass,
                    message: String::new(),
                },
            ],
        );
        assert!(x.contains("name=\"x{k=&quot;v&quot;} &amp; y\""), "{x}");
        assert!(x.contains("failures=\"1\" errors=\"0\""), "{x}");
        assert!(x.contains("1 &lt; 2&#10;"), "{x}");
        assert!(x.contains("name=\"a&lt;b\""), "{x}");
    }
}
