//! Per-workload recording for one phase: an HdrHistogram of latencies (µs),
//! errors by kind, requests dropped (could not be sent on time, like k6's
//! dropped iterations) and a per-second series; then the serializable
//! summary and the files written into the phase's output directory. In the
//! open loop it also records how late each send left against its schedule
//! and says plainly in [`Pacing`] when the target rate was not sustained.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::clock::Anchor;
use crate::model::LoadModel;
use crate::LoadError;
pub use bundle_schema::load::{LatencySummary, Pacing, SeriesPoint, WorkloadSummary};

/// Highest latency the histograms hold: one hour, in µs (higher values saturate).
const MAX_US: u64 = 3_600_000_000;

/// Why a request failed; the key under which `errors` counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// No answer within the timeout.
    Timeout,
    /// Could not open a connection.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// HTTP answered with a status other than 2xx.
    HttpStatus(u16),
    /// JSON-RPC answered with an error object of this code.
    Rpc(i64),
    /// The answer could not be decoded.
    Decode,
    /// Still in flight when the phase ended (aborted).
    Unfinished,
    /// A protocol-specific failure (e.g. `sync_not_found`).
    Other(&'static str),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Timeout => f.write_str("timeout"),
            Fail::Connect => f.write_str("connect"),
            Fail::Io => f.write_str("io"),
            Fail::HttpStatus(s) => write!(f, "http_{s}"),
            Fail::Rpc(c) => write!(f, "rpc_{c}"),
            Fail::Decode => f.write_str("decode"),
            Fail::Unfinished => f.write_str("unfinished"),
            Fail::Other(s) => f.write_str(s),
        }
    }
}

/// Percentiles of a histogram, µs (all zero when empty).
pub fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        min_us: h.min(),
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// Sends later than this (p99) against the schedule, or any dropped arrival,
/// mean the target rate was not sustained.
pub const LAG_LIMIT: Duration = Duration::from_millis(10);

/// Open loop: how well the generator kept to its schedule (issue 18). A
/// target rate the generator could not keep is said here, with how far
/// behind it fell; the latencies then include the wait (they run from each
/// request's intended start).
fn pacing(
    scheduled: u64,
    sent: u64,
    dropped: u64,
    lag: &Histogram<u64>,
    secs: f64,
    send_secs: f64,
) -> Pacing {
    let l = latency_summary(lag);
    let shortfall_pct = if scheduled == 0 {
        0.0
    } else {
        100.0 * scheduled.saturating_sub(sent) as f64 / scheduled as f64
    };
    let target_per_s = scheduled as f64 / secs;
    let sent_per_s = sent as f64 / secs.max(send_secs);
    let sustained = dropped == 0 && l.p99_us <= LAG_LIMIT.as_micros() as u64;
    let ms = |us: u64| us as f64 / 1000.0;
    let note = if sustained {
        format!(
            "target {target_per_s:.1}/s sustained: {sent} of {scheduled} arrivals sent, \
             p99 {:.3} ms behind schedule (max {:.3} ms)",
            ms(l.p99_us),
            ms(l.max_us)
        )
    } else {
        format!(
            "target {target_per_s:.1}/s NOT sustained: sent {sent_per_s:.1}/s \
             ({shortfall_pct:.1}% short of the schedule, {dropped} arrivals dropped), \
             up to {:.3} ms behind schedule (p99 {:.3} ms); latencies include the wait; \
             raise the concurrency or lower the rate",
            ms(l.max_us),
            ms(l.p99_us)
        )
    };
    Pacing {
        sustained,
        target_per_s,
        sent_per_s,
        shortfall_pct,
        lag_p50_us: l.p50_us,
        lag_p99_us: l.p99_us,
        lag_max_us: l.max_us,
        note,
    }
}

