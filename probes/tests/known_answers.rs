//! Known-answer tests of the five probes against real kernel programs and
//! the `probe-workload` child processes (issue 4, "Done when").
//!
//! They need root and a kernel that loads BPF: without them every trial is
//! reported as ignored with the reason printed, never as passed. Trials run
//! one at a time (they measure CPU and sleep time).
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use libtest_mimic::{Arguments, Failed, Trial};
use probes::{ProbeKind, Scope, Session, SessionOptions};
use serde_json::Value;

mod common;
use common::Workload;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_probe-workload");

fn opts(scope: Scope, probes: &[ProbeKind], out: &Path) -> SessionOptions {
    let mut o = SessionOptions::new(scope, out);
    o.probes = probes.to_vec();
    o
}

/// Runs one phase `t` around `work.run()` and returns the probe JSONs' directory.
fn capture(o: SessionOptions, work: &mut Workload) -> Result<PathBuf, Failed> {
    let out = o.out_dir.clone();
    let mut s = Session::start(o).map_err(|e| e.to_string())?;
    s.phase("t").map_err(|e| e.to_string())?;
    work.run()?;
    let (_, summary) = s.stop().map_err(|e| e.to_string())?;
    if summary.windows.len() != 1 {
        return Err(format!("expected 1 window, got {}", summary.windows.len()).into());
    }
    Ok(out.join("t"))
}

fn json(dir: &Path, probe: &str) -> Result<Value, Failed> {
    let p = dir.join(format!("{probe}.json"));
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()).into())
}

/// A scratch directory on a real block device (not tmpfs), for bio.
fn scratch() -> Result<tempfile::TempDir, Failed> {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    tempfile::tempdir_in(base).map_err(|e| e.to_string().into())
}

fn rows(v: &Value) -> Vec<(u64, String, String, u64)> {
    v["rows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["tgid"].as_u64().unwrap_or(0),
                        r["thread"].as_str().unwrap_or("").to_owned(),
                        r["syscall"].as_str().unwrap_or("").to_owned(),
                        r["count"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fsync_count_500() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("f");
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "fdatasync",
            "--count",
            "500",
            "--file",
            file.to_str().ok_or("path")?,
        ],
    )?;
    let out = capture(
        opts(
            Scope::Pid(w.pid),
            &[ProbeKind::Fsync],
            &dir.path().join("out"),
        ),
        &mut w,
    )?;
    let v = json(&out, "fsync")?;
    let pid = u64::from(w.pid);
    let n: u64 = rows(&v)
        .iter()
        .filter(|r| r.0 == pid && r.2 == "fdatasync")
        .map(|r| r.3)
        .sum();
    let by_proc = v["by_process"][w.pid.to_string()]["hist"]["count"]
        .as_u64()
        .unwrap_or(0);
    w.finish()?;
    if n != 500 || by_proc != 500 {
        return Err(format!(
            "fdatasync count for pid {pid}: rows {n}, by_process {by_proc}, want 500"
        )
        .into());
    }
    Ok(())
}

/// Issue 17: the probes' own cost is in every window. 500 fdatasync give the
/// fdatasync entry program at least 500 runs (the kernel counts every task's
/// hits, so more is possible), a per-run cost in a plausible band, and an
/// overhead share from the target's CPU time.
fn fsync_cost_in_window() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("f");
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "fdatasync",
            "--count",
            "500",
            "--file",
            file.to_str().ok_or("path")?,
        ],
    )?;
    let o = opts(
        Scope::Pid(w.pid),
        &[ProbeKind::Fsync],
        &dir.path().join("out"),
    );
    let mut s = Session::start(o).map_err(|e| e.to_string())?;
    s.phase("t").map_err(|e| e.to_string())?;
    w.run()?;
    // The workload is still alive here, so its CPU clock can be read.
    let (_, summary) = s.stop().map_err(|e| e.to_string())?;
    w.finish()?;
    let v = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
    let c = &v["windows"][0]["cost"];
    if c["bpf_stats"]["state"] != "enabled" {
        return Err(format!("BPF statistics not enabled: {}", c["bpf_stats"]).into());
    }
    let p = &c["programs"]["fdatasync_enter"];
    let runs = p["runs"].as_u64().unwrap_or(0);
    let ns = p["ns_per_event"].as_f64().unwrap_or(0.0);
    let exit_runs = c["programs"]["fsync_exit"]["runs"].as_u64().unwrap_or(0);
    let share = c["overhead_share"].as_f64();
    let target = c["target_cpu_s"].as_f64().unwrap_or(0.0);
    // A BPF program run costs tens to hundreds of ns; 5 ns would mean the
    // clock is not read, 100 µs a broken delta.
    let ok = runs >= 500
        && exit_runs >= 500
        && (5.0..100_000.0).contains(&ns)
        && target > 0.0
        && share.is_some_and(|x| x > 0.0 && x.is_finite())
        && v["overhead_pct"].as_f64().is_some();
    if !ok {
        return Err(format!(
            "cost of the window: fdatasync_enter runs {runs} (want >= 500) at {ns} ns (want 5..100000), fsync_exit runs {exit_runs}, target CPU {target} s, share {share:?}; {c}"
        )
        .into());
    }
    Ok(())
}

