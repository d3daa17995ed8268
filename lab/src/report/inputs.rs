//! The one place that knows the JSON and text the report consumes from a bundle (written by
//! the spine, the probes and the load generator). Every struct is tolerant: unknown fields
//! are ignored, every field is optional, and a few aliases cover likely spellings. If a
//! producer's format changes, adapt it here. The formats are listed in docs/FIGURES.md.

use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

use super::hist::{Bucket, Log2Hist};

/// `timeline.json`: phase boundaries on the monotonic clock.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TimelineJson {
    #[serde(default)]
    pub phases: Vec<PhaseWindowJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhaseWindowJson {
    pub name: String,
    #[serde(alias = "start_mono_ns", alias = "start_monotonic_ns")]
    pub start_ns: Option<u64>,
    #[serde(alias = "end_mono_ns", alias = "end_monotonic_ns")]
    pub end_ns: Option<u64>,
}

/// The part of `scenario.toml` the report needs. The spine validates the full file; the
/// report reads only these fields so that it can re-render any bundle on its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScenarioLite {
    #[serde(default)]
    pub name: String,
    pub seed: Option<u64>,
    #[serde(default)]
    pub expect: Vec<super::spec::ExpectSpec>,
    #[serde(default)]
    pub phase: Vec<ScenarioPhaseLite>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScenarioPhaseLite {
    pub name: String,
    pub duration_s: Option<f64>,
}

/// The part of `manifest.json` the report reads: the effective scenario
/// (`lab::scenario::Scenario` as serialized by the run, `--set` applied).
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestScenario {
    #[serde(default)]
    pub scenario_resolved: Option<ResolvedScenario>,
}

/// `scenario_resolved`: the fields of `lab::scenario::Scenario` the report needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ResolvedScenario {
    pub name: String,
    pub seed: u64,
    #[serde(default)]
    pub expects: Vec<super::spec::ExpectSpec>,
    #[serde(default)]
    pub phases: Vec<ScenarioPhaseLite>,
}

impl From<ResolvedScenario> for ScenarioLite {
    fn from(r: ResolvedScenario) -> Self {
        ScenarioLite {
            name: r.name,
            seed: Some(r.seed),
            expect: r.expects,
            phase: r.phases,
        }
    }
}

/// Histogram JSON: `{"buckets": [{"lo":..,"hi":..,"count":..}]}`, a bare bucket list, or
/// a list of `[lo, hi, count]` triples.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HistJson {
    Wrapped { buckets: Vec<BucketJson> },
    List(Vec<BucketJson>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BucketJson {
    Obj { lo: u64, hi: u64, count: u64 },
    Triple(u64, u64, u64),
}

impl HistJson {
    pub fn to_hist(&self) -> Log2Hist {
        let list = match self {
            HistJson::Wrapped { buckets } => buckets,
            HistJson::List(b) => b,
        };
        Log2Hist::from_buckets(list.iter().map(|b| match *b {
            BucketJson::Obj { lo, hi, count } | BucketJson::Triple(lo, hi, count) => {
                Bucket { lo, hi, count }
            }
        }))
    }
}

/// A histogram with its call count, as the probes write it:
/// `{"count": n, "sum_us": x, "buckets": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CountedHistJson {
    pub count: Option<u64>,
    #[serde(default)]
    pub buckets: Vec<BucketJson>,
}

impl CountedHistJson {
    pub fn to_hist(&self) -> Log2Hist {
        HistJson::List(self.buckets.clone()).to_hist()
    }
    /// The call count (the histogram's total when `count` is absent).
    pub fn calls(&self) -> u64 {
        self.count.unwrap_or_else(|| self.to_hist().total())
    }
}

/// One row of a probe's table: `{"thread", "syscall", "count", ...}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RowJson {
    #[serde(default, alias = "comm")]
    pub thread: String,
    #[serde(default)]
    pub syscall: String,
    #[serde(default)]
    pub count: u64,
}

/// `probes/<phase>/fsync.json`: the probes write `total`, `by_thread` (comm ->
/// counted histogram) and `rows`; the flat `calls_by_comm` form is accepted too.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FsyncJson {
    pub total: Option<CountedHistJson>,
    #[serde(default)]
    pub by_thread: BTreeMap<String, CountedHistJson>,
    #[serde(default, alias = "calls")]
    pub calls_by_comm: BTreeMap<String, u64>,
    #[serde(alias = "fsync_latency_us")]
    pub latency_us: Option<HistJson>,
    #[serde(default)]
    pub by_comm_us: BTreeMap<String, HistJson>,
    pub window_s: Option<f64>,
}

