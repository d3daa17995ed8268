//! Command line: qfc-node's flags and `QFC_*` variables with the same
//! defaults, plus the lab-only `--lab-*` knobs (`QFC_LAB_*`).

use clap::builder::BoolishValueParser;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// qfc-refnode: a small qfc-node stand-in with the same interface and hot paths.
#[derive(Parser, Debug, Clone)]
#[command(name = "qfc-refnode", version, about)]
pub struct Cli {
    /// Data directory (database under <datadir>/db)
    #[arg(short, long, env = "QFC_DATADIR", default_value = "./data")]
    pub datadir: PathBuf,

    /// Chain ID
    #[arg(long, env = "QFC_CHAIN_ID", default_value_t = wire::genesis::DEV_CHAIN_ID)]
    pub chain_id: u64,

    /// JSON-RPC listen address (HTTP and WebSocket on one port)
    #[arg(long, env = "QFC_RPC_ADDR", default_value = "127.0.0.1:8545")]
    pub rpc_addr: SocketAddr,

    /// Development mode: dev genesis, validator key [0x01; 32], 3 s slots
    #[arg(long, env = "QFC_DEV", value_parser = BoolishValueParser::new())]
    pub dev: bool,

    /// Validator mode: Ed25519 secret key as 64 hex digits
    #[arg(long, env = "QFC_VALIDATOR")]
    pub validator: Option<String>,

    /// Log level: trace, debug, info, warn, error (RUST_LOG is ignored)
    #[arg(long, env = "QFC_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// P2P listen port (TCP)
    #[arg(long, env = "QFC_P2P_PORT", default_value_t = 30303)]
    pub p2p_port: u16,

    /// Disable P2P networking
    #[arg(long, env = "QFC_NO_NETWORK", value_parser = BoolishValueParser::new())]
    pub no_network: bool,

    /// Bootnode multiaddrs (comma separated in QFC_BOOTNODES)
    #[arg(long, env = "QFC_BOOTNODES", value_delimiter = ',')]
    pub bootnodes: Vec<String>,

    /// Run PoW miner threads (BLAKE3)
    #[arg(long, env = "QFC_MINE", value_parser = BoolishValueParser::new())]
    pub mine: bool,

    /// Miner threads (default: number of CPUs)
    #[arg(long, env = "QFC_THREADS")]
    pub threads: Option<usize>,

    /// Compute mode: pow (inference is not implemented by qfc-refnode)
    #[arg(long, env = "QFC_COMPUTE_MODE", default_value = "pow")]
    pub compute_mode: String,

    /// Prometheus metrics listen address (/metrics)
    #[arg(long, env = "QFC_METRICS_ADDR", default_value = "0.0.0.0:6060")]
    pub metrics_addr: SocketAddr,

    /// Enable RocksDB statistics (stall and WAL sync counters in /metrics)
    #[arg(long, env = "QFC_DB_STATISTICS", value_parser = BoolishValueParser::new())]
    pub db_statistics: bool,

    /// Hot-key sampling rate (accepted for compatibility; not implemented)
    #[arg(long, env = "QFC_HOT_KEY_SAMPLING", default_value_t = 0)]
    pub hot_key_sampling: u64,

    /// Hot-key window (accepted for compatibility; not implemented)
    #[arg(long, env = "QFC_HOT_KEY_WINDOW_SECS", default_value_t = 60)]
    pub hot_key_window_secs: u64,

    /// Take a RocksDB checkpoint every N seconds (0: never)
    #[arg(long, env = "QFC_SNAPSHOT_INTERVAL_SECS", default_value_t = 0)]
    pub snapshot_interval_secs: u64,

    /// Checkpoint directory (default: <datadir>/snapshots)
    #[arg(long, env = "QFC_SNAPSHOT_DIR")]
    pub snapshot_dir: Option<PathBuf>,

    /// Checkpoints to keep
    #[arg(long, env = "QFC_SNAPSHOT_RETAIN", default_value_t = 3)]
    pub snapshot_retain: usize,

    /// LAB ONLY: produce a block every N ms, winning every slot
    #[arg(long, env = "QFC_LAB_BLOCK_INTERVAL_MS")]
    pub lab_block_interval_ms: Option<u64>,

    /// LAB ONLY: commit each block's WriteBatch with sync = true (as after T3.2)
    #[arg(long, env = "QFC_LAB_SYNCED_COMMIT", value_parser = BoolishValueParser::new())]
    pub lab_synced_commit: bool,

    /// LAB ONLY: enable the lab_flush and lab_compact JSON-RPC methods
    #[arg(long, env = "QFC_LAB_ADMIN", value_parser = BoolishValueParser::new())]
    pub lab_admin: bool,

    /// LAB ONLY: P2P listen host (qfc-node always binds 0.0.0.0)
    #[arg(long, env = "QFC_LAB_P2P_HOST", default_value = "0.0.0.0")]
    pub lab_p2p_host: std::net::IpAddr,

    /// LAB ONLY: write the bound addresses as JSON to this file once listening
    #[arg(long, env = "QFC_LAB_PORTS_FILE")]
    pub lab_ports_file: Option<PathBuf>,
}

/// The tracing level for `--log-level` (unknown names mean info, as qfc-node).
pub fn log_level(s: &str) -> tracing::Level {
    match s {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_qfc_node() {
        let c = Cli::try_parse_from(["qfc-refnode"]).unwrap();
        assert_eq!(c.datadir, PathBuf::from("./data"));
        assert_eq!(c.chain_id, 9000);
        assert_eq!(c.rpc_addr.to_string(), "127.0.0.1:8545");
        assert_eq!(c.p2p_port, 30303);
        assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:6060");
        assert_eq!(c.log_level, "info");
        assert!(!c.dev && !c.mine && !c.lab_synced_commit && !c.lab_admin);
    }

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "qfc-refnode",
            "--dev",
            "--no-network",
            "--mine",
            "--threads",
            "2",
            "--bootnodes",
            "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2",
            "--lab-block-interval-ms",
            "250",
            "--lab-synced-commit",
            "--log-level",
            "warn",
        ])
        .unwrap();
        assert!(c.dev && c.no_network && c.mine && c.lab_synced_commit);
        assert_eq!(c.threads, Some(2));
        assert_eq!(c.bootnodes.len(), 2);
        assert_eq!(c.lab_block_interval_ms, Some(250));
        assert_eq!(log_level(&c.log_level), tracing::Level::WARN);
        assert_eq!(log_level("bogus"), tracing::Level::INFO);
    }
}
