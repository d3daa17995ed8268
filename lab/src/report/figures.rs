//! The registry of named figures computed from a phase's evidence (`fsync.per_block`,
//! `oncpu.share{area=hashing}`, `load.rpc.p99_ms`, ...). Names, selectors and units are
//! documented in docs/FIGURES.md; a figure that cannot be computed says why.

use regex::Regex;
use std::collections::BTreeMap;

use super::evidence::{MetricsWindow, PhaseEvidence};
use super::folded::{
    classify_offcpu, classify_oncpu, inclusive_areas, is_disk_write_stall, stack_role, Area,
    Reason, Role,
};

/// A figure's value, or the reason it cannot be evaluated.
pub type Fig = Result<f64, String>;

/// Context shared by all phases of a bundle.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub emulated: Option<bool>,
}

pub struct FigureDef {
    pub name: &'static str,
    pub selectors: &'static [&'static str],
    pub unit: &'static str,
    pub doc: &'static str,
}

macro_rules! defs {
    ($( $name:literal [$($sel:literal),*] $unit:literal $doc:literal ;)*) => {
        pub const FIGURES: &[FigureDef] = &[ $( FigureDef { name: $name, selectors: &[$($sel),*], unit: $unit, doc: $doc }, )* ];
    };
}

defs! {
    "oncpu.samples" ["thread"] "samples" "on-CPU samples in the phase";
    "oncpu.share" ["area", "thread"] "%" "share of on-CPU samples in an area by self attribution (the same as oncpu.self_share) or on a thread";
    "oncpu.self_share" ["area"] "%" "share of on-CPU samples whose leaf-most recognised frame is in the area (hashing, crypto, log_formatting, rocksdb, allocator, network, kernel, other); the areas sum to 100";
    "oncpu.inclusive_share" ["area"] "%" "share of on-CPU samples with any frame in the area; a sample counts in every area it touches";
    "oncpu.cpu_s_per_s" ["area", "role", "thread"] "CPU-s/s" "CPU-seconds per second of samples in an area (inclusive) on a stack role (tokio, rocksdb_bg, plain_thread, kernel_or_unknown, other) or thread: samples / sampling rate / window";
    "oncpu.share_matching:<regex>" [] "%" "share of on-CPU samples with any frame matching the regex";
    "oncpu.unknown_root_share" [] "%" "share of on-CPU samples whose root frame is [unknown] (broken unwind)";
    "offcpu.total_s" ["thread"] "s" "off-CPU time summed over threads";
    "offcpu.share" ["reason", "thread"] "%" "share of off-CPU time by wait reason (disk, futex, network, poll, sleep, other) or thread";
    "offcpu.share_matching:<regex>" [] "%" "share of off-CPU time in stacks with a frame matching the regex";
    "offcpu.disk_write_stall" [] "%" "share of off-CPU time on a disk-write stall path (fsync/fdatasync, writeback wait, journal commit, dirty throttling); 0 means no such path";
    "fsync.count" ["comm"] "calls" "fsync + fdatasync calls seen by the fsync probe";
    "fsync.per_s" ["comm"] "calls/s" "fsync.count over the probe window";
    "fsync.per_block" ["comm"] "calls/block" "fsync.count over node.blocks";
    "fsync.p50_us" ["comm"] "us" "fsync latency median (upper edge of its log2 bucket)";
    "fsync.p99_us" ["comm"] "us" "fsync latency p99 (upper edge of its log2 bucket)";
    "fsync.max_us" ["comm"] "us" "upper edge of the highest non-empty fsync latency bucket";
    "writepath.writes" ["comm"] "calls" "write, pwrite64, writev, pwritev calls";
    "writepath.writes_per_s" ["comm"] "calls/s" "writepath.writes over the probe window";
    "writepath.fsyncs" ["comm"] "calls" "fsync, fdatasync, sync_file_range calls seen by the write-path probe";
    "writepath.fsyncs_per_s" ["comm"] "calls/s" "writepath.fsyncs over the probe window";
    "writepath.syscalls" ["comm", "syscall"] "calls" "all write-path syscalls";
    "writepath.p99_us" ["syscall"] "us" "write-path syscall latency p99 (upper edge of its log2 bucket)";
    "bio.count" ["rwbs"] "requests" "completed block-IO requests";
    "bio.p50_us" ["rwbs"] "us" "block-IO service time median (upper edge of its log2 bucket)";
    "bio.p99_us" ["rwbs"] "us" "block-IO service time p99 (upper edge of its log2 bucket)";
    "bio.max_us" ["rwbs"] "us" "upper edge of the highest non-empty block-IO bucket";
    "bio.bytes" ["rwbs"] "bytes" "bytes of completed block-IO requests";
    "bio.write_mib_per_s" [] "MiB/s" "bytes of requests whose RWBS contains W, over the probe window";
    "node.blocks" [] "blocks" "increase of qfc_block_height over the phase (metrics)";
    "node.blocks_per_s" [] "blocks/s" "node.blocks over the phase";
    "rocksdb.l0_files.max" [] "files" "largest qfc_rocksdb_l0_files of any column family in any sample";
    "rocksdb.pending_compaction_bytes.max" [] "bytes" "largest sum over column families of qfc_rocksdb_pending_compaction_bytes";
    "rocksdb.memtable_bytes.max" [] "bytes" "largest sum over column families of qfc_rocksdb_memtable_bytes";
    "rocksdb.write_stopped.max" [] "0/1" "whether any column family reported qfc_rocksdb_write_stopped";
    "rocksdb.stall_us" [] "us" "increase of qfc_rocksdb_stall_micros_total";
    "rocksdb.wal_syncs" [] "syncs" "increase of qfc_rocksdb_wal_syncs_total";
    "rocksdb.wal_syncs_per_block" [] "syncs/block" "rocksdb.wal_syncs over node.blocks";
    "rocksdb.compaction_write_bytes" [] "bytes" "increase of qfc_rocksdb_compaction_write_bytes_total (reference node)";
    "rocksdb.flush_write_bytes" [] "bytes" "increase of qfc_rocksdb_flush_write_bytes_total (reference node)";
    "load.<workload>.requests" [] "requests" "requests sent (workload: rpc, tx, sync, compaction)";
    "load.<workload>.ok" [] "requests" "requests answered without error";
    "load.<workload>.errors" [] "requests" "requests that failed or timed out";
    "load.<workload>.dropped" [] "requests" "open loop: arrivals never sent (no free slot in time, or the phase ended)";
    "load.<workload>.error_pct" [] "%" "errors over requests";
    "load.<workload>.throughput_per_s" [] "requests/s" "answered requests per second";
    "load.<workload>.p50_ms" [] "ms" "latency median (from the intended start in open loop)";
    "load.<workload>.p90_ms" [] "ms" "latency p90";
    "load.<workload>.p99_ms" [] "ms" "latency p99";
    "load.<workload>.p999_ms" [] "ms" "latency p99.9";
    "load.<workload>.max_ms" [] "ms" "largest latency";
    "load.floor_p50_us" [] "us" "instrument floor: the load generator's own median latency at the phase's rate, against a server that answers at once";
    "load.floor_p99_us" [] "us" "instrument floor p99; a load p99 within 2x of it measures the generator, not the node";
    "capture.lost_events" [] "events" "events the probes dropped (map or ring-buffer overflow)";
    "capture.truncated_stack_pct" [] "%" "share of stacks cut short";
    "capture.root_reached_pct" ["probe"] "%" "share of stacks (samples on-CPU, time off-CPU) whose user stack reaches a thread root (_start, clone, clone3, thread_start); probe: oncpu (default) or offcpu";
    "capture.dwarf_unwound_pct" ["probe"] "%" "share of stacks unwound from .eh_frame (the rest by frame pointers)";
    "capture.lost_stacks" ["probe"] "stacks" "stacks lost (bpf_get_stackid error other than EFAULT, or a full ring buffer), user and kernel; by cause in session.json";
    "capture.stack_copies_cut_short" ["probe"] "copies" "user-stack copies whose walk ran past the copy size";
    "capture.stack_bytes_per_s" ["probe"] "bytes/s" "bytes of user stack copied per second";
    "capture.emulated" [] "0/1" "1 when the target is emulated (QEMU TCG): timings are not comparable with hardware";
    "probes.runs" ["probe", "program"] "runs" "runs of the probes' eBPF programs in the phase, from the kernel's BPF statistics (every hit of an attach point, before the scope filter)";
    "probes.cost_ns_per_event" ["probe", "program"] "ns" "mean run time of the probes' eBPF programs per run (per program run: a syscall probe's enter and exit are two runs), from the kernel's BPF statistics";
    "probes.cpu_s" ["probe", "program"] "s" "CPU time in the probes' eBPF programs (BPF statistics); without a selector, plus the probe process's own CPU time";
    "probes.process_cpu_s" [] "s" "CPU time of the probe process itself (draining, symbolization, rendering)";
    "probes.overhead_share" [] "%" "upper bound of the probes' cost: (BPF run time of every program + probe process CPU) / CPU time of the target, in the phase; the kernel counts runs of every task hitting the tracepoints, not only the target's";
}

