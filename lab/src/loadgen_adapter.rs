//! The load generator as the orchestrator drives it: `loadgen::LoadSession`
//! (docs/ARCHITECTURE.md, "Load generator") behind [`Loadgen`], once per run
//! ([`Loadgen::connect`]) and once per phase with load ([`Loadgen::run_phase`],
//! blocking for the phase's duration, on its own thread). It converts the
//! lab's validated `[phase.load.*]` into `loadgen::PhaseLoad`, owns a small
//! tokio runtime, and bridges the orchestrator's cancel flag to loadgen's
//! `CancellationToken`. When the runtime cannot start, every call fails with
//! that reason (it ends up in the bundle's `plugin_failures`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::load::{Endpoints, LoadPluginError};
use crate::scenario::{self, Phase, PhaseLoad};

/// Converts the lab's domain form to loadgen's (same field names).
pub fn to_loadgen(l: &PhaseLoad) -> Result<loadgen::PhaseLoad, LoadPluginError> {
    let rpc = match &l.rpc {
        None => None,
        Some(r) => {
            let mut mix = std::collections::BTreeMap::new();
            for (name, w) in &r.mix {
                let m = loadgen::RpcMethod::from_name(name)
                    .ok_or_else(|| LoadPluginError::UnknownRpcMethod(name.clone()))?;
                mix.insert(m, *w);
            }
            Some(loadgen::RpcLoad {
                model: match r.model {
                    scenario::LoadModel::Open => loadgen::LoadModel::Open,
                    scenario::LoadModel::Closed => loadgen::LoadModel::Closed,
                },
                rate_per_s: r.rate_per_s,
                ramp_to_per_s: r.ramp_to_per_s,
                steps: r
                    .steps
                    .iter()
                    .map(|&(duration_s, rate_per_s)| loadgen::RateStep {
                        duration_s,
                        rate_per_s,
                    })
                    .collect(),
                concurrency: r.concurrency,
                timeout_ms: r.timeout_ms,
                mix,
            })
        }
    };
    Ok(loadgen::PhaseLoad {
        rpc,
        tx: l.tx.as_ref().map(|t| loadgen::TxLoad {
            rate_per_s: t.rate_per_s,
            accounts: t.accounts,
            sample_receipts: t.sample_receipts,
            timeout_ms: t.timeout_ms,
        }),
        sync: l.sync.as_ref().map(|s| loadgen::SyncLoad {
            peers: s.peers,
            rate_per_s: s.rate_per_s,
            request: match s.request {
                scenario::SyncRequest::Range => loadgen::SyncRequestKind::Range,
                scenario::SyncRequest::Number => loadgen::SyncRequestKind::Number,
                scenario::SyncRequest::Status => loadgen::SyncRequestKind::Status,
                scenario::SyncRequest::Mixed => loadgen::SyncRequestKind::Mixed,
            },
            timeout_ms: s.timeout_ms,
        }),
        compaction: l.compaction.as_ref().map(|c| loadgen::CompactionLoad {
            method: match c.method {
                scenario::CompactionMethod::Auto => loadgen::CompactionMethod::Auto,
                scenario::CompactionMethod::Admin => loadgen::CompactionMethod::Admin,
                scenario::CompactionMethod::WriteFlood => loadgen::CompactionMethod::WriteFlood,
            },
            flood_mib: c.flood_mib,
        }),
    })
}

/// `loadgen::LoadSession` with its runtime (or why the runtime did not start).
pub struct Loadgen {
    rt: Result<tokio::runtime::Runtime, Arc<std::io::Error>>,
    session: Option<loadgen::LoadSession>,
}

impl Default for Loadgen {
    fn default() -> Self {
        Self::new()
    }
}

impl Loadgen {
    /// Starts the runtime; when it cannot start, every later call says why.
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qfc-lab-load")
            .enable_all()
            .build()
            .map_err(Arc::new);
        Self { rt, session: None }
    }

    fn rt(&self) -> Result<&tokio::runtime::Runtime, LoadPluginError> {
        self.rt
            .as_ref()
            .map_err(|e| LoadPluginError::Runtime(e.clone()))
    }

    /// Seeds a node datadir (on this machine) before the node starts; gives
    /// up between batches once `stop` returns true.
    pub fn seed_db(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
        seed: u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<loadgen::SeedReport, LoadPluginError> {
        self.rt()?;
        loadgen::seed_db_until(datadir, keys, value_bytes as usize, seed, stop)
            .map_err(LoadPluginError::Load)
    }

    /// Connects once per run (funds accounts, keeps nonces across phases);
    /// gives up within 50 ms once `stop` returns true.
    pub fn connect(
        &mut self,
        e: &Endpoints,
        seed: u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), LoadPluginError> {
        let endpoints = loadgen::NodeEndpoints {
            rpc: e.rpc,
            p2p: e.p2p,
            metrics: Some(e.metrics),
            chain_id: e.chain_id,
            admin_rpc: e.admin_rpc,
        };
        let s = self
            .rt()?
            .block_on(async {
                let fut = loadgen::LoadSession::connect(endpoints, seed);
                tokio::pin!(fut);
                loop {
                    tokio::select! {
                        r = &mut fut => break r,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {
                            if stop() {
                                break Err(loadgen::LoadError::Cancelled { what: "connecting the load generator" });
                            }
                        }
                    }
                }
            })
            .map_err(LoadPluginError::Load)?;
        self.session = Some(s);
        Ok(())
    }

    /// Runs `phase.load` for `phase.duration_s`, writing into `out_dir`;
    /// returns the phase summary. Returns early when `cancel` becomes true.
    pub fn run_phase(
        &mut self,
        phase: &Phase,
        out_dir: &Path,
        cancel: &AtomicBool,
    ) -> Result<loadgen::PhaseSummary, LoadPluginError> {
        let rt = self.rt()?;
        let session = self.session.as_ref().ok_or(LoadPluginError::NotConnected)?;
        let load = to_loadgen(&phase.load)?;
        let token = CancellationToken::new();
        let summary = rt.block_on(async {
            let fut = session.run_phase(
                &phase.name,
                &load,
                Duration::from_secs(phase.duration_s),
                out_dir,
                token.clone(),
            );
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        if cancel.load(Ordering::SeqCst) {
                            token.cancel();
                        }
                    }
                }
            }
        });
        summary.map_err(LoadPluginError::Load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_workload_field_for_field() {
        let src = "name = \"c\"\nseed = 1\n[[phase]]\nname = \"a\"\nduration_s = 1\n\
                   [phase.load.rpc]\nrate_per_s = 5\nmix = { eth_syncing = 2 }\n\
                   [phase.load.tx]\nrate_per_s = 7\naccounts = 3\ntimeout_ms = 900\n\
                   [phase.load.sync]\npeers = 2\nrequest = \"mixed\"\n\
                   [phase.load.compaction]\nmethod = \"write_flood\"\nflood_mib = 9\n";
        let s = scenario::parse("c.toml", src).unwrap();
        let l = to_loadgen(&s.phases[0].load).unwrap();
        assert_eq!(
            l.rpc.as_ref().unwrap().mix[&loadgen::RpcMethod::EthSyncing],
            2
        );
        assert_eq!(l.tx.as_ref().unwrap().timeout_ms, 900);
        assert_eq!(
            l.sync.as_ref().unwrap().request,
            loadgen::SyncRequestKind::Mixed
        );
        assert_eq!(l.compaction.as_ref().unwrap().flood_mib, 9);
        l.validate().unwrap();
    }
}
