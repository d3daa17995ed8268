//! End-to-end `qfc-lab run` beyond the local reference node (issues 6 and 8):
//! - `scenarios/smoke-container.toml` on this machine's Docker engine (bundle
//!   verifies; the probes ran on the host filtered to the container's cgroup
//!   and saw the node's writes), and again system-wide, where containerd-shim
//!   and dockerd write the node's log lines again (T1's finding 2);
//! - `scenarios/smoke.toml` retargeted to an aarch64 QEMU guest with
//!   `--set target.kind=qemu` (context says aarch64 and the accelerator;
//!   the probes ran in the guest; symbolized aarch64 frames), and to an
//!   x86_64 guest; QEMU killed mid-phase gives an incomplete bundle;
//! - the same on the SSH target against an sshd on loopback;
//! - issue 12's no-frame-pointer known answer inside the aarch64 guest
//!   (kernel 6.1): the program of probes/tests/data/unwind cross-built, and
//!   qfc-probe in `dwarf` mode unwinds its burner to `main`;
//! - the real qfc-node from `QFC_NODE_BINARY`: `scenarios/qfc-node-steady.toml`
//!   and `scenarios/qfc-node-sync-flood.toml` on this machine.
//!
//! Each trial is reported as ignored, with the reason, when what it needs is
//! missing (dockerd not reachable, qemu-system-aarch64 or the warm guest
//! image absent, sshd missing, QFC_NODE_BINARY unset, qfc-refnode/qfc-probe
//! not built next to qfc-lab), never as passed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use libtest_mimic::{Arguments, Failed};

mod common;
use common::{docker_reachable, ensure, lab, repo, trial};

fn json(path: &Path) -> Result<serde_json::Value, Failed> {
    Ok(serde_json::from_slice(
        &std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
    )?)
}

fn verify(dir: &Path) -> (i32, String) {
    let o = Command::new(lab()).arg("verify").arg(dir).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// Runs `qfc-lab run ARGS --out DIR`; returns the bundle dir (kept in `tmp`).
fn run(tmp: &Path, args: &[&str]) -> Result<PathBuf, Failed> {
    run_with(tmp, args, &[0])
}

/// [`run`] accepting these exit codes (1: an expectation failed, the bundle is whole).
fn run_with(tmp: &Path, args: &[&str], codes: &[i32]) -> Result<PathBuf, Failed> {
    let out = tmp.join("bundle");
    let t0 = Instant::now();
    let o = Command::new(lab())
        .arg("run")
        .args(args)
        .arg("--json")
        .arg("--out")
        .arg(&out)
        .current_dir(repo())
        .output()?;
    eprintln!(
        "qfc-lab run {} took {:.1} s",
        args.join(" "),
        t0.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let tail: Vec<&str> = stdout.lines().rev().take(8).collect();
    ensure(
        o.status.code().is_some_and(|c| codes.contains(&c)),
        format!(
            "run exit {:?}\nlast events: {tail:#?}\nstderr: {stderr}",
            o.status.code()
        ),
    )?;
    let (code, text) = verify(&out);
    ensure(code == 0, format!("verify failed: {text}"))?;
    Ok(out)
}

/// Write calls (write, pwrite64, writev, ...) the writepath probe counted
/// in a phase, over every thread (`rows: [{thread, syscall, count}]`).
fn writes_in(out: &Path, phase: &str) -> Result<u64, Failed> {
    let v = json(&out.join("probes").join(phase).join("writepath.json"))?;
    let rows = v["rows"]
        .as_array()
        .ok_or(format!("writepath.json of {phase} has no rows"))?;
    Ok(rows
        .iter()
        .filter(|r| {
            r["syscall"]
                .as_str()
                .is_some_and(|s| s.contains("write") && !s.contains("sync"))
        })
        .filter_map(|r| r["count"].as_u64())
        .sum())
}

fn container_smoke() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = run(tmp.path(), &["scenarios/smoke-container.toml"])?;
    let m = json(&out.join("manifest.json"))?;
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    ensure(
        m["target"]["kind"] == "container",
        format!("manifest target {}", m["target"]),
    )?;
    let ctx = json(&out.join("context.json"))?;
    let c = &ctx["target_details"]["container"];
    ensure(
        c["engine_version"].as_str().is_some_and(|v| !v.is_empty()),
        format!("no engine version: {c}"),
    )?;
    ensure(
        c["image_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:")),
        format!("no image id: {c}"),
    )?;
    ensure(
        c["log_driver"] == "json-file",
        format!("log driver {}", c["log_driver"]),
    )?;
    let cg = c["probe_cgroup"]
        .as_str()
        .ok_or(format!("no probe cgroup in the context: {c}"))?
        .to_string();
    // The probes ran with --cgroup <the container's cgroup> ...
    let session = std::fs::read_to_string(out.join("probes").join("session.json"))?;
    let leaf = Path::new(&cg)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    ensure(
        !leaf.is_empty() && session.contains(&leaf),
        format!("session.json does not name the container's cgroup {cg}"),
    )?;
    // ... and saw the node's writes in it.
    let w = writes_in(&out, "stress")?;
    ensure(
        w > 0,
        "writepath saw no write in the container's cgroup during stress",
    )?;
    eprintln!("writes by the container's cgroup during stress: {w}");
    ensure(
        std::fs::read_to_string(out.join("node/stdout.log"))?.len()
            + std::fs::read_to_string(out.join("node/stderr.log"))?.len()
            > 0,
        "no node log",
    )?;
    Ok(())
}

