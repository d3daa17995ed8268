//! A load session against one node: connection checks, seeded generators per
//! phase and workload, the phase runner and its outputs (`summary.json`,
//! `<workload>.hdr`, `series.json` in the directory the caller hands over),
//! with the instrument floor ([`crate::floor`]) measured before each phase's
//! load clock starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::clock::Anchor;
use crate::engine::{self, ClosedLoop, OpenLoop, Workload};
use crate::http::{parse_quantity, HttpPool};
use crate::model::{LoadModel, PhaseLoad};
use crate::rpc::RpcWorkload;
use crate::schedule::Schedule;
use crate::stats::{self, Recorder, SeriesPoint, Shape};
use crate::LoadError;

/// Where the node under test listens (all on loopback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEndpoints {
    /// HTTP JSON-RPC address.
    pub rpc: SocketAddr,
    /// libp2p TCP address (needed by the `sync` workload).
    pub p2p: Option<SocketAddr>,
    /// Prometheus `/metrics` address (needed by compaction's write flood).
    pub metrics: Option<SocketAddr>,
    /// Chain id the node must report (`eth_chainId`); signed into transactions.
    pub chain_id: u64,
    /// The node offers `lab_flush` / `lab_compact` (reference node with `--lab-admin`).
    pub admin_rpc: bool,
}

impl NodeEndpoints {
    /// Refuses any address that is not loopback.
    pub fn check_loopback(&self) -> Result<(), LoadError> {
        let check = |what, a: &SocketAddr| {
            if a.ip().is_loopback() {
                Ok(())
            } else {
                Err(LoadError::NotLoopback {
                    what,
                    addr: a.to_string(),
                })
            }
        };
        check("rpc", &self.rpc)?;
        if let Some(a) = &self.p2p {
            check("p2p", a)?;
        }
        if let Some(a) = &self.metrics {
            check("metrics", a)?;
        }
        Ok(())
    }
}

/// What a phase's load did (`summary.json`), with the load as configured.
pub type PhaseSummary = bundle_schema::load::PhaseSummary<PhaseLoad>;

/// One run's connection to a node; keeps state (e.g. nonces) across phases.
pub struct LoadSession {
    endpoints: NodeEndpoints,
    seed: u64,
    pool: Arc<HttpPool>,
    /// Load accounts funded so far (indices 0..funded).
    funded: tokio::sync::Mutex<u32>,
    /// Instrument-floor calibration window before each phase (zero: skip).
    floor_window: Duration,
}

pub use crate::seeds::workload_rng;

impl LoadSession {
    /// Checks the endpoints are loopback and that the node answers
    /// `eth_chainId` with `endpoints.chain_id`.
    pub async fn connect(endpoints: NodeEndpoints, seed: u64) -> Result<Self, LoadError> {
        endpoints.check_loopback()?;
        let pool = Arc::new(HttpPool::new(endpoints.rpc));
        let addr = endpoints.rpc.to_string();
        let (v, _) = tokio::time::timeout(
            Duration::from_secs(10),
            pool.call(0, "eth_chainId", json!([])),
        )
        .await
        .map_err(|_| LoadError::Node {
            addr: addr.clone(),
            why: "did not answer eth_chainId within 10 s; is the node up?".into(),
        })?
        .map_err(|e| LoadError::Node {
            addr: addr.clone(),
            why: format!("failed eth_chainId ({e}); is it a qfc JSON-RPC endpoint?"),
        })?;
        match parse_quantity(&v) {
            Some(id) if id == endpoints.chain_id => {}
            other => {
                return Err(LoadError::Node {
                    addr,
                    why: format!(
                        "reports chain id {other:?}, expected {}; fix the chain id",
                        endpoints.chain_id
                    ),
                })
            }
        }
        Ok(Self {
            endpoints,
            seed,
            pool,
            funded: tokio::sync::Mutex::new(0),
            floor_window: crate::floor::DEFAULT_FLOOR_WINDOW,
        })
    }

    /// Sets the instrument-floor calibration window run before each phase
    /// (default 1 s; zero skips it and the summary says so).
    pub fn set_floor_window(&mut self, window: Duration) {
        self.floor_window = window;
    }

