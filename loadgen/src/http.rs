//! HTTP/1.1 JSON-RPC client over hyper 1: a pool of keep-alive connections
//! to one loopback address, at most one request in flight per connection.

use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::stats::Fail;

/// Keep-alive connections to one JSON-RPC endpoint.
pub struct HttpPool {
    addr: SocketAddr,
    host: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl HttpPool {
    /// A pool for `addr` (connections open lazily).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Fail> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|_| Fail::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Fail::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "json-rpc connection ended");
            }
        });
        Ok(sender)
    }

    /// Opens connections, all at once, until `n` (at most 1024) are idle:
    /// done before a phase's clock starts so that no measured request pays
    /// for a TCP handshake.
    pub async fn warm(&self, n: usize) -> Result<(), Fail> {
        let have = self.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        let need = n.min(1024).saturating_sub(have);
        let opened = futures::future::join_all((0..need).map(|_| self.connect())).await;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        for c in opened {
            idle.push(c?);
        }
        Ok(())
    }

    fn take(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// POSTs `body` to `/` and returns the response body; non-2xx is a failure.
    pub async fn post(&self, body: Bytes) -> Result<Bytes, Fail> {
        let mut sender = match self.take() {
            Some(s) => s,
            None => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
            sender.ready().await.map_err(|_| Fail::Io)?;
        }
        let req = hyper::Request::post("/")
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| Fail::Decode)?;
        let resp = sender.send_request(req).await.map_err(|_| Fail::Io)?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| Fail::Io)?
            .to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        if !status.is_success() {
            return Err(Fail::HttpStatus(status.as_u16()));
        }
        Ok(body)
    }

    /// One JSON-RPC call whose result is not kept (the `rpc` workload): a
    /// reply without an error object (a `null` result included) is a
    /// success. `Ok(bytes received)` or the failure.
    pub async fn call_discard(&self, id: u64, method: &str, params: &Value) -> Result<u64, Fail> {
        #[derive(serde::Deserialize)]
        struct ErrorObject {
            #[serde(default)]
            code: i64,
        }
        #[derive(serde::Deserialize)]
        struct Response {
            error: Option<ErrorObject>,
        }
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let resp = self.post(Bytes::from(body)).await?;
        let r: Response = serde_json::from_slice(&resp).map_err(|_| Fail::Decode)?;
        match r.error {
            Some(e) => Err(Fail::Rpc(e.code)),
            None => Ok(resp.len() as u64),
        }
    }

    /// One JSON-RPC call: `Ok((result, bytes received))`, or the failure
    /// (`Fail::Rpc(code)` for an error object).
    pub async fn call(&self, id: u64, method: &str, params: Value) -> Result<(Value, u64), Fail> {
        let body = serde_json::to_vec(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .map_err(|_| Fail::Decode)?;
        let resp = self.post(Bytes::from(body)).await?;
        let n = resp.len() as u64;
        let v: Value = serde_json::from_slice(&resp).map_err(|_| Fail::Decode)?;
        if let Some(err) = v.get("error") {
            return Err(Fail::Rpc(
                err.get("code").and_then(Value::as_i64).unwrap_or(0),
            ));
        }
        match v.get("result") {
            Some(r) => Ok((r.clone(), n)),
            None => Err(Fail::Decode),
        }
    }
}

/// Parses a `0x`-prefixed hex quantity.
pub fn parse_quantity(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// Formats a hex quantity.
pub fn quantity(n: u64) -> String {
    format!("0x{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_round_trip() {
        assert_eq!(parse_quantity(&Value::String(quantity(0))), Some(0));
        assert_eq!(parse_quantity(&Value::String(quantity(255))), Some(255));
        assert_eq!(parse_quantity(&Value::String("0xzz".into())), None);
    }
}
