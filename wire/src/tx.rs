//! The native QFC transaction, as `eth_sendRawTransaction` takes it.
//!
//! Borsh fields in order: `tx_type` u8, `chain_id` u64, `nonce` u64,
//! `to` `Option<[u8; 20]>`, `value` U256 (32 bytes LE), `data` (u32 length +
//! bytes), `gas_limit` u64, `gas_price` U256, `public_key` `[u8; 32]`,
//! `signature` `[u8; 64]`. The hash is BLAKE3 of fields 1-9; the signature is
//! Ed25519 over that 32-byte hash; the sender is the last 20 bytes of
//! BLAKE3(public key).

use crate::{blake3_hash, Address, Hash, WireError, U256};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

/// Gas of a plain transfer.
pub const TRANSFER_GAS: u64 = 21_000;
/// Base gas of a contract creation.
pub const CONTRACT_CREATE_GAS: u64 = 53_000;
/// Gas per non-zero data byte.
pub const GAS_PER_BYTE: u64 = 16;
/// Gas per zero data byte.
pub const GAS_PER_ZERO_BYTE: u64 = 4;
/// Minimum gas price accepted by qfc-node: 1 gwei.
pub const MIN_GAS_PRICE: u64 = 1_000_000_000;
/// Length of the signature, the last field of the encoding.
pub const SIGNATURE_LEN: usize = 64;

/// Transaction type: one byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum TxType {
    Transfer = 0,
    ContractCreate = 1,
    ContractCall = 2,
    Stake = 3,
    Unstake = 4,
    ValidatorRegister = 5,
    ValidatorExit = 6,
    Delegate = 7,
    Undelegate = 8,
    ClaimDelegationRewards = 9,
}

/// A native QFC transaction, field for field as qfc-node's.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    pub tx_type: TxType,
    pub chain_id: u64,
    pub nonce: u64,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Vec<u8>,
    pub gas_limit: u64,
    pub gas_price: U256,
    pub public_key: [u8; 32],
    pub signature: [u8; SIGNATURE_LEN],
}

impl Transaction {
    /// An unsigned transfer using [`TRANSFER_GAS`].
    pub fn transfer(chain_id: u64, nonce: u64, to: Address, value: U256, gas_price: U256) -> Self {
        Self {
            tx_type: TxType::Transfer,
            chain_id,
            nonce,
            to: Some(to),
            value,
            data: Vec::new(),
            gas_limit: TRANSFER_GAS,
            gas_price,
            public_key: [0; 32],
            signature: [0; SIGNATURE_LEN],
        }
    }

    /// Borsh encoding of every field.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec cannot fail")
    }

    /// `0x` + hex of [`Self::encode`], the `eth_sendRawTransaction` argument.
    pub fn encode_hex(&self) -> String {
        format!("0x{}", hex::encode(self.encode()))
    }

    /// Borsh encoding of fields 1-9 (everything but the signature).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = self.encode();
        b.truncate(b.len() - SIGNATURE_LEN);
        b
    }

    /// BLAKE3 of fields 1-9: the transaction hash qfc-node returns.
    pub fn hash(&self) -> Hash {
        blake3_hash(&self.signing_bytes())
    }

    /// Set `public_key` from `secret` and sign the hash with it.
    pub fn sign(&mut self, secret: &[u8; 32]) {
        let key = SigningKey::from_bytes(secret);
        self.public_key = key.verifying_key().to_bytes();
        self.signature = key.sign(&self.hash().0).to_bytes();
    }

    /// Builder form of [`Self::sign`].
    pub fn signed(mut self, secret: &[u8; 32]) -> Self {
        self.sign(secret);
        self
    }

    /// Verify the Ed25519 signature over the hash (every key, no bypass).
    pub fn verify(&self) -> Result<(), WireError> {
        let key = VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| WireError::PublicKey(hex::encode(self.public_key)))?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify(&self.hash().0, &sig)
            .map_err(|_| WireError::Signature(hex::encode(self.hash().0)))
    }

    /// The sender: last 20 bytes of BLAKE3(public key).
    pub fn sender(&self) -> Address {
        Address::from_public_key(&self.public_key)
    }

    /// Decode a borsh-encoded transaction (no trailing bytes allowed).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        borsh::from_slice(bytes).map_err(|source| WireError::Decode {
            what: "native transaction",
            len: bytes.len(),
            source,
        })
    }

    /// Decode `eth_sendRawTransaction` hex (the `0x` prefix is optional).
    pub fn decode_hex(s: &str) -> Result<Self, WireError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        Self::decode(&hex::decode(s)?)
    }

    /// Base gas plus data gas, as qfc-node computes it.
    pub fn intrinsic_gas(&self) -> u64 {
        let base = if self.tx_type == TxType::ContractCreate {
            CONTRACT_CREATE_GAS
        } else {
            TRANSFER_GAS
        };
        base + self
            .data
            .iter()
            .map(|&b| {
                if b == 0 {
                    GAS_PER_ZERO_BYTE
                } else {
                    GAS_PER_BYTE
                }
            })
            .sum::<u64>()
    }

    /// `gas_limit * gas_price`, or `None` on overflow.
    pub fn gas_cost(&self) -> Option<U256> {
        self.gas_price.checked_mul(U256::from_u64(self.gas_limit))
    }

    /// `value + gas_limit * gas_price`, or `None` on overflow.
    pub fn total_cost(&self) -> Option<U256> {
        self.value.checked_add(self.gas_cost()?)
    }
}

