//! The container target against this machine's Docker engine (issue 8):
//! builds the reference-node image from the imported Debian base, runs it
//! like production (json-file logs, ports on 127.0.0.1, data on a volume),
//! reaches its RPC, finds its cgroup, and shows T1's finding 2 in miniature:
//! every log line the node writes is written again by containerd-shim and by
//! dockerd. Skipped, with the reason, when dockerd or the refnode binary is
//! missing. Also checks a real qfc-node binary given by `QFC_NODE_BINARY`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use vm::container::{cli, ContainerConfig, ContainerTarget};
use vm::nodebin;
use vm::{SpawnSpec, Target};

fn main() {
    let args = Arguments::from_args();
    let docker_missing = docker_missing();
    let refnode = refnode_binary();
    let mut trials = vec![];
    let (ignored, reason) = match (&docker_missing, &refnode) {
        (Some(r), _) => (true, r.clone()),
        (None, None) => (
            true,
            "no qfc-refnode binary in $CARGO_TARGET_DIR/{debug,release} or QFC_REFNODE_BINARY: run cargo build -p refnode".to_string(),
        ),
        (None, Some(_)) => (false, String::new()),
    };
    if ignored {
        eprintln!("skipping refnode_container_like_production: {reason}");
    }
    let bin = refnode.clone();
    trials.push(
        Trial::test("refnode_container_like_production", move || {
            refnode_container_like_production(bin.as_deref().expect("checked"))
        })
        .with_ignored_flag(ignored),
    );

    let qfc = std::env::var_os("QFC_NODE_BINARY").map(PathBuf::from);
    let q_reason = if qfc.is_none() {
        Some(
            "QFC_NODE_BINARY is not set: give the path of a qfc-node built for this machine".into(),
        )
    } else {
        docker_missing.clone()
    };
    if let Some(r) = &q_reason {
        eprintln!("skipping qfc_node_container: {r}");
    }
    let q = qfc.clone();
    trials.push(
        Trial::test("qfc_node_container", move || {
            qfc_node_container(q.as_deref().expect("checked"))
        })
        .with_ignored_flag(q_reason.is_some()),
    );
    libtest_mimic::run(&args, trials).exit();
}

fn docker_missing() -> Option<String> {
    let docker = cli::default_docker();
    match cli::run(&cli::version_argv(&docker), &[], Duration::from_secs(20)) {
        Ok(o) if o.success() => None,
        Ok(o) => Some(format!(
            "the Docker engine does not answer ({}): start it with scripts/services.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "no docker client ({e}): install docker.io with scripts/setup.sh"
        )),
    }
}

fn refnode_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QFC_REFNODE_BINARY") {
        return Some(PathBuf::from(p));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    ["release", "debug"]
        .iter()
        .map(|p| dir.join(p).join("qfc-refnode"))
        .find(|p| p.is_file())
}

/// One JSON-RPC call over HTTP/1.1 (no client library: the point is to
/// reach the published port).
fn rpc(addr: SocketAddr, method: &str) -> Result<serde_json::Value, String> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let json = resp.split("\r\n\r\n").nth(1).ok_or("no HTTP body")?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
    v.get("result")
        .cloned()
        .ok_or_else(|| format!("no result: {v}"))
}

fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    Ok(resp)
}

fn block_number(addr: SocketAddr) -> Result<u64, String> {
    let v = rpc(addr, "eth_blockNumber")?;
    let s = v.as_str().ok_or("eth_blockNumber is not a string")?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
}

