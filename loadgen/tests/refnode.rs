//! Done-when tests of issue 5 against the reference node binary
//! (`$QFC_REFNODE_BIN`, else `$CARGO_TARGET_DIR/debug/qfc-refnode`, built by
//! `cargo build -p refnode`), every listener on a loopback port 0. Without
//! the binary the trials are reported as ignored, with the reason.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use loadgen::{
    CompactionLoad, CompactionMethod, LoadModel, LoadSession, NodeEndpoints, PhaseLoad, RpcLoad,
    RpcMethod, SyncLoad, SyncRequestKind, TxLoad,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn refnode_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("QFC_REFNODE_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "../target".into());
    target.join("debug").join("qfc-refnode")
}

/// Arguments of a dev reference node on loopback ports chosen by the kernel.
fn node_args(datadir: &Path, ports_file: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        "--dev".into(),
        "--datadir".into(),
        datadir.into(),
        "--rpc-addr".into(),
        "127.0.0.1:0".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--p2p-port".into(),
        "0".into(),
        "--lab-p2p-host".into(),
        "127.0.0.1".into(),
        "--lab-ports-file".into(),
        ports_file.into(),
        "--log-level".into(),
        "info".into(),
    ];
    v.extend(extra.iter().map(OsString::from));
    v
}

struct Node {
    child: Child,
    endpoints: NodeEndpoints,
    stdout: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn p2p_addr(multiaddr: &str) -> Option<SocketAddr> {
    // "/ip4/127.0.0.1/tcp/PORT[/p2p/..]"
    let parts: Vec<&str> = multiaddr.split('/').collect();
    let ip = parts.get(2)?;
    let port = parts.get(4)?;
    format!("{ip}:{port}").parse().ok()
}

fn spawn(extra: &[&str], admin_rpc: bool) -> Result<Node, Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ports = dir.path().join("ports.json");
    let stdout = dir.path().join("stdout.log");
    let child = Command::new(refnode_bin())
        .args(node_args(&dir.path().join("data"), &ports, extra))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).map_err(|e| e.to_string())?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {}: {e}; build it with cargo build -p refnode",
                refnode_bin().display()
            )
        })?;
    let mut node = Node {
        child,
        endpoints: NodeEndpoints {
            rpc: "127.0.0.1:1".parse().unwrap(),
            p2p: None,
            metrics: None,
            chain_id: 9000,
            admin_rpc,
        },
        stdout,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = std::fs::read(&ports)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            node.endpoints.rpc = v["rpc"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or("ports.json without rpc")?;
            node.endpoints.metrics = v["metrics"].as_str().and_then(|s| s.parse().ok());
            node.endpoints.p2p = v["p2p"].as_str().and_then(p2p_addr);
            return Ok(node);
        }
        if let Ok(Some(st)) = node.child.try_wait() {
            return Err(format!("qfc-refnode exited with {st} before listening").into());
        }
        if Instant::now() > deadline {
            return Err("qfc-refnode did not write its ports file within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

fn rate_accuracy() -> Result<(), Failed> {
    let node = spawn(&["--lab-block-interval-ms", "1000"], false)?;
    runtime().block_on(async {
        let s = LoadSession::connect(node.endpoints.clone(), 11)
            .await
            .map_err(|e| e.to_string())?;
        let load = PhaseLoad {
            rpc: Some(RpcLoad {
                model: LoadModel::Open,
                rate_per_s: 2000.0,
                ramp_to_per_s: None,
                steps: Vec::new(),
                concurrency: 64,
                timeout_ms: 5000,
                mix: BTreeMap::from([
                    (RpcMethod::EthBlockNumber, 5),
                    (RpcMethod::EthGetBlockByNumber, 2),
                    (RpcMethod::EthGetBalance, 1),
                ]),
            }),
            ..PhaseLoad::default()
        };
        let dir = tempfile::tempdir()?;
        let sum = s
            .run_phase(
                "rate",
                &load,
                Duration::from_secs(10),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let r = &sum.workloads["rpc"];
        eprintln!(
            "rate: ok {} of {} scheduled, dropped {}, errors {:?}, latency {:?}",
            r.ok, r.scheduled, r.dropped, r.errors, r.latency
        );
        check(r.ok.abs_diff(20_000) <= 400, || {
            format!("ok {} not within 2% of 20000", r.ok)
        })?;
        check(r.errors_total() == 0, || format!("errors {:?}", r.errors))
    })
}

fn tx_flood() -> Result<(), Failed> {
    let node = spawn(&["--lab-block-interval-ms", "250"], false)?;
    runtime().block_on(async {
        let s = LoadSession::connect(node.endpoints.clone(), 12).await?;
        let load = PhaseLoad {
            tx: Some(TxLoad {
                rate_per_s: 1000.0,
                accounts: 100,
                sample_receipts: 1.0,
                timeout_ms: 5000,
                ..TxLoad::default()
            }),
            ..PhaseLoad::default()
        };
        let dir = tempfile::tempdir()?;
        let sum = s
            .run_phase(
                "flood",
                &load,
                Duration::from_secs(10),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let t = &sum.workloads["tx"];
        eprintln!(
            "tx: ok {} errors {:?} dropped {} latency {:?} details {:?}",
            t.ok, t.errors, t.dropped, t.latency, t.details
        );
        check(t.ok == 10_000, || {
            format!("{} of 10000 transactions accepted", t.ok)
        })?;
        check(t.errors_total() == 0, || format!("errors {:?}", t.errors))?;
        let d = |k: &str| t.details.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
        check(d("receipts_sampled") == 10_000, || {
            format!("sampled {}", d("receipts_sampled"))
        })?;
        check(d("receipts_found") == 10_000, || {
            format!("receipts found {} of 10000", d("receipts_found"))
        })?;
        check(d("receipts_failed") == 0, || "failed receipts".into())?;
        check(d("nonce_gaps") == 0, || "nonce gaps".into())?;
        // Gap-free nonces: every account's confirmed nonce equals the number of
        // transfers it sent (10000 / 100 round robin), on the node itself.
        check(d("accounts_caught_up") == 100, || {
            format!("{} of 100 accounts caught up", d("accounts_caught_up"))
        })?;
        let pool = loadgen::http::HttpPool::new(node.endpoints.rpc);
        for i in 0..100u32 {
            let a = loadgen::tx::account(12, i);
            let n = loadgen::tx::nonce_of(&pool, &a.address, "latest")
                .await
                .map_err(|e| e.to_string())?;
            let want = 10_000 / 100;
            check(n == want, || format!("account {i}: nonce {n}, sent {want}"))?;
        }
        Ok(())
    })
}

/// The closed tx loop (`qfc-load --tx-closed`): one client per account,
/// back to back. A saturated node refuses some transfers (its mempool is
/// full: an honest answer, counted as errors); every transfer it accepted
/// is included, nonces are gap-free, and the count the node confirms on
/// chain equals the count the loop reports accepted.
fn tx_closed_loop() -> Result<(), Failed> {
    let node = spawn(&["--lab-block-interval-ms", "250"], false)?;
    runtime().block_on(async {
        let s = LoadSession::connect(node.endpoints.clone(), 14).await?;
        let load = PhaseLoad {
            tx: Some(TxLoad {
                accounts: 64,
                sample_receipts: 0.0,
                closed: true,
                ..TxLoad::default()
            }),
            ..PhaseLoad::default()
        };
        let dir = tempfile::tempdir()?;
        let sum = s
            .run_phase(
                "closed",
                &load,
                Duration::from_secs(4),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let t = &sum.workloads["tx"];
        eprintln!(
            "tx closed: ok {} errors {:?} throughput {} details {:?}",
            t.ok, t.errors, t.throughput_per_s, t.details
        );
        check(t.errors.keys().all(|k| k == "rpc_-32000"), || {
            format!("errors other than the node's refusals: {:?}", t.errors)
        })?;
        check(t.ok > 100, || format!("only {} transactions in 4 s", t.ok))?;
        let d = |k: &str| t.details.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
        check(d("nonce_gaps") == 0, || "nonce gaps".into())?;
        check(t.ok + d("gaps_refilled") == d("accepted"), || {
            format!(
                "answered {} + refilled {} != accepted {}",
                t.ok,
                d("gaps_refilled"),
                d("accepted")
            )
        })?;
        check(d("accounts_caught_up") == 64, || {
            format!("{} of 64 accounts caught up", d("accounts_caught_up"))
        })?;
        let pool = loadgen::http::HttpPool::new(node.endpoints.rpc);
        let mut confirmed = 0;
        for i in 0..64u32 {
            let a = loadgen::tx::account(14, i);
            confirmed += loadgen::tx::nonce_of(&pool, &a.address, "latest")
                .await
                .map_err(|e| e.to_string())?;
        }
        check(confirmed == d("accepted"), || {
            format!(
                "node confirms {confirmed} transactions, the loop reports {} accepted",
                d("accepted")
            )
        })
    })
}

fn sync_flood() -> Result<(), Failed> {
    let node = spawn(&["--lab-block-interval-ms", "100"], false)?;
    runtime().block_on(async {
        let s = LoadSession::connect(node.endpoints.clone(), 13).await?;
        let pool = loadgen::http::HttpPool::new(node.endpoints.rpc);
        let t0 = Instant::now();
        loop {
            let (v, _) = pool
                .call(0, "eth_blockNumber", serde_json::json!([]))
                .await
                .map_err(|e| e.to_string())?;
            if loadgen::http::parse_quantity(&v).unwrap_or(0) >= 40 {
                break;
            }
            check(t0.elapsed() < Duration::from_secs(30), || {
                "node did not reach block 40 in 30 s".into()
            })?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let load = PhaseLoad {
            sync: Some(SyncLoad {
                peers: 8,
                rate_per_s: 200.0,
                request: SyncRequestKind::Mixed,
                timeout_ms: 10_000,
            }),
            ..PhaseLoad::default()
        };
        let dir = tempfile::tempdir()?;
        let sum = s
            .run_phase(
                "sync",
                &load,
                Duration::from_secs(10),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let w = &sum.workloads["sync"];
        eprintln!(
            "sync: ok {} errors {:?} latency {:?} details {:?}",
            w.ok, w.errors, w.latency, w.details
        );
        check(w.ok == 2000, || {
            format!("{} of 2000 sync requests answered", w.ok)
        })?;
        check(w.errors_total() == 0, || format!("errors {:?}", w.errors))?;
        let responses = w.details["responses"].as_u64().unwrap_or(0);
        check(
            w.details["blocks_received"].as_u64().unwrap_or(0) > 0,
            || "no blocks received".into(),
        )?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let log = std::fs::read_to_string(&node.stdout)?;
        let logged = log
            .lines()
            .filter(|l| l.contains("Sending sync response"))
            .count() as u64;
        let handled = log
            .lines()
            .filter(|l| l.contains("Handling sync request from"))
            .count() as u64;
        let peers: std::collections::BTreeSet<&str> = log
            .lines()
            .filter_map(|l| l.split("Handling sync request from ").nth(1))
            .filter_map(|r| r.split(':').next())
            .collect();
        eprintln!(
            "sync: node logged {handled} requests and {logged} responses from {} peers",
            peers.len()
        );
        check(logged == responses && handled == responses, || {
            format!("node logged {handled} requests, {logged} responses; we got {responses}")
        })?;
        check(peers.len() == 8, || {
            format!("{} distinct peers in the node log", peers.len())
        })
    })
}

fn compaction() -> Result<(), Failed> {
    let node = spawn(&["--lab-block-interval-ms", "100", "--lab-admin"], true)?;
    runtime().block_on(async {
        let s = LoadSession::connect(node.endpoints.clone(), 14).await?;
        let dir = tempfile::tempdir()?;
        let load = PhaseLoad {
            compaction: Some(CompactionLoad {
                method: CompactionMethod::Auto,
                flood_mib: 8,
            }),
            ..PhaseLoad::default()
        };
        let sum = s
            .run_phase(
                "admin",
                &load,
                Duration::from_secs(30),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let c = sum.compaction.ok_or("no compaction report")?;
        eprintln!("compaction auto: {c}");
        check(c["ran"] == "admin", || format!("ran {}", c["ran"]))?;
        check(
            c["steps"]
                .as_array()
                .is_some_and(|s| s.len() == 2 && s.iter().all(|x| x["error"].is_null())),
            || format!("{}", c["steps"]),
        )?;
        let load = PhaseLoad {
            compaction: Some(CompactionLoad {
                method: CompactionMethod::WriteFlood,
                flood_mib: 8,
            }),
            ..PhaseLoad::default()
        };
        let sum = s
            .run_phase(
                "flood",
                &load,
                Duration::from_secs(30),
                dir.path(),
                CancellationToken::new(),
            )
            .await?;
        let c = sum.compaction.ok_or("no compaction report")?;
        eprintln!(
            "compaction flood: ran {} bytes {} txs {} observed {} samples {}",
            c["ran"],
            c["flood_bytes_accepted"],
            c["flood_txs_accepted"],
            c["compaction_observed"],
            c["samples"].as_array().map_or(0, Vec::len)
        );
        check(c["ran"] == "write_flood", || format!("ran {}", c["ran"]))?;
        let samples = c["samples"].as_array().map_or(0, Vec::len);
        check(samples >= 2, || format!("{samples} metrics samples"))?;
        check(
            c["compaction_observed"] == true
                || c["flood_bytes_accepted"].as_u64().unwrap_or(0) >= 8 << 20,
            || format!("{c}"),
        )
    })
}

fn main() {
    let args = Arguments::from_args();
    let bin = refnode_bin();
    let missing = !bin.exists();
    if missing {
        eprintln!("skipping: {} not found; build it with `cargo build -p refnode` (or set QFC_REFNODE_BIN)", bin.display());
    }
    let trials = [
        (
            "rate_2000_per_s_for_10_s_within_2_percent",
            rate_accuracy as fn() -> Result<(), Failed>,
        ),
        ("tx_flood_10000_all_included_gap_free", tx_flood),
        ("tx_closed_loop_confirmed_equals_answered", tx_closed_loop),
        ("sync_flood_8_peers_log_lines_match", sync_flood),
        ("compaction_admin_and_write_flood", compaction),
    ]
    .into_iter()
    .map(|(name, f)| Trial::test(name, f).with_ignored_flag(missing))
    .collect();
    libtest_mimic::run(&args, trials).exit();
}
