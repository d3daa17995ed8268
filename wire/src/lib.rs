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
//! - [`genesis`]: dev-genesis constants (chain id, faucet and validator keys,
//!   funded accounts).
//!
//! Pure data and crypto: no async runtime, no networking.

pub mod block;
pub mod genesis;
pub mod primitives;
pub mod sync;
pub mod tx;

pub use block::{Block, BlockHeader, Receipt, ReceiptStatus, VrfProof};
pub use primitives::{Address, Hash, U256};
pub use sync::{SyncRequest, SyncResponse};
pub use tx::{Transaction, TxType};

/// Errors decoding or verifying wire data.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The input is not hexadecimal.
    #[error(
        "raw transaction is not valid hex ({0}): send 0x followed by an even number of hex digits"
    )]
    Hex(#[from] hex::FromHexError),
    /// The bytes are not a borsh encoding of the expected type.
    #[error("cannot decode {what} from {len} bytes: {source}")]
    Decode {
        what: &'static str,
        len: usize,
        #[source]
        source: std::io::Error,
    },
    /// The public key is not a valid Ed25519 point.
    #[error("invalid Ed25519 public key 0x{0}: sign with a valid Ed25519 key")]
    PublicKey(String),
    /// The signature does not verify over the transaction hash.
    #[error("invalid signature for transaction 0x{0}: sign the BLAKE3 hash of fields 1-9 with the key in public_key")]
    Signature(String),
    /// A frame length prefix exceeds the protocol cap.
    #[error("{kind} frame of {len} bytes exceeds the {cap}-byte cap of /qfc/sync/1")]
    FrameTooLarge {
        kind: &'static str,
        len: usize,
        cap: usize,
    },
}

/// BLAKE3 of `data`, as a [`Hash`] (the hash function of every QFC structure).
pub fn blake3_hash(data: &[u8]) -> Hash {
    Hash(*blake3::hash(data).as_bytes())
}
