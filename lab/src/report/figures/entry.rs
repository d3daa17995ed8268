//! What a registry entry is ([`Figure`], grouped in a [`Family`]), how a figure
//! name is parsed against a list of families ([`parse_in`]) and evaluated
//! ([`evaluate_in`]), and the helpers the families share (percentages, rates,
//! "no such evidence" reasons, the block count). It knows no family: the list
//! lives in `figures/mod.rs`, and each family's tests parse against their own
//! family alone.

use regex::Regex;
use std::collections::BTreeMap;

use crate::report::evidence::{MetricsWindow, PhaseEvidence};
use crate::report::folded::{Area, Reason, Role};
use crate::stats::Direction;

/// A figure's value, or the reason it cannot be evaluated.
pub type Fig = Result<f64, String>;

/// Context shared by all phases of a bundle.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub emulated: Option<bool>,
}

/// How a figure is computed on one phase (or on the whole run, merged).
pub type Eval = fn(&FigureRef, &PhaseEvidence, &Ctx) -> Fig;

/// One figure: everything about it in one place (ripgrep's `Flag`).
pub struct Figure {
    /// As written in scenarios; `<workload>` and `:<regex>` are placeholders.
    pub name: &'static str,
    /// The `{key=value}` selectors it accepts.
    pub selectors: &'static [&'static str],
    pub unit: &'static str,
    /// Which way is better: the regression gate of `diff --fail-on-regression`
    /// uses it; `None` figures (counts, shares that only move between areas,
    /// sizes) are reported and never gated.
    pub good: Direction,
    /// One Markdown sentence for docs/FIGURES.md.
    pub doc: &'static str,
    pub eval: Eval,
}

/// The figures read from one kind of evidence, with the prose that
/// docs/FIGURES.md shows before and after their table.
pub struct Family {
    /// Short name (`oncpu`, `fsync`, ...): the file that defines it.
    pub name: &'static str,
    /// The section heading in docs/FIGURES.md.
    pub title: &'static str,
    /// Markdown before the table (may be empty).
    pub intro: &'static str,
    pub figures: &'static [Figure],
    /// Markdown after the table (may be empty).
    pub notes: &'static str,
}

/// The statistics of `load.<workload>.<stat>`: a name `load.rpc.p99_ms` is the
/// entry `load.<workload>.p99_ms`.
const LOAD_STATS: &[&str] = &[
    "requests",
    "ok",
    "errors",
    "dropped",
    "error_pct",
    "throughput_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
];

/// The figures whose name carries a regex after the colon (it may contain braces).
const MATCHING: [&str; 2] = ["oncpu.share_matching:", "offcpu.share_matching:"];

/// A parsed figure name: base, selectors, and the regex of `*_matching:` figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRef {
    pub text: String,
    pub base: String,
    pub selectors: BTreeMap<String, String>,
    pub pattern: Option<String>,
    pub unit: &'static str,
    /// The registry entry's good direction.
    pub good: Direction,
    /// The registry entry's name (`load.<workload>.p99_ms` for `load.rpc.p99_ms`).
    pub def: &'static str,
}

impl FigureRef {
    /// The value of selector `k`, if given.
    pub fn sel(&self, k: &str) -> Option<&str> {
        self.selectors.get(k).map(String::as_str)
    }
}

/// Why a figure name is not valid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FigureError {
    #[error("unknown figure {name:?}{hint}; the figure names are listed in docs/FIGURES.md")]
    Unknown { name: String, hint: String },
    #[error("figure {name:?} takes no selector {selector:?}; it takes {allowed}")]
    BadSelector {
        name: String,
        selector: String,
        allowed: String,
    },
    #[error("figure {name:?}: malformed selector {text:?}; write name{{key=value}}")]
    Malformed { name: String, text: String },
    #[error("figure {name:?}: invalid regex: {why}")]
    BadRegex { name: String, why: String },
    #[error("figure {name:?}: unknown {key} {value:?}; one of {allowed}")]
    BadValue {
        name: String,
        key: String,
        value: String,
        allowed: String,
    },
}

