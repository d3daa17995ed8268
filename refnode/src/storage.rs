//! RocksDB storage configured like qfc-node's `qfc-storage`: the same column
//! family names, a shared LRU block cache, a DB-wide write buffer with
//! per-CF write buffers, bloom filters on point-lookup CFs and LZ4.
//!
//! A block is committed as ONE `WriteBatch` across the CFs
//! ([`Storage::commit`]), synced (`set_sync(true)`, one WAL fdatasync) when
//! the synced-commit knob is on. The caller's thread issues that fdatasync.

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};

/// Column family names, as in qfc-node's `qfc_storage::schema::cf`.
pub mod cf {
    pub const BLOCK_HEADERS: &str = "block_headers";
    pub const BLOCK_BODIES: &str = "block_bodies";
    pub const BLOCK_HASH_INDEX: &str = "block_hash_index";
    pub const TRANSACTIONS: &str = "transactions";
    pub const TX_INDEX: &str = "tx_index";
    pub const RECEIPTS: &str = "receipts";
    pub const STATE: &str = "state";
    pub const CODE: &str = "code";
    pub const METADATA: &str = "metadata";
    pub const VALIDATORS: &str = "validators";
    pub const REWARDS: &str = "rewards";
    pub const DELEGATIONS: &str = "delegations";
    pub const UNDELEGATIONS: &str = "undelegations";
    pub const CHECKPOINTS: &str = "checkpoints";
    pub const WORK_PROOFS: &str = "work_proofs";
    pub const ETH_TX_INDEX: &str = "eth_tx_index";

    /// Every column family, in qfc-node's order.
    pub const ALL: &[&str] = &[
        BLOCK_HEADERS,
        BLOCK_BODIES,
        BLOCK_HASH_INDEX,
        TRANSACTIONS,
        TX_INDEX,
        RECEIPTS,
        STATE,
        CODE,
        METADATA,
        VALIDATORS,
        REWARDS,
        DELEGATIONS,
        UNDELEGATIONS,
        CHECKPOINTS,
        WORK_PROOFS,
        ETH_TX_INDEX,
    ];

    /// CFs written on every block: 16 MiB write buffers (others 8 MiB).
    pub const WRITE_HEAVY: &[&str] = &[
        BLOCK_HEADERS,
        BLOCK_BODIES,
        TRANSACTIONS,
        TX_INDEX,
        RECEIPTS,
        STATE,
    ];

    /// CFs read by key: bloom filters.
    pub const POINT_LOOKUP: &[&str] = &[
        BLOCK_HASH_INDEX,
        TRANSACTIONS,
        TX_INDEX,
        RECEIPTS,
        STATE,
        CODE,
        ETH_TX_INDEX,
    ];
}

/// Metadata keys, as qfc-node's `qfc_storage::schema::meta`.
pub mod meta {
    pub const LATEST_BLOCK_NUMBER: &[u8] = b"latest_block_number";
    pub const LATEST_STATE_ROOT: &[u8] = b"latest_state_root";
    pub const GENESIS_HASH: &[u8] = b"genesis_hash";
    pub const CHAIN_ID: &[u8] = b"chain_id";
    pub const DB_VERSION: &[u8] = b"db_version";
}

/// Shared block cache, as qfc-node: 512 MiB.
pub const BLOCK_CACHE_BYTES: usize = 512 << 20;
/// DB-wide write buffer budget: 64 MiB.
pub const DB_WRITE_BUFFER_BYTES: usize = 64 << 20;
/// Write buffer of a write-heavy CF: 16 MiB.
pub const HEAVY_CF_WRITE_BUFFER_BYTES: usize = 16 << 20;
/// Write buffer of any other CF: 8 MiB.
pub const CF_WRITE_BUFFER_BYTES: usize = 8 << 20;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open RocksDB at {path}: {source}; check the --datadir permissions and that no other node uses it")]
    Open {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("RocksDB {op} failed: {source}")]
    Rocks {
        op: &'static str,
        source: rocksdb::Error,
    },
    #[error("column family {0} is missing from the database")]
    MissingCf(&'static str),
}

