//! The instrument floor (issue 18): the latency the load generator adds by
//! itself. Before each phase's load clock starts, the open loop is driven at
//! the phase's rate, for a short window, against a [`FloorServer`]: an HTTP
//! JSON-RPC server on loopback, on its own thread and runtime (like a node in
//! another process), that answers every request at once with a constant
//! body. What the open loop measures there is pacing, task hand-off, the
//! HTTP client, loopback TCP and a minimal hyper server: a latency the node
//! under test cannot beat. `summary.json` carries it as `floor`; a phase
//! whose p99 is within 2x of the floor's p99 measures the instrument, not
//! the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::clock::Anchor;
use crate::engine::{self, OpenLoop};
use crate::http::HttpPool;
use crate::model::{LoadModel, RpcMethod};
use crate::rpc::RpcWorkload;
use crate::schedule::Schedule;
use crate::stats::{Recorder, Shape};
use crate::LoadError;

/// Calibration rate when the phase has no open-loop rate (closed loop, or
/// compaction only).
pub const DEFAULT_FLOOR_RATE_PER_S: f64 = 1000.0;

/// Default calibration window.
pub const DEFAULT_FLOOR_WINDOW: Duration = Duration::from_secs(1);

pub use bundle_schema::load::Floor;

/// An HTTP/1.1 server on 127.0.0.1:0 that answers every request with the
/// same JSON-RPC result (`"0x0"`) after `delay` (zero: at once). Runs on its
/// own thread with a current-thread runtime; stops when dropped.
pub struct FloorServer {
    addr: SocketAddr,
    /// How long each answer took inside the server, in µs: from the whole
    /// request read to the response handed to hyper (the delay with its
    /// blocking-thread hop and wake-up). Only with a delay; empty without.
    service_us: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FloorServer {
    /// Starts the server. A non-zero `delay` is slept on a blocking thread
    /// with 1 ns timer slack, so it is exact to a few µs (a known answer
    /// for tests), unlike tokio's 1 ms timer.
    pub fn start(delay: Duration) -> Result<Self, LoadError> {
        let err = |why: String| LoadError::Workload {
            workload: "floor",
            why,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| err(format!("cannot bind 127.0.0.1:0: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err(format!("cannot make the listener non-blocking: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| err(format!("no local address: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(format!("cannot start its runtime: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service_us = std::sync::Arc::<std::sync::Mutex<Vec<u64>>>::default();
        let record = service_us.clone();
        let thread = std::thread::Builder::new()
            .name("qfc-load-floor".into())
            .spawn(move || rt.block_on(serve(listener, delay, record, stopped)))
            .map_err(|e| err(format!("cannot start its thread: {e}")))?;
        Ok(Self {
            addr,
            service_us,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes the server-side time of every answer since the last call, in
    /// µs (see the field): what a known-delay test compares the client's
    /// measurement with, since the server's own wake-up after its sleep is
    /// not the instrument's.
    pub fn take_service_us(&self) -> Vec<u64> {
        std::mem::take(&mut *self.service_us.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    delay: Duration,
    service_us: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":0,"result":"0x0"}"#);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => break,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let service_us = service_us.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let body = body.clone();
                let service_us = service_us.clone();
                async move {
                    // Read the whole request, as a node would.
                    req.into_body().collect().await?;
                    // Recorded only with a delay: the floor's own server
                    // (no delay) stays free of the lock on its hot path.
                    if !delay.is_zero() {
                        let started = std::time::Instant::now();
                        let _ = tokio::task::spawn_blocking(move || {
                            precise_sleep(delay);
                        })
                        .await;
                        let us = started.elapsed().as_micros() as u64;
                        service_us
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(us);
                    }
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

fn precise_sleep(d: Duration) {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes
    // the calling thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    std::thread::sleep(d);
}

/// Drives the open loop at `rate_per_s` with up to `concurrency` requests in
/// flight for `window` against a fresh [`FloorServer`] (no delay) and
/// returns what it measured.
pub async fn measure(
    rate_per_s: f64,
    basis: &str,
    concurrency: u32,
    window: Duration,
    cancel: CancellationToken,
) -> Result<Floor, LoadError> {
    let server = FloorServer::start(Duration::ZERO)?;
    let pool = Arc::new(HttpPool::new(server.addr()));
    pool.warm(concurrency.min(64) as usize)
        .await
        .map_err(|e| LoadError::Workload {
            workload: "floor",
            why: format!("cannot connect to its own server ({e})"),
        })?;
    let mix = std::collections::BTreeMap::from([(RpcMethod::EthBlockNumber, 1)]);
    let w = Arc::new(RpcWorkload::new(pool, &mix, 0, Vec::new()));
    let rec = Arc::new(Recorder::new(Anchor::now()));
    let cfg = OpenLoop {
        schedule: Schedule::Constant {
            rate_per_s,
            duration: window,
        },
        max_in_flight: concurrency,
        timeout: Duration::from_secs(1),
    };
    let rng = crate::seeds::workload_rng(0, "floor", "rpc");
    engine::run_open(w, cfg, rng, rec.clone(), cancel).await;
    let s = rec.summary(Shape {
        workload: "floor".into(),
        model: LoadModel::Open,
        target_rate_per_s: Some(rate_per_s),
        ramp_to_per_s: None,
        steps: Vec::new(),
        concurrency,
        duration: window,
    });
    drop(server);
    Ok(Floor {
        rate_per_s,
        basis: basis.to_owned(),
        window_s: window.as_secs_f64(),
        concurrency,
        ok: s.ok,
        failed: s.errors_total() + s.dropped,
        latency: s.latency,
    })
}
