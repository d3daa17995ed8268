//! The JSON Schemas under docs/schema/ are the ones derived from the types
//! the outputs are written from (`lab::schema::SCHEMAS`): a committed file
//! that differs from its type, or is missing, fails (`QFC_BLESS=1`
//! rewrites them; `vm::testing::golden`), and so does `index.json`, the
//! paths each schema describes, and `README.md`. That real bundles validate against these
//! files is checked where real bundles are made (`run_local`'s
//! repeated-run test, with scripts/validate-schemas.py).

use std::path::Path;

#[test]
fn committed_schemas_are_the_derived_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema");
    let mut failures = Vec::new();
    for s in lab::schema::SCHEMAS {
        if let Err(e) = vm::testing::golden(&dir.join(s.file), &lab::schema::render(s)) {
            failures.push(e);
        }
    }
    if let Err(e) = vm::testing::golden(&dir.join("index.json"), &lab::schema::index()) {
        failures.push(e);
    }
    if let Err(e) = vm::testing::golden(&dir.join("README.md"), &lab::schema::readme()) {
        failures.push(e);
    }
    // no schema file is left behind by a registry entry that is gone
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".schema.json") && !lab::schema::SCHEMAS.iter().any(|s| s.file == name) {
            failures.push(format!(
                "docs/schema/{name} is not in lab::schema::SCHEMAS: remove it"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_versioned_schema_requires_its_version() {
    for s in lab::schema::SCHEMAS.iter().filter(|s| s.versioned) {
        let schema: serde_json::Value = serde_json::from_str(&lab::schema::render(s)).unwrap();
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert!(
            required.iter().any(|r| r == "schema_version"),
            "{}: schema_version is not required: {required:?}",
            s.file
        );
    }
}

/// Every JSON output of a run is in the registry: each file name a bundle
/// holds with a `.json`/`.jsonl` extension (as the producers write them,
/// collected from the fixture bundles) matches some schema's path.
#[test]
fn every_fixture_json_file_has_a_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report");
    let mut unmatched = Vec::new();
    let mut seen = 0;
    for case in ["synced-off", "synced-on"] {
        let bundle = root.join(case).join("bundle");
        for rel in files_under(&bundle) {
            if !(rel.ends_with(".json") || rel.ends_with(".jsonl")) {
                continue;
            }
            seen += 1;
            let found = lab::schema::SCHEMAS
                .iter()
                .any(|s| s.all_paths().iter().any(|p| lab::schema::matches(p, &rel)));
            if !found {
                unmatched.push(format!("{case}/{rel}"));
            }
        }
    }
    assert!(seen > 10, "only {seen} JSON files in the fixtures");
    assert!(unmatched.is_empty(), "no schema for {unmatched:?}");
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
