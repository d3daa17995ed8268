//! Report, expectations, diff and T1 import: known answers on fixture files, golden files
//! (`tests/data/report/<case>/expected/`, rewritten with `QFC_BLESS=1`; a missing one fails, never created when
//! missing), and one test over the real T1 capture (skipped, with the reason, when absent).

use std::path::{Path, PathBuf};

use lab::report::{
    self,
    evidence::Bundle,
    expect::{evaluate_all, Status},
    figures::{eval_name, Ctx},
    t1,
};
use libtest_mimic::{Arguments, Failed, Trial};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fig(p: &lab::report::evidence::PhaseEvidence, name: &str) -> Result<f64, Failed> {
    eval_name(name, p, &Ctx::default()).map_err(|e| format!("{name}: cannot evaluate: {e}").into())
}

fn close(name: &str, got: f64, want: f64) -> Result<(), Failed> {
    if (got - want).abs() > 1e-6 * want.abs().max(1.0) {
        return Err(format!("{name}: got {got}, want {want}").into());
    }
    Ok(())
}

/// T1's headline figures from small fixture files written for it.
fn t1_fixture_headlines() -> Result<(), Failed> {
    let p = t1::import(&data().join("t1"))?;
    close("oncpu.samples", fig(&p, "oncpu.samples")?, 100.0)?;
    close("hashing", fig(&p, "oncpu.share{area=hashing}")?, 47.0)?;
    // issue 16: self attribution gives malloc leaves under formatting to the allocator;
    // the inclusive share keeps all 17 formatting samples
    close(
        "log formatting (self)",
        fig(&p, "oncpu.self_share{area=log_formatting}")?,
        15.0,
    )?;
    close(
        "log formatting (inclusive)",
        fig(&p, "oncpu.inclusive_share{area=log_formatting}")?,
        17.0,
    )?;
    // 10 allocator-first samples plus 2 malloc leaves under formatting frames (self, issue 16)
    close("allocator", fig(&p, "oncpu.share{area=allocator}")?, 12.0)?;
    close("rocksdb", fig(&p, "oncpu.share{area=rocksdb}")?, 3.0)?;
    close("network", fig(&p, "oncpu.share{area=network}")?, 8.0)?;
    close("kernel", fig(&p, "oncpu.share{area=kernel}")?, 10.0)?;
    close("other", fig(&p, "oncpu.share{area=other}")?, 5.0)?;
    close(
        "blake3 frames",
        fig(&p, "oncpu.share_matching:blake3::")?,
        47.0,
    )?;
    close("alloy fsyncs", fig(&p, "fsync.count{comm=alloy}")?, 6.0)?;
    close(
        "node_exporter fsyncs",
        fig(&p, "fsync.count{comm=node_exporter}")?,
        2.0,
    )?;
    close(
        "qfc-node fsyncs",
        fig(&p, "fsync.count{comm=qfc-node}")?,
        0.0,
    )?;
    close("fsync p99", fig(&p, "fsync.p99_us{comm=alloy}")?, 8192.0)?;
    // the two @bio_by_rwbs_us[W] are merged: 50 + 50 requests, 2 in [32K, 64K)
    close("bio W count", fig(&p, "bio.count{rwbs=W}")?, 100.0)?;
    close("bio W p99", fig(&p, "bio.p99_us{rwbs=W}")?, 65536.0)?;
    close("bio W bytes", fig(&p, "bio.bytes{rwbs=W}")?, 409600.0)?;
    close("writes", fig(&p, "writepath.writes")?, 1502.0)?;
    close(
        "writes/s over 25 s",
        fig(&p, "writepath.writes_per_s")?,
        1502.0 / 25.0,
    )?;
    close(
        "tokio writes",
        fig(&p, "writepath.writes{comm=tokio-rt-worker}")?,
        500.0,
    )?;
    close(
        "runc writes",
        fig(&p, "writepath.writes{comm=runc:[0:PARENT]}")?,
        18.0,
    )?;
    close("wp fsyncs", fig(&p, "writepath.fsyncs")?, 3.0)?;
    close(
        "write p99 ([0], [1] buckets)",
        fig(&p, "writepath.p99_us{syscall=write}")?,
        4.0,
    )?;
    close("offcpu total", fig(&p, "offcpu.total_s")?, 10.0)?;
    close("offcpu futex", fig(&p, "offcpu.share{reason=futex}")?, 75.0)?;
    close(
        "offcpu network",
        fig(&p, "offcpu.share{reason=network}")?,
        25.0,
    )?;
    close("no disk stall", fig(&p, "offcpu.disk_write_stall")?, 0.0)?;
    let notes = p.notes.join("\n");
    for want in [
        "@bio_by_rwbs_us[W] appeared more than once; the entries were merged",
        "@bytes_by_rwbs[W] appeared more than once",
        "helper maps ignored: @start (2 entries)",
        "helper maps ignored: @ks (1 entries), @off (1 entries)",
        "look cut at a space",
    ] {
        if !notes.contains(want) {
            return Err(format!("notes lack {want:?}:\n{notes}").into());
        }
    }
    // figures T1 cannot give say why
    let e = eval_name("fsync.per_block", &p, &Ctx::default()).unwrap_err();
    if !e.contains("no block count") {
        return Err(format!("fsync.per_block reason: {e}").into());
    }
    Ok(())
}

