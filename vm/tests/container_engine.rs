//! The container target against this machine's Docker engine (issue 8):
//! builds the reference-node image from the imported Debian base, runs it
//! like production (json-file logs, ports on 127.0.0.1, data on a volume),
//! reaches its RPC, finds its cgroup, and shows T1's finding 2 in miniature:
//! every log line the node writes is written again by containerd-shim and by
//! dockerd. Skipped, with the reason, when dockerd or the refnode binary is
//! missing. Also checks a real qfc-node binary given by `QFC_NODE_BINARY`.

use std::ffi::OsString;
use std::net::SocketAddr;
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

    let probe = probe_binary();
    let p_reason = if ignored {
        Some(reason.clone())
    } else if probe.is_none() {
        Some("no qfc-probe binary in $CARGO_TARGET_DIR/{debug,release} or QFC_PROBE_BINARY: run cargo build -p probes".to_string())
    } else if !nix_is_root() {
        Some("the probes need root (BPF): run the test as root".to_string())
    } else {
        None
    };
    if let Some(r) = &p_reason {
        eprintln!("skipping probes_attribute_container_writes: {r}");
    }
    let (bin2, probe2) = (refnode.clone(), probe.clone());
    trials.push(
        Trial::test("probes_attribute_container_writes", move || {
            probes_attribute_container_writes(
                bin2.as_deref().expect("checked"),
                probe2.as_deref().expect("checked"),
            )
        })
        .with_ignored_flag(p_reason.is_some()),
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

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn probe_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QFC_PROBE_BINARY") {
        return Some(PathBuf::from(p));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    ["release", "debug"]
        .iter()
        .map(|p| dir.join(p).join("qfc-probe"))
        .find(|p| p.is_file())
}

/// Unix nanoseconds of an RFC 3339 UTC time as dockerd writes it
/// (`2026-11-27T19:43:14.123456789Z`).
fn rfc3339_ns(t: &str) -> Option<i128> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().ok()?;
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + hh * 3600 + mm * 60 + ss) as i128) * 1_000_000_000 + frac_ns as i128)
}

fn clock_ns(clock: nix::time::ClockId) -> i128 {
    let ts = nix::time::clock_gettime(clock).expect("clock_gettime of a standard clock");
    ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128
}

/// Write calls per tgid in a writepath.json.
fn writes_by_tgid(json: &serde_json::Value) -> std::collections::BTreeMap<u64, (String, u64)> {
    let mut m = std::collections::BTreeMap::new();
    if let Some(o) = json["by_process"].as_object() {
        for v in o.values() {
            let tgid = v["tgid"].as_u64().unwrap_or(0);
            let name = v["process"].as_str().unwrap_or("").to_string();
            m.insert(tgid, (name, v["hist"]["count"].as_u64().unwrap_or(0)));
        }
    }
    m
}

/// A client for the published ports (loopback; no proxy, whatever the
/// environment says).
fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())
}

/// One JSON-RPC call through the published port.
fn rpc(addr: SocketAddr, method: &str) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
    let v: serde_json::Value = client()?
        .post(format!("http://{addr}/"))
        .json(&body)
        .send()
        .and_then(|r| r.json())
        .map_err(|e| format!("{e:?}"))?;
    v.get("result")
        .cloned()
        .ok_or_else(|| format!("no result: {v}"))
}

/// GET `path` through the published port: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(reqwest::StatusCode, String), String> {
    let r = client()?
        .get(format!("http://{addr}{path}"))
        .send()
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status();
    Ok((status, r.text().map_err(|e| format!("{e:?}"))?))
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
        let (status, metrics) = http_get(t.forward(metrics_port)?, "/metrics")?;
        assert!(
            status.is_success(),
            "{status}: {}",
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
        let t0 = Instant::now();
        let ex = node.terminate(Duration::from_secs(10))?;
        eprintln!("qfc-node stopped: {ex} after {:?}", t0.elapsed());
        // SIGINT (ctrl_c) is the signal qfc-node handles: a clean exit, not
        // SIGKILL at the end of the grace.
        assert_eq!(
            ex.signal,
            None,
            "qfc-node did not stop on {}",
            t.context().stop_signal
        );
        Ok(())
    })();
    t.teardown()?;
    r
}