struct Second {
    scheduled: u64,
    ok: u64,
    errors: u64,
    dropped: u64,
    bytes: u64,
    hist: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Self {
            scheduled: 0,
            ok: 0,
            errors: 0,
            dropped: 0,
            bytes: 0,
            hist: Histogram::new_with_bounds(1, MAX_US, 2).expect("static histogram bounds"),
        }
    }
}

struct Inner {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    scheduled: u64,
    sent: u64,
    ok: u64,
    dropped: u64,
    bytes: u64,
    last_done: Instant,
    seconds: Vec<Second>,
    /// Open loop: send time minus intended start, µs.
    lag: Histogram<u64>,
    /// Open loop: when the last request went out.
    last_sent: Instant,
}

/// Thread-safe recorder of one workload in one phase.
pub struct Recorder {
    anchor: Anchor,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// A recorder whose second 0 starts at `anchor`.
    pub fn new(anchor: Anchor) -> Self {
        Self {
            anchor,
            inner: Mutex::new(Inner {
                hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds"),
                errors: BTreeMap::new(),
                scheduled: 0,
                sent: 0,
                ok: 0,
                dropped: 0,
                bytes: 0,
                last_done: anchor.instant(),
                seconds: Vec::new(),
                lag: Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds"),
                last_sent: anchor.instant(),
            }),
        }
    }

    /// The phase start this recorder measures from.
    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    fn second_of(&self, t: Instant) -> usize {
        // Bounded: phases are at most hours long; a day caps the vector.
        (t.saturating_duration_since(self.anchor.instant()).as_secs() as usize).min(86_400)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bucket(inner: &mut Inner, s: usize) -> &mut Second {
        while inner.seconds.len() <= s {
            inner.seconds.push(Second::new());
        }
        &mut inner.seconds[s]
    }

    /// An arrival (open loop) or a request start (closed loop) at `intended`.
    pub fn scheduled(&self, intended: Instant) {
        let s = self.second_of(intended);
        let mut g = self.lock();
        g.scheduled += 1;
        Self::bucket(&mut g, s).scheduled += 1;
    }

    /// Closed loop: a request scheduled and sent at `t` (one lock).
    pub fn started(&self, t: Instant) {
        let s = self.second_of(t);
        let mut g = self.lock();
        g.scheduled += 1;
        g.sent += 1;
        Self::bucket(&mut g, s).scheduled += 1;
    }

    /// A request actually went out.
    pub fn sent(&self) {
        self.lock().sent += 1;
    }

    /// Open loop: a request intended at `intended` went out at `at`.
    pub fn sent_at(&self, intended: Instant, at: Instant) {
        let us = at
            .saturating_duration_since(intended)
            .as_micros()
            .clamp(1, MAX_US as u128) as u64;
        let mut g = self.lock();
        g.sent += 1;
        g.lag.saturating_record(us);
        g.last_sent = g.last_sent.max(at);
    }

    /// `n` arrivals that could not be sent on time, intended at `intended`.
    pub fn dropped(&self, intended: Instant, n: u64) {
        let s = self.second_of(intended);
        let mut g = self.lock();
        g.dropped += n;
        Self::bucket(&mut g, s).dropped += n;
    }

    /// `n` arrivals that were never reached because the phase ended or was
    /// cancelled; they count as scheduled and dropped.
    pub fn dropped_unscheduled(&self, intended: Instant, n: u64) {
        let s = self.second_of(intended);
        let mut g = self.lock();
        g.scheduled += n;
        g.dropped += n;
        let b = Self::bucket(&mut g, s);
        b.scheduled += n;
        b.dropped += n;
    }

    /// A finished request: latency from `start` (the intended start in the
    /// open loop) to `done`; `Ok(bytes)` or the failure.
    pub fn finished(&self, start: Instant, done: Instant, outcome: Result<u64, Fail>) {
        let s = self.second_of(done);
        let us = done
            .saturating_duration_since(start)
            .as_micros()
            .clamp(1, MAX_US as u128) as u64;
        let mut g = self.lock();
        g.last_done = g.last_done.max(done);
        match outcome {
            Ok(bytes) => {
                g.ok += 1;
                g.bytes += bytes;
                g.hist.saturating_record(us);
                let b = Self::bucket(&mut g, s);
                b.ok += 1;
                b.bytes += bytes;
                b.hist.saturating_record(us);
            }
            Err(f) => {
                *g.errors.entry(f.to_string()).or_default() += 1;
                Self::bucket(&mut g, s).errors += 1;
            }
        }
    }

    /// Requests completed or failed so far.
    pub fn completed(&self) -> u64 {
        let g = self.lock();
        g.ok + g.errors.values().sum::<u64>()
    }

    /// Requests sent so far.
    pub fn sent_count(&self) -> u64 {
        self.lock().sent
    }

    /// A copy of the latency histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        self.lock().hist.clone()
    }

