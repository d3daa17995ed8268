//! The two load models. The open loop paces arrivals from a [`Schedule`] and
//! measures each request from its *intended* start, so a stall shows up in
//! the latencies of every request that should have gone out during it (no
//! coordinated omission, as wrk2). The closed loop runs N clients back to
//! back and measures from the actual send. Both are bounded in time and
//! count, and stop on cancellation.
//!
//! Pacing (issue 18): the open loop's arrivals are released by a dedicated
//! pacer thread that sleeps with `clock_nanosleep` at 1 ns timer slack, not
//! on tokio's 1 ms timer wheel and not on a worker that also does I/O; each
//! request is handed to the runtime's workers as its own task. The pacer
//! records how late each send was (`lag`) so that a schedule the generator
//! could not keep is reported, never quietly turned into a lower rate.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::schedule::Schedule;
use crate::stats::{Fail, Recorder};

/// Closed loops stop after this many requests even if time remains.
pub const CLOSED_LOOP_MAX_REQUESTS: u64 = 100_000_000;

/// How often a sleeping pacer looks at its cancellation token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// A kind of request the engine can drive.
pub trait Workload: Send + Sync + 'static {
    /// One request, fully decided before it is sent.
    type Req: Send + 'static;

    /// Request number `index`. Called in index order, one at a time, with
    /// the workload's seeded generator: the request sequence depends only on
    /// the seed (and the workload's state), never on timing.
    fn make(&self, index: u64, rng: &mut ChaCha8Rng) -> Self::Req;

    /// Sends one request; `Ok(bytes received)` or why it failed.
    fn execute(&self, req: Self::Req) -> impl Future<Output = Result<u64, Fail>> + Send;

    /// How long a closed-loop client waits after the node refused a
    /// request (an RPC error), before its next one: zero by default. A
    /// workload whose refusals mean "full, come back later" (a full
    /// mempool) sets it, so that a saturated node is not kept busy
    /// refusing, which would measure the refusals instead of the work.
    fn refusal_backoff(&self) -> Duration {
        Duration::ZERO
    }
}

/// Open-loop settings.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// When each arrival is due.
    pub schedule: Schedule,
    /// Maximum requests in flight.
    pub max_in_flight: u32,
    /// Per-request timeout, from the actual send; also how late an arrival
    /// may be sent before it counts as dropped.
    pub timeout: Duration,
}

/// Runs the open loop to the end of its schedule (or cancellation), then
/// waits up to one timeout for requests in flight. Must be called inside a
/// tokio runtime (real time: the pacer thread does not follow a paused clock).
pub async fn run_open<W: Workload>(
    w: Arc<W>,
    cfg: OpenLoop,
    rng: ChaCha8Rng,
    rec: Arc<Recorder>,
    cancel: CancellationToken,
) {
    let handle = Handle::current();
    let timeout = cfg.timeout;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let pacer_rec = rec.clone();
    let started = std::thread::Builder::new()
        .name("qfc-load-pacer".into())
        .spawn(move || {
            let out = pace(w, cfg, rng, pacer_rec, cancel, &handle);
            let _ = tx.send(out);
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the pacer thread; no request sent");
        return;
    }
    // A pacer that panicked dropped its tasks (aborted) and sends nothing.
    if let Ok((tasks, spawned)) = rx.await {
        drain(tasks, spawned, &rec, timeout).await;
    }
}

/// Lowers this thread's timer slack to 1 ns so that sleeps end on time
/// (the default slack is 50 µs).
fn precise_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes
    // the calling thread's timer slack.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!("PR_SET_TIMERSLACK refused; the pacer keeps the default 50 us slack");
    }
}

/// Sleeps until `t` (or returns at once when it has passed); `false` when
/// cancelled first.
fn sleep_until(t: std::time::Instant, cancel: &CancellationToken) -> bool {
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        match t.checked_duration_since(std::time::Instant::now()) {
            Some(left) if !left.is_zero() => std::thread::sleep(left.min(CANCEL_POLL)),
            _ => return true,
        }
    }
}

enum Slot {
    Permit(OwnedSemaphorePermit),
    TooLate,
    Cancelled,
}

