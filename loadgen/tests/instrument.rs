//! The load generator as an instrument (issue 18), against real HTTP on
//! loopback: the instrument floor in every phase summary, the known-answer
//! check that a server with a known 2 ms delay measures as 2 ms plus at most
//! the floor, and a target rate the generator cannot reach said plainly
//! (1 connection against a 5 ms server).
//!
//! The "node" here is [`loadgen::floor::FloorServer`] with a delay: it
//! answers every JSON-RPC call with `"0x0"` (so the session is opened with
//! chain id 0) after exactly that delay.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen::floor::FloorServer;
use loadgen::{LoadModel, LoadSession, NodeEndpoints, PhaseLoad, RpcLoad, RpcMethod};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn endpoints(server: &FloorServer) -> NodeEndpoints {
    NodeEndpoints {
        rpc: server.addr(),
        p2p: None,
        metrics: None,
        chain_id: 0,
        admin_rpc: false,
    }
}

fn open_rpc(rate: f64, concurrency: u32, timeout_ms: u64) -> PhaseLoad {
    PhaseLoad {
        rpc: Some(RpcLoad {
            model: LoadModel::Open,
            rate_per_s: rate,
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency,
            timeout_ms,
            mix: BTreeMap::from([(RpcMethod::EthBlockNumber, 1)]),
        }),
        ..PhaseLoad::default()
    }
}

/// Done-when of issue 18: against a server with a known 2 ms delay, at
/// 2,000 req/s, the measured p50 is 2 ms plus at most the instrument floor,
/// and summary.json carries it. (The floor's own target, below 0.3 ms at
/// 2,000 req/s, is a speed figure: `loadgen/bench.sh` reports it, no test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_2ms_server_measures_2ms_plus_at_most_the_floor() {
    let delay = Duration::from_millis(2);
    let server = FloorServer::start(delay).unwrap();
    let s = LoadSession::connect(endpoints(&server), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A phase whose pacer could not keep the schedule (the machine starved
    // it: other builds on the 2 shared cores) measures the machine, and its
    // own summary says so; such a try is retried, at most 3 in all.
    let mut lags = Vec::new();
    for attempt in 0..3 {
        server.take_service_us();
        let sum = s
            .run_phase(
                &format!("known-2ms-{attempt}"),
                &open_rpc(2000.0, 64, 5000),
                Duration::from_secs(3),
                dir.path(),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        let floor = sum.floor.clone().expect("every phase carries the floor");
        assert_eq!(floor.rate_per_s, 2000.0);
        assert_eq!(floor.failed, 0, "{floor:?}");
        assert!(floor.ok >= 1900, "{floor:?}");
        let r = &sum.workloads["rpc"];
        assert_eq!(r.ok, 6000, "{r:?}");
        let pacing = r.pacing.clone().expect("open loop reports its pacing");
        let p50 = r.latency.p50_us;
        // What the server itself took: 2 ms of exact sleep plus its own
        // blocking-thread hop and wake-up, which are not the instrument's.
        let mut served = server.take_service_us();
        served.sort_unstable();
        assert!(
            served.len() >= 6000,
            "the server answered {} times",
            served.len()
        );
        let served_p50 = served[served.len() / 2];
        eprintln!(
            "known 2 ms server at 2000/s: p50 {p50} us, p99 {} us; the server's own time p50 \
             {served_p50} us; floor p50 {} us, p99 {} us; pacing: {}",
            r.latency.p99_us, floor.latency.p50_us, floor.latency.p99_us, pacing.note
        );
        if !pacing.sustained {
            lags.push(pacing.lag_p99_us);
            continue;
        }
        assert!(
            served_p50 >= 2000,
            "the server slept less than 2 ms: p50 {served_p50} us"
        );
        assert!(
            p50 >= served_p50,
            "p50 {p50} us below the server's own time {served_p50} us"
        );
        // "The floor" is the floor's p99, as in the report line; the known
        // answer is the server's own time (2 ms and its wake-up).
        assert!(
            p50 <= served_p50 + floor.latency.p99_us,
            "p50 {p50} us is more than the server's {served_p50} us plus the floor (p50 {} us, p99 {} us)",
            floor.latency.p50_us,
            floor.latency.p99_us
        );
        // summary.json carries the floor.
        let back: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(
            back["floor"]["latency"]["p99_us"].as_u64(),
            Some(floor.latency.p99_us)
        );
        return;
    }
    panic!(
        "the pacer could not keep 2,000/s in 3 tries (p99 lag {lags:?} us): the machine \
         is too busy for this known-answer test; rerun it on a quieter machine"
    );
}

/// Done-when of issue 18: 1 connection against a 5 ms server cannot go
/// beyond 200 req/s; asked for 1,000 req/s the summary says the target was
/// not sustained, with the shortfall and how far behind the schedule it fell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_one_connection_cannot_reach_is_reported_with_its_shortfall() {
    let server = FloorServer::start(Duration::from_millis(5)).unwrap();
    let mut s = LoadSession::connect(endpoints(&server), 1).await.unwrap();
    s.set_floor_window(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let sum = s
        .run_phase(
            "saturated",
            &open_rpc(1000.0, 1, 1000),
            Duration::from_secs(2),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let r = &sum.workloads["rpc"];
    assert_eq!(r.scheduled, 2000);
    let p = r.pacing.clone().expect("open loop reports its pacing");
    assert!(!p.sustained, "{p:?}");
    // At most 200/s get through one 5 ms connection, for the 2 s of the
    // schedule plus the last arrival's 1 s wait for the connection.
    assert!(r.sent <= 605, "{r:?}");
    assert!(p.sent_per_s <= 202.5, "{p:?}");
    assert!(p.shortfall_pct >= 69.0, "{p:?}");
    // Arrivals wait for the connection up to the 1 s timeout: the sends fall
    // up to about a second behind.
    assert!(p.lag_max_us >= 500_000, "{p:?}");
    assert!(r.dropped >= 1390, "{r:?}");
    assert_eq!(r.sent + r.dropped, 2000, "{r:?}");
    assert!(
        p.note.contains("NOT sustained") && p.note.contains("% short"),
        "{}",
        p.note
    );
    let back: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        back["workloads"]["rpc"]["pacing"]["sustained"],
        Value::Bool(false)
    );
}

/// A phase without any open-loop rate still carries a floor, at the fixed
/// calibration rate; a zero window says why it is absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_phases_carry_a_floor_and_a_skipped_one_says_why() {
    let server = FloorServer::start(Duration::ZERO).unwrap();
    let mut s = LoadSession::connect(endpoints(&server), 1).await.unwrap();
    s.set_floor_window(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let mut load = open_rpc(1.0, 2, 1000);
    if let Some(r) = load.rpc.as_mut() {
        r.model = LoadModel::Closed;
    }
    let sum = s
        .run_phase(
            "closed",
            &load,
            Duration::from_secs(1),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let f = sum.floor.expect("closed-loop phases carry a floor too");
    assert_eq!(f.rate_per_s, loadgen::floor::DEFAULT_FLOOR_RATE_PER_S);
    assert_eq!(f.ok, 300, "{f:?}");
    assert!(sum.workloads["rpc"].pacing.is_none());
    s.set_floor_window(Duration::ZERO);
    let sum = s
        .run_phase(
            "skipped",
            &load,
            Duration::from_secs(1),
            dir.path(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(sum.floor.is_none());
    assert!(
        sum.floor_missing
            .as_deref()
            .is_some_and(|m| m.contains("skipped")),
        "{:?}",
        sum.floor_missing
    );
}
