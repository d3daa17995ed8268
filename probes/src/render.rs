//! Writes one phase window: bpftrace-compatible text (same histogram layout
//! as T1's files), JSON with the same data, and for `oncpu` and `offcpu`
//! folded stacks (root first, `;`-joined, a space, the count) and inferno
//! flame graphs with deterministic colours.
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use bundle_schema::probes::{
    self as schema, BioFile, Bucket as BucketJson, Hist as HistJson, OffcpuFile, OncpuFile,
    ProcessHist, StackRecord as StackJson, SyscallFile, SyscallRow,
};
use probes_common::{drop_kind, ustack::stack_err, SYSCALL_NAMES};
use serde::Serialize;

use crate::{
    error::ProbeError,
    quality::{user_cut_short, QualityAcc, StackQuality},
    scope::{ProbeKind, Scope},
    snapshot::{lost_by_name, RawPhase},
    symbolize::{Frame, Symbolizer, MAX_DEPTH},
    unwind::StackEnd,
};

/// `-EFAULT` from `bpf_get_stackid`: no such stack (kernel thread, or a
/// sample taken in user mode for the kernel stack), not a loss.
const EFAULT: i32 = -14;

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Output root; a window goes to `<out_dir>/<phase>/`.
    pub out_dir: PathBuf,
    /// Scope, recorded in the JSON.
    pub scope: Scope,
    /// Sampling frequency, recorded in the JSON.
    pub hz: u64,
}

/// What `session.json` records about one window.
pub type PhaseSummary = bundle_schema::probes::Window;

/// A log2 histogram in µs, as bpftrace's `hist()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hist {
    /// bucket index -> count.
    pub buckets: BTreeMap<u32, u64>,
    /// Events.
    pub count: u64,
    /// Summed latency in ns.
    pub sum_ns: u64,
}

impl Hist {
    fn add(&mut self, bucket: u32, count: u64, sum_ns: u64) {
        *self.buckets.entry(bucket).or_default() += count;
        self.count += count;
        self.sum_ns += sum_ns;
    }
}

fn hist_json(h: &Hist) -> HistJson {
    HistJson {
        count: h.count,
        sum_us: h.sum_ns as f64 / 1000.0,
        buckets: h
            .buckets
            .iter()
            .map(|(b, c)| {
                let (lo, hi) = bucket_range(*b);
                BucketJson { lo, hi, count: *c }
            })
            .collect(),
    }
}

fn bucket_range(b: u32) -> (u64, u64) {
    match b {
        0 => (0, 1),
        b => (1u64 << (b - 1), 1u64.checked_shl(b).unwrap_or(u64::MAX)),
    }
}

/// bpftrace's `hist_index_label`: a power of two with a K/M/G/T/P/E suffix.
pub fn size_label(mut n: u64) -> String {
    const SUF: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while n >= 1024 && n % 1024 == 0 && i < SUF.len() - 1 {
        n /= 1024;
        i += 1;
    }
    format!("{n}{}", SUF[i])
}

fn bucket_label(b: u32) -> String {
    match b {
        0 => "[0]".into(),
        1 => "[1]".into(),
        b => {
            let (lo, hi) = bucket_range(b);
            format!("[{}, {})", size_label(lo), size_label(hi))
        }
    }
}

/// One `@name[key]:` histogram in bpftrace's layout (rows from the first to
/// the last non-empty bucket, 52-column bar), followed by a blank line.
pub fn write_hist(out: &mut String, name: &str, key: Option<&str>, h: &Hist) {
    match key {
        Some(k) => {
            let _ = writeln!(out, "@{name}[{k}]: ");
        }
        None => {
            let _ = writeln!(out, "@{name}: ");
        }
    }
    let (Some((&lo, _)), Some((&hi, _))) =
        (h.buckets.first_key_value(), h.buckets.last_key_value())
    else {
        out.push('\n');
        return;
    };
    let max = h.buckets.values().copied().max().unwrap_or(1).max(1);
    for b in lo..=hi {
        let c = h.buckets.get(&b).copied().unwrap_or(0);
        let bar = "@".repeat((c as f64 / max as f64 * 52.0) as usize);
        let _ = writeln!(out, "{:<16}{:>8} |{:<52}|", bucket_label(b), c, bar);
    }
    out.push('\n');
}

