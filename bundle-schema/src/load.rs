//! `load/<phase>/summary.json` and `load/<phase>/series.json`: what the load
//! generator (`loadgen`) did in one phase, written by `loadgen` through these
//! types and read back by the report through the same ones; and
//! `load/seed_db.json` ([`SeedReport`]).
//!
//! The phase's load configuration (`PhaseSummary::load`) is the generator's
//! own scenario type: a type parameter here, `loadgen::PhaseLoad` when
//! written, any JSON value when read (the report does not use it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Load model of a rate-driven workload.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    /// Constant arrival rate (optionally ramped); latency is measured from
    /// each request's intended start, so a stalled server cannot hide behind
    /// a slowed-down generator (no coordinated omission).
    #[default]
    Open,
    /// `concurrency` clients, each sending its next request when the previous
    /// one is answered; latency from the actual send.
    Closed,
}

/// One step of a stepped open-loop schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RateStep {
    /// How long this rate holds, seconds.
    pub duration_s: f64,
    /// Arrivals per second during the step.
    pub rate_per_s: f64,
}

/// Latency percentiles of the successful requests, in µs (all zero when
/// `count` is 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencySummary {
    /// Successful requests measured.
    pub count: u64,
    /// Smallest latency.
    pub min_us: u64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest latency.
    pub max_us: u64,
}

/// One second of a workload in a phase (`series.json` holds, per workload,
/// one point per second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeriesPoint {
    /// Start of the second on CLOCK_MONOTONIC, ns.
    pub t_ns: u64,
    /// Seconds since the start of the phase.
    pub second: u64,
    /// Requests whose intended start fell in this second (open loop) or
    /// that were sent in it (closed loop).
    pub scheduled: u64,
    /// Requests that completed successfully in this second.
    pub ok: u64,
    /// Requests that failed in this second.
    pub errors: u64,
    /// Requests dropped whose intended start fell in this second.
    pub dropped: u64,
    /// Response bytes received in this second.
    pub bytes: u64,
    /// Median latency of this second's successes, µs.
    pub p50_us: u64,
    /// 99th percentile of this second's successes, µs.
    pub p99_us: u64,
    /// Largest latency of this second's successes, µs.
    pub max_us: u64,
}

/// `load/<phase>/series.json`: workload name -> its points.
pub type Series = BTreeMap<String, Vec<SeriesPoint>>;

/// Open loop: whether the target rate was sustained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pacing {
    /// Every arrival was sent and the p99 send lag stayed within 10 ms.
    pub sustained: bool,
    /// Arrivals per second the schedule asked for (its mean rate).
    pub target_per_s: f64,
    /// Requests actually sent per second, over the phase or, when sends ran
    /// past its end (waiting for a slot), up to the last send.
    pub sent_per_s: f64,
    /// How far the sends fell short of the schedule, % of the arrivals.
    pub shortfall_pct: f64,
    /// Median delay of a send after its intended start, µs.
    pub lag_p50_us: u64,
    /// 99th percentile of the send delay, µs.
    pub lag_p99_us: u64,
    /// Largest send delay, µs: how far behind the schedule the generator fell.
    pub lag_max_us: u64,
    /// The verdict in one sentence.
    pub note: String,
}

/// The generator's own latency at a phase's rate, measured against a server
/// that answers at once (the instrument floor, issue 18).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Floor {
    /// Arrivals per second of the calibration.
    pub rate_per_s: f64,
    /// Where that rate comes from (`rpc rate`, `tx rate`, ...).
    pub basis: String,
    /// Calibration window, seconds.
    pub window_s: f64,
    /// Maximum requests in flight (the phase's).
    pub concurrency: u32,
    /// Requests answered.
    pub ok: u64,
    /// Requests failed or dropped (a floor with any is not trustworthy).
    pub failed: u64,
    /// Latency of the answered requests from their intended start, µs.
    pub latency: LatencySummary,
}