const LOAD_STATS: &[&str] = &[
    "requests",
    "ok",
    "errors",
    "dropped",
    "error_pct",
    "throughput_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
];

/// A parsed figure name: base, selectors, and the regex of `*_matching:` figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRef {
    pub text: String,
    pub base: String,
    pub selectors: BTreeMap<String, String>,
    pub pattern: Option<String>,
    pub unit: &'static str,
}

/// Why a figure name is not valid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FigureError {
    #[error("unknown figure {name:?}{hint}; the figure names are listed in docs/FIGURES.md")]
    Unknown { name: String, hint: String },
    #[error("figure {name:?} takes no selector {selector:?}; it takes {allowed}")]
    BadSelector {
        name: String,
        selector: String,
        allowed: String,
    },
    #[error("figure {name:?}: malformed selector {text:?}; write name{{key=value}}")]
    Malformed { name: String, text: String },
    #[error("figure {name:?}: invalid regex: {why}")]
    BadRegex { name: String, why: String },
    #[error("figure {name:?}: unknown {key} {value:?}; one of {allowed}")]
    BadValue {
        name: String,
        key: String,
        value: String,
        allowed: String,
    },
}

/// Parses and checks a figure name against the registry.
pub fn parse_figure(text: &str) -> Result<FigureRef, FigureError> {
    let text = text.trim();
    // `*_matching:<regex>` carries a regex that may contain braces
    for prefix in ["oncpu.share_matching:", "offcpu.share_matching:"] {
        if let Some(re) = text.strip_prefix(prefix) {
            Regex::new(re).map_err(|e| FigureError::BadRegex {
                name: text.into(),
                why: e.to_string(),
            })?;
            return Ok(FigureRef {
                text: text.into(),
                base: prefix.trim_end_matches(':').into(),
                selectors: BTreeMap::new(),
                pattern: Some(re.into()),
                unit: "%",
            });
        }
    }
    let (base, sel_text) = match text.find('{') {
        Some(i) => {
            let Some(inner) = text[i + 1..].strip_suffix('}') else {
                return Err(FigureError::Malformed {
                    name: text.into(),
                    text: text[i..].into(),
                });
            };
            (&text[..i], Some(inner))
        }
        None => (text, None),
    };
    let def_name = if let Some(rest) = base.strip_prefix("load.") {
        match rest.split_once('.') {
            Some((w, stat)) if !w.is_empty() && LOAD_STATS.contains(&stat) => {
                format!("load.<workload>.{stat}")
            }
            _ => base.to_string(),
        }
    } else {
        base.to_string()
    };
    let Some(def) = FIGURES.iter().find(|d| d.name == def_name) else {
        let best = FIGURES
            .iter()
            .map(|d| (strsim::jaro_winkler(d.name, base), d.name))
            .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
        let hint = if best.0 > 0.8 {
            format!(" (did you mean {:?}?)", best.1)
        } else {
            String::new()
        };
        return Err(FigureError::Unknown {
            name: text.into(),
            hint,
        });
    };
    let mut selectors = BTreeMap::new();
    if let Some(inner) = sel_text {
        for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(FigureError::Malformed {
                    name: text.into(),
                    text: part.into(),
                });
            };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if !def.selectors.contains(&k) {
                return Err(FigureError::BadSelector {
                    name: text.into(),
                    selector: k.into(),
                    allowed: if def.selectors.is_empty() {
                        "none".into()
                    } else {
                        def.selectors.join(", ")
                    },
                });
            }
            if k == "area" && Area::from_name(v).is_none() {
                return Err(FigureError::BadValue {
                    name: text.into(),
                    key: k.into(),
                    value: v.into(),
                    allowed: Area::ALL.map(Area::name).join(", "),
                });
            }
            if k == "role" && Role::from_name(v).is_none() {
                return Err(FigureError::BadValue {
                    name: text.into(),
                    key: k.into(),
                    value: v.into(),
                    allowed: Role::ALL.map(Role::name).join(", "),
                });
            }
            if k == "reason" && Reason::from_name(v).is_none() {
                return Err(FigureError::BadValue {
                    name: text.into(),
                    key: k.into(),
                    value: v.into(),
                    allowed: Reason::ALL.map(Reason::name).join(", "),
                });
            }
            selectors.insert(k.to_string(), v.to_string());
        }
    }
    Ok(FigureRef {
        text: text.into(),
        base: base.into(),
        selectors,
        pattern: None,
        unit: def.unit,
    })
}

