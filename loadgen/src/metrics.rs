//! Reads the node's Prometheus `/metrics` (loopback only) with `reqwest`'s
//! async client (scrapes run inside the load session's tokio runtime) and sums
//! gauges across labels, e.g. `qfc_rocksdb_l0_files` over column families,
//! with the workspace's one exposition parser (`bundle_schema::prom`).

use std::net::SocketAddr;
use std::time::Duration;

/// Bound on one scrape: the node answers `/metrics` on loopback in
/// milliseconds; a stuck scrape must not hold the sampler.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `/metrics` from `addr`; `None` when unreachable or not 2xx.
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    // A client per scrape, not a static one: pooled connections belong to
    // the runtime that opened them, and the lab runs one runtime per session.
    let client = reqwest::Client::builder().no_proxy().build().ok()?;
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// Sum of every sample of `name` (any labels); `None` when absent.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    bundle_schema::prom::sum(text, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_across_labels_and_skips_prefix_matches() {
        let t = "# HELP qfc_rocksdb_l0_files x\nqfc_rocksdb_l0_files{cf=\"state\"} 3\nqfc_rocksdb_l0_files{cf=\"bodies\"} 2\nqfc_rocksdb_l0_files_other 9\n";
        assert_eq!(sum(t, "qfc_rocksdb_l0_files"), Some(5.0));
        assert_eq!(sum(t, "qfc_rocksdb_pending_compaction_bytes"), None);
        assert_eq!(sum("x 1.5\n", "x"), Some(1.5));
    }
}
