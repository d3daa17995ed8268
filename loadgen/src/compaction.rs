//! The `compaction` workload: forces RocksDB flush and compaction and says
//! which way it did. `admin`: the reference node's `lab_flush` then
//! `lab_compact`. `write_flood`: transfers carrying 16 KiB payloads from
//! seed-derived accounts push `flood_mib` through the write buffers (size it
//! at least twice the node's write buffer: 64 MiB DB-wide on qfc-node) while
//! `/metrics` is watched for `qfc_rocksdb_l0_files` and
//! `qfc_rocksdb_pending_compaction_bytes`; it stops once L0 shrinks after
//! growing (compaction ran), the bytes are pushed, or the phase ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wire::tx::{Transaction, MIN_GAS_PRICE};
use wire::U256;

use crate::clock::monotonic_ns;
use crate::http::HttpPool;
use crate::metrics;
use crate::model::{CompactionLoad, CompactionMethod};
use crate::tx::{self, Account, MAX_PENDING_PER_ACCOUNT};
use crate::LoadError;

/// Payload bytes per flood transaction.
pub const FLOOD_PAYLOAD_BYTES: usize = 16 * 1024;
/// Accounts sending the flood.
pub const FLOOD_ACCOUNTS: u32 = 8;
/// Flood accounts are load accounts from this index on (apart from `tx`'s).
pub const FLOOD_ACCOUNT_BASE: u32 = 1_000_000;

/// One step the workload took.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What ran (`lab_flush`, `lab_compact`, `write_flood`).
    pub what: String,
    /// Start, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// End, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// Error, if it failed.
    pub error: Option<String>,
}

/// A `/metrics` sample during the workload.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// CLOCK_MONOTONIC ns.
    pub t_ns: u64,
    /// Sum of `qfc_rocksdb_l0_files` over column families.
    pub l0_files: Option<f64>,
    /// Sum of `qfc_rocksdb_pending_compaction_bytes`.
    pub pending_compaction_bytes: Option<f64>,
}

/// What the compaction workload did (`compaction` in `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CompactionReport {
    /// The configured method.
    pub requested: CompactionMethod,
    /// The method that ran (`admin` or `write_flood`), never silently another.
    pub ran: CompactionMethod,
    /// Why `ran` was chosen.
    pub reason: String,
    /// Steps taken.
    pub steps: Vec<Step>,
    /// Write flood: payload bytes accepted by the node.
    pub flood_bytes_accepted: u64,
    /// Write flood: transactions accepted.
    pub flood_txs_accepted: u64,
    /// Metrics watched (empty without a metrics endpoint).
    pub samples: Vec<Sample>,
    /// True when the metrics showed L0 files shrinking after growth, or when
    /// the admin compaction returned successfully.
    pub compaction_observed: bool,
}

async fn sample(addr: Option<SocketAddr>) -> Option<Sample> {
    let text = metrics::scrape(addr?).await?;
    Some(Sample {
        t_ns: monotonic_ns(),
        l0_files: metrics::sum(&text, "qfc_rocksdb_l0_files"),
        pending_compaction_bytes: metrics::sum(&text, "qfc_rocksdb_pending_compaction_bytes"),
    })
}

/// Picks the method: `admin` needs the admin RPC; `auto` falls back to the flood.
pub fn choose(
    requested: CompactionMethod,
    admin_rpc: bool,
) -> Result<(CompactionMethod, String), LoadError> {
    match (requested, admin_rpc) {
        (CompactionMethod::Admin, false) => Err(LoadError::Workload {
            workload: "compaction",
            why: "method = \"admin\" needs the reference node's admin RPC (--lab-admin); use \"auto\" or \"write_flood\"".into(),
        }),
        (CompactionMethod::Admin, true) => Ok((CompactionMethod::Admin, "requested".into())),
        (CompactionMethod::Auto, true) => Ok((CompactionMethod::Admin, "auto: the node offers lab_flush/lab_compact".into())),
        (CompactionMethod::Auto, false) => {
            Ok((CompactionMethod::WriteFlood, "auto: no admin RPC, so a write flood through the write buffers".into()))
        }
        (CompactionMethod::WriteFlood, _) => Ok((CompactionMethod::WriteFlood, "requested".into())),
    }
}