/// Starts `qfc-lab run ARGS --json --out OUT` with its events on a pipe.
fn spawn_run(
    args: &[&str],
    out: &Path,
) -> Result<
    (
        std::process::Child,
        std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    ),
    Failed,
> {
    let mut child = Command::new(lab())
        .arg("run")
        .args(args)
        .arg("--json")
        .arg("--out")
        .arg(out)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    Ok((
        child,
        std::io::BufRead::lines(std::io::BufReader::new(stdout)),
    ))
}

/// Containers labelled with this run id owner (`qfc-lab.run=<pid>-...`).
fn containers_of(pid: u32) -> Result<Vec<String>, Failed> {
    let o = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=qfc-lab.run",
            "--format",
            "{{.Names}} {{.Label \"qfc-lab.run\"}}",
        ])
        .output()?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(1)
                .is_some_and(|r| r.starts_with(&format!("{pid}-")))
        })
        .map(String::from)
        .collect())
}

/// Processes whose environment names `pid` as their qfc-lab owner.
fn processes_of(pid: u32) -> Vec<String> {
    let mark = format!("QFC_LAB_OWNER={pid}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.file_name().to_str()?.parse::<u32>().ok()?;
            let env = std::fs::read(format!("/proc/{p}/environ")).ok()?;
            env.split(|&b| b == 0)
                .any(|kv| kv == mark.as_bytes())
                .then(|| {
                    format!(
                        "{p} {}",
                        std::fs::read_to_string(format!("/proc/{p}/comm"))
                            .unwrap_or_default()
                            .trim()
                    )
                })
        })
        .collect()
}

/// SIGKILL of qfc-lab mid-run (issue 13, part 5): nothing can tear down,
/// so the node's container stays; `qfc-lab gc` removes it and its volume,
/// and no process marked with the dead qfc-lab as owner (node, probes)
/// survives it.
fn sigkill_then_gc(args: &[&str]) -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let (mut child, lines) = spawn_run(args, &out)?;
    let pid = child.id();
    // Wait for the first phase (the node and the probes are up).
    let mut started = false;
    for line in lines {
        if line?.contains("\"phase_started\"") {
            started = true;
            break;
        }
    }
    ensure(started, "the run ended before its first phase")?;
    child.kill()?; // SIGKILL
    child.wait()?;
    let g = Command::new(lab()).arg("gc").output()?;
    let said =
        String::from_utf8_lossy(&g.stdout).into_owned() + &String::from_utf8_lossy(&g.stderr);
    ensure(g.status.success(), format!("gc failed: {said}"))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let left = containers_of(pid)?;
    ensure(
        left.is_empty(),
        format!("containers left after gc: {left:?}\ngc said: {said}"),
    )?;
    let procs = processes_of(pid);
    ensure(
        procs.is_empty(),
        format!("processes left after gc: {procs:?}\ngc said: {said}"),
    )?;
    let vols = Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=qfc-lab-data-{pid}-"),
        ])
        .output()?;
    ensure(
        String::from_utf8_lossy(&vols.stdout).trim().is_empty(),
        format!("volumes left: {}", String::from_utf8_lossy(&vols.stdout)),
    )?;
    eprintln!("gc said:\n{said}");
    Ok(())
}

/// Ctrl-C in the middle of a long blocking step (issue 13, part 5): SIGINT
/// while the aarch64 guest boots. The run gives up the boot at once and
/// exits 3 with an incomplete bundle naming the signal; QEMU is gone.
/// Measured from the signal to the process's exit: at most 2 s.
fn sigint_during_guest_boot_takes_effect_within_2_s() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let (mut child, mut lines) =
        spawn_run(&["scenarios/smoke.toml", "--set", "target.kind=qemu"], &out)?;
    let pid = child.id();
    let mut preparing = false;
    for line in lines.by_ref() {
        if line?.contains("\"prepare_target\"") {
            preparing = true;
            break;
        }
    }
    ensure(preparing, "no prepare_target step")?;
    // Mid-boot: QEMU is up, the guest is not ready yet (about 8 s under TCG).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let qemu_pids = processes_of(pid);
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait()?;
    let took = t0.elapsed();
    eprintln!(
        "SIGINT during boot: exit {:?} after {:.2} s (children then: {qemu_pids:?})",
        status.code(),
        took.as_secs_f64()
    );
    ensure(
        status.code() == Some(3),
        format!("exit {:?}: {rest:?}", status.code()),
    )?;
    ensure(
        took <= std::time::Duration::from_secs(2),
        format!("took {:.2} s from SIGINT to exit", took.as_secs_f64()),
    )?;
    let m = json(&out.join("manifest.json"))?;
    ensure(
        m["status"] == "incomplete",
        format!("status {}", m["status"]),
    )?;
    ensure(
        m["error"].as_str().is_some_and(|e| e.contains("SIGINT")),
        format!("error {}", m["error"]),
    )?;
    let left = processes_of(pid);
    ensure(left.is_empty(), format!("left behind: {left:?}"))
}

