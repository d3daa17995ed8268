//! `qfc-lab run --repeat N` (issue 15): N repetitions of one scenario into
//! one parent bundle, and the statistics over them.
//!
//! Each repetition is a whole run ([`crate::orchestrate::main`]): a fresh
//! target, node and datadir, the same seed, its own probes and load, into
//! its own sub-bundle `rep-01/` ... `rep-NN/`, which verifies on its own.
//! A repetition that fails is kept and named in the parent manifest, and
//! left out of the statistics. After the last one, `summary/` holds, per
//! phase and key figure (the figures `diff` compares), the median, its 95%
//! interval, min, max and coefficient of variation over the repetitions
//! that completed ([`crate::stats::summary`]; methods in
//! docs/STATISTICS.md), the scenario's `[[expect]]` judged over those
//! repetitions (`stat`: `all` by default, `median`, `ci`;
//! [`crate::stats::verdict`]) also as JUnit XML (`verdicts.junit.xml`),
//! and the figures as OpenMetrics text (`figures.om`). The parent
//! `manifest.json` (kind [`PARENT_KIND`]) lists every repetition with the
//! BLAKE3 of its own manifest, and hashes the summary files; [`verify`]
//! checks all of it and every repetition.
//!
//! `diff` with a parent on either side is [`diff`]: [`side`] reads each
//! (a parent verified first, a single run as n = 1) for
//! [`crate::report::diff::diff_repeated`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::{self, Problem};
use crate::cli::RunArgs;
use crate::report::diff::Side as DiffSide;
use crate::report::evidence::Bundle;
use crate::report::expect::{evaluate_all, ExpectSpec, Status};
use crate::report::figures_file::{self, figures_of, FiguresFile};
use crate::report::spec::Stat;
use crate::stats::junit::{Case, CaseOutcome};
use crate::stats::summary::{summarize, Summary};
use crate::stats::verdict::judge;
use crate::stats::{Series, Settings};
use crate::{orchestrate, scenario, signals, Exit, Failure};

/// `kind` of a parent bundle's manifest.
pub const PARENT_KIND: &str = "qfc-lab/repeated-run";
/// Version of the parent manifest and `summary/summary.json`.
pub use crate::schema::SCHEMA_VERSION;

/// A parent bundle's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentManifest {
    pub schema_version: u32,
    pub kind: String,
    pub scenario: String,
    pub repeat: u32,
    pub repetitions: Vec<Repetition>,
    /// The summary files: path in the parent -> BLAKE3.
    pub files: BTreeMap<String, String>,
}

/// One repetition as the parent records it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repetition {
    /// `rep-01`, ...
    pub dir: String,
    /// Its run's exit code (README's table).
    pub exit_code: u8,
    /// Its bundle's status (`complete`, `incomplete`), or `missing` when no
    /// bundle was sealed.
    pub status: String,
    /// BLAKE3 of its `manifest.json`, when it has one.
    pub manifest_blake3: Option<String>,
    /// Whether its figures enter the statistics (a complete bundle).
    pub in_statistics: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// `summary/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryFile {
    pub schema_version: u32,
    pub scenario: String,
    /// Repetitions whose figures are in the statistics.
    pub repetitions: Vec<String>,
    /// Repetitions left out, with the reason.
    pub excluded: Vec<String>,
    pub figures: Vec<Summary>,
    /// The scenario's `[[expect]]` judged over the repetitions.
    #[serde(default)]
    pub expectations: Vec<ExpectVerdict>,
}

