//! The report's subcommands for the `qfc-lab` CLI: `report DIR [--baseline T1DIR]`,
//! `diff A B [--out DIR] [--fail-on-regression [T]] [--json]` (single runs; repeated bundles: `repeat::diff`), `import-t1 DIR [--bundle B]`, `findings t1 BUNDLE... [--baseline T1DIR]`. The spine's CLI flattens these
//! argument structs and calls the handlers; each returns whether an expectation failed
//! (exit 1) and the text to print.

use std::path::PathBuf;

use anyhow::Context;

/// `qfc-lab report DIR`: re-render the files of [`super::RENDERED_FILES`].
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The bundle directory (written by `qfc-lab run`)
    pub dir: PathBuf,
    /// A directory in T1's format to compare the bundle's figures with
    #[arg(long, value_name = "T1DIR")]
    pub baseline: Option<PathBuf>,
}

/// `qfc-lab diff A B`: compare two bundles phase by phase.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The bundle before the change
    pub a: PathBuf,
    /// The bundle after the change
    pub b: PathBuf,
    /// Write diff.md, diff.html and differential flame graphs here (for
    /// repeated bundles: diff.md and diff.json)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Exit 1 when a figure changed significantly in its bad direction past
    /// a threshold: `FIGURE=T` entries and a bare default `T`, comma
    /// separated, T as `10%` (of median A) or `0.5` (in the figure's unit);
    /// bare flag: any significant change in the bad direction (`0%`). Needs
    /// repeated bundles: a single run has no noise estimate and never gates
    #[arg(
        long,
        value_name = "THRESHOLDS",
        num_args = 0..=1,
        default_missing_value = "0%"
    )]
    pub fail_on_regression: Option<String>,
    /// Print the comparison as JSON (`schema_version`, per figure the
    /// statistics and verdict) instead of Markdown
    #[arg(long)]
    pub json: bool,
}

/// `qfc-lab import-t1 DIR`: T1's production figures, optionally next to a bundle's.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportT1Args {
    /// A directory holding T1's files (01-fsync-latency.txt ... 05-oncpu.folded)
    pub dir: PathBuf,
    /// A lab bundle to compare with T1
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// Write the Markdown here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `qfc-lab findings`: judge a capture's findings against lab bundles.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FindingsCommand {
    /// T1's four findings, one by one: reproduced, refuted or not comparable, with the
    /// figures on both sides, the reason and the bundle each verdict used
    T1(FindingsT1Args),
}

/// `qfc-lab findings t1 BUNDLE... [--baseline T1DIR]`.
#[derive(Debug, Clone, clap::Args)]
pub struct FindingsT1Args {
    /// Bundles written by `qfc-lab run` (e.g. a t1-aarch64 and a t1-container run); each
    /// finding takes its evidence from the bundle whose target can show it
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// A directory in T1's format (e.g. ../shared/data/t1) whose figures are shown beside
    #[arg(long, value_name = "T1DIR")]
    pub baseline: Option<PathBuf>,
    /// Write the Markdown here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Judges T1's findings; prints or writes the Markdown (exit 0 whatever the verdicts).
pub fn findings(cmd: &FindingsCommand) -> anyhow::Result<(bool, String)> {
    let FindingsCommand::T1(args) = cmd;
    let (_, md) = super::findings_t1(&args.bundles, args.baseline.as_deref())
        .context("judging T1's findings")?;
    match &args.out {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
            Ok((false, format!("wrote {}\n", p.display())))
        }
        None => Ok((false, md)),
    }
}

/// Renders a bundle's report; exit code 1 when any expectation failed or
/// could not be evaluated (a missing figure is not a pass).
pub fn report(args: &ReportArgs) -> anyhow::Result<(bool, String)> {
    let opts = super::RenderOptions {
        baseline: args.baseline.clone(),
    };
    let out = super::render_bundle(&args.dir, &opts)
        .with_context(|| format!("rendering the report of {}", args.dir.display()))?;
    let mut msg = format!(
        "{}: {} pass, {} fail, {} cannot be evaluated; wrote {}\n",
        args.dir.display(),
        out.verdicts.pass,
        out.verdicts.fail,
        out.verdicts.cannot_evaluate,
        out.written
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for v in &out.verdicts.verdicts {
        if v.status != super::expect::Status::Pass {
            msg.push_str(&format!("  {}\n", v.sentence()));
        }
    }
    Ok((
        out.verdicts.any_failed() || out.verdicts.cannot_evaluate > 0,
        msg,
    ))
}

/// `--fail-on-regression`'s thresholds, parsed (an error names the entry).
pub fn thresholds(args: &DiffArgs) -> anyhow::Result<Option<crate::stats::gate::Thresholds>> {
    args.fail_on_regression
        .as_deref()
        .map(crate::stats::gate::Thresholds::parse)
        .transpose()
        .context("--fail-on-regression")
}

/// Compares two single-run bundles phase by phase; prints the Markdown.
/// (Repeated bundles and `--json` take `repeat::diff`, the noise-aware
/// diff.) Two single runs have no noise estimate: `--fail-on-regression`
/// gates nothing and says so.
pub fn diff(args: &DiffArgs) -> anyhow::Result<(bool, String)> {
    let gated = thresholds(args)?.is_some();
    let d = super::diff_bundles(&args.a, &args.b, args.out.as_deref())
        .with_context(|| format!("comparing {} with {}", args.a.display(), args.b.display()))?;
    let mut md = d.markdown;
    if gated {
        md.push_str("\nRegression gate: nothing gated: two single runs carry no noise estimate (run both with --repeat 5).\n");
    }
    Ok((false, md))
}

/// Imports T1's files; prints or writes the Markdown.
pub fn import_t1(args: &ImportT1Args) -> anyhow::Result<(bool, String)> {
    let md = super::import_t1(&args.dir, args.bundle.as_deref())
        .with_context(|| format!("importing T1 files from {}", args.dir.display()))?;
    match &args.out {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
            Ok((false, format!("wrote {}\n", p.display())))
        }
        None => Ok((false, md)),
    }
}
