//! Domain types of a phase's load: the validated form of `[phase.load.*]` in
//! docs/SCENARIOS.md, field for field. `lab` parses the TOML and builds these;
//! `loadgen::cli` builds them from flags. Every type serializes for the manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::LoadError;

/// Everything one phase asks of the load generator. Every workload is
/// optional; those present run at the same time for the phase's duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseLoad {
    /// `[phase.load.rpc]`: weighted mix of read methods over JSON-RPC.
    pub rpc: Option<RpcLoad>,
    /// `[phase.load.tx]`: signed native transfers from faucet-funded accounts.
    pub tx: Option<TxLoad>,
    /// `[phase.load.sync]`: libp2p peers flooding `/qfc/sync/1`.
    pub sync: Option<SyncLoad>,
    /// `[phase.load.compaction]`: forced RocksDB flush and compaction.
    pub compaction: Option<CompactionLoad>,
}

/// Load model of a rate-driven workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    /// Constant arrival rate (optionally ramped); latency is measured from
    /// each request's intended start, so a stalled server cannot hide behind
    /// a slowed-down generator (no coordinated omission).
    #[default]
    Open,
    /// `concurrency` clients, each sending its next request when the previous
    /// one is answered; latency from the actual send.
    Closed,
}

/// One step of a stepped open-loop schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateStep {
    /// How long this rate holds, seconds.
    pub duration_s: f64,
    /// Arrivals per second during the step.
    pub rate_per_s: f64,
}

/// `[phase.load.rpc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcLoad {
    /// Open or closed loop.
    pub model: LoadModel,
    /// Open loop: arrivals per second at the start of the phase.
    pub rate_per_s: f64,
    /// Open loop: if set, the rate ramps linearly from `rate_per_s` to this
    /// value over the phase.
    pub ramp_to_per_s: Option<f64>,
    /// Open loop: consecutive constant rates instead of `rate_per_s` (not
    /// with a ramp). The last step's rate holds to the end of the phase;
    /// steps past the phase's end are cut off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RateStep>,
    /// Closed loop: number of clients. Open loop: maximum requests in flight
    /// (arrivals beyond it wait, their wait counted in their latency).
    pub concurrency: u32,
    /// Per-request timeout, from the actual send.
    pub timeout_ms: u64,
    /// Method name -> relative weight.
    pub mix: BTreeMap<RpcMethod, u32>,
}

impl Default for RpcLoad {
    fn default() -> Self {
        Self {
            model: LoadModel::Open,
            rate_per_s: 100.0,
            ramp_to_per_s: None,
            steps: Vec::new(),
            concurrency: 16,
            timeout_ms: 5000,
            mix: BTreeMap::from([
                (RpcMethod::EthBlockNumber, 5),
                (RpcMethod::EthGetBlockByNumber, 2),
                (RpcMethod::EthGetBalance, 1),
            ]),
        }
    }
}

/// The read methods the `rpc` workload can send (qfc-node's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RpcMethod {
    /// `eth_blockNumber`.
    #[serde(rename = "eth_blockNumber")]
    EthBlockNumber,
    /// `eth_getBlockByNumber`, a block number drawn uniformly from genesis to
    /// the head seen at the start of the phase.
    #[serde(rename = "eth_getBlockByNumber")]
    EthGetBlockByNumber,
    /// `eth_getBalance` of a funded account drawn at random.
    #[serde(rename = "eth_getBalance")]
    EthGetBalance,
    /// `eth_getTransactionCount` of a funded account drawn at random.
    #[serde(rename = "eth_getTransactionCount")]
    EthGetTransactionCount,
    /// `eth_chainId`.
    #[serde(rename = "eth_chainId")]
    EthChainId,
    /// `eth_gasPrice`.
    #[serde(rename = "eth_gasPrice")]
    EthGasPrice,
    /// `eth_syncing`.
    #[serde(rename = "eth_syncing")]
    EthSyncing,
    /// `net_version`.
    #[serde(rename = "net_version")]
    NetVersion,
    /// `web3_clientVersion`.
    #[serde(rename = "web3_clientVersion")]
    Web3ClientVersion,
}