/// `qfc-lab run`: one run, or `--repeat N` / `[run] repeat` repetitions.
pub fn main(args: RunArgs) -> Result<Exit, Failure> {
    let loaded = scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
    let n = args.repeat.unwrap_or(loaded.scenario.repeat);
    if n == 0 || n > scenario::MAX_REPEAT {
        return Err(Failure::usage(anyhow::anyhow!(
            "--repeat {n}: give 1 (one run) to {} repetitions",
            scenario::MAX_REPEAT
        )));
    }
    if n == 1 {
        return orchestrate::main(RunArgs {
            repeat: Some(1),
            ..args
        });
    }
    let s = &loaded.scenario;
    let parent = args.out.clone().unwrap_or_else(|| {
        orchestrate::bundle_dir(&s.bundle.dir, &s.name, &crate::clock::utc_compact())
    });
    open_parent(&parent)?;
    let mut reps = Vec::new();
    let mut errors = Vec::new();
    for k in 1..=n {
        if let Some(sig) = signals::requested() {
            errors.push(anyhow::anyhow!(
                "{} stopped the repetitions before rep-{k:02}",
                signals::name(sig)
            ));
            break;
        }
        let dir = format!("rep-{k:02}");
        // The progress display names the repetition (stderr: stdout may be
        // `--json` events).
        eprintln!(
            "qfc-lab: repetition {k} of {n} -> {}",
            parent.join(&dir).display()
        );
        let result = orchestrate::main(RunArgs {
            out: Some(parent.join(&dir)),
            repeat: Some(1),
            ..args.clone()
        });
        let (exit, error) = match result {
            Ok(e) => (e, None),
            Err(f) => {
                let text = f.to_string();
                errors.push(anyhow::anyhow!("{dir}: {text}"));
                (f.exit, Some(text))
            }
        };
        reps.push(record(&parent, dir, exit, error));
    }
    let excluded: Vec<String> = reps
        .iter()
        .filter(|r| !r.in_statistics)
        .map(|r| format!("{} ({}, exit {})", r.dir, r.status, r.exit_code))
        .collect();
    let specs: Vec<ExpectSpec> = s
        .expects
        .iter()
        .map(|e| ExpectSpec {
            figure: e.figure.clone(),
            phase: e.phase.clone(),
            op: e.op,
            value: e.value,
            why: e.why.clone(),
            stat: e.stat,
        })
        .collect();
    let written = write_summary(&parent, &s.name, &specs, &reps, excluded).map_err(|e| {
        Failure::run_failed(anyhow::anyhow!(
            "writing {}: {e}",
            parent.join("summary").display()
        ))
    })?;
    let manifest = ParentManifest {
        schema_version: SCHEMA_VERSION,
        kind: PARENT_KIND.into(),
        scenario: s.name.clone(),
        repeat: n,
        repetitions: reps.clone(),
        files: written.files,
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    bundle::write_atomic(&parent.join(bundle::MANIFEST), &json).map_err(|e| {
        Failure::run_failed(anyhow::anyhow!(
            "writing the parent manifest in {}: {e}",
            parent.display()
        ))
    })?;
    let failed = reps.iter().filter(|r| !r.in_statistics).count() + (n as usize - reps.len());
    eprintln!(
        "qfc-lab: {} of {n} repetitions in the statistics: {}",
        n as usize - failed,
        parent.join("summary/summary.md").display()
    );
    if failed > 0 {
        if errors.is_empty() {
            errors.push(anyhow::anyhow!(
                "{failed} of {n} repetitions are not complete (see {})",
                parent.join(bundle::MANIFEST).display()
            ));
        }
        return Err(Failure {
            exit: Exit::RunFailed,
            errors,
        });
    }
    // The expectations are judged over the repetitions (`stat`), not by
    // each repetition's own verdict.
    for e in written
        .expectations
        .iter()
        .filter(|e| e.status != CaseOutcome::Pass)
    {
        eprintln!("qfc-lab: {}", e.sentence());
    }
    Ok(expectations_exit(&written.expectations))
}

/// Creates the parent directory; like a bundle's, it must be new or empty.
fn open_parent(parent: &Path) -> Result<(), Failure> {
    if parent.exists()
        && std::fs::read_dir(parent)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "bundle directory {} exists and is not empty: choose another --out",
            parent.display()
        )));
    }
    std::fs::create_dir_all(parent).map_err(|e| {
        Failure::run_failed(anyhow::anyhow!(
            "cannot create bundle directory {}: {e}",
            parent.display()
        ))
    })
}

/// What the parent records of one finished repetition: its own manifest
/// says its status (read once; its files are checked by `verify`, not
/// here); only a complete bundle enters the statistics.
fn record(parent: &Path, dir: String, exit: Exit, error: Option<String>) -> Repetition {
    let mpath = parent.join(&dir).join(bundle::MANIFEST);
    let manifest = bundle::read_small(&mpath).ok().and_then(|bytes| {
        let m: bundle::Manifest = serde_json::from_slice(&bytes).ok()?;
        Some((m.status, blake3::hash(&bytes).to_hex().to_string()))
    });
    let (status, manifest_blake3) = match manifest {
        Some((st, hash)) => (format!("{st:?}").to_lowercase(), Some(hash)),
        None => ("missing".to_string(), None),
    };
    Repetition {
        in_statistics: status == "complete" && matches!(exit, Exit::Ok | Exit::CheckFailed),
        dir,
        exit_code: exit as u8,
        status,
        manifest_blake3,
        error,
    }
}