fn wait_rpc(addr: SocketAddr, limit: Duration) -> Result<u64, String> {
    let t0 = Instant::now();
    loop {
        match block_number(addr) {
            Ok(n) => return Ok(n),
            Err(e) if t0.elapsed() > limit => {
                return Err(format!("RPC at {addr} never answered: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// (write syscalls, bytes written) of a process, from /proc/PID/io.
fn proc_io(pid: u32) -> Result<(u64, u64), String> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .map_err(|e| format!("/proc/{pid}/io: {e}"))?;
    let get = |k: &str| {
        t.lines()
            .find_map(|l| {
                l.strip_prefix(k)
                    .map(|v| v.trim().parse::<u64>().unwrap_or(0))
            })
            .unwrap_or(0)
    };
    Ok((get("syscw:"), get("wchar:")))
}

fn ppid(pid: u32) -> Result<u32, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("PPid:").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| "no PPid".into())
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn dockerd_pid() -> Result<u32, String> {
    let s = std::fs::read_to_string("/var/run/docker.pid")
        .map_err(|e| format!("/var/run/docker.pid: {e}"))?;
    s.trim()
        .parse()
        .map_err(|e| format!("/var/run/docker.pid: {e}"))
}

/// (records, bytes of log text) in a json-file log.
fn log_records(path: &Path) -> Result<(u64, u64), String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut n = 0;
    let mut bytes = 0;
    for l in t.lines() {
        if let Some(r) = vm::container::logs::parse_record(l) {
            n += 1;
            bytes += r.log.len() as u64;
        }
    }
    Ok((n, bytes))
}

fn refnode_container_like_production(bin: &Path) -> Result<(), Failed> {
    let nb = nodebin::inspect(bin, std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let mut t = ContainerTarget::new(ContainerConfig::new(None));
    let r = (|| -> Result<(), Failed> {
        t.prepare()?;
        let path = t.ship(bin)?;
        let (rpc_port, metrics_port) = (t.free_port()?, t.free_port()?);
        let host = t.listen_host();
        let argv: Vec<OsString> = vec![
            path.into(),
            "--dev".into(),
            "--no-network".into(),
            "--datadir".into(),
            "/data/node".into(),
            "--rpc-addr".into(),
            format!("{host}:{rpc_port}").into(),
            "--metrics-addr".into(),
            format!("{host}:{metrics_port}").into(),
            "--lab-block-interval-ms".into(),
            "20".into(),
        ];
        let t_start = Instant::now();
        let mut node = t.spawn(&SpawnSpec {
            argv,
            ..Default::default()
        })?;
        let ctx = t.context().clone();
        eprintln!(
            "engine {} (API {}), image {} id {}, base {:?}, container {} pid {}, spawned in {:?}",
            ctx.engine_version,
            ctx.api_version,
            ctx.image,
            ctx.image_id,
            ctx.base_image_id,
            ctx.container_name,
            ctx.main_pid,
            t_start.elapsed()
        );
        assert_eq!(ctx.log_driver, "json-file");
        assert!(ctx.image_id.starts_with("sha256:"), "{}", ctx.image_id);
        assert!(!ctx.engine_version.is_empty());
        let rpc_addr = t.forward(rpc_port)?;
        assert!(rpc_addr.ip().is_loopback());
        let first = wait_rpc(rpc_addr, Duration::from_secs(60))?;
        let metrics = http_get(t.forward(metrics_port)?, "/metrics")?;
        assert!(
            metrics.starts_with("HTTP/1.1 200"),
            "{}",
            &metrics[..metrics.len().min(200)]
        );

        // The node is PID 1 of its container, and its cgroup is known.
        let pid = ctx.main_pid;
        assert_eq!(comm(pid), "qfc-refnode");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
        let nspid = status
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .unwrap_or("")
            .to_string();
        assert!(
            nspid.split_whitespace().last() == Some("1"),
            "node is not PID 1 in its namespace: {nspid}"
        );
        let cgs = ctx.cgroups.clone().ok_or("no cgroups recorded")?;
        eprintln!("cgroups: {cgs:?}, probe cgroup {:?}", ctx.probe_cgroup);
        if cgs.host_version == 1 {
            assert!(
                cgs.v1
                    .iter()
                    .any(|(_, p)| p.to_string_lossy().contains(&ctx.container_id)),
                "no v1 cgroup names the container: {cgs:?}"
            );
        }
        let pcg = ctx
            .probe_cgroup
            .clone()
            .ok_or("no cgroup v2 for the probes")?;
        let procs = std::fs::read_to_string(pcg.join("cgroup.procs")).map_err(|e| e.to_string())?;
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "{pid} not in {}",
            pcg.display()
        );

        // T1 finding 2 in miniature: node log lines -> shim and dockerd writes.
        let shim = ppid(pid)?;
        assert!(
            comm(shim).starts_with("containerd-shim"),
            "parent of the node is {}",
            comm(shim)
        );
        let dockerd = dockerd_pid()?;
        let log = ctx.log_path.clone().ok_or("no json-file log path")?;
        // Snapshots at the same instants: json-file records, node, shim and
        // dockerd write counters. In-flight lines at the window's edges make
        // the counts differ by a few lines at most.
        let snap = || -> Result<[u64; 8], String> {
            let (r, b) = log_records(&log)?;
            let (nw, nb) = proc_io(pid)?;
            let (sw, sb) = proc_io(shim)?;
            let (dw, db) = proc_io(dockerd)?;
            Ok([r, b, nw, nb, sw, sb, dw, db])
        };
        let b0 = block_number(rpc_addr)?;
        let s0 = snap()?;
        std::thread::sleep(Duration::from_secs(3));
        let s1 = snap()?;
        let b1 = block_number(rpc_addr)?;
        let d: Vec<u64> = s0.iter().zip(s1.iter()).map(|(a, b)| b - a).collect();
        let (blocks, recs, log_bytes) = (b1 - b0, d[0], d[1]);
        let (node_w, node_b, shim_w, shim_b, d_w, d_b) = (d[2], d[3], d[4], d[5], d[6], d[7]);
        eprintln!(
            "3 s window: {blocks} blocks, {recs} json-file records ({log_bytes} bytes of node output); node {node_w} writes / {node_b} bytes; containerd-shim {shim_w} writes / {shim_b} bytes; dockerd {d_w} writes / {d_b} bytes (first block seen {first})"
        );
        let slack = 10; // lines in flight at either edge
        let line = log_bytes / recs.max(1);
        // Each produced block logs one line.
        assert!(
            blocks >= 20,
            "only {blocks} blocks in 3 s at a 20 ms interval"
        );
        assert!(
            recs + slack >= blocks,
            "{recs} log records for {blocks} blocks"
        );
        // The node writes each line with (at least) one write().
        assert!(
            node_w + slack >= recs,
            "node {node_w} writes for {recs} lines"
        );
        // containerd-shim copies the node's stdout into dockerd's FIFO:
        // about the node's log bytes again.
        assert!(
            shim_w > 0 && shim_b + slack * line >= log_bytes,
            "shim {shim_w} writes / {shim_b} bytes for {log_bytes}"
        );
        // dockerd writes each record to the json file: at least one write
        // per record, and more bytes than the node wrote (JSON framing).
        assert!(
            d_w + slack >= recs,
            "dockerd {d_w} writes for {recs} records"
        );
        assert!(
            d_b + slack * line >= log_bytes,
            "dockerd wrote {d_b} bytes for {log_bytes} of node output"
        );

        // stdout comes back through the json-file follower.
        let mut out = node.take_stdout().ok_or("no stdout")?;
        let ex = node.terminate(Duration::from_secs(10))?;
        let mut text = String::new();
        out.read_to_string(&mut text).map_err(|e| e.to_string())?;
        assert!(
            text.contains("Produced block"),
            "stdout had no block lines: {} bytes",
            text.len()
        );
        eprintln!(
            "node stopped: {ex}; stdout {} bytes through the json-file log",
            text.len()
        );
        Ok(())
    })();
    t.teardown()?;
    eprintln!(
        "refnode binary: {} build id {:?} frame pointers {:?}",
        nb.blake3, nb.build_id, nb.frame_pointers
    );
    r
}

fn qfc_node_container(bin: &Path) -> Result<(), Failed> {
    let mut nb = nodebin::inspect(bin, std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let v = cli::run(&nodebin::version_argv(bin), &[], Duration::from_secs(10))?;
    nb.version = nodebin::parse_version(&v.stdout);
    eprintln!("{}", serde_json::to_string_pretty(&nb).unwrap_or_default());
    assert!(nb.version.is_some(), "qfc-node --version printed nothing");
    let mut t = ContainerTarget::new(ContainerConfig::new(None));
    let r = (|| -> Result<(), Failed> {
        t.prepare()?;
        let path = t.ship(bin)?;
        let (rpc_port, metrics_port) = (t.free_port()?, t.free_port()?);
        let host = t.listen_host();
        let argv: Vec<OsString> = vec![
            path.into(),
            "--dev".into(),
            "--no-network".into(),
            "--datadir".into(),
            "/data/node".into(),
            "--rpc-addr".into(),
            format!("{host}:{rpc_port}").into(),
            "--metrics-addr".into(),
            format!("{host}:{metrics_port}").into(),
        ];
        let mut node = t.spawn(&SpawnSpec {
            argv,
            ..Default::default()
        })?;
        let rpc_addr = t.forward(rpc_port)?;
        let n = wait_rpc(rpc_addr, Duration::from_secs(90))?;
        let chain = rpc(rpc_addr, "eth_chainId")?;
        eprintln!(
            "qfc-node in a container: block {n}, chain id {chain}, image {}",
            t.context().image_id
        );
        assert_eq!(chain.as_str(), Some("0x2328"));
        let ex = node.terminate(Duration::from_secs(10))?;
        eprintln!("qfc-node stopped: {ex}");
        Ok(())
    })();
    t.teardown()?;
    r
}