fn fsync_other_pid_is_zero() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("f");
    let mut other = Command::new("sleep")
        .arg("60")
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "fdatasync",
            "--count",
            "500",
            "--file",
            file.to_str().ok_or("path")?,
        ],
    )?;
    let res = capture(
        opts(
            Scope::Pid(other.id()),
            &[ProbeKind::Fsync],
            &dir.path().join("out"),
        ),
        &mut w,
    );
    let _ = other.kill();
    let _ = other.wait();
    let v = json(&res?, "fsync")?;
    let pid = u64::from(w.pid);
    let seen: u64 = rows(&v).iter().filter(|r| r.0 == pid).map(|r| r.3).sum();
    let total = v["total"]["count"].as_u64().unwrap_or(u64::MAX);
    w.finish()?;
    if seen != 0 || total != 0 {
        return Err(format!(
            "filter on another pid still saw {seen} calls of pid {pid} ({total} in all)"
        )
        .into());
    }
    Ok(())
}

fn oncpu_burn_frame() -> Result<(), Failed> {
    const FRAME: &str = "qfc_probe_burn_cpu_7c1e";
    let dir = scratch()?;
    let mut w = Workload::spawn(Path::new(WORKLOAD), &["burn", "--ms", "3000"])?;
    let out = capture(
        opts(
            Scope::Pid(w.pid),
            &[ProbeKind::Oncpu],
            &dir.path().join("out"),
        ),
        &mut w,
    )?;
    let v = json(&out, "oncpu")?;
    let pid = u64::from(w.pid);
    let (mut all, mut hit) = (0u64, 0u64);
    for s in v["stacks"].as_array().ok_or("no stacks")? {
        if s["tgid"].as_u64() != Some(pid) {
            continue;
        }
        let n = s["count"].as_u64().unwrap_or(0);
        all += n;
        let has = s["user"].as_array().is_some_and(|u| {
            u.iter()
                .any(|f| f.as_str().is_some_and(|f| f.ends_with(FRAME)))
        });
        if has {
            hit += n;
        }
    }
    let folded = std::fs::read_to_string(out.join("oncpu.folded")).map_err(|e| e.to_string())?;
    w.finish()?;
    if all < 100 {
        return Err(format!("only {all} on-CPU samples of pid {pid} in 3 s at 99 Hz").into());
    }
    let share = hit as f64 / all as f64;
    if share < 0.9 {
        return Err(format!(
            "{FRAME} in {hit}/{all} samples ({:.1}%), want >= 90%",
            share * 100.0
        )
        .into());
    }
    if !folded.contains(&format!("probe_workload::{FRAME}")) {
        return Err(
            format!("folded stacks lack the symbolized frame probe_workload::{FRAME}").into(),
        );
    }
    Ok(())
}

/// Two threads started by the workload, each burning 2 s in
/// `qfc_probe_burn_cpu_7c1e`; the workload prints their CPU time after `done`.
fn two_burners() -> Result<Workload, Failed> {
    Workload::spawn(
        Path::new(WORKLOAD),
        &["burn", "--ms", "2000", "--threads", "2"],
    )
}

