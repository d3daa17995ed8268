//! The JSON Schemas under docs/schema/ are the ones derived from the types
//! the outputs are written from (`lab::schema::SCHEMAS`): a committed file
//! that differs from its type, or is missing, fails (`QFC_BLESS=1`
//! rewrites them; `vm::testing::golden`), and so does `index.json`, the
//! paths each schema describes. That real bundles validate against these
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
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_schema_requires_its_version() {
    for s in lab::schema::SCHEMAS {
        let schema: serde_json::Value = serde_json::from_str(&lab::schema::render(s)).unwrap();
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert!(
            required.iter().any(|r| r == "schema_version"),
            "{}: schema_version is not required: {required:?}",
            s.file
        );
    }
}