/// Runs the compaction workload for at most `duration`.
#[allow(
    clippy::too_many_arguments,
    reason = "session context passed explicitly"
)]
pub async fn run(
    pool: Arc<HttpPool>,
    chain_id: u64,
    admin_rpc: bool,
    metrics_addr: Option<SocketAddr>,
    seed: u64,
    cfg: &CompactionLoad,
    duration: Duration,
    mut rng: ChaCha8Rng,
    cancel: CancellationToken,
) -> Result<CompactionReport, LoadError> {
    let (ran, reason) = choose(cfg.method, admin_rpc)?;
    let mut report = CompactionReport {
        requested: cfg.method,
        ran,
        reason,
        steps: Vec::new(),
        flood_bytes_accepted: 0,
        flood_txs_accepted: 0,
        samples: Vec::new(),
        compaction_observed: false,
    };
    report.samples.extend(sample(metrics_addr).await);
    let deadline = Instant::now() + duration;
    match ran {
        CompactionMethod::Admin => {
            let mut all_ok = true;
            for m in ["lab_flush", "lab_compact"] {
                let start_ns = monotonic_ns();
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(5));
                let r = tokio::time::timeout(wait, pool.call(0, m, json!([]))).await;
                let error = match r {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no answer within {} s", wait.as_secs())),
                };
                all_ok &= error.is_none();
                report.steps.push(Step {
                    what: m.into(),
                    start_ns,
                    end_ns: monotonic_ns(),
                    error,
                });
            }
            report.compaction_observed = all_ok;
            report.samples.extend(sample(metrics_addr).await);
        }
        _ => {
            let start_ns = monotonic_ns();
            let error = flood(
                &pool,
                chain_id,
                metrics_addr,
                seed,
                cfg,
                deadline,
                &mut rng,
                &cancel,
                &mut report,
            )
            .await
            .err()
            .map(|e| e.to_string());
            report.steps.push(Step {
                what: "write_flood".into(),
                start_ns,
                end_ns: monotonic_ns(),
                error,
            });
        }
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments, reason = "internal helper of run")]
async fn flood(
    pool: &HttpPool,
    chain_id: u64,
    metrics_addr: Option<SocketAddr>,
    seed: u64,
    cfg: &CompactionLoad,
    deadline: Instant,
    rng: &mut ChaCha8Rng,
    cancel: &CancellationToken,
    report: &mut CompactionReport,
) -> Result<(), LoadError> {
    let accounts: Vec<Account> = (0..FLOOD_ACCOUNTS)
        .map(|i| tx::account(seed, FLOOD_ACCOUNT_BASE + i))
        .collect();
    tx::fund(
        pool,
        chain_id,
        &accounts,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await?;
    let mut next = Vec::new();
    for a in &accounts {
        next.push(
            tx::nonce_of(pool, &a.address, "pending")
                .await
                .map_err(|e| LoadError::Workload {
                    workload: "compaction",
                    why: format!("eth_getTransactionCount failed ({e})"),
                })?,
        );
    }
    let target = cfg.flood_mib * 1024 * 1024;
    let mut l0_peak = 0.0f64;
    let mut last_sample = Instant::now();
    let mut payload = vec![0u8; FLOOD_PAYLOAD_BYTES];
    // Bounded: by the byte target, the deadline and cancellation.
    while report.flood_bytes_accepted < target
        && Instant::now() < deadline
        && !cancel.is_cancelled()
    {
        let mut sent_any = false;
        for (i, a) in accounts.iter().enumerate() {
            let confirmed = tx::nonce_of(pool, &a.address, "latest")
                .await
                .unwrap_or(next[i]);
            while next[i] < confirmed + MAX_PENDING_PER_ACCOUNT - 8
                && report.flood_bytes_accepted < target
            {
                rng.fill_bytes(&mut payload);
                let mut t = Transaction::transfer(
                    chain_id,
                    next[i],
                    a.address,
                    U256::from_u64(1),
                    U256::from_u64(MIN_GAS_PRICE),
                );
                t.data = payload.clone();
                t.gas_limit = t.intrinsic_gas();
                t.sign(&a.secret);
                match pool
                    .call(0, "eth_sendRawTransaction", json!([t.encode_hex()]))
                    .await
                {
                    Ok(_) => {
                        next[i] += 1;
                        report.flood_txs_accepted += 1;
                        report.flood_bytes_accepted += FLOOD_PAYLOAD_BYTES as u64;
                        sent_any = true;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "flood transaction refused; waiting for blocks");
                        break;
                    }
                }
            }
        }
        if last_sample.elapsed() >= Duration::from_millis(500) || !sent_any {
            last_sample = Instant::now();
            if let Some(s) = sample(metrics_addr).await {
                let l0 = s.l0_files.unwrap_or(0.0);
                if l0 < l0_peak {
                    report.compaction_observed = true;
                }
                l0_peak = l0_peak.max(l0);
                report.samples.push(s);
                if report.compaction_observed {
                    break;
                }
            }
        }
        if !sent_any {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The bytes are in: keep watching (bounded by the phase) for the
    // compaction they provoke, which RocksDB runs in the background.
    let mut l0_last = report
        .samples
        .last()
        .and_then(|s| s.l0_files)
        .unwrap_or(0.0);
    while !report.compaction_observed && Instant::now() < deadline && !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(s) = sample(metrics_addr).await else {
            continue;
        };
        let l0 = s.l0_files.unwrap_or(0.0);
        if l0 < l0_last.max(l0_peak) {
            report.compaction_observed = true;
        }
        l0_last = l0;
        report.samples.push(s);
    }
    report.samples.extend(sample(metrics_addr).await);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_choice_is_explicit() {
        assert_eq!(
            choose(CompactionMethod::Auto, true).unwrap().0,
            CompactionMethod::Admin
        );
        assert_eq!(
            choose(CompactionMethod::Auto, false).unwrap().0,
            CompactionMethod::WriteFlood
        );
        assert_eq!(
            choose(CompactionMethod::WriteFlood, true).unwrap().0,
            CompactionMethod::WriteFlood
        );
        let e = choose(CompactionMethod::Admin, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--lab-admin"), "{e}");
    }
}