/// The repetitions in the statistics, loaded, with their 1-based number.
fn load_reps(parent: &Path, reps: &[Repetition]) -> Result<Vec<(u32, Bundle)>, String> {
    let mut out = Vec::new();
    for (k, r) in reps.iter().enumerate() {
        if !r.in_statistics {
            continue;
        }
        let b = Bundle::load(&parent.join(&r.dir)).map_err(|e| format!("{}: {e}", r.dir))?;
        out.push((k as u32 + 1, b));
    }
    Ok(out)
}

/// Per phase and key figure, one series over the loaded repetitions
/// ([`crate::report::figures_file`]: the figures each repetition's
/// `figures.json` lists; a repetition where a figure cannot be evaluated
/// adds no sample to it).
fn series_of(loaded: &[(u32, Bundle)]) -> Vec<Series> {
    let figs: Vec<(u32, FiguresFile)> = loaded.iter().map(|(k, b)| (*k, figures_of(b))).collect();
    figures_file::series(figs.iter().map(|(k, f)| (*k, f)))
}

/// `qfc-lab diff A B` when either is a parent bundle (or with `--json`):
/// the noise-aware diff ([`crate::report::diff::diff_repeated`]) as
/// Markdown or JSON, `--out` writing `diff.md` and `diff.json`. True (exit
/// 1) when `--fail-on-regression` found a regression.
pub fn diff(args: &crate::report::cli::DiffArgs) -> anyhow::Result<(bool, String)> {
    use anyhow::Context;
    let thresholds = crate::report::cli::thresholds(args)?;
    let context = || format!("comparing {} with {}", args.a.display(), args.b.display());
    let a = side(&args.a).with_context(context)?;
    let b = side(&args.b).with_context(context)?;
    let d = crate::report::diff::diff_repeated(&a, &b, thresholds.as_ref(), &Settings::default())
        .with_context(context)?;
    let md = d.markdown();
    let json = serde_json::to_string_pretty(&d).context("serializing the diff")? + "\n";
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for (name, text) in [("diff.md", &md), ("diff.json", &json)] {
            let p = out.join(name);
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok((!d.regressions.is_empty(), if args.json { json } else { md }))
}

/// One side of `diff`: a parent bundle (verified first: a missing or
/// changed repetition is an error, not a smaller sample) or a single run.
pub fn side(dir: &Path) -> anyhow::Result<DiffSide> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    if !is_parent(dir) {
        let b = Bundle::load(dir)
            .map_err(|e| anyhow::anyhow!("reading the bundle {}: {e}", dir.display()))?;
        return Ok(DiffSide {
            dir: name,
            scenario: b.scenario.name.clone(),
            seed: b.scenario.seed,
            emulated: b.emulated,
            repeated: false,
            repetitions: 1,
            excluded: Vec::new(),
            series: series_of(&[(1, b)]),
        });
    }
    let (m, problems) = verify(dir).map_err(|f| {
        anyhow::anyhow!(
            "{}",
            f.errors
                .iter()
                .map(|e| crate::error_chain(e.as_ref()))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    if !problems.is_empty() {
        anyhow::bail!(
            "{} does not match its manifest ({} problems: {}); a diff of repeated runs needs every repetition the manifest lists intact: check it with `qfc-lab verify {}`, or run the scenario again",
            dir.display(),
            problems.len(),
            problems.join("; "),
            dir.display()
        );
    }
    let loaded = load_reps(dir, &m.repetitions)
        .map_err(|e| anyhow::anyhow!("reading the repetitions of {}: {e}", dir.display()))?;
    let Some((_, first)) = loaded.first() else {
        anyhow::bail!(
            "{}: no repetition is complete, so there is nothing to compare (see its manifest.json)",
            dir.display()
        );
    };
    Ok(DiffSide {
        dir: name,
        scenario: m.scenario.clone(),
        seed: first.scenario.seed,
        emulated: first.emulated,
        repeated: true,
        repetitions: loaded.len(),
        excluded: m
            .repetitions
            .iter()
            .filter(|r| !r.in_statistics)
            .map(|r| format!("{} ({}, exit {})", r.dir, r.status, r.exit_code))
            .collect(),
        series: series_of(&loaded),
    })
}

/// What the summary step gives back: the summary files' hashes for the
/// parent manifest, and the expectations' verdicts over the repetitions.
struct Written {
    files: BTreeMap<String, String>,
    expectations: Vec<ExpectVerdict>,
}

/// Writes `summary/summary.json`, `summary/summary.md`, the expectations'
/// verdicts as JUnit XML (`summary/verdicts.junit.xml`) and the figures as
/// OpenMetrics text (`summary/figures.om`); returns their hashes.
fn write_summary(
    parent: &Path,
    scenario: &str,
    specs: &[ExpectSpec],
    reps: &[Repetition],
    excluded: Vec<String>,
) -> std::io::Result<Written> {
    let settings = Settings::default();
    let loaded = load_reps(parent, reps).map_err(std::io::Error::other)?;
    let all = series_of(&loaded);
    let figures: Vec<Summary> = all
        .iter()
        .filter_map(|s| summarize(s, &settings).ok())
        .collect();
    let expectations = judge_expectations(&loaded, reps, specs, &settings);
    let file = SummaryFile {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.to_string(),
        repetitions: reps
            .iter()
            .filter(|r| r.in_statistics)
            .map(|r| r.dir.clone())
            .collect(),
        excluded,
        figures,
        expectations,
    };
    let dir = parent.join("summary");
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    bundle::write_atomic(&dir.join("summary.json"), &json)?;
    bundle::write_atomic(&dir.join("summary.md"), markdown(&file).as_bytes())?;
    let cases: Vec<Case> = file.expectations.iter().map(ExpectVerdict::case).collect();
    bundle::write_atomic(
        &dir.join("verdicts.junit.xml"),
        crate::stats::junit::write(scenario, &cases).as_bytes(),
    )?;
    let om = crate::stats::openmetrics::write(scenario, &all, &settings)
        .map_err(std::io::Error::other)?;
    bundle::write_atomic(&dir.join("figures.om"), om.as_bytes())?;
    let mut hashes = BTreeMap::new();
    for f in SUMMARY_FILES {
        hashes.insert(f.to_string(), bundle::hash_file(&parent.join(f))?);
    }
    Ok(Written {
        files: hashes,
        expectations: file.expectations,
    })
}

/// The files of `summary/`, sealed in the parent manifest.
pub const SUMMARY_FILES: &[&str] = &[
    "summary/summary.json",
    "summary/summary.md",
    "summary/verdicts.junit.xml",
    "summary/figures.om",
];

/// One repetition's value of an expectation's figure, or why it has none.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RepValue {
    /// `rep-01`, ...
    pub repetition: String,
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An `[[expect]]` judged over the repetitions (`stat`, default `all`):
/// pass, fail, inconclusive (a `ci` interval straddles the bound) or
/// cannot-evaluate (no repetition gives the figure; for `all`, any
/// repetition does not).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExpectVerdict {
    pub figure: String,
    /// `null`: the whole run.
    pub phase: Option<String>,
    pub stat: Stat,
    pub op: crate::report::spec::CompareOp,
    pub bound: f64,
    pub unit: String,
    pub status: CaseOutcome,
    /// The repetitions' values, in order.
    pub values: Vec<RepValue>,
    /// The statistic judged (`stats::verdict`), when it could be.
    pub verdict: Option<crate::stats::verdict::DistVerdict>,
    /// One line: what was measured against what.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl ExpectVerdict {
    /// `fsync.per_block in phase load: all <= 1`.
    pub fn name(&self) -> String {
        let scope = crate::report::expect::scope(self.phase.as_deref());
        format!(
            "{} {scope}: {} {} {}",
            self.figure,
            self.stat.name(),
            self.op.symbol(),
            crate::report::render::num(self.bound)
        )
    }

    fn case(&self) -> Case {
        Case {
            name: self.name(),
            outcome: self.status,
            message: self.detail.clone(),
        }
    }

    /// `FAIL fsync.per_block in phase load: all <= 1: ...`.
    pub fn sentence(&self) -> String {
        let word = match self.status {
            CaseOutcome::Pass => "PASS",
            CaseOutcome::Fail => "FAIL",
            CaseOutcome::Inconclusive => "INCONCLUSIVE",
            CaseOutcome::CannotEvaluate => "CANNOT EVALUATE",
        };
        format!("{word} {}: {}", self.name(), self.detail)
    }
}

/// Judges each expectation over the repetitions in the statistics: each
/// repetition's value as `report` computes it (its phase, or the whole run
/// merged), then the `stat` of those values ([`judge`]).
fn judge_expectations(
    loaded: &[(u32, Bundle)],
    reps: &[Repetition],
    specs: &[ExpectSpec],
    settings: &Settings,
) -> Vec<ExpectVerdict> {
    // per repetition, one verdict per spec (the single-run evaluation)
    let per_rep: Vec<(String, Vec<crate::report::expect::Verdict>)> = loaded
        .iter()
        .map(|(k, b)| {
            let dir = reps
                .get(*k as usize - 1)
                .map(|r| r.dir.clone())
                .unwrap_or_else(|| format!("rep-{k:02}"));
            (dir, evaluate_all(b, specs).verdicts)
        })
        .collect();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let stat = spec.stat.unwrap_or(Stat::All);
            let mut unit = String::new();
            let values: Vec<RepValue> = per_rep
                .iter()
                .map(|(dir, vs)| {
                    let v = &vs[i];
                    unit.clone_from(&v.unit);
                    RepValue {
                        repetition: dir.clone(),
                        value: v.value.filter(|_| v.status != Status::CannotEvaluate),
                        reason: v.reason.clone(),
                    }
                })
                .collect();
            let mut out = ExpectVerdict {
                figure: spec.figure.clone(),
                phase: spec.phase.clone(),
                stat,
                op: spec.op,
                bound: spec.value,
                unit,
                status: CaseOutcome::CannotEvaluate,
                values,
                verdict: None,
                detail: String::new(),
                why: spec.why.clone(),
            };
            let missing: Vec<String> = out
                .values
                .iter()
                .filter(|v| v.value.is_none())
                .map(|v| {
                    format!(
                        "{}: {}",
                        v.repetition,
                        v.reason.as_deref().unwrap_or("no value")
                    )
                })
                .collect();
            let have: Vec<(String, f64)> = out
                .values
                .iter()
                .filter_map(|v| v.value.map(|x| (v.repetition.clone(), x)))
                .collect();
            if have.is_empty() {
                out.detail = if missing.is_empty() {
                    "no repetition is in the statistics".into()
                } else {
                    format!("no repetition gives the figure ({})", missing.join("; "))
                };
                return out;
            }
            if stat == Stat::All && !missing.is_empty() {
                out.detail = format!(
                    "`all` needs every repetition, and {} cannot be evaluated",
                    missing.join("; ")
                );
                return out;
            }
            let xs: Vec<f64> = have.iter().map(|(_, x)| *x).collect();
            match judge(&spec.figure, &xs, stat, spec.op, spec.value, settings) {
                Ok(v) => {
                    out.status = match v.outcome {
                        crate::stats::verdict::Outcome::Pass => CaseOutcome::Pass,
                        crate::stats::verdict::Outcome::Fail => CaseOutcome::Fail,
                        crate::stats::verdict::Outcome::Inconclusive => CaseOutcome::Inconclusive,
                    };
                    let failing: Vec<&str> = v
                        .failing
                        .iter()
                        .filter_map(|&j| have.get(j - 1).map(|(d, _)| d.as_str()))
                        .collect();
                    out.detail = if failing.is_empty() {
                        v.detail.clone()
                    } else {
                        format!("{} break it: {}", failing.join(", "), v.detail)
                    };
                    if !missing.is_empty() {
                        out.detail +=
                            &format!("; left out (cannot be evaluated): {}", missing.join("; "));
                    }
                    out.verdict = Some(v);
                }
                Err(e) => out.detail = e.to_string(),
            }
            out
        })
        .collect()
}

