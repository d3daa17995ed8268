//! The JSON Schemas of qfc-lab's machine-readable outputs (issue 15), one
//! registry: each entry names the Rust type a file is written from, the
//! schema file under `docs/schema/` derived from that type
//! ([`schemars`], JSON Schema 2020-12), and the bundle paths it describes.
//!
//! The schemas are derived, not hand-written, so a field cannot be added to
//! an output without its schema changing; `lab/tests/schema.rs` fails when
//! a committed schema (or `index.json`, [`index`], or `README.md`, [`readme`]) differs from the derived
//! one (`QFC_BLESS=1` rewrites them). Real bundles are validated against
//! the committed files by `scripts/validate-schemas.py` (Python's
//! `jsonschema`, a validator this project did not write), in
//! `lab/tests/run_local.rs` and in the noise bench.
//!
//! The registry covers every JSON output of a run (the evidence files, and
//! the derived `verdicts.json` and `figures.json`), of a parent bundle of
//! repetitions and of `diff`. The derived outputs carry `schema_version`
//! ([`SCHEMA_VERSION`]; [`OutputSchema::versioned`]): it changes when a
//! field is removed or changes meaning, not when one is added. The
//! evidence files are versioned by their manifest's `format`.

mod version;
/// The version of every output in [`SCHEMAS`] (a leaf: `schema/version.rs`).
pub use version::SCHEMA_VERSION;

/// Where an output lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A single run's bundle: also `rep-*/...` inside a parent bundle.
    Run,
    /// A parent bundle of repetitions (`run --repeat`), or `diff --out`.
    Other,
}

/// One machine-readable output.
pub struct OutputSchema {
    /// File name under `docs/schema/`.
    pub file: &'static str,
    /// What it describes, for the schema's `description` and docs.
    pub title: &'static str,
    /// Paths relative to a bundle (or a `diff --out` directory) that hold
    /// this output; `*` matches one path segment. A [`Scope::Run`] output
    /// is also found under `rep-*/` ([`OutputSchema::all_paths`]).
    pub paths: &'static [&'static str],
    pub scope: Scope,
    /// JSON lines: each line is one document of the schema.
    pub lines: bool,
    /// Carries `schema_version` ([`SCHEMA_VERSION`]): the lab's own derived
    /// outputs (figures, verdicts, summaries, diffs). The evidence files
    /// are versioned by their bundle's manifest (`format`).
    pub versioned: bool,
    /// The schema, derived from the type the file is written from.
    pub derive: fn() -> schemars::Schema,
}

impl OutputSchema {
    /// [`OutputSchema::paths`], and for a run's output the same under `rep-*/`.
    pub fn all_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self.paths.iter().map(|p| p.to_string()).collect();
        if self.scope == Scope::Run {
            out.extend(self.paths.iter().map(|p| format!("rep-*/{p}")));
        }
        out
    }
}

/// Whether the bundle-relative path `rel` matches `pattern` (`*` matches
/// within one path segment; `scripts/validate-schemas.py` matches the same way).
pub fn matches(pattern: &str, rel: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let r: Vec<&str> = rel.split('/').collect();
    p.len() == r.len() && p.iter().zip(&r).all(|(a, b)| segment_matches(a, b))
}

/// `*` in `pat` matches any run of characters of one segment.
fn segment_matches(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, tail)) => {
            s.len() >= head.len()
                && s.starts_with(head)
                && (0..=s.len() - head.len()).any(|i| {
                    s.is_char_boundary(head.len() + i)
                        && segment_matches(tail, &s[head.len() + i..])
                })
        }
    }
}

/// `manifest.json` is either a run's or a parent bundle's: one schema
/// accepting exactly one of the two (each requires fields the other does
/// not have, and the parent's refuses unknown fields).
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum AnyManifest {
    Run(crate::bundle::Manifest),
    Parent(crate::repeat::ParentManifest),
}

/// The schema of `T`, derived (a function pointer in [`OutputSchema::derive`]).
fn schema_of<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(T)
}

const fn run(
    file: &'static str,
    title: &'static str,
    paths: &'static [&'static str],
    versioned: bool,
    derive: fn() -> schemars::Schema,
) -> OutputSchema {
    OutputSchema {
        file,
        title,
        paths,
        scope: Scope::Run,
        lines: false,
        versioned,
        derive,
    }
}

