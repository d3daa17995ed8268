//! The one place that knows the JSON and text the report consumes from a bundle (written by
//! the spine, the probes and the load generator). The files the spine writes (`timeline.json`,
//! `metrics/series.jsonl`) and the Prometheus text are read through the shared types of the
//! `bundle-schema` crate, the same ones the spine writes them with. The probes' and the load
//! generator's files are read through the tolerant structs below (unknown fields ignored,
//! every field optional); the round-trip tests at the bottom serialize each producer's own type
//! and read it back here, so a renamed field fails a test instead of a figure going missing.
//! No alias guesses a spelling: the only one left (`sent`, `second`) is what a producer
//! writes, and fields no producer writes are marked as the report fixtures' forms
//! (`lab/tests/data/report/*`). The formats are listed in docs/FIGURES.md.

use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

use super::hist::{Bucket, Log2Hist};

/// `timeline.json`, in the bundle schema the spine writes it with.
pub use bundle_schema::timeline::Timeline as TimelineJson;

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
    #[serde(default)]
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
    #[serde(default)]
    pub calls_by_comm: BTreeMap<String, u64>,
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
    #[serde(default)]
    pub by_rwbs_us: BTreeMap<String, HistJson>,
    #[serde(default)]
    pub bytes_by_rwbs: BTreeMap<String, u64>,
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
    #[serde(default)]
    pub ops_by_comm: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
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
    pub overhead_pct: Option<f64>,
    /// Whether the kernel's BPF statistics ran (issue 17).
    pub bpf_stats: Option<BpfStatsJson>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionWindowJson {
    #[serde(default)]
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
    /// loadgen writes `sent`; `requests` is the synced-off fixture's spelling.
    #[serde(alias = "sent")]
    pub requests: Option<u64>,
    pub ok: Option<u64>,
    /// A number or a map of error kind to count.
    pub errors: Option<Json>,
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
    pub t_ns: Option<u64>,
    /// Seconds since the phase start, when `t_ns` is absent.
    #[serde(alias = "second")]
    pub t_s: Option<f64>,
    pub ok: Option<f64>,
    pub errors: Option<f64>,
    pub p99_ms: Option<f64>,
    /// loadgen writes microseconds.
    pub p99_us: Option<f64>,
}

/// One line of `metrics/series.jsonl`, in the bundle schema the spine writes it with.
pub use bundle_schema::metrics::MetricsLine as MetricsLineJson;