    /// The per-second series.
    pub fn series(&self) -> Vec<SeriesPoint> {
        let g = self.lock();
        g.seconds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let l = latency_summary(&b.hist);
                SeriesPoint {
                    t_ns: self.anchor.ns() + i as u64 * 1_000_000_000,
                    second: i as u64,
                    scheduled: b.scheduled,
                    ok: b.ok,
                    errors: b.errors,
                    dropped: b.dropped,
                    bytes: b.bytes,
                    p50_us: l.p50_us,
                    p99_us: l.p99_us,
                    max_us: l.max_us,
                }
            })
            .collect()
    }

    /// The summary; `shape` carries what the recorder does not know.
    pub fn summary(&self, shape: Shape) -> WorkloadSummary {
        let g = self.lock();
        let secs = shape.duration.as_secs_f64().max(1e-9);
        WorkloadSummary {
            workload: shape.workload,
            model: shape.model,
            target_rate_per_s: shape.target_rate_per_s,
            ramp_to_per_s: shape.ramp_to_per_s,
            steps: shape.steps,
            concurrency: shape.concurrency,
            start_ns: self.anchor.ns(),
            end_ns: self.anchor.ns_of(g.last_done),
            duration_s: shape.duration.as_secs_f64(),
            scheduled: g.scheduled,
            sent: g.sent,
            ok: g.ok,
            errors: g.errors.clone(),
            dropped: g.dropped,
            throughput_per_s: g.ok as f64 / secs,
            latency: latency_summary(&g.hist),
            bytes_received: g.bytes,
            details: BTreeMap::new(),
            pacing: (shape.model == LoadModel::Open).then(|| {
                let send_secs = g
                    .last_sent
                    .saturating_duration_since(self.anchor.instant())
                    .as_secs_f64();
                pacing(g.scheduled, g.sent, g.dropped, &g.lag, secs, send_secs)
            }),
        }
    }
}

/// The parts of a summary the recorder cannot know.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Workload name.
    pub workload: String,
    /// Model.
    pub model: LoadModel,
    /// Open loop rate.
    pub target_rate_per_s: Option<f64>,
    /// Ramp end.
    pub ramp_to_per_s: Option<f64>,
    /// Stepped schedule.
    pub steps: Vec<crate::model::RateStep>,
    /// Clients or max in flight.
    pub concurrency: u32,
    /// Sending window.
    pub duration: Duration,
}