/// Known answer for [`two_burners`]: the samples of the burner threads
/// (named `qfc-burn-*`, the burner in their user stack) in `oncpu` match
/// their CPU time, which the workload printed after `done`: samples = CPU seconds x
/// `hz`, within 10%.
fn burner_samples_match_cpu_time(oncpu: &Value, done: Option<&str>, hz: u64) -> Result<(), Failed> {
    const FRAME: &str = "qfc_probe_burn_cpu_7c1e";
    let cpu_ns: u64 = done
        .and_then(|v| v.parse().ok())
        .ok_or("the workload gave no CPU time after done")?;
    let mut burner = 0u64;
    for s in oncpu["stacks"].as_array().ok_or("no stacks")? {
        let named = s["thread"]
            .as_str()
            .is_some_and(|t| t.starts_with("qfc-burn-"));
        let leaf = s["user"].as_array().is_some_and(|u| {
            u.iter()
                .any(|f| f.as_str().is_some_and(|f| f.ends_with(FRAME)))
        });
        if named && leaf {
            burner += s["count"].as_u64().unwrap_or(0);
        }
    }
    let want = cpu_ns as f64 / 1e9 * hz as f64;
    eprintln!(
        "burners: {burner} samples for {:.3} CPU-s at {hz} Hz (want {want:.0})",
        cpu_ns as f64 / 1e9
    );
    if want < 100.0 {
        return Err(format!("the burners got only {cpu_ns} ns of CPU").into());
    }
    if (burner as f64 - want).abs() > 0.1 * want {
        return Err(
            format!("{burner} samples of the burner threads, want {want:.0} +- 10%").into(),
        );
    }
    Ok(())
}

/// Per-task sampling (a process scope): two threads started after the
/// probe attached carry the inherited cpu-clock events, and their samples
/// match their CPU time: samples = CPU seconds x Hz, within 10%.
fn oncpu_new_threads_sampled_per_task() -> Result<(), Failed> {
    let dir = scratch()?;
    let mut w = two_burners()?;
    let o = opts(
        Scope::Pid(w.pid),
        &[ProbeKind::Oncpu],
        &dir.path().join("out"),
    );
    let hz = o.hz;
    let out = capture(o, &mut w)?;
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/session.json")).map_err(|e| e.to_string())?,
    )?;
    let done = w.done.clone();
    w.finish()?;
    if session["attach"]["oncpu_sampling"] != "per_task" {
        return Err(format!(
            "oncpu_sampling is {}, want per_task for a process scope",
            session["attach"]["oncpu_sampling"]
        )
        .into());
    }
    burner_samples_match_cpu_time(&json(&out, "oncpu")?, done.as_deref(), hz)
}

/// A stack map of one bucket refuses nearly every stack (`EEXIST`); in
/// `fp` mode the refused stacks go inline through the ring buffer instead
/// of being lost. Known answer: no on-CPU or off-CPU stack is lost, the
/// fallbacks are counted, and the burners' samples still match their CPU
/// time (samples = CPU seconds x Hz, within 10%).
fn stack_map_refusals_kept_inline() -> Result<(), Failed> {
    let dir = scratch()?;
    let mut w = two_burners()?;
    let mut o = opts(
        Scope::Pid(w.pid),
        &[ProbeKind::Oncpu, ProbeKind::Offcpu],
        &dir.path().join("out"),
    );
    o.unwind = probes::unwind::UnwindMode::Fp;
    o.stack_entries = 1;
    let hz = o.hz;
    let out = o.out_dir.join("t");
    let mut s = Session::start(o).map_err(|e| e.to_string())?;
    s.phase("t").map_err(|e| e.to_string())?;
    w.run()?;
    let (_, summary) = s.stop().map_err(|e| e.to_string())?;
    let done = w.done.clone();
    w.finish()?;
    let win = summary.windows.first().ok_or("no window")?;
    for (probe, lost) in [
        ("oncpu", "oncpu_stack_lost"),
        ("offcpu", "offcpu_stack_lost"),
    ] {
        let n = win.lost_events.get(lost).copied().unwrap_or(0);
        let q = win
            .stack_quality
            .get(probe)
            .ok_or_else(|| format!("no stack quality for {probe}"))?;
        eprintln!(
            "{probe}: {n} lost, {} kept inline; {q:?}",
            q.stack_map_fallbacks
        );
        if n != 0 {
            return Err(format!("{n} {probe} stacks lost with a 1-bucket stack map: {q:?}").into());
        }
        if q.stack_map_fallbacks == 0 {
            return Err(format!("a 1-bucket stack map refused no {probe} stack: {q:?}").into());
        }
        if q.method_share.get("fp").copied().unwrap_or(0.0) < 1.0 {
            return Err(
                format!("{probe} stacks not all by frame pointers in fp mode: {q:?}").into(),
            );
        }
    }
    burner_samples_match_cpu_time(&json(&out, "oncpu")?, done.as_deref(), hz)
}

