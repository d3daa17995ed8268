//! End-to-end tests of qfc-refnode on loopback (issue 3): blocks grow, a
//! signed transaction lands with its receipt, bad transactions get JSON-RPC
//! errors while production continues, `/qfc/sync/1` serves ranges and logs
//! one `{:?}` line per response at INFO and none at WARN, the admin trigger
//! moves the RocksDB metrics, and a restart keeps the head.

use refnode::testing::{metric_sum, metric_value, parse_quantity, NodeProcess};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use wire::genesis::{faucet_address, DEV_CHAIN_ID, FAUCET_SECRET};
use wire::tx::MIN_GAS_PRICE;
use wire::{Address, Block, SyncRequest, SyncResponse, Transaction, U256};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qfc-refnode"))
}

const T: Duration = Duration::from_secs(60);

#[test]
fn blocks_grow_and_basic_methods_answer() {
    let dir = tempfile::tempdir().unwrap();
    // Flags through QFC_* variables, as a scenario may set them.
    let node = NodeProcess::spawn_env(
        &bin(),
        dir.path(),
        &[],
        &[
            ("QFC_DEV", "1"),
            ("QFC_NO_NETWORK", "true"),
            ("QFC_LAB_BLOCK_INTERVAL_MS", "100"),
        ],
    )
    .unwrap();
    assert_eq!(node.rpc("eth_chainId", json!([])).unwrap(), json!("0x2328"));
    assert_eq!(node.rpc("net_version", json!([])).unwrap(), json!("9000"));
    assert!(node
        .rpc("web3_clientVersion", json!([]))
        .unwrap()
        .as_str()
        .unwrap()
        .starts_with("qfc-refnode/"));
    assert_eq!(node.rpc("eth_syncing", json!([])).unwrap(), json!(false));
    assert_eq!(
        node.rpc("eth_estimateGas", json!([{}])).unwrap(),
        json!("0x5208")
    );
    assert_eq!(
        node.rpc(
            "eth_getCode",
            json!([faucet_address().to_string(), "latest"])
        )
        .unwrap(),
        json!("0x")
    );
    let info = node.rpc("qfc_nodeInfo", json!([])).unwrap();
    assert_eq!(info["chainId"], json!("0x2328"));
    assert_eq!(info["isValidator"], json!(true));
    let bal = node
        .rpc(
            "eth_getBalance",
            json!([faucet_address().to_string(), "latest"]),
        )
        .unwrap();
    assert_eq!(
        bal.as_str().unwrap(),
        U256::from_u128(wire::genesis::GENESIS_BALANCE_WEI).to_quantity()
    );

    let a = node.block_number().unwrap();
    let b = node.wait_for_block(a + 3, T).unwrap();
    assert!(b >= a + 3);
    let blk = node
        .rpc("eth_getBlockByNumber", json!(["0x2", false]))
        .unwrap();
    assert_eq!(blk["number"], json!("0x2"));
    let by_hash = node
        .rpc("eth_getBlockByHash", json!([blk["hash"], false]))
        .unwrap();
    assert_eq!(by_hash, blk);
    assert_eq!(
        node.rpc("eth_getBlockByNumber", json!(["0xffffff", false]))
            .unwrap(),
        json!(null)
    );
    let m = node.metrics().unwrap();
    assert!(metric_value(&m, "qfc_block_height", "").unwrap() >= 3.0);
    assert!(
        metric_value(&m, "qfc_rpc_requests_total", "method=\"eth_blockNumber\"").unwrap() >= 2.0
    );
    assert!(m.contains("qfc_rocksdb_l0_files{cf=\"block_headers\"}"));
}

