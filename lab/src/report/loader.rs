//! Reads a bundle directory into [`Bundle`]: which files are evidence for which
//! phase, on which clock, and what becomes a reason instead of a number when a
//! file is absent or malformed. Only this file touches the bundle's files (the
//! formats are parsed in `inputs`); `evidence` holds the types it fills.

use std::collections::BTreeMap;
use std::path::Path;

use super::bpftrace::Dump;
use super::error::ReportError;
use super::evidence::*;
use super::folded::Folded;
use super::inputs::*;

const NS: f64 = 1e9;

impl RunFacts {
    fn from_json(manifest: Option<&serde_json::Value>, context: Option<&Context>) -> RunFacts {
        let mut f = RunFacts::default();
        if let Some(s) = manifest.map(|m| &m["scenario_resolved"]) {
            let st = |v: &serde_json::Value| v.as_str().map(str::to_string);
            f.target_kind = st(&s["target"]["kind"]);
            f.probe_scope = st(&s["probes"]["scope"]);
            f.node_kind = st(&s["node"]["kind"]);
            f.node_mine = s["node"]["mine"].as_bool();
            f.node_log_level = st(&s["node"]["log_level"]);
            f.synced_commit = s["node"]["refnode"]["synced_commit"].as_bool();
            if f.target_kind.as_deref() == Some("qemu") {
                f.arch = st(&s["target"]["arch"]);
            }
        }
        if let Some(c) = context {
            if f.arch.is_none() {
                f.arch = c.target.as_ref().map(|t| t.arch.clone());
            }
            f.node_threads.extend(
                c.threads_at_ready
                    .keys()
                    .chain(c.threads_at_end.keys())
                    .cloned(),
            );
        }
        f
    }
}

/// Reads a bundle file when it is there: regular files only (never through
/// a symlink, never a FIFO), at most [`crate::bundle::MAX_JSON_BYTES`].
fn read_opt(path: &Path) -> Result<Option<String>, ReportError> {
    let text = crate::bundle::read_small(path).and_then(|b| {
        String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    });
    match text {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReportError::Read {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    match read_opt(path)? {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| ReportError::Parse {
                path: path.to_path_buf(),
                what: e.to_string(),
            }),
    }
}

/// A file that cannot be read or parsed becomes a note (and the evidence stays missing)
/// instead of failing the whole report.
fn soft<T>(r: Result<Option<T>, ReportError>, notes: &mut Vec<String>) -> Option<T> {
    match r {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "evidence file skipped");
            notes.push(format!("skipped: {e}"));
            None
        }
    }
}

/// One phase's window on the monotonic clock (ns), as timeline.json gives it.
type Window = (String, Option<u64>, Option<u64>);

