//! qfc-refnode: a small, honest qfc-node stand-in with the same interface
//! (flags, `QFC_*` env, JSON-RPC, `/qfc/sync/1`, metric names) and the same
//! hot paths (BLAKE3 hashing, one RocksDB WriteBatch per block, optionally
//! synced, per-response `{:?}` logging, BLAKE3 PoW miner threads).
//!
//! [`run`] wires the parts together; `main.rs` only sets up the runtime
//! (worker threads named `tokio-rt-worker`) and logging.

pub mod chain;
pub mod cli;
pub mod metrics;
pub mod miner;
pub mod p2p;
pub mod rpc;
pub mod storage;
pub mod testing;

use anyhow::{bail, Context as _};
use chain::Chain;
use cli::Cli;
use metrics::Counters;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Name of the tokio runtime threads (as in qfc-node's thread census).
pub const TOKIO_THREAD_NAME: &str = "tokio-rt-worker";
/// Slot length with `--dev`.
pub const DEV_SLOT_MS: u64 = 3000;
/// Slot length without `--dev`.
pub const SLOT_MS: u64 = 5000;

/// Bound addresses, written to `--lab-ports-file` as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    pub rpc: std::net::SocketAddr,
    pub metrics: std::net::SocketAddr,
    pub p2p: Option<String>,
    pub peer_id: Option<String>,
    pub pid: u32,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Does the local validator win `slot` after `parent`? One in four, as a
/// lone dev node among dev genesis's four validators.
pub fn wins_slot(parent: &wire::Hash, slot: u64) -> bool {
    let h = blake3::hash(&[&parent.0[..], &slot.to_le_bytes()].concat());
    h.as_bytes()[0].is_multiple_of(wire::genesis::DEV_VALIDATOR_COUNT as u8)
}

fn parse_secret(hex_key: &str) -> anyhow::Result<[u8; 32]> {
    let b = hex::decode(hex_key.strip_prefix("0x").unwrap_or(hex_key))
        .context("--validator is not hex: pass the Ed25519 secret key as 64 hex digits")?;
    b.try_into()
        .map_err(|_| anyhow::anyhow!("Invalid validator key length: pass 32 bytes (64 hex digits)"))
}

fn write_ports(path: &Path, ports: &Ports) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(ports)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
    }
}

/// Block production loop: slot timer, 1 of 4 slots won (every slot with
/// `--lab-block-interval-ms`). Runs as a tokio task, so the synced commit's
/// WAL fdatasync happens on a `tokio-rt-worker` thread.
async fn produce(
    chain: Arc<Chain>,
    counters: Arc<Counters>,
    slot_ms: u64,
    every_slot: bool,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(slot_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut slot = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        slot += 1;
        let (_, parent) = chain.head();
        if !every_slot && !wins_slot(&parent, slot) {
            continue;
        }
        let t0 = std::time::Instant::now();
        match chain.produce_block(now_ms()) {
            Ok(b) => {
                counters.blocks_produced.fetch_add(1, Ordering::Relaxed);
                info!(
                    "Produced block {} at height {} ({} txs, {:?})",
                    b.hash(),
                    b.header.number,
                    b.transactions.len(),
                    t0.elapsed()
                );
            }
            Err(e) => warn!("Failed to produce block: {e}"),
        }
    }
}

/// Periodic RocksDB checkpoints (`--snapshot-interval-secs`).
async fn snapshots(
    chain: Arc<Chain>,
    counters: Arc<Counters>,
    dir: std::path::PathBuf,
    every: Duration,
    retain: usize,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let c = chain.clone();
        let d = dir.clone();
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<std::path::PathBuf> {
            std::fs::create_dir_all(&d)?;
            let target = d.join(format!("snapshot-{:020}-{}", c.head().0, now_ms()));
            c.storage().checkpoint(&target)?;
            let mut all: Vec<_> = std::fs::read_dir(&d)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            all.sort();
            while all.len() > retain {
                let old = all.remove(0);
                std::fs::remove_dir_all(&old)?;
            }
            Ok(target)
        })
        .await;
        match r {
            Ok(Ok(p)) => {
                counters.snapshots.fetch_add(1, Ordering::Relaxed);
                info!("Snapshot written to {}", p.display());
            }
            Ok(Err(e)) => warn!("Snapshot failed: {e:#}"),
            Err(e) => warn!("Snapshot task failed: {e}"),
        }
    }
}

