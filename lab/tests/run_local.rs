//! End-to-end `qfc-lab run` on the local target (issue 2): the smoke
//! scenario with the reference node writes a bundle that verifies and that
//! any one-byte change breaks, naming the file; SIGINT mid-phase exits 3
//! with an incomplete bundle that verifies and no child left; a node that
//! dies at start gives exit 3 and an incomplete bundle; a disk that fills up
//! mid-run and probe output that cannot be fetched give exit 3 and an
//! incomplete bundle with the reason (issue 13).
//!
//! Needs `qfc-refnode` built into the same target directory as `qfc-lab`
//! (`cargo build -p refnode`); without it those trials are reported as
//! ignored with that reason, never as passed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

mod common;

fn lab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qfc-lab"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn refnode() -> Option<PathBuf> {
    let p = lab().parent()?.join("qfc-refnode");
    p.is_file().then_some(p)
}

fn verify(dir: &Path) -> (i32, String) {
    let o = Command::new(lab()).arg("verify").arg(dir).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Sends SIGINT to a `qfc-lab run`.
fn sigint(pid: u32) -> Result<(), Failed> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    Ok(())
}

/// The bundle of a run stopped by SIGINT: `incomplete`, naming the signal.
fn ensure_interrupted(out: &Path) -> Result<(), Failed> {
    let m = manifest(out);
    ensure(
        m["status"] == "incomplete",
        format!("status {}", m["status"]),
    )?;
    ensure(
        m["error"].as_str().is_some_and(|e| e.contains("SIGINT")),
        format!("error {}", m["error"]),
    )
}

fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

fn smoke_bundle_verifies_and_detects_any_changed_byte() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let o = Command::new(lab())
        .args(["run", "scenarios/smoke.toml", "--json", "--out"])
        .arg(&out)
        .current_dir(repo())
        .output()?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    ensure(
        o.status.code() == Some(0),
        format!(
            "run exit {:?}\n{stdout}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        ),
    )?;
    let m = manifest(&out);
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    ensure(
        stdout
            .lines()
            .any(|l| l.contains("\"event\":\"phase_started\"")),
        "no phase_started event",
    )?;
    events_keep_their_order(stdout.lines())?;
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("timeline.json"))?)?;
    let phases = timeline["phases"]
        .as_array()
        .ok_or("no phases in timeline")?;
    ensure(phases.len() == 2, "two phases expected")?;
    for w in phases {
        let (s, e) = (
            w["start_ns"].as_u64().unwrap(),
            w["end_ns"].as_u64().unwrap(),
        );
        let secs = (e - s) as f64 / 1e9;
        let planned = w["planned_s"].as_f64().unwrap();
        ensure(
            secs >= planned && secs < planned + 20.0,
            format!("phase {} lasted {secs} s", w["name"]),
        )?;
    }
    for f in [
        "metrics/warmup.prom",
        "metrics/stress.prom",
        "metrics/series.jsonl",
        "node/stdout.log",
        "node/stderr.log",
        "context.json",
        "context.txt",
        "scenario.toml",
    ] {
        ensure(out.join(f).is_file(), format!("{f} missing"))?;
    }
    let prom = std::fs::read_to_string(out.join("metrics/stress.prom"))?;
    ensure(
        prom.lines()
            .any(|l| !l.starts_with('#') && !l.trim().is_empty()),
        "empty /metrics scrape",
    )?;
    // Issue 14: the spine's files read back through the one schema type the
    // report uses, on real output (timeline.json, every series.jsonl line).
    let tl: bundle_schema::timeline::Timeline =
        serde_json::from_slice(&std::fs::read(out.join("timeline.json"))?)?;
    ensure(
        tl.clock == "CLOCK_MONOTONIC" && tl.phases.iter().all(|p| p.completed),
        format!("timeline.json read back as {tl:?}"),
    )?;
    let series = std::fs::read_to_string(out.join("metrics/series.jsonl"))?;
    let mut scraped = 0;
    for line in series.lines() {
        let l: bundle_schema::metrics::MetricsLine = serde_json::from_str(line)?;
        if l.all_samples().contains_key("qfc_block_height") {
            scraped += 1;
        }
    }
    ensure(scraped > 0, "no series.jsonl line with qfc_block_height")?;
    ensure(
        bundle_schema::prom::value(&prom, "qfc_block_height").is_some(),
        "stress.prom: no qfc_block_height sample",
    )?;
    let ctx: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("context.json"))?)?;
    ensure(
        ctx["threads_at_ready"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "no thread census",
    )?;

    let (code, text) = verify(&out);
    ensure(
        code == 0,
        format!("verify of a fresh bundle failed: {text}"),
    )?;
    let files: Vec<String> = m["files"].as_object().unwrap().keys().cloned().collect();
    ensure(files.len() >= 8, format!("only {} files", files.len()))?;
    for f in &files {
        let p = out.join(f);
        let orig = std::fs::read(&p)?;
        let mut changed = orig.clone();
        if changed.is_empty() {
            changed.push(b'x');
        } else {
            let i = changed.len() / 2;
            changed[i] ^= 0x01;
        }
        std::fs::write(&p, &changed)?;
        let (code, text) = verify(&out);
        std::fs::write(&p, &orig)?;
        ensure(
            code != 0 && text.contains(&format!("changed: {f}")),
            format!("flipping a byte of {f}: exit {code}, {text}"),
        )?;
    }
    std::fs::write(out.join("stray.txt"), b"x")?;
    let (code, text) = verify(&out);
    ensure(
        code != 0 && text.contains("extra: stray.txt"),
        format!("extra file: {text}"),
    )?;
    Ok(())
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Processes whose command line mentions `needle` (our scratch directory).
fn procs_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

fn sigint_mid_phase_leaves_incomplete_verifiable_bundle_and_no_child() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let mut child = Command::new(lab())
        .args(["run", "scenarios/smoke.toml", "--json", "--out"])
        .arg(&out)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let lab_pid = child.id();
    let mut node_pid = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(90);
    for line in lines.by_ref() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["event"] == "node_started" {
            node_pid = v["pid"].as_u64().map(|p| p as u32);
        }
        if v["event"] == "phase_started" && v["name"] == "stress" {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("no stress phase within 90 s".into());
        }
    }
    let node_pid = node_pid.ok_or("no node_started event")?;
    std::thread::sleep(Duration::from_secs(1));
    ensure(alive(node_pid), "node not running mid-phase")?;
    sigint(lab_pid)?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait()?;
    ensure(
        status.code() == Some(3),
        format!("exit {:?}, events after SIGINT: {rest:?}", status.code()),
    )?;
    ensure(
        !alive(node_pid),
        format!("node pid {node_pid} still running"),
    )?;
    let left = procs_mentioning(&format!("qfc-lab-{lab_pid}-"));
    ensure(left.is_empty(), format!("processes left behind: {left:?}"))?;
    ensure_interrupted(&out)?;
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("timeline.json"))?)?;
    ensure(
        timeline["phases"][1]["completed"] == false,
        "interrupted phase marked completed",
    )?;
    let (code, text) = verify(&out);
    ensure(
        code == 0,
        format!("incomplete bundle does not verify: {text}"),
    )?;
    Ok(())
}