#[test]
fn signed_transfer_is_included_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &["--dev", "--no-network", "--lab-block-interval-ms", "200"],
    )
    .unwrap();
    let to = Address::from_low_u64(0x77);
    let tx = Transaction::transfer(
        DEV_CHAIN_ID,
        0,
        to,
        U256::from_u64(1000),
        U256::from_u64(MIN_GAS_PRICE),
    )
    .signed(&FAUCET_SECRET);
    let raw = tx.encode_hex();
    assert_eq!(raw.len(), 2 + 2 * 210);
    let h = node.rpc("eth_sendRawTransaction", json!([raw])).unwrap();
    assert_eq!(h.as_str().unwrap(), tx.hash().to_string());

    // Malformed and badly signed transactions: JSON-RPC errors, like qfc-node's.
    let err = |raw: String| {
        node.rpc_raw("eth_sendRawTransaction", json!([raw]))
            .unwrap()["error"]
            .clone()
    };
    assert_eq!(err("0xzz".into())["code"], json!(-32602));
    assert_eq!(
        err(raw[..raw.len() - 10].to_string())["code"],
        json!(-32602)
    );
    let mut bad = tx.clone();
    bad.nonce = 1;
    bad.signature[5] ^= 0xff;
    let e = err(bad.encode_hex());
    assert_eq!(e["code"], json!(-32000));
    assert!(
        e["message"].as_str().unwrap().contains("Invalid signature"),
        "{e}"
    );
    let mut bypass = tx.clone();
    bypass.nonce = 1;
    bypass.public_key[0] = 0xEE;
    assert_eq!(
        err(bypass.encode_hex())["code"],
        json!(-32000),
        "no 0xEE bypass"
    );
    assert_eq!(
        err(raw.clone())["message"],
        json!("Transaction already known")
    );

    let deadline = std::time::Instant::now() + T;
    let receipt = loop {
        let r = node.rpc("eth_getTransactionReceipt", json!([h])).unwrap();
        if !r.is_null() {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no receipt within {T:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["gasUsed"], json!("0x5208"));
    assert_eq!(receipt["from"], json!(faucet_address().to_string()));
    let n = parse_quantity(&receipt["blockNumber"]).unwrap();
    let blk = node
        .rpc("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))
        .unwrap();
    assert_eq!(blk["transactions"], json!([h]));
    assert_eq!(blk["hash"], receipt["blockHash"]);
    assert_eq!(
        node.rpc("eth_getBalance", json!([to.to_string(), "latest"]))
            .unwrap(),
        json!("0x3e8")
    );
    assert_eq!(
        node.rpc(
            "eth_getTransactionCount",
            json!([faucet_address().to_string(), "latest"])
        )
        .unwrap(),
        json!("0x1")
    );
    // The faucet (qfc_requestFaucet, chain 9000) signs with [0x42; 32] at the next nonce.
    let f = node
        .rpc(
            "qfc_requestFaucet",
            json!(["0x0000000000000000000000000000000000000088", "0x10"]),
        )
        .unwrap();
    assert_eq!(f["amount"], json!("16"));
    let fh = f["txHash"].clone();
    let deadline = std::time::Instant::now() + T;
    while node
        .rpc("eth_getTransactionReceipt", json!([fh]))
        .unwrap()
        .is_null()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "faucet transfer not included"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        node.rpc(
            "eth_getBalance",
            json!(["0x0000000000000000000000000000000000000088", "latest"])
        )
        .unwrap(),
        json!("0x10")
    );
    // The node keeps producing after the bad transactions.
    node.wait_for_block(n + 2, T).unwrap();
    let m = node.metrics().unwrap();
    assert!(
        metric_value(
            &m,
            "qfc_rpc_errors_total",
            "method=\"eth_sendRawTransaction\""
        )
        .unwrap()
            >= 5.0
    );
}

fn sync_run(level: &str) -> (NodeProcess, tempfile::TempDir, Vec<SyncResponse>) {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &[
            "--dev",
            "--lab-block-interval-ms",
            "50",
            "--log-level",
            level,
        ],
    )
    .unwrap();
    node.wait_for_block(40, T).unwrap();
    let addr = node
        .ports
        .p2p
        .clone()
        .expect("p2p listening")
        .parse()
        .unwrap();
    let reqs = vec![
        SyncRequest::GetBlockRange { start: 1, end: 5 },
        SyncRequest::GetBlockRange {
            start: 1,
            end: 1000,
        },
        SyncRequest::GetStatus,
        SyncRequest::GetBlockByNumber(2),
        SyncRequest::GetBlockByNumber(1 << 40),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resp = rt.block_on(refnode::p2p::fetch(addr, reqs, T)).unwrap();
    (node, dir, resp)
}

fn response_lines(node: &NodeProcess) -> Vec<String> {
    // Let the node's stdout catch up with the last response.
    std::thread::sleep(Duration::from_millis(300));
    node.stdout()
        .lines()
        .filter(|l| l.contains("Sending sync response: "))
        .map(String::from)
        .collect()
}

#[test]
fn sync_protocol_serves_ranges_and_logs_each_response_at_info() {
    let (node, _dir, resp) = sync_run("info");
    let SyncResponse::Blocks(five) = &resp[0] else {
        panic!("expected Blocks, got {:?}", resp[0])
    };
    assert_eq!(five.len(), 5);
    for (i, raw) in five.iter().enumerate() {
        let b = Block::decode(raw).unwrap();
        assert_eq!(b.header.number, i as u64 + 1);
        let rpc = node
            .rpc(
                "eth_getBlockByNumber",
                json!([format!("{:#x}", i + 1), false]),
            )
            .unwrap();
        assert_eq!(rpc["hash"].as_str().unwrap(), b.hash().to_string());
    }
    let SyncResponse::Blocks(capped) = &resp[1] else {
        panic!("expected Blocks")
    };
    assert_eq!(capped.len(), 33, "a range is capped at start..=start+32");
    let SyncResponse::Status {
        block_number,
        genesis_hash,
        ..
    } = &resp[2]
    else {
        panic!("expected Status")
    };
    assert!(*block_number >= 40);
    assert_eq!(*genesis_hash, wire::genesis::genesis_block().hash());
    assert!(
        matches!(&resp[3], SyncResponse::Block(b) if Block::decode(b).unwrap().header.number == 2)
    );
    assert_eq!(resp[4], SyncResponse::NotFound);

    let lines = response_lines(&node);
    assert_eq!(
        lines.len(),
        resp.len(),
        "one line per response:\n{}",
        lines.join("\n")
    );
    assert!(lines.iter().all(|l| l.contains(" INFO ")));
    // The {:?} form prints block bytes number by number.
    let expected = format!("{:?}", resp[0]);
    assert!(
        lines.iter().any(|l| l.ends_with(&expected)),
        "first response logged with {{:?}}"
    );
    let m = node.metrics().unwrap();
    assert_eq!(
        metric_value(&m, "qfc_sync_responses_total", ""),
        Some(resp.len() as f64)
    );
}

#[test]
fn sync_responses_are_not_logged_at_warn() {
    let (node, _dir, resp) = sync_run("warn");
    assert_eq!(resp.len(), 5);
    assert!(response_lines(&node).is_empty());
    assert!(
        !node.stdout().contains(" INFO "),
        "nothing below WARN is printed"
    );
}

#[test]
fn admin_flush_and_compact_move_rocksdb_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &[
            "--dev",
            "--no-network",
            "--lab-block-interval-ms",
            "50",
            "--lab-admin",
            "--db-statistics",
        ],
    )
    .unwrap();
    let l0 = |node: &NodeProcess| metric_sum(&node.metrics().unwrap(), "qfc_rocksdb_l0_files");
    let before = l0(&node);
    let mut head = node.block_number().unwrap();
    for _ in 0..3 {
        head = node.wait_for_block(head + 2, T).unwrap();
        assert_eq!(node.rpc("lab_flush", json!([])).unwrap(), json!(true));
    }
    let flushed = l0(&node);
    assert!(
        flushed >= before + 3.0,
        "three flushes of block CFs add L0 files: {before} -> {flushed}"
    );
    let m = node.metrics().unwrap();
    assert!(metric_value(&m, "qfc_rocksdb_l0_files", "cf=\"block_headers\"").unwrap() >= 3.0);
    assert!(metric_value(&m, "qfc_rocksdb_flush_write_bytes_total", "").unwrap() > 0.0);
    let compact_before = metric_value(&m, "qfc_rocksdb_compaction_write_bytes_total", "").unwrap();
    assert_eq!(node.rpc("lab_compact", json!([])).unwrap(), json!(true));
    let m = node.metrics().unwrap();
    let compact_after = metric_value(&m, "qfc_rocksdb_compaction_write_bytes_total", "").unwrap();
    assert!(
        compact_after > compact_before,
        "compaction wrote bytes: {compact_before} -> {compact_after}"
    );
    assert_eq!(
        metric_value(&m, "qfc_rocksdb_l0_files", "cf=\"block_headers\"").unwrap(),
        0.0
    );
    for name in [
        "qfc_rocksdb_stall_micros_total",
        "qfc_rocksdb_wal_syncs_total",
        "qfc_rocksdb_wal_sync_duration_seconds_count",
    ] {
        assert!(
            metric_value(&m, name, "").is_some(),
            "{name} present with --db-statistics"
        );
    }
}