/// The lab on an aarch64 host (issue 13, part 6): the aarch64 builds of
/// qfc-lab, qfc-refnode and qfc-probe, shipped into the aarch64 guest, run
/// `qfc-lab run scenarios/smoke.toml` on the local target there (probes
/// included) and the bundle verifies with the guest's own `qfc-lab verify`.
/// Nothing of this host's x86_64 set-up (.cargo/config.toml, scripts) is
/// read in the guest. Under TCG an expectation may miss its bound (exit 1);
/// the bundle must still be whole and verify.
fn lab_runs_inside_the_aarch64_guest() -> Result<(), Failed> {
    use vm::Target;
    let cross = vm::image::cache_root().join("cross/target/aarch64-unknown-linux-gnu/release");
    let img = vm::image::cached(&vm::BuildOptions::new(vm::Arch::Aarch64))?
        .ok_or("no warm aarch64 guest image")?;
    let tmp = tempfile::tempdir()?;
    let mut t = vm::QemuTarget::new(vm::QemuConfig::default(), img, tmp.path().join("guest"));
    let r = (|| -> Result<(), Failed> {
        t.prepare()?;
        let mut shipped = Vec::new();
        for b in ["qfc-lab", "qfc-refnode", "qfc-probe"] {
            shipped.push(t.ship(&cross.join(b))?);
        }
        let scen = t.ship(&repo().join("scenarios/smoke.toml"))?;
        let lab_bin = shipped[0].display().to_string();
        let out = t.scratch_dir().join("bundle");
        let long = std::time::Duration::from_secs(900);
        let run = format!(
            "{lab} run {scen} --json --out {out} > {out}.events 2> {out}.stderr; echo exit=$?",
            lab = lab_bin,
            scen = scen.display(),
            out = out.display()
        );
        let t0 = Instant::now();
        let o = t.exec(&["sh".into(), "-c".into(), run.into()], long)?;
        let said = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!(
            "in-guest qfc-lab run: {said} in {:.0} s",
            t0.elapsed().as_secs_f64()
        );
        let code = said.trim().strip_prefix("exit=").unwrap_or("?").to_string();
        let tail = t.exec(
            &[
                "sh".into(),
                "-c".into(),
                format!("tail -n 20 {0}.stderr; tail -n 3 {0}.events", out.display()).into(),
            ],
            std::time::Duration::from_secs(60),
        )?;
        let tail = String::from_utf8_lossy(&tail.stdout).into_owned();
        ensure(
            code == "0" || code == "1",
            format!("in-guest run exit {code}:\n{tail}"),
        )?;
        let v = t.exec(
            &[lab_bin.clone().into(), "verify".into(), out.clone().into()],
            std::time::Duration::from_secs(300),
        )?;
        let vtext =
            String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
        ensure(v.success(), format!("in-guest verify failed: {vtext}"))?;
        let m = t.exec(
            &["cat".into(), out.join("manifest.json").into()],
            std::time::Duration::from_secs(60),
        )?;
        let m: serde_json::Value = serde_json::from_slice(&m.stdout)?;
        ensure(
            m["status"] == "complete",
            format!(
                "in-guest bundle status {}: {}",
                m["status"], m["incomplete_reasons"]
            ),
        )?;
        ensure(
            m["node_binary_info"]["arch"] == "aarch64",
            format!("node binary {}", m["node_binary_info"]),
        )?;
        eprintln!("in-guest verify: {}", vtext.trim());
        Ok(())
    })();
    let _ = t.teardown();
    r
}