/// The pacer: releases arrival `i` at its intended start, on its own thread.
fn pace<W: Workload>(
    w: Arc<W>,
    cfg: OpenLoop,
    mut rng: ChaCha8Rng,
    rec: Arc<Recorder>,
    cancel: CancellationToken,
    rt: &Handle,
) -> (JoinSet<()>, u64) {
    precise_timer_slack();
    let start = rec.anchor().instant();
    let total = cfg.schedule.total();
    let sem = Arc::new(Semaphore::new(cfg.max_in_flight.max(1) as usize));
    let mut tasks = JoinSet::new();
    let mut spawned = 0u64;
    for i in 0..total {
        let intended = start + cfg.schedule.offset(i);
        if !sleep_until(intended, &cancel) {
            rec.dropped_unscheduled(intended, total - i);
            break;
        }
        rec.scheduled(intended);
        let req = w.make(i, &mut rng);
        let slot = match sem.clone().try_acquire_owned() {
            Ok(p) => Slot::Permit(p),
            // All slots busy: wait for one, up to one timeout after the
            // intended start (the wait counts in the latency).
            Err(_) => rt.block_on(async {
                let give_up = Instant::from_std(intended + cfg.timeout);
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => Slot::Cancelled,
                    p = sem.clone().acquire_owned() => match p {
                        Ok(p) => Slot::Permit(p),
                        Err(_) => Slot::Cancelled,
                    },
                    _ = tokio::time::sleep_until(give_up) => Slot::TooLate,
                }
            }),
        };
        let permit = match slot {
            Slot::Permit(p) => p,
            Slot::TooLate => {
                rec.dropped(intended, 1);
                continue;
            }
            Slot::Cancelled => {
                rec.dropped(intended, 1);
                rec.dropped_unscheduled(intended, total - i - 1);
                break;
            }
        };
        rec.sent_at(intended, std::time::Instant::now());
        spawned += 1;
        let (w, rec, timeout) = (w.clone(), rec.clone(), cfg.timeout);
        tasks.spawn_on(
            async move {
                let outcome = match tokio::time::timeout(timeout, w.execute(req)).await {
                    Ok(r) => r,
                    Err(_) => Err(Fail::Timeout),
                };
                // Latency from the intended start (coordinated-omission correction).
                rec.finished(intended, std::time::Instant::now(), outcome);
                drop(permit);
            },
            rt,
        );
        while tasks.try_join_next().is_some() {}
    }
    (tasks, spawned)
}

/// Waits for in-flight requests up to `grace`, then aborts the rest and
/// counts them as `unfinished`.
async fn drain(mut tasks: JoinSet<()>, spawned: u64, rec: &Recorder, grace: Duration) {
    let deadline = Instant::now() + grace + Duration::from_millis(100);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { return },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let done = rec.completed();
    let now = std::time::Instant::now();
    for _ in done..spawned {
        rec.finished(now, now, Err(Fail::Unfinished));
    }
}

/// Closed-loop settings.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Clients, each with one request in flight.
    pub clients: u32,
    /// How long the clients keep sending.
    pub duration: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Stop after this many requests in total.
    pub max_requests: u64,
}

