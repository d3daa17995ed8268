//! Known answers for whole stacks without frame pointers (issue 12).
//!
//! A C library built `-O2 -fomit-frame-pointer -fno-optimize-sibling-calls`
//! (tests/data/unwind/nofp_lib.c) is called from a program built the same
//! way (nofp_main.c); it burns CPU in `qfc_nofp_burn`, six calls below
//! `main`. Both are compiled with gcc into a temporary directory at test
//! time. In `dwarf` mode at least 95% of the samples whose leaf is the
//! burner must show the whole chain up to `main`, and no user frame of those
//! samples may be off the known chain; in `fp` mode the same run must show
//! the chain truncated.
//!
//! A program built with frame pointers whose stack is deeper than the copy
//! (tests/data/unwind/deep_main.c) checks the join of the copied walk to
//! the kernel's frame-pointer walk: the chain must reach `main`, with no
//! frame off it, and every sample must say its copy was cut. Run in a
//! thread, the joined chain reaches glibc's thread entry, and those stacks
//! must count as whole in the quality figures (reaching a thread root, not
//! in the truncated-stack share).
//!
//! They need root, a kernel that loads BPF and gcc: without them every trial
//! is reported as ignored with the reason printed, never as passed.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

mod common;
use common::Workload;
use libtest_mimic::{Arguments, Failed, Trial};
use probes::{
    known_chain::{oncpu_user_stacks, KnownChain},
    unwind::UnwindMode,
    ProbeKind, Scope, Session, SessionOptions,
};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unwind")
}

/// How the library is built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lib {
    /// With `.eh_frame` (gcc's default on x86_64 and aarch64).
    Tables,
    /// Without unwind tables (`-fno-asynchronous-unwind-tables
    /// -fno-unwind-tables`), then `strip --strip-all`: bad input.
    NoTablesStripped,
}

/// Compiles the library and the program into `dir` with
/// tests/data/unwind/build.sh; returns the program.
fn build_nofp(dir: &Path, lib_kind: Lib) -> Result<PathBuf, String> {
    let kind = match lib_kind {
        Lib::Tables => "tables",
        Lib::NoTablesStripped => "no-tables",
    };
    let st = Command::new("sh")
        .arg(data_dir().join("build.sh"))
        .arg("gcc")
        .arg(dir)
        .arg(kind)
        .status()
        .map_err(|e| format!("running build.sh: {e}"))?;
    if !st.success() {
        return Err(format!("tests/data/unwind/build.sh gcc failed: {st}"));
    }
    Ok(dir.join("nofp"))
}

/// Burns 4 s in the no-FP chain under an on-CPU session in `mode`; returns
/// the user stacks (leaf first) of the process's samples with their counts,
/// and the window's summary.
fn burn_stacks(mode: UnwindMode, lib: Lib) -> Result<(Vec<(u64, Vec<String>)>, Value), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = build_nofp(dir.path(), lib)?;
    oncpu_stacks(&bin, "burn", mode, None)
}

/// Runs `bin <how> 4000` under an on-CPU session in `mode` (copy size
/// `ustack_bytes`, else the default); returns its user stacks with their
/// counts and the window's summary.
fn oncpu_stacks(
    bin: &Path,
    how: &str,
    mode: UnwindMode,
    ustack_bytes: Option<u32>,
) -> Result<(Vec<(u64, Vec<String>)>, Value), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut w = Workload::spawn(bin, &[how, "4000"])?;
    let out = dir.path().join("out");
    let mut o = SessionOptions::new(Scope::Pid(w.pid), &out);
    o.probes = vec![ProbeKind::Oncpu];
    o.unwind = mode;
    if let Some(b) = ustack_bytes {
        o.ustack_bytes = b;
    }
    let mut s = Session::start(o).map_err(|e| e.to_string())?;
    s.phase("t").map_err(|e| e.to_string())?;
    w.run()?;
    let (_, summary) = s.stop().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(out.join("t/oncpu.json")).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let stacks = oncpu_user_stacks(&v, Some(u64::from(w.pid)));
    let summary = serde_json::to_value(&summary.windows[0]).map_err(|e| e.to_string())?;
    Ok((stacks, summary))
}

/// Samples whose leaf is the burner, and of those the ones with the whole
/// chain to `main`; plus every user frame of those samples that is on
/// neither the chain nor the allowed start-up frames above `main`.
fn chain_counts(stacks: &[(u64, Vec<String>)]) -> (u64, u64, Vec<String>) {
    let c = KnownChain::nofp()
        .expect("tests/data/unwind/nofp_chain.txt is part of the repository")
        .count(stacks);
    (c.leaf, c.whole, c.wrong)
}