/// Issue 12, "Known answer, no frame pointers", in the aarch64 guest: the
/// no-frame-pointer library and program of probes/tests/data/unwind, built
/// with `aarch64-linux-gnu-gcc` by the same build.sh as on the host, burn
/// CPU six calls below `main` under `qfc-probe --unwind dwarf` in the
/// guest. At least 95% of the samples whose leaf is the burner show the
/// whole chain to `main`, and no user frame of them is off the chain
/// (probes/tests/data/unwind/nofp_chain.txt); in `fp` mode, the same run
/// shows the chain in at most 5% (the contrast). The guest's stacks are
/// untrusted input: they are parsed here as JSON like any bundle file.
fn nofp_known_answer_in_the_aarch64_guest() -> Result<(), Failed> {
    use vm::Target;
    let data = repo().join("probes/tests/data/unwind");
    let tmp = tempfile::tempdir()?;
    let st = Command::new("sh")
        .arg(data.join("build.sh"))
        .arg("aarch64-linux-gnu-gcc")
        .arg(tmp.path())
        .status()?;
    ensure(
        st.success(),
        format!("build.sh aarch64-linux-gnu-gcc: {st}"),
    )?;
    let known = probes::known_chain::KnownChain::nofp()?;
    let cross = vm::image::cache_root().join("cross/target/aarch64-unknown-linux-gnu/release");
    let img = vm::image::cached(&vm::BuildOptions::new(vm::Arch::Aarch64))?
        .ok_or("no warm aarch64 guest image")?;
    let mut t = vm::QemuTarget::new(vm::QemuConfig::default(), img, tmp.path().join("guest"));
    let r = (|| -> Result<Vec<serde_json::Value>, Failed> {
        t.prepare()?;
        let probe = t.ship(&cross.join("qfc-probe"))?;
        t.ship(&tmp.path().join("libqfcnofp.so"))?;
        let nofp = t.ship(&tmp.path().join("nofp"))?;
        // The program waits for a line on a fifo; the probe attaches to it
        // first, then the line starts 5 s of burning. Once per mode.
        let mut out = Vec::new();
        for mode in ["dwarf", "fp"] {
            let dir = t.scratch_dir().join(format!("nofp-{mode}"));
            let script = format!(
                "set -e; mkdir -p {d}; cd {d}; mkfifo go; \\
                 {nofp} burn 5000 < go > nofp.out & NP=$!; exec 3>go; \\
                 for i in $(seq 200); do grep -q ready nofp.out && break; sleep 0.1; done; \\
                 {probe} --pid $NP --probes oncpu --unwind {mode} --duration-s 20 --phase-name t --out out > probe.log 2> probe.err & PP=$!; \\
                 for i in $(seq 1200); do grep -q ready probe.log && break; sleep 0.1; done; \\
                 echo go >&3; wait $PP; exec 3>&-; wait $NP; cat out/t/oncpu.json",
                d = dir.display(),
                nofp = nofp.display(),
                probe = probe.display(),
            );
            let o = t.exec(
                &["sh".into(), "-c".into(), script.into()],
                std::time::Duration::from_secs(300),
            )?;
            if !o.success() {
                let err = t.exec(
                    &[
                        "sh".into(),
                        "-c".into(),
                        format!("tail -n 20 {}/probe.err", dir.display()).into(),
                    ],
                    std::time::Duration::from_secs(60),
                )?;
                return Err(format!(
                    "in-guest known answer ({mode}) failed: {}{}",
                    String::from_utf8_lossy(&o.stderr),
                    String::from_utf8_lossy(&err.stdout)
                )
                .into());
            }
            out.push(serde_json::from_slice::<serde_json::Value>(&o.stdout)?);
        }
        Ok(out)
    })();
    let _ = t.teardown();
    let runs = r?;
    let count = |v: &serde_json::Value| {
        let c = known.count(&probes::known_chain::oncpu_user_stacks(v, None));
        (c.leaf, c.whole, c.wrong)
    };
    let (leaf, whole, wrong) = count(&runs[0]);
    let (fp_leaf, fp_whole, _) = count(&runs[1]);
    eprintln!(
        "aarch64 guest: whole chain in {whole}/{leaf} burner samples (dwarf), {fp_whole}/{fp_leaf} (fp)"
    );
    ensure(
        leaf >= 60,
        format!("only {leaf} burner samples in 5 s at 99 Hz"),
    )?;
    ensure(
        wrong.is_empty(),
        format!("frames off the known chain: {wrong:?}"),
    )?;
    ensure(
        whole as f64 >= 0.95 * leaf as f64,
        format!("whole chain in only {whole}/{leaf} burner samples"),
    )?;
    // The contrast: without frame pointers the kernel's walk cannot give
    // the chain, so the dwarf result is the unwinder's, not the binary's.
    ensure(
        fp_leaf >= 60,
        format!("only {fp_leaf} burner samples in fp mode"),
    )?;
    ensure(
        (fp_whole as f64) <= 0.05 * fp_leaf as f64,
        format!("fp mode gave the whole chain in {fp_whole}/{fp_leaf}: the program has frame pointers, the dwarf result proves nothing"),
    )
}

fn container_sigkill_then_gc() -> Result<(), Failed> {
    sigkill_then_gc(&["scenarios/smoke-container.toml"])
}

fn qemu_sigkill_then_gc() -> Result<(), Failed> {
    sigkill_then_gc(&["scenarios/smoke.toml", "--set", "target.kind=qemu"])
}

