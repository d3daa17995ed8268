//! What the orchestrator knows of the load generator: where the node
//! listens ([`Endpoints`]) and how driving the load can fail
//! ([`LoadPluginError`]). The driver itself, `loadgen::LoadSession` behind
//! a small tokio runtime, is `Loadgen` in lab/src/loadgen_adapter.rs, which
//! depends on this module and not the other way round.

use std::net::SocketAddr;
use std::sync::Arc;

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

/// Errors of driving the load generator; each ends up in the bundle's
/// `plugin_failures` (or, for seeding, as the run's error).
#[derive(Debug, thiserror::Error)]
pub enum LoadPluginError {
    /// The load generator's tokio runtime did not start: every call fails.
    #[error("no load generator in this build: cannot start the load generator's runtime: {0}")]
    Runtime(#[source] Arc<std::io::Error>),
    /// A phase was asked for before the session connected.
    #[error("load generator: run_phase before connect")]
    NotConnected,
    /// The thread running the phase's load panicked.
    #[error("load generator: load thread panicked")]
    Panicked,
    /// Seeding, connecting or a phase failed in the load generator.
    #[error("load generator: {0}")]
    Load(#[source] loadgen::LoadError),
}