/// Runs `clients` back-to-back clients for `duration`.
pub async fn run_closed<W: Workload>(
    w: Arc<W>,
    cfg: ClosedLoop,
    rng: ChaCha8Rng,
    rec: Arc<Recorder>,
    cancel: CancellationToken,
) {
    let end = Instant::from_std(rec.anchor().instant()) + cfg.duration;
    let gen = Arc::new(Mutex::new((0u64, rng)));
    let mut tasks = JoinSet::new();
    for _ in 0..cfg.clients.max(1) {
        let (w, rec, gen, cancel, cfg) = (
            w.clone(),
            rec.clone(),
            gen.clone(),
            cancel.clone(),
            cfg.clone(),
        );
        tasks.spawn(async move {
            loop {
                if Instant::now() >= end || cancel.is_cancelled() {
                    return;
                }
                let req = {
                    let mut g = gen.lock().unwrap_or_else(|p| p.into_inner());
                    if g.0 >= cfg.max_requests {
                        return;
                    }
                    let i = g.0;
                    g.0 += 1;
                    w.make(i, &mut g.1)
                };
                let t0 = std::time::Instant::now();
                rec.started(t0);
                let outcome = tokio::select! {
                    r = tokio::time::timeout(cfg.timeout, w.execute(req)) => r.unwrap_or(Err(Fail::Timeout)),
                    _ = cancel.cancelled() => Err(Fail::Unfinished),
                };
                let refused = matches!(outcome, Err(Fail::Rpc(_)));
                rec.finished(t0, std::time::Instant::now(), outcome);
                let pause = w.refusal_backoff();
                if refused && !pause.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            }
        });
    }
    let spawned_guard = tokio::time::timeout(
        cfg.duration + cfg.timeout + Duration::from_millis(200),
        async { while tasks.join_next().await.is_some() {} },
    )
    .await;
    if spawned_guard.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let (sent, done) = (rec.sent_count(), rec.completed());
        let now = std::time::Instant::now();
        for _ in done..sent {
            rec.finished(now, now, Err(Fail::Unfinished));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Anchor;
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Answers after a fixed delay; stalls everything once between two
    /// instants, like a server that pauses.
    struct Sleepy {
        delay: Duration,
        stall_from: Instant,
        stall_until: Instant,
        seen: Mutex<Vec<u32>>,
        calls: AtomicU64,
    }

    impl Workload for Sleepy {
        type Req = u32;
        fn make(&self, _index: u64, rng: &mut ChaCha8Rng) -> u32 {
            rng.gen()
        }
        async fn execute(&self, req: u32) -> Result<u64, Fail> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.seen.lock().unwrap().push(req);
            let now = Instant::now();
            if now >= self.stall_from && now < self.stall_until {
                tokio::time::sleep_until(self.stall_until).await;
            }
            tokio::time::sleep(self.delay).await;
            Ok(1)
        }
    }

    fn sleepy(stall_at: Duration, stall: Duration) -> Arc<Sleepy> {
        let now = Instant::now();
        Arc::new(Sleepy {
            delay: Duration::from_millis(1),
            stall_from: now + stall_at,
            stall_until: now + stall_at + stall,
            seen: Mutex::new(Vec::new()),
            calls: AtomicU64::new(0),
        })
    }

    // Real time: the pacer thread sleeps on the system clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_sends_the_scheduled_count() {
        let w = sleepy(Duration::from_secs(100), Duration::ZERO);
        let rec = Arc::new(Recorder::new(Anchor::now()));
        let cfg = OpenLoop {
            schedule: Schedule::Constant {
                rate_per_s: 1000.0,
                duration: Duration::from_secs(1),
            },
            max_in_flight: 64,
            timeout: Duration::from_secs(1),
        };
        run_open(
            w.clone(),
            cfg,
            ChaCha8Rng::seed_from_u64(7),
            rec.clone(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(w.calls.load(Ordering::Relaxed), 1000);
        assert_eq!(rec.completed(), 1000);
    }

    // Real time: the pacer thread sleeps on the system clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_seed_same_requests() {
        let mut seqs = Vec::new();
        for _ in 0..2 {
            let w = sleepy(Duration::from_secs(100), Duration::ZERO);
            let rec = Arc::new(Recorder::new(Anchor::now()));
            let cfg = OpenLoop {
                schedule: Schedule::Constant {
                    rate_per_s: 100.0,
                    duration: Duration::from_secs(1),
                },
                max_in_flight: 8,
                timeout: Duration::from_secs(1),
            };
            run_open(
                w.clone(),
                cfg,
                ChaCha8Rng::seed_from_u64(42),
                rec,
                CancellationToken::new(),
            )
            .await;
            let mut v = w.seen.lock().unwrap().clone();
            v.sort();
            seqs.push(v);
        }
        assert_eq!(seqs[0].len(), 100);
        assert_eq!(seqs[0], seqs[1]);
    }

    // Real time: the pacer thread sleeps on the system clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancellation_stops_the_open_loop_and_counts_the_rest_as_dropped() {
        let w = sleepy(Duration::from_secs(100), Duration::ZERO);
        let rec = Arc::new(Recorder::new(Anchor::now()));
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            c2.cancel();
        });
        let cfg = OpenLoop {
            schedule: Schedule::Constant {
                rate_per_s: 100.0,
                duration: Duration::from_secs(10),
            },
            max_in_flight: 8,
            timeout: Duration::from_secs(1),
        };
        run_open(
            w.clone(),
            cfg,
            ChaCha8Rng::seed_from_u64(1),
            rec.clone(),
            cancel,
        )
        .await;
        let sent = w.calls.load(Ordering::Relaxed);
        assert!((49..=52).contains(&sent), "{sent}");
        let s = rec.summary(crate::stats::Shape {
            workload: "t".into(),
            model: crate::model::LoadModel::Open,
            target_rate_per_s: None,
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 8,
            duration: Duration::from_secs(10),
        });
        assert_eq!(s.scheduled, 1000);
        assert_eq!(s.dropped + s.sent, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_is_bounded_by_count() {
        let w = sleepy(Duration::from_secs(100), Duration::ZERO);
        let rec = Arc::new(Recorder::new(Anchor::now()));
        let cfg = ClosedLoop {
            clients: 4,
            duration: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            max_requests: 123,
        };
        run_closed(
            w.clone(),
            cfg,
            ChaCha8Rng::seed_from_u64(1),
            rec.clone(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(w.calls.load(Ordering::Relaxed), 123);
        assert_eq!(rec.completed(), 123);
    }
}