/// The registry: every JSON output of `run`, `run --repeat` and `diff`.
pub const SCHEMAS: &[OutputSchema] = &[
    run(
        "verdicts.schema.json",
        "A run's [[expect]] verdicts: each with pass, fail or cannot-evaluate (verdicts.json)",
        &["verdicts.json"],
        true,
        schema_of::<crate::report::expect::Verdicts>,
    ),
    run(
        "figures.schema.json",
        "A run's key figures by phase, and those that could not be evaluated with the reason (figures.json)",
        &["figures.json"],
        true,
        schema_of::<crate::report::figures_file::FiguresFile>,
    ),
    OutputSchema {
        file: "summary.schema.json",
        title: "The figures of repeated runs over their repetitions (median, its interval, min, max, variation), and the expectations judged over them (summary/summary.json)",
        paths: &["summary/summary.json"],
        scope: Scope::Other,
        lines: false,
        versioned: true,
        derive: schema_of::<crate::repeat::SummaryFile>,
    },
    OutputSchema {
        file: "diff.schema.json",
        title: "The noise-aware diff of two bundles: per figure the change of the median with its interval, the rank test, the adjusted p, the verdict and the gate (diff --json, diff.json)",
        paths: &["diff.json"],
        scope: Scope::Other,
        lines: false,
        versioned: true,
        derive: schema_of::<crate::report::diff::RepeatedDiff>,
    },
    run(
        "manifest.schema.json",
        "A bundle's manifest: a run's (status, reasons, scenario, node binary, every file's BLAKE3) or a parent bundle's of repetitions (every repetition and the BLAKE3 of its manifest) (manifest.json)",
        &["manifest.json"],
        false,
        schema_of::<AnyManifest>,
    ),
    run(
        "context.schema.json",
        "What the run recorded about the target and the node: target details, command outputs, the thread census (context.json)",
        &["context.json"],
        false,
        schema_of::<crate::context_file::Context>,
    ),
    run(
        "cmdline.schema.json",
        "The node's command line as the run started it, its environment and ports (node/cmdline.json)",
        &["node/cmdline.json"],
        false,
        schema_of::<crate::context_file::NodeCmdline>,
    ),
    run(
        "timeline.schema.json",
        "The run's events and phase windows, monotonic nanoseconds (timeline.json)",
        &["timeline.json"],
        false,
        schema_of::<bundle_schema::timeline::Timeline>,
    ),
    run(
        "failure.schema.json",
        "The failures of a plug-in (probes, load) that did not stop the run (probes/failure.json, load/failure.json)",
        &["probes/failure.json", "load/failure.json"],
        false,
        schema_of::<Vec<crate::bundle::PluginFailure>>,
    ),
    run(
        "seed-db.schema.json",
        "What seeding the node's datadir wrote, with its digest (load/seed_db.json)",
        &["load/seed_db.json"],
        false,
        schema_of::<bundle_schema::load::SeedReport>,
    ),
    run(
        "load-summary.schema.json",
        "What the load generator did in one phase: per workload counts, latency, pacing, the instrument floor (load/<phase>/summary.json)",
        &["load/*/summary.json"],
        false,
        schema_of::<bundle_schema::load::PhaseSummary>,
    ),
    run(
        "load-series.schema.json",
        "The load generator's per-second series of one phase, by workload (load/<phase>/series.json)",
        &["load/*/series.json"],
        false,
        schema_of::<bundle_schema::load::Series>,
    ),
    OutputSchema {
        file: "metrics-line.schema.json",
        title: "One line of the node's scraped metrics series (metrics/series.jsonl, JSON lines)",
        paths: &["metrics/series.jsonl"],
        scope: Scope::Run,
        lines: true,
        versioned: false,
        derive: schema_of::<bundle_schema::metrics::MetricsLine>,
    },
    run(
        "probe-session.schema.json",
        "The probe session: its options, attach points, every phase window with lost events, stack quality and cost (probes/session.json)",
        &["probes/session.json"],
        false,
        schema_of::<bundle_schema::probes::Session>,
    ),
    run(
        "probe-syscalls.schema.json",
        "A syscall probe's phase: log2 latency histograms by syscall, thread and process (probes/<phase>/fsync.json, writepath.json)",
        &["probes/*/fsync.json", "probes/*/writepath.json"],
        false,
        schema_of::<bundle_schema::probes::SyscallFile>,
    ),
    run(
        "probe-bio.schema.json",
        "The block-IO probe's phase: latency by device and rwbs, bytes (probes/<phase>/bio.json)",
        &["probes/*/bio.json"],
        false,
        schema_of::<bundle_schema::probes::BioFile>,
    ),
    run(
        "probe-oncpu.schema.json",
        "The on-CPU probe's phase: samples by thread and process, top frames, stacks (probes/<phase>/oncpu.json)",
        &["probes/*/oncpu.json"],
        false,
        schema_of::<bundle_schema::probes::OncpuFile>,
    ),
    run(
        "probe-offcpu.schema.json",
        "The off-CPU probe's phase: blocked time by class, thread and process, stacks (probes/<phase>/offcpu.json)",
        &["probes/*/offcpu.json"],
        false,
        schema_of::<bundle_schema::probes::OffcpuFile>,
    ),
];