impl RpcMethod {
    /// Every method, in a fixed order.
    pub const ALL: [RpcMethod; 9] = [
        RpcMethod::EthBlockNumber,
        RpcMethod::EthGetBlockByNumber,
        RpcMethod::EthGetBalance,
        RpcMethod::EthGetTransactionCount,
        RpcMethod::EthChainId,
        RpcMethod::EthGasPrice,
        RpcMethod::EthSyncing,
        RpcMethod::NetVersion,
        RpcMethod::Web3ClientVersion,
    ];

    /// The JSON-RPC method name.
    pub fn name(self) -> &'static str {
        match self {
            RpcMethod::EthBlockNumber => "eth_blockNumber",
            RpcMethod::EthGetBlockByNumber => "eth_getBlockByNumber",
            RpcMethod::EthGetBalance => "eth_getBalance",
            RpcMethod::EthGetTransactionCount => "eth_getTransactionCount",
            RpcMethod::EthChainId => "eth_chainId",
            RpcMethod::EthGasPrice => "eth_gasPrice",
            RpcMethod::EthSyncing => "eth_syncing",
            RpcMethod::NetVersion => "net_version",
            RpcMethod::Web3ClientVersion => "web3_clientVersion",
        }
    }

    /// Looks a method up by its JSON-RPC name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// `[phase.load.tx]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxLoad {
    /// Transactions sent per second (open loop).
    pub rate_per_s: f64,
    /// Sending accounts: the faucet funds this many accounts derived from the
    /// seed, which then send transfers to each other.
    pub accounts: u32,
    /// Share of transactions (0..=1) whose receipt is fetched after the phase.
    pub sample_receipts: f64,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

impl Default for TxLoad {
    fn default() -> Self {
        Self {
            rate_per_s: 100.0,
            accounts: 16,
            sample_receipts: 0.01,
            timeout_ms: 5000,
        }
    }
}

/// `[phase.load.sync]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncLoad {
    /// libp2p peers (each its own identity and connection).
    pub peers: u32,
    /// Requests per second across all peers (open loop, round robin).
    pub rate_per_s: f64,
    /// Which requests to send.
    pub request: SyncRequestKind,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

impl Default for SyncLoad {
    fn default() -> Self {
        Self {
            peers: 8,
            rate_per_s: 50.0,
            request: SyncRequestKind::Range,
            timeout_ms: 30_000,
        }
    }
}

/// Kind of `/qfc/sync/1` request the sync workload sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRequestKind {
    /// GetBlockRange of 33 blocks from a random start.
    #[default]
    Range,
    /// GetBlockByNumber of a random block.
    Number,
    /// GetStatus.
    Status,
    /// An even mix of the three.
    Mixed,
}

/// `[phase.load.compaction]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionLoad {
    /// How to force compaction.
    pub method: CompactionMethod,
    /// `write_flood`: bytes to push through the write buffers, in MiB.
    pub flood_mib: u64,
}

impl Default for CompactionLoad {
    fn default() -> Self {
        Self {
            method: CompactionMethod::Auto,
            flood_mib: 256,
        }
    }
}

/// How the compaction workload forces RocksDB flush and compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactionMethod {
    /// `admin` when the node offers the admin RPC, `write_flood` otherwise.
    #[default]
    Auto,
    /// The reference node's `lab_flush` and `lab_compact` JSON-RPC methods.
    Admin,
    /// Transactions whose payload pushes `flood_mib` through the write
    /// buffers, watching `qfc_rocksdb_l0_files` and pending-compaction bytes.
    WriteFlood,
}

fn invalid(field: &str, why: String) -> LoadError {
    LoadError::InvalidLoad {
        field: field.to_owned(),
        why,
    }
}

fn check_rate(field: &str, rate: f64) -> Result<(), LoadError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
        return Err(invalid(
            field,
            format!("{rate} is not a rate in (0, 1000000]; give arrivals per second"),
        ));
    }
    Ok(())
}

