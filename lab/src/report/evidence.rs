//! The evidence of one phase (or of a T1 capture) in one shape, whatever file it came from:
//! probe data, load figures, node metrics, and why any part is missing; and how phases
//! merge into the whole run ([`merge_phases`]). Reading a bundle into these types lives
//! in `loader.rs`, reading T1's files in `t1.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::bpftrace::{Dump, Key};
use super::folded::Folded;
use super::hist::Log2Hist;
use super::inputs::*;

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
    pub probe_cost: Option<WindowCost>,
    /// Stack-quality figures by probe, as `session.json` gives them.
    pub stack_quality: Option<BTreeMap<String, StackQuality>>,
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

/// The probes' cost of two windows together (run counts and times add up; the overhead
/// share is recomputed from the summed CPU times).
fn add_cost(a: &WindowCost, b: &WindowCost) -> WindowCost {
    let add = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    let runs = |x: &BTreeMap<String, RunCost>, y: &BTreeMap<String, RunCost>| {
        let mut out = x.clone();
        for (k, v) in y {
            out.entry(k.clone()).or_default().add(v);
        }
        out
    };
    let bpf_cpu_s = add(a.bpf_cpu_s, b.bpf_cpu_s);
    let probe_process_cpu_s = a.probe_process_cpu_s + b.probe_process_cpu_s;
    let target_cpu_s = add(a.target_cpu_s, b.target_cpu_s);
    let overhead_share = match (bpf_cpu_s, target_cpu_s) {
        (Some(x), Some(t)) if t > 0.0 => Some((x + probe_process_cpu_s) / t),
        _ => None,
    };
    WindowCost {
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
    let mut first = true;
    // workloads whose latency histogram is missing (or unmergeable) in some phase
    let mut no_hdr = std::collections::BTreeSet::new();
    for p in phases {
        m.duration_s = if first {
            p.duration_s
        } else {
            sum_opt(m.duration_s, p.duration_s)
        };
        if let Some(f) = &p.fsync {
            add_fsync(&mut m.fsync, f);
        }
        if let Some(f) = &p.bio {
            add_bio(&mut m.bio, f);
        }
        if let Some(f) = &p.writepath {
            add_writepath(&mut m.writepath, f);
        }
        for (src, dst) in [(&p.oncpu, &mut m.oncpu), (&p.offcpu, &mut m.offcpu)] {
            if let Some(s) = src {
                add_stacks(dst, s);
            }
        }
        if let Some(l) = &p.load {
            add_load(m.load.get_or_insert_with(BTreeMap::new), l, &mut no_hdr);
        }
        if let Some(l) = p.lost_events {
            m.lost_events = Some(m.lost_events.unwrap_or(0) + l);
        }
        // the cost of the whole run only when every phase has one
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
    if let Some(l) = m.load.as_mut() {
        load_over_run(l, &no_hdr, m.duration_s);
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

/// `a + b`, or unknown when either is.
fn sum_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    }
}

fn add_fsync(dst: &mut Option<FsyncData>, f: &FsyncData) {
    let t = dst.get_or_insert_with(|| FsyncData {
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

fn add_bio(dst: &mut Option<BioData>, f: &BioData) {
    let t = dst.get_or_insert_with(|| BioData {
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

fn add_writepath(dst: &mut Option<WritePathData>, f: &WritePathData) {
    let t = dst.get_or_insert_with(|| WritePathData {
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

/// Stacks add up; the sampling rate stays known only while every phase had the same.
fn add_stacks(dst: &mut Option<StackData>, s: &StackData) {
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

/// Counts add up (unknown once any phase lacks one), series concatenate, and the
/// latency histograms add up in `no_hdr`'s absence.
fn add_load(
    t: &mut BTreeMap<String, WorkloadData>,
    l: &BTreeMap<String, WorkloadData>,
    no_hdr: &mut std::collections::BTreeSet<String>,
) {
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

/// Percentiles over the whole run, only when every phase had the histogram;
/// throughput over the whole run's duration.
fn load_over_run(
    l: &mut BTreeMap<String, WorkloadData>,
    no_hdr: &std::collections::BTreeSet<String>,
    duration_s: Option<f64>,
) {
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
    if let Some(d) = duration_s {
        for w in l.values_mut() {
            if let Some(ok) = w.ok {
                if d > 0.0 {
                    w.throughput_per_s = Some(ok as f64 / d);
                }
            }
        }
    }
}
