//! [`LoadError`]: what can go wrong in the load generator (a leaf: every
//! workload and the session return it).

use std::path::PathBuf;

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