fn write_counter(out: &mut String, name: &str, key: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "@{name}[{key}]: {v}");
}

fn comm_str(c: &[u8]) -> String {
    let end = c.iter().position(|b| *b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

fn dev_name(dev: u32) -> String {
    let (major, minor) = (dev >> 20, dev & 0xfffff);
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
        .unwrap_or_default();
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map_or_else(|| format!("{major}:{minor}"), str::to_owned)
}

fn syscall_name(i: u32) -> &'static str {
    SYSCALL_NAMES.get(i as usize).copied().unwrap_or("?")
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), ProbeError> {
    std::fs::write(path, data).map_err(|e| ProbeError::io("writing", path, e))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), ProbeError> {
    let data = serde_json::to_vec_pretty(v)
        .map_err(|e| ProbeError::io("serializing", path, std::io::Error::other(e)))?;
    write_file(path, &data)
}

fn lost_lines(out: &mut String, lost: &BTreeMap<String, u64>, prefix: &str) {
    for (k, v) in lost
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) || k.starts_with("tgid"))
    {
        write_counter(out, "lost_events", k, v);
    }
    out.push('\n');
}

/// The header of every per-phase file: the session's scope by reference.
type Header<'a> = schema::Header<&'a Scope>;

/// Writes every output of one window and returns its summary.
pub fn write_phase(
    raw: &RawPhase,
    probes: &[ProbeKind],
    opts: &RenderOptions,
    sym: &mut Symbolizer,
) -> Result<PhaseSummary, ProbeError> {
    let dir = opts.out_dir.join(&raw.name);
    std::fs::create_dir_all(&dir).map_err(|e| ProbeError::io("creating", &dir, e))?;
    let lost = lost_by_name(&raw.drops);
    let mut summary = PhaseSummary {
        phase: raw.name.clone(),
        start_ns: raw.start_ns,
        end_ns: raw.end_ns,
        lost_total: lost.values().sum(),
        lost_events: lost.clone(),
        offcpu_below_threshold: raw.drops[drop_kind::OFFCPU_BELOW_MIN as usize],
        bio_unmatched_completions: raw.drops[drop_kind::BIO_UNMATCHED as usize],
        truncated_stack_share: BTreeMap::new(),
        events: BTreeMap::new(),
        cost: raw.cost.clone(),
        unwind: raw.unwind.name().to_string(),
        stack_quality: BTreeMap::new(),
    };
    let header = |probe: &'static str| Header {
        probe: probe.to_string(),
        phase: raw.name.clone(),
        start_ns: raw.start_ns,
        end_ns: raw.end_ns,
        scope: &opts.scope,
        lost_events: lost
            .iter()
            .filter(|(k, _)| k.starts_with(probe) || k.starts_with("tgid"))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    };
    let proc_name = |tgid: u32| {
        raw.procs
            .get(&tgid)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    for p in probes {
        match p {
            ProbeKind::Fsync => {
                let n = write_syscalls(
                    &dir,
                    "fsync",
                    raw,
                    &raw.fsync,
                    header("fsync"),
                    &proc_name,
                    &lost,
                )?;
                summary.events.insert("fsync".into(), n);
            }
            ProbeKind::Writepath => {
                let n = write_syscalls(
                    &dir,
                    "writepath",
                    raw,
                    &raw.writepath,
                    header("writepath"),
                    &proc_name,
                    &lost,
                )?;
                summary.events.insert("writepath".into(), n);
            }
            ProbeKind::Bio => {
                let n = write_bio(&dir, raw, header("bio"), &lost)?;
                summary.events.insert("bio".into(), n);
            }
            ProbeKind::Oncpu => {
                let (n, share, q) = write_oncpu(&dir, raw, header("oncpu"), &lost, sym, opts.hz)?;
                summary.events.insert("oncpu".into(), n);
                summary.truncated_stack_share.insert("oncpu".into(), share);
                summary.stack_quality.insert("oncpu".into(), q);
            }
            ProbeKind::Offcpu => {
                let (n, share, q) = write_offcpu(&dir, raw, header("offcpu"), &lost, sym)?;
                summary.events.insert("offcpu".into(), n);
                summary.truncated_stack_share.insert("offcpu".into(), share);
                summary.stack_quality.insert("offcpu".into(), q);
            }
        }
    }
    Ok(summary)
}