fn qemu_smoke() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = run(
        tmp.path(),
        &["scenarios/smoke.toml", "--set", "target.kind=qemu"],
    )?;
    let m = json(&out.join("manifest.json"))?;
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    ensure(
        m["image_key"].as_str().is_some_and(|k| k.len() >= 16),
        format!("no image key: {}", m["image_key"]),
    )?;
    guest_context(&out, "aarch64", "aarch64")?;
    ensure(
        m["node_binary_info"]["arch"] == "aarch64",
        format!("node binary {}", m["node_binary_info"]),
    )?;
    ensure(
        out.join("serial.log").is_file(),
        "no serial console log in the bundle",
    )?;
    // The probes ran in the guest, in lockstep: every phase has all five
    // probes' files, and the on-CPU flame carries symbolized aarch64 frames
    // of the reference node (not mapping symbols, not bare addresses).
    for phase in ["warmup", "stress"] {
        for f in [
            "fsync.json",
            "bio.json",
            "offcpu.folded",
            "writepath.json",
            "oncpu.folded",
        ] {
            ensure(
                out.join("probes").join(phase).join(f).is_file(),
                format!("probes/{phase}/{f} missing"),
            )?;
        }
    }
    let session = json(&out.join("probes/session.json"))?;
    ensure(
        session["arch"] == "aarch64",
        format!("probe session arch {}", session["arch"]),
    )?;
    // Issue 17: `auto` found a writepath attach point on the guest's 6.1
    // kernel, and every window carries the probes' cost from the kernel's
    // BPF statistics, with the writepath programs counted.
    ensure(
        session["attach"]["writepath"].is_string(),
        format!("no writepath attach point: {}", session["attach"]),
    )?;
    for w in session["windows"].as_array().ok_or("no windows")? {
        let c = &w["cost"];
        ensure(
            c["bpf_stats"]["state"] == "enabled"
                && c["probes"]["writepath"]["runs"].as_u64().unwrap_or(0) > 0
                && c["overhead_share"].as_f64().is_some(),
            format!("window {} cost {c}", w["phase"]),
        )?;
    }
    let folded = std::fs::read_to_string(out.join("probes/stress/oncpu.folded"))?;
    let frames: Vec<&str> = folded
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(stack, _)| stack))
        .flat_map(|stack| stack.split(';'))
        .collect();
    let refnode_frames = frames
        .iter()
        .filter(|f| f.contains("refnode::") || f.starts_with("refnode"))
        .count();
    ensure(
        refnode_frames > 0,
        "no symbolized qfc-refnode frame in the guest's on-CPU flame",
    )?;
    ensure(
        frames.iter().any(|f| f.contains("tokio::runtime")),
        "no tokio frame in the guest's on-CPU flame",
    )?;
    let mapping = frames
        .iter()
        .filter(|f| matches!(f.split('.').next(), Some("$x" | "$d")))
        .count();
    ensure(
        mapping == 0,
        format!("{mapping} frames are aarch64 mapping symbols ($x/$d), not functions"),
    )?;
    Ok(())
}

/// A guest run's context: qemu target of `arch`, the accelerator named, and
/// the guest's own kernel (its `uname -a` contains `kernel_marker`).
fn guest_context(out: &Path, arch: &str, kernel_marker: &str) -> Result<(), Failed> {
    let ctx = json(&out.join("context.json"))?;
    let t = &ctx["target"];
    ensure(
        t["kind"] == "qemu" && t["arch"] == arch,
        format!("target {t}"),
    )?;
    ensure(
        t["accel"].as_str().is_some_and(|a| !a.is_empty()),
        format!("no accelerator in the context: {t}"),
    )?;
    let kernel = &ctx["facts"]["kernel"];
    ensure(
        kernel.as_str().is_some_and(|k| k.contains(kernel_marker)),
        format!("not the guest's kernel: {kernel}"),
    )?;
    Ok(())
}

/// The same smoke on an x86_64 guest (this host's architecture: the host's
/// binaries are shipped as they are, no cross-build).
fn qemu_x86_64_smoke() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = run(
        tmp.path(),
        &[
            "scenarios/smoke.toml",
            "--set",
            "target.kind=\"qemu\"",
            "--set",
            "target.qemu.arch=\"x86_64\"",
        ],
    )?;
    guest_context(&out, "x86_64", "amd64")?;
    let folded = std::fs::read_to_string(out.join("probes/stress/oncpu.folded"))?;
    ensure(
        folded.contains("refnode::"),
        "no symbolized qfc-refnode frame in the x86_64 guest's on-CPU flame",
    )?;
    Ok(())
}

fn qemu_x86_64_ready() -> Result<(), String> {
    if which::which("qemu-system-x86_64").is_err() {
        return Err("qemu-system-x86_64 not found: run scripts/setup.sh".into());
    }
    match vm::image::cached(&vm::BuildOptions::new(vm::Arch::X86_64)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            Err("no warm x86_64 guest image: run `qfc-lab image build --arch x86_64` first".into())
        }
        Err(e) => Err(format!("guest image cache unreadable: {e}")),
    }
}