fn t1_dir() -> PathBuf {
    std::env::var_os("QFC_T1_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/t1"))
}

/// The real T1 files: 1987 samples, 935 with blake3 frames, 335 with tracing_subscriber,
/// 6 fsyncs by alloy, 1,336,096 write syscalls.
fn t1_real_capture() -> Result<(), Failed> {
    let p = t1::import(&t1_dir())?;
    close("samples", fig(&p, "oncpu.samples")?, 1987.0)?;
    close(
        "blake3",
        fig(&p, "oncpu.share_matching:blake3")?,
        100.0 * 935.0 / 1987.0,
    )?;
    close(
        "tracing",
        fig(&p, "oncpu.share_matching:tracing_subscriber")?,
        100.0 * 335.0 / 1987.0,
    )?;
    close(
        "hashing area",
        fig(&p, "oncpu.share{area=hashing}")?,
        100.0 * 935.0 / 1987.0,
    )?;
    // issue 16: self (leaf-most recognised frame) and inclusive (any frame) shares
    close(
        "log area (inclusive)",
        fig(&p, "oncpu.inclusive_share{area=log_formatting}")?,
        100.0 * 335.0 / 1987.0,
    )?;
    close(
        "log area (self)",
        fig(&p, "oncpu.self_share{area=log_formatting}")?,
        100.0 * 304.0 / 1987.0,
    )?;
    close(
        "hashing (inclusive)",
        fig(&p, "oncpu.inclusive_share{area=hashing}")?,
        100.0 * 935.0 / 1987.0,
    )?;
    close(
        "hashing (self)",
        fig(&p, "oncpu.self_share{area=hashing}")?,
        100.0 * 935.0 / 1987.0,
    )?;
    let alloc = fig(&p, "oncpu.share{area=allocator}")?;
    if !(9.0..=11.0).contains(&alloc) {
        return Err(format!("allocator share {alloc}%, T1 says about 10%").into());
    }
    let rocks = fig(&p, "oncpu.share{area=rocksdb}")?;
    if !(2.5..=3.5).contains(&rocks) {
        return Err(format!("RocksDB share {rocks}%, T1 says about 3%").into());
    }
    close("alloy fsyncs", fig(&p, "fsync.count{comm=alloy}")?, 6.0)?;
    close("all fsyncs", fig(&p, "fsync.count")?, 6.0)?;
    close("writes", fig(&p, "writepath.writes")?, 1_336_096.0)?;
    close(
        "tokio writes",
        fig(&p, "writepath.writes{comm=tokio-rt-worker}")?,
        503_774.0,
    )?;
    close("no disk stall", fig(&p, "offcpu.disk_write_stall")?, 0.0)?;
    let futex = fig(&p, "offcpu.share{reason=futex}")?;
    close(
        "futex share",
        futex,
        100.0 * (14997651.0 + 60000926.0) / (14997651.0 + 14997714.0 + 60000926.0),
    )?;
    if !p
        .notes
        .iter()
        .any(|n| n.contains("@bio_by_rwbs_us[W] appeared more than once"))
    {
        return Err("the duplicated @bio_by_rwbs_us[W] was not reported".into());
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &t)?;
        } else {
            std::fs::copy(e.path(), t)?;
        }
    }
    Ok(())
}

/// Compares `got` with the golden file (`vm::testing::golden`: a missing
/// file fails unless QFC_BLESS=1).
fn golden(path: &Path, got: &str) -> Result<(), Failed> {
    vm::testing::golden(path, got).map_err(Failed::from)
}

fn render_case(case: &str) -> Result<report::Outcome, Failed> {
    let src = data().join("report").join(case).join("bundle");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("bundle");
    copy_dir(&src, &dir)?;
    let out = report::render_bundle(&dir, &report::RenderOptions::default())?;
    // render twice: byte-identical
    let first = std::fs::read_to_string(dir.join("report.html"))?;
    report::render_bundle(&dir, &report::RenderOptions::default())?;
    if first != std::fs::read_to_string(dir.join("report.html"))? {
        return Err("report.html differs between two renders of the same bundle".into());
    }
    let exp = data().join("report").join(case).join("expected");
    for f in report::RENDERED_FILES {
        golden(&exp.join(f), &std::fs::read_to_string(dir.join(f))?)?;
    }
    Ok(out)
}

fn golden_synced_off() -> Result<(), Failed> {
    let out = render_case("synced-off")?;
    // the failing expectation, its value and its bound are in the report
    if !out.verdicts.any_failed() {
        return Err("synced commit off: fsync.per_block >= 1 must fail".into());
    }
    let v = &out.verdicts.verdicts[0];
    if v.status != Status::Fail || v.value != Some(0.0) || v.bound != 1.0 {
        return Err(format!("fsync.per_block verdict: {v:?}").into());
    }
    let md = std::fs::read_to_string(data().join("report/synced-off/expected/report.md"))?;
    if !md.contains("| **FAIL** | `fsync.per_block` | stress | 0 calls/block | >= 1 |") {
        return Err("report.md lacks the failing figure with value and bound".into());
    }
    Ok(())
}