/// fsync and writepath share a key shape: (tgid, thread, syscall, bucket).
fn write_syscalls(
    dir: &Path,
    probe: &'static str,
    _raw: &RawPhase,
    rows: &[(probes_common::SyscallKey, probes_common::Agg)],
    header: Header<'_>,
    proc_name: &dyn Fn(u32) -> String,
    lost: &BTreeMap<String, u64>,
) -> Result<u64, ProbeError> {
    let mut total = Hist::default();
    let mut by_sys: BTreeMap<&'static str, Hist> = BTreeMap::new();
    let mut by_comm: BTreeMap<String, Hist> = BTreeMap::new();
    let mut by_proc: BTreeMap<u32, Hist> = BTreeMap::new();
    let mut by_comm_sys: BTreeMap<(String, &'static str), Hist> = BTreeMap::new();
    let mut flat: BTreeMap<(u32, String, &'static str), (u64, u64)> = BTreeMap::new();
    for (k, a) in rows {
        let comm = comm_str(&k.comm);
        let sys = syscall_name(k.syscall);
        total.add(k.bucket, a.count, a.sum_ns);
        by_sys
            .entry(sys)
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        by_comm
            .entry(comm.clone())
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        by_proc
            .entry(k.tgid)
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        by_comm_sys
            .entry((comm.clone(), sys))
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        let e = flat.entry((k.tgid, comm, sys)).or_default();
        e.0 += a.count;
        e.1 += a.sum_ns;
    }
    let mut txt = String::new();
    let (total_name, by_comm_name) = if probe == "fsync" {
        ("fsync_latency_us", "by_comm_us")
    } else {
        ("write_path_latency_us", "lat_by_comm_us")
    };
    write_hist(&mut txt, total_name, None, &total);
    for (s, h) in &by_sys {
        write_hist(&mut txt, "lat_us", Some(s), h);
    }
    for (c, h) in &by_comm {
        write_hist(&mut txt, by_comm_name, Some(c), h);
    }
    for (t, h) in &by_proc {
        write_hist(
            &mut txt,
            "by_process_us",
            Some(&format!("{t} {}", proc_name(*t))),
            h,
        );
    }
    if probe == "writepath" {
        for ((c, s), h) in &by_comm_sys {
            write_hist(&mut txt, "lat_by_thread_us", Some(&format!("{c}, {s}")), h);
        }
    }
    txt.push('\n');
    let mut calls: Vec<(String, u64)> = by_comm_sys
        .iter()
        .map(|((c, s), h)| (format!("{c}, {s}"), h.count))
        .collect();
    calls.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let counter = if probe == "fsync" {
        "calls"
    } else {
        "op_by_thread"
    };
    for (k, n) in &calls {
        write_counter(&mut txt, counter, k, n);
    }
    for (s, h) in &by_sys {
        write_counter(&mut txt, "calls_by_syscall", s, h.count);
    }
    for (t, h) in &by_proc {
        write_counter(
            &mut txt,
            "calls_by_process",
            &format!("{t} {}", proc_name(*t)),
            h.count,
        );
    }
    txt.push('\n');
    lost_lines(
        &mut txt,
        lost,
        if probe == "fsync" {
            "fsync"
        } else {
            "writepath"
        },
    );
    write_file(&dir.join(format!("{probe}.txt")), txt.as_bytes())?;
    let json = SyscallFile {
        header,
        total: hist_json(&total),
        by_syscall: by_sys
            .iter()
            .map(|(k, h)| ((*k).to_string(), hist_json(h)))
            .collect(),
        by_thread: by_comm
            .iter()
            .map(|(k, h)| (k.clone(), hist_json(h)))
            .collect(),
        by_process: by_proc
            .iter()
            .map(|(t, h)| {
                (
                    *t,
                    ProcessHist {
                        tgid: *t,
                        process: proc_name(*t),
                        hist: hist_json(h),
                    },
                )
            })
            .collect(),
        by_thread_syscall: by_comm_sys
            .iter()
            .map(|((c, s), h)| (format!("{c}, {s}"), hist_json(h)))
            .collect(),
        rows: flat
            .into_iter()
            .map(|((tgid, thread, syscall), (count, ns))| SyscallRow {
                tgid,
                process: proc_name(tgid),
                thread,
                syscall: syscall.to_string(),
                count,
                sum_us: ns as f64 / 1000.0,
            })
            .collect(),
    };
    write_json(&dir.join(format!("{probe}.json")), &json)?;
    Ok(total.count)
}

fn write_bio(
    dir: &Path,
    raw: &RawPhase,
    header: Header<'_>,
    lost: &BTreeMap<String, u64>,
) -> Result<u64, ProbeError> {
    let mut total = Hist::default();
    let mut by_dev: BTreeMap<String, Hist> = BTreeMap::new();
    let mut by_rwbs: BTreeMap<String, Hist> = BTreeMap::new();
    let mut bytes_rwbs: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes_dev: BTreeMap<String, u64> = BTreeMap::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    for (k, a) in &raw.bio {
        let dev = names
            .entry(k.dev)
            .or_insert_with(|| dev_name(k.dev))
            .clone();
        let rwbs = comm_str(&k.rwbs);
        total.add(k.bucket, a.count, a.sum_ns);
        by_dev
            .entry(dev.clone())
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        by_rwbs
            .entry(rwbs.clone())
            .or_default()
            .add(k.bucket, a.count, a.sum_ns);
        *bytes_rwbs.entry(rwbs).or_default() += a.bytes;
        *bytes_dev.entry(dev).or_default() += a.bytes;
    }
    let mut txt = String::new();
    for (r, h) in &by_rwbs {
        write_hist(&mut txt, "bio_by_rwbs_us", Some(r), h);
    }
    for (d, h) in &by_dev {
        write_hist(&mut txt, "bio_by_dev_us", Some(d), h);
    }
    write_hist(&mut txt, "bio_latency_us", None, &total);
    txt.push('\n');
    for (r, b) in &bytes_rwbs {
        write_counter(&mut txt, "bytes_by_rwbs", r, b);
    }
    for (d, b) in &bytes_dev {
        write_counter(&mut txt, "bytes_by_dev", d, b);
    }
    txt.push('\n');
    lost_lines(&mut txt, lost, "bio");
    write_file(&dir.join("bio.txt"), txt.as_bytes())?;
    let json = BioFile {
        header,
        total: hist_json(&total),
        by_dev: by_dev
            .iter()
            .map(|(k, h)| (k.clone(), hist_json(h)))
            .collect(),
        by_rwbs: by_rwbs
            .iter()
            .map(|(k, h)| (k.clone(), hist_json(h)))
            .collect(),
        bytes_by_rwbs: bytes_rwbs,
        bytes_by_dev: bytes_dev,
    };
    write_json(&dir.join("bio.json"), &json)?;
    Ok(total.count)
}

/// A symbolized stack: user and kernel frames, leaf first, and whether it
/// ends in an unresolved or truncated frame.
struct Stacks {
    user: Vec<Frame>,
    kernel: Vec<Frame>,
    truncated: bool,
    /// Why the user walk ended, for unwound (dwarf) stacks.
    end: Option<StackEnd>,
}

fn resolve(raw: &RawPhase, sym: &mut Symbolizer, tgid: u32, ustack: i32, kstack: i32) -> Stacks {
    let mut truncated = false;
    let end = raw.ustack_ends.get(&ustack).copied();
    let user = if ustack >= 0 {
        match raw.stacks.get(&ustack) {
            Some(ips) => {
                let f = sym.user(raw.procs.get(&tgid).map(|p| p.as_ref()), ips);
                truncated = user_cut_short(&f, ips.len(), end);
                f
            }
            None => {
                truncated = true;
                Vec::new()
            }
        }
    } else {
        if ustack != EFAULT {
            truncated = true;
        }
        Vec::new()
    };
    let kernel = if kstack >= 0 {
        match raw.stacks.get(&kstack) {
            Some(ips) => {
                if ips.len() >= MAX_DEPTH {
                    truncated = true;
                }
                sym.kernel(ips)
            }
            None => {
                truncated = true;
                Vec::new()
            }
        }
    } else {
        if kstack != EFAULT {
            truncated = true;
        }
        Vec::new()
    };
    Stacks {
        user,
        kernel,
        truncated,
        end,
    }
}

/// Folded form, root first: prefix frames, user root..leaf, kernel root..leaf (`_[k]`).
fn fold(prefix: &[&str], s: &Stacks) -> String {
    let mut parts: Vec<String> = prefix.iter().map(|p| (*p).to_owned()).collect();
    parts.extend(s.user.iter().rev().map(|f| f.name.clone()));
    parts.extend(s.kernel.iter().rev().map(|f| format!("{}_[k]", f.name)));
    parts.join(";")
}

fn write_flame(
    dir: &Path,
    probe: &str,
    title: &str,
    count_name: &str,
    folded: &BTreeMap<String, u64>,
) -> Result<(), ProbeError> {
    let lines: Vec<String> = folded.iter().map(|(s, c)| format!("{s} {c}")).collect();
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_file(&dir.join(format!("{probe}.folded")), text.as_bytes())?;
    let svg_path = dir.join(format!("{probe}.svg"));
    if lines.is_empty() {
        let svg = format!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"60\"><text x=\"10\" y=\"30\">{title}: no samples in this window</text></svg>\n"
        );
        return write_file(&svg_path, svg.as_bytes());
    }
    let mut o = inferno::flamegraph::Options::default();
    o.title = title.to_owned();
    o.count_name = count_name.to_owned();
    o.deterministic = true;
    o.hash = true;
    o.colors =
        inferno::flamegraph::color::Palette::Multi(inferno::flamegraph::color::MultiPalette::Rust);
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| ProbeError::io("rendering flame graph", &svg_path, e))?;
    write_file(&svg_path, &svg)
}