/// Ctrl-C during an in-process step (seeding a large datadir, which alone
/// would take well over 2 s) ends the run within 2 s: the seeder asks for a
/// stop between batches. The bundle is incomplete, names the signal, and
/// no node was started.
fn sigint_while_seeding_ends_the_run_within_2_s() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let smoke = std::fs::read_to_string(repo().join("scenarios/smoke.toml"))?;
    // 6 million keys of 256 bytes: about 1.5 GB, many seconds of writing
    let scenario = tmp.path().join("seed-heavy.toml");
    std::fs::write(
        &scenario,
        format!("{smoke}\n[node.seed_db]\nkeys = 6_000_000\nvalue_bytes = 256\n"),
    )?;
    let out = tmp.path().join("bundle");
    let mut child = Command::new(lab())
        .args(["run", "--json", "--out"])
        .arg(&out)
        .arg(&scenario)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let lab_pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        seen.push(v.to_string());
        if v["event"] == "step" && v["step"] == "seed_datadir" {
            break;
        }
        if v["event"] == "finished" {
            break;
        }
    }
    ensure(
        seen.last().is_some_and(|l| l.contains("seed_datadir")),
        format!("no seed_datadir step: {seen:?}"),
    )?;
    // let the seeder get going
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    sigint(lab_pid)?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait()?;
    let took = sent.elapsed();
    ensure(
        took <= Duration::from_secs(2),
        format!("the run took {took:?} to end after SIGINT while seeding"),
    )?;
    ensure(
        status.code() == Some(3),
        format!("exit {:?}, events after SIGINT: {rest:?}", status.code()),
    )?;
    ensure(
        !rest.iter().chain(&seen).any(|l| l.contains("node_started")),
        format!("a node was started: {rest:?}"),
    )?;
    ensure_interrupted(&out)?;
    Ok(())
}

