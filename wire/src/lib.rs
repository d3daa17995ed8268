//! QFC wire formats, byte for byte as qfc-node (qfc-network/qfc-core).
//!
//! - [`primitives`]: `Hash`, `Address`, `U256` (32 bytes little-endian in
//!   borsh) and their qfc-node `Debug` forms.
//! - [`tx`]: the native transaction (`eth_sendRawTransaction` input): borsh
//!   fields, BLAKE3 hash of fields 1-9, Ed25519 signature, sender address.
//! - [`block`]: `Block`, `BlockHeader`, `VrfProof`, votes, receipts; block
//!   hash is BLAKE3 of the borsh header.
//! - [`sync`]: `/qfc/sync/1` requests and responses and their 4-byte
//!   big-endian length framing.
//! - [`schema`]: qfc-node's RocksDB column family names and metadata keys.
//! - [`dev`]: dev-network constants (chain id, faucet and validator keys);
//!   [`genesis`]: the funded accounts and the genesis block.
//!
//! Pure data and crypto: no async runtime, no networking.

pub mod block;
pub mod dev;
mod error;
pub mod genesis;
pub mod primitives;
pub mod schema;
pub mod sync;
pub mod tx;

pub use block::{Block, BlockHeader, Receipt, ReceiptStatus, VrfProof};
pub use error::WireError;
pub use primitives::{blake3_hash, Address, Hash, U256};
pub use sync::{SyncRequest, SyncResponse};
pub use tx::{Transaction, TxType};
