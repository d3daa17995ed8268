//! Load generator for qfc-lab: drives a qfc-node (real or reference) through
//! its public interfaces only (HTTP JSON-RPC, `/qfc/sync/1` over libp2p,
//! `/metrics`), per phase, and writes what it measured.
//!
//! Entry points: [`LoadSession::connect`] once per run, then
//! [`LoadSession::run_phase`] per phase with a [`PhaseLoad`] (the domain form
//! of `[phase.load.*]`, docs/SCENARIOS.md); [`seed_db`] fills a datadir
//! before the node starts. Load models live in [`engine`], recording in
//! [`stats`], the instrument's own floor in [`floor`]; `qfc-lab load`
//! flattens [`cli::LoadArgs`].
//!
//! Every random choice comes from the session seed (per phase and workload),
//! every loop is bounded in count and time, and every target must be a
//! loopback address.

pub mod cli;
pub mod clock;
pub mod compaction;
pub mod engine;
pub mod floor;
pub mod http;
pub mod metrics;
pub mod model;
pub mod rpc;
pub mod schedule;
mod seed_db;
mod session;
pub mod stats;
pub mod sync;
pub mod tx;

use std::path::PathBuf;

pub use floor::Floor;
pub use model::{
    CompactionLoad, CompactionMethod, FieldError, LoadModel, PhaseLoad, RateStep, RpcLoad,
    RpcMethod, SyncLoad, SyncRequestKind, TxLoad,
};
pub use seed_db::{seed_db, seed_db_until, SeedReport};
pub use session::{LoadSession, NodeEndpoints, PhaseSummary};
pub use stats::{LatencySummary, Pacing, SeriesPoint, WorkloadSummary};

/// What can go wrong in the load generator.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A load setting is out of range.
    #[error("invalid load setting `{field}`: {why}")]
    InvalidLoad { field: String, why: String },
    /// A target address is not on loopback.
    #[error("refusing to send load to {addr} ({what}): load goes only to loopback (127.0.0.0/8, ::1); forward the node's port to 127.0.0.1")]
    NotLoopback { what: &'static str, addr: String },
    /// The node did not answer as expected.
    #[error("node at {addr} {why}")]
    Node { addr: String, why: String },
    /// A workload needs an endpoint the session was not given.
    #[error(
        "workload `{workload}` needs the node's {endpoint} endpoint; pass it in NodeEndpoints"
    )]
    MissingEndpoint {
        workload: &'static str,
        endpoint: &'static str,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {why}")]
    Output { path: PathBuf, why: String },
    /// A workload could not be set up.
    #[error("{workload} workload: {why}")]
    Workload { workload: &'static str, why: String },
    /// Seeding a RocksDB data directory failed.
    #[error("cannot seed RocksDB at {path}: {why}")]
    SeedDb { path: PathBuf, why: String },
    /// The caller asked a long step to stop (a signal).
    #[error("{what} stopped on request")]
    Cancelled { what: &'static str },
}