/// `run --repeat 2` (smoke, short phases): one parent bundle with two
/// repetitions that each verify on their own, a summary with n = 2 per
/// figure, and a parent `verify` that checks every repetition: a changed
/// file in one or a missing repetition is named. `--repeat 0` and a
/// `diff` of the parent with a missing repetition are clear usage errors.
fn repeat_two_runs_make_one_verifiable_parent_bundle() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("parent");
    let run = Command::new(lab())
        .args([
            "run",
            "scenarios/smoke.toml",
            "--repeat",
            "2",
            "--set",
            "phase.0.duration_s=2",
            "--set",
            "phase.1.duration_s=3",
            "--out",
        ])
        .arg(&out)
        .current_dir(repo())
        .output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    ensure(
        run.status.code() == Some(0),
        format!("exit {:?}: {stderr}", run.status.code()),
    )?;
    for k in 1..=2 {
        ensure(
            stderr.contains(&format!("repetition {k} of 2")),
            format!("no progress line for repetition {k}: {stderr}"),
        )?;
        let (code, text) = verify(&out.join(format!("rep-0{k}")));
        ensure(code == 0, format!("rep-0{k} does not verify: {text}"))?;
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary/summary.json"))?)?;
    let figs = summary["figures"].as_array().ok_or("no figures")?;
    let blocks = figs
        .iter()
        .find(|f| f["figure"] == "node.blocks" && f["phase"] == "stress")
        .ok_or("no node.blocks of phase stress in the summary")?;
    ensure(blocks["n"] == 2, format!("node.blocks n = {}", blocks["n"]))?;
    let (code, text) = verify(&out);
    ensure(code == 0, format!("parent does not verify: {text}"))?;
    // a changed file inside one repetition, then a missing repetition
    let report = out.join("rep-02/report.md");
    let mut bytes = std::fs::read(&report)?;
    bytes.push(b'x');
    std::fs::write(&report, bytes)?;
    let (code, text) = verify(&out);
    ensure(
        code == 1 && text.contains("rep-02: changed: report.md"),
        format!("tampered repetition: exit {code}: {text}"),
    )?;
    std::fs::remove_dir_all(out.join("rep-01"))?;
    let (code, text) = verify(&out);
    ensure(
        code == 1 && text.contains("missing repetition: rep-01"),
        format!("missing repetition: exit {code}: {text}"),
    )?;
    let diff = Command::new(lab())
        .arg("diff")
        .arg(&out)
        .arg(out.join("rep-02"))
        .output()?;
    // a diff of a parent whose repetition is missing is a clear error (issue 15)
    let diff_err = String::from_utf8_lossy(&diff.stderr);
    ensure(
        diff.status.code() == Some(2)
            && diff_err.contains("does not match its manifest")
            && diff_err.contains("missing repetition: rep-01"),
        format!(
            "diff of a parent with a missing repetition: exit {:?}: {diff_err}",
            diff.status.code(),
        ),
    )?;
    let zero = Command::new(lab())
        .args(["run", "scenarios/smoke.toml", "--repeat", "0", "--out"])
        .arg(tmp.path().join("zero"))
        .current_dir(repo())
        .output()?;
    ensure(
        zero.status.code() == Some(2)
            && String::from_utf8_lossy(&zero.stderr).contains("--repeat 0"),
        format!("--repeat 0: exit {:?}", zero.status.code()),
    )?;
    ensure(
        !tmp.path().join("zero").exists(),
        "--repeat 0 made a bundle",
    )?;
    Ok(())
}

