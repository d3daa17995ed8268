//! Fuzz target: the report's evidence loader (`Bundle::load`),
//! `render_bundle` and `diff_bundles` on a bundle whose manifest, timeline,
//! scenario, probe, load and metrics files come from the fuzz input (split
//! on 0xFF, see common/mod.rs): never a panic or a hang, and nothing read
//! outside the bundle (a canary HdrHistogram lies next to the bundle root,
//! where a workload named `../../../canary` would find it).
#![no_main]

mod common;

use lab::report::evidence::Bundle;
use lab::report::{diff_bundles, render_bundle, RenderOptions};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FILES: [&str; 12] = [
    "manifest.json",
    "timeline.json",
    "scenario.toml",
    "probes/session.json",
    "probes/stress/oncpu.folded",
    "probes/stress/fsync.json",
    "probes/stress/bio.json",
    "probes/stress/writepath.json",
    "load/stress/summary.json",
    "load/stress/series.json",
    "metrics/series.jsonl",
    "metrics/stress.prom",
];

/// A valid, non-empty HdrHistogram (V2 serialization).
fn hdr_bytes() -> Vec<u8> {
    use hdrhistogram::serialization::Serializer;
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for v in [300u64, 1200, 3000, 14000] {
        h.record(v).unwrap();
    }
    let mut out = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&h, &mut out)
        .unwrap();
    out
}

/// Setup once per process: the canary, and a copy of a real fixture bundle
/// (the other side of the diff).
fn setup() -> &'static (PathBuf, PathBuf) {
    static S: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let scratch = common::scratch("bundle_report");
        std::fs::write(scratch.join("canary.hdr"), hdr_bytes()).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/report/synced-off/bundle");
        let peer = scratch.join("peer");
        copy_dir(&fixture, &peer);
        (scratch.join("b"), peer)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (root, peer) = setup();
    common::write_bundle(root, &FILES, data);
    // a workload named `rpc` finds its histogram inside the bundle
    if root.join("load/stress").is_dir() {
        std::fs::write(root.join("load/stress/rpc.hdr"), hdr_bytes()).unwrap();
    }

    if let Ok(b) = Bundle::load(root) {
        for p in &b.phases {
            for (w, wd) in p.load.iter().flatten() {
                if wd.hdr.is_some() {
                    let ok = !w.is_empty() && !w.contains('/') && w != "." && w != "..";
                    assert!(
                        ok,
                        "phase {}: histogram of workload {w:?} read outside load/{}/",
                        p.name, p.name
                    );
                }
            }
        }
    }
    match render_bundle(root, &RenderOptions::default()) {
        Ok(o) => {
            let _ = o.verdicts.any_failed();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match diff_bundles(peer, root, None) {
        Ok(d) => {
            let _ = d.markdown.len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