fn write_oncpu(
    dir: &Path,
    raw: &RawPhase,
    header: Header<'_>,
    lost: &BTreeMap<String, u64>,
    sym: &mut Symbolizer,
    hz: u64,
) -> Result<(u64, f64, StackQuality), ProbeError> {
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_thread: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_proc: BTreeMap<u32, u64> = BTreeMap::new();
    let mut top: BTreeMap<String, u64> = BTreeMap::new();
    let mut stacks = Vec::new();
    let mut quality = QualityAcc::default();
    let (mut total, mut trunc) = (0u64, 0u64);
    for (k, n) in &raw.oncpu {
        let comm = comm_str(&k.comm);
        let s = resolve(raw, sym, k.tgid, k.ustack, k.kstack);
        quality.add(*n, k.ustack, &s.user, s.end);
        total += n;
        if s.truncated {
            trunc += n;
        }
        *folded.entry(fold(&[&comm], &s)).or_default() += n;
        *by_thread.entry(comm.clone()).or_default() += n;
        *by_proc.entry(k.tgid).or_default() += n;
        let leaf = s
            .kernel
            .first()
            .map(|f| format!("{}_[k]", f.name))
            .or_else(|| s.user.first().map(|f| f.name.clone()));
        *top.entry(leaf.unwrap_or_else(|| "[unknown]".into()))
            .or_default() += n;
        stacks.push(StackJson {
            count: *n,
            tgid: k.tgid,
            thread: comm,
            user: s.user.iter().map(|f| f.name.clone()).collect(),
            kernel: s.kernel.iter().map(|f| f.name.clone()).collect(),
            truncated: s.truncated,
            end: s.end.map(|e| e.name().to_string()),
            class: None,
            state: None,
        });
    }
    let share = if total == 0 {
        0.0
    } else {
        trunc as f64 / total as f64
    };
    let mut top: Vec<(String, u64)> = top.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.user.cmp(&b.user)));
    let mut txt = String::new();
    let quality = quality.finish(raw, &[stack_err::ONCPU_USER, stack_err::ONCPU_KERNEL], 0);
    let _ = writeln!(txt, "@samples: {total}");
    let _ = writeln!(txt, "@truncated_stack_share_pct: {:.2}", share * 100.0);
    write_quality(&mut txt, &quality);
    txt.push('\n');
    for (t, n) in &by_thread {
        write_counter(&mut txt, "samples_by_thread", t, n);
    }
    txt.push('\n');
    for (f, n) in top.iter().take(40) {
        write_counter(
            &mut txt,
            "top_frame",
            f,
            format!("{n} ({:.2}%)", pct(*n, total)),
        );
    }
    txt.push('\n');
    lost_lines(&mut txt, lost, "oncpu");
    write_file(&dir.join("oncpu.txt"), txt.as_bytes())?;
    write_flame(
        dir,
        "oncpu",
        &format!("on-CPU, phase {} ({hz} Hz)", raw.name),
        "samples",
        &folded,
    )?;
    let json = OncpuFile {
        header,
        hz,
        samples: total,
        truncated_stack_share: share,
        stack_quality: quality.clone(),
        samples_by_thread: by_thread,
        samples_by_process: by_proc,
        top_frames: top,
        stacks,
    };
    write_json(&dir.join("oncpu.json"), &json)?;
    Ok((total, share, quality))
}

