//! `/qfc/sync/1`: request-response messages and their framing.
//!
//! Each message is a u32 **big-endian** length, then a borsh body (lengths
//! inside borsh are u32 little-endian). Requests are capped at 1 MiB and
//! responses at 10 MiB. The `Debug` forms are derived like qfc-node's, so a
//! node that logs responses with `{:?}` prints block bytes number by number.

use crate::{Hash, WireError};
use borsh::{BorshDeserialize, BorshSerialize};
use std::io::{Read, Write};

/// The libp2p protocol name.
pub const SYNC_PROTOCOL: &str = "/qfc/sync/1";
/// Largest request body qfc-node reads.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Largest response body qfc-node reads.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// A range returns blocks `start..=min(end, start + MAX_RANGE_SPAN)`: 33 at most.
pub const MAX_RANGE_SPAN: u64 = 32;
/// Request timeout of qfc-node's request-response behaviour.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// A sync request (one-byte borsh tag 0-3).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncRequest {
    GetBlockByHash(Hash),
    GetBlockByNumber(u64),
    GetBlockRange { start: u64, end: u64 },
    GetStatus,
}

/// A sync response (one-byte borsh tag 0-4); block payloads are borsh `Block`s.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    Block(Vec<u8>),
    Blocks(Vec<Vec<u8>>),
    NotFound,
    Status {
        block_number: u64,
        block_hash: Hash,
        genesis_hash: Hash,
    },
    Error(String),
}

/// Which side of the protocol a frame belongs to (decides the cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request,
    Response,
}

impl FrameKind {
    pub fn cap(self) -> usize {
        match self {
            FrameKind::Request => MAX_REQUEST_BYTES,
            FrameKind::Response => MAX_RESPONSE_BYTES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FrameKind::Request => "request",
            FrameKind::Response => "response",
        }
    }
}

/// Reads one frame (length prefix checked against the cap of `kind`) and
/// returns its body: the read half of the `/qfc/sync/1` codec, shared by the
/// node's server side and the load generator's client side.
#[cfg(feature = "futures-io")]
pub async fn read_frame_async<T: futures::AsyncRead + Unpin + Send>(
    io: &mut T,
    kind: FrameKind,
) -> std::io::Result<Vec<u8>> {
    use futures::AsyncReadExt;
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = frame_len(prefix, kind)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Check a 4-byte big-endian length prefix against the cap of `kind`.
pub fn frame_len(prefix: [u8; 4], kind: FrameKind) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > kind.cap() {
        return Err(WireError::FrameTooLarge {
            kind: kind.name(),
            len,
            cap: kind.cap(),
        });
    }
    Ok(len)
}

/// Prefix `body` with its u32 big-endian length.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        borsh::from_slice(bytes).map_err(|source| WireError::Decode {
            what: "sync request",
            len: bytes.len(),
            source,
        })
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        borsh::from_slice(bytes).map_err(|source| WireError::Decode {
            what: "sync response",
            len: bytes.len(),
            source,
        })
    }
}

/// Read one framed body from a blocking reader (tests and simple clients).
pub fn read_frame(r: &mut impl Read, kind: FrameKind) -> Result<Vec<u8>, WireError> {
    let io = |source| WireError::Decode {
        what: "frame",
        len: 0,
        source,
    };
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix).map_err(io)?;
    let len = frame_len(prefix, kind)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(io)?;
    Ok(body)
}

/// Write one framed body to a blocking writer.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&frame(body))?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Block;

    #[test]
    fn request_tags_and_layout() {
        assert_eq!(
            SyncRequest::GetBlockByHash(Hash([5; 32])).encode(),
            [&[0u8][..], &[5; 32]].concat()
        );
        assert_eq!(
            SyncRequest::GetBlockByNumber(7).encode(),
            [&[1u8][..], &7u64.to_le_bytes()].concat()
        );
        assert_eq!(
            SyncRequest::GetBlockRange { start: 1, end: 40 }.encode(),
            [&[2u8][..], &1u64.to_le_bytes(), &40u64.to_le_bytes()].concat()
        );
        assert_eq!(SyncRequest::GetStatus.encode(), vec![3]);
        assert!(SyncRequest::decode(&[4]).is_err(), "unknown tag");
    }

    #[test]
    fn response_tags_and_layout() {
        assert_eq!(
            SyncResponse::Block(vec![9, 8]).encode(),
            vec![0, 2, 0, 0, 0, 9, 8]
        );
        assert_eq!(
            SyncResponse::Blocks(vec![vec![1]]).encode(),
            vec![1, 1, 0, 0, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(SyncResponse::NotFound.encode(), vec![2]);
        let st = SyncResponse::Status {
            block_number: 3,
            block_hash: Hash([1; 32]),
            genesis_hash: Hash([2; 32]),
        };
        let b = st.encode();
        assert_eq!(b.len(), 1 + 8 + 32 + 32);
        assert_eq!(b[0], 3);
        assert_eq!(
            SyncResponse::Error("x".into()).encode(),
            vec![4, 1, 0, 0, 0, b'x']
        );
        assert_eq!(SyncResponse::decode(&b).unwrap(), st);
    }

    #[test]
    fn debug_prints_block_bytes_number_by_number() {
        let r = SyncResponse::Block(vec![1, 2, 3]);
        assert_eq!(format!("{r:?}"), "Block([1, 2, 3])");
        let st = SyncResponse::Status {
            block_number: 3,
            block_hash: Hash([0xaa; 32]),
            genesis_hash: Hash::ZERO,
        };
        assert_eq!(
            format!("{st:?}"),
            "Status { block_number: 3, block_hash: Hash(0xaaaaaaaaaaaaaaaa), genesis_hash: Hash(0x0000000000000000) }"
        );
        let full = format!("{:?}", SyncResponse::Block(Block::default().encode()));
        assert_eq!(full.matches(", ").count(), 399, "400 numbers");
    }

    #[test]
    fn framing_is_big_endian_with_caps() {
        assert_eq!(frame(&[7, 7]), vec![0, 0, 0, 2, 7, 7]);
        assert_eq!(
            frame_len([0, 0x10, 0, 0], FrameKind::Request).unwrap(),
            MAX_REQUEST_BYTES
        );
        assert!(matches!(
            frame_len([0, 0x10, 0, 1], FrameKind::Request),
            Err(WireError::FrameTooLarge { len: 1_048_577, .. })
        ));
        assert!(frame_len([0, 0x10, 0, 1], FrameKind::Response).is_ok());
        assert!(frame_len([0, 0xa0, 0, 1], FrameKind::Response).is_err());
        let mut buf = Vec::new();
        write_frame(&mut buf, &SyncRequest::GetStatus.encode()).unwrap();
        let body = read_frame(&mut buf.as_slice(), FrameKind::Request).unwrap();
        assert_eq!(SyncRequest::decode(&body).unwrap(), SyncRequest::GetStatus);
    }
}
