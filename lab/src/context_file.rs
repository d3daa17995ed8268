//! `context.json`: what the run records about the machine and the node
//! (the target, its details, command outputs, the thread census), and
//! `node/cmdline.json` (the node's command line). A leaf
//! module (serde and `vm` only): the run writes the file through these
//! types and the report reads it through the same ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `context.json`, written by the run and read by the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Context {
    pub target: Option<vm::TargetInfo>,
    /// Target-specific facts: container engine/image/cgroup, guest image and accelerator.
    pub target_details: TargetDetails,
    /// Label -> command output (or the error).
    pub facts: BTreeMap<String, String>,
    pub node_pid: Option<u32>,
    pub node_version: Option<String>,
    /// How the lab fitted the node's command line to the flags the binary
    /// lists in `--help` (flags dropped, `--rpc` added); empty when nothing changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_flag_notes: Vec<String>,
    /// Thread census at RPC-ready and at the end of the last phase.
    pub threads_at_ready: BTreeMap<String, u32>,
    pub threads_at_end: BTreeMap<String, u32>,
}

/// What a target adds to `context.json` beyond [`vm::TargetInfo`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetDetails {
    /// Container engine, image, cgroup, log driver (container target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<vm::container::ContainerContext>,
    /// The guest image (its key goes in the manifest too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<vm::ImageSummary>,
    /// The accelerator choice with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_to_ready_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_argv: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_log: Option<PathBuf>,
}

/// Loopback ports the lab chose for the node (ports on the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodePorts {
    pub rpc: u16,
    pub metrics: u16,
    pub p2p: u16,
}

/// `node/cmdline.json`: the node's command line as the run started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCmdline {
    /// The program (its path on the target), then its arguments (lossy UTF-8).
    pub argv: Vec<String>,
    /// The scenario's `[node] env`, added to the target's environment.
    pub env: BTreeMap<String, String>,
    pub ports: NodePorts,
}