/// Issue 12, "Known answer, no frame pointers" (dwarf half).
fn dwarf_whole_chain() -> Result<(), Failed> {
    let (stacks, summary) = burn_stacks(UnwindMode::Dwarf, Lib::Tables)?;
    let (leaf, whole, wrong) = chain_counts(&stacks);
    if leaf < 60 {
        return Err(format!(
            "only {leaf} samples with qfc_nofp_burn as leaf in 4 s at 99 Hz: {stacks:?}"
        )
        .into());
    }
    let share = whole as f64 / leaf as f64;
    if share < 0.95 {
        return Err(format!(
            "whole chain in {whole}/{leaf} burner samples ({:.1}%), want >= 95%; stacks: {stacks:?}",
            share * 100.0
        )
        .into());
    }
    // "Every user frame emitted for those samples is on the known chain"
    // applies to the truncated ones too: a walk may stop early, never err.
    let wrong: Vec<&String> = wrong
        .iter()
        .filter(|w| !w.starts_with('#') || !w.contains("in []"))
        .collect();
    if !wrong.is_empty() {
        return Err(format!("frames off the known chain: {wrong:?}").into());
    }
    let q = &summary["stack_quality"]["oncpu"];
    eprintln!("dwarf: whole chain in {whole}/{leaf} burner samples; quality {q}");
    if let Some((n, top)) = stacks.iter().max_by_key(|(n, _)| *n) {
        eprintln!("dwarf: heaviest stack ({n} samples): {top:?}");
    }
    if q["method_share"]["dwarf"].as_f64() != Some(1.0) {
        return Err(format!("not every stack unwound by dwarf: {q}").into());
    }
    if q["copies"].as_u64().unwrap_or(0) < leaf {
        return Err(format!("{} copies for {leaf} samples: {q}", q["copies"]).into());
    }
    Ok(())
}

/// Issue 12, "Known answer, no frame pointers" (fp half): the contrast.
fn fp_chain_truncated() -> Result<(), Failed> {
    let (stacks, _) = burn_stacks(UnwindMode::Fp, Lib::Tables)?;
    let total: u64 = stacks.iter().map(|(n, _)| n).sum();
    if total < 60 {
        return Err(format!("only {total} samples of the process in 4 s at 99 Hz").into());
    }
    let (leaf, whole, _) = chain_counts(&stacks);
    let share = whole as f64 / total as f64;
    eprintln!("fp: whole chain in {whole}/{total} samples ({leaf} with the burner as leaf)");
    if let Some((n, top)) = stacks.iter().max_by_key(|(n, _)| *n) {
        eprintln!("fp: heaviest stack ({n} samples): {top:?}");
    }
    if share > 0.05 {
        return Err(format!(
            "frame pointers gave the whole chain in {whole}/{total} samples ({:.1}%): the library is not built without frame pointers, so the dwarf test proves nothing",
            share * 100.0
        )
        .into());
    }
    Ok(())
}

/// Issue 12, "Bad input": a library without `.eh_frame`, stripped. The
/// walk stops in the library (named `no_unwind_info` in the figures) and
/// emits no frame off the known chain.
fn no_eh_frame_truncated_not_wrong() -> Result<(), Failed> {
    let (stacks, summary) = burn_stacks(UnwindMode::Dwarf, Lib::NoTablesStripped)?;
    let (leaf, whole, wrong) = chain_counts(&stacks);
    eprintln!("no .eh_frame: whole chain in {whole}/{leaf} burner samples");
    if leaf < 60 {
        return Err(format!("only {leaf} samples with qfc_nofp_burn as leaf: {stacks:?}").into());
    }
    if whole != 0 {
        return Err(format!("{whole} samples claim the whole chain without unwind tables").into());
    }
    if !wrong.is_empty() {
        return Err(format!("frames off the known chain: {wrong:?}").into());
    }
    let q = &summary["stack_quality"]["oncpu"];
    eprintln!("no .eh_frame: quality {q}");
    if q["ends"]["no_unwind_info"].as_u64().unwrap_or(0) < leaf {
        return Err(format!(
            "the truncation is not named no_unwind_info for each of the {leaf} samples: {q}"
        )
        .into());
    }
    Ok(())
}

