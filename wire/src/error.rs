//! [`WireError`]: why wire data could not be decoded or verified (a leaf:
//! every format module returns it).

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
