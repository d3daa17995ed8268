//! The load plug-in backed by `loadgen::LoadSession` (docs/ARCHITECTURE.md,
//! "Load generator"): hands the scenario's `loadgen::PhaseLoad` to the
//! session as it is, owns a small tokio runtime, and bridges the
//! orchestrator's cancel flag to loadgen's `CancellationToken`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::load::{Endpoints, LoadPlugin, LoadPluginError};
use crate::scenario::Phase;

/// `loadgen::LoadSession` as a [`LoadPlugin`].
pub struct Loadgen {
    rt: tokio::runtime::Runtime,
    session: Option<loadgen::LoadSession>,
}

impl Loadgen {
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qfc-lab-load")
            .enable_all()
            .build()?;
        Ok(Self { rt, session: None })
    }
}

impl LoadPlugin for Loadgen {
    fn seed_db(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
        seed: u64,
    ) -> Result<serde_json::Value, LoadPluginError> {
        let r = loadgen::seed_db(datadir, keys, value_bytes as usize, seed)
            .map_err(|e| LoadPluginError::Failed(e.to_string()))?;
        serde_json::to_value(&r).map_err(|e| LoadPluginError::Failed(e.to_string()))
    }

    fn connect(&mut self, e: &Endpoints, seed: u64) -> Result<(), LoadPluginError> {
        let endpoints = loadgen::NodeEndpoints {
            rpc: e.rpc,
            p2p: e.p2p,
            metrics: Some(e.metrics),
            chain_id: e.chain_id,
            admin_rpc: e.admin_rpc,
        };
        let s = self
            .rt
            .block_on(loadgen::LoadSession::connect(endpoints, seed))
            .map_err(|e| LoadPluginError::Failed(e.to_string()))?;
        self.session = Some(s);
        Ok(())
    }

    fn run_phase(
        &mut self,
        phase: &Phase,
        out_dir: &Path,
        cancel: &AtomicBool,
    ) -> Result<serde_json::Value, LoadPluginError> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| LoadPluginError::Failed("run_phase before connect".into()))?;
        let token = CancellationToken::new();
        let summary = self.rt.block_on(async {
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
        let summary = summary.map_err(|e| LoadPluginError::Failed(e.to_string()))?;
        serde_json::to_value(&summary).map_err(|e| LoadPluginError::Failed(e.to_string()))
    }
}
