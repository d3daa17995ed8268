//! The node and RocksDB family: figures from the node's metrics
//! (`metrics/series.jsonl`, `metrics/<phase>.prom`): blocks produced, and
//! RocksDB's files, pending compaction, memtables, stalls, WAL syncs and
//! compaction/flush writes.

use super::entry::{blocks, metrics, per_block, per_s, Family, Figure};
use crate::report::evidence::MetricsWindow;
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "rocksdb",
    title: "Node and RocksDB (metrics/series.jsonl, metrics/<phase>.prom)",
    intro: "",
    figures: &[
    Figure {
        name: "node.blocks",
        selectors: &[],
        unit: "blocks",
        good: Direction::Higher,
        doc: "increase of `qfc_block_height` over the phase (fallback `qfc_blocks_produced_total`)",
        eval: |_, p, _| blocks(p),
    },
    Figure {
        name: "node.blocks_per_s",
        selectors: &[],
        unit: "blocks/s",
        good: Direction::Higher,
        doc: "`node.blocks` over the phase",
        eval: |_, p, _| per_s(blocks(p)?, p.duration_s),
    },
    Figure {
        name: "rocksdb.l0_files.max",
        selectors: &[],
        unit: "files",
        good: Direction::Lower,
        doc: "largest `qfc_rocksdb_l0_files` of any column family in any sample",
        eval: |_, p, _| metrics(p)?.max_over("qfc_rocksdb_l0_files", MetricsWindow::max_label),
    },
    Figure {
        name: "rocksdb.pending_compaction_bytes.max",
        selectors: &[],
        unit: "bytes",
        good: Direction::Lower,
        doc: "largest sum over column families of `qfc_rocksdb_pending_compaction_bytes`",
        eval: |_, p, _| {
            metrics(p)?.max_over("qfc_rocksdb_pending_compaction_bytes", MetricsWindow::sum)
        },
    },
    Figure {
        name: "rocksdb.memtable_bytes.max",
        selectors: &[],
        unit: "bytes",
        good: Direction::None,
        doc: "largest sum over column families of `qfc_rocksdb_memtable_bytes`",
        eval: |_, p, _| metrics(p)?.max_over("qfc_rocksdb_memtable_bytes", MetricsWindow::sum),
    },
    Figure {
        name: "rocksdb.write_stopped.max",
        selectors: &[],
        unit: "0/1",
        good: Direction::Lower,
        doc: "1 when any column family reported `qfc_rocksdb_write_stopped`",
        eval: |_, p, _| {
            metrics(p)?
                .max_over("qfc_rocksdb_write_stopped", MetricsWindow::max_label)
                .map(|v| if v > 0.0 { 1.0 } else { 0.0 })
        },
    },
    Figure {
        name: "rocksdb.stall_us",
        selectors: &[],
        unit: "us",
        good: Direction::Lower,
        doc: "increase of `qfc_rocksdb_stall_micros_total`",
        eval: |_, p, _| metrics(p)?.delta("qfc_rocksdb_stall_micros_total"),
    },
    Figure {
        name: "rocksdb.wal_syncs",
        selectors: &[],
        unit: "syncs",
        good: Direction::Lower,
        doc: "increase of `qfc_rocksdb_wal_syncs_total`",
        eval: |_, p, _| metrics(p)?.delta("qfc_rocksdb_wal_syncs_total"),
    },
    Figure {
        name: "rocksdb.wal_syncs_per_block",
        selectors: &[],
        unit: "syncs/block",
        good: Direction::Lower,
        doc: "`rocksdb.wal_syncs` over `node.blocks`",
        eval: |_, p, _| per_block(metrics(p)?.delta("qfc_rocksdb_wal_syncs_total")?, p),
    },
    Figure {
        name: "rocksdb.compaction_write_bytes",
        selectors: &[],
        unit: "bytes",
        good: Direction::None,
        doc: "increase of `qfc_rocksdb_compaction_write_bytes_total` (reference node; > 0 means a compaction ran)",
        eval: |_, p, _| metrics(p)?.delta("qfc_rocksdb_compaction_write_bytes_total"),
    },
    Figure {
        name: "rocksdb.flush_write_bytes",
        selectors: &[],
        unit: "bytes",
        good: Direction::None,
        doc: "increase of `qfc_rocksdb_flush_write_bytes_total` (reference node)",
        eval: |_, p, _| metrics(p)?.delta("qfc_rocksdb_flush_write_bytes_total"),
    },
    ],
    notes: r#"Increases are the last sample in the window minus the last sample at or before its start
(or the first sample in it). Metrics are optional on the real node (older revisions have
no `qfc_rocksdb_*`): an absent metric is "cannot evaluate: metric ... absent"."#,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::evidence::PhaseEvidence;
    use crate::report::figures::entry::{eval_in, Ctx, Fig};
    use std::collections::BTreeMap;

    fn eval_name(name: &str, p: &PhaseEvidence) -> Fig {
        eval_in(&[&FAMILY], name, p, &Ctx::default())
    }

    fn sample(kv: &[(&str, f64)]) -> BTreeMap<String, f64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Known answer: 4 blocks and 8 WAL syncs over a 2 s phase; L0 files peak
    /// at 5 on one column family, pending compaction bytes at 300 summed.
    #[test]
    fn increases_and_peaks_of_known_samples() {
        let before = sample(&[
            ("qfc_block_height", 10.0),
            ("qfc_rocksdb_wal_syncs_total", 100.0),
        ]);
        let s1 = sample(&[
            ("qfc_block_height", 12.0),
            ("qfc_rocksdb_wal_syncs_total", 104.0),
            ("qfc_rocksdb_l0_files{cf=\"a\"}", 5.0),
            ("qfc_rocksdb_l0_files{cf=\"b\"}", 1.0),
            ("qfc_rocksdb_pending_compaction_bytes{cf=\"a\"}", 100.0),
            ("qfc_rocksdb_pending_compaction_bytes{cf=\"b\"}", 200.0),
        ]);
        let s2 = sample(&[
            ("qfc_block_height", 14.0),
            ("qfc_rocksdb_wal_syncs_total", 108.0),
            ("qfc_rocksdb_l0_files{cf=\"a\"}", 2.0),
            ("qfc_rocksdb_pending_compaction_bytes{cf=\"a\"}", 50.0),
        ]);
        let names = [
            "qfc_block_height",
            "qfc_rocksdb_wal_syncs_total",
            "qfc_rocksdb_l0_files",
            "qfc_rocksdb_pending_compaction_bytes",
        ];
        let p = PhaseEvidence {
            duration_s: Some(2.0),
            metrics: Some(MetricsWindow {
                samples: vec![(1.0, s1), (2.0, s2)],
                before: Some(before),
                names: names.iter().map(|n| n.to_string()).collect(),
            }),
            ..Default::default()
        };
        let f = |n: &str| eval_name(n, &p).unwrap();
        assert_eq!(f("node.blocks"), 4.0);
        assert_eq!(f("node.blocks_per_s"), 2.0);
        assert_eq!(f("rocksdb.wal_syncs"), 8.0);
        assert_eq!(f("rocksdb.wal_syncs_per_block"), 2.0);
        assert_eq!(f("rocksdb.l0_files.max"), 5.0);
        assert_eq!(f("rocksdb.pending_compaction_bytes.max"), 300.0);
        let e = eval_name("rocksdb.stall_us", &p).unwrap_err();
        assert!(e.contains("qfc_rocksdb_stall_micros_total absent"), "{e}");
    }
}
