//! qfc-node's RocksDB schema (`qfc_storage::schema`): column family names
//! and metadata keys, so that every crate writing a node's datadir (the
//! reference node, a database seeder) uses the same names. RocksDB refuses
//! to open a database without naming every column family it holds, so a
//! seeder must write only into these.

/// Column family names, in qfc-node's order.
pub mod cf {
    pub const BLOCK_HEADERS: &str = "block_headers";
    pub const BLOCK_BODIES: &str = "block_bodies";
    pub const BLOCK_HASH_INDEX: &str = "block_hash_index";
    pub const TRANSACTIONS: &str = "transactions";
    pub const TX_INDEX: &str = "tx_index";
    pub const RECEIPTS: &str = "receipts";
    pub const STATE: &str = "state";
    pub const CODE: &str = "code";
    pub const METADATA: &str = "metadata";
    pub const VALIDATORS: &str = "validators";
    pub const REWARDS: &str = "rewards";
    pub const DELEGATIONS: &str = "delegations";
    pub const UNDELEGATIONS: &str = "undelegations";
    pub const CHECKPOINTS: &str = "checkpoints";
    pub const WORK_PROOFS: &str = "work_proofs";
    pub const ETH_TX_INDEX: &str = "eth_tx_index";

    /// Every column family, in qfc-node's order.
    pub const ALL: &[&str] = &[
        BLOCK_HEADERS,
        BLOCK_BODIES,
        BLOCK_HASH_INDEX,
        TRANSACTIONS,
        TX_INDEX,
        RECEIPTS,
        STATE,
        CODE,
        METADATA,
        VALIDATORS,
        REWARDS,
        DELEGATIONS,
        UNDELEGATIONS,
        CHECKPOINTS,
        WORK_PROOFS,
        ETH_TX_INDEX,
    ];
}

/// Metadata keys, as qfc-node's `qfc_storage::schema::meta`.
pub mod meta {
    pub const LATEST_BLOCK_NUMBER: &[u8] = b"latest_block_number";
    pub const LATEST_STATE_ROOT: &[u8] = b"latest_state_root";
    pub const GENESIS_HASH: &[u8] = b"genesis_hash";
    pub const CHAIN_ID: &[u8] = b"chain_id";
    pub const DB_VERSION: &[u8] = b"db_version";
}

/// Height key of the `block_headers` and `block_bodies` CFs: u64 big-endian.
pub fn block_number_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Value of the `tx_index` CF: block height (u64 BE) then index (u32 BE).
pub fn tx_location(height: u64, index: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&height.to_be_bytes());
    b[8..].copy_from_slice(&index.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_column_families_with_default_absent() {
        assert_eq!(cf::ALL.len(), 16);
        assert!(!cf::ALL.contains(&"default"));
        assert_eq!(tx_location(1, 2), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert!(
            block_number_key(1) < block_number_key(256),
            "keys sort by height"
        );
    }
}