/// A stored key and value.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// Column-family values of one RocksDB property.
pub struct CfGauge {
    pub cf: &'static str,
    pub memtable_bytes: u64,
    pub pending_compaction_bytes: u64,
    pub l0_files: u64,
    pub write_stopped: u64,
    pub actual_delayed_write_rate: u64,
}

/// The node's database.
pub struct Storage {
    db: DB,
    opts: Options,
    statistics: bool,
}

/// Options for one column family.
fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_write_buffer_size(if cf::WRITE_HEAVY.contains(&name) {
        HEAVY_CF_WRITE_BUFFER_BYTES
    } else {
        CF_WRITE_BUFFER_BYTES
    });
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    if cf::POINT_LOOKUP.contains(&name) {
        t.set_bloom_filter(10.0, false);
    }
    o.set_block_based_table_factory(&t);
    o
}

impl Storage {
    /// Open (or create) the database at `path` with every column family.
    pub fn open(path: &Path, statistics: bool) -> Result<Self, StorageError> {
        let cache =
            Cache::new_lru_cache(BLOCK_CACHE_BYTES).map_err(|source| StorageError::Open {
                path: path.into(),
                source,
            })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(1024);
        opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        if statistics {
            opts.enable_statistics();
        }
        let cfs: Vec<_> = cf::ALL
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n, &cache)))
            .collect();
        let db =
            DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| StorageError::Open {
                path: path.into(),
                source,
            })?;
        Ok(Self {
            db,
            opts,
            statistics,
        })
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db.cf_handle(name).ok_or(StorageError::MissingCf(name))
    }

    pub fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(|source| StorageError::Rocks { op: "get", source })
    }

    /// Every (key, value) of a column family.
    pub fn scan(&self, cf: &'static str) -> Result<Vec<KeyValue>, StorageError> {
        self.db
            .iterator_cf(self.cf(cf)?, rocksdb::IteratorMode::Start)
            .collect::<Result<_, _>>()
            .map_err(|source| StorageError::Rocks { op: "scan", source })
    }

    /// Start a batch; fill it with [`BatchBuilder::put`], then [`Self::commit`].
    pub fn batch(&self) -> BatchBuilder<'_> {
        BatchBuilder {
            storage: self,
            batch: WriteBatch::default(),
        }
    }

    /// Write the batch atomically; `sync` makes RocksDB fdatasync the WAL
    /// on the calling thread before returning.
    pub fn commit(&self, b: BatchBuilder<'_>, sync: bool) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db
            .write_opt(b.batch, &wo)
            .map_err(|source| StorageError::Rocks {
                op: "write batch",
                source,
            })
    }

    /// Flush every column family's memtable to an L0 file.
    pub fn flush_all(&self) -> Result<(), StorageError> {
        for n in cf::ALL {
            self.db
                .flush_cf(self.cf(n)?)
                .map_err(|source| StorageError::Rocks {
                    op: "flush",
                    source,
                })?;
        }
        Ok(())
    }

    /// Compact every column family's full key range.
    pub fn compact_all(&self) -> Result<(), StorageError> {
        for n in cf::ALL {
            self.db
                .compact_range_cf(self.cf(n)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// A RocksDB checkpoint (flushes memtables, hard-links SSTs) into `dir`.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(|source| {
            StorageError::Rocks {
                op: "checkpoint",
                source,
            }
        })?;
        cp.create_checkpoint(dir)
            .map_err(|source| StorageError::Rocks {
                op: "checkpoint",
                source,
            })
    }

    /// Per-CF gauges from RocksDB properties.
    pub fn cf_gauges(&self) -> Vec<CfGauge> {
        let prop = |c: &rocksdb::ColumnFamily, p: &str| {
            self.db
                .property_int_value_cf(c, p)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        cf::ALL
            .iter()
            .filter_map(|n| {
                let c = self.db.cf_handle(n)?;
                Some(CfGauge {
                    cf: n,
                    memtable_bytes: prop(c, "rocksdb.cur-size-all-mem-tables"),
                    pending_compaction_bytes: prop(c, "rocksdb.estimate-pending-compaction-bytes"),
                    l0_files: prop(c, "rocksdb.num-files-at-level0"),
                    write_stopped: prop(c, "rocksdb.is-write-stopped"),
                    actual_delayed_write_rate: prop(c, "rocksdb.actual-delayed-write-rate"),
                })
            })
            .collect()
    }

    /// RocksDB statistics (tickers and histograms), if `--db-statistics`.
    pub fn statistics(&self) -> Option<DbStatistics> {
        if !self.statistics {
            return None;
        }
        self.opts.get_statistics().map(|s| DbStatistics::parse(&s))
    }
}