/// What one workload did in one phase (`summary.json` holds one per workload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkloadSummary {
    /// `rpc`, `tx`, `sync`.
    pub workload: String,
    /// Open or closed loop.
    pub model: LoadModel,
    /// Open loop: the target rate at the start of the phase.
    pub target_rate_per_s: Option<f64>,
    /// Open loop: the rate at the end of a ramp.
    pub ramp_to_per_s: Option<f64>,
    /// Open loop: the stepped schedule, when one was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RateStep>,
    /// Closed loop: clients; open loop: maximum in flight.
    pub concurrency: u32,
    /// Start of the phase on CLOCK_MONOTONIC, ns.
    pub start_ns: u64,
    /// When the last request finished (or was given up), CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// The sending window, seconds.
    pub duration_s: f64,
    /// Arrivals the schedule asked for (open loop) or requests started (closed).
    pub scheduled: u64,
    /// Requests actually sent.
    pub sent: u64,
    /// Requests answered successfully.
    pub ok: u64,
    /// Failed requests by kind (`timeout`, `connect`, `http_503`, `rpc_-32000`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Requests not sent because no slot freed up within the timeout after
    /// their intended start or because the phase ended first.
    pub dropped: u64,
    /// Successes per second over the sending window.
    pub throughput_per_s: f64,
    /// Latency of successful requests (open loop: from the intended start).
    pub latency: LatencySummary,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Workload-specific figures (e.g. tx inclusion, sync response kinds).
    pub details: BTreeMap<String, serde_json::Value>,
    /// Open loop: whether the target rate was sustained, and by how much it
    /// fell behind when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
}

impl WorkloadSummary {
    /// A workload that measured nothing yet: every count zero.
    pub fn empty(workload: &str, model: LoadModel) -> Self {
        Self {
            workload: workload.to_string(),
            model,
            target_rate_per_s: None,
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 0,
            start_ns: 0,
            end_ns: 0,
            duration_s: 0.0,
            scheduled: 0,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            dropped: 0,
            throughput_per_s: 0.0,
            latency: LatencySummary::default(),
            bytes_received: 0,
            details: BTreeMap::new(),
            pacing: None,
        }
    }

    /// Total failed requests.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What a phase's load did (`load/<phase>/summary.json`). `Load` is the load
/// as configured: `loadgen::PhaseLoad` when written, any JSON when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhaseSummary<Load = serde_json::Value> {
    /// Phase name.
    pub phase: String,
    /// Session seed.
    pub seed: u64,
    /// Start of the phase on CLOCK_MONOTONIC, ns.
    pub start_ns: u64,
    /// End of the phase's load (all workloads done), CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// Requested duration, seconds.
    pub duration_s: f64,
    /// The load as configured.
    pub load: Load,
    /// One summary per rate-driven workload (`rpc`, `tx`, `sync`).
    pub workloads: BTreeMap<String, WorkloadSummary>,
    /// What the compaction workload did, if configured.
    pub compaction: Option<serde_json::Value>,
    /// True when the phase was cancelled before its end.
    pub cancelled: bool,
    /// The generator's own latency at this phase's rate, measured against a
    /// server that answers at once just before the load clock started.
    #[serde(default)]
    pub floor: Option<Floor>,
    /// Why `floor` is absent (calibration disabled or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_missing: Option<String>,
}

impl<Load> PhaseSummary<Load> {
    /// A phase whose workloads are `workloads`, with no floor measured.
    pub fn new(phase: &str, seed: u64, load: Load, workloads: Vec<WorkloadSummary>) -> Self {
        Self {
            phase: phase.to_string(),
            seed,
            start_ns: 0,
            end_ns: 0,
            duration_s: 0.0,
            load,
            workloads: workloads
                .into_iter()
                .map(|w| (w.workload.clone(), w))
                .collect(),
            compaction: None,
            cancelled: false,
            floor: None,
            floor_missing: None,
        }
    }
}

/// `load/seed_db.json`: what seeding the datadir wrote (`loadgen::seed_db`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeedReport {
    /// Keys written.
    pub keys: u64,
    /// Bytes of values written.
    pub value_bytes_total: u64,
    /// BLAKE3 over every key and value in write order (same seed, same digest).
    pub digest: String,
}