fn golden_synced_on() -> Result<(), Failed> {
    let out = render_case("synced-on")?;
    let v = &out.verdicts;
    if v.any_failed() || v.pass != 4 || v.cannot_evaluate != 1 {
        return Err(
            format!("synced commit on: want 4 pass, 0 fail, 1 cannot evaluate; got {v:?}").into(),
        );
    }
    let c = v
        .verdicts
        .iter()
        .find(|x| x.status == Status::CannotEvaluate)
        .unwrap();
    if c.reason.as_deref() != Some("no tx workload ran in this phase") {
        return Err(format!("cannot-evaluate reason: {:?}", c.reason).into());
    }
    Ok(())
}

/// Known answer: synced commit off vs on gives "fsyncs per block 0 -> 1" and a disk-write
/// stall that appears only in the second.
fn diff_off_on() -> Result<(), Failed> {
    let a = data().join("report/synced-off/bundle");
    let b = data().join("report/synced-on/bundle");
    let tmp = tempfile::tempdir()?;
    let d = report::diff_bundles(&a, &b, Some(tmp.path()))?;
    let s = d.sentences.join("\n");
    for want in [
        "stress: fsyncs per block 0 -> 1",
        "stress: a disk-write stall appeared in off-CPU (28.57% of off-CPU time)",
        "warmup: fsyncs per block 0 -> 1",
    ] {
        if !s.lines().any(|l| l == want) {
            return Err(format!("diff sentences lack {want:?}:\n{s}").into());
        }
    }
    for f in [
        "stress-oncpu-diff.svg",
        "stress-offcpu-diff.svg",
        "diff.md",
        "diff.html",
    ] {
        if !tmp.path().join(f).is_file() {
            return Err(format!("diff --out wrote no {f}").into());
        }
    }
    golden(
        &data().join("report/diff-off-on/expected/diff.md"),
        &d.markdown,
    )?;
    // and the other way round
    let r = report::diff_bundles(&b, &a, None)?;
    if !r
        .sentences
        .iter()
        .any(|l| l.contains("the disk-write stall disappeared"))
    {
        return Err(format!("reverse diff: {:?}", r.sentences).into());
    }
    Ok(())
}

/// Different scenarios or seeds are compared only with a warning.
fn diff_warns_on_seed() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let b = tmp.path().join("other");
    copy_dir(&data().join("report/synced-on/bundle"), &b)?;
    let scen = std::fs::read_to_string(b.join("scenario.toml"))?.replace("seed = 7", "seed = 8");
    std::fs::write(b.join("scenario.toml"), scen)?;
    let d = report::diff_bundles(&data().join("report/synced-off/bundle"), &b, None)?;
    if !d
        .markdown
        .contains("**Warning:** the bundles used different seeds (7 and 8)")
    {
        return Err("no seed warning".into());
    }
    Ok(())
}

/// Expectations over missing evidence are "cannot evaluate" with the reason, never a number.
fn missing_evidence_cannot_evaluate() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::write(
        dir.join("scenario.toml"),
        "name = \"bare\"\nseed = 1\n[[phase]]\nname = \"p\"\nduration_s = 1\n[[expect]]\nfigure = \"fsync.per_block\"\nphase = \"p\"\nop = \">=\"\nvalue = 1\n[[expect]]\nfigure = \"nosuch.figure\"\nop = \">=\"\nvalue = 1\n[[expect]]\nfigure = \"rocksdb.l0_files.max\"\nphase = \"gone\"\nop = \"<\"\nvalue = 1\n",
    )?;
    let b = Bundle::load(dir)?;
    let v = evaluate_all(&b, &b.scenario.expect);
    if v.cannot_evaluate != 3 || v.any_failed() {
        return Err(format!("{v:?}").into());
    }
    let r: Vec<&str> = v
        .verdicts
        .iter()
        .map(|x| x.reason.as_deref().unwrap_or(""))
        .collect();
    if !r[0].contains("no fsync evidence")
        || !r[1].contains("unknown figure")
        || !r[2].contains("no phase \"gone\"")
    {
        return Err(format!("reasons: {r:?}").into());
    }
    Ok(())
}

/// A baseline comparison with T1 shows T1's figures next to the bundle's.
fn baseline_t1() -> Result<(), Failed> {
    let md = report::import_t1(
        &data().join("t1"),
        Some(&data().join("report/synced-on/bundle")),
    )?;
    if !md.contains("| `oncpu.self_share{area=hashing}` | 60% | 40% | 47% |") {
        return Err(format!("baseline table:\n{md}").into());
    }
    Ok(())
}