/// Runs `qfc-lab` with `args` (from the repository root); exit code,
/// stdout, stderr.
fn lab_cmd(args: &[&std::ffi::OsStr]) -> Result<(Option<i32>, String, String), Failed> {
    let o = Command::new(lab())
        .args(args)
        .current_dir(repo())
        .output()?;
    Ok((
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

/// Two expectations for [`smoke_repeat_2`]: one that no repetition meets
/// (`stat = "all"`), one that the median meets.
const IMPOSSIBLE: &str = "\n[[expect]]\nfigure = \"node.blocks\"\nphase = \"stress\"\nop = \">=\"\nvalue = 1000000\nstat = \"all\"\nwhy = \"no repetition makes a million blocks in 3 s\"\n\n[[expect]]\nfigure = \"node.blocks\"\nphase = \"stress\"\nop = \">=\"\nvalue = 1\nstat = \"median\"\n";

/// The smoke scenario with short phases, `--repeat 2`, into `out`; with
/// `extra` appended to the scenario file (more `[[expect]]`).
fn smoke_repeat_2(tmp: &Path, out: &Path, extra: &str) -> Result<(Option<i32>, String), Failed> {
    let scenario = tmp.join(format!(
        "{}.toml",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("s")
    ));
    let base = std::fs::read_to_string(repo().join("scenarios/smoke.toml"))?;
    std::fs::write(&scenario, base + extra)?;
    let (code, _, err) = lab_cmd(&[
        "run".as_ref(),
        scenario.as_os_str(),
        "--repeat".as_ref(),
        "2".as_ref(),
        "--set".as_ref(),
        "phase.0.duration_s=2".as_ref(),
        "--set".as_ref(),
        "phase.1.duration_s=3".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ])?;
    Ok((code, err))
}

/// Issue 15, wired: two `--repeat 2` parents of the smoke scenario (one
/// with a `stat = "all"` expectation that no repetition meets).
/// - The run judges expectations over the repetitions: exit 1, and
///   summary/verdicts.junit.xml and summary/figures.om are sealed (parsers
///   we did not write read them in
///   [`repeat_outputs_read_by_independent_parsers`]).
/// - `diff` of the two parents: one verdict sentence per compared figure,
///   "within noise" (2 vs 2 can never be significant) naming the n it needs,
///   no panic; `--json` has `schema_version` and no significant figure.
/// - `--fail-on-regression` on same-vs-same exits 0.
/// - A parent against one of its single runs says "no noise estimate",
///   never "significant".
/// - A diff of a parent with a tampered repetition is a clear error.
fn repeat_diff_gate_and_expectations_over_repetitions() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let (code, err) = smoke_repeat_2(tmp.path(), &a, "")?;
    ensure(code == Some(0), format!("parent a: exit {code:?}: {err}"))?;
    let (code, err) = smoke_repeat_2(tmp.path(), &b, IMPOSSIBLE)?;
    ensure(
        code == Some(1) && err.contains("FAIL node.blocks in phase stress: all >= 1000000"),
        format!("parent b with a failing `all` expectation: exit {code:?}: {err}"),
    )?;
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("summary/summary.json"))?)?;
    let statuses: Vec<String> = summary["expectations"]
        .as_array()
        .ok_or("no expectations in summary.json")?
        .iter()
        .map(|e| format!("{} {}", e["stat"], e["status"]))
        .collect();
    ensure(
        statuses
            == [
                "\"all\" \"pass\"",
                "\"all\" \"fail\"",
                "\"median\" \"pass\"",
            ],
        format!("expectation verdicts over the repetitions: {statuses:?}"),
    )?;
    let m = manifest(&b);
    for f in ["summary/verdicts.junit.xml", "summary/figures.om"] {
        ensure(
            m["files"][f].is_string(),
            format!("{f} is not sealed in the parent manifest: {}", m["files"]),
        )?;
    }
    let (vcode, text) = verify(&b);
    ensure(vcode == 0, format!("parent b does not verify: {text}"))?;
    let om = std::fs::read_to_string(b.join("summary/figures.om"))?;
    ensure(
        om.contains("qfc_lab_figure{scenario=\"smoke\",phase=\"stress\",repetition=\"2\",figure=\"node.blocks\"")
            && om.ends_with("# EOF\n"),
        "figures.om lacks node.blocks of rep 2 in phase stress",
    )?;

    // diff of two parents
    let (code, md, err) = lab_cmd(&["diff".as_ref(), a.as_os_str(), b.as_os_str()])?;
    ensure(code == Some(0), format!("diff a b: exit {code:?}: {err}"))?;
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `")).collect();
    ensure(
        rows.len() >= 10,
        format!("diff compared {} figures:\n{md}", rows.len()),
    )?;
    for r in &rows {
        let fig = r.split('`').nth(1).unwrap_or("");
        ensure(
            md.lines().any(|l| l.starts_with(&format!("- {fig}"))),
            format!("no verdict sentence for {fig}:\n{md}"),
        )?;
    }
    ensure(
        md.contains("within noise (p = ")
            && md.contains("n = 2 vs 2")
            && md.contains("needs at least 4 vs 4")
            && !md.contains("significant ("),
        format!("2 vs 2 is within noise and says the n it needs:\n{md}"),
    )?;
    let (code, json, err) = lab_cmd(&[
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ])?;
    ensure(
        code == Some(0),
        format!("diff --json: exit {code:?}: {err}"),
    )?;
    let j: serde_json::Value = serde_json::from_str(&json)?;
    let cmp = j["comparisons"].as_array().ok_or("no comparisons")?;
    ensure(
        j["schema_version"] == 1
            && cmp.len() == rows.len()
            && cmp.iter().all(|c| c["outcome"] != "significant")
            && cmp.iter().any(|c| c["outcome"] == "within-noise")
            // a figure some repetition lacks (e.g. no W block IO in a 3 s
            // phase) has n = 1 on that side: no noise estimate, not a test
            && cmp.iter().all(|c| {
                (c["outcome"] == "no-noise-estimate")
                    == (c["n_a"].as_u64() < Some(2) || c["n_b"].as_u64() < Some(2))
            }),
        format!("diff --json: {json}"),
    )?;
    // the gate: same vs same exits 0
    let (code, md, err) = lab_cmd(&[
        "diff".as_ref(),
        a.as_os_str(),
        a.as_os_str(),
        "--fail-on-regression".as_ref(),
        "0%".as_ref(),
    ])?;
    ensure(
        code == Some(0) && md.contains("Regression gate: no regression"),
        format!("gate on same vs same: exit {code:?}: {err}\n{md}"),
    )?;
    // a parent against a single run: no noise estimate, never significant
    let (code, md, err) = lab_cmd(&[
        "diff".as_ref(),
        a.as_os_str(),
        b.join("rep-01").as_os_str(),
        "--fail-on-regression".as_ref(),
    ])?;
    ensure(
        code == Some(0) && md.contains("no noise estimate") && !md.contains("significant ("),
        format!("parent vs single: exit {code:?}: {err}\n{md}"),
    )?;
    // bad input: a tampered repetition
    let report = b.join("rep-02/report.md");
    let mut bytes = std::fs::read(&report)?;
    bytes.push(b'x');
    std::fs::write(&report, bytes)?;
    let (code, _, err) = lab_cmd(&["diff".as_ref(), a.as_os_str(), b.as_os_str()])?;
    ensure(
        code == Some(2)
            && err.contains("does not match its manifest")
            && err.contains("rep-02: changed: report.md"),
        format!("diff with a tampered repetition: exit {code:?}: {err}"),
    )?;
    Ok(())
}

