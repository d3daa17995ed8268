//! Blocks, headers, votes, inference proofs and receipts, in qfc-node's
//! borsh layout. The block hash is BLAKE3 of the borsh header; transaction
//! and receipt roots are BLAKE3 Merkle roots ([`merkle_root`]).

use crate::{blake3_hash, Address, Hash, Transaction, WireError};
use borsh::{BorshDeserialize, BorshSerialize};

/// Block version of every qfc-node block.
pub const BLOCK_VERSION: u32 = 1;
/// Default block gas limit.
pub const DEFAULT_BLOCK_GAS_LIMIT: u64 = 30_000_000;

/// VRF proof for producer selection: 32-byte output, 64-byte proof.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VrfProof {
    pub output: [u8; 32],
    pub proof: [u8; 64],
}

impl Default for VrfProof {
    fn default() -> Self {
        Self {
            output: [0; 32],
            proof: [0; 64],
        }
    }
}

/// Block header; its borsh encoding is what the block hash covers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub version: u32,
    pub number: u64,
    pub parent_hash: Hash,
    pub state_root: Hash,
    pub transactions_root: Hash,
    pub receipts_root: Hash,
    pub proofs_root: Hash,
    pub producer: Address,
    pub contribution_score: u64,
    pub vrf_proof: VrfProof,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    pub gas_limit: u64,
    pub gas_used: u64,
    pub extra_data: Vec<u8>,
}

impl Default for BlockHeader {
    fn default() -> Self {
        Self {
            version: BLOCK_VERSION,
            number: 0,
            parent_hash: Hash::ZERO,
            state_root: Hash::ZERO,
            transactions_root: Hash::ZERO,
            receipts_root: Hash::ZERO,
            proofs_root: Hash::ZERO,
            producer: Address::ZERO,
            contribution_score: 0,
            vrf_proof: VrfProof::default(),
            timestamp: 0,
            gas_limit: DEFAULT_BLOCK_GAS_LIMIT,
            gas_used: 0,
            extra_data: Vec::new(),
        }
    }
}

impl BlockHeader {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    /// BLAKE3 of the borsh header: the block hash.
    pub fn hash(&self) -> Hash {
        blake3_hash(&self.encode())
    }
}

/// Vote decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum VoteDecision {
    Accept,
    Reject,
    Abstain,
}

/// Why a vote rejects a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RejectReason {
    InvalidProducer,
    InvalidVRF,
    InvalidStateTransition,
    InvalidSignature,
    InvalidTimestamp,
    BlockTooLarge,
    Other(String),
}

/// A validator's vote on a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub block_hash: Hash,
    pub block_height: u64,
    pub voter: Address,
    pub decision: VoteDecision,
    pub reject_reason: Option<RejectReason>,
    pub timestamp: u64,
    pub signature: [u8; 64],
}

/// Inference backend (v2.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum BackendType {
    Cuda,
    Metal,
    Cpu,
}

/// Inference model identifier (v2.0).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModelId {
    pub name: String,
    pub version: String,
}

/// Inference task type (v2.0).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ComputeTaskType {
    TextGeneration {
        model_id: ModelId,
        prompt_hash: Hash,
        max_tokens: u32,
        temperature_fp: u32,
        seed: u64,
    },
    ImageClassification {
        model_id: ModelId,
        input_hash: Hash,
    },
    Embedding {
        model_id: ModelId,
        input_hash: Hash,
    },
    OnnxInference {
        model_hash: Hash,
        input_hash: Hash,
    },
}

/// Inference proof carried in a block (v2.0).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct InferenceProof {
    pub validator: Address,
    pub epoch: u64,
    pub task_type: ComputeTaskType,
    pub input_hash: Hash,
    pub output_hash: Hash,
    pub execution_time_ms: u64,
    pub flops_estimated: u64,
    pub backend: BackendType,
    pub timestamp: u64,
    pub signature: [u8; 64],
}

/// A complete block: header, transactions, votes, inference proofs, signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Transaction>,
    pub votes: Vec<Vote>,
    pub inference_proofs: Vec<InferenceProof>,
    pub signature: [u8; 64],
}

impl Default for Block {
    fn default() -> Self {
        Self {
            header: BlockHeader::default(),
            transactions: Vec::new(),
            votes: Vec::new(),
            inference_proofs: Vec::new(),
            signature: [0; 64],
        }
    }
}

