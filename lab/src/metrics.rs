//! The spine's HTTP to the node's loopback endpoints: Prometheus `/metrics`
//! scrapes and JSON-RPC calls (`eth_blockNumber` readiness), through
//! `reqwest`'s blocking client (the spine's run loop is synchronous; inside a
//! tokio runtime the async client is the one to use, since the blocking one
//! panics there). The exposition is parsed by `bundle_schema::prom`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

pub use bundle_schema::prom::parse as parse_prom;

/// Errors talking to the node over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request failed (connect, timeout, reading the body). The message
    /// carries reqwest's whole cause chain: callers record it as text.
    #[error("{method} http://{addr}{path}: {}", chain(cause))]
    Request {
        method: &'static str,
        addr: SocketAddr,
        path: String,
        cause: reqwest::Error,
    },
    #[error("{method} http://{addr}{path}: HTTP {status}")]
    Status {
        method: &'static str,
        addr: SocketAddr,
        path: String,
        status: reqwest::StatusCode,
    },
    #[error("JSON-RPC {rpc_method} at http://{addr}/: {message}")]
    Rpc {
        addr: SocketAddr,
        rpc_method: String,
        message: String,
    },
}

/// `error: cause: cause ...`
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One client for the process: no proxy (loopback only, whatever
/// `HTTP_PROXY` says), each request with its own timeout.
fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .expect("building an HTTP client without TLS roots or proxies cannot fail")
    })
}

/// GETs `path` (or POSTs the JSON `body`) and returns the body of a 2xx response.
pub fn http(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<String, HttpError> {
    let request = |cause| HttpError::Request {
        method,
        addr,
        path: path.to_string(),
        cause,
    };
    let url = format!("http://{addr}{path}");
    let req = match method {
        "POST" => client()
            .post(url)
            .json(body.unwrap_or(&serde_json::Value::Null)),
        _ => client().get(url),
    };
    let resp = req.timeout(timeout).send().map_err(request)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(HttpError::Status {
            method,
            addr,
            path: path.to_string(),
            status,
        });
    }
    resp.text().map_err(request)
}

/// One JSON-RPC call; returns `result` or the error object as a message.
pub fn rpc(
    addr: SocketAddr,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, HttpError> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
    let text = http(addr, "POST", "/", Some(&body), timeout)?;
    let fail = |message: String| HttpError::Rpc {
        addr,
        rpc_method: method.to_string(),
        message,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    match (v.get("result"), v.get("error")) {
        (Some(r), _) => Ok(r.clone()),
        (None, Some(e)) => Err(fail(format!("failed: {e}"))),
        _ => Err(fail(format!("neither result nor error in {text}"))),
    }
}

#[cfg(test)]
mod tests {
    //! A one-shot HTTP server on loopback stands in for the node: it answers
    //! with the bytes a test gives, so that reqwest's side is what is tested.
    use super::*;
    use std::io::{Read, Write};

    /// Serves one connection: reads the request up to `until`, answers `answer`.
    fn serve_once(
        until: &'static str,
        answer: &'static [u8],
    ) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&got).contains(until) {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before sending {until:?}");
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(answer).unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (addr, h)
    }

    #[test]
    fn rpc_round_trip_on_loopback() {
        let (addr, h) = serve_once(
            "eth_blockNumber",
            b"HTTP/1.0 200 OK\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x2a\"}",
        );
        let r = rpc(addr, "eth_blockNumber", Duration::from_secs(2)).unwrap();
        assert_eq!(r, "0x2a");
        let req = h.join().unwrap();
        assert!(req.starts_with("POST / HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{req}"
        );
    }

    #[test]
    fn chunked_metrics_body_is_joined() {
        let (addr, h) = serve_once(
            "\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nx 1\r\n2\r\n\ny\r\n3\r\n 2\n\r\n0\r\n\r\n",
        );
        let text = http(addr, "GET", "/metrics", None, Duration::from_secs(2)).unwrap();
        assert_eq!(text, "x 1\ny 2\n");
        assert!(h.join().unwrap().starts_with("GET /metrics HTTP/1.1\r\n"));
        assert_eq!(parse_prom(&text).len(), 2);
    }

    #[test]
    fn non_2xx_and_refused_connections_are_errors_that_say_where() {
        let (addr, h) = serve_once(
            "\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        );
        let e = http(addr, "GET", "/metrics", None, Duration::from_secs(2)).unwrap_err();
        assert!(
            matches!(e, HttpError::Status { status, .. } if status.as_u16() == 503),
            "{e}"
        );
        h.join().unwrap();
        // The listener is gone: nothing listens on that port any more.
        let e = http(addr, "GET", "/metrics", None, Duration::from_secs(2)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("http://{addr}/metrics")), "{msg}");
        assert!(msg.to_ascii_lowercase().contains("refused"), "{msg}");
    }
}