/// The stack-quality figures in the text output.
fn write_quality(txt: &mut String, q: &StackQuality) {
    let _ = writeln!(
        txt,
        "@reached_thread_root_pct: {:.2}",
        q.reached_root_share * 100.0
    );
    for (m, v) in &q.method_share {
        write_counter(txt, "unwound_by_pct", m, format!("{:.2}", v * 100.0));
    }
    for (e, v) in &q.ends {
        write_counter(txt, "stack_end", e, v);
    }
    for (site, causes) in &q.lost_stacks {
        for (c, n) in causes.iter().filter(|(_, n)| **n > 0) {
            write_counter(txt, "lost_stacks", &format!("{site}, {c}"), n);
        }
    }
    if q.stack_map_fallbacks > 0 {
        let _ = writeln!(txt, "@stack_map_fallbacks: {}", q.stack_map_fallbacks);
    }
    if q.copies > 0 {
        let _ = writeln!(txt, "@stack_copies: {}", q.copies);
        let _ = writeln!(txt, "@stack_copies_cut_short: {}", q.copies_cut_short);
        let _ = writeln!(
            txt,
            "@stack_bytes_copied_per_s: {:.0}",
            q.bytes_copied_per_s
        );
    }
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

/// Why a thread was off CPU, from its state and kernel stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitClass {
    /// Block I/O or page/writeback wait (io_schedule, folio/page waits, journal).
    DiskIo,
    /// futex wait (locks, condvars, parking).
    Futex,
    /// Socket wait (tcp/udp/unix receive, connect, accept).
    Network,
    /// epoll/poll/select (idle event loops).
    Poll,
    /// nanosleep and timers.
    Sleep,
    /// Preempted while runnable (waiting for a CPU).
    Preempted,
    /// Anything else.
    Other,
}

