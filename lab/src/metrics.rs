//! Minimal HTTP/1.0 client for the node's loopback endpoints: Prometheus
//! `/metrics` scrapes and JSON-RPC calls (`eth_blockNumber` readiness).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Errors talking to the node over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}{path}: {message}")]
    Protocol {
        addr: SocketAddr,
        path: String,
        message: String,
    },
}

/// Sends one request and returns the body of a 2xx response.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<String, HttpError> {
    let proto = |message: String| HttpError::Protocol {
        addr,
        path: path.to_string(),
        message,
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| HttpError::Connect { addr, source })?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| proto(e.to_string()))?;
    let mut buf = Vec::new();
    s.take(64 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| proto(e.to_string()))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| proto("no HTTP header".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            proto(format!(
                "bad status line {:?}",
                head.lines().next().unwrap_or("")
            ))
        })?;
    if !(200..300).contains(&status) {
        return Err(proto(format!("HTTP {status}")));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One JSON-RPC call; returns `result` or the error object as a message.
pub fn rpc(
    addr: SocketAddr,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, HttpError> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let text = http(addr, "POST", "/", Some(&body), timeout)?;
    let proto = |message: String| HttpError::Protocol {
        addr,
        path: "/".into(),
        message,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| proto(format!("not JSON: {e}")))?;
    match (v.get("result"), v.get("error")) {
        (Some(r), _) => Ok(r.clone()),
        (None, Some(e)) => Err(proto(format!("{method} failed: {e}"))),
        _ => Err(proto(format!(
            "{method}: neither result nor error in {text}"
        ))),
    }
}

/// Samples of a Prometheus text exposition: `name{labels}` -> value.
pub fn parse_prom(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.rfind('}') {
            Some(i) => (&line[..=i], &line[i + 1..]),
            None => match line.split_once(char::is_whitespace) {
                Some((k, r)) => (k, r),
                None => continue,
            },
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(key.trim().to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let t = "# HELP x y\n# TYPE x counter\nx 3\ny{cf=\"a b\"} 1.5 1700000000\nbad\n";
        let m = parse_prom(t);
        assert_eq!(m["x"], 3.0);
        assert_eq!(m["y{cf=\"a b\"}"], 1.5);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn http_round_trip_on_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            assert!(std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains("eth_blockNumber"));
            c.write_all(
                b"HTTP/1.0 200 OK\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x2a\"}",
            )
            .unwrap();
        });
        let r = rpc(addr, "eth_blockNumber", Duration::from_secs(2)).unwrap();
        assert_eq!(r, "0x2a");
        h.join().unwrap();
    }
}