/// Writes `h` in the HdrHistogram V2 format (readable by every HdrHistogram
/// implementation; `read_histogram` reads it back).
pub fn write_histogram(path: &Path, h: &Histogram<u64>) -> Result<(), LoadError> {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| LoadError::Output {
            path: path.to_owned(),
            why: format!("cannot serialize histogram: {e:?}"),
        })?;
    std::fs::write(path, buf).map_err(|e| LoadError::Output {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// Reads a histogram written by [`write_histogram`].
pub fn read_histogram(path: &Path) -> Result<Histogram<u64>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Output {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| LoadError::Output {
            path: path.to_owned(),
            why: format!("not an HdrHistogram V2 file: {e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_summarizes() {
        let a = Anchor::now();
        let r = Recorder::new(a);
        let t0 = a.instant();
        for i in 0..100u64 {
            r.scheduled(t0);
            r.sent();
            r.finished(t0, t0 + Duration::from_millis(i + 1), Ok(10));
        }
        r.finished(t0, t0 + Duration::from_millis(5), Err(Fail::Timeout));
        r.finished(
            t0,
            t0 + Duration::from_millis(5),
            Err(Fail::HttpStatus(503)),
        );
        r.dropped(t0 + Duration::from_millis(1500), 3);
        let s = r.summary(Shape {
            workload: "rpc".into(),
            model: LoadModel::Open,
            target_rate_per_s: Some(100.0),
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 4,
            duration: Duration::from_secs(1),
        });
        assert_eq!((s.ok, s.dropped, s.bytes_received), (100, 3, 1000));
        assert_eq!(s.errors["timeout"], 1);
        assert_eq!(s.errors["http_503"], 1);
        assert!(
            (49_900..=50_100).contains(&s.latency.p50_us),
            "{:?}",
            s.latency
        );
        assert!(
            (99_000..=100_100).contains(&s.latency.max_us),
            "{:?}",
            s.latency
        );
        let series = r.series();
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].dropped, 3);
        assert_eq!(series[0].ok, 100);
        assert_eq!(series[1].t_ns, a.ns() + 1_000_000_000);
    }

    fn open_shape() -> Shape {
        Shape {
            workload: "rpc".into(),
            model: LoadModel::Open,
            target_rate_per_s: Some(100.0),
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 1,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn pacing_says_when_the_schedule_was_kept() {
        let a = Anchor::now();
        let r = Recorder::new(a);
        let t0 = a.instant();
        for i in 0..100u64 {
            let intended = t0 + Duration::from_millis(i * 10);
            r.scheduled(intended);
            r.sent_at(intended, intended + Duration::from_micros(40));
        }
        let p = r.summary(open_shape()).pacing.unwrap();
        assert!(p.sustained, "{p:?}");
        assert_eq!(p.shortfall_pct, 0.0);
        assert!((39..=41).contains(&p.lag_p99_us), "{p:?}");
        assert!(p.note.contains("sustained"), "{}", p.note);
    }

    #[test]
    fn pacing_says_plainly_when_the_rate_was_not_sustained() {
        let a = Anchor::now();
        let r = Recorder::new(a);
        let t0 = a.instant();
        // 100 arrivals; only 20 sent, each later than the one before; 80 dropped.
        for i in 0..100u64 {
            let intended = t0 + Duration::from_millis(i * 10);
            r.scheduled(intended);
            if i < 20 {
                r.sent_at(intended, intended + Duration::from_millis(i * 40));
            } else {
                r.dropped(intended, 1);
            }
        }
        let p = r.summary(open_shape()).pacing.unwrap();
        assert!(!p.sustained);
        assert!((p.shortfall_pct - 80.0).abs() < 1e-9, "{p:?}");
        assert!((p.sent_per_s - 20.0).abs() < 1e-9, "{p:?}");
        assert!((759_000..=761_000).contains(&p.lag_max_us), "{p:?}");
        assert!(
            p.note.contains("NOT sustained") && p.note.contains("80.0% short"),
            "{}",
            p.note
        );
        // Closed loops have no schedule to keep.
        let c = r.summary(Shape {
            model: LoadModel::Closed,
            ..open_shape()
        });
        assert!(c.pacing.is_none());
    }

    #[test]
    fn histogram_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_US, 3).unwrap();
        for v in [1u64, 10, 100, 1000, 1_000_000] {
            h.record(v).unwrap();
        }
        let p = dir.path().join("rpc.hdr");
        write_histogram(&p, &h).unwrap();
        let back = read_histogram(&p).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }
}
