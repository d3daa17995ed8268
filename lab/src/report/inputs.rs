//! The one place that knows the JSON and text the report consumes from a bundle (written by
//! the spine, the probes and the load generator). Every JSON file a producer in another
//! crate writes is read through the very type it is written with, from the `bundle-schema`
//! crate: `timeline.json`, `metrics/series.jsonl`, `load/<phase>/{summary,series}.json`,
//! `probes/session.json` and `probes/<phase>/{fsync,writepath,bio,oncpu}.json`; the
//! Prometheus text through its one parser. No type here re-declares one of them and no
//! alias guesses a spelling: a field a producer renames is a compile error in the
//! producer's crate and in the round-trip tests below, not a figure gone missing. The
//! spine's own `manifest.json` is read through `lab::bundle::Manifest`, the type it is
//! written with. The formats are listed in docs/FIGURES.md.

use serde::Deserialize;

use super::hist::Log2Hist;

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
/// (`lab::scenario::Scenario` as serialized by the run, `--set` applied) and
/// the target. The report reads the manifest while the run writes it (a
/// provisional one holds only the scenario until the seal), so it is not read
/// as the whole `lab::bundle::Manifest`; these fields have that type's types.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestScenario {
    #[serde(default)]
    pub scenario_resolved: Option<ResolvedScenario>,
    /// The target that ran (absent from the provisional manifest the report
    /// reads during a run: `context.json` has it then).
    #[serde(default)]
    pub target: Option<vm::TargetInfo>,
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

/// The probes' files: `session.json` and the per-phase histograms and stacks.
pub use bundle_schema::probes::{
    BioFile, Hist, OncpuFile, RunCost, Session, StackQuality, StatsState, SyscallFile, WindowCost,
};

/// The load generator's files: `load/<phase>/summary.json` and `series.json`.
pub use bundle_schema::load::{
    LatencySummary, PhaseSummary as LoadSummary, Series as LoadSeries, WorkloadSummary,
};

/// A probe histogram as the report's log2 histogram.
pub fn log2(h: &Hist) -> Log2Hist {
    Log2Hist::from_buckets(h.buckets.iter().copied())
}

/// A load latency summary in milliseconds; `None` when nothing was measured.
pub fn latency_ms(l: &LatencySummary) -> Option<LatencyMs> {
    if l.count == 0 {
        return None;
    }
    let ms = |v: u64| Some(v as f64 / 1000.0);
    Some(LatencyMs {
        p50: ms(l.p50_us),
        p90: ms(l.p90_us),
        p99: ms(l.p99_us),
        p999: ms(l.p999_us),
        max: ms(l.max_us),
    })
}

/// Load latency percentiles in milliseconds (the report's unit for load).
#[derive(Debug, Clone, Default)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// Whether the kernel's BPF statistics ran; otherwise the reason it gives.
pub fn stats_refused(st: &StatsState) -> Option<&str> {
    match st {
        StatsState::Enabled { .. } => None,
        StatsState::Refused { reason } => Some(reason),
    }
}

/// One line of `metrics/series.jsonl`, in the bundle schema the spine writes it with.
pub use bundle_schema::metrics::MetricsLine as MetricsLineJson;

/// The exposition parser and series-key helper are the workspace's one
/// Prometheus parser (`bundle_schema::prom`), under the names the report uses.
pub use bundle_schema::prom::{metric_name, parse as parse_prom};

/// `context.json`, in the type the run writes it with.
pub use crate::context_file::Context;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
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

    /// `load/<phase>/summary.json` as loadgen writes it (`PhaseSummary<PhaseLoad>`, serialized
    /// as `LoadSession::run_phase` does), read back by the report (`PhaseSummary<Value>`).
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
        let r: LoadSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(r.workloads, summary.workloads);
        assert_eq!(
            (r.floor.as_ref(), r.duration_s),
            (summary.floor.as_ref(), 10.0)
        );
        assert_eq!(r.load, serde_json::to_value(&summary.load).unwrap());
        let w = &r.workloads["rpc"];
        assert_eq!(
            (w.sent, w.ok, w.errors_total(), w.dropped),
            (120, 117, 3, 2)
        );
        let ms = latency_ms(&w.latency).expect("latency");
        assert_eq!((ms.p50, ms.p99), (Some(1.5), Some(9.0)));
        assert!(
            latency_ms(&LatencySummary::default()).is_none(),
            "nothing measured"
        );
    }

    /// `load/<phase>/series.json` as loadgen writes it (workload -> its points).
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
        let r: LoadSeries =
            serde_json::from_str(&serde_json::to_string_pretty(&series).unwrap()).unwrap();
        assert_eq!(r, series);
    }

    /// `probes/session.json` as the probes write it (`Session<SessionOptions>`), read back
    /// by the report (`Session<Value>`).
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
            unwind: "fp".into(),
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
            arch: "x86_64".into(),
            kernel: "6.1.0".into(),
            clock: "CLOCK_MONOTONIC".into(),
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
        let text = serde_json::to_string_pretty(&session).unwrap();
        let r: Session = serde_json::from_str(&text).unwrap();
        assert_eq!(r.windows, session.windows);
        assert_eq!(r.cost_total, session.cost_total);
        assert_eq!((r.lost_events_total, r.overhead_pct), (4, Some(1.0)));
        assert_eq!(stats_refused(&r.bpf_stats), None);
        assert_eq!(r.options, serde_json::to_value(&session.options).unwrap());
        let w = &r.windows[0];
        assert_eq!(w.max_truncated_stack_share(), Some(0.5));
        assert_eq!(w.stack_quality["oncpu"].reached_root_share, 0.75);
        let refused = StatsState::Refused {
            reason: "EPERM".into(),
        };
        let back: StatsState =
            serde_json::from_str(&serde_json::to_string(&refused).unwrap()).unwrap();
        assert_eq!(stats_refused(&back), Some("EPERM"));
    }

    /// The probes' per-phase files, written by a real probe session over a workload
    /// that makes exactly known syscalls, are checked in `probes/tests`; here their
    /// shared types read a producer-shaped document and give the report's histogram.
    #[test]
    fn probe_histogram_reads_as_log2() {
        let h = Hist {
            count: 3,
            sum_us: 10.0,
            buckets: vec![
                bundle_schema::probes::Bucket {
                    lo: 1,
                    hi: 2,
                    count: 1,
                },
                bundle_schema::probes::Bucket {
                    lo: 4,
                    hi: 8,
                    count: 2,
                },
            ],
        };
        let back: Hist = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(log2(&back).total(), 3);
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
