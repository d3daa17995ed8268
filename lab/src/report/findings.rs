//! Findings in T1's terms, derived from the evidence of each phase: on-CPU by area and
//! thread, write path per thread and fsyncs per block, fsync and block-IO percentiles,
//! off-CPU by wait reason and the disk-write stall path, RocksDB metrics cross-checked with
//! the probes, load next to probe figures, capture quality. Also the T1 baseline table.
//!
//! It decides what the report says and in which order (verdicts first, then each phase's
//! findings), which figures appear in the headline and baseline tables, and which
//! warnings are printed (emulated target, lost events, cut stacks, a load p99 close to
//! the instrument floor); every number comes from the figure registry.

use std::collections::BTreeMap;
use std::path::Path;

use super::charts::flame_svg;
use super::evidence::{Bundle, PhaseEvidence, WorkloadData};
use super::expect::{Status, Verdicts};
use super::figures::{eval_name, Ctx};
use super::folded::{
    classify_offcpu, classify_oncpu, inclusive_areas, is_disk_write_stall, thread_role, Area,
    Reason,
};
use super::render::{cell, num, Block, Doc};

fn top_n(m: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn share(n: u64, total: u64) -> String {
    if total == 0 {
        "n/a".into()
    } else {
        format!("{}%", num(100.0 * n as f64 / total as f64))
    }
}

/// Leaf-most frame that is not `[unknown]`.
fn leaf(frames: &[String]) -> String {
    frames
        .iter()
        .rev()
        .find(|f| f.as_str() != "[unknown]")
        .cloned()
        .unwrap_or_else(|| "[unknown]".into())
}

/// Samples, samples per leaf frame, samples per thread.
type AreaTally = (u64, BTreeMap<String, u64>, BTreeMap<String, u64>);

fn oncpu_section(doc: &mut Doc, p: &PhaseEvidence) {
    doc.h(2, "On-CPU");
    let Some(s) = &p.oncpu else {
        doc.p(format!(
            "No on-CPU evidence: {}.",
            p.missing
                .get("oncpu")
                .map(String::as_str)
                .unwrap_or("absent")
        ));
        return;
    };
    let total = s.folded.total();
    doc.p(format!(
        "{total} samples{}.",
        s.window_s
            .map(|w| format!(" over {} s", num(w)))
            .unwrap_or_default()
    ));
    if total == 0 {
        return;
    }
    let mut by_area: BTreeMap<Area, AreaTally> = BTreeMap::new();
    let mut incl: BTreeMap<Area, u64> = BTreeMap::new();
    for st in &s.folded.stacks {
        let a = classify_oncpu(&st.frames);
        for i in inclusive_areas(&st.frames) {
            *incl.entry(i).or_default() += st.count;
        }
        let e = by_area.entry(a).or_default();
        e.0 += st.count;
        *e.1.entry(leaf(&st.frames)).or_default() += st.count;
        let thread = match (&st.thread, s.has_threads) {
            (Some(t), true) => format!("{t} ({})", thread_role(&st.frames)),
            _ => thread_role(&st.frames).to_string(),
        };
        *e.2.entry(thread).or_default() += st.count;
    }
    let mut rows = Vec::new();
    for a in Area::ALL {
        let inc = incl.get(&a).copied().unwrap_or(0);
        let Some((n, leaves, threads)) = by_area.remove(&a) else {
            if inc > 0 {
                rows.push(vec![
                    a.label().to_string(),
                    "0".into(),
                    "0%".into(),
                    share(inc, total),
                    String::new(),
                    String::new(),
                ]);
            }
            continue;
        };
        rows.push(vec![
            a.label().to_string(),
            n.to_string(),
            share(n, total),
            share(inc, total),
            top_n(leaves, 3)
                .into_iter()
                .map(|(f, c)| format!("`{f}` {c}"))
                .collect::<Vec<_>>()
                .join("; "),
            top_n(threads, 3)
                .into_iter()
                .map(|(t, c)| format!("{t} {}", share(c, n)))
                .collect::<Vec<_>>()
                .join("; "),
        ]);
    }
    doc.table(
        &[
            "area",
            "samples (self)",
            "self share",
            "inclusive share",
            "top leaf frames",
            "threads",
        ],
        rows,
    );
    doc.p("Self: the area of a sample's leaf-most recognised frame (areas sum to 100%). Inclusive: any frame in the area (a sample counts in every area it touches). Figures `oncpu.self_share{area=..}` and `oncpu.inclusive_share{area=..}`.");
    if !s.has_threads {
        doc.p("These stacks carry no thread names; the thread column is judged from the frames (tokio worker: tokio scheduler frames; plain std::thread: thread_start without tokio frames, as the PoW miner threads run).");
    }
}

fn writepath_section(doc: &mut Doc, p: &PhaseEvidence, ctx: &Ctx) {
    doc.h(2, "Write path");
    let blocks = eval_name("node.blocks", p, ctx);
    let per_block = eval_name("fsync.per_block", p, ctx);
    doc.list(vec![
        format!("blocks produced: {}", cell(&blocks, "")),
        format!("fsyncs per block: {}", cell(&per_block, "")),
        format!(
            "fsync + fdatasync calls (fsync probe): {}",
            cell(&eval_name("fsync.count", p, ctx), "")
        ),
    ]);
    let Some(w) = &p.writepath else {
        doc.p(format!(
            "No write-path evidence: {}.",
            p.missing
                .get("writepath")
                .map(String::as_str)
                .unwrap_or("absent")
        ));
        return;
    };
    let win = w.window_s;
    let mut per_comm: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for ((comm, sc), n) in &w.ops {
        let e = per_comm.entry(comm.clone()).or_default();
        match sc.as_str() {
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => e.0 += n,
            "fsync" | "fdatasync" | "sync_file_range" => e.1 += n,
            _ => e.2 += n,
        }
    }
    let total: u64 = w.ops.values().sum();
    doc.p(format!(
        "{total} write-path syscalls{}; writes per second: {}.",
        win.map(|x| format!(" in {} s", num(x))).unwrap_or_default(),
        cell(&eval_name("writepath.writes_per_s", p, ctx), "")
    ));
    if let Some(line) = runtime_mirroring(&per_comm) {
        doc.p(line);
    }
    let mut v: Vec<_> = per_comm.into_iter().collect();
    v.sort_by(|a, b| {
        (b.1 .0 + b.1 .1)
            .cmp(&(a.1 .0 + a.1 .1))
            .then(a.0.cmp(&b.0))
    });
    let rate = |n: u64| {
        win.filter(|w| *w > 0.0)
            .map(|w| num(n as f64 / w))
            .unwrap_or_else(|| "n/a".into())
    };
    let rows = v
        .into_iter()
        .take(12)
        .map(|(c, (wr, fs, other))| {
            vec![
                c,
                wr.to_string(),
                rate(wr),
                fs.to_string(),
                rate(fs),
                other.to_string(),
            ]
        })
        .collect();
    doc.table(
        &[
            "thread (comm)",
            "writes",
            "writes/s",
            "fsync-family",
            "fsyncs/s",
            "other",
        ],
        rows,
    );
}

/// True for the threads of a container runtime that copy a container's
/// stdout into its log (T1's finding 2): `containerd-shim*` and `dockerd`.
/// Threads of the container runtime (containerd, its shims, dockerd), by comm:
/// their writes are the node's log lines copied, not the node's own I/O.
fn is_container_runtime(comm: &str) -> bool {
    comm.starts_with("containerd-shim") || comm == "dockerd" || comm.starts_with("containerd")
}

/// With system-wide write-path evidence of a containerised node: how many
/// writes the container runtime made next to the node's own (T1's finding
/// 2: every log line the node writes is written again by containerd-shim
/// and by dockerd's json-file driver). `None` when no runtime thread wrote.
fn runtime_mirroring(per_comm: &BTreeMap<String, (u64, u64, u64)>) -> Option<String> {
    let runtime: Vec<(&String, u64)> = per_comm
        .iter()
        .filter(|(c, _)| is_container_runtime(c))
        .map(|(c, v)| (c, v.0))
        .filter(|(_, n)| *n > 0)
        .collect();
    if runtime.is_empty() {
        return None;
    }
    let runtime_total: u64 = runtime.iter().map(|(_, n)| n).sum();
    let others: u64 = per_comm
        .iter()
        .filter(|(c, _)| !is_container_runtime(c))
        .map(|(_, v)| v.0)
        .sum();
    let parts: Vec<String> = runtime.iter().map(|(c, n)| format!("{c} {n}")).collect();
    Some(format!(
        "Container runtime writes (T1 finding 2: the node's stdout copied by containerd-shim and written again by dockerd's json-file driver): {runtime_total} ({}), next to {others} writes by every other thread in scope (the node's among them).",
        parts.join(", "),
    ))
}

fn latency_section(doc: &mut Doc, p: &PhaseEvidence) {
    doc.h(2, "fsync and block-IO latency");
    doc.p("Percentiles are upper edges of power-of-two buckets (exact to a factor of two), in microseconds.");
    match &p.fsync {
        Some(f) => {
            let mut rows = Vec::new();
            for (comm, n) in &f.calls_by_comm {
                let h = f.by_comm_us.get(comm);
                let q = |x: f64| {
                    h.and_then(|h| h.quantile(x))
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "n/a".into())
                };
                rows.push(vec![comm.clone(), n.to_string(), q(0.5), q(0.99), q(1.0)]);
            }
            if rows.is_empty() {
                doc.p("No fsync or fdatasync call in this window.");
            } else {
                doc.table(&["comm", "fsync calls", "p50 us", "p99 us", "max us"], rows);
            }
        }
        None => doc.p(format!(
            "No fsync evidence: {}.",
            p.missing
                .get("fsync")
                .map(String::as_str)
                .unwrap_or("absent")
        )),
    }
    match &p.bio {
        Some(b) => {
            let mut rows = Vec::new();
            let mut keys: Vec<&String> =
                b.by_rwbs_us.keys().chain(b.bytes_by_rwbs.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let h = b.by_rwbs_us.get(k);
                let q = |x: f64| {
                    h.and_then(|h| h.quantile(x))
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "n/a".into())
                };
                rows.push(vec![
                    k.clone(),
                    h.map(|h| h.total()).unwrap_or(0).to_string(),
                    q(0.5),
                    q(0.99),
                    q(1.0),
                    b.bytes_by_rwbs
                        .get(k)
                        .map(|x| num(*x as f64 / 1048576.0))
                        .unwrap_or_else(|| "n/a".into()),
                ]);
            }
            if rows.is_empty() {
                doc.p("No block-IO request in this window.");
            } else {
                doc.table(
                    &["RWBS", "requests", "p50 us", "p99 us", "max us", "MiB"],
                    rows,
                );
            }
        }
        None => doc.p(format!(
            "No block-IO evidence: {}.",
            p.missing.get("bio").map(String::as_str).unwrap_or("absent")
        )),
    }
}

