//! Importer for a directory in T1's format (the production capture of qfc-node-1):
//! `01-fsync-latency.txt`, `02-bio-latency.txt`, `03-offcpu-qfcnode.txt`,
//! `04-writepath-syscalls.txt` (bpftrace text) and `05-oncpu.folded`. The result is one
//! [`PhaseEvidence`], so every figure of a lab bundle can be computed for T1 too.
//! T1's windows differ per capture (it did not run them in lockstep); they are recorded
//! per source from docs/../t1-capture.md.

use std::path::Path;

use super::bpftrace::Dump;
use super::error::ReportError;
use super::evidence::{
    bio_from_dump, fsync_from_dump, offcpu_from_dump, writepath_from_dump, PhaseEvidence, StackData,
};
use super::folded::Folded;

/// T1's capture windows in seconds (from its runner: 60, 60, 30, 25, 20).
pub const T1_WINDOWS_S: [(&str, f64); 5] = [
    ("01-fsync-latency.txt", 60.0),
    ("02-bio-latency.txt", 60.0),
    ("03-offcpu-qfcnode.txt", 30.0),
    ("04-writepath-syscalls.txt", 25.0),
    ("05-oncpu.folded", 20.0),
];

/// T1's on-CPU sampling rate: `perf record -F 99` (../shared/notes/t1-capture.md).
pub const T1_ONCPU_HZ: f64 = 99.0;

fn window(file: &str) -> Option<f64> {
    T1_WINDOWS_S.iter().find(|(f, _)| *f == file).map(|x| x.1)
}

/// Reads a T1-format directory. At least one of the five files must be present.
pub fn import(dir: &Path) -> Result<PhaseEvidence, ReportError> {
    let mut p = PhaseEvidence {
        name: "T1".into(),
        ..Default::default()
    };
    let read = |f: &str| -> Result<Option<String>, ReportError> {
        let path = dir.join(f);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReportError::Read { path, source: e }),
        }
    };
    let mut found = 0;
    let note_unused = |p: &mut PhaseEvidence, file: &str, d: &Dump, used: &[&str]| {
        for n in &d.notes {
            p.notes.push(format!("{file}: {n}"));
        }
        let unused = d.unused(used);
        if !unused.is_empty() {
            p.notes.push(format!(
                "{file}: helper maps ignored: {}",
                unused
                    .iter()
                    .map(|(n, c)| format!("@{n} ({c} entries)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    const F1: &str = "01-fsync-latency.txt";
    if let Some(t) = read(F1)? {
        found += 1;
        let d = Dump::parse(&t);
        note_unused(&mut p, F1, &d, &["calls", "fsync_latency_us", "by_comm_us"]);
        let mut f = fsync_from_dump(&d);
        f.window_s = window(F1);
        p.notes.push(format!(
            "{F1}: system-wide, every comm (not filtered to the node); fsync.count{{comm=...}} selects one"
        ));
        p.fsync = Some(f);
    } else {
        p.missing
            .insert("fsync", format!("{F1} absent in {}", dir.display()));
    }
    const F2: &str = "02-bio-latency.txt";
    if let Some(t) = read(F2)? {
        found += 1;
        let d = Dump::parse(&t);
        note_unused(
            &mut p,
            F2,
            &d,
            &["bio_by_rwbs_us", "bytes_by_rwbs", "bio_latency_us"],
        );
        let mut b = bio_from_dump(&d);
        b.window_s = window(F2);
        p.bio = Some(b);
    } else {
        p.missing
            .insert("bio", format!("{F2} absent in {}", dir.display()));
    }
    const F3: &str = "03-offcpu-qfcnode.txt";
    if let Some(t) = read(F3)? {
        found += 1;
        let d = Dump::parse(&t);
        note_unused(&mut p, F3, &d, &["offcpu_us"]);
        p.notes.push(format!(
            "{F3}: filtered by thread name qfc-node: tokio-rt-worker threads (where a synced block commit would wait) are missing"
        ));
        p.offcpu = Some(StackData {
            folded: offcpu_from_dump(&d),
            window_s: window(F3),
            has_threads: false,
            sample_hz: None,
        });
    } else {
        p.missing
            .insert("offcpu", format!("{F3} absent in {}", dir.display()));
    }
    const F4: &str = "04-writepath-syscalls.txt";
    if let Some(t) = read(F4)? {
        found += 1;
        let d = Dump::parse(&t);
        note_unused(&mut p, F4, &d, &["op_by_thread", "lat_us"]);
        let mut w = writepath_from_dump(&d);
        w.window_s = window(F4);
        p.writepath = Some(w);
    } else {
        p.missing
            .insert("writepath", format!("{F4} absent in {}", dir.display()));
    }
    const F5: &str = "05-oncpu.folded";
    if let Some(t) = read(F5)? {
        found += 1;
        let folded = Folded::parse(&t, false);
        if folded.malformed_lines > 0 {
            p.notes.push(format!(
                "{F5}: {} lines without a count skipped",
                folded.malformed_lines
            ));
        }
        let cut = folded
            .stacks
            .iter()
            .flat_map(|s| s.frames.iter())
            .filter(|f| looks_cut(f))
            .count();
        if cut > 0 {
            p.notes.push(format!(
                "{F5}: {cut} frame names look cut at a space (T1's awk collapse), e.g. `<tracing_subscriber::fmt::format::escape::EscapingWriter`; areas are matched on the kept prefix"
            ));
        }
        p.oncpu = Some(StackData {
            folded,
            window_s: window(F5),
            has_threads: false,
            sample_hz: Some(T1_ONCPU_HZ),
        });
    } else {
        p.missing
            .insert("oncpu", format!("{F5} absent in {}", dir.display()));
    }
    p.missing.insert(
        "load",
        "T1 ran under steady testnet traffic, without a load generator".into(),
    );
    p.missing.insert(
        "metrics",
        "T1 recorded no /metrics (no block count, no RocksDB figures)".into(),
    );
    p.missing.insert(
        "session",
        "T1's bpftrace runs did not report lost events per window".into(),
    );
    if found == 0 {
        return Err(ReportError::NotT1 {
            path: dir.to_path_buf(),
        });
    }
    Ok(p)
}

/// A frame cut at a space: an unbalanced `<` or `(` (as in `<&T` or
/// `rocksdb::DBImpl::Get(rocksdb::ReadOptions`).
fn looks_cut(f: &str) -> bool {
    let bal = |o: char, c: char| f.matches(o).count() > f.matches(c).count();
    bal('<', '>') || bal('(', ')')
}
