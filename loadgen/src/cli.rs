//! `qfc-lab load ...`: clap arguments for one ad-hoc phase against a running
//! node (the lab flattens [`LoadArgs`] and calls [`run`]), and `seed-db`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::model::{
    CompactionLoad, CompactionMethod, LoadModel, PhaseLoad, RpcLoad, RpcMethod, SyncLoad,
    SyncRequestKind, TxLoad,
};
use crate::{LoadError, LoadSession, NodeEndpoints, PhaseSummary};

/// One load phase against a node on loopback.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// JSON-RPC address of the node
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub rpc: SocketAddr,
    /// libp2p TCP address (needed by --sync-rate)
    #[arg(long)]
    pub p2p: Option<SocketAddr>,
    /// /metrics address (used by --compaction write_flood)
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Chain id the node must report
    #[arg(long, default_value_t = 9000)]
    pub chain_id: u64,
    /// The node offers lab_flush / lab_compact (reference node with --lab-admin)
    #[arg(long)]
    pub admin_rpc: bool,
    /// Seed of every random choice
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Phase name (also seeds the generators)
    #[arg(long, default_value = "load")]
    pub phase: String,
    /// Phase duration in seconds
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Directory for summary.json, <workload>.hdr and series.json
    #[arg(long, default_value = "load-out")]
    pub out: PathBuf,
    /// Instrument-floor calibration before the phase, in ms (0: skip; the
    /// summary then says the floor was not measured)
    #[arg(long, default_value_t = 1000)]
    pub floor_ms: u64,

    /// rpc workload: arrivals per second (open loop); enables the workload
    #[arg(long)]
    pub rpc_rate: Option<f64>,
    /// rpc workload: ramp linearly to this rate over the phase
    #[arg(long)]
    pub rpc_ramp_to: Option<f64>,
    /// rpc workload: stepped rates, `SECONDS:RATE,...` (e.g. `10:100,10:400`;
    /// the last rate holds to the end); implies --rpc-rate from the first step
    #[arg(long)]
    pub rpc_steps: Option<String>,
    /// rpc workload: closed loop with --concurrency clients instead of a rate
    #[arg(long)]
    pub closed: bool,
    /// rpc workload: clients (closed) or maximum in flight (open)
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// rpc workload: per-request timeout in ms
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// rpc workload: method=weight list, e.g. eth_blockNumber=5,eth_getBalance=1
    #[arg(
        long,
        default_value = "eth_blockNumber=5,eth_getBlockByNumber=2,eth_getBalance=1"
    )]
    pub mix: String,

    /// tx workload: transactions per second; enables the workload
    #[arg(long)]
    pub tx_rate: Option<f64>,
    /// tx workload: closed loop (saturating) with one client per account
    /// instead of a rate; enables the workload
    /// (--tx-rate then only sets the floor calibration's rate)
    #[arg(long)]
    pub tx_closed: bool,
    /// tx workload: sending accounts funded by the faucet
    #[arg(long, default_value_t = 16)]
    pub tx_accounts: u32,
    /// tx workload: share of receipts checked
    #[arg(long, default_value_t = 0.01)]
    pub sample_receipts: f64,

    /// sync workload: requests per second across peers; enables the workload
    #[arg(long)]
    pub sync_rate: Option<f64>,
    /// sync workload: libp2p peers
    #[arg(long, default_value_t = 8)]
    pub sync_peers: u32,
    /// sync workload: range | number | status | mixed
    #[arg(long, default_value = "range")]
    pub sync_request: String,

    /// compaction workload: auto | admin | write_flood; enables the workload
    #[arg(long)]
    pub compaction: Option<String>,
    /// compaction write flood: MiB to push through the write buffers
    #[arg(long, default_value_t = 256)]
    pub flood_mib: u64,
}

fn bad(field: &str, why: String) -> LoadError {
    LoadError::InvalidLoad {
        field: field.into(),
        why,
    }
}

/// Parses `method=weight,...`.
pub fn parse_mix(s: &str) -> Result<std::collections::BTreeMap<RpcMethod, u32>, LoadError> {
    let mut mix = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part.split_once('=').unwrap_or((part, "1"));
        let m = RpcMethod::from_name(name.trim()).ok_or_else(|| {
            let known: Vec<_> = RpcMethod::ALL.iter().map(|m| m.name()).collect();
            bad(
                "mix",
                format!("unknown method `{name}`; known: {}", known.join(", ")),
            )
        })?;
        let w: u32 = w.trim().parse().map_err(|_| {
            bad(
                "mix",
                format!("weight `{w}` of {name} is not a whole number"),
            )
        })?;
        mix.insert(m, w);
    }
    Ok(mix)
}

/// `SECONDS:RATE,...` into steps.
pub fn parse_steps(s: &str) -> Result<Vec<crate::RateStep>, LoadError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (d, r) = part
                .split_once(':')
                .ok_or_else(|| bad("rpc-steps", format!("`{part}` is not SECONDS:RATE")))?;
            let num = |x: &str| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|_| bad("rpc-steps", format!("`{x}` in `{part}` is not a number")))
            };
            Ok(crate::RateStep {
                duration_s: num(d)?,
                rate_per_s: num(r)?,
            })
        })
        .collect()
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    field: &str,
    s: &str,
    known: &str,
) -> Result<T, LoadError> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| bad(field, format!("`{s}` is not one of {known}")))
}

