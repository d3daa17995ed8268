//! Findings report, expectations with verdicts, before/after diff and the T1 baseline.
//!
//! Entry points (used by the `qfc-lab` CLI and by `run`):
//! - [`render_bundle`]: reads a bundle, evaluates `[[expect]]`, writes `report.md`,
//!   `report.html`, `verdicts.json` (and as JUnit XML, `verdicts.junit.xml`),
//!   the key figures as `figures.json` and OpenMetrics `figures.om`
//!   ([`figures_file`]), and `timeline.svg`; `run` calls [`finish_run`] last
//!   and exits 1 when [`Verdicts::any_failed`].
//! - [`diff_bundles`]: `qfc-lab diff A B [--out DIR]`.
//! - [`import_t1`]: `qfc-lab import-t1 DIR [--bundle B]`.
//! - [`findings_t1`]: `qfc-lab findings t1 BUNDLE... [--baseline T1DIR]`.
//!
//! Figure names are documented in docs/FIGURES.md; the input formats are read in
//! [`inputs`] only.

pub mod bpftrace;
pub mod charts;
pub mod cli;
pub mod diff;
pub mod error;
pub mod evidence;
pub mod expect;
pub mod figures;
pub mod figures_file;
pub mod findings;
pub mod folded;
pub mod hist;
pub mod inputs;
pub mod loader;
pub mod render;
pub mod spec;
pub mod t1;
pub mod t1_findings;

use std::path::{Path, PathBuf};

pub use error::ReportError;

pub use evidence::Bundle;
pub use expect::{ExpectSpec, Verdicts};
pub use figures::{parse_figure, FigureError};

/// Options of `qfc-lab report`.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// A T1-format directory to compare with.
    pub baseline: Option<PathBuf>,
}

/// What `render_bundle` wrote and decided.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdicts: Verdicts,
    pub written: Vec<PathBuf>,
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|e| ReportError::Write {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The files [`render_bundle`] writes into a bundle (derived: they can be
/// rendered again from the rest).
pub const RENDERED_FILES: [&str; 7] = [
    "timeline.svg",
    "report.md",
    "report.html",
    "verdicts.json",
    "verdicts.junit.xml",
    "figures.json",
    "figures.om",
];

/// Renders the report of a bundle in place ([`RENDERED_FILES`]).
#[tracing::instrument(skip(opts))]
pub fn render_bundle(dir: &Path, opts: &RenderOptions) -> Result<Outcome, ReportError> {
    let b = Bundle::load(dir)?;
    let verdicts = expect::evaluate_all(&b, &b.scenario.expect);
    let baseline = match &opts.baseline {
        Some(t) => Some(t1::import(t)?),
        None => None,
    };
    let doc = findings::build_report(&b, &verdicts, baseline.as_ref());
    let figures = figures_file::figures_of(&b);
    let mut written = Vec::new();
    let (svg, _) = charts::timeline_svg(&b);
    if let Some(svg) = svg {
        let p = dir.join("timeline.svg");
        write(&p, &svg)?;
        written.push(p);
    }
    for (name, text) in [
        ("report.md", doc.to_markdown()),
        ("report.html", doc.to_html()),
        (
            "verdicts.json",
            serde_json::to_string_pretty(&verdicts).expect("verdicts serialize") + "\n",
        ),
        ("verdicts.junit.xml", verdicts.junit()),
        (
            "figures.json",
            serde_json::to_string_pretty(&figures).expect("figures serialize") + "\n",
        ),
        ("figures.om", figures_file::openmetrics(&figures)),
    ] {
        let p = dir.join(name);
        write(&p, &text)?;
        written.push(p);
    }
    tracing::info!(
        pass = verdicts.pass,
        fail = verdicts.fail,
        cannot = verdicts.cannot_evaluate,
        "report written"
    );
    Ok(Outcome { verdicts, written })
}

/// The last step of `qfc-lab run`: render the report; the caller exits 1 when
/// `outcome.verdicts.any_failed()`.
pub fn finish_run(dir: &Path) -> Result<Outcome, ReportError> {
    render_bundle(dir, &RenderOptions::default())
}

/// Result of `diff_bundles`.
#[derive(Debug, Clone)]
pub struct DiffOutcome {
    pub markdown: String,
    pub sentences: Vec<String>,
    pub written: Vec<PathBuf>,
}

/// Compares two bundles; with `out`, writes `diff.md`, `diff.html` and the differential
/// flame graphs there.
pub fn diff_bundles(a: &Path, b: &Path, out: Option<&Path>) -> Result<DiffOutcome, ReportError> {
    let ba = Bundle::load(a)?;
    let bb = Bundle::load(b)?;
    let r = diff::diff(&ba, &bb);
    let markdown = r.doc.to_markdown();
    let mut written = Vec::new();
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
            path: out.to_path_buf(),
            source: e,
        })?;
        for (name, svg) in &r.files {
            let p = out.join(name);
            write(&p, svg)?;
            written.push(p);
        }
        for (name, text) in [
            ("diff.md", markdown.clone()),
            ("diff.html", r.doc.to_html()),
        ] {
            let p = out.join(name);
            write(&p, &text)?;
            written.push(p);
        }
    }
    Ok(DiffOutcome {
        markdown,
        sentences: r.sentences,
        written,
    })
}

/// Reads a T1-format directory and renders its findings (and, with `bundle`, the lab
/// bundle's figures next to T1's) as Markdown.
pub fn import_t1(dir: &Path, bundle: Option<&Path>) -> Result<String, ReportError> {
    let t1 = t1::import(dir)?;
    let ctx = figures::Ctx {
        emulated: Some(false),
    };
    let mut doc = render::Doc {
        title: format!("T1 baseline: {}", dir.display()),
        blocks: Vec::new(),
    };
    match bundle {
        Some(bdir) => {
            let b = Bundle::load(bdir)?;
            doc.h(1, format!("Lab bundle {} compared with T1", bdir.display()));
            if b.emulated == Some(true) {
                doc.warn("the lab bundle comes from an emulated target: compare shares and counts, not times");
            }
            findings::baseline_table(
                &mut doc,
                &b.phases,
                &t1,
                &figures::Ctx {
                    emulated: b.emulated,
                },
            );
        }
        None => {
            doc.h(1, "Headline figures");
            findings::baseline_table(&mut doc, &[], &t1, &ctx);
        }
    }
    doc.h(1, "T1 findings");
    findings::phase_findings(&mut doc, &t1, &ctx, None);
    Ok(doc.to_markdown())
}

/// Judges T1's four findings against one or more bundles; with `baseline`, T1's own
/// figures are shown beside the lab's. Returns the verdicts and the Markdown.
pub fn findings_t1(
    bundles: &[PathBuf],
    baseline: Option<&Path>,
) -> Result<(t1_findings::Judgement, String), ReportError> {
    let loaded = bundles
        .iter()
        .map(|b| Bundle::load(b))
        .collect::<Result<Vec<_>, _>>()?;
    let t1 = match baseline {
        Some(t) => Some(t1::import(t)?),
        None => None,
    };
    Ok(t1_findings::render(&loaded, t1.as_ref()))
}