fn find(families: &[&'static Family], name: &str) -> Option<&'static Figure> {
    families
        .iter()
        .flat_map(|f| f.figures.iter())
        .find(|d| d.name == name)
}

/// Parses and checks a figure name against `families`.
pub fn parse_in(families: &[&'static Family], text: &str) -> Result<FigureRef, FigureError> {
    let text = text.trim();
    for prefix in MATCHING {
        if let Some(re) = text.strip_prefix(prefix) {
            let def = format!("{prefix}<regex>");
            let Some(d) = find(families, &def) else {
                continue;
            };
            Regex::new(re).map_err(|e| FigureError::BadRegex {
                name: text.into(),
                why: e.to_string(),
            })?;
            return Ok(FigureRef {
                text: text.into(),
                base: prefix.trim_end_matches(':').into(),
                selectors: BTreeMap::new(),
                pattern: Some(re.into()),
                unit: d.unit,
                good: d.good,
                def: d.name,
            });
        }
    }
    let (base, sel_text) = match text.find('{') {
        Some(i) => {
            let Some(inner) = text[i + 1..].strip_suffix('}') else {
                return Err(FigureError::Malformed {
                    name: text.into(),
                    text: text[i..].into(),
                });
            };
            (&text[..i], Some(inner))
        }
        None => (text, None),
    };
    // `load.rpc.p99_ms` is the entry `load.<workload>.p99_ms`; `load.floor_p99_us`
    // (no second dot) is its own entry.
    let def_name = match base.strip_prefix("load.").and_then(|r| r.split_once('.')) {
        Some((w, stat)) if !w.is_empty() && LOAD_STATS.contains(&stat) => {
            format!("load.<workload>.{stat}")
        }
        _ => base.to_string(),
    };
    let Some(def) = find(families, &def_name) else {
        return Err(FigureError::Unknown {
            name: text.into(),
            hint: did_you_mean(families, base),
        });
    };
    let selectors = match sel_text {
        Some(inner) => parse_selectors(text, def, inner)?,
        None => BTreeMap::new(),
    };
    Ok(FigureRef {
        text: text.into(),
        base: base.into(),
        selectors,
        pattern: None,
        unit: def.unit,
        good: def.good,
        def: def.name,
    })
}

/// ` (did you mean "x"?)` when a registered name is close (Jaro-Winkler > 0.8).
fn did_you_mean(families: &[&'static Family], base: &str) -> String {
    let best = families
        .iter()
        .flat_map(|f| f.figures.iter())
        .map(|d| (strsim::jaro_winkler(d.name, base), d.name))
        .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
    if best.0 > 0.8 {
        format!(" (did you mean {:?}?)", best.1)
    } else {
        String::new()
    }
}

/// `key=value, key=value` inside the braces; keys must be the entry's selectors,
/// and `area`, `role` and `reason` values must be ones the classifiers give.
fn parse_selectors(
    text: &str,
    def: &Figure,
    inner: &str,
) -> Result<BTreeMap<String, String>, FigureError> {
    let mut selectors = BTreeMap::new();
    for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(FigureError::Malformed {
                name: text.into(),
                text: part.into(),
            });
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        if !def.selectors.contains(&k) {
            return Err(FigureError::BadSelector {
                name: text.into(),
                selector: k.into(),
                allowed: if def.selectors.is_empty() {
                    "none".into()
                } else {
                    def.selectors.join(", ")
                },
            });
        }
        let allowed = match k {
            "area" if Area::from_name(v).is_none() => Some(Area::ALL.map(Area::name).join(", ")),
            "role" if Role::from_name(v).is_none() => Some(Role::ALL.map(Role::name).join(", ")),
            "reason" if Reason::from_name(v).is_none() => {
                Some(Reason::ALL.map(Reason::name).join(", "))
            }
            _ => None,
        };
        if let Some(allowed) = allowed {
            return Err(FigureError::BadValue {
                name: text.into(),
                key: k.into(),
                value: v.into(),
                allowed,
            });
        }
        selectors.insert(k.to_string(), v.to_string());
    }
    Ok(selectors)
}

/// Evaluates a parsed figure on one phase with the entry of `families` it names.
pub fn evaluate_in(
    families: &[&'static Family],
    f: &FigureRef,
    p: &PhaseEvidence,
    ctx: &Ctx,
) -> Fig {
    match find(families, f.def) {
        Some(def) => (def.eval)(f, p, ctx),
        None => Err(format!(
            "figure {} has no evaluator (a defect: report it)",
            f.base
        )),
    }
}

/// Parses against `families` and evaluates in one step.
pub fn eval_in(families: &[&'static Family], name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
    let f = parse_in(families, name).map_err(|e| e.to_string())?;
    evaluate_in(families, &f, p, ctx)
}

/// `100 * part / whole`, or why not when there is nothing to share.
pub fn pct(part: f64, whole: f64, what: &str) -> Fig {
    if whole <= 0.0 {
        Err(format!("no {what} in this phase"))
    } else {
        Ok(100.0 * part / whole)
    }
}

/// "no <src> evidence", with the loader's reason when it gave one.
pub fn missing(p: &PhaseEvidence, src: &str) -> String {
    match p.missing.get(src) {
        Some(r) => format!("no {src} evidence: {r}"),
        None => format!("no {src} evidence"),
    }
}

/// `n` per second of a probe window.
pub fn per_s(n: f64, window: Option<f64>) -> Fig {
    match window {
        Some(w) if w > 0.0 => Ok(n / w),
        _ => Err("the probe window length is unknown".into()),
    }
}

/// The phase's metrics window, or why there is none.
pub fn metrics(p: &PhaseEvidence) -> Result<&MetricsWindow, String> {
    p.metrics.as_ref().ok_or_else(|| missing(p, "metrics"))
}

/// Blocks produced in the phase, from the node's `qfc_block_height` (or
/// `qfc_blocks_produced_total`).
pub fn blocks(p: &PhaseEvidence) -> Fig {
    let m = metrics(p)?;
    m.delta("qfc_block_height")
        .or_else(|e| m.delta("qfc_blocks_produced_total").map_err(|_| e))
}

/// `n` per block produced in the phase.
pub fn per_block(n: f64, p: &PhaseEvidence) -> Fig {
    let b = blocks(p)?;
    if b <= 0.0 {
        Err("the node produced no block in this phase".into())
    } else {
        Ok(n / b)
    }
}