/// Run the node until SIGTERM or SIGINT.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    info!(
        "Starting QFC reference node (qfc-refnode) v{}",
        env!("CARGO_PKG_VERSION")
    );
    info!("Data directory: {:?}", cli.datadir);
    info!("Chain ID: {}", cli.chain_id);
    if cli.compute_mode != "pow" {
        bail!(
            "--compute-mode {} is not implemented by qfc-refnode: use pow",
            cli.compute_mode
        );
    }
    if cli.hot_key_sampling > 0 {
        warn!(
            "--hot-key-sampling is accepted for compatibility but not implemented by qfc-refnode"
        );
    }
    std::fs::create_dir_all(&cli.datadir)
        .with_context(|| format!("cannot create datadir {}", cli.datadir.display()))?;
    let secret = match (&cli.validator, cli.dev) {
        (Some(k), _) => Some(parse_secret(k)?),
        (None, true) => Some(wire::genesis::DEV_VALIDATOR_SECRET),
        (None, false) => None,
    };
    let storage = storage::Storage::open(&cli.datadir.join("db"), cli.db_statistics)?;
    info!("Database opened");
    let chain = Arc::new(Chain::open(
        storage,
        cli.chain_id,
        secret.unwrap_or(wire::genesis::DEV_VALIDATOR_SECRET),
        cli.lab_synced_commit,
    )?);
    info!("Chain initialized at block {}", chain.head().0);
    if let Some(_s) = secret {
        info!("Running as validator: {}", chain.producer());
    }
    if cli.lab_synced_commit {
        info!("LAB: block commits are synced (WriteBatch sync = true)");
    }
    let counters = Arc::new(Counters::default());
    let cancel = CancellationToken::new();

    // P2P
    let mut tasks = Vec::new();
    let (mut p2p_addr, mut peer_id) = (None, None);
    if !cli.no_network {
        let key = match secret {
            Some(s) => p2p::node_identity(s),
            None => libp2p::identity::Keypair::generate_ed25519(),
        };
        peer_id = Some(key.public().to_peer_id().to_string());
        info!("Local peer id: {}", peer_id.as_deref().unwrap_or_default());
        let swarm = p2p::build_swarm(key)?;
        let listen: libp2p::Multiaddr = format!(
            "/{}/{}/tcp/{}",
            if cli.lab_p2p_host.is_ipv4() {
                "ip4"
            } else {
                "ip6"
            },
            cli.lab_p2p_host,
            cli.p2p_port
        )
        .parse()?;
        let boot = cli
            .bootnodes
            .iter()
            .map(|b| {
                b.parse().with_context(|| {
                    format!("invalid bootnode multiaddr {b}: use /ip4/HOST/tcp/PORT/p2p/PEER")
                })
            })
            .collect::<anyhow::Result<Vec<libp2p::Multiaddr>>>()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(p2p::run(
            swarm,
            listen,
            boot,
            chain.clone(),
            counters.clone(),
            cancel.clone(),
            tx,
        )));
        p2p_addr = Some(
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .context("the p2p swarm did not start listening within 10 s")?
                .context("the p2p swarm stopped before listening: see the log above")?
                .to_string(),
        );
    }

    // JSON-RPC
    let ctx = rpc::RpcCtx {
        chain: chain.clone(),
        counters: counters.clone(),
        peer_id: peer_id.clone(),
        is_validator: secret.is_some(),
    };
    let (rpc_addr, rpc_handle) = rpc::serve(cli.rpc_addr, rpc::module(ctx, cli.lab_admin)?).await?;
    info!("RPC server listening on {rpc_addr} (HTTP and WebSocket)");
    if cli.lab_admin {
        info!("LAB: admin methods lab_flush and lab_compact enabled");
    }

    // Metrics
    let (metrics_addr, metrics_task) = metrics::serve(
        cli.metrics_addr,
        chain.clone(),
        counters.clone(),
        cancel.clone(),
    )
    .await?;
    info!("Metrics server listening on http://{metrics_addr}/metrics");

    // Producer
    let producer = secret.map(|_| {
        let (slot_ms, every) = match cli.lab_block_interval_ms {
            Some(ms) => (ms, true),
            None => (if cli.dev { DEV_SLOT_MS } else { SLOT_MS }, false),
        };
        info!(
            "Block producer started: {slot_ms} ms slots, {}",
            if every {
                "every slot (lab)"
            } else {
                "1 in 4 slots won"
            }
        );
        tokio::spawn(produce(
            chain.clone(),
            counters.clone(),
            slot_ms,
            every,
            cancel.clone(),
        ))
    });

    // Miner
    let miner = if cli.mine {
        let n = cli.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        info!("Mining started with {n} threads");
        Some(
            miner::Miner::start(n, chain.head().1 .0, counters.clone())
                .context("cannot start miner threads")?,
        )
    } else {
        None
    };

    if cli.snapshot_interval_secs > 0 {
        let dir = cli
            .snapshot_dir
            .clone()
            .unwrap_or_else(|| cli.datadir.join("snapshots"));
        tasks.push(tokio::spawn({
            let (c, k, x) = (chain.clone(), counters.clone(), cancel.clone());
            let (every, retain) = (
                Duration::from_secs(cli.snapshot_interval_secs),
                cli.snapshot_retain.max(1),
            );
            async move {
                snapshots(c, k, dir, every, retain, x).await;
                Ok(())
            }
        }));
    }

    if let Some(path) = &cli.lab_ports_file {
        write_ports(
            path,
            &Ports {
                rpc: rpc_addr,
                metrics: metrics_addr,
                p2p: p2p_addr,
                peer_id,
                pid: std::process::id(),
            },
        )?;
    }

    shutdown_signal().await;
    cancel.cancel();
    if let Some(p) = producer {
        let _ = p.await;
    }
    if let Some(m) = miner {
        m.stop();
    }
    let _ = rpc_handle.stop();
    rpc_handle.stopped().await;
    let _ = metrics_task.await;
    for t in tasks {
        match t.await {
            Ok(Err(e)) => warn!("task ended with error: {e:#}"),
            Err(e) => warn!("task panicked: {e}"),
            Ok(Ok(())) => {}
        }
    }
    let head = chain.head();
    // Give in-flight metric scrapes a moment to drop their handles.
    let mut chain = chain;
    for _ in 0..50 {
        match Arc::try_unwrap(chain) {
            Ok(c) => {
                drop(c);
                info!("Database closed at block {} ({})", head.0, head.1);
                return Ok(());
            }
            Err(c) => {
                chain = c;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    warn!("Database still referenced at shutdown; it closes at exit");
    Ok(())
}
