//! The small enums of a scenario file, in one leaf module that imports no
//! other scenario module: [`super::raw`] deserializes them and
//! [`super::model`] holds them, so `raw` never reaches into `model`.
//!
//! One concept, one type: each enum is the owning crate's own, re-exported
//! here (`vm` owns targets, architectures, accelerators and node kinds,
//! `probes` the probes and their unwinder, `loadgen` the load models). Only
//! the enums no other crate knows are declared here, with the name rule
//! ([`valid_name`]) that the report also applies to bundle folders, so that
//! `report` needs only this leaf of the scenario (`CompareOp`, `valid_name`),
//! never `model`.

use serde::{Deserialize, Serialize};

pub use loadgen::{CompactionMethod, LoadModel, RpcMethod, SyncRequestKind};
pub use probes::unwind::UnwindMode;
pub use probes::ProbeKind;
pub use vm::nodebin::NodeKind;
pub use vm::{Accel, Arch, TargetKind};

/// qfc-node `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// What the probes filter on (`[probes] scope`): the node's process tree or
/// cgroup, or every task; `probes::Scope` is the resolved form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeScope {
    Target,
    System,
}

/// Comparison of an expectation: the report's leaf owns it (one type for
/// the parser and the verdicts).
pub use crate::report::spec::CompareOp;

/// A phase (or scenario) name that can name a bundle folder: 1-64 of
/// `A-Z a-z 0-9 - _`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