/// An emulated target gets a plain warning, and `capture.emulated` is 1.
fn emulated_warning() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("b");
    copy_dir(&data().join("report/synced-on/bundle"), &dir)?;
    // context.json as the run writes it (lab::context::Context)
    let context = lab::context::Context {
        target: Some(vm::TargetInfo {
            kind: vm::TargetKind::Qemu,
            arch: "aarch64".into(),
            accel: Some("tcg".into()),
            emulated: true,
        }),
        ..Default::default()
    };
    std::fs::write(dir.join("context.json"), serde_json::to_vec(&context)?)?;
    report::render_bundle(&dir, &report::RenderOptions::default())?;
    let md = std::fs::read_to_string(dir.join("report.md"))?;
    if !md.contains("> **Warning:** the target is emulated (QEMU TCG)")
        || !md.contains("- target: qemu, aarch64, tcg")
    {
        return Err("no emulation warning in report.md".into());
    }
    let b = Bundle::load(&dir)?;
    let p = &b.phases[1];
    let v = eval_name(
        "capture.emulated",
        p,
        &Ctx {
            emulated: b.emulated,
        },
    )
    .map_err(|e| e.to_string())?;
    close("capture.emulated", v, 1.0)
}

fn write_hdr(path: &Path, values_us: &[u64]) -> Result<(), Failed> {
    let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
    for v in values_us {
        h.record(*v)?;
    }
    let mut out = Vec::new();
    use hdrhistogram::serialization::Serializer;
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&h, &mut out)
        .map_err(|e| format!("{e:?}"))?;
    std::fs::write(path, out)?;
    Ok(())
}

/// Percentiles come from `<workload>.hdr` when the summary lacks them, and merge over
/// phases for whole-run expectations; a malformed summary is skipped with a note.
fn hdr_and_malformed_inputs() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("b");
    copy_dir(&data().join("report/synced-on/bundle"), &dir)?;
    // stress: 100 requests at 1 ms, then 1 at 500 ms; warmup: 100 at 2 ms
    // loadgen's own summary with no latency measured (count 0): the percentiles
    // come from the histograms
    let summary = |sent: u64| {
        let w = loadgen::WorkloadSummary {
            sent,
            ..loadgen::WorkloadSummary::empty("rpc", loadgen::model::LoadModel::Open)
        };
        let s = loadgen::PhaseSummary::new("p", 7, loadgen::PhaseLoad::default(), vec![w]);
        serde_json::to_string(&s)
    };
    std::fs::write(dir.join("load/stress/summary.json"), summary(101)?)?;
    let mut v = vec![1000u64; 100];
    v.push(500_000);
    write_hdr(&dir.join("load/stress/rpc.hdr"), &v)?;
    std::fs::create_dir_all(dir.join("load/warmup"))?;
    std::fs::write(dir.join("load/warmup/summary.json"), summary(100)?)?;
    write_hdr(&dir.join("load/warmup/rpc.hdr"), &[2000u64; 100])?;
    let b = Bundle::load(&dir)?;
    let ctx = Ctx::default();
    let stress = &b.phases[1];
    let p99 = eval_name("load.rpc.p99_ms", stress, &ctx).map_err(|e| e.to_string())?;
    close("stress p99 from hdr", p99, 1.0)?;
    let max = eval_name("load.rpc.max_ms", stress, &ctx).map_err(|e| e.to_string())?;
    if !(499.0..=501.0).contains(&max) {
        return Err(format!("stress max {max}").into());
    }
    let whole = lab::report::evidence::merge_phases(&b.phases, &b.metrics_series);
    let p50 = eval_name("load.rpc.p50_ms", &whole, &ctx).map_err(|e| e.to_string())?;
    // 201 values: 100 at 1 ms, 100 at 2 ms, 1 at 500 ms: the 101st is 2 ms
    if !(1.99..=2.01).contains(&p50) {
        return Err(format!("whole-run p50 {p50}").into());
    }
    let wmax = eval_name("load.rpc.max_ms", &whole, &ctx).map_err(|e| e.to_string())?;
    if !(499.0..=501.0).contains(&wmax) {
        return Err(format!("whole-run max {wmax}").into());
    }
    let p99 = eval_name("load.rpc.p99_ms", &whole, &ctx).map_err(|e| e.to_string())?;
    if !(1.99..=2.01).contains(&p99) {
        return Err(format!("whole-run p99 {p99}").into());
    }
    // malformed: the report still renders, the load is missing with a reason
    std::fs::write(dir.join("load/warmup/summary.json"), "{not json")?;
    let b = Bundle::load(&dir)?;
    let w = &b.phases[0];
    if !w
        .missing
        .get("load")
        .is_some_and(|r| r.contains("absent or unreadable"))
        || !w.notes.iter().any(|n| n.contains("skipped: malformed"))
    {
        return Err(format!("missing: {:?}, notes: {:?}", w.missing, w.notes).into());
    }
    report::render_bundle(&dir, &report::RenderOptions::default())?;
    Ok(())
}

