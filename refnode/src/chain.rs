//! Chain state of the reference node: accounts, mempool, and block
//! production (hash transactions, Merkle roots and header with BLAKE3, then
//! commit everything as one RocksDB `WriteBatch`).
//!
//! Only native `Transfer` transactions are executed. State is a flat
//! account map (qfc-node uses a Merkle Patricia trie); the state root is a
//! BLAKE3 Merkle root over the sorted accounts.

use crate::storage::{cf, meta, Storage, StorageError};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use wire::block::{merkle_root, BlockBody, BLOCK_VERSION, DEFAULT_BLOCK_GAS_LIMIT};
use wire::tx::{TxType, MIN_GAS_PRICE};
use wire::{
    blake3_hash, Address, Block, BlockHeader, Hash, Receipt, ReceiptStatus, Transaction, VrfProof,
    U256,
};

/// Pool capacity, as qfc-node's mempool.
pub const MEMPOOL_MAX: usize = 10_000;
/// Pending transactions per account, as qfc-node's mempool.
pub const MEMPOOL_MAX_PER_ACCOUNT: usize = 64;
/// Transactions per block, as qfc-node.
pub const MAX_TXS_PER_BLOCK: usize = 10_000;

/// An account in the `state` column family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    pub nonce: u64,
    pub balance: U256,
}

/// Why a transaction was refused; the messages follow qfc-node's mempool.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TxError {
    #[error("Chain ID mismatch: expected {expected}, got {got}")]
    ChainId { expected: u64, got: u64 },
    #[error("Unsupported transaction type {0:?}: qfc-refnode executes only Transfer")]
    Unsupported(TxType),
    #[error("Invalid signature: {0}")]
    Signature(String),
    #[error("Gas price too low: minimum {minimum}, provided {provided}")]
    GasPrice { minimum: u64, provided: U256 },
    #[error("Intrinsic gas too low: need {need}, gas limit {limit}")]
    IntrinsicGas { need: u64, limit: u64 },
    #[error("Invalid nonce: expected {expected}, got {actual}")]
    Nonce { expected: u64, actual: u64 },
    #[error("Insufficient balance: have {have}, need {need}")]
    Balance { have: U256, need: U256 },
    #[error("Transaction already known")]
    Known,
    #[error("Pool is full")]
    PoolFull,
    #[error("Account pool is full")]
    AccountFull,
}

/// Errors of the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        what: &'static str,
        source: wire::WireError,
    },
    #[error("chain id mismatch: the datadir holds chain {stored}, --chain-id is {wanted}; use another --datadir")]
    ChainId { stored: u64, wanted: u64 },
}

/// Where a transaction landed.
#[derive(Clone, Debug)]
pub struct TxLocation {
    pub tx: Transaction,
    pub receipt: Receipt,
    pub block_number: u64,
    pub block_hash: Hash,
}

struct State {
    head: BlockHeader,
    head_hash: Hash,
    accounts: HashMap<Address, Account>,
    pool: BTreeMap<Address, BTreeMap<u64, (Hash, Transaction)>>,
    pool_hashes: HashSet<Hash>,
    pool_len: usize,
    tx_total: u64,
}

/// The chain: storage plus in-memory head, accounts and mempool.
pub struct Chain {
    storage: Storage,
    chain_id: u64,
    genesis_hash: Hash,
    key: SigningKey,
    producer: Address,
    synced_commit: bool,
    state: Mutex<State>,
    /// Serializes block production (the state lock is released during commit).
    produce: Mutex<()>,
}

fn num_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn account_leaf(a: &Address, acc: &Account) -> Hash {
    let mut b = a.0.to_vec();
    b.extend(borsh::to_vec(acc).expect("borsh into a Vec cannot fail"));
    blake3_hash(&b)
}

