//! PoW miner: plain OS threads hashing with BLAKE3 (`--mine --threads N`),
//! as qfc-node's compute contribution, so a flame graph can tell miner
//! hashing from block hashing.

use crate::metrics::Counters;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Hashes counted locally before publishing to the shared counter.
const BATCH: u64 = 4096;

/// Running miner threads; [`Miner::stop`] joins them.
pub struct Miner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// One PoW attempt: BLAKE3(seed || nonce LE).
pub fn pow_hash(seed: &[u8; 32], nonce: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(seed);
    h.update(&nonce.to_le_bytes());
    *h.finalize().as_bytes()
}

impl Miner {
    /// Start `threads` miners over `seed`; thread i tries nonces i, i+n, ...
    pub fn start(threads: usize, seed: [u8; 32], counters: Arc<Counters>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let n = threads.max(1) as u64;
        let mut hs = Vec::new();
        for i in 0..n {
            let stop = stop.clone();
            let counters = counters.clone();
            hs.push(
                std::thread::Builder::new()
                    .name(format!("qfc-miner-{i}"))
                    .spawn(move || {
                        let mut nonce = i;
                        let mut best = [0xffu8; 32];
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..BATCH {
                                let h = pow_hash(&seed, nonce);
                                if h < best {
                                    best = h;
                                }
                                nonce = nonce.wrapping_add(n);
                            }
                            counters.miner_hashes.fetch_add(BATCH, Ordering::Relaxed);
                        }
                        tracing::debug!(thread = i, best = %hex::encode(best), "miner stopped");
                    })?,
            );
        }
        Ok(Self { stop, threads: hs })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
