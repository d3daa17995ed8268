//! The machine-readable outputs of `lab::stats` read by parsers this project
//! did not write: the JUnit XML of verdicts by Python's `junitparser`, the
//! OpenMetrics text by `prometheus_client`'s OpenMetrics parser, and the
//! exact rank test's p-values against SciPy (`mannwhitneyu` exact without
//! ties, `permutation_test` over midranks with ties). They need the venv that
//! scripts/setup.sh builds in $QFC_LAB_CACHE/pyenv; without it each test is
//! reported ignored with the reason, never passed.

use std::path::PathBuf;
use std::process::Command;

use lab::scenario::CompareOp as Op;
use lab::stats::junit::{self, Case};
use lab::stats::rank::mann_whitney;
use lab::stats::verdict::{judge, Stat};
use lab::stats::{openmetrics, Direction, Sample, Series, Settings};
use libtest_mimic::{Arguments, Failed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;

/// The venv's packages these trials read with.
const MODULES: &str = "junitparser, prometheus_client, scipy";

fn python() -> PathBuf {
    common::venv_python(MODULES).expect("these trials run only when the venv is ready")
}

/// Runs `script` with the venv's Python, `arg` as argv[1]; its stdout.
fn run_py(script: &str, arg: &str) -> Result<String, Failed> {
    let o = Command::new(python())
        .args(["-c", script, arg])
        .output()
        .map_err(|e| format!("cannot run python: {e}"))?;
    if !o.status.success() {
        return Err(format!("python failed: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

const JUNIT_PY: &str = r#"
import sys, json
from junitparser import JUnitXml, Failure, Error
xml = JUnitXml.fromfile(sys.argv[1])
out = []
for suite in xml:
    for case in suite:
        out.append([suite.name, case.name, [type(r).__name__ + ":" + (r.type or "") for r in case.result]])
print(json.dumps(out))
"#;

/// A failing `stat = "all"` expectation, a passing median and an
/// inconclusive interval: junitparser finds exactly the failure and the error.
fn junit_parses_and_finds_the_failure() -> Result<(), Failed> {
    let s = Settings::default();
    let runs = [0.9, 1.0, 1.1, 1.0, 3.0]; // fsyncs per block, one bad run
    let cases = [
        (
            "fsync.per_block: all <= 2",
            judge("fsync.per_block", &runs, Stat::All, Op::Le, 2.0, &s)?,
        ),
        (
            "fsync.per_block: median <= 2",
            judge("fsync.per_block", &runs, Stat::Median, Op::Le, 2.0, &s)?,
        ),
        (
            "fsync.per_block: ci >= 1 <&> \"q\"",
            judge("fsync.per_block", &runs, Stat::Ci, Op::Ge, 1.0, &s)?,
        ),
    ];
    let cases: Vec<Case> = cases
        .iter()
        .map(|(n, v)| Case::from_verdict(n, v))
        .collect();
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("junit.xml");
    std::fs::write(&f, junit::write("fsync-policy", &cases))?;
    let out = run_py(JUNIT_PY, f.to_str().ok_or("path")?)?;
    let parsed: serde_json::Value = serde_json::from_str(&out)?;
    let want = serde_json::json!([
        [
            "fsync-policy",
            "fsync.per_block: all <= 2",
            ["Failure:fail"]
        ],
        ["fsync-policy", "fsync.per_block: median <= 2", []],
        [
            "fsync-policy",
            "fsync.per_block: ci >= 1 <&> \"q\"",
            ["Error:inconclusive"]
        ],
    ]);
    ensure(
        parsed == want,
        format!("junitparser read {parsed}, want {want}"),
    )
}

const OM_PY: &str = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out.append([fam.name, fam.type, s.labels, s.value])
print(json.dumps(out))
"#;

fn openmetrics_parses() -> Result<(), Failed> {
    let mut load = Series::new("load.p99_ms", "ms", Direction::Lower, &[2.5, 2.75, 3.0]);
    load.phase = Some("steady \"hot\"".into());
    // repetition 2 failed: not a sample
    let fsync = Series {
        name: "bio.p99_us{rwbs=W}".into(),
        phase: None,
        unit: "us".into(),
        good: Direction::Lower,
        samples: vec![
            Sample {
                repetition: 1,
                value: 204.0,
            },
            Sample {
                repetition: 3,
                value: 1e-7,
            },
        ],
    };
    let text = openmetrics::write("fsync\\policy", &[load, fsync], &Settings::default())?;
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("figures.om");
    std::fs::write(&f, &text)?;
    let out = run_py(OM_PY, f.to_str().ok_or("path")?)?;
    let parsed: Vec<(
        String,
        String,
        serde_json::Map<String, serde_json::Value>,
        f64,
    )> = serde_json::from_str(&out)?;
    let per_rep: Vec<_> = parsed.iter().filter(|p| p.0 == "qfc_lab_figure").collect();
    ensure(
        per_rep.len() == 5,
        format!("5 per-repetition samples, got {per_rep:?}"),
    )?;
    ensure(per_rep.iter().all(|p| p.1 == "gauge"), "gauge family")?;
    let find = |fig: &str, rep: &str| {
        per_rep
            .iter()
            .find(|p| p.2["figure"] == fig && p.2["repetition"] == rep)
            .map(|p| (p.2.clone(), p.3))
    };
    let (l, v) = find("load.p99_ms", "2").ok_or("load rep 2 missing")?;
    ensure(v == 2.75, format!("load rep 2 = {v}"))?;
    ensure(l["phase"] == "steady \"hot\"", format!("phase label {l:?}"))?;
    ensure(
        l["scenario"] == "fsync\\policy",
        format!("scenario label {l:?}"),
    )?;
    let (l, v) = find("bio.p99_us{rwbs=W}", "3").ok_or("bio rep 3 missing")?;
    ensure(v == 1e-7 && l["phase"] == "whole-run", format!("{l:?} {v}"))?;
    ensure(
        find("bio.p99_us{rwbs=W}", "2").is_none(),
        "failed rep 2 exported",
    )?;
    let median = parsed
        .iter()
        .find(|p| {
            p.0 == "qfc_lab_figure_summary"
                && p.2["figure"] == "load.p99_ms"
                && p.2["stat"] == "median"
        })
        .ok_or("no median of load.p99_ms")?;
    ensure(median.3 == 2.75, format!("median {}", median.3))
}

const SCIPY_PY: &str = r#"
import sys, json
import numpy as np
from scipy import stats
out = []
for a, b in json.loads(open(sys.argv[1]).read()):
    a, b = np.array(a), np.array(b)
    if len(set(a.tolist() + b.tolist())) == len(a) + len(b):
        p = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    else:
        n = len(a) + len(b)
        def dev(x, y):
            r = stats.rankdata(np.concatenate([x, y]))
            return abs(r[:len(x)].sum() - len(x) * (n + 1) / 2)
        p = stats.permutation_test((a, b), dev, permutation_type="independent",
                                   alternative="greater", n_resamples=np.inf,
                                   vectorized=False).pvalue
    out.append(float(p))
print(json.dumps(out))
"#;

/// 120 seeded pairs (3 to 8 a side, half with ties): our exact p equals SciPy's.
fn rank_test_matches_scipy() -> Result<(), Failed> {
    let mut rng = ChaCha8Rng::seed_from_u64(1515);
    let mut pairs = Vec::new();
    for i in 0..120 {
        let (na, nb) = (rng.gen_range(3..=8), rng.gen_range(3..=8));
        let shift = rng.gen_range(0.0..3.0);
        let mut draw = |n: usize, d: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let x: f64 = rng.gen_range(0.0..4.0) + d;
                    if i % 2 == 0 {
                        x.round() // ties within and across samples
                    } else {
                        x
                    }
                })
                .collect()
        };
        let a = draw(na, 0.0);
        let b = draw(nb, shift);
        pairs.push((a, b));
    }
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("pairs.json");
    std::fs::write(&f, serde_json::to_string(&pairs)?)?;
    let out = run_py(SCIPY_PY, f.to_str().ok_or("path")?)?;
    let peer: Vec<f64> = serde_json::from_str(&out)?;
    ensure(peer.len() == pairs.len(), "scipy answered every pair")?;
    let mut worst = 0.0f64;
    for ((a, b), q) in pairs.iter().zip(&peer) {
        let ours = mann_whitney(a, b);
        let d = (ours.p - q).abs();
        worst = worst.max(d);
        ensure(
            d < 1e-9,
            format!("a = {a:?}, b = {b:?}: ours p = {}, scipy p = {q}", ours.p),
        )?;
    }
    println!(
        "rank test vs scipy: {} pairs, largest |dp| = {worst:e}",
        pairs.len()
    );
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let need = common::venv_python(MODULES).map(|_| ());
    let trial =
        |name: &str, f: fn() -> Result<(), Failed>| common::ignored_unless(name, f, need.clone());
    let trials = vec![
        trial(
            "junit_parses_and_finds_the_failure",
            junit_parses_and_finds_the_failure,
        ),
        trial("openmetrics_parses", openmetrics_parses),
        trial("rank_test_matches_scipy", rank_test_matches_scipy),
    ];
    libtest_mimic::run(&args, trials).exit();
}
