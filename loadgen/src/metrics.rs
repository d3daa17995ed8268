//! Reads the node's Prometheus `/metrics` (loopback only) and sums gauges
//! across labels, e.g. `qfc_rocksdb_l0_files` over column families.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// GETs `/metrics` from `addr`; `None` when unreachable or not 2xx.
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

/// Sum of every sample of `name` (any labels); `None` when absent.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
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
