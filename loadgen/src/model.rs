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

/// The load model and the stepped schedule are written into `summary.json`: their one
/// definition is the bundle schema's.
pub use bundle_schema::load::{LoadModel, RateStep};

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
    /// Closed loop (`qfc-load --tx-closed`): one client per account (at
    /// most 1,024), back to back, instead of a rate; measures the node's
    /// saturated throughput.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

impl Default for TxLoad {
    fn default() -> Self {
        Self {
            rate_per_s: 100.0,
            accounts: 16,
            sample_receipts: 0.01,
            timeout_ms: 5000,
            closed: false,
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

/// A load setting that is out of range: the field as a dotted path below
/// `[phase.load]` (`rpc.rate_per_s`, `rpc.steps[1].duration_s`), what is
/// wrong, and what to do. The one validator of a phase's load
/// ([`PhaseLoad::check`]) returns it; `lab` maps `field` to the scenario
/// file's line and column, `loadgen`'s CLI turns it into
/// [`LoadError::InvalidLoad`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path below `[phase.load]`.
    pub field: String,
    /// What is wrong (`expected a number > 0, found -50`).
    pub message: String,
    /// What to do, when there is more to say than the message.
    pub hint: Option<String>,
}

impl From<FieldError> for LoadError {
    fn from(e: FieldError) -> Self {
        LoadError::InvalidLoad {
            field: e.field,
            why: match e.hint {
                Some(h) => format!("{}; {h}", e.message),
                None => e.message,
            },
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
        hint: None,
    }
}

fn hinted(field: impl Into<String>, message: impl Into<String>, hint: &str) -> FieldError {
    FieldError {
        hint: Some(hint.into()),
        ..invalid(field, message)
    }
}

/// Most arrivals per second a rate may ask for.
pub const MAX_RATE_PER_S: f64 = 1_000_000.0;

fn check_rate(field: &str, rate: f64) -> Result<(), FieldError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(hinted(
            field,
            format!("expected a number > 0, found {rate}"),
            "rates are arrivals per second: use a positive number such as 100",
        ));
    }
    if rate > MAX_RATE_PER_S {
        return Err(hinted(
            field,
            format!("expected at most {MAX_RATE_PER_S} arrivals per second, found {rate}"),
            "one load generator paces at most 1000000 arrivals per second",
        ));
    }
    Ok(())
}

fn check_range(field: &str, v: u32, max: u32, hint: Option<&str>) -> Result<(), FieldError> {
    if v == 0 || v > max {
        return Err(FieldError {
            hint: hint.map(str::to_owned),
            ..invalid(
                field,
                format!("expected an integer in 1..={max}, found {v}"),
            )
        });
    }
    Ok(())
}

fn check_timeout(field: &str, ms: u64) -> Result<(), FieldError> {
    if ms == 0 {
        return Err(hinted(
            field,
            "expected an integer > 0, found 0",
            "0 ms times every request out; give at least 1",
        ));
    }
    Ok(())
}

impl PhaseLoad {
    /// Checks every workload; errors name the field and what to do.
    pub fn validate(&self) -> Result<(), LoadError> {
        self.check().map_err(LoadError::from)
    }