/// `validate` rejects an unknown figure name, at its line, with a did-you-mean.
fn validate_checks_figure_names() -> Result<(), Failed> {
    let with_never = std::fs::read_to_string(data().join("report/synced-on/bundle/scenario.toml"))?;
    // The fixture bundle keeps an expectation that can never be evaluated
    // (a tx figure in a phase without tx load) so that the report's
    // cannot-evaluate path has evidence; `validate` refuses it (issue 13).
    let never = "[[expect]]\nfigure = \"load.tx.p99_ms\"\nphase = \"stress\"\nop = \"<\"\nvalue = 500\nwhy = \"no tx load in this scenario: cannot be evaluated\"\n";
    if !with_never.contains(never) {
        return Err("the fixture no longer holds its never-evaluable expectation".into());
    }
    match lab::scenario::parse("never.toml", &with_never) {
        Ok(_) => return Err("an expectation that can never be evaluated was accepted".into()),
        Err(e)
            if e.to_string()
                .contains("can never be evaluated: phase \"stress\" runs no tx load") => {}
        Err(e) => return Err(format!("wrong refusal: {e}").into()),
    }
    let src = with_never.replace(never, "");
    if let Err(e) = lab::scenario::parse("ok.toml", &src) {
        return Err(format!("the fixture scenario must validate: {e}").into());
    }
    let bad = src.replace(
        "figure = \"fsync.per_block\"",
        "figure = \"fsync.per_blok\"",
    );
    match lab::scenario::parse("bad.toml", &bad) {
        Ok(_) => Err("an unknown figure name was accepted".into()),
        Err(e) => {
            let t = e.to_string();
            if t.contains("expect[0].figure") && t.contains("did you mean \"fsync.per_block\"") {
                Ok(())
            } else {
                Err(format!("error does not name the field and the fix: {t}").into())
            }
        }
    }
}

/// docs/FIGURES.md is what the figure registry generates (`cargo xtask
/// figures-doc` writes it; this test never does).
fn figures_documented() -> Result<(), Failed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FIGURES.md");
    let doc = std::fs::read_to_string(&path)?;
    let want = report::figures::markdown();
    if doc != want {
        let line = doc
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or(doc.lines().count().min(want.lines().count()) + 1);
        return Err(format!(
            "docs/FIGURES.md is not current with the registry (first difference at line {line}); run `cargo xtask figures-doc`"
        )
        .into());
    }
    let missing: Vec<&str> = report::figures::all()
        .map(|f| f.name)
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    if !missing.is_empty() {
        return Err(format!("docs/FIGURES.md lacks {missing:?}").into());
    }
    Ok(())
}

/// T1's fsync script (01), filtered to the child bpftrace starts.
const FSYNC_BT: &str = r#"
tracepoint:syscalls:sys_enter_fsync,tracepoint:syscalls:sys_enter_fdatasync /pid == cpid/ { @start[tid] = nsecs; @calls[comm] = count(); }
tracepoint:syscalls:sys_exit_fsync,tracepoint:syscalls:sys_exit_fdatasync /@start[tid]/ { $us = (nsecs - @start[tid]) / 1000; @fsync_latency_us = hist($us); @by_comm_us[comm] = hist($us); delete(@start[tid]); }
"#;

/// T1's off-CPU script (03): kernel stack -> microseconds off CPU, with its helper maps.
const OFFCPU_BT: &str = r#"
tracepoint:sched:sched_switch /args->prev_pid == cpid/ { @off[args->prev_pid] = nsecs; @ks[args->prev_pid] = kstack; }
tracepoint:sched:sched_switch /@off[args->next_pid]/ { @offcpu_us[@ks[args->next_pid]] = sum((nsecs - @off[args->next_pid]) / 1000); delete(@off[args->next_pid]); }
"#;

const CHILD_ENV: &str = "QFC_REPORT_FSYNC_CHILD";

/// The bpftrace command line: run `script` around `child` (pure, for the test below).
fn bpftrace_args(script: &str, child: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-e".into(),
        script.into(),
        "-c".into(),
        child.as_os_str().to_owned(),
    ]
}

/// Child mode of this test binary: N writes each followed by fsync (even) or fdatasync
/// (odd) on a disk-backed file; with N = 0 it only sleeps.
fn child(n: u32, file: &Path) {
    use std::io::Write;
    if n == 0 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        return;
    }
    let mut f = std::fs::File::create(file).expect("child: create the fsync file");
    for i in 0..n {
        f.write_all(&[b'x'; 65536]).expect("child: write");
        if i % 2 == 0 {
            f.sync_all().expect("child: fsync");
        } else {
            f.sync_data().expect("child: fdatasync");
        }
    }
}

