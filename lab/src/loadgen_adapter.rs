//! The load generator as the orchestrator drives it: `loadgen::LoadSession`
//! (docs/ARCHITECTURE.md, "Load generator") behind [`Loadgen`], once per run
//! ([`Loadgen::connect`]) and once per phase with load ([`Loadgen::run_phase`],
//! blocking for the phase's duration, on its own thread). It hands the
//! scenario's `loadgen::PhaseLoad` to the session as it is, owns a small
//! tokio runtime, and bridges the orchestrator's cancel flag to loadgen's
//! `CancellationToken`. When the runtime cannot start, every call fails with
//! that reason (it ends up in the bundle's `plugin_failures`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::load::{Endpoints, LoadPluginError};
use crate::scenario::Phase;

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
        let token = CancellationToken::new();
        let summary = rt.block_on(async {
            let fut = session.run_phase(
                &phase.name,
                &phase.load,
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