/// Figures parsed from RocksDB's statistics dump (rocksdb 0.20.1 exposes
/// only the text form; 0.22 has typed tickers).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DbStatistics {
    pub stall_micros: u64,
    pub wal_syncs: u64,
    pub wal_sync_micros_sum: u64,
    pub wal_sync_count: u64,
    pub compact_read_bytes: u64,
    pub compact_write_bytes: u64,
    pub flush_write_bytes: u64,
}

impl DbStatistics {
    /// Parse lines like `rocksdb.wal.synced COUNT : 3` and
    /// `rocksdb.wal.file.sync.micros P50 : 1 ... COUNT : 3 SUM : 250`.
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let Some(name) = it.next() else { continue };
            let rest: Vec<&str> = it.collect();
            let field = |key: &str| {
                rest.windows(3)
                    .find(|w| w[0] == key && w[1] == ":")
                    .and_then(|w| w[2].parse::<f64>().ok())
                    .map(|v| v as u64)
            };
            match name {
                "rocksdb.stall.micros" => s.stall_micros = field("COUNT").unwrap_or(0),
                "rocksdb.wal.synced" => s.wal_syncs = field("COUNT").unwrap_or(0),
                "rocksdb.compact.read.bytes" => s.compact_read_bytes = field("COUNT").unwrap_or(0),
                "rocksdb.compact.write.bytes" => {
                    s.compact_write_bytes = field("COUNT").unwrap_or(0)
                }
                "rocksdb.flush.write.bytes" => s.flush_write_bytes = field("COUNT").unwrap_or(0),
                "rocksdb.wal.file.sync.micros" => {
                    s.wal_sync_count = field("COUNT").unwrap_or(0);
                    s.wal_sync_micros_sum = field("SUM").unwrap_or(0);
                }
                _ => {}
            }
        }
        s
    }
}

/// A block's writes, gathered before one atomic commit.
pub struct BatchBuilder<'a> {
    storage: &'a Storage,
    batch: WriteBatch,
}

impl BatchBuilder<'_> {
    pub fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.batch.put_cf(self.storage.cf(cf)?, key, value);
        Ok(())
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_dump_parses() {
        let text = "rocksdb.stall.micros COUNT : 12\nrocksdb.wal.synced COUNT : 3\n\
            rocksdb.wal.file.sync.micros P50 : 10.000000 P95 : 20.000000 P99 : 30.000000 P100 : 40.000000 COUNT : 3 SUM : 250\n\
            rocksdb.compact.write.bytes COUNT : 4096\n";
        let s = DbStatistics::parse(text);
        assert_eq!(s.stall_micros, 12);
        assert_eq!(s.wal_syncs, 3);
        assert_eq!(s.wal_sync_count, 3);
        assert_eq!(s.wal_sync_micros_sum, 250);
        assert_eq!(s.compact_write_bytes, 4096);
    }

    #[test]
    fn one_batch_across_cfs_is_atomic_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), true).unwrap();
            let mut b = s.batch();
            b.put(cf::BLOCK_HEADERS, b"k", b"h").unwrap();
            b.put(cf::METADATA, meta::LATEST_BLOCK_NUMBER, &1u64.to_le_bytes())
                .unwrap();
            assert_eq!(b.len(), 2);
            s.commit(b, true).unwrap();
            assert!(
                s.statistics().unwrap().wal_syncs >= 1,
                "a synced commit syncs the WAL"
            );
            s.flush_all().unwrap();
            assert_eq!(
                s.cf_gauges()
                    .iter()
                    .find(|g| g.cf == cf::BLOCK_HEADERS)
                    .unwrap()
                    .l0_files,
                1
            );
        }
        let s = Storage::open(dir.path(), false).unwrap();
        assert_eq!(
            s.get(cf::BLOCK_HEADERS, b"k").unwrap().as_deref(),
            Some(&b"h"[..])
        );
        assert!(s.statistics().is_none());
    }
}
