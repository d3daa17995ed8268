//! Fills a node's data directory before it starts, reproducibly from the
//! seed: `keys` random keys with `value_bytes` random values in RocksDB's
//! `default` column family of `<datadir>/db` (a family every node opens, so
//! the node still starts), written in batches without WAL, then flushed.

use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::LoadError;

/// Keys per WriteBatch, at most.
const BATCH: u64 = 10_000;
/// Value bytes per WriteBatch, at most: with large values a batch still
/// ends within a fraction of a second, so a stop request is seen quickly.
const BATCH_BYTES: u64 = 8 << 20;

pub use bundle_schema::load::SeedReport;

/// Writes `keys` pseudo-random 24-byte keys (`lab-seed/` + 16 random bytes)
/// with `value_bytes`-byte values into `<datadir>/db`.
pub fn seed_db(
    datadir: &Path,
    keys: u64,
    value_bytes: usize,
    seed: u64,
) -> Result<SeedReport, LoadError> {
    seed_db_until(datadir, keys, value_bytes, seed, &|| false)
}

/// [`seed_db`] that gives up with [`LoadError::Cancelled`] when `stop`
/// returns true; it is asked between batches (each at most [`BATCH`] keys
/// and [`BATCH_BYTES`] of values), so a Ctrl-C is seen within a fraction of
/// a second. The batch size does not change what is written, nor its order.
pub fn seed_db_until(
    datadir: &Path,
    keys: u64,
    value_bytes: usize,
    seed: u64,
    stop: &dyn Fn() -> bool,
) -> Result<SeedReport, LoadError> {
    let path = datadir.join("db");
    let err = |why: String| LoadError::SeedDb {
        path: path.clone(),
        why,
    };
    if value_bytes > 16 << 20 {
        return Err(err(format!(
            "value_bytes {value_bytes} exceeds 16 MiB; give a smaller value"
        )));
    }
    std::fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, &path)
        .map_err(|e| err(format!("{e}; is a node running on this datadir?")))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_db00_5eed_db00);
    let mut digest = blake3::Hasher::new();
    let mut wo = rocksdb::WriteOptions::default();
    wo.disable_wal(true);
    let mut key = [0u8; 24];
    key[..9].copy_from_slice(b"lab-seed/");
    let mut value = vec![0u8; value_bytes];
    let mut written = 0u64;
    let per_batch = BATCH.min((BATCH_BYTES / (value_bytes as u64).max(1)).max(1));
    while written < keys {
        if stop() {
            return Err(LoadError::Cancelled {
                what: "seeding the datadir",
            });
        }
        let mut batch = rocksdb::WriteBatch::default();
        for _ in 0..per_batch.min(keys - written) {
            rng.fill_bytes(&mut key[9..]);
            rng.fill_bytes(&mut value);
            digest.update(&key);
            digest.update(&value);
            batch.put(key, &value);
            written += 1;
        }
        db.write_opt(batch, &wo).map_err(|e| err(e.to_string()))?;
    }
    db.flush().map_err(|e| err(format!("flush failed: {e}")))?;
    Ok(SeedReport {
        keys,
        value_bytes_total: keys * value_bytes as u64,
        digest: digest.finalize().to_hex().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_content_and_keys_are_readable() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ra = seed_db(a.path(), 25_000, 64, 9).unwrap();
        let rb = seed_db(b.path(), 25_000, 64, 9).unwrap();
        assert_eq!(ra, rb);
        assert_ne!(
            seed_db(tempfile::tempdir().unwrap().path(), 25_000, 64, 10)
                .unwrap()
                .digest,
            ra.digest
        );
        let db = rocksdb::DB::open_default(a.path().join("db")).unwrap();
        let n = db.iterator(rocksdb::IteratorMode::Start).count();
        assert_eq!(n, 25_000);
    }

    #[test]
    fn a_stop_request_ends_seeding_between_batches() {
        let dir = tempfile::tempdir().unwrap();
        let asked = std::cell::Cell::new(0u32);
        // large values: one batch is BATCH_BYTES / value_bytes = 8 keys
        let r = seed_db_until(dir.path(), 1_000, 1 << 20, 1, &|| {
            asked.set(asked.get() + 1);
            asked.get() > 3
        });
        assert!(matches!(r, Err(LoadError::Cancelled { .. })), "{r:?}");
        // asked before each batch of 8 keys: three batches, then the stop
        assert_eq!(asked.get(), 4, "asked before each batch");
    }
}