/// `probes/<phase>/bio.json`: `total`, `by_rwbs` (counted histograms), `bytes_by_rwbs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BioJson {
    pub total: Option<CountedHistJson>,
    #[serde(default)]
    pub by_rwbs: BTreeMap<String, CountedHistJson>,
    #[serde(default, alias = "bio_by_rwbs_us")]
    pub by_rwbs_us: BTreeMap<String, HistJson>,
    #[serde(default)]
    pub bytes_by_rwbs: BTreeMap<String, u64>,
    #[serde(alias = "bio_latency_us")]
    pub latency_us: Option<HistJson>,
    pub window_s: Option<f64>,
}

/// `probes/<phase>/writepath.json`: `rows` (thread, syscall, count) and `by_syscall`
/// (counted histograms); the nested `ops_by_comm` form is accepted too.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WritePathJson {
    #[serde(default)]
    pub rows: Vec<RowJson>,
    #[serde(default)]
    pub by_syscall: BTreeMap<String, CountedHistJson>,
    /// `{"tokio-rt-worker": {"write": 5, "fdatasync": 1}}`
    #[serde(default, alias = "op_by_thread")]
    pub ops_by_comm: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default, alias = "lat_us")]
    pub lat_us_by_syscall: BTreeMap<String, HistJson>,
    pub window_s: Option<f64>,
}

/// `probes/session.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionJson {
    pub lost_events: Option<Json>,
    pub lost_events_total: Option<u64>,
    /// A share (0-1), or a map probe -> share.
    pub truncated_stack_share: Option<Json>,
    #[serde(default)]
    pub windows: Vec<SessionWindowJson>,
    #[serde(alias = "probe_overhead_pct")]
    pub overhead_pct: Option<f64>,
    /// Whether the kernel's BPF statistics ran (issue 17).
    pub bpf_stats: Option<BpfStatsJson>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionWindowJson {
    #[serde(default, alias = "name")]
    pub phase: String,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub lost_events: Option<Json>,
    pub lost_total: Option<u64>,
    /// A share (0-1), or a map probe -> share.
    pub truncated_stack_share: Option<Json>,
    /// The probes' own cost over the window (issue 17).
    pub cost: Option<ProbeCostJson>,
    /// Stack-quality figures by probe (`oncpu`, `offcpu`), issue 12:
    /// `reached_root_share`, `method_share`, `lost_stacks`, `copies`,
    /// `copies_cut_short`, `bytes_copied_per_s`, ...
    pub stack_quality: Option<Json>,
}

/// `cost` of a window in `probes/session.json`, as `probes::bpf_stats::WindowCost`
/// writes it: per program and per probe run counts and run times from the kernel's BPF
/// statistics, the probe process's CPU, the target's CPU and the overhead share (0-1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProbeCostJson {
    pub bpf_stats: Option<BpfStatsJson>,
    #[serde(default)]
    pub programs: BTreeMap<String, RunCostJson>,
    #[serde(default)]
    pub probes: BTreeMap<String, RunCostJson>,
    pub bpf_cpu_s: Option<f64>,
    pub probe_process_cpu_s: Option<f64>,
    pub target_cpu_s: Option<f64>,
    pub target: Option<String>,
    pub overhead_share: Option<f64>,
}

/// `{"state": "enabled", "how": ..}` or `{"state": "refused", "reason": ..}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BpfStatsJson {
    #[serde(default)]
    pub state: String,
    pub how: Option<String>,
    pub reason: Option<String>,
}

/// Runs and run time of one program or probe over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct RunCostJson {
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub run_time_ns: u64,
}

/// The largest share in a number or a map of numbers.
pub fn max_json_share(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Object(m) => m.values().filter_map(max_json_share).reduce(f64::max),
        _ => None,
    }
}

/// A count that may be a number or a map of numbers (per probe): summed.
pub fn sum_json_count(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => n.as_u64(),
        Json::Object(m) => Some(m.values().filter_map(sum_json_count).sum()),
        _ => None,
    }
}

/// `load/<phase>/summary.json` (loadgen's `PhaseSummary`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LoadSummaryJson {
    #[serde(default)]
    pub workloads: BTreeMap<String, WorkloadSummaryJson>,
    pub duration_s: Option<f64>,
    /// The instrument floor measured before the phase (loadgen's `Floor`).
    pub floor: Option<LoadFloorJson>,
    /// Why the floor is absent.
    pub floor_missing: Option<String>,
}

/// loadgen's `Floor`: the generator's own latency at the phase's rate.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LoadFloorJson {
    pub rate_per_s: Option<f64>,
    pub latency: Option<LatencyUsJson>,
}