impl WaitClass {
    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Self::DiskIo => "disk_io",
            Self::Futex => "futex",
            Self::Network => "network",
            Self::Poll => "poll",
            Self::Sleep => "sleep",
            Self::Preempted => "preempted",
            Self::Other => "other",
        }
    }
}

/// Classifies an off-CPU period: preemption from the state, otherwise the
/// first kernel frame (leaf first) that names a wait.
pub fn classify(state: u32, kernel_leaf_first: &[&str]) -> WaitClass {
    // prev_state 0 (TASK_RUNNING) or TASK_REPORT_MAX (0x100, preempted).
    if state == 0 || state & 0x100 != 0 {
        return WaitClass::Preempted;
    }
    const DISK: [&str; 14] = [
        "io_schedule",
        "folio_wait",
        "wait_on_page",
        "wait_on_buffer",
        "blk_mq_",
        "submit_bio_wait",
        "bio_wait",
        "jbd2",
        "filemap_fdatawait",
        "file_write_and_wait",
        "wait_for_completion_io",
        "__wait_on_bit",
        "writeback",
        "blkdev_",
    ];
    const NET: [&str; 10] = [
        "tcp_",
        "udp_",
        "sk_wait",
        "sock_",
        "inet_",
        "unix_stream",
        "unix_dgram",
        "skb_recv",
        "__skb_wait",
        "sk_stream_wait",
    ];
    const POLL: [&str; 4] = ["ep_poll", "do_epoll_wait", "do_select", "do_sys_poll"];
    const SLEEP: [&str; 4] = ["nanosleep", "hrtimer_nanosleep", "do_nanosleep", "msleep"];
    for f in kernel_leaf_first {
        if DISK.iter().any(|p| f.contains(p)) {
            return WaitClass::DiskIo;
        }
        if f.contains("futex") {
            return WaitClass::Futex;
        }
        if NET.iter().any(|p| f.contains(p)) {
            return WaitClass::Network;
        }
        if POLL.iter().any(|p| f.contains(p)) {
            return WaitClass::Poll;
        }
        if SLEEP.iter().any(|p| f.contains(p)) {
            return WaitClass::Sleep;
        }
    }
    WaitClass::Other
}