impl PhaseLoad {
    /// Checks every workload; errors name the field and what to do.
    pub fn validate(&self) -> Result<(), LoadError> {
        if let Some(r) = &self.rpc {
            r.validate()?;
        }
        if let Some(t) = &self.tx {
            t.validate()?;
        }
        if let Some(s) = &self.sync {
            s.validate()?;
        }
        if let Some(c) = &self.compaction {
            if c.method == CompactionMethod::WriteFlood && c.flood_mib == 0 {
                return Err(invalid(
                    "compaction.flood_mib",
                    "0 MiB floods nothing; give at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// True when no workload is configured.
    pub fn is_empty(&self) -> bool {
        self.rpc.is_none() && self.tx.is_none() && self.sync.is_none() && self.compaction.is_none()
    }
}

impl RpcLoad {
    /// Checks rates, concurrency, timeout and mix.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.model == LoadModel::Open {
            check_rate("rpc.rate_per_s", self.rate_per_s)?;
            if let Some(to) = self.ramp_to_per_s {
                check_rate("rpc.ramp_to_per_s", to)?;
            }
            if !self.steps.is_empty() && self.ramp_to_per_s.is_some() {
                return Err(invalid(
                    "rpc.steps",
                    "steps and ramp_to_per_s exclude each other: give one".into(),
                ));
            }
            for (i, st) in self.steps.iter().enumerate() {
                check_rate(&format!("rpc.steps[{i}].rate_per_s"), st.rate_per_s)?;
                if !(st.duration_s.is_finite() && st.duration_s > 0.0) {
                    return Err(invalid(
                        &format!("rpc.steps[{i}].duration_s"),
                        format!("{} is not > 0", st.duration_s),
                    ));
                }
            }
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(invalid(
                "rpc.concurrency",
                format!("{} is outside 1..=10000", self.concurrency),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(
                "rpc.timeout_ms",
                "0 ms times every request out; give at least 1".into(),
            ));
        }
        if self.mix.values().all(|w| *w == 0) {
            return Err(invalid(
                "rpc.mix",
                "no method has a weight above 0; give e.g. { eth_blockNumber = 1 }".into(),
            ));
        }
        Ok(())
    }
}

impl TxLoad {
    /// Checks rate, accounts and sampling share.
    pub fn validate(&self) -> Result<(), LoadError> {
        check_rate("tx.rate_per_s", self.rate_per_s)?;
        if self.accounts == 0 || self.accounts > 10_000 {
            return Err(invalid(
                "tx.accounts",
                format!("{} is outside 1..=10000", self.accounts),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_receipts) {
            return Err(invalid(
                "tx.sample_receipts",
                format!("{} is not a share in 0..=1", self.sample_receipts),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(
                "tx.timeout_ms",
                "0 ms times every request out; give at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl SyncLoad {
    /// Checks peers and rate.
    pub fn validate(&self) -> Result<(), LoadError> {
        check_rate("sync.rate_per_s", self.rate_per_s)?;
        if self.peers == 0 || self.peers > 256 {
            return Err(invalid(
                "sync.peers",
                format!("{} is outside 1..=256", self.peers),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(
                "sync.timeout_ms",
                "0 ms times every request out; give at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_keys_serialize_as_method_names() {
        let json = serde_json::to_string(&RpcLoad::default()).unwrap();
        assert!(json.contains("\"eth_blockNumber\":5"), "{json}");
        let back: RpcLoad = serde_json::from_str(&json).unwrap();
        assert_eq!(back, RpcLoad::default());
        for m in RpcMethod::ALL {
            assert_eq!(RpcMethod::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn validate_names_the_bad_field() {
        let mut p = PhaseLoad {
            rpc: Some(RpcLoad {
                rate_per_s: 0.0,
                ..RpcLoad::default()
            }),
            ..PhaseLoad::default()
        };
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("rpc.rate_per_s"), "{e}");
        p.rpc = Some(RpcLoad {
            mix: BTreeMap::new(),
            ..RpcLoad::default()
        });
        assert!(p.validate().unwrap_err().to_string().contains("rpc.mix"));
        p.rpc = None;
        p.tx = Some(TxLoad {
            sample_receipts: 1.5,
            ..TxLoad::default()
        });
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tx.sample_receipts"));
        p.tx = Some(TxLoad::default());
        p.sync = Some(SyncLoad::default());
        p.compaction = Some(CompactionLoad::default());
        p.validate().unwrap();
    }
}