impl Chain {
    /// Open the chain on `storage`, writing dev genesis on first use.
    pub fn open(
        storage: Storage,
        chain_id: u64,
        validator_secret: [u8; 32],
        synced_commit: bool,
    ) -> Result<Self, ChainError> {
        let key = SigningKey::from_bytes(&validator_secret);
        let producer = Address::from_public_key(&key.verifying_key().to_bytes());
        let genesis = wire::genesis::genesis_block();
        let genesis_hash = genesis.hash();
        let mut accounts = HashMap::new();
        let head = match storage.get(cf::METADATA, meta::LATEST_BLOCK_NUMBER)? {
            None => {
                let mut b = storage.batch();
                for (a, bal) in wire::genesis::funded_accounts() {
                    let acc = Account {
                        nonce: 0,
                        balance: bal,
                    };
                    b.put(cf::STATE, &a.0, &borsh::to_vec(&acc).expect("borsh"))?;
                    accounts.insert(a, acc);
                }
                b.put(cf::BLOCK_HEADERS, &num_key(0), &genesis.header.encode())?;
                b.put(
                    cf::BLOCK_BODIES,
                    &num_key(0),
                    &borsh::to_vec(&genesis.body()).expect("borsh"),
                )?;
                b.put(cf::BLOCK_HASH_INDEX, &genesis_hash.0, &num_key(0))?;
                b.put(cf::METADATA, meta::LATEST_BLOCK_NUMBER, &0u64.to_le_bytes())?;
                b.put(cf::METADATA, meta::GENESIS_HASH, &genesis_hash.0)?;
                b.put(cf::METADATA, meta::CHAIN_ID, &chain_id.to_le_bytes())?;
                b.put(cf::METADATA, meta::DB_VERSION, &1u32.to_le_bytes())?;
                storage.commit(b, true)?;
                genesis.header
            }
            Some(v) => {
                if let Some(c) = storage.get(cf::METADATA, meta::CHAIN_ID)? {
                    let stored = u64::from_le_bytes(c.as_slice().try_into().unwrap_or_default());
                    if stored != chain_id {
                        return Err(ChainError::ChainId {
                            stored,
                            wanted: chain_id,
                        });
                    }
                }
                let n = u64::from_le_bytes(v.as_slice().try_into().unwrap_or_default());
                for (k, v) in storage.scan(cf::STATE)? {
                    if let (Some(a), Ok(acc)) =
                        (Address::from_slice(&k), Account::try_from_slice(&v))
                    {
                        accounts.insert(a, acc);
                    }
                }
                let raw = storage
                    .get(cf::BLOCK_HEADERS, &num_key(n))?
                    .unwrap_or_default();
                BlockHeader::try_from_slice(&raw).map_err(|source| ChainError::Corrupt {
                    what: "head header",
                    source: wire::WireError::Decode {
                        what: "block header",
                        len: raw.len(),
                        source,
                    },
                })?
            }
        };
        let head_hash = head.hash();
        Ok(Self {
            storage,
            chain_id,
            genesis_hash,
            key,
            producer,
            synced_commit,
            state: Mutex::new(State {
                head,
                head_hash,
                accounts,
                pool: BTreeMap::new(),
                pool_hashes: HashSet::new(),
                pool_len: 0,
                tx_total: 0,
            }),
            produce: Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub fn producer(&self) -> Address {
        self.producer
    }

    /// Head number and hash.
    pub fn head(&self) -> (u64, Hash) {
        let s = self.lock();
        (s.head.number, s.head_hash)
    }

    pub fn mempool_len(&self) -> usize {
        self.lock().pool_len
    }

    /// Transactions included since this process started.
    pub fn tx_total(&self) -> u64 {
        self.lock().tx_total
    }

    pub fn account(&self, a: &Address) -> Account {
        self.lock().accounts.get(a).copied().unwrap_or_default()
    }

    /// Next nonce counting pending transactions of `a` in the pool.
    pub fn pending_nonce(&self, a: &Address) -> u64 {
        let s = self.lock();
        let mut n = s.accounts.get(a).map_or(0, |x| x.nonce);
        if let Some(q) = s.pool.get(a) {
            while q.contains_key(&n) {
                n += 1;
            }
        }
        n
    }

    /// Validate and admit a transaction to the mempool; every signature is verified.
    pub fn add_tx(&self, tx: Transaction) -> Result<Hash, TxError> {
        if tx.chain_id != self.chain_id {
            return Err(TxError::ChainId {
                expected: self.chain_id,
                got: tx.chain_id,
            });
        }
        if tx.tx_type != TxType::Transfer || tx.to.is_none() {
            return Err(TxError::Unsupported(tx.tx_type));
        }
        tx.verify().map_err(|e| TxError::Signature(e.to_string()))?;
        if tx.gas_price < U256::from_u64(MIN_GAS_PRICE) {
            return Err(TxError::GasPrice {
                minimum: MIN_GAS_PRICE,
                provided: tx.gas_price,
            });
        }
        if tx.gas_limit < tx.intrinsic_gas() {
            return Err(TxError::IntrinsicGas {
                need: tx.intrinsic_gas(),
                limit: tx.gas_limit,
            });
        }
        let hash = tx.hash();
        let sender = tx.sender();
        let mut s = self.lock();
        let acc = s.accounts.get(&sender).copied().unwrap_or_default();
        if tx.nonce < acc.nonce {
            return Err(TxError::Nonce {
                expected: acc.nonce,
                actual: tx.nonce,
            });
        }
        let need = tx.total_cost().unwrap_or(U256::MAX);
        if acc.balance < need {
            return Err(TxError::Balance {
                have: acc.balance,
                need,
            });
        }
        if s.pool_hashes.contains(&hash) {
            return Err(TxError::Known);
        }
        if s.pool_len >= MEMPOOL_MAX {
            return Err(TxError::PoolFull);
        }
        let q = s.pool.entry(sender).or_default();
        if q.len() >= MEMPOOL_MAX_PER_ACCOUNT && !q.contains_key(&tx.nonce) {
            return Err(TxError::AccountFull);
        }
        let replaced = q.insert(tx.nonce, (hash, tx));
        if let Some((old, _)) = replaced {
            s.pool_hashes.remove(&old);
        } else {
            s.pool_len += 1;
        }
        s.pool_hashes.insert(hash);
        Ok(hash)
    }

    /// Produce, commit (one WriteBatch) and return the next block.
    pub fn produce_block(&self, timestamp_ms: u64) -> Result<Block, ChainError> {
        let _one_producer = self.produce.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.lock();
        // Pick executable transactions: consecutive nonces per sender.
        let mut txs = Vec::new();
        let mut receipts = Vec::new();
        let mut changed: BTreeMap<Address, Account> = BTreeMap::new();
        let mut gas_used = 0u64;
        let senders: Vec<Address> = s.pool.keys().copied().collect();
        'senders: for sender in senders {
            loop {
                if txs.len() >= MAX_TXS_PER_BLOCK
                    || gas_used + wire::tx::TRANSFER_GAS > DEFAULT_BLOCK_GAS_LIMIT
                {
                    break 'senders;
                }
                let mut from = changed
                    .get(&sender)
                    .copied()
                    .unwrap_or_else(|| s.accounts.get(&sender).copied().unwrap_or_default());
                let Some((hash, tx)) = s
                    .pool
                    .get(&sender)
                    .and_then(|q| q.get(&from.nonce))
                    .cloned()
                else {
                    break;
                };
                let gas = tx.intrinsic_gas();
                let fee = tx
                    .gas_price
                    .checked_mul(U256::from_u64(gas))
                    .unwrap_or(U256::MAX);
                let Some(left) = from
                    .balance
                    .checked_sub(tx.value.checked_add(fee).unwrap_or(U256::MAX))
                else {
                    break;
                };
                from.balance = left;
                from.nonce += 1;
                changed.insert(sender, from);
                let to_addr = tx.to.expect("admitted transfers have a recipient");
                for (addr, credit) in [(to_addr, tx.value), (self.producer, fee)] {
                    let mut acc = changed
                        .get(&addr)
                        .copied()
                        .unwrap_or_else(|| s.accounts.get(&addr).copied().unwrap_or_default());
                    acc.balance = acc.balance.checked_add(credit).unwrap_or(U256::MAX);
                    changed.insert(addr, acc);
                }
                gas_used += gas;
                receipts.push(Receipt {
                    tx_hash: hash,
                    tx_index: txs.len() as u32,
                    status: ReceiptStatus::Success,
                    cumulative_gas_used: gas_used,
                    gas_used: gas,
                    logs: Vec::new(),
                    logs_bloom: [0; 256],
                    contract_address: None,
                });
                txs.push((hash, tx));
            }
        }
        // State root over every account after this block.
        let mut leaves: Vec<(Address, Account)> = s
            .accounts
            .iter()
            .map(|(a, acc)| (*a, changed.get(a).copied().unwrap_or(*acc)))
            .collect();
        leaves.extend(
            changed
                .iter()
                .filter(|(a, _)| !s.accounts.contains_key(a))
                .map(|(a, acc)| (*a, *acc)),
        );
        leaves.sort_by_key(|(a, _)| *a);
        let state_root = merkle_root(
            &leaves
                .iter()
                .map(|(a, acc)| account_leaf(a, acc))
                .collect::<Vec<_>>(),
        );
        let tx_hashes: Vec<Hash> = txs.iter().map(|(h, _)| *h).collect();
        let receipt_hashes: Vec<Hash> = receipts.iter().map(|r| blake3_hash(&r.encode())).collect();
        let number = s.head.number + 1;
        let vrf_output =
            blake3_hash(&[&self.key.verifying_key().to_bytes()[..], &s.head_hash.0].concat());
        let header = BlockHeader {
            version: BLOCK_VERSION,
            number,
            parent_hash: s.head_hash,
            state_root,
            transactions_root: merkle_root(&tx_hashes),
            receipts_root: merkle_root(&receipt_hashes),
            proofs_root: Hash::ZERO,
            producer: self.producer,
            contribution_score: 0,
            vrf_proof: VrfProof {
                output: vrf_output.0,
                proof: self.key.sign(&s.head_hash.0).to_bytes(),
            },
            timestamp: timestamp_ms,
            gas_limit: DEFAULT_BLOCK_GAS_LIMIT,
            gas_used,
            extra_data: Vec::new(),
        };
        let hash = header.hash();
        let block = Block {
            signature: self.key.sign(&hash.0).to_bytes(),
            header,
            transactions: txs.iter().map(|(_, t)| t.clone()).collect(),
            votes: Vec::new(),
            inference_proofs: Vec::new(),
        };
        // One WriteBatch across the column families.
        let mut b = self.storage.batch();
        b.put(cf::BLOCK_HEADERS, &num_key(number), &block.header.encode())?;
        let body: BlockBody = block.body();
        b.put(
            cf::BLOCK_BODIES,
            &num_key(number),
            &borsh::to_vec(&body).expect("borsh"),
        )?;
        b.put(cf::BLOCK_HASH_INDEX, &hash.0, &num_key(number))?;
        for (i, ((h, tx), r)) in txs.iter().zip(&receipts).enumerate() {
            b.put(cf::TRANSACTIONS, &h.0, &tx.encode())?;
            let mut loc = num_key(number).to_vec();
            loc.extend((i as u32).to_be_bytes());
            b.put(cf::TX_INDEX, &h.0, &loc)?;
            b.put(cf::RECEIPTS, &h.0, &r.encode())?;
        }
        for (a, acc) in &changed {
            b.put(cf::STATE, &a.0, &borsh::to_vec(acc).expect("borsh"))?;
        }
        b.put(
            cf::METADATA,
            meta::LATEST_BLOCK_NUMBER,
            &number.to_le_bytes(),
        )?;
        b.put(cf::METADATA, meta::LATEST_STATE_ROOT, &state_root.0)?;
        // Commit without holding the state lock, so RPC calls (admission,
        // reads) are not serialized behind the WAL fdatasync.
        drop(s);
        self.storage.commit(b, self.synced_commit)?;
        let mut s = self.lock();
        // Apply to memory only after the commit succeeded.
        for (a, acc) in changed {
            s.accounts.insert(a, acc);
        }
        for (_, tx) in &txs {
            let sender = tx.sender();
            // Remove whatever sits at that nonce now (it may have been replaced meanwhile).
            if let Some((hq, _)) = s.pool.get_mut(&sender).and_then(|q| q.remove(&tx.nonce)) {
                s.pool_hashes.remove(&hq);
                s.pool_len -= 1;
            }
        }
        // Drop stale entries whose nonce is now below the account nonce.
        let State {
            pool,
            accounts,
            pool_hashes,
            pool_len,
            ..
        } = &mut *s;
        pool.retain(|a, q| {
            let n = accounts.get(a).map_or(0, |x| x.nonce);
            q.retain(|nonce, (h, _)| {
                let keep = *nonce >= n;
                if !keep {
                    pool_hashes.remove(h);
                    *pool_len -= 1;
                }
                keep
            });
            !q.is_empty()
        });
        s.tx_total += txs.len() as u64;
        s.head = block.header.clone();
        s.head_hash = hash;
        Ok(block)
    }

    fn header_at(&self, n: u64) -> Result<Option<BlockHeader>, ChainError> {
        self.storage
            .get(cf::BLOCK_HEADERS, &num_key(n))?
            .map(|raw| {
                BlockHeader::try_from_slice(&raw).map_err(|source| ChainError::Corrupt {
                    what: "header",
                    source: wire::WireError::Decode {
                        what: "block header",
                        len: raw.len(),
                        source,
                    },
                })
            })
            .transpose()
    }

    /// The block at height `n`, as stored.
    pub fn block_by_number(&self, n: u64) -> Result<Option<Block>, ChainError> {
        let Some(header) = self.header_at(n)? else {
            return Ok(None);
        };
        let raw = self
            .storage
            .get(cf::BLOCK_BODIES, &num_key(n))?
            .unwrap_or_default();
        let body = BlockBody::try_from_slice(&raw).map_err(|source| ChainError::Corrupt {
            what: "body",
            source: wire::WireError::Decode {
                what: "block body",
                len: raw.len(),
                source,
            },
        })?;
        Ok(Some(Block::from_parts(header, body)))
    }

    /// The height of the block with hash `h`.
    pub fn number_of(&self, h: &Hash) -> Result<Option<u64>, ChainError> {
        Ok(self
            .storage
            .get(cf::BLOCK_HASH_INDEX, &h.0)?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes)))
    }