/// The probes, on this host, see the node through its container's cgroup
/// and, system-wide, see containerd-shim and dockerd write each of the
/// node's log lines again (T1 finding 2 with the lab's own probes).
fn probes_attribute_container_writes(bin: &Path, probe: &Path) -> Result<(), Failed> {
    let mut t = ContainerTarget::new(ContainerConfig::new(None));
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let r = (|| -> Result<(), Failed> {
        t.prepare()?;
        let path = t.ship(bin)?;
        let rpc_port = t.free_port()?;
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
            format!("{host}:0").into(),
            "--lab-block-interval-ms".into(),
            "20".into(),
        ];
        let mut node = t.spawn(&SpawnSpec {
            argv,
            ..Default::default()
        })?;
        wait_rpc(t.forward(rpc_port)?, Duration::from_secs(60))?;
        let ctx = t.context().clone();
        let cg = ctx
            .probe_cgroup
            .clone()
            .ok_or("no cgroup v2 for the probes")?;
        let shim = ppid(ctx.main_pid)?;
        let dockerd = dockerd_pid()?;
        // Both sessions at once, over (nearly) the same 3 s.
        let run = |scope: Vec<OsString>, dir: &Path| {
            let mut c = std::process::Command::new(probe);
            c.args(scope)
                .args(["--probes", "writepath", "--duration-s", "3", "--out"])
                .arg(dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            c.spawn()
        };
        let cg_dir = out.path().join("cg");
        let sys_dir = out.path().join("sys");
        let a =
            run(vec!["--cgroup".into(), cg.clone().into()], &cg_dir).map_err(|e| e.to_string())?;
        let b = run(vec!["--system".into()], &sys_dir).map_err(|e| e.to_string())?;
        let (a, b) = (
            a.wait_with_output().map_err(|e| e.to_string())?,
            b.wait_with_output().map_err(|e| e.to_string())?,
        );
        for (o, what) in [(&a, "cgroup"), (&b, "system")] {
            if !o.status.success() {
                return Err(format!(
                    "qfc-probe {what} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                )
                .into());
            }
        }
        let read = |p: PathBuf| -> Result<serde_json::Value, String> {
            let s = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
        };
        let cgj = read(cg_dir.join("capture/writepath.json"))?;
        let sysj = read(sys_dir.join("capture/writepath.json"))?;
        let cg_w = writes_by_tgid(&cgj);
        let sys_w = writes_by_tgid(&sysj);
        // json-file records whose dockerd time falls in the system window.
        let offset = clock_ns(nix::time::ClockId::CLOCK_REALTIME)
            - clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
        let (w0, w1) = (
            sysj["start_ns"].as_i64().unwrap_or(0) as i128 + offset,
            sysj["end_ns"].as_i64().unwrap_or(0) as i128 + offset,
        );
        let log = ctx.log_path.clone().ok_or("no json-file log path")?;
        let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        let recs = text
            .lines()
            .filter_map(vm::container::logs::parse_record)
            .filter_map(|r| rfc3339_ns(&r.time))
            .filter(|&ns| ns >= w0 && ns < w1)
            .count() as u64;
        let get = |m: &std::collections::BTreeMap<u64, (String, u64)>, pid: u32| {
            m.get(&(pid as u64)).map(|x| x.1).unwrap_or(0)
        };
        let node_cg = get(&cg_w, ctx.main_pid);
        let (node_sys, shim_sys, dockerd_sys) = (
            get(&sys_w, ctx.main_pid),
            get(&sys_w, shim),
            get(&sys_w, dockerd),
        );
        eprintln!(
            "probes, 3 s: cgroup scope {cg_w:?}; system scope: node {node_sys}, containerd-shim {shim_sys}, dockerd {dockerd_sys} writes; {recs} json-file records in the system window"
        );
        // The cgroup scope holds the node and nothing else.
        assert!(
            cg_w.keys().all(|&k| k == ctx.main_pid as u64),
            "cgroup scope saw other processes: {cg_w:?}"
        );
        assert!(
            node_cg >= 100,
            "the node wrote only {node_cg} times in 3 s at 50 blocks/s"
        );
        // Known answer: one shim write and at least one dockerd write per record.
        let slack = 10;
        assert!(recs >= 100, "only {recs} log records in the window");
        assert!(
            shim_sys + slack >= recs && shim_sys <= recs + slack,
            "shim {shim_sys} writes for {recs} records"
        );
        assert!(
            dockerd_sys + slack >= recs,
            "dockerd {dockerd_sys} writes for {recs} records"
        );
        assert!(
            node_sys >= recs,
            "node {node_sys} writes for {recs} log lines"
        );
        node.terminate(Duration::from_secs(10))?;
        Ok(())
    })();
    t.teardown()?;
    r
}
