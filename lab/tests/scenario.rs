//! Scenario parsing: golden error messages for malformed files
//! (`tests/data/scenario/<case>/input.toml` -> `expected.txt`, rewritten
//! only with `QFC_BLESS=1`; a missing one fails), every file in `scenarios/`
//! parses, and the parser never panics on random or mutated input (issue 2).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenario")
}

fn render(src: &str) -> String {
    match lab::scenario::parse("input.toml", src) {
        Ok(s) => format!("ok: {}\n", s.name),
        Err(e) => format!("{e}\n"),
    }
}

#[test]
fn golden_errors() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(data())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "golden cases missing under {}",
        data().display()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let src = std::fs::read_to_string(case.join("input.toml")).unwrap();
            vm::testing::golden(&case.join("expected.txt"), &render(&src)).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each golden case must be an error naming the line and the field.
#[test]
fn golden_errors_name_line_and_field() {
    let want = [
        (
            "unknown-key",
            9,
            "phase[0].durration_s",
            Some("did you mean `duration_s`?"),
        ),
        ("wrong-type", 9, "phase[0].duration_s", None),
        ("missing-phase-duration", 11, "phase[1].duration_s", None),
        ("negative-rate", 16, "phase[1].load.rpc.rate_per_s", None),
        ("unknown-target-kind", 5, "target.kind", None),
        ("refnode-knobs-on-qfc-node", 8, "node.refnode", None),
        (
            "unknown-rpc-method",
            12,
            "phase[0].load.rpc.mix.eth_blockNumbr",
            Some("did you mean `eth_blockNumber`?"),
        ),
    ];
    for (case, line, field, hint) in want {
        let src = std::fs::read_to_string(data().join(case).join("input.toml")).unwrap();
        let err = lab::scenario::parse("input.toml", &src).expect_err(case);
        let lab::scenario::ScenarioError::Invalid(d) = err else {
            panic!("{case}: not a located error")
        };
        assert_eq!((d.line, d.field.as_str()), (line, field), "{case}: {d}");
        if let Some(h) = hint {
            assert_eq!(d.hint.as_deref(), Some(h), "{case}");
        }
    }
}

#[test]
fn every_scenario_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            lab::scenario::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "expected the five scenarios, found {n}");
    let on = lab::scenario::load(
        &dir.join("fsync-policy.toml"),
        &["node.refnode.synced_commit=true".into()],
    )
    .unwrap();
    assert!(on.scenario.node.refnode.unwrap().synced_commit);
}

fn check_no_panic(src: &str) {
    match lab::scenario::parse("fuzz.toml", src) {
        Ok(_) => {}
        Err(lab::scenario::ScenarioError::Invalid(d)) => {
            assert!(d.line >= 1 && d.column >= 1);
            assert!(!d.message.is_empty() && !d.field.is_empty(), "{d:?}");
            let _ = d.to_string();
        }
        Err(e) => panic!("parse returned a non-located error: {e}"),
    }
}

const SMOKE: &str = include_str!("../../scenarios/smoke.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,400}") {
        check_no_panic(&s);
    }

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_no_panic(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn mutated_scenarios_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[-\\[\\]={}\",.#0-9a-z_ \n]{0,6}"), 1..6)
    ) {
        let mut s = SMOKE.as_bytes().to_vec();
        for (at, kind, text) in edits {
            let i = at.index(s.len().max(1));
            match kind {
                0 => { s.truncate(i); }
                1 => { s.splice(i..i, text.bytes()); }
                2 => { let end = (i + text.len()).min(s.len()); s.drain(i..end); }
                _ => { if i < s.len() { s[i] ^= 0x20; } }
            }
        }
        check_no_panic(&String::from_utf8_lossy(&s));
    }
}