/// Issue 12, "Known answer, off-CPU": fdatasync called from inside the
/// no-frame-pointer library; its uninterruptible waits are copied and
/// unwound, and their user stacks reach `qfc_app_enter` and `main`.
fn offcpu_fdatasync_reaches_caller() -> Result<(), Failed> {
    const SYNC_CHAIN: [&str; 8] = [
        "qfc_nofp_sync",
        "qfc_nofp_d",
        "qfc_nofp_c_inlined",
        "qfc_nofp_c",
        "qfc_nofp_b",
        "qfc_nofp_a",
        "qfc_app_enter",
        "main",
    ];
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = build_nofp(dir.path(), Lib::Tables)?;
    // A real block device (not tmpfs), so that fdatasync waits on I/O.
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let disk = tempfile::tempdir_in(base).map_err(|e| e.to_string())?;
    let file = disk.path().join("sync.dat");
    let file = file.to_str().ok_or("non-UTF-8 temporary path")?;
    let mut w = Workload::spawn(&bin, &["sync", "200", file])?;
    let out = dir.path().join("out");
    let mut o = SessionOptions::new(Scope::Pid(w.pid), &out);
    o.probes = vec![ProbeKind::Offcpu];
    o.unwind = UnwindMode::Dwarf;
    let mut s = Session::start(o).map_err(|e| e.to_string())?;
    s.phase("t").map_err(|e| e.to_string())?;
    w.run()?;
    let (_, summary) = s.stop().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(out.join("t/offcpu.json")).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let pid = u64::from(w.pid);
    let (mut d_us, mut whole_us) = (0u64, 0u64);
    let mut sample = None;
    for st in v["stacks"].as_array().ok_or("no stacks")? {
        let state = st["state"].as_u64().unwrap_or(0);
        if st["tgid"].as_u64() != Some(pid) || state & 2 == 0 || state & 0x100 != 0 {
            continue;
        }
        let user: Vec<&str> = st["user"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let n = st["count"].as_u64().unwrap_or(0);
        d_us += n;
        let at = user.iter().position(|f| *f == SYNC_CHAIN[0]);
        if at.is_some_and(|i| {
            user.len() >= i + SYNC_CHAIN.len() && user[i..i + SYNC_CHAIN.len()] == SYNC_CHAIN
        }) {
            whole_us += n;
            sample.get_or_insert(user);
        }
    }
    let q = &summary.windows[0].stack_quality["offcpu"];
    eprintln!("offcpu: {whole_us}/{d_us} µs of uninterruptible waits reach main through qfc_app_enter; e.g. {sample:?}; quality {q:?}");
    if d_us == 0 {
        return Err("no uninterruptible off-CPU time for 200 fdatasync calls".into());
    }
    if (whole_us as f64) < 0.95 * d_us as f64 {
        return Err(format!("only {whole_us}/{d_us} µs of D-state stacks reach the caller").into());
    }
    if q.copies == 0 || q.method_share.get("dwarf").copied().unwrap_or(0.0) <= 0.0 {
        return Err(format!("no off-CPU stack was copied: {q:?}").into());
    }
    Ok(())
}

/// The deep program's chain, leaf first, down to `main`.
const DEEP_CHAIN: [&str; 8] = [
    "qfc_deep_burn",
    "qfc_deep_near",
    "qfc_deep_5",
    "qfc_deep_4",
    "qfc_deep_3",
    "qfc_deep_2",
    "qfc_deep_1",
    "main",
];

/// Issue 12: a stack deeper than the copy (8 KiB against five 4 KiB frames)
/// is whole when the copied walk goes on along the frame-pointer chain.
fn deep_stack_joins_frame_pointers() -> Result<(), Failed> {
    let above = KnownChain::nofp().map_err(|e| e.to_string())?.above;
    deep_joined("burn", DEEP_CHAIN.to_vec(), above).map(|_| ())
}

/// Issue 12: in a thread, the joined walk ends at glibc's thread entry, and
/// such a stack is whole in the quality figures: it reaches a thread root,
/// and the truncated-stack share does not count it (it once counted every
/// joined stack as cut short).
fn deep_thread_joined_stack_is_whole() -> Result<(), Failed> {
    let mut chain = DEEP_CHAIN[..DEEP_CHAIN.len() - 1].to_vec();
    chain.push("qfc_deep_thread");
    // glibc's thread entry, named with libc6-dbg or without it.
    let above = ["start_thread", "clone3", "__clone3", "[libc.so.6]"]
        .map(str::to_owned)
        .to_vec();
    let w = deep_joined("thread", chain, above)?;
    let root = w["stack_quality"]["oncpu"]["reached_root_share"]
        .as_f64()
        .unwrap_or(0.0);
    let cut = w["truncated_stack_share"]["oncpu"].as_f64().unwrap_or(1.0);
    if root < 0.95 {
        return Err(format!(
            "{:.1}% of stacks reach a thread root, want >= 95%",
            root * 100.0
        )
        .into());
    }
    // Nothing is lost here, so a stack is cut short exactly when it misses
    // a thread root (a kernel stack lost now and then is allowed for).
    if (cut - (1.0 - root)).abs() > 0.01 {
        return Err(format!(
            "truncated-stack share {cut:.4} against {:.4} of stacks that miss a thread root",
            1.0 - root
        )
        .into());
    }
    Ok(())
}

/// Builds the deep program and runs `deep <how> 4000` under an on-CPU
/// session in dwarf mode with 8 KiB copies; checks that the burner's chain
/// (leaf first, `chain`, then only frames of `above`) is whole in at least
/// 95% of its samples, with no wrong frame, by the join of the copy to the
/// frame-pointer chain. Returns the window's summary.
fn deep_joined(how: &str, chain: Vec<&str>, above: Vec<String>) -> Result<Value, Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = dir.path().join("deep");
    let st = Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-pthread",
        ])
        .arg("-o")
        .arg(&bin)
        .arg(data_dir().join("deep_main.c"))
        .status()
        .map_err(|e| format!("running gcc: {e}"))?;
    if !st.success() {
        return Err(format!("gcc failed on deep_main.c: {st}").into());
    }
    let (stacks, summary) = oncpu_stacks(&bin, how, UnwindMode::Dwarf, Some(8192))?;
    let known = KnownChain {
        chain: chain.iter().map(|s| (*s).to_owned()).collect(),
        above,
    };
    let c = known.count(&stacks);
    let (leaf, whole, wrong) = (c.leaf, c.whole, c.wrong);
    let q = &summary["stack_quality"]["oncpu"];
    eprintln!(
        "deep {how}: whole chain in {whole}/{leaf} burner samples; truncated share {}; quality {q}",
        summary["truncated_stack_share"]["oncpu"]
    );
    if leaf < 60 {
        return Err(
            format!("only {leaf} samples with qfc_deep_burn as leaf in 4 s at 99 Hz").into(),
        );
    }
    if !wrong.is_empty() {
        return Err(format!("frames off the known chain: {wrong:?}").into());
    }
    if (whole as f64) < 0.95 * leaf as f64 {
        return Err(format!("whole chain in only {whole}/{leaf} burner samples").into());
    }
    // The copy really was too small: the join, not the copy, made them whole.
    let cut = q["copies_cut_short"].as_u64().unwrap_or(0);
    if cut < whole {
        return Err(format!("{cut} copies cut short for {whole} whole stacks: {q}").into());
    }
    if q["method_share"]["dwarf_then_fp"].as_f64().unwrap_or(0.0) < 0.95 {
        return Err(format!("not unwound as dwarf_then_fp: {q}").into());
    }
    Ok(summary)
}