#[test]
fn admin_methods_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(&bin(), dir.path(), &["--dev", "--no-network"]).unwrap();
    let r = node.rpc_raw("lab_flush", json!([])).unwrap();
    assert_eq!(r["error"]["code"], json!(-32601), "method not found: {r}");
    assert!(
        !node
            .metrics()
            .unwrap()
            .contains("qfc_rocksdb_wal_syncs_total"),
        "statistics only with --db-statistics"
    );
}

#[test]
fn sigterm_closes_cleanly_and_restart_keeps_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &["--dev", "--no-network", "--lab-block-interval-ms", "50"],
    )
    .unwrap();
    node.wait_for_block(5, T).unwrap();
    let st = node.terminate(T).unwrap();
    assert!(st.success(), "clean exit: {st}");
    let out = node.stdout();
    let closed = out
        .lines()
        .find(|l| l.contains("Database closed at block "))
        .expect("close logged");
    let tail = closed.split("Database closed at block ").nth(1).unwrap();
    let (num, hash) = tail.split_once(' ').unwrap();
    let num: u64 = num.parse().unwrap();
    let hash = hash.trim_matches(|c| c == '(' || c == ')');
    drop(node);

    // Restart without --dev: no producer, so the head must be exactly the old one.
    let node = NodeProcess::spawn(&bin(), dir.path(), &["--no-network"]).unwrap();
    assert_eq!(node.block_number().unwrap(), num);
    let blk = node
        .rpc("eth_getBlockByNumber", json!(["latest", false]))
        .unwrap();
    assert_eq!(blk["hash"].as_str().unwrap(), hash);
}