/// Issue 15, outputs that others build on, read by parsers this project did
/// not write (the venv of scripts/setup.sh; the trial is ignored, with the
/// reason, without it): one `--repeat 2` parent of the smoke scenario with
/// an expectation no repetition meets, and `diff --json --out` of it against
/// its first repetition (with a small seeded datadir, so `load/seed_db.json`
/// is among the outputs).
/// - Every JSON output (the parent's, each repetition's evidence, verdicts
///   and figures, diff.json) validates against docs/schema/, and no JSON
///   file is left without a schema ([`schemas_hold`]).
/// - junitparser finds exactly that failure in the parent's
///   summary/verdicts.junit.xml, and the plain failure in a repetition's
///   verdicts.junit.xml.
/// - prometheus_client's OpenMetrics parser reads the parent's
///   summary/figures.om and a repetition's figures.om, one sample per line
///   we wrote; the repetition's figures.json holds the same values.
fn repeat_outputs_read_by_independent_parsers() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let b = tmp.path().join("b");
    // a small seeded datadir too, so that load/seed_db.json is among the outputs
    let seeded = format!("{IMPOSSIBLE}\n[node.seed_db]\nkeys = 2000\nvalue_bytes = 64\n");
    let (code, err) = smoke_repeat_2(tmp.path(), &b, &seeded)?;
    ensure(code == Some(1), format!("parent b: exit {code:?}: {err}"))?;
    let diff_dir = tmp.path().join("diff");
    let (code, _, err) = lab_cmd(&[
        "diff".as_ref(),
        b.as_os_str(),
        b.join("rep-01").as_os_str(),
        "--json".as_ref(),
        "--out".as_ref(),
        diff_dir.as_os_str(),
    ])?;
    ensure(code == Some(0), format!("diff --out: exit {code:?}: {err}"))?;
    schemas_hold(tmp.path(), &[&b, &diff_dir])?;
    junit_cases(
        &b.join("summary/verdicts.junit.xml"),
        serde_json::json!([
            ["load.rpc.errors in phase warmup: all == 0", []],
            [
                "node.blocks in phase stress: all >= 1000000",
                ["Failure:fail"]
            ],
            ["node.blocks in phase stress: median >= 1", []],
        ]),
    )?;
    junit_cases(
        &b.join("rep-01/verdicts.junit.xml"),
        serde_json::json!([
            ["load.rpc.errors in phase warmup: == 0", []],
            ["node.blocks in phase stress: >= 1000000", ["Failure:fail"]],
            ["node.blocks in phase stress: >= 1", []],
        ]),
    )?;
    let om = std::fs::read_to_string(b.join("summary/figures.om"))?;
    openmetrics_parses(&b.join("summary/figures.om"), &om)?;
    let rep_om = std::fs::read_to_string(b.join("rep-01/figures.om"))?;
    openmetrics_parses(&b.join("rep-01/figures.om"), &rep_om)?;
    let figures: lab::report::figures_file::FiguresFile =
        serde_json::from_slice(&std::fs::read(b.join("rep-01/figures.json"))?)?;
    ensure(
        figures.figures.len() == rep_om.lines().filter(|l| l.starts_with("qfc_lab_figure{")).count()
            && figures
                .figures
                .iter()
                .any(|f| f.phase == "stress" && f.figure == "node.blocks" && f.value >= 1.0),
        format!(
            "rep-01/figures.json ({} figures) and figures.om disagree, or lack node.blocks in stress",
            figures.figures.len()
        ),
    )
}