/// Address of the Ed25519 key whose secret is `secret`.
pub fn address_of_secret(secret: &[u8; 32]) -> Address {
    Address::from_public_key(&SigningKey::from_bytes(secret).verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DEV_CHAIN_ID, FAUCET_SECRET};

    fn transfer() -> Transaction {
        Transaction::transfer(
            DEV_CHAIN_ID,
            7,
            Address::from_low_u64(1),
            U256::from_u64(1000),
            U256::from_u64(MIN_GAS_PRICE),
        )
        .signed(&FAUCET_SECRET)
    }

    #[test]
    fn transfer_is_210_bytes_with_fields_in_order() {
        let tx = transfer();
        let b = tx.encode();
        assert_eq!(b.len(), 210);
        assert_eq!(b[0], 0, "tx_type Transfer");
        assert_eq!(&b[1..9], &9000u64.to_le_bytes(), "chain_id");
        assert_eq!(&b[9..17], &7u64.to_le_bytes(), "nonce");
        assert_eq!(b[17], 1, "Some(to)");
        assert_eq!(&b[18..38], &Address::from_low_u64(1).0, "to");
        assert_eq!(&b[38..70], &U256::from_u64(1000).to_le_bytes(), "value LE");
        assert_eq!(&b[70..74], &0u32.to_le_bytes(), "data length");
        assert_eq!(&b[74..82], &21_000u64.to_le_bytes(), "gas_limit");
        assert_eq!(
            &b[82..114],
            &U256::from_u64(MIN_GAS_PRICE).to_le_bytes(),
            "gas_price LE"
        );
        assert_eq!(&b[114..146], &tx.public_key, "public_key");
        assert_eq!(&b[146..210], &tx.signature, "signature");
        assert_eq!(tx.hash(), crate::blake3_hash(&b[..146]));
    }

    #[test]
    fn sign_verify_roundtrip_and_sender() {
        let tx = transfer();
        tx.verify().unwrap();
        assert_eq!(tx.sender(), address_of_secret(&FAUCET_SECRET));
        let back = Transaction::decode_hex(&tx.encode_hex()).unwrap();
        assert_eq!(back, tx);
        assert_eq!(Transaction::decode_hex(&tx.encode_hex()[2..]).unwrap(), tx);
    }

    #[test]
    fn tampered_or_foreign_signatures_fail() {
        let mut tx = transfer();
        tx.nonce += 1;
        assert!(matches!(tx.verify(), Err(WireError::Signature(_))));
        let mut tx = transfer();
        tx.signature[0] ^= 1;
        assert!(tx.verify().is_err());
        // qfc-node's 0xEE bypass must not exist here.
        let mut tx = transfer();
        tx.public_key[0] = 0xEE;
        assert!(tx.verify().is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(matches!(
            Transaction::decode_hex("0xzz"),
            Err(WireError::Hex(_))
        ));
        let hex = transfer().encode_hex();
        assert!(matches!(
            Transaction::decode_hex(&hex[..hex.len() - 2]),
            Err(WireError::Decode { .. })
        ));
        let mut b = transfer().encode();
        b.push(0);
        assert!(Transaction::decode(&b).is_err(), "trailing byte");
        b = transfer().encode();
        b[0] = 10;
        assert!(Transaction::decode(&b).is_err(), "unknown tx_type");
    }

    #[test]
    fn intrinsic_gas_counts_data() {
        let mut tx = transfer();
        tx.data = vec![0, 0, 1, 2, 0, 3];
        assert_eq!(tx.intrinsic_gas(), 21_000 + 3 * 4 + 3 * 16);
    }
}