fn pct(part: f64, whole: f64, what: &str) -> Fig {
    if whole <= 0.0 {
        Err(format!("no {what} in this phase"))
    } else {
        Ok(100.0 * part / whole)
    }
}

fn missing(p: &PhaseEvidence, src: &str) -> String {
    match p.missing.get(src) {
        Some(r) => format!("no {src} evidence: {r}"),
        None => format!("no {src} evidence"),
    }
}

fn per_s(n: f64, window: Option<f64>) -> Fig {
    match window {
        Some(w) if w > 0.0 => Ok(n / w),
        _ => Err("the probe window length is unknown".into()),
    }
}

const WRITES: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];
const SYNCS: &[&str] = &["fsync", "fdatasync", "sync_file_range"];

/// Evaluates a figure on one phase.
pub fn evaluate(f: &FigureRef, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
    let sel = |k: &str| f.selectors.get(k).map(String::as_str);
    match f.base.as_str() {
        "oncpu.cpu_s_per_s" => {
            let s = p.oncpu.as_ref().ok_or_else(|| missing(p, "oncpu"))?;
            if sel("thread").is_some() && !s.has_threads {
                return Err("these on-CPU stacks carry no thread names".into());
            }
            let hz = s.sample_hz.ok_or(
                "the on-CPU sampling rate is unknown (no probes.oncpu_hz in scenario.toml)",
            )?;
            let window = s
                .window_s
                .filter(|w| *w > 0.0)
                .ok_or("the on-CPU window length is unknown")?;
            let area = sel("area").and_then(Area::from_name);
            let role = sel("role").and_then(Role::from_name);
            let n: u64 = s
                .folded
                .stacks
                .iter()
                .filter(|x| sel("thread").is_none_or(|t| x.thread.as_deref() == Some(t)))
                .filter(|x| area.is_none_or(|a| inclusive_areas(&x.frames).contains(&a)))
                .filter(|x| role.is_none_or(|r| stack_role(&x.frames) == r))
                .map(|x| x.count)
                .sum();
            Ok(n as f64 / hz / window)
        }
        "oncpu.samples"
        | "oncpu.share"
        | "oncpu.self_share"
        | "oncpu.inclusive_share"
        | "oncpu.share_matching"
        | "oncpu.unknown_root_share" => {
            let s = p.oncpu.as_ref().ok_or_else(|| missing(p, "oncpu"))?;
            let total = s.folded.total() as f64;
            if let Some(t) = sel("thread") {
                if !s.has_threads {
                    return Err("these on-CPU stacks carry no thread names".into());
                }
                let n: u64 = s
                    .folded
                    .stacks
                    .iter()
                    .filter(|x| x.thread.as_deref() == Some(t))
                    .map(|x| x.count)
                    .sum();
                return if f.base == "oncpu.samples" {
                    Ok(n as f64)
                } else {
                    pct(n as f64, total, "on-CPU samples")
                };
            }
            match f.base.as_str() {
                "oncpu.samples" => Ok(total),
                "oncpu.share" | "oncpu.self_share" | "oncpu.inclusive_share" => {
                    let area = sel("area")
                        .and_then(Area::from_name)
                        .ok_or_else(|| format!("{} needs {{area=...}}", f.base))?;
                    let inclusive = f.base == "oncpu.inclusive_share";
                    let n: u64 = s
                        .folded
                        .stacks
                        .iter()
                        .filter(|x| {
                            if inclusive {
                                inclusive_areas(&x.frames).contains(&area)
                            } else {
                                classify_oncpu(&x.frames) == area
                            }
                        })
                        .map(|x| x.count)
                        .sum();
                    pct(n as f64, total, "on-CPU samples")
                }
                "oncpu.unknown_root_share" => pct(
                    s.folded.unknown_root_weight() as f64,
                    total,
                    "on-CPU samples",
                ),
                _ => {
                    let re = Regex::new(f.pattern.as_deref().unwrap_or(""))
                        .map_err(|e| e.to_string())?;
                    pct(s.folded.matching(&re) as f64, total, "on-CPU samples")
                }
            }
        }
        "offcpu.total_s" | "offcpu.share" | "offcpu.share_matching" | "offcpu.disk_write_stall" => {
            let s = p.offcpu.as_ref().ok_or_else(|| missing(p, "offcpu"))?;
            let total = s.folded.total() as f64;
            let on_thread = |x: &super::folded::Stack| match sel("thread") {
                Some(t) => x.thread.as_deref() == Some(t),
                None => true,
            };
            if sel("thread").is_some() && !s.has_threads {
                return Err("these off-CPU stacks carry no thread names".into());
            }
            match f.base.as_str() {
                "offcpu.total_s" => Ok(s
                    .folded
                    .stacks
                    .iter()
                    .filter(|x| on_thread(x))
                    .map(|x| x.count)
                    .sum::<u64>() as f64
                    / 1e6),
                "offcpu.share" => {
                    let reason = sel("reason").and_then(Reason::from_name);
                    let n: u64 = s
                        .folded
                        .stacks
                        .iter()
                        .filter(|x| on_thread(x))
                        .filter(|x| reason.is_none_or(|r| classify_offcpu(&x.frames) == r))
                        .map(|x| x.count)
                        .sum();
                    if reason.is_none() && sel("thread").is_none() {
                        return Err("offcpu.share needs {reason=...} or {thread=...}".into());
                    }
                    pct(n as f64, total, "off-CPU time")
                }
                "offcpu.disk_write_stall" => {
                    let n: u64 = s
                        .folded
                        .stacks
                        .iter()
                        .filter(|x| is_disk_write_stall(&x.frames))
                        .map(|x| x.count)
                        .sum();
                    pct(n as f64, total, "off-CPU time")
                }
                _ => {
                    let re = Regex::new(f.pattern.as_deref().unwrap_or(""))
                        .map_err(|e| e.to_string())?;
                    pct(s.folded.matching(&re) as f64, total, "off-CPU time")
                }
            }
        }
        "fsync.count" | "fsync.per_s" | "fsync.per_block" | "fsync.p50_us" | "fsync.p99_us"
        | "fsync.max_us" => {
            let d = p.fsync.as_ref().ok_or_else(|| missing(p, "fsync"))?;
            let count = match sel("comm") {
                Some(c) => d.calls_by_comm.get(c).copied().unwrap_or(0),
                None => d.calls_by_comm.values().sum(),
            } as f64;
            match f.base.as_str() {
                "fsync.count" => Ok(count),
                "fsync.per_s" => per_s(count, d.window_s),
                "fsync.per_block" => {
                    let blocks = blocks(p)?;
                    if blocks <= 0.0 {
                        Err("the node produced no block in this phase".into())
                    } else {
                        Ok(count / blocks)
                    }
                }
                _ => {
                    let h = match sel("comm") {
                        Some(c) => d.by_comm_us.get(c),
                        None => d.latency_us.as_ref(),
                    }
                    .filter(|h| !h.is_empty())
                    .ok_or("no fsync latency recorded (no calls)")?;
                    let q = match f.base.as_str() {
                        "fsync.p50_us" => 0.5,
                        "fsync.p99_us" => 0.99,
                        _ => 1.0,
                    };
                    h.quantile(q)
                        .map(|v| v as f64)
                        .ok_or("empty histogram".into())
                }
            }
        }
        "writepath.writes"
        | "writepath.writes_per_s"
        | "writepath.fsyncs"
        | "writepath.fsyncs_per_s"
        | "writepath.syscalls" => {
            let d = p
                .writepath
                .as_ref()
                .ok_or_else(|| missing(p, "writepath"))?;
            let n: u64 = d
                .ops
                .iter()
                .filter(|((c, _), _)| sel("comm").is_none_or(|x| x == c))
                .filter(|((_, sc), _)| match f.base.as_str() {
                    "writepath.writes" | "writepath.writes_per_s" => WRITES.contains(&sc.as_str()),
                    "writepath.fsyncs" | "writepath.fsyncs_per_s" => SYNCS.contains(&sc.as_str()),
                    _ => sel("syscall").is_none_or(|x| x == sc),
                })
                .map(|(_, n)| *n)
                .sum();
            if f.base.ends_with("_per_s") {
                per_s(n as f64, d.window_s)
            } else {
                Ok(n as f64)
            }
        }
        "writepath.p99_us" => {
            let d = p
                .writepath
                .as_ref()
                .ok_or_else(|| missing(p, "writepath"))?;
            let sc = sel("syscall").unwrap_or("write");
            d.lat_us_by_syscall
                .get(sc)
                .and_then(|h| h.quantile(0.99))
                .map(|v| v as f64)
                .ok_or_else(|| format!("no {sc} latency recorded"))
        }
        "bio.count"
        | "bio.p50_us"
        | "bio.p99_us"
        | "bio.max_us"
        | "bio.bytes"
        | "bio.write_mib_per_s" => {
            let d = p.bio.as_ref().ok_or_else(|| missing(p, "bio"))?;
            if f.base == "bio.write_mib_per_s" {
                let b: u64 = d
                    .bytes_by_rwbs
                    .iter()
                    .filter(|(k, _)| k.contains('W'))
                    .map(|(_, v)| v)
                    .sum();
                return per_s(b as f64 / (1024.0 * 1024.0), d.window_s);
            }
            if f.base == "bio.bytes" {
                return Ok(match sel("rwbs") {
                    Some(r) => d.bytes_by_rwbs.get(r).copied().unwrap_or(0),
                    None => d.bytes_by_rwbs.values().sum(),
                } as f64);
            }
            let h = match sel("rwbs") {
                Some(r) => d.by_rwbs_us.get(r).cloned().unwrap_or_default(),
                None => match &d.latency_us {
                    Some(h) => h.clone(),
                    None => {
                        let mut all = super::hist::Log2Hist::default();
                        for h in d.by_rwbs_us.values() {
                            all.merge(h);
                        }
                        all
                    }
                },
            };
            if f.base == "bio.count" {
                return Ok(h.total() as f64);
            }
            let q = match f.base.as_str() {
                "bio.p50_us" => 0.5,
                "bio.p99_us" => 0.99,
                _ => 1.0,
            };
            h.quantile(q)
                .map(|v| v as f64)
                .ok_or_else(|| match sel("rwbs") {
                    Some(r) => format!("no block-IO request with RWBS {r} in this phase"),
                    None => "no block-IO request in this phase".into(),
                })
        }
        "node.blocks" => blocks(p),
        "node.blocks_per_s" => per_s(blocks(p)?, p.duration_s),
        "rocksdb.l0_files.max" => {
            metrics(p)?.max_over("qfc_rocksdb_l0_files", MetricsWindow::max_label)
        }
        "rocksdb.pending_compaction_bytes.max" => {
            metrics(p)?.max_over("qfc_rocksdb_pending_compaction_bytes", MetricsWindow::sum)
        }
        "rocksdb.memtable_bytes.max" => {
            metrics(p)?.max_over("qfc_rocksdb_memtable_bytes", MetricsWindow::sum)
        }
        "rocksdb.write_stopped.max" => metrics(p)?
            .max_over("qfc_rocksdb_write_stopped", MetricsWindow::max_label)
            .map(|v| if v > 0.0 { 1.0 } else { 0.0 }),
        "rocksdb.stall_us" => metrics(p)?.delta("qfc_rocksdb_stall_micros_total"),
        "rocksdb.wal_syncs" => metrics(p)?.delta("qfc_rocksdb_wal_syncs_total"),
        "rocksdb.compaction_write_bytes" => {
            metrics(p)?.delta("qfc_rocksdb_compaction_write_bytes_total")
        }
        "rocksdb.flush_write_bytes" => metrics(p)?.delta("qfc_rocksdb_flush_write_bytes_total"),
        "rocksdb.wal_syncs_per_block" => {
            let s = metrics(p)?.delta("qfc_rocksdb_wal_syncs_total")?;
            let b = blocks(p)?;
            if b <= 0.0 {
                Err("the node produced no block in this phase".into())
            } else {
                Ok(s / b)
            }
        }
        "capture.lost_events" => p
            .lost_events
            .map(|v| v as f64)
            .ok_or_else(|| missing(p, "session")),
        "capture.truncated_stack_pct" => {
            p.truncated_stack_share.map(|v| v * 100.0).ok_or_else(|| {
                "probes/session.json gives no truncated-stack share for this phase".into()
            })
        }
        "capture.root_reached_pct"
        | "capture.dwarf_unwound_pct"
        | "capture.lost_stacks"
        | "capture.stack_copies_cut_short"
        | "capture.stack_bytes_per_s" => {
            let probe = sel("probe").unwrap_or("oncpu");
            let q = p
                .stack_quality
                .as_ref()
                .and_then(|q| q.get(probe))
                .ok_or_else(|| {
                    format!("probes/session.json gives no stack quality for {probe} in this phase (probe not run, or recorded before issue 12)")
                })?;
            let num = |k: &str| {
                q.get(k)
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| format!("the {probe} stack quality has no {k}"))
            };
            match f.base.as_str() {
                "capture.root_reached_pct" => num("reached_root_share").map(|v| v * 100.0),
                "capture.dwarf_unwound_pct" => Ok(q
                    .get("method_share")
                    .and_then(|m| m.get("dwarf"))
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
                    * 100.0),
                "capture.lost_stacks" => {
                    let lost = q
                        .get("lost_stacks")
                        .and_then(|v| v.as_object())
                        .ok_or_else(|| format!("the {probe} stack quality has no lost_stacks"))?;
                    Ok(lost
                        .values()
                        .filter_map(|c| c.as_object())
                        .flat_map(|c| c.iter())
                        .filter(|(cause, _)| cause.as_str() != "EFAULT")
                        .filter_map(|(_, n)| n.as_f64())
                        .sum())
                }
                "capture.stack_copies_cut_short" => num("copies_cut_short"),
                _ => num("bytes_copied_per_s"),
            }
        }
        "capture.emulated" => ctx
            .emulated
            .map(|e| if e { 1.0 } else { 0.0 })
            .ok_or_else(|| {
                "neither context.json nor manifest.json says whether the target is emulated".into()
            }),
        "probes.runs"
        | "probes.cost_ns_per_event"
        | "probes.cpu_s"
        | "probes.process_cpu_s"
        | "probes.overhead_share" => probe_cost(f, p),
        "load.floor_p50_us" | "load.floor_p99_us" => {
            let fl = p
                .load_floor
                .as_ref()
                .ok_or_else(|| missing(p, "load_floor"))?;
            Ok(if f.base == "load.floor_p50_us" {
                fl.p50_us
            } else {
                fl.p99_us
            })
        }
        b if b.starts_with("load.") => {
            let (w, stat) = b[5..].split_once('.').ok_or("malformed load figure")?;
            let l = p.load.as_ref().ok_or_else(|| missing(p, "load"))?;
            let d = l
                .get(w)
                .ok_or_else(|| format!("no {w} workload ran in this phase"))?;
            let need = |v: Option<f64>, what: &str| {
                v.ok_or_else(|| format!("the load summary gives no {what} for {w}"))
            };
            match stat {
                "requests" => need(d.requests.map(|v| v as f64), "request count"),
                "ok" => need(d.ok.map(|v| v as f64), "ok count"),
                "errors" => need(d.errors.map(|v| v as f64), "error count"),
                "dropped" => need(d.dropped.map(|v| v as f64), "dropped count"),
                "error_pct" => {
                    let e = need(d.errors.map(|v| v as f64), "error count")?;
                    let r = need(d.requests.map(|v| v as f64), "request count")?;
                    pct(e, r, "requests")
                }
                "throughput_per_s" => need(d.throughput_per_s, "throughput"),
                "p50_ms" => need(d.p50_ms, "p50 latency"),
                "p90_ms" => need(d.p90_ms, "p90 latency"),
                "p99_ms" => need(
                    d.p99_ms,
                    "p99 latency (percentiles of several phases cannot be merged from summaries)",
                ),
                "p999_ms" => need(d.p999_ms, "p99.9 latency"),
                "max_ms" => need(d.max_ms, "max latency"),
                _ => Err(format!("unknown load statistic {stat}")),
            }
        }
        other => Err(format!(
            "figure {other} has no evaluator (a defect: report it)"
        )),
    }
}