/// QEMU killed mid-phase: exit 3, an incomplete bundle that verifies, names
/// the dead guest and carries the serial console log; no QEMU left behind.
fn qemu_dies_mid_run() -> Result<(), Failed> {
    use std::io::BufRead;
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("bundle");
    let mut child = Command::new(lab())
        .args([
            "run",
            "scenarios/smoke.toml",
            "--set",
            "target.kind=\"qemu\"",
            "--set",
            "phase.1.duration_s=120",
            "--json",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut killed = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if line.contains("phase_started") && line.contains("\"stress\"") {
            // QEMU's own pid: the guest of this run has its disk overlay and
            // serial log under the bundle directory.
            let pids = qemu_pids_of(&out)?;
            ensure(
                pids.len() == 1,
                format!("expected one QEMU of this run, found {pids:?}"),
            )?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pids[0]),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            killed = Some(pids[0]);
        }
    }
    let status = child.wait()?;
    let qemu = killed.ok_or("the run never reached phase stress")?;
    ensure(
        status.code() == Some(3),
        format!("exit {:?}, want 3", status.code()),
    )?;
    let m = json(&out.join("manifest.json"))?;
    ensure(
        m["status"] == "incomplete",
        format!("status {}", m["status"]),
    )?;
    let err = m["error"].as_str().unwrap_or("");
    ensure(
        err.contains("the target itself is gone") && err.contains("QEMU exited"),
        format!("error does not name the dead guest: {err}"),
    )?;
    ensure(
        out.join("serial.log").is_file(),
        "no serial console log in the incomplete bundle",
    )?;
    let (code, text) = verify(&out);
    ensure(
        code == 0,
        format!("the incomplete bundle does not verify: {text}"),
    )?;
    ensure(
        !Path::new(&format!("/proc/{qemu}")).exists(),
        "QEMU still exists",
    )?;
    let left = qemu_pids_of(&out)?;
    ensure(
        left.is_empty(),
        format!("QEMU of this run still running: {left:?}"),
    )?;
    Ok(())
}

