//! Prometheus text metrics at `/metrics` with qfc-node's names: chain
//! height, mempool, peers, per-CF RocksDB gauges from properties and, with
//! `--db-statistics`, the stall and WAL-sync counters; plus RPC, sync and
//! miner counters of the reference node.

use crate::chain::Chain;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Counters shared by the RPC server, the swarm and the miner.
#[derive(Default)]
pub struct Counters {
    rpc: Mutex<BTreeMap<&'static str, (u64, u64)>>,
    pub sync_responses: AtomicU64,
    pub peers: AtomicU64,
    pub miner_hashes: AtomicU64,
    pub blocks_produced: AtomicU64,
    pub snapshots: AtomicU64,
}

impl Counters {
    pub fn rpc_call(&self, method: &'static str) {
        self.rpc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method)
            .or_default()
            .0 += 1;
    }

    pub fn rpc_error(&self, method: &'static str) {
        self.rpc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method)
            .or_default()
            .1 += 1;
    }

    pub fn peers(&self) -> u64 {
        self.peers.load(Ordering::Relaxed)
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Render the whole exposition.
pub fn render(chain: &Chain, c: &Counters) -> String {
    let mut o = String::with_capacity(8192);
    let (height, _) = chain.head();
    family(&mut o, "qfc_block_height", "gauge", "Current block height.");
    let _ = writeln!(o, "qfc_block_height {height}");
    family(
        &mut o,
        "qfc_blocks_produced_total",
        "counter",
        "Blocks produced by this process.",
    );
    let _ = writeln!(
        o,
        "qfc_blocks_produced_total {}",
        c.blocks_produced.load(Ordering::Relaxed)
    );
    family(
        &mut o,
        "qfc_transactions_total",
        "counter",
        "Transactions included by this process.",
    );
    let _ = writeln!(o, "qfc_transactions_total {}", chain.tx_total());
    family(
        &mut o,
        "qfc_mempool_size",
        "gauge",
        "Number of pending transactions.",
    );
    let _ = writeln!(o, "qfc_mempool_size {}", chain.mempool_len());
    family(
        &mut o,
        "qfc_peer_count",
        "gauge",
        "Number of connected peers.",
    );
    let _ = writeln!(o, "qfc_peer_count {}", c.peers());
    family(&mut o, "qfc_chain_id", "gauge", "Chain ID of this node.");
    let _ = writeln!(o, "qfc_chain_id {}", chain.chain_id());
    family(
        &mut o,
        "qfc_node_info",
        "gauge",
        "Node metadata as labels. Value is always 1.",
    );
    let _ = writeln!(
        o,
        "qfc_node_info{{version=\"{}\",impl=\"qfc-refnode\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    let gauges = chain.storage().cf_gauges();
    type Pick = fn(&crate::storage::CfGauge) -> u64;
    let per_cf: [(&str, &str, Pick); 5] = [
        (
            "qfc_rocksdb_memtable_bytes",
            "Bytes in all memtables of the column family.",
            |g| g.memtable_bytes,
        ),
        (
            "qfc_rocksdb_pending_compaction_bytes",
            "Estimated bytes compaction must rewrite.",
            |g| g.pending_compaction_bytes,
        ),
        ("qfc_rocksdb_l0_files", "SST files at level 0.", |g| {
            g.l0_files
        }),
        (
            "qfc_rocksdb_write_stopped",
            "1 when RocksDB stops writes.",
            |g| g.write_stopped,
        ),
        (
            "qfc_rocksdb_actual_delayed_write_rate",
            "Current delayed write rate in bytes/s (0: none).",
            |g| g.actual_delayed_write_rate,
        ),
    ];
    for (name, help, pick) in per_cf {
        family(&mut o, name, "gauge", help);
        for g in &gauges {
            let _ = writeln!(o, "{name}{{cf=\"{}\"}} {}", g.cf, pick(g));
        }
    }
    if let Some(s) = chain.storage().statistics() {
        family(
            &mut o,
            "qfc_rocksdb_stall_micros_total",
            "counter",
            "Microseconds writers were stalled.",
        );
        let _ = writeln!(o, "qfc_rocksdb_stall_micros_total {}", s.stall_micros);
        family(
            &mut o,
            "qfc_rocksdb_wal_syncs_total",
            "counter",
            "WAL syncs.",
        );
        let _ = writeln!(o, "qfc_rocksdb_wal_syncs_total {}", s.wal_syncs);
        family(
            &mut o,
            "qfc_rocksdb_wal_sync_duration_seconds",
            "summary",
            "WAL file sync duration.",
        );
        let _ = writeln!(
            o,
            "qfc_rocksdb_wal_sync_duration_seconds_sum {}",
            s.wal_sync_micros_sum as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "qfc_rocksdb_wal_sync_duration_seconds_count {}",
            s.wal_sync_count
        );
        family(
            &mut o,
            "qfc_rocksdb_compaction_read_bytes_total",
            "counter",
            "Bytes read by compactions (qfc-refnode).",
        );
        let _ = writeln!(
            o,
            "qfc_rocksdb_compaction_read_bytes_total {}",
            s.compact_read_bytes
        );
        family(
            &mut o,
            "qfc_rocksdb_compaction_write_bytes_total",
            "counter",
            "Bytes written by compactions (qfc-refnode).",
        );
        let _ = writeln!(
            o,
            "qfc_rocksdb_compaction_write_bytes_total {}",
            s.compact_write_bytes
        );
        family(
            &mut o,
            "qfc_rocksdb_flush_write_bytes_total",
            "counter",
            "Bytes written by memtable flushes (qfc-refnode).",
        );
        let _ = writeln!(
            o,
            "qfc_rocksdb_flush_write_bytes_total {}",
            s.flush_write_bytes
        );
    }

    family(
        &mut o,
        "qfc_rpc_requests_total",
        "counter",
        "JSON-RPC calls by method (qfc-refnode).",
    );
    let rpc = c.rpc.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (m, (n, _)) in &rpc {
        let _ = writeln!(o, "qfc_rpc_requests_total{{method=\"{m}\"}} {n}");
    }
    family(
        &mut o,
        "qfc_rpc_errors_total",
        "counter",
        "JSON-RPC error responses by method (qfc-refnode).",
    );
    for (m, (_, e)) in &rpc {
        let _ = writeln!(o, "qfc_rpc_errors_total{{method=\"{m}\"}} {e}");
    }
    family(
        &mut o,
        "qfc_sync_responses_total",
        "counter",
        "/qfc/sync/1 responses sent (qfc-refnode).",
    );
    let _ = writeln!(
        o,
        "qfc_sync_responses_total {}",
        c.sync_responses.load(Ordering::Relaxed)
    );
    family(
        &mut o,
        "qfc_miner_hashes_total",
        "counter",
        "BLAKE3 PoW hashes computed (qfc-refnode).",
    );
    let _ = writeln!(
        o,
        "qfc_miner_hashes_total {}",
        c.miner_hashes.load(Ordering::Relaxed)
    );
    family(
        &mut o,
        "qfc_snapshots_total",
        "counter",
        "RocksDB checkpoints taken (qfc-refnode).",
    );
    let _ = writeln!(
        o,
        "qfc_snapshots_total {}",
        c.snapshots.load(Ordering::Relaxed)
    );
    o
}

/// Bind `addr` and serve `/metrics` until `cancel`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    chain: Arc<Chain>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use anyhow::Context as _;
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind metrics on {addr}: choose another --metrics-addr"))?;
    let local = l.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
            };
            let chain = chain.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                // Read the request head (bounded).
                while n < buf.len() {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        s.read(&mut buf[n..]),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, ctype, body) = if path == "/metrics" {
                    (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        render(&chain, &counters),
                    )
                } else {
                    ("404 Not Found", "text/plain", "Not Found\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok((local, task))
}