impl LoadArgs {
    /// The phase load these flags describe.
    pub fn phase_load(&self) -> Result<PhaseLoad, LoadError> {
        let steps = self
            .rpc_steps
            .as_deref()
            .map(parse_steps)
            .transpose()?
            .unwrap_or_default();
        let rpc = if self.rpc_rate.is_some() || self.closed || !steps.is_empty() {
            Some(RpcLoad {
                model: if self.closed {
                    LoadModel::Closed
                } else {
                    LoadModel::Open
                },
                rate_per_s: self
                    .rpc_rate
                    .or(steps.first().map(|s| s.rate_per_s))
                    .unwrap_or(1.0),
                ramp_to_per_s: self.rpc_ramp_to,
                steps,
                concurrency: self.concurrency,
                timeout_ms: self.timeout_ms,
                mix: parse_mix(&self.mix)?,
            })
        } else {
            None
        };
        let load = PhaseLoad {
            rpc,
            tx: (self.tx_rate.is_some() || self.tx_closed).then(|| TxLoad {
                rate_per_s: self.tx_rate.unwrap_or(TxLoad::default().rate_per_s),
                accounts: self.tx_accounts,
                sample_receipts: self.sample_receipts,
                closed: self.tx_closed,
                ..TxLoad::default()
            }),
            sync: match self.sync_rate {
                Some(r) => Some(SyncLoad {
                    peers: self.sync_peers,
                    rate_per_s: r,
                    request: parse_enum::<SyncRequestKind>(
                        "sync_request",
                        &self.sync_request,
                        "range, number, status, mixed",
                    )?,
                    ..SyncLoad::default()
                }),
                None => None,
            },
            compaction: match &self.compaction {
                Some(m) => Some(CompactionLoad {
                    method: parse_enum::<CompactionMethod>(
                        "compaction",
                        m,
                        "auto, admin, write_flood",
                    )?,
                    flood_mib: self.flood_mib,
                }),
                None => None,
            },
        };
        if load.is_empty() {
            return Err(bad(
                "workload",
                "nothing to do; give --rpc-rate, --closed, --tx-rate, --tx-closed, --sync-rate or --compaction"
                    .into(),
            ));
        }
        load.validate()?;
        Ok(load)
    }
}

/// Runs one phase; stops early when `cancel` fires.
pub async fn run(args: &LoadArgs, cancel: CancellationToken) -> Result<PhaseSummary, LoadError> {
    let load = args.phase_load()?;
    let endpoints = NodeEndpoints {
        rpc: args.rpc,
        p2p: args.p2p,
        metrics: args.metrics,
        chain_id: args.chain_id,
        admin_rpc: args.admin_rpc,
    };
    let mut session = LoadSession::connect(endpoints, args.seed).await?;
    session.set_floor_window(Duration::from_millis(args.floor_ms));
    session
        .run_phase(
            &args.phase,
            &load,
            Duration::from_secs(args.duration_s),
            &args.out,
            cancel,
        )
        .await
}

/// `seed-db`: fill a datadir before the node starts.
#[derive(Debug, Clone, Args)]
pub struct SeedDbArgs {
    /// Node data directory (the database goes to <datadir>/db)
    #[arg(long)]
    pub datadir: PathBuf,
    /// Keys to write
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Bytes per value
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn flags_build_the_phase_load() {
        let t = T::parse_from([
            "x",
            "--rpc-rate",
            "200",
            "--mix",
            "eth_chainId=2,net_version",
            "--sync-rate",
            "5",
            "--sync-request",
            "mixed",
        ]);
        let l = t.load.phase_load().unwrap();
        let rpc = l.rpc.unwrap();
        assert_eq!(rpc.rate_per_s, 200.0);
        assert_eq!(rpc.mix[&RpcMethod::EthChainId], 2);
        assert_eq!(rpc.mix[&RpcMethod::NetVersion], 1);
        assert_eq!(l.sync.unwrap().request, SyncRequestKind::Mixed);
        assert!(l.tx.is_none() && l.compaction.is_none());
    }

    #[test]
    fn bad_flags_say_what_to_do() {
        let t = T::parse_from(["x"]);
        assert!(t
            .load
            .phase_load()
            .unwrap_err()
            .to_string()
            .contains("--rpc-rate"));
        let t = T::parse_from(["x", "--rpc-rate", "1", "--mix", "eth_foo=1"]);
        assert!(t
            .load
            .phase_load()
            .unwrap_err()
            .to_string()
            .contains("eth_blockNumber"));
        let t = T::parse_from(["x", "--compaction", "sideways"]);
        assert!(t
            .load
            .phase_load()
            .unwrap_err()
            .to_string()
            .contains("write_flood"));
    }
}