/// The run's exit from the expectations over the repetitions: 1 when one
/// fails or cannot be evaluated, else 4 when one is inconclusive, else 0.
fn expectations_exit(v: &[ExpectVerdict]) -> Exit {
    if v.iter()
        .any(|e| matches!(e.status, CaseOutcome::Fail | CaseOutcome::CannotEvaluate))
    {
        Exit::CheckFailed
    } else if v.iter().any(|e| e.status == CaseOutcome::Inconclusive) {
        Exit::Inconclusive
    } else {
        Exit::Ok
    }
}

/// The summary as a table, one row per phase and figure, then the
/// expectations' verdicts.
fn markdown(f: &SummaryFile) -> String {
    let mut out = format!(
        "# {}: {} repetitions in the statistics\n\n",
        f.scenario,
        f.repetitions.len()
    );
    if !f.excluded.is_empty() {
        out.push_str(&format!(
            "Left out of the statistics: {}.\n\n",
            f.excluded.join(", ")
        ));
    }
    if !f.expectations.is_empty() {
        out.push_str("## Expectations over the repetitions\n\n");
        for e in &f.expectations {
            out.push_str(&format!("- {}\n", e.sentence()));
        }
        out.push_str("\n## Figures\n\n");
    }
    out.push_str("Median with its 95% interval (docs/STATISTICS.md), min, max, coefficient of variation.\n\n");
    out.push_str("| phase | figure | n | summary |\n| --- | --- | ---: | --- |\n");
    for s in &f.figures {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            s.phase.as_deref().unwrap_or("run"),
            s.figure,
            s.n,
            s.sentence()
        ));
    }
    out
}

