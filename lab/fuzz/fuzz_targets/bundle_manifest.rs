//! Fuzz target: `lab::bundle::verify` on a bundle whose manifest.json and a
//! few files come from the fuzz input (split on 0xFF, see common/mod.rs):
//! never a panic or a hang, and a manifest key that leaves the bundle
//! (`../outside.txt`, `/etc/passwd`) is always reported as a bad key, never
//! opened.
#![no_main]

mod common;

use lab::bundle::{check_key, list_entries, read_small, verify, Manifest, Problem};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] = [
    "manifest.json",
    "context.json",
    "timeline.json",
    "probes/stress/oncpu.folded",
    "load/stress/summary.json",
];

fuzz_target!(|data: &[u8]| {
    let scratch = common::scratch("bundle_manifest");
    // next to the bundle root: what `../outside.txt` would reach
    std::fs::write(scratch.join("outside.txt"), b"outside the bundle\n").unwrap();
    let root = scratch.join("b");
    common::write_bundle(&root, &FILES, data);

    let _ = list_entries(&root).expect("list a bundle of plain files");
    let _ = read_small(&root.join("manifest.json"));
    match verify(&root) {
        Ok((manifest, problems)) => {
            for key in manifest.files.keys() {
                if let Err(why) = check_key(key) {
                    assert!(
                        problems
                            .iter()
                            .any(|p| matches!(p, Problem::BadKey(k, w) if k == key && *w == why)),
                        "key {key:?} ({why}) not reported as a bad key: {problems:?}"
                    );
                }
            }
            for p in &problems {
                let _ = p.to_string();
            }
            // what was read serializes back and reads again
            let bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
            let again: Manifest = serde_json::from_slice(&bytes).expect("manifest round trip");
            assert_eq!(again.files, manifest.files);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
