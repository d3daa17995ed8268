//! Test helpers other crates can reuse: spawn `qfc-refnode` on free
//! loopback ports (port 0 everywhere, addresses read back from
//! `--lab-ports-file`), call JSON-RPC over plain HTTP (reqwest), scrape `/metrics`,
//! stop it with SIGTERM. Blocking std code only: no runtime needed.

use crate::Ports;
use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the `qfc-refnode` binary is: `$QFC_REFNODE_BIN`, else
/// `$CARGO_TARGET_DIR/debug/qfc-refnode`, else `target/debug/qfc-refnode`.
pub fn refnode_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("QFC_REFNODE_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "target".into());
    target.join("debug").join("qfc-refnode")
}

/// Arguments that put every listener on a free loopback port.
pub fn loopback_args(datadir: &Path, ports_file: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    for (k, val) in [
        ("--datadir", datadir.as_os_str()),
        ("--rpc-addr", "127.0.0.1:0".as_ref()),
        ("--metrics-addr", "127.0.0.1:0".as_ref()),
        ("--p2p-port", "0".as_ref()),
        ("--lab-p2p-host", "127.0.0.1".as_ref()),
        ("--lab-ports-file", ports_file.as_os_str()),
    ] {
        v.push(k.into());
        v.push(val.into());
    }
    v
}

/// A running node; killed on drop if still alive.
pub struct NodeProcess {
    child: Child,
    pub ports: Ports,
    pub datadir: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl NodeProcess {
    /// Spawn `bin` on `datadir` with loopback ports plus `extra` arguments;
    /// stdout and stderr go to `<datadir>/stdout.log` and `stderr.log`
    /// (appended, so a restart keeps the earlier run's lines).
    pub fn spawn(bin: &Path, datadir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn_env(bin, datadir, extra, &[])
    }

    /// [`Self::spawn`] with extra environment variables.
    pub fn spawn_env(
        bin: &Path,
        datadir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(datadir)?;
        let ports_file = datadir.join("ports.json");
        let _ = std::fs::remove_file(&ports_file);
        let stdout_path = datadir.join("stdout.log");
        let stderr_path = datadir.join("stderr.log");
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        let child = Command::new(bin)
            .args(loopback_args(datadir, &ports_file))
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(open(&stdout_path)?)
            .stderr(open(&stderr_path)?)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {}: build it with cargo build -p refnode",
                    bin.display()
                )
            })?;
        let mut node = Self {
            child,
            ports: Ports {
                rpc: ([127, 0, 0, 1], 0).into(),
                metrics: ([127, 0, 0, 1], 0).into(),
                p2p: None,
                peer_id: None,
                pid: 0,
            },
            datadir: datadir.into(),
            stdout_path,
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(b) = std::fs::read(&ports_file) {
                if let Ok(p) = serde_json::from_slice::<Ports>(&b) {
                    node.ports = p;
                    return Ok(node);
                }
            }
            if let Some(st) = node.child.try_wait()? {
                bail!(
                    "qfc-refnode exited with {st} before listening; stdout:\n{}",
                    node.stdout()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "qfc-refnode did not write {} within 60 s; stdout:\n{}",
                    ports_file.display(),
                    node.stdout()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Full JSON-RPC response object for `method(params)`.
    pub fn rpc_raw(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let resp = http(self.ports.rpc, "POST", "/", Some(&body))?;
        serde_json::from_str(&resp).with_context(|| format!("{method} returned non-JSON: {resp}"))
    }

    /// The `result` of `method(params)`, or an error carrying the JSON-RPC error.
    pub fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let v = self.rpc_raw(method, params)?;
        if let Some(e) = v.get("error") {
            bail!("{method} failed: {e}");
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: no result in {v}"))
    }

    pub fn block_number(&self) -> anyhow::Result<u64> {
        let v = self.rpc("eth_blockNumber", json!([]))?;
        parse_quantity(&v).ok_or_else(|| anyhow!("eth_blockNumber returned {v}"))
    }

    /// Wait until the head is at least `n`; returns the head.
    pub fn wait_for_block(&self, n: u64, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.block_number()?;
            if h >= n {
                return Ok(h);
            }
            if Instant::now() > deadline {
                bail!("head is {h}, not {n}, after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        http(self.ports.metrics, "GET", "/metrics", None)
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("qfc-refnode did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `0x`-prefixed hex quantity from a JSON string.
pub fn parse_quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// Value of `name{labels}` (labels as written, e.g. `cf="state"`) in a
/// Prometheus text exposition; `labels` empty means no labels.
pub fn metric_value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    bundle_schema::prom::value(text, &key)
}

/// Sum of every sample of `name` across labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    bundle_schema::prom::sum(text, name).unwrap_or(0.0)
}

/// One HTTP exchange on loopback through `reqwest`'s blocking client (no
/// proxy), returning the body whatever the status (as the hand-written client
/// it replaces did: JSON-RPC tests read error bodies).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<String> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("http://{addr}{path}");
    let req = match method {
        "GET" => client.get(&url),
        "POST" => client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.unwrap_or("").to_owned()),
        other => bail!("http: method {other} is not used by the tests; use GET or POST"),
    };
    let resp = req.send().with_context(|| format!("{method} {url}"))?;
    resp.text()
        .with_context(|| format!("{method} {url}: reading the body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_args_bind_port_zero_on_loopback() {
        let a = loopback_args(Path::new("/d"), Path::new("/d/p.json"));
        let s: Vec<_> = a.iter().map(|x| x.to_string_lossy().into_owned()).collect();
        assert_eq!(
            s,
            [
                "--datadir",
                "/d",
                "--rpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--p2p-port",
                "0",
                "--lab-p2p-host",
                "127.0.0.1",
                "--lab-ports-file",
                "/d/p.json"
            ]
        );
    }

    #[test]
    fn metric_parsing() {
        let t = "# TYPE x gauge\nqfc_rocksdb_l0_files{cf=\"state\"} 3\nqfc_rocksdb_l0_files{cf=\"code\"} 1\nqfc_block_height 7\n";
        assert_eq!(
            metric_value(t, "qfc_rocksdb_l0_files", "cf=\"state\""),
            Some(3.0)
        );
        assert_eq!(metric_value(t, "qfc_block_height", ""), Some(7.0));
        assert_eq!(metric_sum(t, "qfc_rocksdb_l0_files"), 4.0);
        assert_eq!(parse_quantity(&json!("0x1f")), Some(31));
    }
}