/// The `probes.*` figures: the probes' own cost, from the `cost` of the phase's window
/// in `probes/session.json`.
fn probe_cost(f: &FigureRef, p: &PhaseEvidence) -> Fig {
    let c = p.probe_cost.as_ref().ok_or_else(|| {
        if p.missing.contains_key("session") {
            missing(p, "session")
        } else {
            "probes/session.json records no probe cost for this phase (a probe session older than issue 17)".to_string()
        }
    })?;
    if let Some(st) = c.bpf_stats.as_ref().filter(|s| s.state != "enabled") {
        if f.base != "probes.process_cpu_s" {
            return Err(format!(
                "the kernel's BPF statistics did not run: {}",
                st.reason.as_deref().unwrap_or(&st.state)
            ));
        }
    }
    let sel = |k: &str| f.selectors.get(k).map(String::as_str);
    let runs = || -> Result<(u64, u64), String> {
        match (sel("program"), sel("probe")) {
            (Some(_), Some(_)) => Err(format!(
                "{} takes {{probe=...}} or {{program=...}}, not both",
                f.base
            )),
            (Some(name), None) => c
                .programs
                .get(name)
                .map(|r| (r.runs, r.run_time_ns))
                .ok_or_else(|| {
                    format!(
                        "no eBPF program {name} was loaded (loaded: {})",
                        keys(&c.programs)
                    )
                }),
            (None, Some(name)) => c
                .probes
                .get(name)
                .map(|r| (r.runs, r.run_time_ns))
                .ok_or_else(|| {
                    format!(
                        "no probe {name} was attached (attached: {})",
                        keys(&c.probes)
                    )
                }),
            (None, None) => Ok(c
                .probes
                .values()
                .fold((0, 0), |a, r| (a.0 + r.runs, a.1 + r.run_time_ns))),
        }
    };
    match f.base.as_str() {
        "probes.runs" => Ok(runs()?.0 as f64),
        "probes.cost_ns_per_event" => {
            let (n, ns) = runs()?;
            if n == 0 {
                Err("the programs did not run in this phase".into())
            } else {
                Ok(ns as f64 / n as f64)
            }
        }
        "probes.cpu_s" => {
            let (_, ns) = runs()?;
            let own = if sel("probe").is_none() && sel("program").is_none() {
                c.probe_process_cpu_s
                    .ok_or("the probe process's CPU time is not recorded")?
            } else {
                0.0
            };
            Ok(ns as f64 / 1e9 + own)
        }
        "probes.process_cpu_s" => c
            .probe_process_cpu_s
            .ok_or_else(|| "the probe process's CPU time is not recorded".into()),
        _ => c
            .overhead_share
            .map(|s| 100.0 * s)
            .ok_or_else(|| match c.target_cpu_s {
                None => format!(
                    "the CPU time of the target ({}) could not be read",
                    c.target.as_deref().unwrap_or("unknown")
                ),
                Some(t) if t <= 0.0 => "the target used no CPU in this phase".into(),
                Some(_) => "the overhead share is not recorded".into(),
            }),
    }
}