/// Why the trials cannot run here, if they cannot.
fn capability() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (CAP_BPF, CAP_PERFMON) to load eBPF programs".into());
    }
    if Command::new("gcc").arg("--version").output().is_err() {
        return Some("needs gcc to build the no-frame-pointer library".into());
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Some(format!("no temporary directory: {e}")),
    };
    let mut o = SessionOptions::new(Scope::Pid(std::process::id()), dir.path());
    o.probes = vec![ProbeKind::Oncpu];
    o.unwind = UnwindMode::Dwarf;
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
        eprintln!("unwind: all trials skipped: {why}");
    }
    let trials: Vec<(&str, fn() -> Result<(), Failed>)> = vec![
        ("nofp_dwarf_whole_chain_in_95pct", dwarf_whole_chain),
        ("nofp_fp_chain_truncated", fp_chain_truncated),
        (
            "offcpu_fdatasync_in_nofp_lib_reaches_caller",
            offcpu_fdatasync_reaches_caller,
        ),
        (
            "no_eh_frame_stripped_lib_truncated_not_wrong",
            no_eh_frame_truncated_not_wrong,
        ),
        (
            "deep_stack_past_the_copy_joins_frame_pointers",
            deep_stack_joins_frame_pointers,
        ),
        (
            "deep_thread_joined_to_its_root_is_whole",
            deep_thread_joined_stack_is_whole,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(skip.is_some()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
