//! The evidence of one phase (or of a T1 capture) in one shape, whatever file it came from:
//! probe data, load figures, node metrics, and why any part is missing. Loading from a
//! bundle lives here; loading from T1's files lives in `t1.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bpftrace::{Dump, Key};
use super::folded::Folded;
use super::hist::Log2Hist;
use super::inputs::*;
use super::ReportError;

#[derive(Debug, Clone, Default)]
pub struct FsyncData {
    pub calls_by_comm: BTreeMap<String, u64>,
    pub latency_us: Option<Log2Hist>,
    pub by_comm_us: BTreeMap<String, Log2Hist>,
    pub window_s: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct BioData {
    pub by_rwbs_us: BTreeMap<String, Log2Hist>,
    pub bytes_by_rwbs: BTreeMap<String, u64>,
    pub latency_us: Option<Log2Hist>,
    pub window_s: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct WritePathData {
    /// (comm, syscall) -> calls; syscall names without `tracepoint:syscalls:sys_enter_`.
    pub ops: BTreeMap<(String, String), u64>,
    pub lat_us_by_syscall: BTreeMap<String, Log2Hist>,
    pub window_s: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct StackData {
    pub folded: Folded,
    pub window_s: Option<f64>,
    /// Whether the first frame of each line named the thread.
    pub has_threads: bool,
    /// On-CPU sampling rate (samples per second per CPU), when known: turns samples into
    /// CPU-seconds.
    pub sample_hz: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkloadData {
    pub requests: Option<u64>,
    pub ok: Option<u64>,
    pub errors: Option<u64>,
    /// Open loop: arrivals never sent (no free slot in time, or the phase ended).
    pub dropped: Option<u64>,
    pub throughput_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Per-second points: (seconds since run start, ok per second, p99 ms).
    pub series: Vec<(f64, Option<f64>, Option<f64>)>,
    /// The latency histogram (microseconds), when the bundle has `<workload>.hdr`: lets
    /// percentiles be merged over phases.
    pub hdr: Option<hdrhistogram::Histogram<u64>>,
    /// Open loop: the generator's verdict on its schedule when the target rate was
    /// not sustained (issue 18).
    pub not_sustained: Option<String>,
}

/// The load generator's own latency at the phase's rate (issue 18), microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadFloor {
    pub rate_per_s: Option<f64>,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Metrics samples inside a window: (seconds since run start, series key -> value).
#[derive(Debug, Clone, Default)]
pub struct MetricsWindow {
    pub samples: Vec<(f64, BTreeMap<String, f64>)>,
    /// The last sample at or before the window start, when there is one.
    pub before: Option<BTreeMap<String, f64>>,
    /// Metric names seen in any sample.
    pub names: std::collections::BTreeSet<String>,
}

impl MetricsWindow {
    /// Sum over label sets of a metric in one sample.
    pub fn sum(sample: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
        let mut found = false;
        let mut s = 0.0;
        for (k, v) in sample {
            if metric_name(k) == name {
                found = true;
                s += v;
            }
        }
        found.then_some(s)
    }

    /// Largest value over label sets of a metric in one sample.
    pub fn max_label(sample: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
        sample
            .iter()
            .filter(|(k, _)| metric_name(k) == name)
            .map(|(_, v)| *v)
            .reduce(f64::max)
    }

    /// Increase of a counter (summed over labels) across the window: last sample minus the
    /// sample before the window (or the first sample in it).
    pub fn delta(&self, name: &str) -> Result<f64, String> {
        if !self.names.contains(name) {
            return Err(format!("metric {name} absent from the node's /metrics"));
        }
        let last = self
            .samples
            .last()
            .and_then(|(_, s)| Self::sum(s, name))
            .ok_or_else(|| format!("no {name} sample in this window"))?;
        let first = match &self.before {
            Some(b) => Self::sum(b, name),
            None => None,
        }
        .or_else(|| {
            if self.samples.len() >= 2 {
                Self::sum(&self.samples[0].1, name)
            } else {
                None
            }
        })
        .ok_or_else(|| {
            format!("only one {name} sample and none before the window: cannot take a difference")
        })?;
        Ok(last - first)
    }

    /// Maximum over samples of `f(sample)`.
    pub fn max_over(
        &self,
        name: &str,
        f: impl Fn(&BTreeMap<String, f64>, &str) -> Option<f64>,
    ) -> Result<f64, String> {
        if !self.names.contains(name) {
            return Err(format!("metric {name} absent from the node's /metrics"));
        }
        self.samples
            .iter()
            .filter_map(|(_, s)| f(s, name))
            .reduce(f64::max)
            .ok_or_else(|| format!("no {name} sample in this window"))
    }
}

/// Everything known about one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseEvidence {
    pub name: String,
    /// Window length from the timeline (seconds).
    pub duration_s: Option<f64>,
    /// Start and end, seconds since the run's first phase start.
    pub span_s: Option<(f64, f64)>,
    pub fsync: Option<FsyncData>,
    pub bio: Option<BioData>,
    pub writepath: Option<WritePathData>,
    pub oncpu: Option<StackData>,
    pub offcpu: Option<StackData>,
    pub load: Option<BTreeMap<String, WorkloadData>>,
    /// The load generator's floor measured before the phase (`load.floor_*`).
    pub load_floor: Option<LoadFloor>,
    pub metrics: Option<MetricsWindow>,
    pub lost_events: Option<u64>,
    pub truncated_stack_share: Option<f64>,
    /// The probes' own cost in this phase (`probes/session.json`, issue 17).
    pub probe_cost: Option<ProbeCostJson>,
    /// Stack-quality figures by probe, as `session.json` gives them.
    pub stack_quality: Option<serde_json::Value>,
    /// Why a source is missing: source name -> reason.
    pub missing: BTreeMap<&'static str, String>,
    /// Quirks met while reading.
    pub notes: Vec<String>,
}

/// A whole bundle, read.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub dir: PathBuf,
    pub scenario: ScenarioLite,
    pub phases: Vec<PhaseEvidence>,
    pub emulated: Option<bool>,
    pub target_desc: Option<String>,
    pub overhead_pct: Option<f64>,
    /// Why `overhead_pct` is absent, when the probe session says (e.g. the kernel
    /// refused BPF statistics).
    pub overhead_why_not: Option<String>,
    pub run_lost_events: Option<u64>,
    pub run_truncated_stack_share: Option<f64>,
    /// All metric samples of the run: (seconds since run start, series).
    pub metrics_series: Vec<(f64, BTreeMap<String, f64>)>,
    /// Phase boundaries, seconds since run start.
    pub boundaries: Vec<(String, f64, f64)>,
    pub notes: Vec<String>,
    /// What the run was (target, node, probe scope), from manifest.json and context.json.
    pub facts: RunFacts,
}

/// What a run was, as far as the bundle says: the findings verdicts pick their bundle by
/// these (an aarch64 target for T1's finding 1, a container with system-wide probes for
/// finding 2). `None` where the bundle does not say.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// `local`, `qemu`, `container` or `ssh` (manifest.json `scenario_resolved.target.kind`).
    pub target_kind: Option<String>,
    /// The target's CPU architecture (context.json), e.g. `aarch64` or `x86_64`.
    pub arch: Option<String>,
    /// Probe scope: `target` (the node's process or cgroup) or `system`.
    pub probe_scope: Option<String>,
    /// `refnode` or `qfc-node`.
    pub node_kind: Option<String>,
    pub node_mine: Option<bool>,
    pub node_log_level: Option<String>,
    pub synced_commit: Option<bool>,
    /// The node's thread names (context.json `threads_at_ready` and `threads_at_end`):
    /// picks the node's own threads out of system-wide evidence.
    pub node_threads: std::collections::BTreeSet<String>,
}

impl RunFacts {
    fn from_json(
        manifest: Option<&serde_json::Value>,
        context: Option<&serde_json::Value>,
    ) -> RunFacts {
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
                f.arch = find_str(c, "arch").map(str::to_string);
            }
            for key in ["threads_at_ready", "threads_at_end"] {
                if let Some(m) = c[key].as_object() {
                    f.node_threads.extend(m.keys().cloned());
                }
            }
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

pub fn syscall_name(s: &str) -> String {
    let s = s.trim();
    let s = s.rsplit(':').next().unwrap_or(s);
    s.strip_prefix("sys_enter_")
        .or_else(|| s.strip_prefix("sys_exit_"))
        .unwrap_or(s)
        .to_string()
}

/// fsync data from bpftrace text with T1's map names (`@calls`, `@fsync_latency_us`,
/// `@by_comm_us`).
pub fn fsync_from_dump(d: &Dump) -> FsyncData {
    let mut f = FsyncData::default();
    for (k, v) in d.scalars("calls") {
        *f.calls_by_comm.entry(first_part(&k)).or_default() += v.max(0) as u64;
    }
    f.latency_us = d.hists("fsync_latency_us").remove("");
    f.by_comm_us = d.hists("by_comm_us");
    f
}

pub fn bio_from_dump(d: &Dump) -> BioData {
    let mut b = BioData {
        by_rwbs_us: d.hists("bio_by_rwbs_us"),
        latency_us: d.hists("bio_latency_us").remove(""),
        ..Default::default()
    };
    for (k, v) in d.scalars("bytes_by_rwbs") {
        *b.bytes_by_rwbs.entry(first_part(&k)).or_default() += v.max(0) as u64;
    }
    b
}

pub fn writepath_from_dump(d: &Dump) -> WritePathData {
    let mut w = WritePathData::default();
    for (k, v) in d.scalars("op_by_thread") {
        if let Key::Parts(p) = &k {
            let comm = p.first().cloned().unwrap_or_default();
            let sc = syscall_name(p.get(1).map(String::as_str).unwrap_or("?"));
            *w.ops.entry((comm, sc)).or_default() += v.max(0) as u64;
        }
    }
    for (k, h) in d.hists("lat_us") {
        w.lat_us_by_syscall
            .entry(syscall_name(&k))
            .or_default()
            .merge(&h);
    }
    w
}

/// Off-CPU folded stacks from bpftrace's `@offcpu_us[stack]: us` (frames leaf first,
/// offsets `+NN` stripped), root first as in folded files.
pub fn offcpu_from_dump(d: &Dump) -> Folded {
    let mut f = Folded::default();
    for (k, v) in d.scalars("offcpu_us") {
        if let Key::Stack(frames) = k {
            let mut frames: Vec<String> = frames
                .iter()
                .rev()
                .map(|fr| match fr.rsplit_once('+') {
                    Some((name, off)) if off.chars().all(|c| c.is_ascii_hexdigit() || c == 'x') => {
                        name.to_string()
                    }
                    _ => fr.clone(),
                })
                .collect();
            frames.dedup();
            f.stacks.push(super::folded::Stack {
                class: None,
                thread: None,
                frames,
                count: v.max(0) as u64,
            });
        }
    }
    f
}

fn first_part(k: &Key) -> String {
    match k {
        Key::Parts(p) => p.first().cloned().unwrap_or_default(),
        Key::None => String::new(),
        Key::Stack(f) => f.join(";"),
    }
}

const NS: f64 = 1e9;

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
        // The effective scenario (`--set` applied) is the manifest's
        // `scenario_resolved`; `scenario.toml` is the file as written, read
        // only for bundles without a manifest.
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
        let timeline: Option<TimelineJson> =
            soft(json_opt(&dir.join("timeline.json")), &mut b.notes);
        let mut windows: Vec<(String, Option<u64>, Option<u64>)> = match &timeline {
            Some(t) => t
                .phases
                .iter()
                .map(|p| (p.name.clone(), Some(p.start_ns), p.end_ns))
                .collect(),
            None => {
                b.notes.push(
                    "timeline.json absent: phases taken from the scenario, without times".into(),
                );
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

        let mut jsons = Vec::new();
        for v in [dir.join("context.json"), dir.join("manifest.json")] {
            let j = soft(json_opt::<serde_json::Value>(&v), &mut b.notes);
            jsons.push(j.clone());
            if let Some(j) = j {
                if b.emulated.is_none() {
                    b.emulated = find_emulated(&j);
                }
                if b.target_desc.is_none() {
                    let kind = find_str(&j, "kind");
                    let arch = find_str(&j, "arch");
                    let accel = find_str(&j, "accel");
                    if kind.is_some() || arch.is_some() {
                        b.target_desc = Some(
                            [kind, arch, accel]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(", "),
                        );
                    }
                }
            }
        }

        b.facts = RunFacts::from_json(jsons[1].as_ref(), jsons[0].as_ref());

        let session: Option<SessionJson> =
            soft(json_opt(&dir.join("probes/session.json")), &mut b.notes);
        if let Some(s) = &session {
            b.run_lost_events = s
                .lost_events_total
                .or_else(|| s.lost_events.as_ref().and_then(sum_json_count));
            b.run_truncated_stack_share = s
                .truncated_stack_share
                .as_ref()
                .and_then(max_json_share)
                .or_else(|| {
                    s.windows
                        .iter()
                        .filter_map(|w| w.truncated_stack_share.as_ref().and_then(max_json_share))
                        .reduce(f64::max)
                });
            b.overhead_pct = s.overhead_pct;
            if let Some(st) = s.bpf_stats.as_ref().filter(|st| st.state != "enabled") {
                b.overhead_why_not = Some(format!(
                    "the kernel's BPF statistics did not run: {}",
                    st.reason.as_deref().unwrap_or(&st.state)
                ));
            }
        }

        // metrics series
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

        let mut prev_prom: Option<BTreeMap<String, f64>> = None;
        for (name, s, e) in &windows {
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
                    "no metrics/series.jsonl samples in this window and no metrics/<phase>.prom"
                        .into(),
                );
            } else {
                p.metrics = Some(mw);
            }
            prev_prom = prom;
            if let Some(sess) = &session {
                if let Some(w) = sess.windows.iter().find(|w| &w.phase == name) {
                    p.lost_events = w
                        .lost_total
                        .or_else(|| w.lost_events.as_ref().and_then(sum_json_count));
                    p.truncated_stack_share =
                        w.truncated_stack_share.as_ref().and_then(max_json_share);
                    p.probe_cost = w.cost.clone();
                    p.stack_quality = w.stack_quality.clone();
                }
            } else {
                p.missing
                    .insert("session", "probes/session.json absent".into());
            }
            b.phases.push(p);
        }
        Ok(b)
    }
}

