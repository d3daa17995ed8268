//! The `tx` workload: validly signed native transfers (borsh, BLAKE3,
//! Ed25519, see `wire::tx`) from accounts derived from the seed and funded
//! by the dev faucet key, with nonce tracking per account and receipts
//! checked for a sampled share after the phase.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use wire::genesis::FAUCET_SECRET;
use wire::tx::{address_of_secret, Transaction, MIN_GAS_PRICE};
use wire::{Address, Hash, U256};

use crate::engine::Workload;
use crate::http::{parse_quantity, HttpPool};
use crate::stats::Fail;
use crate::LoadError;

/// Wei each load account gets from the faucet (1000 QFC: ~47 million transfers of fees).
pub const FUNDING_WEI: u128 = 1_000_000_000_000_000_000_000;
/// How long a closed-loop tx client waits after a refusal.
pub const TX_REFUSAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// qfc-node's mempool keeps at most this many pending transactions per account.
pub const MAX_PENDING_PER_ACCOUNT: u64 = 64;

/// A load account: secret derived from the seed.
#[derive(Clone)]
pub struct Account {
    /// Ed25519 secret.
    pub secret: [u8; 32],
    /// Sender address (last 20 bytes of BLAKE3(public key)).
    pub address: Address,
}

/// Load account `i` of `seed`.
pub fn account(seed: u64, i: u32) -> Account {
    let mut h = blake3::Hasher::new();
    h.update(b"qfc-lab loadgen account v1\0");
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    let secret = *h.finalize().as_bytes();
    Account {
        secret,
        address: address_of_secret(&secret),
    }
}

fn rpc_err(addr: &str, what: &str, e: Fail) -> LoadError {
    LoadError::Workload {
        workload: "tx",
        why: format!("{what} on {addr} failed ({e})"),
    }
}

/// Nonce of `addr` at `tag` ("latest" or "pending").
pub async fn nonce_of(pool: &HttpPool, addr: &Address, tag: &str) -> Result<u64, Fail> {
    let (v, _) = pool
        .call(0, "eth_getTransactionCount", json!([addr.to_string(), tag]))
        .await?;
    parse_quantity(&v).ok_or(Fail::Decode)
}

