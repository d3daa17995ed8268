//! Stage one of the scenario parse: serde structs that mirror the TOML file
//! exactly (docs/SCENARIOS.md), with `deny_unknown_fields` everywhere and
//! spans kept on every value that stage two validates. Its enums come from
//! the leaf [`super::kinds`], never from stage two.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::kinds::{
    Accel, Arch, CompactionMethod, CompareOp, LoadModel, LogLevel, NodeKind, ProbeKind, ProbeScope,
    SyncRequestKind, TargetKind, UnwindMode,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub seed: u64,
    pub target: Option<RawTarget>,
    pub node: Option<RawNode>,
    pub probes: Option<RawProbes>,
    pub phase: Option<Spanned<Vec<RawPhase>>>,
    #[serde(default)]
    pub expect: Vec<RawExpect>,
    pub bundle: Option<RawBundle>,
    pub run: Option<RawRun>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub kind: Spanned<TargetKind>,
    pub qemu: Option<Spanned<RawQemu>>,
    pub container: Option<Spanned<RawContainer>>,
    pub ssh: Option<Spanned<RawSsh>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQemu {
    pub arch: Option<Arch>,
    pub cpus: Option<Spanned<u32>>,
    pub mem_mib: Option<Spanned<u32>>,
    pub accel: Option<Accel>,
    pub boot_timeout_s: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub host: Spanned<String>,
    pub port: Option<u16>,
    pub user: Option<Spanned<String>>,
    pub key: Option<String>,
    pub known_hosts: Option<String>,
    pub workdir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub kind: Option<Spanned<NodeKind>>,
    pub binary: Option<Spanned<String>>,
    pub dev: Option<bool>,
    pub no_network: Option<bool>,
    pub chain_id: Option<u64>,
    pub log_level: Option<LogLevel>,
    pub mine: Option<bool>,
    pub threads: Option<Spanned<u32>>,
    pub db_statistics: Option<bool>,
    pub snapshot_interval_secs: Option<u64>,
    pub extra_args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub refnode: Option<Spanned<RawRefnode>>,
    pub seed_db: Option<RawSeedDb>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefnode {
    pub block_interval_ms: Option<Spanned<u64>>,
    pub synced_commit: Option<bool>,
    pub admin: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeedDb {
    pub keys: Spanned<u64>,
    pub value_bytes: Spanned<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbes {
    pub enable: Option<Spanned<Vec<ProbeKind>>>,
    pub scope: Option<ProbeScope>,
    pub oncpu_hz: Option<Spanned<u32>>,
    pub offcpu_min_us: Option<u64>,
    pub map_entries: Option<Spanned<u32>>,
    /// `fp`, `dwarf` or `auto` (issue 12).
    pub unwind: Option<UnwindMode>,
    /// Bytes of user stack copied per sample in `dwarf`/`auto` mode.
    pub ustack_bytes: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Spanned<String>,
    pub duration_s: Spanned<u64>,
    pub load: Option<RawLoad>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub rpc: Option<RawRpc>,
    pub tx: Option<RawTx>,
    pub sync: Option<RawSync>,
    pub compaction: Option<RawCompaction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub duration_s: Spanned<f64>,
    pub rate_per_s: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRpc {
    pub model: Option<LoadModel>,
    pub rate_per_s: Option<Spanned<f64>>,
    pub ramp_to_per_s: Option<Spanned<f64>>,
    pub steps: Option<Spanned<Vec<RawStep>>>,
    pub concurrency: Option<Spanned<u32>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub mix: Option<BTreeMap<String, Spanned<u32>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTx {
    pub rate_per_s: Option<Spanned<f64>>,
    pub accounts: Option<Spanned<u32>>,
    pub sample_receipts: Option<Spanned<f64>>,
    pub timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub peers: Option<Spanned<u32>>,
    pub rate_per_s: Option<Spanned<f64>>,
    pub request: Option<SyncRequestKind>,
    pub timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompaction {
    pub method: Option<CompactionMethod>,
    pub flood_mib: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub figure: Spanned<String>,
    pub phase: Option<Spanned<String>>,
    pub op: CompareOp,
    pub value: f64,
    pub why: Option<String>,
    /// Over repetitions: `median`, `all` (default) or `ci`.
    pub stat: Option<crate::report::spec::Stat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub repeat: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBundle {
    pub dir: Option<Spanned<String>>,
    pub metrics_interval_s: Option<u64>,
}