/// Every JSON output under `dirs` that docs/schema/index.json names
/// validates against its schema (scripts/validate-schemas.py: Python's
/// `jsonschema`, not ours), each schema validates at least one file, and a
/// summary.json without its `schema_version` does not validate (the check
/// can fail). A JSON file no schema names is an error of the script.
fn schemas_hold(tmp: &Path, dirs: &[&Path]) -> Result<(), Failed> {
    let py = common::venv_python(VENV_MODULES)?;
    let args: Vec<&std::ffi::OsStr> = dirs.iter().map(|d| d.as_os_str()).collect();
    let v = common::validate_schemas(&py, &args)?;
    ensure(
        v.errors.is_empty(),
        format!(
            "{} of {} JSON outputs break their schema:\n{}",
            v.errors.len(),
            v.validated.len(),
            v.errors.join("\n")
        ),
    )?;
    let used: std::collections::BTreeSet<&str> =
        v.validated.iter().map(|(s, _)| s.as_str()).collect();
    let unused: Vec<&str> = lab::schema::SCHEMAS
        .iter()
        .map(|s| s.file)
        .filter(|f| !used.contains(f) && !NOT_IN_SMOKE.contains(f))
        .collect();
    ensure(
        unused.is_empty(),
        format!("these schemas validated no file: {unused:?}"),
    )?;
    let summary = v
        .validated
        .iter()
        .find(|(_, d)| d.ends_with("summary/summary.json"))
        .ok_or("no summary.json was validated")?;
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary.1)?)?;
    doc.as_object_mut()
        .ok_or("summary.json is not an object")?
        .remove("schema_version");
    let broken = tmp.join("summary-without-version.json");
    std::fs::write(&broken, doc.to_string())?;
    let v = common::validate_schemas(
        &py,
        &["--as".as_ref(), summary.0.as_ref(), broken.as_os_str()],
    )?;
    ensure(
        v.errors
            .iter()
            .any(|e| e.contains("'schema_version' is a required property")),
        format!(
            "a summary.json without schema_version validated: {:?}",
            v.errors
        ),
    )
}

/// What [`repeat_outputs_read_by_independent_parsers`] imports from the venv.
const VENV_MODULES: &str = "jsonschema, junitparser, prometheus_client";

/// Schemas of outputs the smoke run does not write: plug-in failures (none
/// in a clean run), on-CPU stacks (smoke.toml's probes).
const NOT_IN_SMOKE: &[&str] = &["failure.schema.json", "probe-oncpu.schema.json"];

/// prometheus_client's OpenMetrics parser reads `path` (`text`): one
/// sample per `qfc_lab_figure` line we wrote.
fn openmetrics_parses(path: &Path, text: &str) -> Result<(), Failed> {
    let py = common::venv_python(VENV_MODULES)?;
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
n = 0
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    if fam.name == "qfc_lab_figure":
        n += len(fam.samples)
print(n)
"#;
    let o = Command::new(&py).args(["-c", script]).arg(path).output()?;
    ensure(
        o.status.success(),
        format!("prometheus_client: {}", String::from_utf8_lossy(&o.stderr)),
    )?;
    let want = text
        .lines()
        .filter(|l| l.starts_with("qfc_lab_figure{"))
        .count();
    let got: usize = String::from_utf8_lossy(&o.stdout).trim().parse()?;
    ensure(
        got == want && want > 0,
        format!("prometheus_client read {got} qfc_lab_figure samples, want {want}"),
    )
}

/// junitparser reads the JUnit file at `path`: its test cases, each with
/// its results (`Failure:fail`, `Error:...`), are `want`.
fn junit_cases(path: &Path, want: serde_json::Value) -> Result<(), Failed> {
    let py = common::venv_python(VENV_MODULES)?;
    let script = r#"
import sys, json
from junitparser import JUnitXml
out = []
for suite in JUnitXml.fromfile(sys.argv[1]):
    for case in suite:
        out.append([case.name, [type(r).__name__ + ":" + (r.type or "") for r in case.result]])
print(json.dumps(out))
"#;
    let o = Command::new(&py).args(["-c", script]).arg(path).output()?;
    ensure(
        o.status.success(),
        format!("junitparser: {}", String::from_utf8_lossy(&o.stderr)),
    )?;
    let got: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    ensure(
        got == want,
        format!("junitparser read {got} in {}, want {want}", path.display()),
    )
}