fn offcpu_sleep_time() -> Result<(), Failed> {
    let dir = scratch()?;
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &["sleep", "--ms", "20", "--count", "100"],
    )?;
    let out = capture(
        opts(
            Scope::Pid(w.pid),
            &[ProbeKind::Offcpu],
            &dir.path().join("out"),
        ),
        &mut w,
    )?;
    let v = json(&out, "offcpu")?;
    let pid = u64::from(w.pid);
    let mut sleep_us = 0.0;
    for s in v["stacks"].as_array().ok_or("no stacks")? {
        if s["tgid"].as_u64() == Some(pid) && s["class"].as_str() == Some("sleep") {
            sleep_us += s["count"].as_f64().unwrap_or(0.0);
        }
    }
    w.finish()?;
    let want_us = 100.0 * 20_000.0;
    if (sleep_us - want_us).abs() > want_us * 0.10 {
        return Err(
            format!("off-CPU sleep time {sleep_us:.0} µs, want {want_us:.0} µs ± 10%").into(),
        );
    }
    Ok(())
}

fn bio_direct_writes() -> Result<(), Failed> {
    let dir = scratch()?;
    let dev = std::fs::metadata(dir.path())
        .map_err(|e| e.to_string())?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if !Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        return Err(format!("{} is not on a block device ({major}:{minor}); set CARGO_TARGET_TMPDIR to a disk-backed directory", dir.path().display()).into());
    }
    let file = dir.path().join("direct");
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "write",
            "--file",
            file.to_str().ok_or("path")?,
            "--count",
            "200",
            "--direct",
        ],
    )?;
    let out = capture(
        opts(
            Scope::Pid(w.pid),
            &[ProbeKind::Bio],
            &dir.path().join("out"),
        ),
        &mut w,
    )?;
    w.finish()?;
    let v = json(&out, "bio")?;
    let (mut n, mut bytes) = (0u64, 0u64);
    for (rwbs, h) in v["by_rwbs"].as_object().ok_or("no by_rwbs")? {
        if rwbs.starts_with('W') {
            n += h["count"].as_u64().unwrap_or(0);
            bytes += v["bytes_by_rwbs"][rwbs].as_u64().unwrap_or(0);
        }
    }
    // bio is device-wide: other writers may add to these, never subtract.
    if n < 200 || bytes < 200 * 4096 {
        return Err(format!(
            "W* requests {n} ({bytes} bytes), want >= 200 (819200 bytes); by_rwbs: {}",
            v["by_rwbs"]
        )
        .into());
    }
    if v["by_rwbs"]
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.contains('\0') || k.is_empty()))
    {
        return Err("an RWBS key is not a clean C string".into());
    }
    Ok(())
}