fn run_bpftrace(script: &str, n: u32, dir: &Path) -> Result<String, Failed> {
    let me = std::env::current_exe()?;
    let mut cmd = std::process::Command::new("bpftrace");
    cmd.args(bpftrace_args(script, &me))
        .env(
            CHILD_ENV,
            format!("{n}:{}", dir.join("fsync.dat").display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut c = cmd.spawn()?;
    let start = std::time::Instant::now();
    loop {
        if c.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = c.kill();
            let _ = c.wait();
            return Err("bpftrace ran over 60 s; killed".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = c.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("bpftrace failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Known answer with real bpftrace output in T1's format: a child doing exactly 10
/// fsync/fdatasync calls is seen 10 times, and its off-CPU stacks hold a disk-write stall
/// path; a child that only sleeps shows neither.
fn bpftrace_known_answer() -> Result<(), Failed> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (n, stall) in [(10u32, true), (0, false)] {
        let tmp = tempfile::tempdir_in(base)?;
        let d = tmp.path();
        std::fs::write(
            d.join("01-fsync-latency.txt"),
            run_bpftrace(FSYNC_BT, n, d)?,
        )?;
        std::fs::write(
            d.join("03-offcpu-qfcnode.txt"),
            run_bpftrace(OFFCPU_BT, n, d)?,
        )?;
        let p = t1::import(d)?;
        close("fsync.count", fig(&p, "fsync.count")?, n as f64)?;
        let hist_total = p
            .fsync
            .as_ref()
            .and_then(|f| f.latency_us.as_ref())
            .map(|h| h.total())
            .unwrap_or(0);
        close("fsync latency samples", hist_total as f64, n as f64)?;
        let s = fig(&p, "offcpu.disk_write_stall")?;
        if stall != (s > 0.0) {
            return Err(format!(
                "{n} fsyncs: disk-write stall share {s}%, want {}",
                if stall { "> 0" } else { "0" }
            )
            .into());
        }
        if !p
            .notes
            .iter()
            .any(|x| x.contains("helper maps ignored: @ks"))
        {
            return Err(format!("helper maps not reported: {:?}", p.notes).into());
        }
    }
    Ok(())
}

fn qfc_lab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qfc-lab"))
}

/// What the end-to-end trial lacks (reference node, probe binary, BPF), if anything.
fn e2e_missing() -> Option<String> {
    let dir = qfc_lab().parent()?.to_path_buf();
    for b in ["qfc-refnode", "qfc-probe"] {
        if !dir.join(b).is_file() {
            return Some(format!(
                "{b} is not built next to qfc-lab (cargo build -p refnode -p probes)"
            ));
        }
    }
    bpf_missing()
}

/// Runs qfc-lab with a deadline: a hang is a failure, not a stuck suite.
fn run_lab_within(args: &[&str], limit: std::time::Duration) -> Result<(i32, String), Failed> {
    let mut c = std::process::Command::new(qfc_lab())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let t0 = std::time::Instant::now();
    while c.try_wait()?.is_none() {
        if t0.elapsed() > limit {
            let _ = c.kill();
            return Err(format!("qfc-lab {args:?} still running after {limit:?}: a hang").into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = c.wait_with_output()?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    ))
}

/// Issue 13, part 3: `report`, `diff` and `verify` on a hostile bundle: a
/// symlink to /etc/passwd in place of a folded stack, a FIFO in place of the
/// metrics series (opening it would block), a phase named `../../x` in
/// timeline.json, manifest keys that leave the bundle, and a huge JSON file.
/// Each command ends in time with an exit code (no panic, no hang), nothing
/// outside the bundle is read, and verify names every problem.
fn hostile_bundles_give_clear_errors_without_hang_or_panic() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let b = tmp.path().join("b");
    copy_dir(&data().join("report/synced-on/bundle"), &b)?;
    let folded = std::fs::read_dir(b.join("probes"))?
        .flatten()
        .map(|e| e.path().join("oncpu.folded"))
        .find(|p| p.is_file())
        .ok_or("the fixture has no oncpu.folded")?;
    std::fs::remove_file(&folded)?;
    std::os::unix::fs::symlink("/etc/passwd", &folded)?;
    let mut tl: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("timeline.json"))?)?;
    tl["phases"][0]["name"] = "../../x".into();
    std::fs::write(b.join("timeline.json"), serde_json::to_vec(&tl)?)?;
    let limit = std::time::Duration::from_secs(60);
    let bs = b.to_str().unwrap();
    let ok_exit = |args: &[&str], code: i32, text: &str| -> Result<(), Failed> {
        if !(0..=3).contains(&code) || text.contains("panicked") {
            return Err(format!("qfc-lab {args:?}: exit {code}\n{text}").into());
        }
        if text.contains("root:x:0:0") {
            return Err(
                format!("qfc-lab {args:?} read /etc/passwd through the bundle:\n{text}").into(),
            );
        }
        Ok(())
    };
    // The link is not followed and the phase name is dropped, with a note.
    let (code, text) = run_lab_within(&["report", bs], limit)?;
    ok_exit(&["report"], code, &text)?;
    let report = std::fs::read_to_string(b.join("report.md"))?;
    if !report.contains("phase \"../../x\" refused") || report.contains("root:x:0:0") {
        return Err(format!("the report does not name the refused phase name:\n{report}").into());
    }
    // A FIFO where a file should be: a clear error naming it, not a hang.
    let series = b.join("metrics/series.jsonl");
    std::fs::remove_file(&series)?;
    nix::unistd::mkfifo(&series, nix::sys::stat::Mode::S_IRWXU)?;
    let manifest = serde_json::json!({
        "format": 1, "name": "h", "seed": 1, "status": "complete", "error": null,
        "plugin_failures": [], "scenario_file": "h.toml", "scenario_as_written": "",
        "overrides": [], "scenario_resolved": null, "qfc_lab_version": "0",
        "qfc_lab_git_commit": "x", "node_binary": null, "node_binary_blake3": null,
        "started_utc": "", "ended_utc": "", "expectations": "none",
        "files": {"../../../etc/passwd": "00", "/etc/shadow": "00", "timeline.json": "00"}
    });
    std::fs::write(b.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    for args in [vec!["report", bs], vec!["diff", bs, bs], vec!["verify", bs]] {
        let (code, text) = run_lab_within(&args, limit)?;
        ok_exit(&args, code, &text)?;
        let wants: &[&str] = match args[0] {
            "verify" => &[
                "refused manifest key \"../../../etc/passwd\"",
                "refused manifest key \"/etc/shadow\"",
                "is a symbolic link",
                "is a FIFO",
            ],
            _ => &["series.jsonl is a FIFO"],
        };
        for want in wants {
            if !text.contains(want) || code == 0 {
                return Err(
                    format!("{args:?} (exit {code}) does not say {want:?}:\n{text}").into(),
                );
            }
        }
    }
    // A huge timeline.json is refused before it is read.
    std::fs::remove_file(&series)?;
    std::fs::write(&series, "")?;
    let f = std::fs::File::create(b.join("timeline.json"))?;
    f.set_len(lab::bundle::MAX_JSON_BYTES + 1)?;
    let (code, text) = run_lab_within(&["report", bs], limit)?;
    ok_exit(&["report"], code, &text)?;
    let report = std::fs::read_to_string(b.join("report.md")).unwrap_or_default();
    if !(report.contains("more than") || text.contains("more than")) {
        return Err(format!("the huge timeline.json is not named (exit {code}):\n{text}").into());
    }
    Ok(())
}

fn run_lab(args: &[&str]) -> Result<(i32, String), Failed> {
    let o = std::process::Command::new(qfc_lab())
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    ))
}

/// The issue's known answer, end to end with the reference node and real probes:
/// `scenarios/fsync-policy.toml` with synced commit off exits 1 (fsync.per_block = 0
/// fails), with it on exits 0, and the diff says fsyncs per block went from 0 to >= 1 and
/// that a disk-write stall appeared in off-CPU only in the second.
fn fsync_policy_end_to_end() -> Result<(), Failed> {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let off = tmp.path().join("off");
    let on = tmp.path().join("on");
    let short = [
        "--set",
        "phase.0.duration_s=3",
        "--set",
        "phase.1.duration_s=12",
        "--json",
    ];
    let mut a = vec![
        "run",
        "scenarios/fsync-policy.toml",
        "--out",
        off.to_str().unwrap(),
    ];
    a.extend(short);
    let (code, text) = run_lab(&a)?;
    if code != 1 {
        return Err(format!("synced commit off: exit {code}, want 1\n{text}").into());
    }
    let mut a = vec![
        "run",
        "scenarios/fsync-policy.toml",
        "--set",
        "node.refnode.synced_commit=true",
        "--out",
        on.to_str().unwrap(),
    ];
    a.extend(short);
    let (code, text) = run_lab(&a)?;
    if code != 0 {
        return Err(format!("synced commit on: exit {code}, want 0\n{text}").into());
    }
    let v_off: lab::report::Verdicts =
        serde_json::from_slice(&std::fs::read(off.join("verdicts.json"))?)?;
    let v_on: lab::report::Verdicts =
        serde_json::from_slice(&std::fs::read(on.join("verdicts.json"))?)?;
    if v_off.verdicts[0].value != Some(0.0) || v_on.fail != 0 || v_on.pass != v_on.verdicts.len() {
        return Err(format!("verdicts off {v_off:?}\non {v_on:?}").into());
    }
    let per_block = v_on.verdicts[0].value.unwrap_or(0.0);
    if per_block < 1.0 {
        return Err(format!("fsyncs per block with synced commit on: {per_block}").into());
    }
    let d = lab::report::diff_bundles(&off, &on, None)?;
    let load: Vec<&String> = d
        .sentences
        .iter()
        .filter(|s| s.starts_with("load: "))
        .collect();
    if !load
        .iter()
        .any(|s| s.starts_with("load: fsyncs per block 0 -> "))
        || !load
            .iter()
            .any(|s| s.starts_with("load: a disk-write stall appeared in off-CPU"))
    {
        return Err(format!("diff sentences: {:?}", d.sentences).into());
    }
    for b in [&off, &on] {
        let (code, text) = run_lab(&["verify", b.to_str().unwrap()])?;
        if code != 0 {
            return Err(format!("verify {}: {text}", b.display()).into());
        }
    }
    Ok(())
}

/// Issue 17, known answer: a real probe session (the fsync probe, on this test process
/// and the child it forks) around a child doing exactly 500 fsync/fdatasync calls
/// records the probes' cost; `[[expect]]` bounds on the `probes.*` figures pass when
/// true, and a bound that is too tight fails.
fn probe_cost_expectations() -> Result<(), Failed> {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let bundle = tmp.path().join("bundle");
    let mut o = probes::SessionOptions::new(
        probes::Scope::Pid(std::process::id()),
        bundle.join("probes"),
    );
    o.probes = vec![probes::ProbeKind::Fsync];
    let mut s = probes::Session::start(o)?;
    s.phase("t")?;
    let st = std::process::Command::new(std::env::current_exe()?)
        .env(
            CHILD_ENV,
            format!("500:{}", tmp.path().join("fsync.dat").display()),
        )
        .status()?;
    s.stop()?;
    if !st.success() {
        return Err(format!("the fsync child failed: {st}").into());
    }
    std::fs::write(
        bundle.join("scenario.toml"),
        r#"name = "probe-cost"
seed = 1
[[phase]]
name = "t"
[[expect]]
figure = "probes.runs{program=fsync_exit}"
phase = "t"
op = ">="
value = 500
[[expect]]
figure = "probes.cost_ns_per_event{probe=fsync}"
phase = "t"
op = ">="
value = 5
[[expect]]
figure = "probes.cost_ns_per_event{probe=fsync}"
phase = "t"
op = "<="
value = 100000
[[expect]]
figure = "probes.overhead_share"
phase = "t"
op = ">"
value = 0
[[expect]]
figure = "probes.cost_ns_per_event{probe=fsync}"
phase = "t"
op = "<="
value = 0.001
"#,
    )?;
    let b = Bundle::load(&bundle)?;
    let v = evaluate_all(&b, &b.scenario.expect);
    let got: Vec<Status> = v.verdicts.iter().map(|x| x.status).collect();
    let want = [
        Status::Pass,
        Status::Pass,
        Status::Pass,
        Status::Pass,
        Status::Fail,
    ];
    if got != want {
        return Err(format!("verdicts {got:?}, want {want:?}: {v:?}").into());
    }
    Ok(())
}

fn bpf_missing() -> Option<String> {
    if !nix_is_root() {
        return Some("needs root for BPF".into());
    }
    if !Path::new("/sys/kernel/tracing/events/syscalls").is_dir() {
        return Some(
            "tracefs is not mounted at /sys/kernel/tracing (run scripts/services.sh)".into(),
        );
    }
    let ok = std::process::Command::new("bpftrace")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return Some("bpftrace is not installed (scripts/setup.sh installs it)".into());
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (n, file) = spec.split_once(':').expect("N:FILE");
        child(n.parse().expect("N"), Path::new(file));
        return;
    }
    let args = Arguments::from_args();
    let bpf = bpf_missing();
    if let Some(why) = &bpf {
        eprintln!("bpftrace_known_answer skipped: {why}");
    }
    let e2e = e2e_missing();
    if let Some(why) = &e2e {
        eprintln!("fsync_policy_end_to_end skipped: {why}");
    }
    let t1_present = t1_dir().join("05-oncpu.folded").is_file();
    let trials = vec![
        Trial::test("t1_fixture_headlines", t1_fixture_headlines),
        Trial::test("t1_real_capture", t1_real_capture).with_ignored_flag(!t1_present),
        Trial::test("golden_synced_off", golden_synced_off),
        Trial::test("golden_synced_on", golden_synced_on),
        Trial::test("diff_off_on", diff_off_on),
        Trial::test("diff_warns_on_seed", diff_warns_on_seed),
        Trial::test(
            "missing_evidence_cannot_evaluate",
            missing_evidence_cannot_evaluate,
        ),
        Trial::test("baseline_t1", baseline_t1),
        Trial::test("figures_documented", figures_documented),
        Trial::test("validate_checks_figure_names", validate_checks_figure_names),
        Trial::test("emulated_warning", emulated_warning),
        Trial::test("hdr_and_malformed_inputs", hdr_and_malformed_inputs),
        Trial::test(
            "hostile_bundles_give_clear_errors_without_hang_or_panic",
            hostile_bundles_give_clear_errors_without_hang_or_panic,
        ),
        Trial::test("bpftrace_command_line", bpftrace_command_line),
        Trial::test("probe_cost_expectations_issue_17", probe_cost_expectations)
            .with_ignored_flag(bpf.is_some()),
        Trial::test("bpftrace_known_answer", bpftrace_known_answer)
            .with_ignored_flag(bpf.is_some()),
        Trial::test("fsync_policy_end_to_end", fsync_policy_end_to_end)
            .with_ignored_flag(e2e.is_some()),
    ];
    if !t1_present {
        eprintln!(
            "t1_real_capture skipped: {} has no 05-oncpu.folded (set QFC_T1_DIR to T1's files)",
            t1_dir().display()
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

fn bpftrace_command_line() -> Result<(), Failed> {
    let a = bpftrace_args("BEGIN {}", Path::new("/bin/true"));
    if a != ["-e", "BEGIN {}", "-c", "/bin/true"].map(std::ffi::OsString::from) {
        return Err(format!("{a:?}").into());
    }
    Ok(())
}