/// Runs smoke.toml with `--json`; calls `at_phase` once the first phase has
/// started (with the run's pid), then waits for the exit. Returns the exit
/// code and stderr.
fn run_smoke_with(
    out: &Path,
    tmpdir: &Path,
    at_phase: impl FnOnce(u32) -> Result<(), Failed>,
) -> Result<(Option<i32>, String), Failed> {
    let mut child = Command::new(lab())
        .args(["run", "scenarios/smoke.toml", "--json", "--out"])
        .arg(out)
        .env("TMPDIR", tmpdir)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = false;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        seen.push(line);
        if v["event"] == "phase_started" {
            started = true;
            break;
        }
    }
    if !started {
        let _ = child.kill();
        return Err("the run ended before its first phase".into());
    }
    let r = at_phase(pid);
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait()?;
    r?;
    events_keep_their_order(seen.iter().map(String::as_str))?;
    Ok((status.code(), err_reader.join().unwrap_or_default()))
}

/// The `--json` progress lines keep the ordering contract of
/// `lab::events::Event` (docs/ARCHITECTURE.md, "Run progress events"), also
/// for an interrupted run.
fn events_keep_their_order<'a>(lines: impl Iterator<Item = &'a str>) -> Result<(), Failed> {
    let events: Vec<lab::events::Event> =
        lines.map(serde_json::from_str).collect::<Result<_, _>>()?;
    lab::events::check_order(&events).map_err(Failed::from)
}

/// The bundle is `incomplete`, one of its reasons names `needle`, and what
/// it holds verifies.
fn incomplete_naming(out: &Path, needle: &str) -> Result<(), Failed> {
    let m = manifest(out);
    ensure(
        m["status"] == "incomplete",
        format!("status {}", m["status"]),
    )?;
    let reasons = m["incomplete_reasons"].to_string();
    ensure(
        reasons.contains(needle),
        format!("no reason naming {needle:?} in {reasons}"),
    )?;
    let (code, text) = verify(out);
    ensure(
        code == 0,
        format!("the incomplete bundle does not verify: {text}"),
    )
}

/// Issue 13, part 2: `--out` on a small tmpfs that fills up mid-run. The
/// writes that fail are named, the bundle is `incomplete` with the reason
/// (the reserve leaves room for the manifest), the exit is 3, nothing
/// panics, and what was written verifies.
fn disk_full_mid_run_gives_an_incomplete_bundle_with_the_reason() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt)?;
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=12m"),
    )?;
    let out = mnt.join("bundle");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch)?;
    let filler = mnt.join("filler");
    let r = run_smoke_with(&out, &scratch, |_| {
        // Fill every byte that is left, as another writer on a shared disk would.
        let mut f = std::fs::File::create(&filler)?;
        let chunk = vec![0u8; 1 << 16];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        Ok(())
    });
    let checked = (|| -> Result<(), Failed> {
        let (code, stderr) = r?;
        ensure(!stderr.contains("panicked"), format!("a panic: {stderr}"))?;
        ensure(code == Some(3), format!("exit {code:?}: {stderr}"))?;
        incomplete_naming(&out, "No space left on device")
    })();
    let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
    checked
}

/// Issue 13, part 2: the probe output cannot be fetched (its directory on
/// the target was replaced by a symlink mid-run; the gate refuses to follow
/// it). The bundle is `incomplete`, names why, and the exit is 3.
fn probe_output_not_fetched_gives_incomplete_and_exit_3() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch)?;
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere)?;
    let (code, stderr) = run_smoke_with(&out, &scratch, |pid| {
        let prefix = format!("qfc-lab-{pid}-");
        let target = std::fs::read_dir(&scratch)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    && p.join("probes").is_dir()
            })
            .ok_or("no local scratch directory with probe output")?;
        let probes = target.join("probes");
        std::fs::rename(&probes, elsewhere.join("probes"))?;
        std::os::unix::fs::symlink(elsewhere.join("probes"), &probes)?;
        Ok(())
    })?;
    ensure(code == Some(3), format!("exit {code:?}: {stderr}"))?;
    incomplete_naming(&out, "probe output could not be fetched")
}

