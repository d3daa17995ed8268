//! The bundle's file formats, owned in one place (issue 14): the serde types
//! through which the producers (`probes`, `loadgen`, `lab`) write a bundle's
//! JSON files and the report reads them back, and the one parser of the
//! Prometheus text exposition (`metrics/<phase>.prom`, the samples of
//! `metrics/series.jsonl`, loadgen's compaction gauges, refnode's tests).
//!
//! A leaf crate: it depends on serde only, so every producer and the report
//! can use it without depending on each other.

pub mod load;
pub mod metrics;
pub mod probes;
pub mod prom;
pub mod timeline;