/// The schema file's text: the derived schema with its `$id` and
/// `description`, pretty-printed, newline-terminated.
pub fn render(s: &OutputSchema) -> String {
    let mut schema = (s.derive)();
    schema.insert(
        "$id".into(),
        format!(
            "https://qfc-lab.invalid/schema/v{SCHEMA_VERSION}/{}",
            s.file
        )
        .into(),
    );
    schema.insert("description".into(), s.title.into());
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// `docs/schema/index.json`: every schema file with its title, the
/// bundle paths it describes (`*` matches within one path segment) and
/// whether it is JSON lines, for validators outside Rust
/// (`scripts/validate-schemas.py`).
pub fn index() -> String {
    let schemas: Vec<serde_json::Value> = SCHEMAS
        .iter()
        .map(|s| {
            serde_json::json!({
                "file": s.file,
                "title": s.title,
                "paths": s.all_paths(),
                "lines": s.lines,
            })
        })
        .collect();
    let doc = serde_json::json!({"schema_version": SCHEMA_VERSION, "schemas": schemas});
    serde_json::to_string_pretty(&doc).expect("the index serializes") + "\n"
}

/// `docs/schema/README.md`: the table of [`SCHEMAS`].
pub fn readme() -> String {
    let mut o = String::from(README_HEAD);
    for s in SCHEMAS {
        let paths: Vec<String> = s.all_paths().iter().map(|p| format!("`{p}`")).collect();
        o.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.file,
            s.title.replace('|', "\\|"),
            paths.join(", "),
            if s.versioned {
                "yes"
            } else {
                "no (the manifest's `format`)"
            }
        ));
    }
    o.push_str(README_TAIL);
    o
}

const README_HEAD: &str = "# JSON Schemas of qfc-lab's machine-readable outputs

Generated by `lab::schema` (`QFC_BLESS=1 cargo nextest run -E 'binary(schema)'`);
do not edit. Each schema is derived from the Rust type its output is written from
(JSON Schema 2020-12), so a field cannot be added to an output without its schema
changing: `binary(schema)` fails when a file here differs from its type.
`index.json` maps bundle paths (`*` matches one path segment) to schemas;
`scripts/validate-schemas.py DIR...` validates every JSON output under a bundle,
a parent bundle of repetitions or a `diff --out` directory with Python's
`jsonschema` (a validator this project did not write).

| schema | describes | paths | `schema_version` |
|---|---|---|---|
";

const README_TAIL: &str = "
The lab's own derived outputs (verdicts, figures, summaries, diffs) carry
`schema_version`: it changes when a field is removed or changes meaning;
adding a field does not change it, so readers should ignore fields they do not
know. The evidence files (manifest, context, timeline, load, metrics, probes)
are versioned by their bundle's manifest (`format`).

Numbers: a figure that cannot be computed is `null`, never `NaN`.
`probes/session.json`'s options, the probe files' scope and a load summary's
load configuration are the producers' own types, described here as any JSON
value: the report does not read them.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_within_one_segment() {
        assert!(matches("probes/*/fsync.json", "probes/load/fsync.json"));
        assert!(!matches("probes/*/fsync.json", "probes/a/b/fsync.json"));
        assert!(matches("rep-*/figures.json", "rep-01/figures.json"));
        assert!(!matches("rep-*/figures.json", "figures.json"));
        assert!(matches("manifest.json", "manifest.json"));
        assert!(!matches("load/*/summary.json", "load/summary.json"));
    }
}