/// Pids of the aarch64 QEMU whose command line names this bundle directory
/// (its disk overlay and serial log live under it).
fn qemu_pids_of(bundle: &Path) -> Result<Vec<i32>, Failed> {
    let o = Command::new("pgrep")
        .args(["-f", &format!("qemu-system-aarch64.*{}", bundle.display())])
        .output()?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// T1's finding 2 in miniature: with the writepath probe system-wide, the
/// container runtime (containerd-shim, dockerd's json-file driver) writes
/// again what the node in the container writes to stdout, and the report
/// says so.
fn container_system_scope() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let out = run(
        tmp.path(),
        &[
            "scenarios/smoke-container.toml",
            "--set",
            "probes.scope=\"system\"",
        ],
    )?;
    let v = json(&out.join("probes/stress/writepath.json"))?;
    let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
    for p in v["by_process"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
    {
        let name = p["process"].as_str().unwrap_or("").to_string();
        *by_name.entry(name).or_default() += p["hist"]["count"].as_u64().unwrap_or(0);
    }
    eprintln!("system-wide write-path calls by process during stress: {by_name:?}");
    let node = by_name.get("qfc-refnode").copied().unwrap_or(0);
    let shim: u64 = by_name
        .iter()
        .filter(|(k, _)| k.starts_with("containerd-shim"))
        .map(|(_, v)| v)
        .sum();
    let dockerd = by_name.get("dockerd").copied().unwrap_or(0);
    ensure(node > 0, format!("no write by the node: {by_name:?}"))?;
    ensure(
        shim > 0,
        format!("no write by containerd-shim: {by_name:?}"),
    )?;
    ensure(dockerd > 0, format!("no write by dockerd: {by_name:?}"))?;
    let report = std::fs::read_to_string(out.join("report.md"))?;
    ensure(
        report.contains("Container runtime writes"),
        "the report does not name the container runtime's writes",
    )?;
    Ok(())
}

/// `qfc-lab run` on the SSH target against an sshd on loopback: the node and
/// the probes are shipped into the run's working directory over ssh, ports
/// tunnelled, evidence fetched back; nothing of the run stays on the host.
fn ssh_smoke() -> Result<(), Failed> {
    let sshd = vm::testing::LoopbackSshd::start()?;
    let tmp = tempfile::tempdir()?;
    let workdir = tmp.path().join("remote");
    let sets = [
        "target.kind=\"ssh\"".to_string(),
        "target.ssh.host=\"127.0.0.1\"".into(),
        format!("target.ssh.port={}", sshd.port),
        format!("target.ssh.user=\"{}\"", sshd.user),
        format!("target.ssh.key=\"{}\"", sshd.path("id_user").display()),
        format!(
            "target.ssh.known_hosts=\"{}\"",
            sshd.path("known_hosts").display()
        ),
        format!("target.ssh.workdir=\"{}\"", workdir.display()),
        // Short: the point is the flow, not the load.
        "phase.1.duration_s=5".into(),
        // A seeded datadir, written here and shipped as a tarball.
        "node.seed_db.keys=2000".into(),
        "node.seed_db.value_bytes=64".into(),
    ];
    let mut args: Vec<&str> = vec!["scenarios/smoke.toml"];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let out = run(tmp.path(), &args)?;
    let m = json(&out.join("manifest.json"))?;
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    let ctx = json(&out.join("context.json"))?;
    ensure(
        ctx["target"]["kind"] == "ssh",
        format!("target {}", ctx["target"]),
    )?;
    let w = writes_in(&out, "stress")?;
    ensure(
        w > 0,
        "the probes on the SSH host saw no write of the node during stress",
    )?;
    let seed = json(&out.join("load/seed_db.json"))?;
    ensure(
        seed.to_string().contains("2000"),
        format!("seed report: {seed}"),
    )?;
    // The load reached the node through the ssh tunnels: transactions and
    // sync requests were answered.
    let load = json(&out.join("load/stress/summary.json"))?;
    for w in ["tx", "sync"] {
        let ok = load["workloads"][w]["ok"].as_u64().unwrap_or(0);
        ensure(
            ok > 0,
            format!(
                "no {w} request answered over the SSH target: {}",
                load["workloads"][w]
            ),
        )?;
    }
    // Nothing left behind: the run's working directory is gone.
    let left: Vec<_> = std::fs::read_dir(&workdir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure(left.is_empty(), format!("left on the SSH host: {left:?}"))?;
    Ok(())
}

/// The real qfc-node (given by `QFC_NODE_BINARY`), steady scenario on this
/// machine: RPC and sync load answered, symbolized qfc-node frames, the
/// command line fitted to the binary's flags and said so.
fn qfc_node_steady() -> Result<(), Failed> {
    let bin = std::env::var("QFC_NODE_BINARY")?;
    let tmp = tempfile::tempdir()?;
    let set = format!("node.binary=\"{bin}\"");
    let out = run_with(
        tmp.path(),
        &[
            "scenarios/qfc-node-steady.toml",
            "--set",
            &set,
            "--set",
            "phase.0.duration_s=25",
        ],
        &[0, 1],
    )?;
    let m = json(&out.join("manifest.json"))?;
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    ensure(
        m["node_binary_info"]["blake3"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "no node BLAKE3 in the manifest",
    )?;
    let ctx = json(&out.join("context.json"))?;
    ensure(
        ctx["node_version"]
            .as_str()
            .is_some_and(|v| v.contains("qfc")),
        format!("node version {}", ctx["node_version"]),
    )?;
    eprintln!("node command line notes: {}", ctx["node_flag_notes"]);
    let load = json(&out.join("load/steady/summary.json"))?;
    let ok = |w: &str| load["workloads"][w]["ok"].as_u64().unwrap_or(0);
    ensure(
        ok("rpc") > 0,
        format!("no RPC answered: {}", load["workloads"]["rpc"]),
    )?;
    ensure(
        ok("sync") > 0,
        format!("no sync response: {}", load["workloads"]["sync"]),
    )?;
    qfc_node_frames(&out, "steady")
}

/// The real qfc-node under an eight-peer `/qfc/sync/1` flood on this machine.
fn qfc_node_sync_flood() -> Result<(), Failed> {
    let bin = std::env::var("QFC_NODE_BINARY")?;
    let tmp = tempfile::tempdir()?;
    let set = format!("node.binary=\"{bin}\"");
    let out = run_with(
        tmp.path(),
        &["scenarios/qfc-node-sync-flood.toml", "--set", &set],
        &[0, 1],
    )?;
    let m = json(&out.join("manifest.json"))?;
    ensure(m["status"] == "complete", format!("status {}", m["status"]))?;
    let load = json(&out.join("load/flood/summary.json"))?;
    let sync = &load["workloads"]["sync"];
    ensure(
        sync["ok"].as_u64().unwrap_or(0) > 100,
        format!("sync flood barely answered: {sync}"),
    )?;
    let w = writes_in(&out, "flood")?;
    ensure(w > 0, "no write by the node during the flood")?;
    qfc_node_frames(&out, "flood")
}

/// qfc-node's own crates appear, symbolized, in the phase's on-CPU flame.
fn qfc_node_frames(out: &Path, phase: &str) -> Result<(), Failed> {
    let folded = std::fs::read_to_string(out.join("probes").join(phase).join("oncpu.folded"))?;
    let n = folded.lines().filter(|l| l.contains("qfc_")).count();
    ensure(
        n > 0,
        format!("no symbolized qfc_* frame in probes/{phase}/oncpu.folded"),
    )?;
    Ok(())
}

fn qfc_node_given() -> Result<(), String> {
    match std::env::var_os("QFC_NODE_BINARY") {
        Some(p) if Path::new(&p).is_file() => Ok(()),
        Some(p) => Err(format!("QFC_NODE_BINARY={} is not a file", Path::new(&p).display())),
        None => Err("QFC_NODE_BINARY is not set: give the path of a qfc-node built for this machine (the lab does not build it)".into()),
    }
}

fn sshd_available() -> Result<(), String> {
    match vm::testing::LoopbackSshd::unavailable() {
        Some(why) => Err(why.into()),
        None => Ok(()),
    }
}

fn qemu_ready() -> Result<(), String> {
    if which::which("qemu-system-aarch64").is_err() {
        return Err("qemu-system-aarch64 not found: run scripts/setup.sh".into());
    }
    // The run cross-builds what is missing; from a cold cache that takes
    // longer than a test should (about 11 minutes per binary here), so the
    // trial needs them warm: `cargo xtask cross --bin refnode:qfc-refnode --bin probes:qfc-probe`.
    let cross = vm::image::cache_root().join("cross/target/aarch64-unknown-linux-gnu/release");
    for b in ["qfc-refnode", "qfc-probe"] {
        if !cross.join(b).is_file() {
            return Err(format!(
                "no warm cross-built aarch64 {b} under {}: run `cargo xtask cross`",
                cross.display()
            ));
        }
    }
    match vm::image::cached(&vm::BuildOptions::new(vm::Arch::Aarch64)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(
            "no warm aarch64 guest image: run `qfc-lab image build --arch aarch64` first".into(),
        ),
        Err(e) => Err(format!("guest image cache unreadable: {e}")),
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = nix::unistd::Uid::effective().is_root();
    let need_root = |r: Result<(), String>| {
        if root {
            r
        } else {
            Err("needs root for the eBPF probes".into())
        }
    };
    let trials = vec![
        trial(
            "container_smoke_verifies_and_probes_see_the_containers_writes",
            container_smoke,
            need_root(docker_reachable()),
        ),
        trial(
            "container_system_scope_shows_the_runtime_mirroring_the_nodes_log",
            container_system_scope,
            need_root(docker_reachable()),
        ),
        trial(
            "container_sigkill_of_qfc_lab_then_gc_leaves_nothing",
            container_sigkill_then_gc,
            need_root(docker_reachable()),
        ),
        trial(
            "lab_runs_inside_the_aarch64_guest_and_its_bundle_verifies",
            lab_runs_inside_the_aarch64_guest,
            need_root(qemu_ready()).and_then(|()| {
                let p = vm::image::cache_root()
                    .join("cross/target/aarch64-unknown-linux-gnu/release/qfc-lab");
                if p.is_file() {
                    Ok(())
                } else {
                    Err(format!(
                        "no cross-built aarch64 qfc-lab at {}: run `cargo xtask cross --bin lab:qfc-lab`",
                        p.display()
                    ))
                }
            }),
        ),
        trial(
            "nofp_dwarf_whole_chain_in_95pct_in_the_aarch64_guest",
            nofp_known_answer_in_the_aarch64_guest,
            need_root(qemu_ready()).and_then(|()| {
                which::which("aarch64-linux-gnu-gcc")
                    .map(|_| ())
                    .map_err(|_| "aarch64-linux-gnu-gcc not found: run scripts/setup.sh".into())
            }),
        ),
        trial(
            "sigint_during_guest_boot_takes_effect_within_2_s",
            sigint_during_guest_boot_takes_effect_within_2_s,
            need_root(qemu_ready()),
        ),
        trial(
            "qemu_sigkill_of_qfc_lab_then_gc_leaves_nothing",
            qemu_sigkill_then_gc,
            need_root(qemu_ready()),
        ),
        trial(
            "qemu_aarch64_smoke_verifies_with_arch_and_accel_in_context",
            qemu_smoke,
            need_root(qemu_ready()),
        ),
        trial(
            "qemu_x86_64_smoke_verifies_with_the_guests_kernel",
            qemu_x86_64_smoke,
            need_root(qemu_x86_64_ready()),
        ),
        trial(
            "qemu_killed_mid_run_gives_an_incomplete_bundle_with_the_serial_log",
            qemu_dies_mid_run,
            need_root(qemu_ready()),
        ),
        trial(
            "ssh_loopback_smoke_verifies_and_leaves_nothing",
            ssh_smoke,
            need_root(sshd_available()),
        ),
        trial(
            "qfc_node_steady_local_verifies_with_rpc_sync_and_qfc_frames",
            qfc_node_steady,
            need_root(qfc_node_given()),
        ),
        trial(
            "qfc_node_sync_flood_local_verifies_with_responses_and_qfc_frames",
            qfc_node_sync_flood,
            need_root(qfc_node_given()),
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
