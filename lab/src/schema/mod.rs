//! The JSON Schemas of qfc-lab's machine-readable outputs (issue 15), one
//! registry: each entry names the Rust type a file is written from, the
//! schema file under `docs/schema/` derived from that type
//! ([`schemars`], JSON Schema 2020-12), and the bundle paths it describes.
//!
//! The schemas are derived, not hand-written, so a field cannot be added to
//! an output without its schema changing; `lab/tests/schema.rs` fails when
//! a committed schema (or `index.json`, [`index`]) differs from the derived
//! one (`QFC_BLESS=1` rewrites them). Real bundles are validated against
//! the committed files by `scripts/validate-schemas.py` (Python's
//! `jsonschema`, a validator this project did not write), in
//! `lab/tests/run_local.rs` and in the noise bench.
//!
//! Every output listed here carries `schema_version` ([`SCHEMA_VERSION`]):
//! it changes when a field is removed or changes meaning, not when one is
//! added.

mod version;
/// The version of every output in [`SCHEMAS`] (a leaf: `schema/version.rs`).
pub use version::SCHEMA_VERSION;

/// One machine-readable output.
pub struct OutputSchema {
    /// File name under `docs/schema/`.
    pub file: &'static str,
    /// What it describes, for the schema's `description` and docs.
    pub title: &'static str,
    /// Paths relative to a bundle (or a `diff --out` directory) that hold
    /// this output; `*` matches one path segment.
    pub paths: &'static [&'static str],
    /// The schema, derived from the type the file is written from.
    pub derive: fn() -> schemars::Schema,
}

fn verdicts() -> schemars::Schema {
    schemars::schema_for!(crate::report::expect::Verdicts)
}
fn summary() -> schemars::Schema {
    schemars::schema_for!(crate::repeat::SummaryFile)
}
fn parent_manifest() -> schemars::Schema {
    schemars::schema_for!(crate::repeat::ParentManifest)
}
fn diff() -> schemars::Schema {
    schemars::schema_for!(crate::report::diff::RepeatedDiff)
}

/// The registry.
pub const SCHEMAS: &[OutputSchema] = &[
    OutputSchema {
        file: "verdicts.schema.json",
        title: "A run's [[expect]] verdicts (verdicts.json)",
        paths: &["verdicts.json", "rep-*/verdicts.json"],
        derive: verdicts,
    },
    OutputSchema {
        file: "summary.schema.json",
        title: "The figures of repeated runs over their repetitions, and the expectations judged over them (summary/summary.json)",
        paths: &["summary/summary.json"],
        derive: summary,
    },
    OutputSchema {
        file: "parent-manifest.schema.json",
        title: "The manifest of a parent bundle of repetitions (run --repeat)",
        paths: &["manifest.json"],
        derive: parent_manifest,
    },
    OutputSchema {
        file: "diff.schema.json",
        title: "The noise-aware diff of two bundles (diff --json, diff.json)",
        paths: &["diff.json"],
        derive: diff,
    },
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

/// `docs/schema/index.json`: every schema file with its title and the
/// bundle paths it describes (`*` matches within one path segment), for
/// validators outside Rust (`scripts/validate-schemas.py`).
pub fn index() -> String {
    let schemas: Vec<serde_json::Value> = SCHEMAS
        .iter()
        .map(|s| serde_json::json!({"file": s.file, "title": s.title, "paths": s.paths}))
        .collect();
    let doc = serde_json::json!({"schema_version": SCHEMA_VERSION, "schemas": schemas});
    serde_json::to_string_pretty(&doc).expect("the index serializes") + "\n"
}