fn load_probes(dir: &Path, p: &mut PhaseEvidence) -> Result<(), ReportError> {
    let pd = dir.join("probes").join(&p.name);
    let rel = format!("probes/{}", p.name);
    let win = p.duration_s;
    // fsync
    if let Some(j) = soft(json_opt::<FsyncJson>(&pd.join("fsync.json")), &mut p.notes) {
        let mut calls_by_comm = j.calls_by_comm;
        let mut by_comm_us: BTreeMap<String, Log2Hist> = j
            .by_comm_us
            .iter()
            .map(|(k, h)| (k.clone(), h.to_hist()))
            .collect();
        for (comm, h) in &j.by_thread {
            *calls_by_comm.entry(comm.clone()).or_default() += h.calls();
            by_comm_us
                .entry(comm.clone())
                .or_default()
                .merge(&h.to_hist());
        }
        p.fsync = Some(FsyncData {
            calls_by_comm,
            latency_us: j
                .latency_us
                .map(|h| h.to_hist())
                .or_else(|| j.total.as_ref().map(|t| t.to_hist())),
            by_comm_us,
            window_s: j.window_s.or(win),
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
    if let Some(j) = soft(json_opt::<BioJson>(&pd.join("bio.json")), &mut p.notes) {
        let mut by_rwbs_us: BTreeMap<String, Log2Hist> = j
            .by_rwbs_us
            .iter()
            .map(|(k, h)| (k.clone(), h.to_hist()))
            .collect();
        for (k, h) in &j.by_rwbs {
            by_rwbs_us.entry(k.clone()).or_default().merge(&h.to_hist());
        }
        p.bio = Some(BioData {
            by_rwbs_us,
            bytes_by_rwbs: j.bytes_by_rwbs,
            latency_us: j
                .latency_us
                .map(|h| h.to_hist())
                .or_else(|| j.total.as_ref().map(|t| t.to_hist())),
            window_s: j.window_s.or(win),
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
        json_opt::<WritePathJson>(&pd.join("writepath.json")),
        &mut p.notes,
    ) {
        let mut w = WritePathData {
            window_s: j.window_s.or(win),
            ..Default::default()
        };
        for (comm, m) in j.ops_by_comm {
            for (sc, n) in m {
                *w.ops.entry((comm.clone(), syscall_name(&sc))).or_default() += n;
            }
        }
        for (sc, h) in j.lat_us_by_syscall {
            w.lat_us_by_syscall
                .entry(syscall_name(&sc))
                .or_default()
                .merge(&h.to_hist());
        }
        for r in &j.rows {
            *w.ops
                .entry((r.thread.clone(), syscall_name(&r.syscall)))
                .or_default() += r.count;
        }
        for (sc, h) in &j.by_syscall {
            w.lat_us_by_syscall
                .entry(syscall_name(sc))
                .or_default()
                .merge(&h.to_hist());
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
    #[derive(serde::Deserialize)]
    struct Hz {
        hz: Option<f64>,
    }
    let hz = soft(json_opt::<Hz>(path), notes).and_then(|h| h.hz);
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
        json_opt::<LoadSummaryJson>(&ld.join("summary.json")),
        &mut p.notes,
    ) else {
        p.missing.insert(
            "load",
            format!("load/{}/summary.json absent or unreadable", p.name),
        );
        return Ok(());
    };
    let series: LoadSeriesJson =
        soft(json_opt(&ld.join("series.json")), &mut p.notes).unwrap_or_default();
    match sum
        .floor
        .as_ref()
        .and_then(|f| Some((f.rate_per_s, f.latency.as_ref()?)))
    {
        Some((rate_per_s, l)) if l.count != Some(0) => {
            p.load_floor = l.p50_us.zip(l.p99_us).map(|(p50_us, p99_us)| LoadFloor {
                rate_per_s,
                p50_us,
                p99_us,
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
        let lat = s
            .latency_ms
            .clone()
            .or_else(|| s.latency.as_ref().and_then(|l| l.to_ms()))
            .unwrap_or_default();
        let mut wd = WorkloadData {
            requests: s.requests,
            ok: s.ok,
            errors: s.errors.as_ref().and_then(sum_json_count),
            dropped: s.dropped,
            throughput_per_s: s.throughput_per_s,
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
                .filter(|x| x.sustained == Some(false))
                .map(|x| {
                    x.note
                        .clone()
                        .unwrap_or_else(|| "target rate not sustained".into())
                }),
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
        if wd.throughput_per_s.is_none() {
            if let (Some(ok), Some(d)) = (wd.ok, s.duration_s.or(sum.duration_s).or(p.duration_s)) {
                if d > 0.0 {
                    wd.throughput_per_s = Some(ok as f64 / d);
                }
            }
        }
        if let Some(points) = series.get(&w) {
            let start = p.span_s.map(|x| x.0).unwrap_or(0.0);
            for pt in points {
                let t = match (pt.t_ns, t0, pt.t_s) {
                    (Some(t), Some(t0), _) => (t as f64 - t0 as f64) / NS,
                    (_, _, Some(ts)) => start + ts,
                    _ => continue,
                };
                // a second without successes has no latency (loadgen writes 0)
                let p99 = pt
                    .p99_ms
                    .or(pt.p99_us.map(|u| u / 1000.0))
                    .filter(|_| pt.ok.is_none_or(|ok| ok > 0.0));
                wd.series.push((t, pt.ok, p99));
            }
        }
        out.insert(w, wd);
    }
    p.load = Some(out);
    Ok(())
}

/// The probes' cost of two windows together (run counts and times add up; the overhead
/// share is recomputed from the summed CPU times).
fn add_cost(a: &ProbeCostJson, b: &ProbeCostJson) -> ProbeCostJson {
    let add = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    let runs = |x: &BTreeMap<String, RunCostJson>, y: &BTreeMap<String, RunCostJson>| {
        let mut out = x.clone();
        for (k, v) in y {
            let e = out.entry(k.clone()).or_default();
            e.runs += v.runs;
            e.run_time_ns += v.run_time_ns;
        }
        out
    };
    let bpf_cpu_s = add(a.bpf_cpu_s, b.bpf_cpu_s);
    let probe_process_cpu_s = add(a.probe_process_cpu_s, b.probe_process_cpu_s);
    let target_cpu_s = add(a.target_cpu_s, b.target_cpu_s);
    let overhead_share = match (bpf_cpu_s, probe_process_cpu_s, target_cpu_s) {
        (Some(x), Some(y), Some(t)) if t > 0.0 => Some((x + y) / t),
        _ => None,
    };
    ProbeCostJson {
        bpf_stats: b.bpf_stats.clone(),
        programs: runs(&a.programs, &b.programs),
        probes: runs(&a.probes, &b.probes),
        bpf_cpu_s,
        probe_process_cpu_s,
        target_cpu_s,
        target: b.target.clone(),
        overhead_share,
    }
}

/// Merges phases into one "whole run" evidence: stacks, histograms and counts add up,
/// windows add up; percentiles of load cannot be merged from summaries and are dropped.
pub fn merge_phases(
    phases: &[PhaseEvidence],
    all_metrics: &[(f64, BTreeMap<String, f64>)],
) -> PhaseEvidence {
    let mut m = PhaseEvidence {
        name: "(whole run)".into(),
        ..Default::default()
    };
    let sum_opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    let mut first = true;
    let mut no_hdr = std::collections::BTreeSet::new();
    for p in phases {
        m.duration_s = if first {
            p.duration_s
        } else {
            sum_opt(m.duration_s, p.duration_s)
        };
        if let Some(f) = &p.fsync {
            let t = m.fsync.get_or_insert_with(|| FsyncData {
                window_s: Some(0.0),
                ..Default::default()
            });
            for (k, v) in &f.calls_by_comm {
                *t.calls_by_comm.entry(k.clone()).or_default() += v;
            }
            if let Some(h) = &f.latency_us {
                t.latency_us.get_or_insert_with(Log2Hist::default).merge(h);
            }
            for (k, h) in &f.by_comm_us {
                t.by_comm_us.entry(k.clone()).or_default().merge(h);
            }
            t.window_s = sum_opt(t.window_s, f.window_s);
        }
        if let Some(f) = &p.bio {
            let t = m.bio.get_or_insert_with(|| BioData {
                window_s: Some(0.0),
                ..Default::default()
            });
            for (k, h) in &f.by_rwbs_us {
                t.by_rwbs_us.entry(k.clone()).or_default().merge(h);
            }
            for (k, v) in &f.bytes_by_rwbs {
                *t.bytes_by_rwbs.entry(k.clone()).or_default() += v;
            }
            if let Some(h) = &f.latency_us {
                t.latency_us.get_or_insert_with(Log2Hist::default).merge(h);
            }
            t.window_s = sum_opt(t.window_s, f.window_s);
        }
        if let Some(f) = &p.writepath {
            let t = m.writepath.get_or_insert_with(|| WritePathData {
                window_s: Some(0.0),
                ..Default::default()
            });
            for (k, v) in &f.ops {
                *t.ops.entry(k.clone()).or_default() += v;
            }
            for (k, h) in &f.lat_us_by_syscall {
                t.lat_us_by_syscall.entry(k.clone()).or_default().merge(h);
            }
            t.window_s = sum_opt(t.window_s, f.window_s);
        }
        for (src, dst) in [(&p.oncpu, &mut m.oncpu), (&p.offcpu, &mut m.offcpu)] {
            if let Some(s) = src {
                let t = dst.get_or_insert_with(|| StackData {
                    window_s: Some(0.0),
                    has_threads: s.has_threads,
                    sample_hz: s.sample_hz,
                    ..Default::default()
                });
                if t.sample_hz != s.sample_hz {
                    t.sample_hz = None;
                }
                t.folded.merge(&s.folded);
                t.window_s = sum_opt(t.window_s, s.window_s);
            }
        }
        if let Some(l) = &p.load {
            let t = m.load.get_or_insert_with(BTreeMap::new);
            for (w, d) in l {
                let e = t.entry(w.clone()).or_insert_with(|| WorkloadData {
                    requests: Some(0),
                    ok: Some(0),
                    errors: Some(0),
                    dropped: Some(0),
                    ..Default::default()
                });
                let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                e.requests = add(e.requests, d.requests);
                e.ok = add(e.ok, d.ok);
                e.errors = add(e.errors, d.errors);
                e.dropped = add(e.dropped, d.dropped);
                e.series.extend(d.series.iter().cloned());
                match (&mut e.hdr, &d.hdr) {
                    (Some(a), Some(h)) => {
                        if a.add(h).is_err() {
                            no_hdr.insert(w.clone());
                        }
                    }
                    (None, Some(h)) => {
                        // deserialized histograms have fixed bounds: accumulate in one
                        // that resizes
                        match hdrhistogram::Histogram::<u64>::new(3) {
                            Ok(mut a) => {
                                a.auto(true);
                                if a.add(h).is_err() {
                                    no_hdr.insert(w.clone());
                                }
                                e.hdr = Some(a);
                            }
                            Err(_) => {
                                no_hdr.insert(w.clone());
                            }
                        }
                    }
                    (_, None) => {
                        no_hdr.insert(w.clone());
                    }
                }
            }
        }
        if let Some(l) = p.lost_events {
            m.lost_events = Some(m.lost_events.unwrap_or(0) + l);
        }
        m.probe_cost = match (first, m.probe_cost.take(), &p.probe_cost) {
            (true, _, c) => c.clone(),
            (false, Some(a), Some(b)) => Some(add_cost(&a, b)),
            _ => None,
        };
        // the whole run's floor: the highest of its phases
        if let Some(f) = p.load_floor {
            let t = m.load_floor.get_or_insert(LoadFloor {
                rate_per_s: None,
                ..f
            });
            t.p50_us = t.p50_us.max(f.p50_us);
            t.p99_us = t.p99_us.max(f.p99_us);
        }
        first = false;
    }
    // percentiles over the whole run, only when every phase had the histogram
    if let Some(l) = m.load.as_mut() {
        for (name, w) in l.iter_mut() {
            if no_hdr.contains(name) {
                w.hdr = None;
            }
            if let Some(h) = w.hdr.as_ref().filter(|h| !h.is_empty()) {
                let q = |x: f64| Some(h.value_at_quantile(x) as f64 / 1000.0);
                w.p50_ms = q(0.5);
                w.p90_ms = q(0.9);
                w.p99_ms = q(0.99);
                w.p999_ms = q(0.999);
                w.max_ms = Some(h.max() as f64 / 1000.0);
            }
        }
    }
    // throughput over the whole run
    if let (Some(l), Some(d)) = (m.load.as_mut(), m.duration_s) {
        for w in l.values_mut() {
            if let Some(ok) = w.ok {
                if d > 0.0 {
                    w.throughput_per_s = Some(ok as f64 / d);
                }
            }
        }
    }
    if !all_metrics.is_empty() {
        let mut mw = MetricsWindow {
            samples: all_metrics.to_vec(),
            ..Default::default()
        };
        for (_, s) in all_metrics {
            for k in s.keys() {
                mw.names.insert(metric_name(k).to_string());
            }
        }
        m.metrics = Some(mw);
    } else {
        m.missing
            .insert("metrics", "no metrics/series.jsonl samples".into());
    }
    m
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
        let summary = r#"{"workloads":{"../../../canary":{"ok":1},"rpc":{"ok":1},"tx":{"ok":1}}}"#;
        write_all(
            &dir,
            &[
                ("timeline.json", r#"{"phases":[{"name":"stress"}]}"#),
                ("load/stress/summary.json", summary),
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