/// loadgen's `Pacing`: whether an open loop kept its schedule.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PacingJson {
    pub sustained: Option<bool>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkloadSummaryJson {
    #[serde(alias = "sent", alias = "attempted", alias = "total")]
    pub requests: Option<u64>,
    #[serde(alias = "succeeded", alias = "completed")]
    pub ok: Option<u64>,
    /// A number or a map of error kind to count.
    pub errors: Option<Json>,
    #[serde(alias = "throughput", alias = "ok_per_s")]
    pub throughput_per_s: Option<f64>,
    pub latency_ms: Option<LatencyMsJson>,
    /// loadgen's `LatencySummary` (microseconds; all zero when `count` is 0).
    pub latency: Option<LatencyUsJson>,
    /// Requests not sent (no slot within the timeout, or the phase ended first).
    pub dropped: Option<u64>,
    pub duration_s: Option<f64>,
    /// Open loop: whether the target rate was sustained.
    pub pacing: Option<PacingJson>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatencyUsJson {
    pub count: Option<u64>,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
}

impl LatencyUsJson {
    /// The same figures in milliseconds; `None` when nothing was measured.
    pub fn to_ms(&self) -> Option<LatencyMsJson> {
        if self.count == Some(0) {
            return None;
        }
        let ms = |v: Option<f64>| v.map(|x| x / 1000.0);
        Some(LatencyMsJson {
            p50: ms(self.p50_us),
            p90: ms(self.p90_us),
            p99: ms(self.p99_us),
            p999: ms(self.p999_us),
            max: ms(self.max_us),
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatencyMsJson {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// `load/<phase>/series.json`: per-second points per workload,
/// `{"rpc": [{"t_ns": .., "second": .., "ok": .., "errors": .., "p99_us": ..}]}`.
pub type LoadSeriesJson = BTreeMap<String, Vec<LoadPointJson>>;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LoadPointJson {
    #[serde(alias = "t_mono_ns")]
    pub t_ns: Option<u64>,
    /// Seconds since the phase start, when `t_ns` is absent.
    #[serde(alias = "second")]
    pub t_s: Option<f64>,
    #[serde(alias = "completed")]
    pub ok: Option<f64>,
    pub errors: Option<f64>,
    pub p99_ms: Option<f64>,
    /// loadgen writes microseconds.
    pub p99_us: Option<f64>,
}

/// One line of `metrics/series.jsonl`: `{"t_ns": .., "prom": "<exposition text>"}` or
/// `{"t_ns": .., "samples": {"name{labels}": value}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsLineJson {
    #[serde(alias = "t_mono_ns", alias = "mono_ns")]
    pub t_ns: Option<u64>,
    #[serde(alias = "text")]
    pub prom: Option<String>,
    #[serde(default)]
    pub samples: BTreeMap<String, f64>,
}

/// Prometheus text exposition: `name{labels} value` -> map from the full series key to
/// the value. Comments and unparsable lines are skipped.
pub fn parse_prom(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.find('}') {
            Some(end) if line[..end].contains('{') => (&line[..=end], &line[end + 1..]),
            _ => match line.split_once(char::is_whitespace) {
                Some((k, r)) => (k, r),
                None => continue,
            },
        };
        let Some(v) = rest.split_whitespace().next() else {
            continue;
        };
        let v = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.insert(key.to_string(), v);
    }
    out
}

/// Metric name of a series key (`name{labels}` -> `name`).
pub fn metric_name(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

/// Finds a boolean `emulated` anywhere in a JSON document (context.json or manifest.json).
pub fn find_emulated(v: &Json) -> Option<bool> {
    match v {
        Json::Object(m) => {
            if let Some(Json::Bool(b)) = m.get("emulated") {
                return Some(*b);
            }
            m.values().find_map(find_emulated)
        }
        Json::Array(a) => a.iter().find_map(find_emulated),
        _ => None,
    }
}

/// Finds a string field anywhere in a JSON document.
pub fn find_str<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    match v {
        Json::Object(m) => {
            if let Some(Json::String(s)) = m.get(key) {
                return Some(s);
            }
            m.values().find_map(|x| find_str(x, key))
        }
        Json::Array(a) => a.iter().find_map(|x| find_str(x, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prom_text() {
        let m = parse_prom(
            "# HELP x\nqfc_block_height 12\nqfc_rocksdb_l0_files{cf=\"state\"} 3\nbad\n",
        );
        assert_eq!(m["qfc_block_height"], 12.0);
        assert_eq!(m["qfc_rocksdb_l0_files{cf=\"state\"}"], 3.0);
        assert_eq!(
            metric_name("qfc_rocksdb_l0_files{cf=\"state\"}"),
            "qfc_rocksdb_l0_files"
        );
    }

    #[test]
    fn hist_json_shapes() {
        let a: HistJson =
            serde_json::from_str(r#"{"buckets":[{"lo":1,"hi":2,"count":3}]}"#).unwrap();
        let b: HistJson = serde_json::from_str(r#"[[1,2,3]]"#).unwrap();
        assert_eq!(a.to_hist(), b.to_hist());
    }
}