fn node_dying_at_start_gives_exit_3_and_incomplete_bundle() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let fake = tmp.path().join("dying-node");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'cannot open database' >&2\nexit 7\n",
    )?;
    Command::new("chmod").arg("+x").arg(&fake).status()?;
    let o = Command::new(lab())
        .args(["run", "scenarios/smoke.toml", "--json", "--node-binary"])
        .arg(&fake)
        .arg("--out")
        .arg(&out)
        .current_dir(repo())
        .output()?;
    ensure(
        o.status.code() == Some(3),
        format!("exit {:?}", o.status.code()),
    )?;
    let m = manifest(&out);
    ensure(m["status"] == "incomplete", "status")?;
    let err = m["error"].as_str().unwrap_or("");
    ensure(
        err.contains("node exited (exit code 7)"),
        format!("error {err}"),
    )?;
    ensure(
        std::fs::read_to_string(out.join("node/stderr.log"))?.contains("cannot open database"),
        "stderr not kept",
    )?;
    let (code, text) = verify(&out);
    ensure(code == 0, text)
}

fn usage_errors_exit_2() -> Result<(), Failed> {
    let o = Command::new(lab())
        .args(["run", "lab/tests/data/scenario/unknown-key/input.toml"])
        .current_dir(repo())
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure(
        o.status.code() == Some(2) && err.contains("did you mean `duration_s`?"),
        format!("{:?} {err}", o.status.code()),
    )?;
    let tmp = tempfile::tempdir()?;
    let q = tmp.path().join("q.toml");
    // An ssh host nobody listens on (loopback port 1): the run fails at
    // prepare, exit 3, with an incomplete bundle naming the step.
    std::fs::write(
        &q,
        "name = \"q\"\nseed = 1\n[target]\nkind = \"ssh\"\n[target.ssh]\nhost = \"127.0.0.1\"\nport = 1\n[[phase]]\nname = \"a\"\nduration_s = 1\n",
    )?;
    let out = tmp.path().join("bundle");
    let o = Command::new(lab())
        .arg("run")
        .arg(&q)
        .arg("--out")
        .arg(&out)
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure(
        o.status.code() == Some(3) && err.contains("PrepareTarget"),
        format!("{:?} {err}", o.status.code()),
    )?;
    ensure(
        manifest(&out)["status"] == "incomplete",
        "unreachable ssh host: bundle not incomplete",
    )?;
    let o = Command::new(lab())
        .args([
            "validate",
            "scenarios/smoke.toml",
            "scenarios/compaction.toml",
        ])
        .current_dir(repo())
        .output()?;
    ensure(
        o.status.code() == Some(0),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn main() {
    let args = Arguments::from_args();
    let no_node = refnode().is_none();
    let why = "qfc-refnode is not built next to qfc-lab: run `cargo build -p refnode` first";
    if no_node {
        eprintln!("run_local: ignoring the reference-node trials: {why}");
    }
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("run_local: ignoring the disk-full and probe-fetch trials: they need root (tmpfs mount, eBPF probes)");
    }
    let trials = vec![
        Trial::test(
            "smoke_bundle_verifies_and_detects_any_changed_byte",
            smoke_bundle_verifies_and_detects_any_changed_byte,
        )
        .with_ignored_flag(no_node),
        Trial::test(
            "sigint_mid_phase_leaves_incomplete_verifiable_bundle_and_no_child",
            sigint_mid_phase_leaves_incomplete_verifiable_bundle_and_no_child,
        )
        .with_ignored_flag(no_node),
        Trial::test(
            "repeat_two_runs_make_one_verifiable_parent_bundle",
            repeat_two_runs_make_one_verifiable_parent_bundle,
        )
        .with_ignored_flag(no_node),
        Trial::test(
            "repeat_diff_gate_and_expectations_over_repetitions",
            repeat_diff_gate_and_expectations_over_repetitions,
        )
        .with_ignored_flag(no_node),
        common::trial(
            "repeat_outputs_read_by_independent_parsers",
            repeat_outputs_read_by_independent_parsers,
            common::venv_python(VENV_MODULES).map(|_| ()),
        ),
        Trial::test(
            "sigint_while_seeding_ends_the_run_within_2_s",
            sigint_while_seeding_ends_the_run_within_2_s,
        )
        .with_ignored_flag(no_node),
        Trial::test(
            "disk_full_mid_run_gives_an_incomplete_bundle_with_the_reason",
            disk_full_mid_run_gives_an_incomplete_bundle_with_the_reason,
        )
        .with_ignored_flag(no_node || !root),
        Trial::test(
            "probe_output_not_fetched_gives_incomplete_and_exit_3",
            probe_output_not_fetched_gives_incomplete_and_exit_3,
        )
        .with_ignored_flag(no_node || !root),
        Trial::test(
            "node_dying_at_start_gives_exit_3_and_incomplete_bundle",
            node_dying_at_start_gives_exit_3_and_incomplete_bundle,
        ),
        Trial::test("usage_errors_exit_2", usage_errors_exit_2),
    ];
    libtest_mimic::run(&args, trials).exit();
}