#[test]
fn miner_threads_hash() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &["--dev", "--no-network", "--mine", "--threads", "1"],
    )
    .unwrap();
    let h = |n: &NodeProcess| {
        metric_value(&n.metrics().unwrap(), "qfc_miner_hashes_total", "").unwrap()
    };
    let a = h(&node);
    std::thread::sleep(Duration::from_millis(500));
    let b = h(&node);
    assert!(b > a, "miner hashes grow: {a} -> {b}");
    let comms: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", node.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(
        comms.iter().filter(|c| c.as_str() == "qfc-miner-0").count(),
        1,
        "{comms:?}"
    );
    assert!(
        comms.iter().any(|c| c == refnode::TOKIO_THREAD_NAME),
        "{comms:?}"
    );
}

#[test]
fn websocket_upgrade_on_the_rpc_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(&bin(), dir.path(), &["--dev", "--no-network"]).unwrap();
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://{}/", node.ports.rpc))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::SWITCHING_PROTOCOLS,
        "WebSocket upgrade refused: {:?}",
        resp.headers()
    );
}

#[test]
fn synced_commit_shows_in_wal_sync_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(
        &bin(),
        dir.path(),
        &[
            "--dev",
            "--no-network",
            "--lab-block-interval-ms",
            "50",
            "--lab-synced-commit",
            "--db-statistics",
            "--snapshot-interval-secs",
            "1",
        ],
    )
    .unwrap();
    let syncs = |n: &NodeProcess| {
        metric_value(&n.metrics().unwrap(), "qfc_rocksdb_wal_syncs_total", "").unwrap()
    };
    let a = node.block_number().unwrap();
    let s0 = syncs(&node);
    let b = node.wait_for_block(a + 10, T).unwrap();
    let s1 = syncs(&node);
    // Blocks committed between the two scrapes each synced the WAL once.
    assert!(
        s1 - s0 >= (b - a - 1) as f64,
        "{} blocks, {} WAL syncs",
        b - a,
        s1 - s0
    );
    let deadline = std::time::Instant::now() + T;
    while metric_value(&node.metrics().unwrap(), "qfc_snapshots_total", "").unwrap() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot within {T:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        std::fs::read_dir(dir.path().join("snapshots"))
            .unwrap()
            .count()
            >= 1
    );
}

#[test]
fn bootnode_dial_connects_two_nodes() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = NodeProcess::spawn(&bin(), da.path(), &["--dev"]).unwrap();
    let boot = a.ports.p2p.clone().unwrap();
    // B has no validator key: a plain follower with a random identity.
    let b = NodeProcess::spawn(&bin(), db.path(), &["--bootnodes", &boot]).unwrap();
    let deadline = std::time::Instant::now() + T;
    for n in [&a, &b] {
        while metric_value(&n.metrics().unwrap(), "qfc_peer_count", "").unwrap() < 1.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no peer connection within {T:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        b.rpc("qfc_nodeInfo", json!([])).unwrap()["isValidator"],
        json!(false)
    );
}