fn writepath_two_threads() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("t");
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "threads",
            "--file",
            file.to_str().ok_or("path")?,
            "--writes",
            "3000",
            "--pwrites",
            "2000",
            "--syncs",
            "20",
        ],
    )?;
    let out = capture(
        opts(
            Scope::Pid(w.pid),
            &[ProbeKind::Writepath, ProbeKind::Fsync],
            &dir.path().join("out"),
        ),
        &mut w,
    )?;
    let pid = u64::from(w.pid);
    w.finish()?;
    let v = json(&out, "writepath")?;
    let count = |thread: &str, sys: &str| -> u64 {
        rows(&v)
            .iter()
            .filter(|r| r.0 == pid && r.1 == thread && r.2 == sys)
            .map(|r| r.3)
            .sum()
    };
    let got = [
        ("qfc-wr-a", "write", count("qfc-wr-a", "write"), 3000),
        ("qfc-wr-b", "pwrite64", count("qfc-wr-b", "pwrite64"), 2000),
        ("qfc-wr-b", "fdatasync", count("qfc-wr-b", "fdatasync"), 20),
        ("qfc-wr-a", "pwrite64", count("qfc-wr-a", "pwrite64"), 0),
        ("qfc-wr-b", "write", count("qfc-wr-b", "write"), 0),
    ];
    let bad: Vec<String> = got
        .iter()
        .filter(|g| g.2 != g.3)
        .map(|g| format!("({}, {}) = {} want {}", g.0, g.1, g.2, g.3))
        .collect();
    let f = json(&out, "fsync")?;
    let fs: u64 = rows(&f)
        .iter()
        .filter(|r| r.0 == pid && r.1 == "qfc-wr-b" && r.2 == "fdatasync")
        .map(|r| r.3)
        .sum();
    if !bad.is_empty() || fs != 20 {
        return Err(format!(
            "per (thread, syscall) counts: {}; fsync probe saw {fs} fdatasync (want 20)",
            bad.join(", ")
        )
        .into());
    }
    Ok(())
}