impl Bundle {
    /// Reads a bundle directory. Missing parts become reasons, not errors; unreadable or
    /// malformed files are errors naming the file.
    pub fn load(dir: &Path) -> Result<Bundle, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NotABundle {
                path: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        let mut b = Bundle {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        read_scenario(dir, &mut b)?;
        let windows = phase_windows(dir, &mut b);
        let t0 = windows.iter().filter_map(|w| w.1).min();
        for (name, s, e) in &windows {
            if let (Some(t0), Some(s), Some(e)) = (t0, s, e) {
                // saturating: a tampered timeline may end a phase before the first start
                b.boundaries.push((
                    name.clone(),
                    s.saturating_sub(t0) as f64 / NS,
                    e.saturating_sub(t0) as f64 / NS,
                ));
            }
        }
        read_context(dir, &mut b);
        let session = read_session(dir, &mut b);
        read_metrics_series(dir, &mut b, t0)?;
        // a phase without series samples falls back to its .prom, against the previous one
        let mut prev_prom: Option<BTreeMap<String, f64>> = None;
        for w in &windows {
            let p = load_phase(dir, &b, w, t0, session.as_ref(), &mut prev_prom)?;
            b.phases.push(p);
        }
        Ok(b)
    }
}

/// The effective scenario (`--set` applied) is the manifest's
/// `scenario_resolved`; `scenario.toml` is the file as written, read only for
/// bundles without a manifest.
fn read_scenario(dir: &Path, b: &mut Bundle) -> Result<(), ReportError> {
    let manifest_path = dir.join(crate::bundle::MANIFEST);
    let resolved = soft(json_opt::<ManifestScenario>(&manifest_path), &mut b.notes)
        .and_then(|m| m.scenario_resolved);
    let scen_path = dir.join("scenario.toml");
    match resolved {
        Some(r) => b.scenario = r.into(),
        None => match read_opt(&scen_path)? {
            Some(s) => {
                b.scenario = toml::from_str(&s).map_err(|e| ReportError::Parse {
                    path: scen_path.clone(),
                    what: e.to_string(),
                })?;
                b.notes.push(
                    "manifest.json has no scenario_resolved: the scenario is read as written (scenario.toml), without --set overrides".into(),
                );
            }
            None => b
                .notes
                .push("scenario.toml absent: no expectations, name or seed".into()),
        },
    }
    Ok(())
}

/// The phases' windows: timeline.json's, else the scenario's phases without
/// times, else the phase directories under probes/ and load/; names that are not
/// valid phase names are dropped with a note.
fn phase_windows(dir: &Path, b: &mut Bundle) -> Vec<Window> {
    let timeline: Option<TimelineJson> = soft(json_opt(&dir.join("timeline.json")), &mut b.notes);
    let mut windows: Vec<Window> = match &timeline {
        Some(t) => t
            .phases
            .iter()
            .map(|p| (p.name.clone(), Some(p.start_ns), p.end_ns))
            .collect(),
        None => {
            b.notes
                .push("timeline.json absent: phases taken from the scenario, without times".into());
            b.scenario
                .phase
                .iter()
                .map(|p| (p.name.clone(), None, None))
                .collect()
        }
    };
    if windows.is_empty() {
        // last resort: probe or load phase directories
        let mut names = std::collections::BTreeSet::new();
        for sub in ["probes", "load"] {
            if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        names.insert(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        windows = names.into_iter().map(|n| (n, None, None)).collect();
    }
    // Phase names become paths below: a name that is not a plain
    // scenario name (e.g. `../x` in a tampered timeline.json) is dropped.
    windows.retain(|(name, _, _)| {
        let ok = crate::scenario::valid_name(name);
        if !ok {
            b.notes.push(format!(
                "phase {name:?} refused: not a valid phase name (1-64 of A-Z a-z 0-9 - _)"
            ));
        }
        ok
    });
    windows
}

/// context.json and manifest.json: emulation, the target's description, the run's facts.
fn read_context(dir: &Path, b: &mut Bundle) {
    let context: Option<Context> = soft(json_opt(&dir.join("context.json")), &mut b.notes);
    let manifest: Option<serde_json::Value> =
        soft(json_opt(&dir.join(crate::bundle::MANIFEST)), &mut b.notes);
    let from_manifest = manifest
        .as_ref()
        .and_then(|m| serde_json::from_value::<ManifestScenario>(m.clone()).ok())
        .and_then(|m| m.target);
    if let Some(t) = context
        .as_ref()
        .and_then(|c| c.target.as_ref())
        .or(from_manifest.as_ref())
    {
        b.emulated = Some(t.emulated);
        let kind = serde_json::to_value(t.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_string));
        b.target_desc = Some(
            kind.into_iter()
                .chain(Some(t.arch.clone()))
                .chain(t.accel.clone())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    b.facts = RunFacts::from_json(manifest.as_ref(), context.as_ref());
}

/// probes/session.json: the run's lost events, cut stacks and probe overhead.
fn read_session(dir: &Path, b: &mut Bundle) -> Option<Session> {
    let session: Option<Session> = soft(json_opt(&dir.join("probes/session.json")), &mut b.notes);
    if let Some(s) = &session {
        b.run_lost_events = Some(s.lost_events_total);
        b.run_truncated_stack_share = s
            .windows
            .iter()
            .filter_map(|w| w.max_truncated_stack_share())
            .reduce(f64::max);
        b.overhead_pct = s.overhead_pct;
        if let Some(reason) = stats_refused(&s.bpf_stats) {
            b.overhead_why_not = Some(format!("the kernel's BPF statistics did not run: {reason}"));
        }
    }

    session
}

/// metrics/series.jsonl, in seconds since the first phase start; lines that are
/// not samples become notes, failed scrapes are skipped.
fn read_metrics_series(dir: &Path, b: &mut Bundle, t0: Option<u64>) -> Result<(), ReportError> {
    let series_path = dir.join("metrics/series.jsonl");
    if let Some(text) = read_opt(&series_path)? {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let l: MetricsLineJson = match serde_json::from_str(line) {
                Ok(l) => l,
                Err(e) => {
                    b.notes.push(format!(
                        "metrics/series.jsonl line {}: skipped, not a metrics sample ({e})",
                        i + 1
                    ));
                    continue;
                }
            };
            let t = l.t_ns;
            let samples = l.all_samples();
            if samples.is_empty() {
                // a failed scrape (`{"t_ns", "error"}`)
                continue;
            }
            let t_rel = match t0 {
                Some(t0) => (t as f64 - t0 as f64) / NS,
                None => t as f64 / NS,
            };
            b.metrics_series.push((t_rel, samples));
        }
        b.metrics_series
            .sort_by(|a, c| a.0.partial_cmp(&c.0).unwrap_or(std::cmp::Ordering::Equal));
    }

    Ok(())
}

/// One phase's evidence: its window, probes, load, metrics and session window.
fn load_phase(
    dir: &Path,
    b: &Bundle,
    (name, s, e): &Window,
    t0: Option<u64>,
    session: Option<&Session>,
    prev_prom: &mut Option<BTreeMap<String, f64>>,
) -> Result<PhaseEvidence, ReportError> {
    let mut p = PhaseEvidence {
        name: name.clone(),
        ..Default::default()
    };
    if let (Some(s), Some(e)) = (s, e) {
        p.duration_s = Some((e.saturating_sub(*s)) as f64 / NS);
        if let Some(t0) = t0 {
            p.span_s = Some((
                s.saturating_sub(t0) as f64 / NS,
                e.saturating_sub(t0) as f64 / NS,
            ));
        }
    } else if let Some(d) = b
        .scenario
        .phase
        .iter()
        .find(|x| &x.name == name)
        .and_then(|x| x.duration_s)
    {
        p.duration_s = Some(d);
        p.notes.push(format!(
            "window length {d} s taken from the scenario (no measured boundaries)"
        ));
    }
    load_probes(dir, &mut p)?;
    load_load(dir, &mut p, t0)?;
    // metrics window
    let prom = read_opt(&dir.join(format!("metrics/{name}.prom")))?.map(|t| parse_prom(&t));
    let mut mw = MetricsWindow::default();
    if let Some((a, z)) = p.span_s {
        for (t, smp) in &b.metrics_series {
            if *t <= a {
                mw.before = Some(smp.clone());
            } else if *t <= z + 1e-9 {
                mw.samples.push((*t, smp.clone()));
            }
        }
    }
    if mw.samples.is_empty() {
        if let Some(pr) = &prom {
            mw.before = prev_prom.clone();
            mw.samples
                .push((p.span_s.map(|x| x.1).unwrap_or(0.0), pr.clone()));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for smp in mw.samples.iter().map(|(_, s)| s).chain(mw.before.iter()) {
        for k in smp.keys() {
            names.insert(metric_name(k).to_string());
        }
    }
    mw.names = names;
    if mw.samples.is_empty() {
        p.missing.insert(
            "metrics",
            "no metrics/series.jsonl samples in this window and no metrics/<phase>.prom".into(),
        );
    } else {
        p.metrics = Some(mw);
    }
    *prev_prom = prom;
    if let Some(sess) = session {
        if let Some(w) = sess.windows.iter().find(|w| &w.phase == name) {
            p.lost_events = Some(w.lost_total);
            p.truncated_stack_share = w.max_truncated_stack_share();
            p.probe_cost = w.cost.clone();
            // a session that recorded none (no stack probe ran) has none to show
            p.stack_quality = (!w.stack_quality.is_empty()).then(|| w.stack_quality.clone());
        }
    } else {
        p.missing
            .insert("session", "probes/session.json absent".into());
    }
    Ok(p)
}

fn load_probes(dir: &Path, p: &mut PhaseEvidence) -> Result<(), ReportError> {
    let pd = dir.join("probes").join(&p.name);
    let rel = format!("probes/{}", p.name);
    let win = p.duration_s;
    // fsync
    if let Some(j) = soft(
        json_opt::<SyscallFile>(&pd.join("fsync.json")),
        &mut p.notes,
    ) {
        p.fsync = Some(FsyncData {
            calls_by_comm: j
                .by_thread
                .iter()
                .map(|(c, h)| (c.clone(), h.count))
                .collect(),
            latency_us: Some(log2(&j.total)),
            by_comm_us: j
                .by_thread
                .iter()
                .map(|(c, h)| (c.clone(), log2(h)))
                .collect(),
            window_s: win,
        });
    } else if let Some(t) = read_opt(&pd.join("fsync.txt"))? {
        let d = Dump::parse(&t);
        p.notes
            .extend(d.notes.iter().map(|n| format!("fsync.txt: {n}")));
        let mut f = fsync_from_dump(&d);
        f.window_s = win;
        p.fsync = Some(f);
    } else {
        p.missing.insert(
            "fsync",
            format!("neither fsync.json nor fsync.txt in {rel}"),
        );
    }
    // bio
    if let Some(j) = soft(json_opt::<BioFile>(&pd.join("bio.json")), &mut p.notes) {
        p.bio = Some(BioData {
            by_rwbs_us: j
                .by_rwbs
                .iter()
                .map(|(k, h)| (k.clone(), log2(h)))
                .collect(),
            bytes_by_rwbs: j.bytes_by_rwbs,
            latency_us: Some(log2(&j.total)),
            window_s: win,
        });
    } else if let Some(t) = read_opt(&pd.join("bio.txt"))? {
        let d = Dump::parse(&t);
        p.notes
            .extend(d.notes.iter().map(|n| format!("bio.txt: {n}")));
        let mut b = bio_from_dump(&d);
        b.window_s = win;
        p.bio = Some(b);
    } else {
        p.missing
            .insert("bio", format!("neither bio.json nor bio.txt in {rel}"));
    }
    // writepath
    if let Some(j) = soft(
        json_opt::<SyscallFile>(&pd.join("writepath.json")),
        &mut p.notes,
    ) {
        let mut w = WritePathData {
            window_s: win,
            ..Default::default()
        };
        for r in &j.rows {
            *w.ops
                .entry((r.thread.clone(), syscall_name(&r.syscall)))
                .or_default() += r.count;
        }
        for (sc, h) in &j.by_syscall {
            w.lat_us_by_syscall
                .entry(syscall_name(sc))
                .or_default()
                .merge(&log2(h));
        }
        p.writepath = Some(w);
    } else if let Some(t) = read_opt(&pd.join("writepath.txt"))? {
        let d = Dump::parse(&t);
        p.notes
            .extend(d.notes.iter().map(|n| format!("writepath.txt: {n}")));
        let mut w = writepath_from_dump(&d);
        w.window_s = win;
        p.writepath = Some(w);
    } else {
        p.missing.insert(
            "writepath",
            format!("neither writepath.json nor writepath.txt in {rel}"),
        );
    }
    for (which, slot) in [("oncpu", &mut p.oncpu), ("offcpu", &mut p.offcpu)] {
        let path = pd.join(format!("{which}.folded"));
        match read_opt(&path)? {
            Some(t) => {
                *slot = Some(StackData {
                    folded: Folded::parse(&t, true),
                    window_s: win,
                    has_threads: true,
                    sample_hz: None,
                })
            }
            None => {
                p.missing.insert(
                    if which == "oncpu" { "oncpu" } else { "offcpu" },
                    format!("{rel}/{which}.folded absent"),
                );
            }
        }
    }
    if let Some(s) = p.oncpu.as_mut() {
        s.sample_hz = oncpu_hz(&pd.join("oncpu.json"), &rel, &mut p.notes);
    }
    Ok(())
}

/// The sampling rate the on-CPU probe recorded in `oncpu.json` (`"hz"`).
fn oncpu_hz(path: &Path, rel: &str, notes: &mut Vec<String>) -> Option<f64> {
    let hz = soft(json_opt::<OncpuFile>(path), notes).map(|f| f.hz as f64);
    if hz.is_none() {
        notes.push(format!(
            "{rel}/oncpu.json gives no sampling rate (hz): on-CPU CPU-seconds cannot be computed"
        ));
    }
    hz.filter(|h| *h > 0.0)
}

fn load_load(dir: &Path, p: &mut PhaseEvidence, t0: Option<u64>) -> Result<(), ReportError> {
    let ld = dir.join("load").join(&p.name);
    let Some(sum) = soft(
        json_opt::<LoadSummary>(&ld.join("summary.json")),
        &mut p.notes,
    ) else {
        p.missing.insert(
            "load",
            format!("load/{}/summary.json absent or unreadable", p.name),
        );
        return Ok(());
    };
    let series: LoadSeries =
        soft(json_opt(&ld.join("series.json")), &mut p.notes).unwrap_or_default();
    match sum.floor.as_ref().map(|f| (f.rate_per_s, &f.latency)) {
        Some((rate_per_s, l)) if l.count != 0 => {
            p.load_floor = Some(LoadFloor {
                rate_per_s: Some(rate_per_s),
                p50_us: l.p50_us as f64,
                p99_us: l.p99_us as f64,
            });
        }
        _ => {
            p.missing.insert(
                "load_floor",
                sum.floor_missing.clone().unwrap_or_else(|| {
                    format!(
                        "load/{}/summary.json has no instrument floor (written before issue 18)",
                        p.name
                    )
                }),
            );
        }
    }
    let mut out = BTreeMap::new();
    for (w, s) in sum.workloads {
        let lat = latency_ms(&s.latency).unwrap_or_default();
        let mut wd = WorkloadData {
            requests: Some(s.sent),
            ok: Some(s.ok),
            errors: Some(s.errors_total()),
            dropped: Some(s.dropped),
            throughput_per_s: Some(s.throughput_per_s),
            p50_ms: lat.p50,
            p90_ms: lat.p90,
            p99_ms: lat.p99,
            p999_ms: lat.p999,
            max_ms: lat.max,
            series: Vec::new(),
            hdr: None,
            not_sustained: s
                .pacing
                .as_ref()
                .filter(|x| !x.sustained)
                .map(|x| x.note.clone()),
        };
        // the HdrHistogram (values in microseconds) fills percentiles the summary lacks
        // The workload name becomes a path: only a plain name is joined, and the
        // file is read like every bundle file (no symlink, no FIFO, size cap).
        let hdr_bytes = if !crate::scenario::valid_name(&w) {
            p.notes.push(format!(
                "load/{}/summary.json: workload {w:?} refused as a file name (1-64 of A-Z a-z 0-9 - _): its .hdr is not read",
                p.name
            ));
            None
        } else {
            match crate::bundle::read_small(&ld.join(format!("{w}.hdr"))) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    p.notes
                        .push(format!("load/{}/{w}.hdr skipped: {e}", p.name));
                    None
                }
            }
        };
        if let Some(bytes) = hdr_bytes {
            let mut de = hdrhistogram::serialization::Deserializer::new();
            match de.deserialize::<u64, _>(&mut bytes.as_slice()) {
                Ok(h) if !h.is_empty() => {
                    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
                    wd.p50_ms = wd.p50_ms.or(Some(q(0.5)));
                    wd.p90_ms = wd.p90_ms.or(Some(q(0.9)));
                    wd.p99_ms = wd.p99_ms.or(Some(q(0.99)));
                    wd.p999_ms = wd.p999_ms.or(Some(q(0.999)));
                    wd.max_ms = wd.max_ms.or(Some(h.max() as f64 / 1000.0));
                    wd.ok = wd.ok.or(Some(h.len()));
                    wd.hdr = Some(h);
                }
                Ok(_) => {}
                Err(e) => p.notes.push(format!(
                    "load/{}/{w}.hdr: unreadable HdrHistogram ({e:?})",
                    p.name
                )),
            }
        }
        if let Some(points) = series.get(&w) {
            let start = p.span_s.map(|x| x.0).unwrap_or(0.0);
            for pt in points {
                let t = match t0 {
                    Some(t0) => (pt.t_ns as f64 - t0 as f64) / NS,
                    None => start + pt.second as f64,
                };
                // a second without successes has no latency (loadgen writes 0)
                let p99 = (pt.ok > 0).then(|| pt.p99_us as f64 / 1000.0);
                wd.series.push((t, Some(pt.ok as f64), p99));
            }
        }
        out.insert(w, wd);
    }
    p.load = Some(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path relative to the bundle, text) under `dir`.
    fn write_all(dir: &Path, files: &[(&str, &str)]) {
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    /// Issue 13 (found by the bundle_report fuzz target): a phase that ends
    /// before the earliest start in timeline.json made `end - t0` overflow
    /// (a panic in debug builds); the window is clamped instead.
    #[test]
    fn phase_ending_before_the_first_start_does_not_overflow() {
        let tmp = tempfile::tempdir().unwrap();
        write_all(
            tmp.path(),
            &[(
                "timeline.json",
                r#"{"phases":[{"name":"a","start_ns":1000,"end_ns":5},{"name":"b","start_ns":2000,"end_ns":3000}]}"#,
            )],
        );
        let b = Bundle::load(tmp.path()).unwrap();
        assert_eq!(b.phases.len(), 2);
        assert_eq!(b.boundaries[0], ("a".to_string(), 0.0, 0.0));
        assert_eq!(b.phases[0].span_s, Some((0.0, 0.0)));
        assert_eq!(b.phases[1].span_s, Some((1000.0 / NS, 2000.0 / NS)));
    }

    fn hdr_bytes() -> Vec<u8> {
        use hdrhistogram::serialization::Serializer;
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(1200).unwrap();
        let mut out = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&h, &mut out)
            .unwrap();
        out
    }

    /// Issue 13: a workload name in load/<phase>/summary.json became the
    /// path of its `<workload>.hdr` unchecked, so `../../../canary` read a
    /// file outside the bundle (and a FIFO there blocked the report). Such a
    /// name is refused with a note; a FIFO is named, never opened blocking.
    #[test]
    fn workload_histogram_is_never_read_outside_the_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("canary.hdr"), hdr_bytes()).unwrap();
        let dir = tmp.path().join("b");
        use bundle_schema::load::{LoadModel, WorkloadSummary};
        let ws = ["../../../canary", "rpc", "tx"]
            .map(|w| WorkloadSummary {
                ok: 1,
                ..WorkloadSummary::empty(w, LoadModel::Open)
            })
            .to_vec();
        let summary = LoadSummary::new("stress", 7, serde_json::Value::Null, ws);
        let summary = serde_json::to_string(&summary).unwrap();
        write_all(
            &dir,
            &[
                ("timeline.json", r#"{"phases":[{"name":"stress"}]}"#),
                ("load/stress/summary.json", &summary),
            ],
        );
        std::fs::write(dir.join("load/stress/rpc.hdr"), hdr_bytes()).unwrap();
        nix::unistd::mkfifo(
            &dir.join("load/stress/tx.hdr"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let b = Bundle::load(&dir).unwrap();
        let p = &b.phases[0];
        let load = p.load.as_ref().unwrap();
        assert!(
            load["../../../canary"].hdr.is_none(),
            "read outside the bundle"
        );
        assert!(
            load["rpc"].hdr.is_some(),
            "the bundle's own histogram is read"
        );
        assert!(load["tx"].hdr.is_none());
        let notes = p.notes.join("\n");
        assert!(
            notes.contains("workload \"../../../canary\" refused"),
            "{notes}"
        );
        assert!(
            notes.contains("tx.hdr") && notes.contains("FIFO"),
            "{notes}"
        );
    }
}
