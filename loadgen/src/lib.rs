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
mod error;
pub mod floor;
pub mod http;
pub mod metrics;
pub mod model;
pub mod rpc;
pub mod schedule;
mod seed_db;
mod seeds;
mod session;
pub mod stats;
pub mod sync;
pub mod tx;

pub use error::LoadError;
pub use floor::Floor;
pub use model::{
    CompactionLoad, CompactionMethod, FieldError, LoadModel, PhaseLoad, RateStep, RpcLoad,
    RpcMethod, SyncLoad, SyncRequestKind, TxLoad,
};
pub use seed_db::{seed_db, seed_db_until, SeedReport};
pub use session::{LoadSession, NodeEndpoints, PhaseSummary};
pub use stats::{LatencySummary, Pacing, SeriesPoint, WorkloadSummary};
