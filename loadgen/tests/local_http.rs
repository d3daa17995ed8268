//! Open and closed loop against a tiny hyper JSON-RPC server on loopback
//! (port 0): rate accuracy, coordinated omission (a server that stalls for
//! 1 s once), seeded request sequences, and the phase outputs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use loadgen::{LoadModel, LoadSession, NodeEndpoints, PhaseLoad, RpcLoad, RpcMethod};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Server {
    /// Requests arriving in [stall_from, stall_until) wait until stall_until.
    stall: Option<(Instant, Instant)>,
    /// Bodies of the requests seen (method and params, id).
    seen: Mutex<Vec<(u64, String)>>,
}

async fn serve(server: Arc<Server>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let server = server.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if let Some((from, until)) = server.stall {
                            let now = Instant::now();
                            if now >= from && now < until {
                                tokio::time::sleep(until - now).await;
                            }
                        }
                        let id = v["id"].as_u64().unwrap_or(0);
                        let method = v["method"].as_str().unwrap_or("").to_owned();
                        server
                            .seen
                            .lock()
                            .unwrap()
                            .push((id, format!("{method} {}", v["params"])));
                        let result = match method.as_str() {
                            "eth_chainId" => json!("0x2328"),
                            "eth_blockNumber" => json!("0x64"),
                            _ => json!("0x1"),
                        };
                        let out = serde_json::to_vec(
                            &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                        )
                        .unwrap();
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(out))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn endpoints(rpc: SocketAddr) -> NodeEndpoints {
    NodeEndpoints {
        rpc,
        p2p: None,
        metrics: None,
        chain_id: 9000,
        admin_rpc: false,
    }
}