/// Funds `accounts` from the faucet (those with a zero balance), at most
/// `MAX_PENDING_PER_ACCOUNT - 4` transfers in flight, and waits (at most
/// `wait`) until every funding transfer is included.
pub async fn fund(
    pool: &HttpPool,
    chain_id: u64,
    accounts: &[Account],
    wait: Duration,
) -> Result<u32, LoadError> {
    let rpc = "the node";
    let faucet = address_of_secret(&FAUCET_SECRET);
    let mut to_fund = Vec::new();
    for a in accounts {
        let (v, _) = pool
            .call(
                0,
                "eth_getBalance",
                json!([a.address.to_string(), "latest"]),
            )
            .await
            .map_err(|e| rpc_err(rpc, "eth_getBalance", e))?;
        let zero = v.as_str().is_some_and(|s| {
            s.trim_start_matches("0x")
                .trim_start_matches('0')
                .is_empty()
        });
        if zero {
            to_fund.push(a.address);
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut nonce = nonce_of(pool, &faucet, "pending")
        .await
        .map_err(|e| rpc_err(rpc, "eth_getTransactionCount", e))?;
    for chunk in to_fund.chunks((MAX_PENDING_PER_ACCOUNT - 4) as usize) {
        for to in chunk {
            let tx = Transaction::transfer(
                chain_id,
                nonce,
                *to,
                U256::from_u128(FUNDING_WEI),
                U256::from_u64(MIN_GAS_PRICE),
            )
            .signed(&FAUCET_SECRET);
            pool.call(0, "eth_sendRawTransaction", json!([tx.encode_hex()]))
                .await
                .map_err(|e| rpc_err(rpc, "eth_sendRawTransaction (faucet funding)", e))?;
            nonce += 1;
        }
        loop {
            let done = nonce_of(pool, &faucet, "latest")
                .await
                .map_err(|e| rpc_err(rpc, "eth_getTransactionCount", e))?;
            if done >= nonce {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LoadError::Workload {
                    workload: "tx",
                    why: format!(
                        "faucet funding not included within {} s (faucet nonce {done}, want {nonce}); is the node producing blocks?",
                        wait.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(to_fund.len() as u32)
}

#[derive(Default)]
struct Nonces {
    /// Next fresh nonce per account.
    next: Vec<u64>,
    /// Nonces rejected by the node, reused first so no gap stays behind.
    free: Vec<BTreeSet<u64>>,
    /// Transactions accepted per account in this phase.
    accepted: Vec<u64>,
}

/// One decided transfer.
pub struct TxRequest {
    id: u64,
    sender: usize,
    nonce: u64,
    hash: Hash,
    raw_hex: String,
    sampled: bool,
}

/// Signed transfers between the load accounts.
pub struct TxWorkload {
    pool: Arc<HttpPool>,
    chain_id: u64,
    accounts: Vec<Account>,
    nonces: Mutex<Nonces>,
    sample_receipts: f64,
    sampled: Mutex<Vec<Hash>>,
}

impl TxWorkload {
    /// `start_nonces[i]`: pending nonce of `accounts[i]`.
    pub fn new(
        pool: Arc<HttpPool>,
        chain_id: u64,
        accounts: Vec<Account>,
        start_nonces: Vec<u64>,
        sample_receipts: f64,
    ) -> Self {
        let n = accounts.len();
        Self {
            pool,
            chain_id,
            accounts,
            nonces: Mutex::new(Nonces {
                next: start_nonces,
                free: vec![BTreeSet::new(); n],
                accepted: vec![0; n],
            }),
            sample_receipts,
            sampled: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Nonces> {
        self.nonces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes whose receipts are to be checked.
    pub fn sampled(&self) -> Vec<Hash> {
        self.sampled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Next nonce per account (what the node's nonce must reach when all is included).
    pub fn next_nonces(&self) -> Vec<(Address, u64)> {
        let g = self.lock();
        self.accounts
            .iter()
            .zip(&g.next)
            .map(|(a, n)| (a.address, *n))
            .collect()
    }

    /// Nonces given back after rejection and never reused (gaps).
    pub fn unfilled_gaps(&self) -> u64 {
        self.lock().free.iter().map(|s| s.len() as u64).sum()
    }

    /// Accepted transactions per account.
    pub fn accepted(&self) -> u64 {
        self.lock().accepted.iter().sum()
    }
}

impl Workload for TxWorkload {
    type Req = TxRequest;

    fn make(&self, index: u64, rng: &mut ChaCha8Rng) -> TxRequest {
        let n = self.accounts.len();
        let sender = (index % n as u64) as usize;
        let to = if n > 1 {
            (sender + rng.gen_range(1..n)) % n
        } else {
            sender
        };
        let value = rng.gen_range(1..=1000u64);
        let sampled = rng.gen_bool(self.sample_receipts);
        let nonce = {
            let mut g = self.lock();
            match g.free[sender].pop_first() {
                Some(n) => n,
                None => {
                    let v = g.next[sender];
                    g.next[sender] += 1;
                    v
                }
            }
        };
        let tx = Transaction::transfer(
            self.chain_id,
            nonce,
            self.accounts[to].address,
            U256::from_u64(value),
            U256::from_u64(MIN_GAS_PRICE),
        )
        .signed(&self.accounts[sender].secret);
        TxRequest {
            id: index,
            sender,
            nonce,
            hash: tx.hash(),
            raw_hex: tx.encode_hex(),
            sampled,
        }
    }

    async fn execute(&self, req: TxRequest) -> Result<u64, Fail> {
        match self
            .pool
            .call(req.id, "eth_sendRawTransaction", json!([req.raw_hex]))
            .await
        {
            Ok((v, n)) => {
                if v.as_str() != Some(req.hash.to_string().as_str()) {
                    tracing::warn!(got = %v, want = %req.hash, "node returned a different transaction hash");
                }
                self.lock().accepted[req.sender] += 1;
                if req.sampled {
                    self.sampled
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(req.hash);
                }
                Ok(n)
            }
            Err(Fail::Rpc(code)) => {
                // Definitely refused: give the nonce back so the next
                // transfer of this account fills the gap.
                self.lock().free[req.sender].insert(req.nonce);
                Err(Fail::Rpc(code))
            }
            Err(e) => Err(e),
        }
    }

    /// A refused transfer means a full mempool (or account queue): a
    /// closed-loop client waits about a block's share before the next.
    fn refusal_backoff(&self) -> std::time::Duration {
        TX_REFUSAL_BACKOFF
    }
}

/// What the post-phase checks found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TxCheck {
    /// Transactions accepted by the node in the phase.
    pub accepted: u64,
    /// Receipts sampled.
    pub receipts_sampled: u64,
    /// Sampled receipts found.
    pub receipts_found: u64,
    /// Found receipts with status 0.
    pub receipts_failed: u64,
    /// Accounts whose confirmed nonce reached the nonce the generator assigned last.
    pub accounts_caught_up: u64,
    /// Accounts.
    pub accounts: u64,
    /// Nonces rejected and never refilled.
    pub nonce_gaps: u64,
    /// Refused nonces re-sent after the phase (accepted).
    pub gaps_refilled: u64,
    /// Seconds spent waiting for inclusion.
    pub wait_s: f64,
}

impl TxWorkload {
    /// Re-sends a transfer for every nonce the node refused and no later
    /// transfer reused, retrying until `deadline`; returns how many it filled.
    async fn refill_gaps(&self, deadline: tokio::time::Instant) -> u64 {
        let mut filled = 0;
        // Bounded: each nonce is retried until the deadline at most.
        loop {
            let next = {
                let mut g = self.lock();
                (0..self.accounts.len()).find_map(|i| g.free[i].pop_first().map(|n| (i, n)))
            };
            let Some((sender, nonce)) = next else {
                return filled;
            };
            let to = self.accounts[(sender + 1) % self.accounts.len()].address;
            let tx = Transaction::transfer(
                self.chain_id,
                nonce,
                to,
                U256::from_u64(1),
                U256::from_u64(MIN_GAS_PRICE),
            )
            .signed(&self.accounts[sender].secret);
            let hex = tx.encode_hex();
            loop {
                match self
                    .pool
                    .call(0, "eth_sendRawTransaction", json!([hex]))
                    .await
                {
                    Ok(_) => {
                        self.lock().accepted[sender] += 1;
                        filled += 1;
                        break;
                    }
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        tracing::warn!(error = %e, nonce, "could not refill a refused nonce before the deadline");
                        self.lock().free[sender].insert(nonce);
                        return filled;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
    }
}

/// After the phase: refills refused nonces, then waits (at most `wait`) until every account's confirmed
/// nonce reaches the last assigned one and the sampled receipts exist.
pub async fn check(pool: &HttpPool, w: &TxWorkload, wait: Duration) -> TxCheck {
    let t0 = tokio::time::Instant::now();
    let deadline = t0 + wait;
    let gaps_refilled = w.refill_gaps(deadline).await;
    let want = w.next_nonces();
    let mut missing: Vec<Hash> = w.sampled();
    let mut found: BTreeMap<Hash, Value> = BTreeMap::new();
    let mut caught;
    loop {
        caught = 0;
        for (a, n) in &want {
            if nonce_of(pool, a, "latest").await.is_ok_and(|got| got >= *n) {
                caught += 1;
            }
        }
        let results: Vec<(Hash, Option<Value>)> = futures::stream::iter(missing.clone())
            .map(|h| async move {
                let r = pool
                    .call(0, "eth_getTransactionReceipt", json!([h.to_string()]))
                    .await;
                (h, r.ok().map(|(v, _)| v).filter(|v| !v.is_null()))
            })
            .buffer_unordered(32)
            .collect()
            .await;
        missing.clear();
        for (h, r) in results {
            match r {
                Some(v) => {
                    found.insert(h, v);
                }
                None => missing.push(h),
            }
        }
        if (missing.is_empty() && caught == want.len()) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failed = found
        .values()
        .filter(|v| v.get("status").and_then(parse_quantity) == Some(0))
        .count();
    TxCheck {
        accepted: w.accepted(),
        receipts_sampled: (found.len() + missing.len()) as u64,
        receipts_found: found.len() as u64,
        receipts_failed: failed as u64,
        accounts_caught_up: caught as u64,
        accounts: want.len() as u64,
        nonce_gaps: w.unfilled_gaps(),
        gaps_refilled,
        wait_s: t0.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn workload() -> TxWorkload {
        let accounts = (0..4).map(|i| account(7, i)).collect();
        TxWorkload::new(
            Arc::new(HttpPool::new("127.0.0.1:9".parse().unwrap())),
            9000,
            accounts,
            vec![0, 5, 0, 0],
            0.5,
        )
    }

    #[test]
    fn transfers_are_signed_sequenced_and_seeded() {
        let gen = |seed| {
            let w = workload();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..16)
                .map(|i| w.make(i, &mut rng))
                .map(|r| (r.raw_hex, r.nonce, r.sampled))
                .collect::<Vec<_>>()
        };
        let a = gen(1);
        assert_eq!(a, gen(1));
        assert_ne!(a, gen(2));
        // Round robin senders; account 1 starts at its pending nonce 5.
        let nonces: Vec<u64> = a.iter().map(|r| r.1).collect();
        assert_eq!(&nonces[..8], &[0, 5, 0, 0, 1, 6, 1, 1]);
        for (hex, _, _) in &a {
            let tx = Transaction::decode_hex(hex).unwrap();
            tx.verify().unwrap();
            assert_eq!(tx.chain_id, 9000);
            assert_eq!(hex.len(), 2 + 2 * 210, "a plain transfer is 210 bytes");
        }
    }

    #[test]
    fn refused_nonces_are_reused_first() {
        let w = workload();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let _ = w.make(0, &mut rng); // account 0, nonce 0
        w.lock().free[0].insert(0);
        let r = w.make(4, &mut rng);
        assert_eq!((r.sender, r.nonce), (0, 0));
        assert_eq!(w.make(8, &mut rng).nonce, 1);
    }

    #[test]
    fn accounts_differ_by_seed_and_index() {
        assert_ne!(account(1, 0).address, account(1, 1).address);
        assert_ne!(account(1, 0).address, account(2, 0).address);
        assert_eq!(account(1, 0).address, account(1, 0).address);
    }
}