fn keys(m: &BTreeMap<String, super::inputs::RunCostJson>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn metrics(p: &PhaseEvidence) -> Result<&MetricsWindow, String> {
    p.metrics.as_ref().ok_or_else(|| missing(p, "metrics"))
}

/// Blocks produced in the phase, from the node's `qfc_block_height` (or
/// `qfc_blocks_produced_total`).
pub fn blocks(p: &PhaseEvidence) -> Fig {
    let m = metrics(p)?;
    m.delta("qfc_block_height")
        .or_else(|e| m.delta("qfc_blocks_produced_total").map_err(|_| e))
}

/// Parses and evaluates in one step (for the report's tables).
pub fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
    let f = parse_figure(name).map_err(|e| e.to_string())?;
    evaluate(&f, p, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_are_checked() {
        let f = parse_figure("bio.p99_us{rwbs=W}").unwrap();
        assert_eq!(f.base, "bio.p99_us");
        assert_eq!(f.selectors["rwbs"], "W");
        assert!(parse_figure("load.rpc.p99_ms").is_ok());
        assert!(parse_figure("oncpu.share_matching:blake3::").is_ok());
        assert!(matches!(
            parse_figure("fsync.per_blok"),
            Err(FigureError::Unknown { hint, .. }) if hint.contains("fsync.per_block")
        ));
        assert!(matches!(
            parse_figure("fsync.count{rwbs=W}"),
            Err(FigureError::BadSelector { .. })
        ));
        assert!(matches!(
            parse_figure("oncpu.share{area=hash}"),
            Err(FigureError::BadValue { .. })
        ));
        assert!(matches!(
            parse_figure("oncpu.share_matching:("),
            Err(FigureError::BadRegex { .. })
        ));
    }

    fn cost(state: &str) -> super::super::inputs::ProbeCostJson {
        let j = serde_json::json!({
            "bpf_stats": {"state": state, "how": "BPF_ENABLE_STATS", "reason": "EPERM"},
            "programs": {
                "fdatasync_enter": {"runs": 500, "run_time_ns": 50000},
                "fsync_exit": {"runs": 500, "run_time_ns": 100000}
            },
            "probes": {"fsync": {"runs": 1000, "run_time_ns": 150000}},
            "bpf_cpu_s": 0.00015,
            "probe_process_cpu_s": 0.01,
            "target_cpu_s": 1.0,
            "target": "process 1",
            "overhead_share": 0.01015
        });
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn probe_cost_figures() {
        let p = PhaseEvidence {
            probe_cost: Some(cost("enabled")),
            ..Default::default()
        };
        let e = |n: &str| eval_name(n, &p, &Ctx::default());
        assert_eq!(e("probes.runs{program=fdatasync_enter}"), Ok(500.0));
        assert_eq!(
            e("probes.cost_ns_per_event{program=fdatasync_enter}"),
            Ok(100.0)
        );
        assert_eq!(e("probes.cost_ns_per_event{probe=fsync}"), Ok(150.0));
        assert_eq!(e("probes.cpu_s{probe=fsync}"), Ok(0.00015));
        assert!((e("probes.cpu_s").unwrap() - 0.01015).abs() < 1e-12);
        assert!((e("probes.overhead_share").unwrap() - 1.015).abs() < 1e-9);
        assert!(e("probes.runs{probe=bio}")
            .unwrap_err()
            .contains("attached: fsync"));
        let refused = PhaseEvidence {
            probe_cost: Some(cost("refused")),
            ..Default::default()
        };
        let r = eval_name("probes.overhead_share", &refused, &Ctx::default()).unwrap_err();
        assert!(r.contains("did not run: EPERM"), "{r}");
        assert!(eval_name("probes.runs", &refused, &Ctx::default()).is_err());
        let none = eval_name("probes.runs", &PhaseEvidence::default(), &Ctx::default());
        assert!(none.unwrap_err().contains("no probe cost"));
    }

    #[test]
    fn load_floor_figures_read_the_floor_or_say_why_not() {
        let mut p = PhaseEvidence::default();
        p.load_floor = Some(super::super::evidence::LoadFloor {
            rate_per_s: Some(2000.0),
            p50_us: 80.0,
            p99_us: 190.0,
        });
        assert_eq!(
            eval_name("load.floor_p50_us", &p, &Ctx::default()),
            Ok(80.0)
        );
        assert_eq!(
            eval_name("load.floor_p99_us", &p, &Ctx::default()),
            Ok(190.0)
        );
        assert_eq!(parse_figure("load.floor_p99_us").unwrap().unit, "us");
        p.load_floor = None;
        p.missing
            .insert("load_floor", "calibration skipped (floor window 0)".into());
        let e = eval_name("load.floor_p99_us", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("calibration skipped"), "{e}");
    }

    #[test]
    fn missing_evidence_gives_reason_not_number() {
        let mut p = PhaseEvidence::default();
        p.missing.insert("fsync", "fsync.json absent".into());
        let e = eval_name("fsync.count", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("fsync.json absent"), "{e}");
        let e = eval_name("fsync.per_block", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("no fsync evidence"), "{e}");
    }

    /// Issue 12: the stack-quality figures read session.json's
    /// `stack_quality` per probe; lost stacks exclude EFAULT (no stack).
    #[test]
    fn stack_quality_figures() {
        let mut p = PhaseEvidence::default();
        let e = eval_name("capture.root_reached_pct", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("no stack quality for oncpu"), "{e}");
        p.stack_quality = Some(serde_json::json!({
            "oncpu": {"reached_root_share": 0.97, "method_share": {"dwarf": 0.75, "fp": 0.25},
                      "lost_stacks": {"oncpu_user": {"EEXIST": 2, "EFAULT": 40}, "oncpu_kernel": {"ENOMEM": 1}},
                      "copies": 10, "copies_cut_short": 3, "bytes_copied_per_s": 4096.0},
            "offcpu": {"reached_root_share": 0.5, "method_share": {"fp": 1.0}, "lost_stacks": {},
                       "copies": 0, "copies_cut_short": 0, "bytes_copied_per_s": 0.0}
        }));
        let f = |n: &str| eval_name(n, &p, &Ctx::default()).unwrap();
        assert!((f("capture.root_reached_pct") - 97.0).abs() < 1e-9);
        assert!((f("capture.root_reached_pct{probe=offcpu}") - 50.0).abs() < 1e-9);
        assert_eq!(f("capture.dwarf_unwound_pct"), 75.0);
        assert_eq!(f("capture.dwarf_unwound_pct{probe=offcpu}"), 0.0);
        assert_eq!(f("capture.lost_stacks"), 3.0);
        assert_eq!(f("capture.stack_copies_cut_short"), 3.0);
        assert_eq!(f("capture.stack_bytes_per_s"), 4096.0);
    }
}
