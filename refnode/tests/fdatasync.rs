//! Known-answer test of the per-block synced commit (issue 3, T3.2): with
//! `--lab-synced-commit`, strace counts at least N fdatasync calls over N
//! blocks, all on `tokio-rt-worker` threads; without it, none from block
//! commits. Needs strace and ptrace: skipped with the reason otherwise.

use libtest_mimic::{Arguments, Failed, Trial};
use refnode::testing::NodeProcess;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BLOCKS: u64 = 10;

/// (thread name, syscall) -> calls.
type SyncCounts = HashMap<(String, String), u64>;

/// `strace` attached to every thread of `pid`, tracing only the sync calls.
fn strace_args(pid: u32, out: &Path) -> Vec<OsString> {
    ["-f", "-e", "trace=fdatasync,fsync", "-o"]
        .iter()
        .map(OsString::from)
        .chain([
            out.as_os_str().to_owned(),
            "-p".into(),
            pid.to_string().into(),
        ])
        .collect()
}

fn strace_missing() -> Option<String> {
    match Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some("strace is not installed (scripts/setup.sh installs it)".into()),
    }
    .or_else(|| {
        // SAFETY: geteuid has no preconditions.
        (unsafe { libc::geteuid() } != 0)
            .then(|| "attaching strace to a running node needs root (ptrace)".into())
    })
}

/// (thread name, syscall) -> count, from `strace -f -o` output.
fn count_syncs(trace: &str, names: &HashMap<u32, String>) -> SyncCounts {
    let mut m = HashMap::new();
    for l in trace.lines() {
        let mut it = l.split_whitespace();
        let (Some(tid), Some(call)) = (it.next().and_then(|t| t.parse::<u32>().ok()), it.next())
        else {
            continue;
        };
        let Some(sys) = ["fdatasync(", "fsync("]
            .iter()
            .find(|s| call.starts_with(**s))
        else {
            continue;
        };
        let name = names
            .get(&tid)
            .cloned()
            .unwrap_or_else(|| format!("tid {tid}"));
        *m.entry((name, sys.trim_end_matches('(').to_string()))
            .or_default() += 1;
    }
    m
}

fn thread_names(pid: u32) -> HashMap<u32, String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let tid = e.file_name().to_str()?.parse().ok()?;
                Some((
                    tid,
                    std::fs::read_to_string(e.path().join("comm"))
                        .ok()?
                        .trim()
                        .to_string(),
                ))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Run a node, trace it over `BLOCKS` blocks, return (blocks, counts).
fn trace_blocks(synced: bool) -> Result<(u64, SyncCounts), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_qfc-refnode"));
    let mut args = vec!["--dev", "--no-network", "--lab-block-interval-ms", "100"];
    if synced {
        args.push("--lab-synced-commit");
    }
    let node = NodeProcess::spawn(&bin, dir.path(), &args).map_err(|e| format!("{e:#}"))?;
    node.wait_for_block(1, Duration::from_secs(30))
        .map_err(|e| format!("{e:#}"))?;
    let out = dir.path().join("strace.out");
    let errf = dir.path().join("strace.err");
    let mut st = Command::new("strace")
        .args(strace_args(node.pid(), &out))
        .stderr(std::fs::File::create(&errf).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    // Wait until strace reports its attachments, then let it settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&errf)
        .unwrap_or_default()
        .contains("attached")
    {
        if Instant::now() > deadline {
            let _ = st.kill();
            return Err("strace did not attach within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = node.block_number().map_err(|e| format!("{e:#}"))?;
    let end = node
        .wait_for_block(start + BLOCKS, Duration::from_secs(60))
        .map_err(|e| format!("{e:#}"))?;
    let names = thread_names(node.pid());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(st.id() as libc::pid_t, libc::SIGINT) };
    st.wait().map_err(|e| e.to_string())?;
    let trace = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    Ok((end - start, count_syncs(&trace, &names)))
}

fn synced_on() -> Result<(), Failed> {
    let (blocks, counts) = trace_blocks(true)?;
    let on_workers = counts
        .get(&(refnode::TOKIO_THREAD_NAME.into(), "fdatasync".into()))
        .copied()
        .unwrap_or(0);
    if on_workers < blocks {
        return Err(format!(
            "{blocks} blocks but only {on_workers} fdatasync on tokio-rt-worker: {counts:?}"
        )
        .into());
    }
    let elsewhere: u64 = counts
        .iter()
        .filter(|((t, _), _)| t != refnode::TOKIO_THREAD_NAME)
        .map(|(_, n)| n)
        .sum();
    if elsewhere != 0 {
        return Err(
            format!("sync calls off tokio-rt-worker during block commits: {counts:?}").into(),
        );
    }
    println!(
        "synced commit: {blocks} blocks, {on_workers} fdatasync on {}",
        refnode::TOKIO_THREAD_NAME
    );
    Ok(())
}

fn synced_off() -> Result<(), Failed> {
    let (blocks, counts) = trace_blocks(false)?;
    let on_workers: u64 = counts
        .iter()
        .filter(|((t, _), _)| t == refnode::TOKIO_THREAD_NAME)
        .map(|(_, n)| n)
        .sum();
    if blocks < BLOCKS || on_workers != 0 {
        return Err(format!(
            "{blocks} unsynced blocks, {on_workers} sync calls from block commits: {counts:?}"
        )
        .into());
    }
    println!(
        "unsynced commit: {blocks} blocks, 0 sync calls on {}",
        refnode::TOKIO_THREAD_NAME
    );
    Ok(())
}

fn unit() -> Result<(), Failed> {
    let a: Vec<String> = strace_args(42, Path::new("/t/o"))
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        a,
        [
            "-f",
            "-e",
            "trace=fdatasync,fsync",
            "-o",
            "/t/o",
            "-p",
            "42"
        ]
    );
    let names = HashMap::from([
        (7, "tokio-rt-worker".to_string()),
        (8, "rocksdb:high".to_string()),
    ]);
    let c = count_syncs("7 fdatasync(12) = 0\n8 fsync(3 <unfinished ...>\n7 <... fdatasync resumed>) = 0\n9 fdatasync(4) = 0\n", &names);
    assert_eq!(c[&("tokio-rt-worker".into(), "fdatasync".into())], 1);
    assert_eq!(c[&("rocksdb:high".into(), "fsync".into())], 1);
    assert_eq!(c[&("tid 9".into(), "fdatasync".into())], 1);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let missing = strace_missing();
    let gate = |t: Trial| match &missing {
        Some(reason) => {
            eprintln!("skipping {}: {reason}", t.name());
            t.with_ignored_flag(true)
        }
        None => t,
    };
    let trials = vec![
        Trial::test("strace_args_and_parsing", unit),
        gate(Trial::test(
            "synced_commit_fdatasync_per_block_on_tokio_workers",
            synced_on,
        )),
        gate(Trial::test(
            "unsynced_commit_no_fdatasync_from_block_commits",
            synced_off,
        )),
    ];
    libtest_mimic::run(&args, trials).exit();
}