fn rpc_load(model: LoadModel, rate: f64, concurrency: u32) -> PhaseLoad {
    PhaseLoad {
        rpc: Some(RpcLoad {
            model,
            rate_per_s: rate,
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency,
            timeout_ms: 5000,
            mix: BTreeMap::from([
                (RpcMethod::EthBlockNumber, 5),
                (RpcMethod::EthGetBlockByNumber, 2),
                (RpcMethod::EthGetBalance, 1),
            ]),
        }),
        ..PhaseLoad::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_2000_per_s_for_10_s_lands_within_2_percent_and_writes_outputs() {
    let addr = serve(Arc::new(Server::default())).await;
    let s = LoadSession::connect(endpoints(addr), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sum = s
        .run_phase(
            "rate",
            &rpc_load(LoadModel::Open, 2000.0, 64),
            Duration::from_secs(10),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let r = &sum.workloads["rpc"];
    assert_eq!(r.scheduled, 20_000);
    assert!(r.ok.abs_diff(20_000) <= 400, "ok {} of 20000: {r:?}", r.ok);
    assert_eq!(r.errors_total(), 0, "{:?}", r.errors);
    assert!(r.latency.p50_us < 50_000, "{:?}", r.latency);
    // Outputs: summary.json, rpc.hdr, series.json with 10-11 seconds.
    let back: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(back["workloads"]["rpc"]["ok"], json!(r.ok));
    let h = loadgen::stats::read_histogram(&dir.path().join("rpc.hdr")).unwrap();
    assert_eq!(h.len(), r.ok);
    let series: BTreeMap<String, Vec<loadgen::SeriesPoint>> =
        serde_json::from_slice(&std::fs::read(dir.path().join("series.json")).unwrap()).unwrap();
    let pts = &series["rpc"];
    assert!((10..=11).contains(&pts.len()), "{}", pts.len());
    assert_eq!(pts.iter().map(|p| p.ok).sum::<u64>(), r.ok);
    assert!(pts[1..9].iter().all(|p| p.scheduled == 2000), "{pts:?}");
    assert!(pts[0].t_ns >= sum.start_ns && pts[0].t_ns < sum.start_ns + 1_000);
}

/// Stepped open loop: 2 s at 200/s then 400/s held to the end of a 4 s
/// phase; the per-second series shows each step's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stepped_rates_follow_their_steps() {
    let addr = serve(Arc::new(Server::default())).await;
    let s = LoadSession::connect(endpoints(addr), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut load = rpc_load(LoadModel::Open, 200.0, 64);
    if let Some(r) = load.rpc.as_mut() {
        r.steps = vec![
            loadgen::RateStep {
                duration_s: 2.0,
                rate_per_s: 200.0,
            },
            loadgen::RateStep {
                duration_s: 1.0,
                rate_per_s: 400.0,
            },
        ];
    }
    let sum = s
        .run_phase(
            "steps",
            &load,
            Duration::from_secs(4),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let r = &sum.workloads["rpc"];
    assert_eq!(r.scheduled, 2 * 200 + 2 * 400, "{r:?}");
    assert_eq!(r.errors_total(), 0, "{:?}", r.errors);
    assert_eq!(r.steps.len(), 2);
    let series: BTreeMap<String, Vec<loadgen::SeriesPoint>> =
        serde_json::from_slice(&std::fs::read(dir.path().join("series.json")).unwrap()).unwrap();
    let per_s: Vec<u64> = series["rpc"].iter().map(|p| p.scheduled).collect();
    assert_eq!(&per_s[..4], &[200, 200, 400, 400], "{per_s:?}");
}

/// Coordinated omission: the server stalls for 1 s once. The open loop,
/// measuring from intended starts, shows it in p99; the closed loop, whose
/// few clients simply wait, hides it below p99 (only max sees it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_shows_in_open_loop_p99_but_not_in_closed_loop_p99() {
    let mut p99 = BTreeMap::new();
    for model in [LoadModel::Open, LoadModel::Closed] {
        let now = Instant::now();
        let server = Arc::new(Server {
            stall: Some((now + Duration::from_secs(3), now + Duration::from_secs(4))),
            ..Server::default()
        });
        let addr = serve(server).await;
        let s = LoadSession::connect(endpoints(addr), 1).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let conc = if model == LoadModel::Open { 64 } else { 4 };
        let load = rpc_load(model, 500.0, conc);
        let sum = s
            .run_phase(
                "co",
                &load,
                Duration::from_secs(8),
                dir.path(),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        let r = sum.workloads["rpc"].clone();
        assert_eq!(r.errors_total(), 0, "{model:?}: {:?}", r.errors);
        assert!(
            r.latency.max_us >= 900_000,
            "{model:?} never saw the stall: {:?}",
            r.latency
        );
        p99.insert(format!("{model:?}"), r);
    }
    let (open, closed) = (&p99["Open"], &p99["Closed"]);
    // 500/s during a 1 s stall: ~500 of ~4000 requests late by up to 1 s.
    assert!(
        open.latency.p99_us >= 800_000,
        "open-loop p99 hides the stall: {:?}",
        open.latency
    );
    assert!(
        open.latency.p90_us >= 100_000,
        "open-loop p90: {:?}",
        open.latency
    );
    assert!(
        closed.latency.p99_us < 50_000,
        "closed-loop p99 should hide the stall: {:?}",
        closed.latency
    );
    assert!(
        closed.ok > open.ok,
        "closed loop runs flat out: {} vs {}",
        closed.ok,
        open.ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_sends_the_same_requests() {
    let mut runs = Vec::new();
    for seed in [7, 7, 8] {
        let server = Arc::new(Server::default());
        let addr = serve(server.clone()).await;
        let s = LoadSession::connect(endpoints(addr), seed).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        s.run_phase(
            "p",
            &rpc_load(LoadModel::Open, 400.0, 16),
            Duration::from_secs(1),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let mut seen = server.seen.lock().unwrap().clone();
        seen.sort();
        runs.push(seen);
    }
    // 400 load requests plus the session's eth_chainId and the phase's eth_blockNumber.
    assert_eq!(runs[0].len(), 402);
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_a_wrong_chain_id_and_unreachable_nodes() {
    let addr = serve(Arc::new(Server::default())).await;
    let e = LoadSession::connect(
        NodeEndpoints {
            chain_id: 1,
            ..endpoints(addr)
        },
        1,
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("chain id"), "{e}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = LoadSession::connect(endpoints(dead), 1)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&dead.to_string()), "{e}");
}