fn tiny_maps_count_drops() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("t");
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "threads",
            "--file",
            file.to_str().ok_or("path")?,
            "--writes",
            "3000",
            "--pwrites",
            "2000",
            "--syncs",
            "20",
        ],
    )?;
    let mut o = opts(
        Scope::Pid(w.pid),
        &[ProbeKind::Writepath],
        &dir.path().join("out"),
    );
    o.map_entries = Some(2);
    let out_root = o.out_dir.clone();
    let out = capture(o, &mut w)?;
    w.finish()?;
    let v = json(&out, "writepath")?;
    let recorded = v["total"]["count"].as_u64().unwrap_or(0);
    let lost = &v["lost_events"];
    let full = lost["writepath_map_full"].as_u64().unwrap_or(0);
    let inflight = lost["writepath_inflight_full"].as_u64().unwrap_or(0);
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(out_root.join("session.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let session_lost = session["lost_events_total"].as_u64().unwrap_or(0);
    // 5020 calls by the two threads plus the main thread's one write of "done".
    let expect = 3000 + 2000 + 20 + 1;
    if full == 0 {
        return Err(
            format!("a 2-entry aggregate map recorded {recorded} events and lost none").into(),
        );
    }
    if recorded + full + inflight != expect {
        return Err(format!("recorded {recorded} + map full {full} + in-flight full {inflight} != {expect} syscalls").into());
    }
    if session_lost != full + inflight {
        return Err(format!(
            "session.json lost_events_total {session_lost} != {}",
            full + inflight
        )
        .into());
    }
    Ok(())
}

const QFC_PROBE: &str = env!("CARGO_BIN_EXE_qfc-probe");

/// Lockstep through the `qfc-probe --control stdin` protocol: boundaries
/// cut a running fdatasync loop into three windows; the windows are
/// contiguous, carry the announced timestamps, and their counts add up to
/// exactly what the workload did (nothing lost or doubled at a boundary).
fn lockstep_windows_lose_nothing() -> Result<(), Failed> {
    let dir = scratch()?;
    let file = dir.path().join("f");
    let out = dir.path().join("out");
    // Paced (1 ms after each call: at least 1.2 s of work) so that the work
    // always spans the 400 ms windows a and b, however fast the disk is.
    let mut w = Workload::spawn(
        Path::new(WORKLOAD),
        &[
            "fdatasync",
            "--count",
            "1200",
            "--gap-us",
            "1000",
            "--file",
            file.to_str().ok_or("path")?,
        ],
    )?;
    let mut p = Command::new(QFC_PROBE)
        .args([
            "--pid",
            &w.pid.to_string(),
            "--probes",
            "fsync,writepath",
            "--control",
            "stdin",
            "--out",
        ])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {QFC_PROBE}: {e}"))?;
    let mut pin = p.stdin.take().ok_or("no stdin")?;
    let mut pout = BufReader::new(p.stdout.take().ok_or("no stdout")?);
    let mut say = |cmd: &str| -> Result<String, Failed> {
        if !cmd.is_empty() {
            writeln!(pin, "{cmd}").map_err(|e| e.to_string())?;
            pin.flush().map_err(|e| e.to_string())?;
        }
        let mut line = String::new();
        pout.read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim().to_owned())
    };
    let ready = say("")?;
    if !ready.starts_with("ready ") {
        return Err(format!("first line {ready:?}, want ready <ns>").into());
    }
    let mut bounds = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let ans = say(&format!("phase {name}"))?;
        let ns: u64 = ans
            .strip_prefix(&format!("phase {name} "))
            .and_then(|n| n.parse().ok())
            .ok_or(format!("answer {ans:?}"))?;
        bounds.push(ns);
        if i == 0 {
            let stdin = w.stdin.as_mut().ok_or("stdin")?;
            stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
            stdin.flush().map_err(|e| e.to_string())?;
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    let bad = say("phase bad/name")?;
    if !bad.starts_with("error ") {
        return Err(format!("invalid phase name answered {bad:?}, want error ...").into());
    }
    let mut line = String::new();
    w.stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let stopped = say("stop")?;
    let end: u64 = stopped
        .strip_prefix("stopped ")
        .and_then(|n| n.parse().ok())
        .ok_or(format!("answer {stopped:?}"))?;
    bounds.push(end);
    let _ = p.wait();
    let pid = u64::from(w.pid);
    w.finish()?;
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("session.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let windows = session["windows"].as_array().ok_or("no windows")?;
    let got: Vec<(String, u64, u64)> = windows
        .iter()
        .map(|w| {
            (
                w["phase"].as_str().unwrap_or("").to_owned(),
                w["start_ns"].as_u64().unwrap_or(0),
                w["end_ns"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), bounds[i], bounds[i + 1]))
        .collect();
    if got != want {
        return Err(format!("windows {got:?}, want {want:?}").into());
    }
    let mut per = Vec::new();
    for probe in ["fsync", "writepath"] {
        let mut counts = Vec::new();
        for phase in ["a", "b", "c"] {
            let v = json(&out.join(phase), probe)?;
            counts.push(
                rows(&v)
                    .iter()
                    .filter(|r| r.0 == pid && r.2 == "fdatasync")
                    .map(|r| r.3)
                    .sum::<u64>(),
            );
        }
        per.push((probe, counts));
    }
    for (probe, counts) in &per {
        if counts.iter().sum::<u64>() != 1200 || counts[0] == 0 || counts[1] == 0 {
            return Err(format!(
                "{probe}: fdatasync per window {counts:?}, want non-zero a and b adding up to 1200"
            )
            .into());
        }
    }
    Ok(())
}

/// Why the trials cannot run here, if they cannot.
fn capability() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (CAP_BPF, CAP_PERFMON) to load eBPF programs".into());
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Some(format!("no temporary directory: {e}")),
    };
    let o = opts(
        Scope::Pid(std::process::id()),
        &[ProbeKind::Fsync],
        dir.path(),
    );
    match Session::start(o) {
        Ok(s) => s
            .stop()
            .err()
            .map(|e| format!("cannot run a probe session: {e}")),
        Err(e) => Some(format!("cannot load and attach the probes: {e}")),
    }
}

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let skip = capability();
    if let Some(why) = &skip {
        eprintln!("known_answers: all trials skipped: {why}");
    }
    let trials: Vec<(&str, fn() -> Result<(), Failed>)> = vec![
        ("fsync_counts_exactly_500_fdatasync", fsync_count_500),
        ("fsync_cost_in_window_issue_17", fsync_cost_in_window),
        (
            "fsync_filter_on_other_pid_sees_zero",
            fsync_other_pid_is_zero,
        ),
        ("oncpu_burn_frame_in_90pct_of_samples", oncpu_burn_frame),
        (
            "oncpu_per_task_new_threads_samples_match_cpu_time",
            oncpu_new_threads_sampled_per_task,
        ),
        (
            "stack_map_refusals_kept_inline",
            stack_map_refusals_kept_inline,
        ),
        ("offcpu_sleep_time_within_10pct", offcpu_sleep_time),
        ("bio_direct_writes_under_w_rwbs", bio_direct_writes),
        ("writepath_two_thread_counts_match", writepath_two_threads),
        ("tiny_maps_count_their_drops", tiny_maps_count_drops),
        (
            "lockstep_windows_lose_nothing",
            lockstep_windows_lose_nothing,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(skip.is_some()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