    /// The one validator of a phase's load: every range and every rule
    /// between fields (steps with a ramp or a closed loop, the mix's
    /// weights), for the scenario file and the CLI alike.
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(r) = &self.rpc {
            r.check()?;
        }
        if let Some(t) = &self.tx {
            t.check()?;
        }
        if let Some(s) = &self.sync {
            s.check()?;
        }
        if let Some(c) = &self.compaction {
            if c.flood_mib == 0 {
                return Err(hinted(
                    "compaction.flood_mib",
                    "expected an integer > 0, found 0",
                    "0 MiB floods nothing; give at least 1",
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
    /// Checks rates, steps, concurrency, timeout and mix.
    pub fn check(&self) -> Result<(), FieldError> {
        check_rate("rpc.rate_per_s", self.rate_per_s)?;
        if let Some(to) = self.ramp_to_per_s {
            check_rate("rpc.ramp_to_per_s", to)?;
        }
        if !self.steps.is_empty() {
            if self.ramp_to_per_s.is_some() {
                return Err(hinted(
                    "rpc.ramp_to_per_s",
                    "given together with steps",
                    "a phase's rpc rate either ramps or steps: keep one of them",
                ));
            }
            if self.model == LoadModel::Closed {
                return Err(hinted(
                    "rpc.steps",
                    "steps given with model = \"closed\"",
                    "steps shape an open-loop arrival rate: remove them or use model = \"open\"",
                ));
            }
        }
        for (i, st) in self.steps.iter().enumerate() {
            if !(st.duration_s.is_finite() && st.duration_s > 0.0) {
                return Err(hinted(
                    format!("rpc.steps[{i}].duration_s"),
                    format!("expected a number > 0, found {}", st.duration_s),
                    "a step holds its rate for a positive number of seconds",
                ));
            }
            check_rate(&format!("rpc.steps[{i}].rate_per_s"), st.rate_per_s)?;
        }
        check_range(
            "rpc.concurrency",
            self.concurrency,
            10_000,
            Some("closed loop: clients; open loop: requests in flight"),
        )?;
        check_timeout("rpc.timeout_ms", self.timeout_ms)?;
        if self.mix.values().all(|w| *w == 0) {
            return Err(hinted(
                "rpc.mix",
                "every weight is 0: expected at least one > 0",
                "give e.g. { eth_blockNumber = 1 }",
            ));
        }
        Ok(())
    }

    /// [`Self::check`] as a [`LoadError`].
    pub fn validate(&self) -> Result<(), LoadError> {
        self.check().map_err(LoadError::from)
    }
}

impl TxLoad {
    /// Checks rate, accounts, sampling share and timeout.
    pub fn check(&self) -> Result<(), FieldError> {
        check_rate("tx.rate_per_s", self.rate_per_s)?;
        check_range("tx.accounts", self.accounts, 10_000, None)?;
        if !(0.0..=1.0).contains(&self.sample_receipts) {
            return Err(invalid(
                "tx.sample_receipts",
                format!(
                    "expected a share between 0 and 1, found {}",
                    self.sample_receipts
                ),
            ));
        }
        check_timeout("tx.timeout_ms", self.timeout_ms)
    }

    /// [`Self::check`] as a [`LoadError`].
    pub fn validate(&self) -> Result<(), LoadError> {
        self.check().map_err(LoadError::from)
    }
}

impl SyncLoad {
    /// Checks peers, rate and timeout.
    pub fn check(&self) -> Result<(), FieldError> {
        check_rate("sync.rate_per_s", self.rate_per_s)?;
        check_range("sync.peers", self.peers, 256, None)?;
        check_timeout("sync.timeout_ms", self.timeout_ms)
    }

    /// [`Self::check`] as a [`LoadError`].
    pub fn validate(&self) -> Result<(), LoadError> {
        self.check().map_err(LoadError::from)
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

    /// Issue 14: one validator per concept. The rules that only `lab` used to
    /// check (steps with a closed loop) and those only `loadgen` checked
    /// (concurrency <= 10000) both live here.
    #[test]
    fn one_validator_checks_every_rule() {
        let rpc = |f: &dyn Fn(&mut RpcLoad)| {
            let mut r = RpcLoad::default();
            f(&mut r);
            PhaseLoad {
                rpc: Some(r),
                ..PhaseLoad::default()
            }
            .check()
            .unwrap_err()
        };
        let steps = vec![RateStep {
            duration_s: 1.0,
            rate_per_s: 10.0,
        }];
        let e = rpc(&|r| {
            r.model = LoadModel::Closed;
            r.steps = steps.clone();
        });
        assert_eq!(e.field, "rpc.steps");
        assert!(e.message.contains("closed"), "{e:?}");
        let e = rpc(&|r| {
            r.steps = steps.clone();
            r.ramp_to_per_s = Some(50.0);
        });
        assert_eq!(e.field, "rpc.ramp_to_per_s");
        let e = rpc(&|r| r.concurrency = 10_001);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (
                "rpc.concurrency",
                "expected an integer in 1..=10000, found 10001"
            )
        );
        let e = rpc(&|r| r.rate_per_s = -50.0);
        assert_eq!(e.message, "expected a number > 0, found -50");
        assert!(e.hint.is_some());
        let e = rpc(&|r| {
            r.steps = vec![RateStep {
                duration_s: 0.0,
                rate_per_s: 10.0,
            }]
        });
        assert_eq!(e.field, "rpc.steps[0].duration_s");
        let e = PhaseLoad {
            compaction: Some(CompactionLoad {
                method: CompactionMethod::Admin,
                flood_mib: 0,
            }),
            ..PhaseLoad::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(e.field, "compaction.flood_mib");
        let shown = LoadError::from(e).to_string();
        assert!(
            shown.contains("compaction.flood_mib") && shown.contains("floods nothing"),
            "{shown}"
        );
    }
}