/// Whether `dir` is a parent bundle (its manifest's `kind`).
pub fn is_parent(dir: &Path) -> bool {
    bundle::read_small(&dir.join(bundle::MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["kind"] == PARENT_KIND)
}

/// `verify` on a parent bundle: its manifest, the summary files, and every
/// repetition (present, its manifest unchanged, and its own files).
pub fn verify(dir: &Path) -> Result<(ParentManifest, Vec<String>), Failure> {
    let mpath = dir.join(bundle::MANIFEST);
    let bytes = bundle::read_small(&mpath)
        .map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", mpath.display())))?;
    let m: ParentManifest = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::usage(anyhow::anyhow!(
            "{} is not a valid parent manifest: {e}",
            mpath.display()
        ))
    })?;
    let mut problems = Vec::new();
    for (rel, want) in &m.files {
        if let Err(why) = bundle::check_key(rel) {
            problems.push(Problem::BadKey(rel.clone(), why).to_string());
            continue;
        }
        match bundle::hash_file(&dir.join(rel)) {
            Ok(got) if &got == want => {}
            Ok(_) => problems.push(Problem::Changed(rel.clone()).to_string()),
            Err(_) => problems.push(Problem::Missing(rel.clone()).to_string()),
        }
    }
    let mut listed = std::collections::BTreeSet::new();
    for r in &m.repetitions {
        if bundle::check_key(&r.dir).is_err() || r.dir.contains('/') {
            problems.push(format!("refused repetition directory {:?}", r.dir));
            continue;
        }
        listed.insert(r.dir.clone());
        let rdir = dir.join(&r.dir);
        let Some(want) = &r.manifest_blake3 else {
            continue; // a repetition that sealed nothing: named, nothing to check
        };
        if !rdir.is_dir() {
            problems.push(format!("missing repetition: {}", r.dir));
            continue;
        }
        match bundle::hash_file(&rdir.join(bundle::MANIFEST)) {
            Ok(got) if &got == want => {}
            Ok(_) => problems.push(format!(
                "changed: {}/manifest.json (BLAKE3 differs from the parent manifest)",
                r.dir
            )),
            Err(_) => problems.push(format!("missing: {}/manifest.json", r.dir)),
        }
        match bundle::verify(&rdir) {
            Ok((_, ps)) => problems.extend(ps.iter().map(|p| format!("{}: {p}", r.dir))),
            Err(e) => problems.push(format!("{}: {e}", r.dir)),
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("rep-") && !listed.contains(&name) {
                problems.push(format!("extra: {name} (a repetition not in the manifest)"));
            }
        }
    }
    Ok((m, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::spec::CompareOp;

    fn v(status: CaseOutcome) -> ExpectVerdict {
        ExpectVerdict {
            figure: "fsync.per_block".into(),
            phase: Some("load".into()),
            stat: Stat::Ci,
            op: CompareOp::Le,
            bound: 1.0,
            unit: "calls/block".into(),
            status,
            values: Vec::new(),
            verdict: None,
            detail: "d".into(),
            why: None,
        }
    }

    /// Inconclusive has its own exit code (4), below a failure (1).
    #[test]
    fn expectations_decide_the_exit() {
        use CaseOutcome::*;
        assert_eq!(expectations_exit(&[]), Exit::Ok);
        assert_eq!(expectations_exit(&[v(Pass)]), Exit::Ok);
        assert_eq!(
            expectations_exit(&[v(Pass), v(Inconclusive)]),
            Exit::Inconclusive
        );
        assert_eq!(
            expectations_exit(&[v(Inconclusive), v(Fail)]),
            Exit::CheckFailed
        );
        assert_eq!(expectations_exit(&[v(CannotEvaluate)]), Exit::CheckFailed);
        assert_eq!(
            v(Inconclusive).sentence(),
            "INCONCLUSIVE fsync.per_block in phase load: ci <= 1: d"
        );
    }
}