    pub fn block_by_hash(&self, h: &Hash) -> Result<Option<Block>, ChainError> {
        match self.number_of(h)? {
            Some(n) => self.block_by_number(n),
            None => Ok(None),
        }
    }

    /// A committed transaction with its receipt and block.
    pub fn tx_location(&self, h: &Hash) -> Result<Option<TxLocation>, ChainError> {
        let (Some(loc), Some(raw_tx), Some(raw_r)) = (
            self.storage.get(cf::TX_INDEX, &h.0)?,
            self.storage.get(cf::TRANSACTIONS, &h.0)?,
            self.storage.get(cf::RECEIPTS, &h.0)?,
        ) else {
            return Ok(None);
        };
        let corrupt = |what, source| ChainError::Corrupt { what, source };
        let tx = Transaction::decode(&raw_tx).map_err(|e| corrupt("transaction", e))?;
        let receipt = Receipt::decode(&raw_r).map_err(|e| corrupt("receipt", e))?;
        let block_number = loc
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or_default();
        let block_hash = self
            .header_at(block_number)?
            .map(|h| h.hash())
            .unwrap_or_default();
        Ok(Some(TxLocation {
            tx,
            receipt,
            block_number,
            block_hash,
        }))
    }

    /// A pending transaction in the mempool.
    pub fn pending_tx(&self, h: &Hash) -> Option<Transaction> {
        let s = self.lock();
        if !s.pool_hashes.contains(h) {
            return None;
        }
        s.pool
            .values()
            .flat_map(|q| q.values())
            .find(|(x, _)| x == h)
            .map(|(_, t)| t.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::genesis::{faucet_address, DEV_CHAIN_ID, DEV_VALIDATOR_SECRET, FAUCET_SECRET};

    fn chain(dir: &std::path::Path) -> Chain {
        Chain::open(
            Storage::open(dir, false).unwrap(),
            DEV_CHAIN_ID,
            DEV_VALIDATOR_SECRET,
            false,
        )
        .unwrap()
    }

    fn transfer(nonce: u64, value: u64) -> Transaction {
        Transaction::transfer(
            DEV_CHAIN_ID,
            nonce,
            Address::from_low_u64(0x77),
            U256::from_u64(value),
            U256::from_u64(MIN_GAS_PRICE),
        )
        .signed(&FAUCET_SECRET)
    }

    #[test]
    fn transfer_is_executed_with_receipt_and_balances() {
        let dir = tempfile::tempdir().unwrap();
        let c = chain(dir.path());
        let h0 = c.add_tx(transfer(0, 5)).unwrap();
        let h1 = c.add_tx(transfer(1, 6)).unwrap();
        assert_eq!(c.pending_nonce(&faucet_address()), 2);
        let b = c.produce_block(1).unwrap();
        assert_eq!(b.header.number, 1);
        assert_eq!(b.transactions.len(), 2);
        assert_eq!(b.header.gas_used, 42_000);
        assert_eq!(
            c.account(&Address::from_low_u64(0x77)).balance,
            U256::from_u64(11)
        );
        assert_eq!(c.account(&faucet_address()).nonce, 2);
        let loc = c.tx_location(&h1).unwrap().unwrap();
        assert_eq!(
            (
                loc.block_number,
                loc.receipt.tx_index,
                loc.receipt.cumulative_gas_used
            ),
            (1, 1, 42_000)
        );
        assert_eq!(c.tx_location(&h0).unwrap().unwrap().block_hash, b.hash());
        assert_eq!(c.block_by_hash(&b.hash()).unwrap().unwrap(), b);
        assert_eq!(c.mempool_len(), 0);
    }

    #[test]
    fn bad_transactions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = chain(dir.path());
        let mut t = transfer(0, 1);
        t.value = U256::from_u64(2);
        assert!(matches!(c.add_tx(t), Err(TxError::Signature(_))));
        let mut t = transfer(0, 1);
        t.public_key[0] = 0xEE;
        assert!(
            matches!(c.add_tx(t), Err(TxError::Signature(_))),
            "no 0xEE bypass"
        );
        let t = Transaction::transfer(
            1,
            0,
            Address::ZERO,
            U256::ZERO,
            U256::from_u64(MIN_GAS_PRICE),
        )
        .signed(&FAUCET_SECRET);
        assert!(matches!(c.add_tx(t), Err(TxError::ChainId { .. })));
        let t = Transaction::transfer(
            DEV_CHAIN_ID,
            0,
            Address::ZERO,
            U256::ZERO,
            U256::from_u64(1),
        )
        .signed(&FAUCET_SECRET);
        assert!(matches!(c.add_tx(t), Err(TxError::GasPrice { .. })));
        let t = Transaction::transfer(
            DEV_CHAIN_ID,
            0,
            Address::ZERO,
            U256::ZERO,
            U256::from_u64(MIN_GAS_PRICE),
        )
        .signed(&[9; 32]);
        assert!(matches!(c.add_tx(t), Err(TxError::Balance { .. })));
        c.add_tx(transfer(0, 1)).unwrap();
        assert_eq!(c.add_tx(transfer(0, 1)), Err(TxError::Known));
        c.produce_block(1).unwrap();
        assert!(matches!(
            c.add_tx(transfer(0, 1)),
            Err(TxError::Nonce {
                expected: 1,
                actual: 0
            })
        ));
    }

    #[test]
    fn reopen_keeps_head_and_balances() {
        let dir = tempfile::tempdir().unwrap();
        let (head, bal) = {
            let c = chain(dir.path());
            c.add_tx(transfer(0, 9)).unwrap();
            c.produce_block(1).unwrap();
            c.produce_block(2).unwrap();
            (c.head(), c.account(&faucet_address()))
        };
        let c = chain(dir.path());
        assert_eq!(c.head(), head);
        assert_eq!(c.account(&faucet_address()), bal);
        assert_eq!(c.pending_nonce(&faucet_address()), 1);
    }
}
