//! Where every workload's randomness comes from (a leaf: the session and the
//! instrument-floor probe both draw from it).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator of one workload in one phase: depends only on the session
/// seed, the phase name and the workload name.
pub fn workload_rng(seed: u64, phase: &str, workload: &str) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"qfc-lab loadgen v1\0");
    h.update(&seed.to_le_bytes());
    h.update(phase.as_bytes());
    h.update(b"\0");
    h.update(workload.as_bytes());
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}
