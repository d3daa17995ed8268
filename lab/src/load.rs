//! Load plug-ins. [`LoadPlugin`] is what the orchestrator drives, once per
//! run ([`LoadPlugin::connect`]) and once per phase with load
//! ([`LoadPlugin::run_phase`], blocking for the phase's duration, on its own
//! thread). The adapter to `loadgen::LoadSession` is
//! [`crate::loadgen_adapter::Loadgen`]; [`Unavailable`] records a clear
//! failure instead when it cannot start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::scenario::Phase;

/// Where the node listens, as seen from this machine.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Endpoints {
    pub rpc: SocketAddr,
    pub metrics: SocketAddr,
    pub p2p: Option<SocketAddr>,
    pub chain_id: u64,
    /// The node offers `lab_flush` / `lab_compact` (reference node with admin).
    pub admin_rpc: bool,
}

/// Errors of a load plug-in.
#[derive(Debug, thiserror::Error)]
pub enum LoadPluginError {
    #[error("no load generator in this build: {0}")]
    Unavailable(String),
    #[error("load generator: {0}")]
    Failed(String),
}

/// A load generator driving the node across phases.
pub trait LoadPlugin: Send {
    /// Seeds a node datadir (on this machine) before the node starts.
    fn seed_db(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
        seed: u64,
    ) -> Result<serde_json::Value, LoadPluginError>;
    /// Connects once per run (funds accounts, keeps nonces across phases).
    fn connect(&mut self, endpoints: &Endpoints, seed: u64) -> Result<(), LoadPluginError>;
    /// Runs `phase.load` for `phase.duration_s`, writing into `out_dir`;
    /// returns the phase summary. Returns early when `cancel` becomes true.
    fn run_phase(
        &mut self,
        phase: &Phase,
        out_dir: &Path,
        cancel: &AtomicBool,
    ) -> Result<serde_json::Value, LoadPluginError>;
}

/// Stand-in when no load generator is linked: every call fails with a reason
/// that ends up in the bundle's `plugin_failures`.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl LoadPlugin for Unavailable {
    fn seed_db(
        &mut self,
        _: &Path,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<serde_json::Value, LoadPluginError> {
        Err(LoadPluginError::Unavailable(self.0.clone()))
    }
    fn connect(&mut self, _: &Endpoints, _: u64) -> Result<(), LoadPluginError> {
        Err(LoadPluginError::Unavailable(self.0.clone()))
    }
    fn run_phase(
        &mut self,
        _: &Phase,
        _: &Path,
        _: &AtomicBool,
    ) -> Result<serde_json::Value, LoadPluginError> {
        Err(LoadPluginError::Unavailable(self.0.clone()))
    }
}

/// The load plug-in of this build: loadgen, or a recorded failure when its
/// runtime cannot start.
pub fn default_plugin() -> Box<dyn LoadPlugin> {
    match crate::loadgen_adapter::Loadgen::new() {
        Ok(l) => Box::new(l),
        Err(e) => Box::new(Unavailable(format!(
            "cannot start the load generator's runtime: {e}"
        ))),
    }
}