fn write_offcpu(
    dir: &Path,
    raw: &RawPhase,
    header: Header<'_>,
    lost: &BTreeMap<String, u64>,
    sym: &mut Symbolizer,
) -> Result<(u64, f64, StackQuality), ProbeError> {
    let mut quality = QualityAcc::default();
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_class: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_thread: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_proc: BTreeMap<u32, u64> = BTreeMap::new();
    let mut stacks = Vec::new();
    let (mut total_ns, mut trunc_ns, mut periods) = (0u64, 0u64, 0u64);
    for (k, a) in &raw.offcpu {
        let comm = comm_str(&k.comm);
        let s = resolve(raw, sym, k.tgid, k.ustack, k.kstack);
        let knames: Vec<&str> = s.kernel.iter().map(|f| f.name.as_str()).collect();
        let class = classify(k.state, &knames);
        quality.add(a.sum_ns / 1000, k.ustack, &s.user, s.end);
        total_ns += a.sum_ns;
        periods += a.count;
        if s.truncated {
            trunc_ns += a.sum_ns;
        }
        let us = a.sum_ns / 1000;
        *folded
            .entry(fold(&[&format!("[{}]", class.name()), &comm], &s))
            .or_default() += us;
        *by_class.entry(class.name()).or_default() += a.sum_ns;
        *by_thread.entry(comm.clone()).or_default() += a.sum_ns;
        *by_proc.entry(k.tgid).or_default() += a.sum_ns;
        stacks.push(StackJson {
            count: us,
            tgid: k.tgid,
            thread: comm,
            user: s.user.iter().map(|f| f.name.clone()).collect(),
            kernel: s.kernel.iter().map(|f| f.name.clone()).collect(),
            truncated: s.truncated,
            end: s.end.map(|e| e.name().to_string()),
            class: Some(class.name().to_string()),
            state: Some(k.state),
        });
    }
    folded.retain(|_, v| *v > 0);
    let share = if total_ns == 0 {
        0.0
    } else {
        trunc_ns as f64 / total_ns as f64
    };
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.user.cmp(&b.user)));
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut txt = String::new();
    let _ = writeln!(txt, "@offcpu_total_us: {}", total_ns / 1000);
    let quality = quality.finish(raw, &[stack_err::OFFCPU_USER, stack_err::OFFCPU_KERNEL], 1);
    let _ = writeln!(txt, "@offcpu_periods: {periods}");
    let _ = writeln!(txt, "@truncated_stack_share_pct: {:.2}", share * 100.0);
    write_quality(&mut txt, &quality);
    txt.push('\n');
    for (c, ns) in &by_class {
        write_counter(&mut txt, "offcpu_us_by_class", c, ns / 1000);
    }
    for (t, ns) in &by_thread {
        write_counter(&mut txt, "offcpu_us_by_thread", t, ns / 1000);
    }
    txt.push('\n');
    // Top stacks in bpftrace's stack-key layout.
    for s in stacks.iter().take(50) {
        let _ = writeln!(
            txt,
            "@offcpu_us[{}, {},",
            s.class.as_deref().unwrap_or("other"),
            s.thread
        );
        for f in &s.kernel {
            let _ = writeln!(txt, "        {f}");
        }
        for f in &s.user {
            let _ = writeln!(txt, "        {f}");
        }
        let _ = writeln!(txt, "]: {}", s.count);
    }
    txt.push('\n');
    lost_lines(&mut txt, lost, "offcpu");
    write_file(&dir.join("offcpu.txt"), txt.as_bytes())?;
    write_flame(
        dir,
        "offcpu",
        &format!("off-CPU time, phase {}", raw.name),
        "us",
        &folded,
    )?;
    let json = OffcpuFile {
        header,
        total_us: us(total_ns),
        periods,
        truncated_stack_share: share,
        stack_quality: quality.clone(),
        us_by_class: by_class
            .iter()
            .map(|(k, v)| ((*k).to_string(), us(*v)))
            .collect(),
        us_by_thread: by_thread.iter().map(|(k, v)| (k.clone(), us(*v))).collect(),
        us_by_process: by_proc.iter().map(|(k, v)| (*k, us(*v))).collect(),
        stacks,
    };
    write_json(&dir.join("offcpu.json"), &json)?;
    Ok((periods, share, quality))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_matches_t1_layout() {
        // T1's 01-fsync-latency.txt (../shared/data/t1), @by_comm_us[alloy].
        let mut h = Hist::default();
        h.add(12, 4, 0); // [2K, 4K)
        h.add(13, 2, 0); // [4K, 8K)
        let mut out = String::new();
        write_hist(&mut out, "by_comm_us", Some("alloy"), &h);
        let want = "@by_comm_us[alloy]: \n\
[2K, 4K)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\
[4K, 8K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n\n";
        assert_eq!(out, want);
    }

    #[test]
    fn small_buckets_and_gaps() {
        let mut h = Hist::default();
        h.add(0, 264343, 0);
        h.add(1, 310535, 0);
        h.add(3, 385269, 0);
        let mut out = String::new();
        write_hist(&mut out, "lat_us", None, &h);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "[0]               264343 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                 |"
        );
        assert_eq!(
            lines[3],
            "[2, 4)                 0 |                                                    |"
        );
        assert_eq!(
            lines[4],
            "[4, 8)            385269 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(bucket_label(11), "[1K, 2K)");
        assert_eq!(bucket_label(21), "[1M, 2M)");
        assert_eq!(size_label(512), "512");
    }

    #[test]
    fn wait_classes() {
        assert_eq!(
            classify(
                1,
                &["__schedule", "schedule", "futex_do_wait", "__futex_wait"]
            ),
            WaitClass::Futex
        );
        assert_eq!(
            classify(
                2,
                &[
                    "__schedule",
                    "schedule",
                    "io_schedule",
                    "folio_wait_bit_common"
                ]
            ),
            WaitClass::DiskIo
        );
        assert_eq!(
            classify(
                1,
                &[
                    "__schedule",
                    "schedule",
                    "schedule_timeout",
                    "wait_woken",
                    "sk_wait_data",
                    "tcp_recvmsg_locked"
                ]
            ),
            WaitClass::Network
        );
        assert_eq!(
            classify(
                1,
                &[
                    "__schedule",
                    "schedule",
                    "do_nanosleep",
                    "hrtimer_nanosleep"
                ]
            ),
            WaitClass::Sleep
        );
        assert_eq!(classify(0x100, &["futex_wait"]), WaitClass::Preempted);
        assert_eq!(classify(1, &["__schedule", "schedule"]), WaitClass::Other);
    }

    #[test]
    fn fold_is_root_first_with_kernel_suffix() {
        let s = Stacks {
            user: vec![
                Frame {
                    name: "leaf".into(),
                    resolved: true,
                },
                Frame {
                    name: "main".into(),
                    resolved: true,
                },
            ],
            kernel: vec![
                Frame {
                    name: "schedule".into(),
                    resolved: true,
                },
                Frame {
                    name: "do_syscall_64".into(),
                    resolved: true,
                },
            ],
            truncated: false,
            end: None,
        };
        assert_eq!(
            fold(&["app"], &s),
            "app;main;leaf;do_syscall_64_[k];schedule_[k]"
        );
    }
}