/// The exposition parser and series-key helper are the workspace's one
/// Prometheus parser (`bundle_schema::prom`), under the names the report uses.
pub use bundle_schema::prom::{metric_name, parse as parse_prom};

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

    /// `load/<phase>/summary.json` as loadgen writes it (its own `PhaseSummary`,
    /// serialized by serde as `LoadSession::run_phase` does), read by the report.
    #[test]
    fn load_summary_round_trip() {
        use loadgen::{Floor, LatencySummary, Pacing, PhaseSummary, WorkloadSummary};
        let lat = |p50_us, p99_us| LatencySummary {
            count: 117,
            min_us: 100,
            mean_us: 2000.0,
            p50_us,
            p90_us: p99_us / 2,
            p99_us,
            p999_us: p99_us + 1,
            max_us: p99_us + 2,
        };
        let w = WorkloadSummary {
            workload: "rpc".into(),
            model: loadgen::model::LoadModel::default(),
            target_rate_per_s: Some(12.0),
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 16,
            start_ns: 1_000,
            end_ns: 2_000,
            duration_s: 10.0,
            scheduled: 122,
            sent: 120,
            ok: 117,
            errors: [("timeout".to_string(), 3)].into(),
            dropped: 2,
            throughput_per_s: 11.7,
            latency: lat(1500, 9000),
            bytes_received: 4096,
            details: BTreeMap::new(),
            pacing: Some(Pacing {
                sustained: false,
                target_per_s: 12.2,
                sent_per_s: 12.0,
                shortfall_pct: 1.6,
                lag_p50_us: 10,
                lag_p99_us: 20,
                lag_max_us: 30,
                note: "not sustained".into(),
            }),
        };
        let summary = PhaseSummary {
            phase: "stress".into(),
            seed: 7,
            start_ns: 1_000,
            end_ns: 2_000,
            duration_s: 10.0,
            load: loadgen::PhaseLoad::default(),
            workloads: [("rpc".to_string(), w)].into(),
            compaction: None,
            cancelled: false,
            floor: Some(Floor {
                rate_per_s: 12.0,
                basis: "rpc rate".into(),
                window_s: 1.0,
                concurrency: 16,
                ok: 12,
                failed: 0,
                latency: lat(150, 400),
            }),
            floor_missing: None,
        };
        let text = serde_json::to_string_pretty(&summary).unwrap();
        let r: LoadSummaryJson = serde_json::from_str(&text).unwrap();
        assert_eq!(r.duration_s, Some(10.0));
        let f = r.floor.as_ref().expect("floor");
        assert_eq!(f.rate_per_s, Some(12.0));
        assert_eq!(f.latency.as_ref().and_then(|l| l.p99_us), Some(400.0));
        let w = &r.workloads["rpc"];
        assert_eq!(w.requests, Some(120), "loadgen's `sent`");
        assert_eq!(w.ok, Some(117));
        assert_eq!(w.errors.as_ref().and_then(sum_json_count), Some(3));
        assert_eq!(w.throughput_per_s, Some(11.7));
        assert_eq!(w.dropped, Some(2));
        assert_eq!(w.duration_s, Some(10.0));
        let l = w.latency.as_ref().expect("latency");
        assert_eq!(
            (l.count, l.p50_us, l.p99_us),
            (Some(117), Some(1500.0), Some(9000.0))
        );
        assert_eq!(l.to_ms().and_then(|m| m.p99), Some(9.0));
        let p = w.pacing.as_ref().expect("pacing");
        assert_eq!(
            (p.sustained, p.note.as_deref()),
            (Some(false), Some("not sustained"))
        );
    }

    /// `load/<phase>/series.json` as loadgen writes it (workload -> its `SeriesPoint`s).
    #[test]
    fn load_series_round_trip() {
        let pt = loadgen::SeriesPoint {
            t_ns: 5_000_000_000,
            second: 3,
            scheduled: 10,
            ok: 9,
            errors: 1,
            dropped: 0,
            bytes: 900,
            p50_us: 800,
            p99_us: 2500,
            max_us: 3000,
        };
        let series: BTreeMap<String, Vec<loadgen::SeriesPoint>> = [("rpc".into(), vec![pt])].into();
        let r: LoadSeriesJson =
            serde_json::from_str(&serde_json::to_string_pretty(&series).unwrap()).unwrap();
        let p = &r["rpc"][0];
        assert_eq!(p.t_ns, Some(5_000_000_000));
        assert_eq!(p.t_s, Some(3.0), "loadgen's `second`");
        assert_eq!((p.ok, p.errors), (Some(9.0), Some(1.0)));
        assert_eq!((p.p99_us, p.p99_ms), (Some(2500.0), None));
    }

    /// `probes/session.json` as the probes write it (their own `SessionSummary`).
    #[test]
    fn probe_session_round_trip() {
        use probes::bpf_stats::{RunCost, StatsState, WindowCost};
        use probes::quality::StackQuality;
        let enabled = StatsState::Enabled {
            how: "BPF_ENABLE_STATS".into(),
        };
        let cost = WindowCost {
            bpf_stats: enabled.clone(),
            programs: [(
                "fsync_enter".to_string(),
                RunCost {
                    runs: 40,
                    run_time_ns: 8_000,
                    ns_per_event: Some(200.0),
                    cpu_s: 8e-6,
                },
            )]
            .into(),
            probes: BTreeMap::new(),
            bpf_cpu_s: Some(8e-6),
            probe_process_cpu_s: 0.02,
            target_cpu_s: Some(2.0),
            target: "pid 42".into(),
            overhead_share: Some(0.01),
        };
        let window = probes::render::PhaseSummary {
            phase: "stress".into(),
            start_ns: 10,
            end_ns: 20,
            lost_events: [("offcpu".to_string(), 3), ("oncpu".to_string(), 1)].into(),
            lost_total: 4,
            offcpu_below_threshold: 0,
            bio_unmatched_completions: 0,
            truncated_stack_share: [("oncpu".to_string(), 0.25), ("offcpu".to_string(), 0.5)]
                .into(),
            events: BTreeMap::new(),
            cost: Some(cost.clone()),
            unwind: "fp",
            stack_quality: [(
                "oncpu".to_string(),
                StackQuality {
                    reached_root_share: 0.75,
                    ..Default::default()
                },
            )]
            .into(),
        };
        let session = probes::SessionSummary {
            options: probes::SessionOptions::new(probes::Scope::System, "/nonexistent"),
            arch: "x86_64",
            kernel: "6.1.0".into(),
            clock: "CLOCK_MONOTONIC",
            ready_ns: 1,
            stopped_ns: 30,
            discarded_before_first_phase: 0,
            windows: vec![window],
            lost_events_total: 4,
            bpf_stats: enabled,
            cost_total: Some(cost),
            attach: Default::default(),
            overhead_pct: Some(1.0),
        };
        let r: SessionJson =
            serde_json::from_str(&serde_json::to_string_pretty(&session).unwrap()).unwrap();
        assert_eq!(r.lost_events_total, Some(4));
        assert_eq!(r.overhead_pct, Some(1.0));
        let st = r.bpf_stats.as_ref().expect("bpf_stats");
        assert_eq!(
            (st.state.as_str(), st.how.as_deref()),
            ("enabled", Some("BPF_ENABLE_STATS"))
        );
        let w = &r.windows[0];
        assert_eq!(
            (w.phase.as_str(), w.start_ns, w.end_ns),
            ("stress", Some(10), Some(20))
        );
        assert_eq!(w.lost_total, Some(4));
        assert_eq!(w.lost_events.as_ref().and_then(sum_json_count), Some(4));
        assert_eq!(
            w.truncated_stack_share.as_ref().and_then(max_json_share),
            Some(0.5)
        );
        let c = w.cost.as_ref().expect("cost");
        assert_eq!(
            c.programs["fsync_enter"],
            RunCostJson {
                runs: 40,
                run_time_ns: 8_000
            }
        );
        assert_eq!(
            (c.overhead_share, c.target.as_deref()),
            (Some(0.01), Some("pid 42"))
        );
        assert_eq!(
            (c.bpf_cpu_s, c.probe_process_cpu_s, c.target_cpu_s),
            (Some(8e-6), Some(0.02), Some(2.0))
        );
        let q = w.stack_quality.as_ref().expect("stack_quality");
        assert_eq!(q["oncpu"]["reached_root_share"], 0.75);
    }

    /// `timeline.json` and `metrics/series.jsonl` are written and read through one
    /// type each (`bundle_schema`); their fixture forms still read.
    #[test]
    fn spine_files_read_their_fixture_forms() {
        let t: TimelineJson =
            serde_json::from_str(r#"{"phases": [{"name": "warmup", "start_ns": 1, "end_ns": 2}]}"#)
                .unwrap();
        assert_eq!((t.phases[0].start_ns, t.phases[0].end_ns), (1, Some(2)));
        let l: MetricsLineJson =
            serde_json::from_str(r#"{"t_ns": 5, "prom": "x 1\ny{a=\"}\"} 2\n"}"#).unwrap();
        let s = l.all_samples();
        assert_eq!((s["x"], s["y{a=\"}\"}"]), (1.0, 2.0));
    }
}