    /// Measures the instrument floor for `load` (before the phase clock).
    async fn floor(
        &self,
        load: &PhaseLoad,
        cancel: &CancellationToken,
    ) -> Result<crate::floor::Floor, String> {
        if self.floor_window.is_zero() {
            return Err("calibration skipped (floor window 0)".into());
        }
        let (rate, basis, concurrency) = floor_rate(load);
        crate::floor::measure(
            rate,
            &basis,
            concurrency.min(256),
            self.floor_window,
            cancel.clone(),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// The endpoints of this session.
    pub fn endpoints(&self) -> &NodeEndpoints {
        &self.endpoints
    }

    async fn tx_workload(
        &self,
        t: &crate::model::TxLoad,
    ) -> Result<crate::tx::TxWorkload, LoadError> {
        let accounts: Vec<_> = (0..t.accounts)
            .map(|i| crate::tx::account(self.seed, i))
            .collect();
        {
            let mut funded = self.funded.lock().await;
            if *funded < t.accounts {
                crate::tx::fund(
                    &self.pool,
                    self.endpoints.chain_id,
                    &accounts[*funded as usize..],
                    Duration::from_secs(120),
                )
                .await?;
                *funded = t.accounts;
            }
        }
        let mut nonces = Vec::new();
        for a in &accounts {
            nonces.push(
                crate::tx::nonce_of(&self.pool, &a.address, "pending")
                    .await
                    .map_err(|e| LoadError::Node {
                        addr: self.endpoints.rpc.to_string(),
                        why: format!("failed eth_getTransactionCount ({e})"),
                    })?,
            );
        }
        Ok(crate::tx::TxWorkload::new(
            self.pool.clone(),
            self.endpoints.chain_id,
            accounts,
            nonces,
            t.sample_receipts,
        ))
    }

    async fn head(&self) -> Result<u64, LoadError> {
        let (v, _) = self
            .pool
            .call(0, "eth_blockNumber", json!([]))
            .await
            .map_err(|e| LoadError::Node {
                addr: self.endpoints.rpc.to_string(),
                why: format!("failed eth_blockNumber ({e})"),
            })?;
        parse_quantity(&v).ok_or_else(|| LoadError::Node {
            addr: self.endpoints.rpc.to_string(),
            why: format!("answered eth_blockNumber with {v}, not a hex quantity"),
        })
    }

    /// Runs every workload of `load` for `duration` (or until `cancel`),
    /// writes `summary.json`, `<workload>.hdr` and `series.json` into
    /// `out_dir`, and returns the summary.
    pub async fn run_phase(
        &self,
        phase: &str,
        load: &PhaseLoad,
        duration: Duration,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> Result<PhaseSummary, LoadError> {
        load.validate()?;
        std::fs::create_dir_all(out_dir).map_err(|e| LoadError::Output {
            path: out_dir.to_owned(),
            why: e.to_string(),
        })?;
        let head = if load.rpc.is_some() || load.sync.is_some() {
            self.head().await?
        } else {
            0
        };
        // Set-up before the clock starts: fund tx accounts, connect peers.
        let tx_work = match &load.tx {
            Some(t) => Some(Arc::new(self.tx_workload(t).await?)),
            None => None,
        };
        let sync_work = match &load.sync {
            Some(s) => {
                let addr = self.endpoints.p2p.ok_or(LoadError::MissingEndpoint {
                    workload: "sync",
                    endpoint: "p2p",
                })?;
                let mut peers = Vec::new();
                for i in 0..s.peers {
                    peers.push(
                        crate::sync::connect_peer(
                            crate::sync::peer_secret(self.seed, phase, i),
                            addr,
                            cancel.clone(),
                        )
                        .await?,
                    );
                }
                Some(Arc::new(crate::sync::SyncWorkload::new(
                    peers, s.request, head,
                )))
            }
            None => None,
        };
        // The instrument floor at this phase's rate, then connections to the
        // node opened before the clock starts.
        let (floor, floor_missing) = match self.floor(load, &cancel).await {
            Ok(f) => (Some(f), None),
            Err(why) => (None, Some(why)),
        };
        if let Some(r) = &load.rpc {
            if let Err(e) = self.pool.warm(r.concurrency.min(256) as usize).await {
                tracing::warn!(error = %e, "could not open the rpc connections before the phase");
            }
        }
        let anchor = Anchor::now();
        let mut runs: Vec<(String, Arc<Recorder>, Shape)> = Vec::new();
        let mut futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
            Vec::new();

        if let Some(r) = &load.rpc {
            // Balances and nonces of the dev-genesis accounts and the load accounts funded so far.
            let funded = *self.funded.lock().await;
            let addresses = wire::genesis::funded_accounts()
                .into_iter()
                .map(|(a, _)| a)
                .chain((0..funded).map(|i| crate::tx::account(self.seed, i).address))
                .map(|a| a.to_string())
                .collect();
            let w = Arc::new(RpcWorkload::new(self.pool.clone(), &r.mix, head, addresses));
            let rec = Arc::new(Recorder::new(anchor));
            let rng = workload_rng(self.seed, phase, "rpc");
            let timeout = Duration::from_millis(r.timeout_ms);
            let steps: Vec<(Duration, f64)> = r
                .steps
                .iter()
                .map(|st| (Duration::from_secs_f64(st.duration_s), st.rate_per_s))
                .collect();
            let schedule = if steps.is_empty() {
                Schedule::from_rates(r.rate_per_s, r.ramp_to_per_s, duration)
            } else {
                Schedule::from_steps(r.rate_per_s, &steps, duration)
            };
            let open = r.model == LoadModel::Open;
            let shape = Shape {
                workload: "rpc".into(),
                model: r.model,
                target_rate_per_s: open.then_some(
                    r.steps
                        .first()
                        .map(|st| st.rate_per_s)
                        .unwrap_or(r.rate_per_s),
                ),
                ramp_to_per_s: r.ramp_to_per_s.filter(|_| open),
                steps: if open { r.steps.clone() } else { Vec::new() },
                concurrency: r.concurrency,
                duration,
            };
            futs.push(drive(
                w,
                r.model,
                schedule,
                r.concurrency,
                timeout,
                duration,
                rng,
                rec.clone(),
                cancel.clone(),
            ));
            runs.push(("rpc".into(), rec, shape));
        }

        if let (Some(t), Some(w)) = (&load.tx, &tx_work) {
            let rec = Arc::new(Recorder::new(anchor));
            let model = if t.closed {
                LoadModel::Closed
            } else {
                LoadModel::Open
            };
            let shape = Shape {
                workload: "tx".into(),
                model,
                target_rate_per_s: (!t.closed).then_some(t.rate_per_s),
                ramp_to_per_s: None,
                steps: Vec::new(),
                // Closed: one client per account, so that an account's
                // transfers do not pile up against the node's pending limit.
                concurrency: if t.closed {
                    t.accounts
                } else {
                    t.accounts * crate::tx::MAX_PENDING_PER_ACCOUNT as u32
                },
                duration,
            };
            let rng = workload_rng(self.seed, phase, "tx");
            futs.push(drive(
                w.clone(),
                model,
                Schedule::from_rates(t.rate_per_s, None, duration),
                shape.concurrency.min(1024),
                Duration::from_millis(t.timeout_ms),
                duration,
                rng,
                rec.clone(),
                cancel.clone(),
            ));
            runs.push(("tx".into(), rec, shape));
        }
        if let (Some(s), Some(w)) = (&load.sync, &sync_work) {
            let rec = Arc::new(Recorder::new(anchor));
            let shape = Shape {
                workload: "sync".into(),
                model: LoadModel::Open,
                target_rate_per_s: Some(s.rate_per_s),
                ramp_to_per_s: None,
                steps: Vec::new(),
                concurrency: s.peers * 64,
                duration,
            };
            let rng = workload_rng(self.seed, phase, "sync");
            futs.push(drive(
                w.clone(),
                LoadModel::Open,
                Schedule::from_rates(s.rate_per_s, None, duration),
                shape.concurrency,
                Duration::from_millis(s.timeout_ms),
                duration,
                rng,
                rec.clone(),
                cancel.clone(),
            ));
            runs.push(("sync".into(), rec, shape));
        }
        let compaction_fut = load.compaction.as_ref().map(|c| {
            crate::compaction::run(
                self.pool.clone(),
                self.endpoints.chain_id,
                self.endpoints.admin_rpc,
                self.endpoints.metrics,
                self.seed,
                c,
                duration,
                workload_rng(self.seed, phase, "compaction"),
                cancel.clone(),
            )
        });
        let (_, compaction) = futures::join!(futures::future::join_all(futs), async {
            match compaction_fut {
                Some(f) => Some(f.await),
                None => None,
            }
        });
        let compaction = compaction.transpose()?;
        let mut tx_check = None;
        if let Some(w) = &tx_work {
            tx_check = Some(crate::tx::check(&self.pool, w, Duration::from_secs(60)).await);
        }
        let end_ns = crate::clock::monotonic_ns();

        let mut workloads = BTreeMap::new();
        let mut series: BTreeMap<String, Vec<SeriesPoint>> = BTreeMap::new();
        for (name, rec, shape) in runs {
            stats::write_histogram(&out_dir.join(format!("{name}.hdr")), &rec.histogram())?;
            series.insert(name.clone(), rec.series());
            let mut sum = rec.summary(shape);
            if name == "tx" {
                if let Some(c) = &tx_check {
                    if let serde_json::Value::Object(m) =
                        serde_json::to_value(c).unwrap_or_default()
                    {
                        sum.details.extend(m);
                    }
                }
            }
            if name == "sync" {
                if let Some(w) = &sync_work {
                    sum.details.extend(w.details());
                }
            }
            workloads.insert(name, sum);
        }
        let summary = PhaseSummary {
            phase: phase.to_owned(),
            seed: self.seed,
            start_ns: anchor.ns(),
            end_ns,
            duration_s: duration.as_secs_f64(),
            load: load.clone(),
            workloads,
            compaction: compaction.map(|c| serde_json::to_value(c).unwrap_or_default()),
            cancelled: cancel.is_cancelled(),
            floor,
            floor_missing,
        };
        write_json(&out_dir.join("series.json"), &series)?;
        write_json(&out_dir.join("summary.json"), &summary)?;
        Ok(summary)
    }
}

/// The calibration rate of a phase's floor: the peak open-loop rate of its
/// rpc workload, else its tx or sync rate, else
/// [`crate::floor::DEFAULT_FLOOR_RATE_PER_S`]; with that workload's
/// concurrency. Returns (rate, where it comes from, concurrency).
pub fn floor_rate(load: &PhaseLoad) -> (f64, String, u32) {
    if let Some(r) = load.rpc.as_ref().filter(|r| r.model == LoadModel::Open) {
        let peak = r
            .steps
            .iter()
            .map(|s| s.rate_per_s)
            .chain([r.rate_per_s])
            .chain(r.ramp_to_per_s)
            .fold(0.0, f64::max);
        return (peak, "rpc rate (peak of the phase)".into(), r.concurrency);
    }
    if let Some(r) = &load.rpc {
        return (
            crate::floor::DEFAULT_FLOOR_RATE_PER_S,
            "closed-loop rpc: fixed calibration rate".into(),
            r.concurrency,
        );
    }
    if let Some(t) = &load.tx {
        return (t.rate_per_s, "tx rate".into(), 64);
    }
    if let Some(s) = &load.sync {
        return (s.rate_per_s, "sync rate (HTTP path)".into(), 64);
    }
    (
        crate::floor::DEFAULT_FLOOR_RATE_PER_S,
        "no rate in the phase: fixed calibration rate".into(),
        16,
    )
}

/// Boxes the open or closed loop of one workload.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per workload, all settings distinct"
)]
pub(crate) fn drive<W: Workload>(
    w: Arc<W>,
    model: LoadModel,
    schedule: Schedule,
    concurrency: u32,
    timeout: Duration,
    duration: Duration,
    rng: ChaCha8Rng,
    rec: Arc<Recorder>,
    cancel: CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    match model {
        LoadModel::Open => Box::pin(engine::run_open(
            w,
            OpenLoop {
                schedule,
                max_in_flight: concurrency,
                timeout,
            },
            rng,
            rec,
            cancel,
        )),
        LoadModel::Closed => Box::pin(engine::run_closed(
            w,
            ClosedLoop {
                clients: concurrency,
                duration,
                timeout,
                max_requests: engine::CLOSED_LOOP_MAX_REQUESTS,
            },
            rng,
            rec,
            cancel,
        )),
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), LoadError> {
    let s = serde_json::to_vec_pretty(v).map_err(|e| LoadError::Output {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    std::fs::write(path, s).map_err(|e| LoadError::Output {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn rng_depends_on_seed_phase_and_workload_only() {
        let a: u64 = workload_rng(1, "p", "rpc").gen();
        assert_eq!(a, workload_rng(1, "p", "rpc").gen::<u64>());
        assert_ne!(a, workload_rng(2, "p", "rpc").gen::<u64>());
        assert_ne!(a, workload_rng(1, "q", "rpc").gen::<u64>());
        assert_ne!(a, workload_rng(1, "p", "tx").gen::<u64>());
    }

    #[test]
    fn non_loopback_is_refused() {
        let e = NodeEndpoints {
            rpc: "10.0.0.1:8545".parse().unwrap(),
            p2p: None,
            metrics: None,
            chain_id: 9000,
            admin_rpc: false,
        };
        assert!(e
            .check_loopback()
            .unwrap_err()
            .to_string()
            .contains("10.0.0.1:8545"));
        let ok = NodeEndpoints {
            rpc: "127.0.0.1:8545".parse().unwrap(),
            ..e
        };
        ok.check_loopback().unwrap();
    }
}