impl Block {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        borsh::from_slice(bytes).map_err(|source| WireError::Decode {
            what: "block",
            len: bytes.len(),
            source,
        })
    }

    /// The block hash: BLAKE3 of the borsh header.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The body as qfc-node stores it apart from the header.
    pub fn body(&self) -> BlockBody {
        BlockBody {
            transactions: self.transactions.clone(),
            votes: self.votes.clone(),
            inference_proofs: self.inference_proofs.clone(),
            signature: self.signature,
        }
    }

    /// Reassemble a block from a stored header and body.
    pub fn from_parts(header: BlockHeader, body: BlockBody) -> Self {
        Self {
            header,
            transactions: body.transactions,
            votes: body.votes,
            inference_proofs: body.inference_proofs,
            signature: body.signature,
        }
    }
}

/// Block body (qfc-node's `block_bodies` column family value).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockBody {
    pub transactions: Vec<Transaction>,
    pub votes: Vec<Vote>,
    pub inference_proofs: Vec<InferenceProof>,
    pub signature: [u8; 64],
}

/// Receipt execution status.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ReceiptStatus {
    Success,
    Failure(String),
    OutOfGas,
    Reverted,
}

/// An event log.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<Hash>,
    pub data: Vec<u8>,
}

/// A transaction receipt (qfc-node's `receipts` column family value).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    pub tx_hash: Hash,
    pub tx_index: u32,
    pub status: ReceiptStatus,
    pub cumulative_gas_used: u64,
    pub gas_used: u64,
    pub logs: Vec<Log>,
    /// 2048-bit log bloom.
    pub logs_bloom: [u8; 256],
    pub contract_address: Option<Address>,
}

impl Receipt {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        borsh::from_slice(bytes).map_err(|source| WireError::Decode {
            what: "receipt",
            len: bytes.len(),
            source,
        })
    }
}

/// BLAKE3 Merkle root as qfc-node computes it: zero for none, the leaf for
/// one, pairs hashed level by level, an odd last node hashed with itself.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| {
                let mut h = blake3::Hasher::new();
                h.update(&c[0].0);
                h.update(&c.get(1).unwrap_or(&c[0]).0);
                Hash(*h.finalize().as_bytes())
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_block_is_400_bytes() {
        let b = Block::default();
        let bytes = b.encode();
        assert_eq!(bytes.len(), 400);
        // header 324 = 4+8+5*32+20+8+96+8+8+8+4, then 3 empty vecs and a 64-byte signature
        assert_eq!(b.header.encode().len(), 324);
        assert_eq!(Block::decode(&bytes).unwrap(), b);
        assert_eq!(b.hash(), crate::blake3_hash(&bytes[..324]));
    }

    #[test]
    fn header_fields_in_order() {
        let h = BlockHeader {
            number: 0x0102,
            timestamp: 5,
            extra_data: vec![9],
            ..Default::default()
        };
        let b = h.encode();
        assert_eq!(&b[0..4], &1u32.to_le_bytes());
        assert_eq!(&b[4..12], &0x0102u64.to_le_bytes());
        // version, number, 5 roots, producer, score, vrf -> timestamp at 4+8+160+20+8+96
        assert_eq!(&b[296..304], &5u64.to_le_bytes());
        assert_eq!(&b[304..312], &DEFAULT_BLOCK_GAS_LIMIT.to_le_bytes());
        assert_eq!(&b[320..], &[1, 0, 0, 0, 9]);
    }

    #[test]
    fn merkle_root_known_answers() {
        let a = Hash([1; 32]);
        let b = Hash([2; 32]);
        let c = Hash([3; 32]);
        assert_eq!(merkle_root(&[]), Hash::ZERO);
        assert_eq!(merkle_root(&[a]), a);
        let ab = crate::blake3_hash(&[a.0, b.0].concat());
        assert_eq!(merkle_root(&[a, b]), ab);
        let cc = crate::blake3_hash(&[c.0, c.0].concat());
        assert_eq!(
            merkle_root(&[a, b, c]),
            crate::blake3_hash(&[ab.0, cc.0].concat())
        );
    }

    #[test]
    fn receipt_roundtrip() {
        let r = Receipt {
            tx_hash: Hash([7; 32]),
            tx_index: 3,
            status: ReceiptStatus::Success,
            cumulative_gas_used: 42_000,
            gas_used: 21_000,
            logs: vec![],
            logs_bloom: [0; 256],
            contract_address: None,
        };
        assert_eq!(Receipt::decode(&r.encode()).unwrap(), r);
    }
}