fn offcpu_section(doc: &mut Doc, p: &PhaseEvidence) {
    doc.h(2, "Off-CPU");
    let Some(s) = &p.offcpu else {
        doc.p(format!(
            "No off-CPU evidence: {}.",
            p.missing
                .get("offcpu")
                .map(String::as_str)
                .unwrap_or("absent")
        ));
        return;
    };
    let total = s.folded.total();
    doc.p(format!(
        "{} s off CPU in total (summed over threads).",
        num(total as f64 / 1e6)
    ));
    if total == 0 {
        return;
    }
    let mut by_reason: BTreeMap<Reason, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut stall = 0u64;
    let mut stall_paths: BTreeMap<String, u64> = BTreeMap::new();
    for st in &s.folded.stacks {
        let r = classify_offcpu(&st.frames);
        let e = by_reason.entry(r).or_default();
        e.0 += st.count;
        if let Some(t) = &st.thread {
            *e.1.entry(t.clone()).or_default() += st.count;
        }
        if is_disk_write_stall(&st.frames) {
            stall += st.count;
            let path: Vec<&str> = st
                .frames
                .iter()
                .filter(|f| is_disk_write_stall(std::slice::from_ref(f)))
                .map(|f| f.trim_end_matches("_[k]"))
                .collect();
            let who = st.thread.clone().unwrap_or_else(|| "?".into());
            *stall_paths
                .entry(format!("{who}: {}", path.join(" -> ")))
                .or_default() += st.count;
        }
    }
    let rows = Reason::ALL
        .iter()
        .filter_map(|r| by_reason.get(r).map(|e| (r, e)))
        .map(|(r, (n, threads))| {
            vec![
                r.name().to_string(),
                num(*n as f64 / 1e6),
                share(*n, total),
                top_n(threads.clone(), 3)
                    .into_iter()
                    .map(|(t, c)| format!("{t} {}", num(c as f64 / 1e6)))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    doc.table(&["wait reason", "seconds", "share", "threads (s)"], rows);
    if stall > 0 {
        doc.p(format!(
            "**A disk-write stall path is present**: {} of off-CPU time ({} s).",
            share(stall, total),
            num(stall as f64 / 1e6)
        ));
        doc.list(
            top_n(stall_paths, 3)
                .into_iter()
                .map(|(p, c)| format!("`{p}` {} s", num(c as f64 / 1e6)))
                .collect(),
        );
    } else {
        doc.p("No disk-write stall path in off-CPU (no fsync/fdatasync, writeback, journal or dirty-throttling wait).");
    }
}

fn rocksdb_section(doc: &mut Doc, p: &PhaseEvidence, ctx: &Ctx) {
    doc.h(2, "RocksDB");
    let figs = [
        (
            "L0 files (max, largest column family)",
            "rocksdb.l0_files.max",
            "",
        ),
        (
            "pending compaction bytes (max)",
            "rocksdb.pending_compaction_bytes.max",
            "",
        ),
        ("memtable bytes (max)", "rocksdb.memtable_bytes.max", ""),
        (
            "write stopped (any sample)",
            "rocksdb.write_stopped.max",
            "",
        ),
        ("stall time", "rocksdb.stall_us", "us"),
        ("WAL syncs", "rocksdb.wal_syncs", ""),
    ];
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|(l, f, u)| {
            vec![
                l.to_string(),
                format!("`{f}`"),
                cell(&eval_name(f, p, ctx), u),
            ]
        })
        .collect();
    doc.table(&["metric", "figure", "value"], rows);
    let wal = eval_name("rocksdb.wal_syncs", p, ctx);
    let fs = eval_name("fsync.count", p, ctx);
    match (&wal, &fs) {
        (Ok(w), Ok(f)) => {
            let verdict = if (*f - *w).abs() < 0.5 {
                "they agree"
            } else if f > w {
                "the probes saw more syncs than RocksDB's WAL (other files, or other threads, also sync)"
            } else {
                "the probes saw fewer syncs than RocksDB counted: some syncs were missed (lost events, or a sync path the probe does not trace)"
            };
            doc.p(format!(
                "Cross-check: RocksDB counted {} WAL syncs; the fsync probe saw {} fsync/fdatasync calls: {verdict}.",
                num(*w),
                num(*f)
            ));
        }
        _ => doc.p(format!(
            "Cross-check with the probes not possible: {}.",
            [wal.err(), fs.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

fn load_section(doc: &mut Doc, p: &PhaseEvidence) {
    doc.h(2, "Load");
    let Some(l) = &p.load else {
        doc.p(format!(
            "No load results: {}.",
            p.missing
                .get("load")
                .map(String::as_str)
                .unwrap_or("absent")
        ));
        return;
    };
    let o = |v: Option<f64>| v.map(num).unwrap_or_else(|| "n/a".into());
    let u = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "n/a".into());
    let rows = l
        .iter()
        .map(|(w, d)| {
            vec![
                w.clone(),
                u(d.requests),
                u(d.ok),
                u(d.errors),
                u(d.dropped),
                o(d.throughput_per_s),
                o(d.p50_ms),
                o(d.p90_ms),
                o(d.p99_ms),
                o(d.max_ms),
            ]
        })
        .collect();
    doc.table(
        &[
            "workload", "requests", "ok", "errors", "dropped", "ok/s", "p50 ms", "p90 ms",
            "p99 ms", "max ms",
        ],
        rows,
    );
    doc.list(instrument_lines(p, l));
}

/// Issue 18: each workload's p99 next to the load generator's own floor ("p99 4.1 ms
/// (instrument floor 0.2 ms)"), flagged when within 2x of it, and any target rate the
/// generator did not sustain.
/// Each workload's p99 next to the instrument floor (issue 18): a p99 under twice
/// the generator's own p99 against a server that answers at once says more about
/// the generator than about the node, so it is flagged, not hidden.
fn instrument_lines(p: &PhaseEvidence, l: &BTreeMap<String, WorkloadData>) -> Vec<String> {
    let mut out = Vec::new();
    match &p.load_floor {
        Some(f) => {
            let floor_ms = f.p99_us / 1000.0;
            for (w, d) in l {
                let Some(p99) = d.p99_ms else { continue };
                let mut line = format!(
                    "{w}: p99 {} ms (instrument floor {} ms)",
                    num(p99),
                    num(floor_ms)
                );
                if p99 < 2.0 * floor_ms {
                    line.push_str(
                        ": **within 2x of the floor, this measures the load generator, not the node**",
                    );
                }
                out.push(line);
            }
        }
        None => out.push(format!(
            "instrument floor not measured: {}",
            p.missing
                .get("load_floor")
                .map(String::as_str)
                .unwrap_or("absent")
        )),
    }
    for (w, d) in l {
        if let Some(n) = &d.not_sustained {
            out.push(format!("{w}: **{n}**"));
        }
    }
    out
}

fn quality_section(doc: &mut Doc, p: &PhaseEvidence, ctx: &Ctx) {
    doc.h(2, "Capture quality");
    let mut items = vec![
        format!(
            "lost events: {}",
            cell(&eval_name("capture.lost_events", p, ctx), "")
        ),
        format!(
            "truncated stacks: {}",
            cell(&eval_name("capture.truncated_stack_pct", p, ctx), "%")
        ),
        format!(
            "on-CPU samples with an `[unknown]` root: {}",
            cell(&eval_name("oncpu.unknown_root_share", p, ctx), "%")
        ),
        probe_cost_line(p, ctx),
    ];
    // Issue 12: whole stacks, unwinding method, lost stacks, copies.
    if p.stack_quality.is_some() {
        for probe in ["oncpu", "offcpu"] {
            let f = |name: &str| eval_name(&format!("{name}{{probe={probe}}}"), p, ctx);
            items.push(format!(
                "{probe} stacks reaching a thread root: {}; unwound by DWARF: {}; lost stacks: {}; copies cut short by the copy size: {}; stack bytes copied: {}",
                cell(&f("capture.root_reached_pct"), "%"),
                cell(&f("capture.dwarf_unwound_pct"), "%"),
                cell(&f("capture.lost_stacks"), ""),
                cell(&f("capture.stack_copies_cut_short"), ""),
                cell(&f("capture.stack_bytes_per_s"), "bytes/s"),
            ));
        }
    }
    for (src, why) in &p.missing {
        items.push(format!("{src}: missing ({why})"));
    }
    for n in &p.notes {
        items.push(n.clone());
    }
    doc.list(items);
}

/// The probes' own cost in a phase: the overhead share (an upper bound), the CPU time
/// in the eBPF programs and in the probe process, and ns per run of each probe.
fn probe_cost_line(p: &PhaseEvidence, ctx: &Ctx) -> String {
    let share = eval_name("probes.overhead_share", p, ctx);
    let mut s = format!(
        "probe overhead (upper bound, of the target's CPU time): {}",
        cell(&share, "%")
    );
    if let Some(c) = &p.probe_cost {
        if share.is_ok() || c.bpf_cpu_s.is_some() {
            let per_probe: Vec<String> = c
                .probes
                .iter()
                .filter(|(_, r)| r.runs > 0)
                .map(|(k, r)| {
                    format!(
                        "{k} {} runs at {} ns",
                        r.runs,
                        num(r.run_time_ns as f64 / r.runs as f64)
                    )
                })
                .collect();
            s.push_str(&format!(
                "; eBPF programs {} s, probe process {} s, target {} s{}",
                cell(
                    &eval_name("probes.cpu_s", p, ctx).map(|x| x - c.probe_process_cpu_s),
                    ""
                ),
                cell(&eval_name("probes.process_cpu_s", p, ctx), ""),
                c.target_cpu_s.map(num).unwrap_or_else(|| "unknown".into()),
                if per_probe.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", per_probe.join(", "))
                }
            ));
        }
    }
    s
}

/// All findings of one phase.
pub fn phase_findings(doc: &mut Doc, p: &PhaseEvidence, ctx: &Ctx, bundle_dir: Option<&Path>) {
    load_section(doc, p);
    oncpu_section(doc, p);
    writepath_section(doc, p, ctx);
    latency_section(doc, p);
    offcpu_section(doc, p);
    rocksdb_section(doc, p, ctx);
    quality_section(doc, p, ctx);
    for (which, data, unit) in [("oncpu", &p.oncpu, "samples"), ("offcpu", &p.offcpu, "us")] {
        let Some(s) = data else { continue };
        let link = bundle_dir.and_then(|d| {
            let rel = format!("probes/{}/{which}.svg", p.name);
            d.join(&rel).is_file().then_some(rel)
        });
        let svg = flame_svg(
            &s.folded.to_text(),
            &format!("{which} {}", p.name),
            unit,
            which == "offcpu",
        );
        doc.blocks.push(Block::Svg {
            title: format!("{which} flame graph, phase {}", p.name),
            link,
            svg,
        });
    }
}

/// Figures compared with T1 (and shown by `import-t1`).
pub const BASELINE_FIGURES: &[&str] = &[
    "oncpu.samples",
    "oncpu.self_share{area=hashing}",
    "oncpu.inclusive_share{area=hashing}",
    "oncpu.cpu_s_per_s{area=hashing}",
    "oncpu.cpu_s_per_s{area=hashing,role=plain_thread}",
    "oncpu.cpu_s_per_s{area=hashing,role=tokio}",
    "oncpu.self_share{area=crypto}",
    "oncpu.self_share{area=log_formatting}",
    "oncpu.inclusive_share{area=log_formatting}",
    "oncpu.share{area=allocator}",
    "oncpu.share{area=rocksdb}",
    "oncpu.share{area=network}",
    "oncpu.share{area=kernel}",
    "oncpu.share{area=other}",
    "offcpu.total_s",
    "offcpu.share{reason=disk}",
    "offcpu.share{reason=futex}",
    "offcpu.share{reason=network}",
    "offcpu.disk_write_stall",
    "fsync.count",
    "fsync.per_s",
    "fsync.per_block",
    "fsync.p99_us",
    "writepath.writes_per_s",
    "writepath.fsyncs_per_s",
    "bio.p50_us{rwbs=W}",
    "bio.p99_us{rwbs=W}",
    "bio.write_mib_per_s",
];

/// A table: figure, one column per phase, T1.
pub fn baseline_table(doc: &mut Doc, phases: &[PhaseEvidence], t1: &PhaseEvidence, ctx: &Ctx) {
    let mut head: Vec<String> = vec!["figure".into()];
    head.extend(phases.iter().map(|p| p.name.clone()));
    head.push("T1 (production)".into());
    let t1ctx = Ctx {
        emulated: Some(false),
    };
    let rows = BASELINE_FIGURES
        .iter()
        .map(|f| {
            let unit = super::figures::parse_figure(f)
                .map(|x| x.unit)
                .unwrap_or("");
            let mut r = vec![format!("`{f}`")];
            for p in phases {
                r.push(short(&eval_name(f, p, ctx), unit));
            }
            r.push(short(&eval_name(f, t1, &t1ctx), unit));
            r
        })
        .collect();
    let head_ref: Vec<&str> = head.iter().map(String::as_str).collect();
    doc.table(&head_ref, rows);
    doc.p("\"—\" marks a figure that cannot be evaluated; the reasons are in each phase's findings. T1 ran its captures one after another over different windows (60, 60, 30, 25, 20 s), system-wide for fsync, bio and write path, by thread name for off-CPU; rates are per its own window.");
}

fn short(r: &Result<f64, String>, unit: &str) -> String {
    match r {
        Ok(_) => cell(r, if unit == "%" { "%" } else { "" }),
        Err(_) => "—".into(),
    }
}

/// The whole report of a bundle.
pub fn build_report(b: &Bundle, v: &Verdicts, baseline: Option<&PhaseEvidence>) -> Doc {
    let ctx = Ctx {
        emulated: b.emulated,
    };
    let mut doc = Doc {
        title: format!(
            "qfc-lab report: {}",
            if b.scenario.name.is_empty() {
                "(unnamed scenario)"
            } else {
                &b.scenario.name
            }
        ),
        blocks: Vec::new(),
    };
    doc.list(vec![
        format!(
            "seed: {}",
            b.scenario
                .seed
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into())
        ),
        format!(
            "target: {}",
            b.target_desc
                .clone()
                .unwrap_or_else(|| "not recorded".into())
        ),
        format!(
            "phases: {}",
            b.phases
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "capture: {} lost events over the run, {} truncated stacks, probe overhead {}",
            b.run_lost_events
                .map(|x| x.to_string())
                .unwrap_or_else(|| "unknown".into()),
            b.run_truncated_stack_share
                .map(|x| format!("{}%", num(100.0 * x)))
                .unwrap_or_else(|| "unknown share of".into()),
            b.overhead_pct
                .map(|x| format!("{}% of the target's CPU time (upper bound)", num(x)))
                .unwrap_or_else(|| match &b.overhead_why_not {
                    Some(why) => format!("not measured ({why})"),
                    None => "not measured".into(),
                })
        ),
    ]);
    match b.emulated {
        Some(true) => doc.warn("the target is emulated (QEMU TCG): latencies, rates and CPU shares are not comparable with hardware; compare only counts (fsyncs per block, which stack paths exist) with production"),
        Some(false) => {}
        None => doc.warn("the bundle does not say whether the target was emulated; treat timings with care"),
    }
    doc.h(1, "Expectations");
    if v.verdicts.is_empty() {
        doc.p("The scenario states no expectations.");
    } else {
        doc.p(format!(
            "{} pass, {} fail, {} cannot be evaluated.",
            v.pass, v.fail, v.cannot_evaluate
        ));
        let rows = v
            .verdicts
            .iter()
            .map(|x| {
                vec![
                    match x.status {
                        Status::Pass => "pass".into(),
                        Status::Fail => "**FAIL**".into(),
                        Status::CannotEvaluate => "cannot evaluate".into(),
                    },
                    format!("`{}`", x.figure),
                    x.phase.clone().unwrap_or_else(|| "(whole run)".into()),
                    match x.value {
                        Some(v) => cell(&Ok(v), &x.unit),
                        None => x.reason.clone().unwrap_or_default(),
                    },
                    format!("{} {}", x.op.symbol(), num(x.bound)),
                    x.why.clone().unwrap_or_default(),
                ]
            })
            .collect();
        doc.table(
            &["verdict", "figure", "phase", "value", "bound", "why"],
            rows,
        );
    }
    doc.h(1, "Timeline");
    let (svg, absent) = super::charts::timeline_svg(b);
    if svg.is_some() {
        doc.blocks.push(Block::Svg {
            title: "timeline".into(),
            link: Some("timeline.svg".into()),
            svg,
        });
    } else {
        doc.p("No time series to draw.");
    }
    if !absent.is_empty() {
        doc.p(format!(
            "Not in the timeline (absent from the bundle): {}.",
            absent.join("; ")
        ));
    }
    for p in &b.phases {
        doc.h(1, format!("Phase {}", p.name));
        if let Some(d) = p.duration_s {
            doc.p(format!("Window: {} s.", num(d)));
        }
        phase_findings(&mut doc, p, &ctx, Some(&b.dir));
    }
    if let Some(t1) = baseline {
        doc.h(1, "Compared with T1 (production)");
        if b.emulated == Some(true) {
            doc.warn(
                "this bundle comes from an emulated target: compare shares and counts, not times",
            );
        }
        baseline_table(&mut doc, &b.phases, t1, &ctx);
        let j = super::t1_findings::judge(std::slice::from_ref(b), Some(t1));
        super::t1_findings::section(&mut doc, &j, true);
    }
    if !b.notes.is_empty() {
        doc.h(1, "Notes");
        doc.list(b.notes.clone());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_p99_is_shown_next_to_the_instrument_floor_and_flagged_within_2x() {
        let mut p = PhaseEvidence::default();
        let l = BTreeMap::from([
            (
                "rpc".to_string(),
                WorkloadData {
                    p99_ms: Some(4.1),
                    ..Default::default()
                },
            ),
            (
                "tx".to_string(),
                WorkloadData {
                    p99_ms: Some(0.35),
                    not_sustained: Some("target 500.0/s NOT sustained".into()),
                    ..Default::default()
                },
            ),
        ]);
        p.load_floor = Some(super::super::evidence::LoadFloor {
            rate_per_s: Some(2000.0),
            p50_us: 90.0,
            p99_us: 200.0,
        });
        let lines = instrument_lines(&p, &l);
        assert_eq!(lines[0], "rpc: p99 4.1 ms (instrument floor 0.2 ms)");
        assert!(
            lines[1].starts_with("tx: p99 0.35 ms (instrument floor 0.2 ms): **within 2x"),
            "{lines:?}"
        );
        assert_eq!(lines[2], "tx: **target 500.0/s NOT sustained**");
        p.load_floor = None;
        p.missing
            .insert("load_floor", "calibration skipped (floor window 0)".into());
        assert_eq!(
            instrument_lines(&p, &l)[0],
            "instrument floor not measured: calibration skipped (floor window 0)"
        );
    }

    #[test]
    fn runtime_mirroring_names_shim_and_dockerd() {
        let mut m = BTreeMap::new();
        m.insert("tokio-rt-worker".to_string(), (100, 0, 0));
        m.insert("containerd-shim".to_string(), (100, 0, 0));
        m.insert("dockerd".to_string(), (50, 0, 0));
        let line = runtime_mirroring(&m).unwrap();
        assert!(
            line.contains(": 150 (containerd-shim 100, dockerd 50)"),
            "{line}"
        );
        assert!(
            line.contains("next to 100 writes by every other thread"),
            "{line}"
        );
        m.remove("containerd-shim");
        m.remove("dockerd");
        assert_eq!(runtime_mirroring(&m), None);
    }
}
