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
//! docs/STATISTICS.md). The parent `manifest.json` (kind
//! [`PARENT_KIND`]) lists every repetition with the BLAKE3 of its own
//! manifest, and hashes the summary files; [`verify`] checks all of it and
//! every repetition.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::{self, Problem};
use crate::cli::RunArgs;
use crate::report::evidence::{Bundle, PhaseEvidence};
use crate::report::figures::{eval_name, parse_figure, Ctx};
use crate::stats::summary::{summarize, Summary};
use crate::stats::{Direction, Sample, Series, Settings};
use crate::{orchestrate, scenario, signals, Exit, Failure};

/// `kind` of a parent bundle's manifest.
pub const PARENT_KIND: &str = "qfc-lab/repeated-run";
/// Version of the parent manifest and `summary/summary.json`.
pub const SCHEMA_VERSION: u32 = 1;

/// A parent bundle's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryFile {
    pub schema_version: u32,
    pub scenario: String,
    /// Repetitions whose figures are in the statistics.
    pub repetitions: Vec<String>,
    /// Repetitions left out, with the reason.
    pub excluded: Vec<String>,
    pub figures: Vec<Summary>,
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
    let files = write_summary(&parent, &s.name, &reps, excluded).map_err(|e| {
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
        files,
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
    if reps.iter().any(|r| r.exit_code == Exit::CheckFailed as u8) {
        return Err(Failure {
            exit: Exit::CheckFailed,
            errors,
        });
    }
    Ok(Exit::Ok)
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

/// The key figures of a phase: those `diff` compares, and each workload's
/// load figures.
fn key_figures(p: &PhaseEvidence) -> Vec<String> {
    let mut names: Vec<String> = crate::report::diff::DIFF_FIGURES
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in p.load.iter().flat_map(|l| l.keys()) {
        for s in crate::report::diff::LOAD_STATS {
            names.push(format!("load.{w}.{s}"));
        }
    }
    names
}

/// Per phase and key figure, one series over the repetitions in the
/// statistics (a repetition where the figure cannot be evaluated adds no
/// sample to that figure).
fn series(parent: &Path, reps: &[Repetition]) -> Result<Vec<Series>, String> {
    let mut out: BTreeMap<(String, String), Series> = BTreeMap::new();
    for (k, r) in reps.iter().enumerate() {
        if !r.in_statistics {
            continue;
        }
        let b = Bundle::load(&parent.join(&r.dir)).map_err(|e| format!("{}: {e}", r.dir))?;
        let ctx = Ctx {
            emulated: b.emulated,
        };
        for p in &b.phases {
            for name in key_figures(p) {
                let Ok(v) = eval_name(&name, p, &ctx) else {
                    continue;
                };
                if !v.is_finite() {
                    continue;
                }
                let unit = parse_figure(&name).map(|f| f.unit).unwrap_or("");
                out.entry((p.name.clone(), name.clone()))
                    .or_insert_with(|| Series {
                        name: name.clone(),
                        phase: Some(p.name.clone()),
                        unit: unit.to_string(),
                        good: Direction::None,
                        samples: Vec::new(),
                    })
                    .samples
                    .push(Sample {
                        repetition: k as u32 + 1,
                        value: v,
                    });
            }
        }
    }
    Ok(out.into_values().collect())
}

/// Writes `summary/summary.json` and `summary/summary.md`; returns their
/// hashes for the parent manifest.
fn write_summary(
    parent: &Path,
    scenario: &str,
    reps: &[Repetition],
    excluded: Vec<String>,
) -> std::io::Result<BTreeMap<String, String>> {
    let settings = Settings::default();
    let all = series(parent, reps).map_err(std::io::Error::other)?;
    let figures: Vec<Summary> = all
        .iter()
        .filter_map(|s| summarize(s, &settings).ok())
        .collect();
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
    };
    let dir = parent.join("summary");
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    bundle::write_atomic(&dir.join("summary.json"), &json)?;
    bundle::write_atomic(&dir.join("summary.md"), markdown(&file).as_bytes())?;
    let mut hashes = BTreeMap::new();
    for f in ["summary/summary.json", "summary/summary.md"] {
        hashes.insert(f.to_string(), bundle::hash_file(&parent.join(f))?);
    }
    Ok(hashes)
}

/// The summary as a table, one row per phase and figure.
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
