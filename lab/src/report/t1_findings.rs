//! T1's four findings judged one by one against lab bundles: reproduced, refuted, or not
//! comparable (naming the missing evidence), each with the figures on both sides, the
//! reason, and the bundle it used. Shown by `qfc-lab findings t1 BUNDLE... [--baseline
//! T1DIR]` and in `qfc-lab report --baseline`. The thresholds are constants here and
//! documented in docs/FIGURES.md ("T1's findings").
//!
//! Each finding takes its evidence from the bundle whose target can show it: finding 1
//! prefers an aarch64 target (blake3's portable backend), finding 2 a container target
//! with system-wide write-path evidence (the runtime's copies of stdout), findings 3 and 4
//! a bundle whose probes were scoped to the node (system-wide evidence is split by the
//! node's thread census).

use std::collections::BTreeMap;

use super::evidence::{merge_phases, Bundle, PhaseEvidence};
use super::figures::blocks;
use super::folded::{
    classify_offcpu, classify_oncpu, inclusive_areas, is_disk_write_stall, is_rocksdb_thread,
    stack_role, sync_path, Area, Reason, Role, SyncPath,
};
use super::render::{num, Doc};

/// Finding 1: hashing counts as "the dominant on-CPU area" at or above this self share.
pub const HASHING_DOMINANT_PCT: f64 = 20.0;
/// Finding 1: the miner "explains" the hashing when at least this share of the hashing
/// CPU-seconds runs on plain-thread (miner-shaped) stacks.
pub const MINER_EXPLAINS_PCT: f64 = 90.0;
/// Finding 2: log formatting counts as "a large on-CPU area" at or above this self share.
pub const LOG_FORMATTING_LARGE_PCT: f64 = 5.0;
/// Finding 4: with no disk-write stall path at all (fsync, fdatasync, writeback, journal
/// commit, dirty throttling), other disk waits (page-cache reads) shorter than this many
/// milliseconds per second of the window count as none. Any disk-write stall refutes.
pub const DISK_WAIT_NONE_MS_PER_S: f64 = 1.0;

/// Why findings 3 and 4 do not take a system-wide bundle.
const SYSTEM_SCOPE: &str = "probes were system-wide: the node's syncs and waits cannot be told from other processes' threads of the same name; give a bundle scoped to the node";

/// A finding's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    Refuted,
    /// The evidence the finding needs is missing: what is missing.
    NotComparable(String),
}

impl Verdict {
    pub fn text(&self) -> String {
        match self {
            Verdict::Reproduced => "reproduced".into(),
            Verdict::Refuted => "refuted".into(),
            Verdict::NotComparable(why) => format!("not comparable: {why}"),
        }
    }
}

/// One row of the verdict table.
#[derive(Debug, Clone)]
pub struct FindingVerdict {
    pub number: u8,
    /// T1's finding, in a few words.
    pub claim: &'static str,
    pub verdict: Verdict,
    /// Figures on the lab's side.
    pub lab: Vec<String>,
    /// Figures on T1's side (empty without a baseline).
    pub t1: Vec<String>,
    pub reason: String,
    /// The bundle the verdict used (`None` when no bundle had the evidence).
    pub bundle: Option<String>,
}

/// The whole judgement: four verdicts and the sentence answering finding 1's diagnosis.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdicts: Vec<FindingVerdict>,
    /// Finding 1's diagnosis ("no NEON backend") answered in one sentence, when the
    /// evidence allows it.
    pub diagnosis: Option<String>,
}

/// One bundle, its phases merged into the whole run.
struct Source<'a> {
    label: String,
    b: &'a Bundle,
    run: PhaseEvidence,
}

impl Source<'_> {
    fn new(b: &Bundle) -> Source<'_> {
        let mut label = format!(
            "{} ({})",
            b.dir.display(),
            b.target_desc.as_deref().unwrap_or("target not recorded")
        );
        let mut run = merge_phases(&b.phases, &b.metrics_series);
        if b.facts.probe_scope.as_deref() == Some("system") && !b.facts.node_threads.is_empty() {
            // system-wide stacks: keep the node's thread names (other processes with the
            // same thread names stay in: said in the label)
            for s in [run.oncpu.as_mut(), run.offcpu.as_mut()]
                .into_iter()
                .flatten()
            {
                s.folded.stacks.retain(|st| {
                    st.thread
                        .as_ref()
                        .is_some_and(|t| b.facts.node_threads.contains(t))
                });
            }
            label.push_str(", system-wide stacks kept for the node's thread names");
        }
        Source { label, b, run }
    }
    fn target_kind(&self) -> &str {
        self.b.facts.target_kind.as_deref().unwrap_or("unknown")
    }
    fn system_scope(&self) -> bool {
        self.b.facts.probe_scope.as_deref() == Some("system")
    }
}

/// Picks the best-ranked source (lowest rank) whose evidence check passes; otherwise the
/// reasons every source failed.
fn pick<'s, 'a>(
    sources: &'s [Source<'a>],
    rank: impl Fn(&Source) -> u8,
    has: impl Fn(&Source) -> Result<(), String>,
) -> Result<&'s Source<'a>, String> {
    let mut order: Vec<&Source> = sources.iter().collect();
    order.sort_by_key(|s| rank(s));
    let mut why = Vec::new();
    for s in order {
        match has(s) {
            Ok(()) => return Ok(s),
            Err(e) => why.push(if sources.len() > 1 {
                format!("{e} in {}", s.b.dir.display())
            } else {
                e
            }),
        }
    }
    if why.is_empty() {
        why.push("no bundle given".into());
    }
    Err(why.join("; "))
}

fn pct(n: f64, d: f64) -> String {
    if d <= 0.0 {
        "n/a".into()
    } else {
        format!("{}%", num(100.0 * n / d))
    }
}

fn oncpu_present(p: &PhaseEvidence) -> Result<(), String> {
    match &p.oncpu {
        None => Err(format!(
            "no on-CPU stacks ({})",
            p.missing
                .get("oncpu")
                .map(String::as_str)
                .unwrap_or("absent")
        )),
        Some(s) if s.folded.total() == 0 => Err("no on-CPU samples".into()),
        Some(s) => {
            let total = s.folded.total();
            let blind: u64 = s
                .folded
                .stacks
                .iter()
                .filter(|st| unsymbolized(&st.frames))
                .map(|st| st.count)
                .sum();
            if 2 * blind > total {
                Err(format!(
                    "on-CPU stacks not symbolized ({} of samples have only unresolved `[binary]` user frames)",
                    pct(blind as f64, total as f64)
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// A stack whose user frames are all unresolved (`[qfc-refnode]`, `[libc.so.6]`,
/// `[unknown]`): the probe could not read the binary's symbols (e.g. inside a container).
fn unsymbolized(frames: &[String]) -> bool {
    let user: Vec<&String> = frames.iter().filter(|f| !f.ends_with("_[k]")).collect();
    !user.is_empty() && user.iter().all(|f| f.starts_with('[') && f.ends_with(']'))
}

/// On-CPU tallies of one evidence: self and inclusive samples per area, and hashing
/// samples per stack role.
struct OncpuTally {
    total: u64,
    self_by_area: BTreeMap<Area, u64>,
    incl_by_area: BTreeMap<Area, u64>,
    hashing_by_role: BTreeMap<Role, u64>,
    portable_leaf: u64,
    logfmt_sync_response: u64,
    hz: Option<f64>,
    window_s: Option<f64>,
}

impl OncpuTally {
    fn of(p: &PhaseEvidence) -> Option<OncpuTally> {
        let s = p.oncpu.as_ref()?;
        let mut t = OncpuTally {
            total: s.folded.total(),
            self_by_area: BTreeMap::new(),
            incl_by_area: BTreeMap::new(),
            hashing_by_role: BTreeMap::new(),
            portable_leaf: 0,
            logfmt_sync_response: 0,
            hz: s.sample_hz,
            window_s: s.window_s,
        };
        for st in &s.folded.stacks {
            *t.self_by_area
                .entry(classify_oncpu(&st.frames))
                .or_default() += st.count;
            let inc = inclusive_areas(&st.frames);
            for a in &inc {
                *t.incl_by_area.entry(*a).or_default() += st.count;
            }
            if inc.contains(&Area::Hashing) {
                *t.hashing_by_role.entry(stack_role(&st.frames)).or_default() += st.count;
                if st
                    .frames
                    .iter()
                    .any(|f| f.contains("blake3::portable::compress_in_place"))
                {
                    t.portable_leaf += st.count;
                }
            }
            if inc.contains(&Area::LogFormatting)
                && st.frames.iter().any(|f| f.contains("SyncResponse"))
            {
                t.logfmt_sync_response += st.count;
            }
        }
        Some(t)
    }
    fn self_pct(&self, a: Area) -> f64 {
        100.0 * *self.self_by_area.get(&a).unwrap_or(&0) as f64 / self.total.max(1) as f64
    }
    fn incl_pct(&self, a: Area) -> f64 {
        100.0 * *self.incl_by_area.get(&a).unwrap_or(&0) as f64 / self.total.max(1) as f64
    }
    fn hashing(&self) -> u64 {
        *self.incl_by_area.get(&Area::Hashing).unwrap_or(&0)
    }
    fn role(&self, r: Role) -> u64 {
        *self.hashing_by_role.get(&r).unwrap_or(&0)
    }
    /// Samples to CPU-seconds per second of the window.
    fn cpu_s_per_s(&self, samples: u64) -> Option<f64> {
        match (self.hz, self.window_s) {
            (Some(hz), Some(w)) if hz > 0.0 && w > 0.0 => Some(samples as f64 / hz / w),
            _ => None,
        }
    }
    fn cpu(&self, samples: u64) -> String {
        self.cpu_s_per_s(samples)
            .map(|v| format!("{} CPU-s/s", num(v)))
            .unwrap_or_else(|| format!("{samples} samples"))
    }
}

fn finding1(sources: &[Source], t1: Option<&PhaseEvidence>) -> (FindingVerdict, Option<String>) {
    let mut v = FindingVerdict {
        number: 1,
        claim: "47% of on-CPU in blake3 portable compress_in_place, read as \"no NEON backend\"",
        verdict: Verdict::Refuted,
        lab: Vec::new(),
        t1: Vec::new(),
        reason: String::new(),
        bundle: None,
    };
    let t1t = t1.and_then(OncpuTally::of);
    if let Some(t) = &t1t {
        v.t1 = vec![
            format!(
                "hashing {}% self, {}% inclusive",
                num(t.self_pct(Area::Hashing)),
                num(t.incl_pct(Area::Hashing))
            ),
            format!(
                "hashing on plain threads (miner shape) {} of it, on tokio workers {}",
                pct(t.role(Role::PlainThread) as f64, t.hashing() as f64),
                pct(t.role(Role::Tokio) as f64, t.hashing() as f64)
            ),
            format!(
                "hashing {} (miner shape {})",
                t.cpu(t.hashing()),
                t.cpu(t.role(Role::PlainThread))
            ),
        ];
    }
    let src = pick(
        sources,
        |s| u8::from(s.b.facts.arch.as_deref() != Some("aarch64")),
        |s| oncpu_present(&s.run),
    );
    let s = match src {
        Ok(s) => s,
        Err(e) => {
            v.verdict = Verdict::NotComparable(e);
            v.reason = "finding 1 needs on-CPU stacks".into();
            return (v, None);
        }
    };
    v.bundle = Some(s.label.clone());
    let t = OncpuTally::of(&s.run).expect("checked by pick");
    let hashing_self = t.self_pct(Area::Hashing);
    let miner = t.role(Role::PlainThread);
    let block = t.role(Role::Tokio);
    let h = t.hashing();
    v.lab = vec![
        format!(
            "hashing {}% self, {}% inclusive",
            num(hashing_self),
            num(t.incl_pct(Area::Hashing))
        ),
        format!(
            "hashing {}: miner shape {} ({}), block hashing on tokio workers {} ({})",
            t.cpu(h),
            t.cpu(miner),
            pct(miner as f64, h as f64),
            t.cpu(block),
            pct(block as f64, h as f64)
        ),
        format!(
            "`blake3::portable::compress_in_place` in {} of hashing samples",
            pct(t.portable_leaf as f64, h as f64)
        ),
        format!(
            "miner {}",
            match s.b.facts.node_mine {
                Some(true) => "on",
                Some(false) => "off",
                None => "not recorded",
            }
        ),
    ];
    let arch = s.b.facts.arch.clone().unwrap_or_else(|| "unknown".into());
    let arch_note = if arch == "aarch64" {
        String::new()
    } else {
        format!("; the target is {arch}, where blake3 has SIMD backends: the portable-backend part needs an aarch64 bundle")
    };
    if hashing_self >= HASHING_DOMINANT_PCT {
        v.verdict = Verdict::Reproduced;
        v.reason = format!(
            "hashing is {}% of on-CPU samples (self), at or above {}%{arch_note}",
            num(hashing_self),
            num(HASHING_DOMINANT_PCT)
        );
    } else {
        v.verdict = Verdict::Refuted;
        v.reason = format!(
            "hashing is {}% of on-CPU samples (self), below {}%{arch_note}",
            num(hashing_self),
            num(HASHING_DOMINANT_PCT)
        );
    }
    let t1_shape = t1t
        .as_ref()
        .filter(|t| t.hashing() > 0)
        .map(|t| {
            format!(
                "; T1's own hashing stacks have the miner's shape in {} of samples",
                pct(t.role(Role::PlainThread) as f64, t.hashing() as f64)
            )
        })
        .unwrap_or_default();
    let diagnosis = if h == 0 {
        Some(format!(
            "Finding 1's diagnosis: this run has no hashing on CPU at all (miner {}), so it cannot tell miner hashing from block hashing{t1_shape}.",
            if s.b.facts.node_mine == Some(false) { "off" } else { "state unknown" }
        ))
    } else if 100.0 * miner as f64 / h as f64 >= MINER_EXPLAINS_PCT {
        Some(format!(
            "Finding 1's diagnosis does not hold: {} of the hashing CPU ({} of {}) runs on stacks shaped like the PoW miner (thread_start without tokio frames) and {} on tokio workers (block hashing), so the blake3 share is the miner's work (`--mine`), not a missing NEON backend{t1_shape}.",
            pct(miner as f64, h as f64),
            t.cpu(miner),
            t.cpu(h),
            t.cpu(block),
        ))
    } else {
        Some(format!(
            "Finding 1's diagnosis is not settled by the miner: only {} of the hashing CPU ({} of {}) runs on miner-shaped stacks, {} on tokio workers (block hashing){t1_shape}.",
            pct(miner as f64, h as f64),
            t.cpu(miner),
            t.cpu(h),
            t.cpu(block),
        ))
    };
    (v, diagnosis)
}

/// Writes by the container runtime (containerd-shim*, dockerd) and by everyone else.
fn runtime_writes(p: &PhaseEvidence) -> Option<(u64, u64, Vec<String>)> {
    let w = p.writepath.as_ref()?;
    let mut runtime: BTreeMap<String, u64> = BTreeMap::new();
    let mut others = 0u64;
    for ((comm, sc), n) in &w.ops {
        if !matches!(
            sc.as_str(),
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2"
        ) {
            continue;
        }
        if comm.starts_with("containerd") || comm == "dockerd" {
            *runtime.entry(comm.clone()).or_default() += n;
        } else {
            others += n;
        }
    }
    let parts = runtime.iter().map(|(c, n)| format!("{c} {n}")).collect();
    Some((runtime.values().sum(), others, parts))
}

fn finding2(sources: &[Source], t1: Option<&PhaseEvidence>) -> FindingVerdict {
    let mut v = FindingVerdict {
        number: 2,
        claim: "17% of on-CPU formatting SyncResponse log lines at INFO; every stdout write copied by containerd-shim and dockerd",
        verdict: Verdict::Refuted,
        lab: Vec::new(),
        t1: Vec::new(),
        reason: String::new(),
        bundle: None,
    };
    if let Some(p) = t1 {
        if let Some(t) = OncpuTally::of(p) {
            v.t1.push(format!(
                "log formatting {}% self, {}% inclusive; {} of it formats SyncResponse",
                num(t.self_pct(Area::LogFormatting)),
                num(t.incl_pct(Area::LogFormatting)),
                pct(
                    t.logfmt_sync_response as f64,
                    *t.incl_by_area.get(&Area::LogFormatting).unwrap_or(&0) as f64
                )
            ));
        }
        if let Some((rt, others, parts)) = runtime_writes(p) {
            v.t1.push(format!(
                "container runtime writes {rt} ({}) next to {others} by other threads (system-wide)",
                parts.join(", ")
            ));
        }
    }
    let runtime_visible = |s: &Source| {
        s.target_kind() == "container" && s.system_scope() && s.run.writepath.is_some()
    };
    // the log formatting share: from a bundle whose on-CPU stacks are symbolized (a
    // container's often are not), scoped to the node first
    let fmt_src = pick(
        sources,
        |s| u8::from(s.system_scope()),
        |s| oncpu_present(&s.run),
    );
    let s = match fmt_src {
        Ok(s) => s,
        Err(e) => {
            v.verdict = Verdict::NotComparable(e);
            v.reason = "finding 2 needs symbolized on-CPU stacks (log formatting) and, for the runtime's copies, system-wide write-path evidence from a container target".into();
            return v;
        }
    };
    let t = OncpuTally::of(&s.run).expect("checked by pick");
    let lf = t.self_pct(Area::LogFormatting);
    let lf_incl = *t.incl_by_area.get(&Area::LogFormatting).unwrap_or(&0);
    v.lab.push(format!(
        "log formatting {}% self, {}% inclusive; {} of it formats SyncResponse; node log level {}",
        num(lf),
        num(t.incl_pct(Area::LogFormatting)),
        pct(t.logfmt_sync_response as f64, lf_incl as f64),
        s.b.facts
            .node_log_level
            .as_deref()
            .unwrap_or("not recorded")
    ));
    let mut used = vec![s.label.clone()];
    let rt_src = pick(
        sources,
        |_| 0,
        |s| {
            if runtime_visible(s) {
                Ok(())
            } else {
                Err(format!(
                    "no system-wide write-path evidence from a container target (a {} target, probes scoped to {})",
                    s.target_kind(),
                    s.b.facts.probe_scope.as_deref().unwrap_or("?")
                ))
            }
        },
    );
    let rt = match &rt_src {
        Ok(r) => {
            if r.b.dir != s.b.dir {
                used.push(r.label.clone());
            }
            runtime_writes(&r.run)
        }
        Err(_) => None,
    };
    v.bundle = Some(used.join(" + "));
    if let Some((n, others, parts)) = &rt {
        v.lab.push(format!(
            "container runtime writes {n}{} next to {others} by other threads (system-wide)",
            if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            }
        ));
    }
    if lf < LOG_FORMATTING_LARGE_PCT {
        v.verdict = Verdict::Refuted;
        v.reason = format!(
            "log formatting is {}% of on-CPU samples (self), below {}%",
            num(lf),
            num(LOG_FORMATTING_LARGE_PCT)
        );
        return v;
    }
    match (rt, rt_src) {
        (Some((n, _, _)), _) if n > 0 => {
            v.verdict = Verdict::Reproduced;
            v.reason = format!(
                "log formatting is {}% of on-CPU samples (self, at or above {}%) and the container runtime wrote the node's output again ({n} writes)",
                num(lf),
                num(LOG_FORMATTING_LARGE_PCT)
            );
        }
        (Some(_), _) => {
            v.verdict = Verdict::Refuted;
            v.reason = "log formatting is large, but the container runtime made no write in a system-wide capture of a container target: the node's stdout is not copied".into();
        }
        (None, Err(e)) => {
            v.verdict = Verdict::NotComparable(format!(
                "{e}: the runtime's copies of stdout cannot be seen"
            ));
            v.reason = format!(
                "log formatting is {}% of on-CPU samples (self), at or above {}%",
                num(lf),
                num(LOG_FORMATTING_LARGE_PCT)
            );
        }
        (None, Ok(_)) => {
            v.verdict = Verdict::NotComparable("no write-path evidence".into());
            v.reason = "finding 2 needs the runtime's writes".into();
        }
    }
    v
}

/// The node's threads in a source: all comms when the probes were scoped to the node;
/// the thread census otherwise.
fn node_comm(s: &Source, comm: &str) -> bool {
    if !s.system_scope() {
        return true;
    }
    s.b.facts.node_threads.contains(comm)
}

/// Off-CPU time (µs) in sync stacks by path (block commit, background, unknown).
fn sync_stacks(p: &PhaseEvidence) -> Option<BTreeMap<SyncPath, u64>> {
    let o = p.offcpu.as_ref()?;
    let mut m = BTreeMap::new();
    for st in &o.folded.stacks {
        let has_sync = st.frames.iter().any(|f| {
            let f = f.trim_end_matches("_[k]");
            f.contains("fsync") || f.contains("fdatasync")
        });
        if has_sync {
            *m.entry(sync_path(&st.frames)).or_default() += st.count;
        }
    }
    Some(m)
}

fn finding3(sources: &[Source], t1: Option<&PhaseEvidence>) -> FindingVerdict {
    let mut v = FindingVerdict {
        number: 3,
        claim: "no fsync or fdatasync from the node's block commits (before T3.2)",
        verdict: Verdict::Refuted,
        lab: Vec::new(),
        t1: Vec::new(),
        reason: String::new(),
        bundle: None,
    };
    if let Some(f) = t1.and_then(|p| p.fsync.as_ref()) {
        let node: u64 = f
            .calls_by_comm
            .iter()
            .filter(|(c, _)| {
                c.starts_with("qfc-node") || c.starts_with("tokio") || is_rocksdb_thread(c)
            })
            .map(|(_, n)| n)
            .sum();
        let all: Vec<String> = f
            .calls_by_comm
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        v.t1.push(format!(
            "{node} fsync/fdatasync by the node's threads in {} s (system-wide: {})",
            f.window_s.map(num).unwrap_or_else(|| "?".into()),
            if all.is_empty() {
                "none".into()
            } else {
                all.join(", ")
            }
        ));
        v.t1.push("no block count (T1 recorded no metrics); no stacks for the syncs".into());
    }
    let src = pick(
        sources,
        |s| u8::from(s.system_scope()),
        |s| {
            if s.system_scope() {
                return Err(SYSTEM_SCOPE.into());
            }
            if s.run.fsync.is_none() {
                return Err(format!(
                    "no fsync evidence ({})",
                    s.b.phases
                        .iter()
                        .find_map(|p| p.missing.get("fsync").cloned())
                        .unwrap_or_else(|| "absent".into())
                ));
            }
            match blocks(&s.run) {
                Ok(b) if b > 0.0 => {}
                Ok(_) => return Err("the node produced no block".into()),
                Err(e) => return Err(format!("no block count ({e})")),
            }
            if s.system_scope() && s.b.facts.node_threads.is_empty() {
                return Err("system-wide fsync evidence without the node's thread census (context.json threads_at_ready)".into());
            }
            Ok(())
        },
    );
    let s = match src {
        Ok(s) => s,
        Err(e) => {
            v.verdict = Verdict::NotComparable(e);
            v.reason = "finding 3 needs fsync calls by thread and the node's block count".into();
            return v;
        }
    };
    v.bundle = Some(s.label.clone());
    let f = s.run.fsync.as_ref().expect("checked by pick");
    let nblocks = blocks(&s.run).expect("checked by pick");
    let (mut commit, mut bg, mut other) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (c, n) in &f.calls_by_comm {
        if *n == 0 {
            continue;
        }
        if !node_comm(s, c) {
            other.insert(c.clone(), *n);
        } else if is_rocksdb_thread(c) {
            bg.insert(c.clone(), *n);
        } else {
            commit.insert(c.clone(), *n);
        }
    }
    let sum = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                m.iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let nc = sum(&commit);
    v.lab.push(format!(
        "{} blocks; fsync/fdatasync on block-commit threads {nc}{} = {} per block",
        num(nblocks),
        list(&commit),
        num(nc as f64 / nblocks)
    ));
    v.lab.push(format!(
        "RocksDB background threads (flush, SyncClosedLogs, compaction) {}{}",
        sum(&bg),
        list(&bg)
    ));
    if s.system_scope() {
        v.lab.push(format!(
            "other processes (system-wide capture) {}{}",
            sum(&other),
            list(&other)
        ));
    }
    if let Some(m) = sync_stacks(&s.run) {
        let g = |p: SyncPath| num(*m.get(&p).unwrap_or(&0) as f64 / 1e3);
        v.lab.push(format!(
            "off-CPU in sync stacks: block-commit path {} ms, background flush {} ms, unattributed (no user frames) {} ms",
            g(SyncPath::BlockCommit),
            g(SyncPath::Background),
            g(SyncPath::Unknown)
        ));
    }
    if nc == 0 {
        v.verdict = Verdict::Reproduced;
        v.reason = format!(
            "no fsync or fdatasync on the node's block-commit threads over {} blocks; RocksDB's own background syncs ({}) are not block commits",
            num(nblocks),
            sum(&bg)
        );
    } else {
        v.verdict = Verdict::Refuted;
        v.reason = format!(
            "the node's block-commit threads synced {nc} times over {} blocks ({} per block){}",
            num(nblocks),
            num(nc as f64 / nblocks),
            match s.b.facts.synced_commit {
                Some(true) => ": synced commit is on (after T3.2)",
                _ => "",
            }
        );
    }
    v
}

/// Off-CPU microseconds by wait reason, the total, and disk-wait microseconds by thread.
type WaitTally = (BTreeMap<Reason, u64>, u64, BTreeMap<String, u64>);

/// Off-CPU time by wait reason (the first rule that matches), the total, and the
/// disk waits (by reason or on a disk-write stall path) by thread.
fn wait_tally(p: &PhaseEvidence) -> Option<WaitTally> {
    let o = p.offcpu.as_ref()?;
    let mut m = BTreeMap::new();
    let mut disk_threads = BTreeMap::new();
    for st in &o.folded.stacks {
        let r = classify_offcpu(&st.frames);
        *m.entry(r).or_default() += st.count;
        if r == Reason::Disk || is_disk_write_stall(&st.frames) {
            *disk_threads
                .entry(st.thread.clone().unwrap_or_else(|| "?".into()))
                .or_default() += st.count;
        }
    }
    Some((m, o.folded.total(), disk_threads))
}

/// `futex 1.2 s (40%), network ...` in the order of [`Reason::ALL`].
fn fmt_waits(m: &BTreeMap<Reason, u64>, total: u64) -> String {
    Reason::ALL
        .iter()
        .filter_map(|r| m.get(r).map(|n| (r, n)))
        .map(|(r, n)| {
            format!(
                "{} {} s ({})",
                r.name(),
                num(*n as f64 / 1e6),
                pct(*n as f64, total as f64)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn finding4(sources: &[Source], t1: Option<&PhaseEvidence>) -> FindingVerdict {
    let mut v = FindingVerdict {
        number: 4,
        claim: "off-CPU only in futex and TCP waits, no io_schedule",
        verdict: Verdict::Refuted,
        lab: Vec::new(),
        t1: Vec::new(),
        reason: String::new(),
        bundle: None,
    };
    if let Some((m, total, _)) = t1.and_then(wait_tally) {
        v.t1.push(format!(
            "by thread name `qfc-node`: {}",
            fmt_waits(&m, total)
        ));
    }
    let src = pick(
        sources,
        |s| u8::from(s.system_scope()),
        |s| match &s.run.offcpu {
            _ if s.system_scope() => Err(SYSTEM_SCOPE.into()),
            None => Err(format!(
                "no off-CPU stacks ({})",
                s.b.phases
                    .iter()
                    .find_map(|p| p.missing.get("offcpu").cloned())
                    .unwrap_or_else(|| "absent".into())
            )),
            Some(o) if o.folded.total() == 0 => Err("no off-CPU time recorded".into()),
            Some(o) if o.window_s.is_none_or(|w| w <= 0.0) => {
                Err("the off-CPU window length is unknown".into())
            }
            Some(_) => Ok(()),
        },
    );
    let s = match src {
        Ok(s) => s,
        Err(e) => {
            v.verdict = Verdict::NotComparable(e);
            v.reason = "finding 4 needs off-CPU stacks over a known window".into();
            return v;
        }
    };
    v.bundle = Some(s.label.clone());
    let (m, total, disk_threads) = wait_tally(&s.run).expect("checked by pick");
    let window = s
        .run
        .offcpu
        .as_ref()
        .and_then(|o| o.window_s)
        .expect("checked by pick");
    let threads: std::collections::BTreeSet<&str> = s
        .run
        .offcpu
        .iter()
        .flat_map(|o| o.folded.stacks.iter())
        .filter_map(|st| st.thread.as_deref())
        .collect();
    let scope = if s.system_scope() {
        "every process (system-wide)".to_string()
    } else {
        format!(
            "the node's process ({} thread names: {})",
            threads.len(),
            threads
                .iter()
                .take(6)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    v.lab.push(format!("by {scope}: {}", fmt_waits(&m, total)));
    let disk_us = *m.get(&Reason::Disk).unwrap_or(&0);
    let disk_ms_per_s = disk_us as f64 / 1e3 / window;
    let who = disk_threads
        .iter()
        .map(|(t, n)| format!("{t} {} ms", num(*n as f64 / 1e3)))
        .collect::<Vec<_>>()
        .join(", ");
    v.lab.push(format!(
        "disk waits {} ms per second of the window{}",
        num(disk_ms_per_s),
        if who.is_empty() {
            String::new()
        } else {
            format!(" ({who})")
        }
    ));
    let stall_us: u64 = s
        .run
        .offcpu
        .iter()
        .flat_map(|o| o.folded.stacks.iter())
        .filter(|st| is_disk_write_stall(&st.frames))
        .map(|st| st.count)
        .sum();
    v.lab.push(format!(
        "disk-write stall path (fsync, fdatasync, writeback, journal) {} ms",
        num(stall_us as f64 / 1e3)
    ));
    let method = "T1 filtered off-CPU by the thread name `qfc-node` (missing tokio-rt-worker, where a synced block commit waits); the lab filters by process";
    if stall_us == 0 && disk_ms_per_s < DISK_WAIT_NONE_MS_PER_S {
        v.verdict = Verdict::Reproduced;
        v.reason = format!(
            "no disk-write stall path, and disk waits are {} ms per second, below {} ms/s: no io_schedule to speak of. {method}",
            num(disk_ms_per_s),
            num(DISK_WAIT_NONE_MS_PER_S)
        );
    } else {
        v.verdict = Verdict::Refuted;
        v.reason = format!(
            "the node waited on the disk{}: {} ms in disk-write stall paths, {} ms per second in all disk waits{}. {method}",
            if who.is_empty() { String::new() } else { format!(" ({who})") },
            num(stall_us as f64 / 1e3),
            num(disk_ms_per_s),
            if stall_us == 0 {
                format!(" (at or above {} ms/s)", num(DISK_WAIT_NONE_MS_PER_S))
            } else {
                String::new()
            }
        );
    }
    v
}

/// Judges T1's four findings against the given bundles (and shows T1's own figures with a
/// baseline).
pub fn judge(bundles: &[Bundle], t1: Option<&PhaseEvidence>) -> Judgement {
    let sources: Vec<Source> = bundles.iter().map(Source::new).collect();
    let (f1, diagnosis) = finding1(&sources, t1);
    Judgement {
        verdicts: vec![
            f1,
            finding2(&sources, t1),
            finding3(&sources, t1),
            finding4(&sources, t1),
        ],
        diagnosis,
    }
}

/// The verdict table and the answer to finding 1's diagnosis, as a report section.
pub fn section(doc: &mut Doc, j: &Judgement, with_baseline: bool) {
    doc.h(1, "T1's findings, one by one");
    if !with_baseline {
        doc.p("No T1 directory given (`--baseline`): the T1 column is empty; the verdicts judge T1's findings as stated in ../shared/notes/t1-capture.md.");
    }
    let rows = j
        .verdicts
        .iter()
        .map(|v| {
            vec![
                format!("{}. {}", v.number, v.claim),
                match &v.verdict {
                    Verdict::Reproduced => "**reproduced**".into(),
                    Verdict::Refuted => "**refuted**".into(),
                    other => other.text(),
                },
                v.lab.join("; "),
                if v.t1.is_empty() {
                    "—".into()
                } else {
                    v.t1.join("; ")
                },
                v.reason.clone(),
                v.bundle.clone().unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    doc.table(
        &[
            "T1 finding",
            "verdict",
            "lab",
            "T1",
            "reason",
            "bundle used",
        ],
        rows,
    );
    if let Some(d) = &j.diagnosis {
        doc.p(d.clone());
    }
    doc.p(format!(
        "Thresholds: hashing dominant at {}% self share or more; the miner explains the hashing at {}% of its CPU-seconds or more; log formatting large at {}% or more; no disk wait when there is no disk-write stall path and other disk waits stay below {} ms per second. Areas: self = leaf-most recognised frame, inclusive = any frame (docs/FIGURES.md).",
        num(HASHING_DOMINANT_PCT),
        num(MINER_EXPLAINS_PCT),
        num(LOG_FORMATTING_LARGE_PCT),
        num(DISK_WAIT_NONE_MS_PER_S)
    ));
}

/// `qfc-lab findings t1`: the verdict table over bundles as Markdown.
pub fn render(bundles: &[Bundle], t1: Option<&PhaseEvidence>) -> (Judgement, String) {
    let j = judge(bundles, t1);
    let mut doc = Doc {
        title: "T1's findings against the lab".into(),
        blocks: Vec::new(),
    };
    doc.list(
        bundles
            .iter()
            .map(|b| {
                format!(
                    "bundle {}: scenario {}, target {}, probes scoped to {}, miner {}",
                    b.dir.display(),
                    if b.scenario.name.is_empty() {
                        "?"
                    } else {
                        &b.scenario.name
                    },
                    b.target_desc.as_deref().unwrap_or("not recorded"),
                    b.facts.probe_scope.as_deref().unwrap_or("?"),
                    match b.facts.node_mine {
                        Some(true) => "on",
                        Some(false) => "off",
                        None => "?",
                    }
                )
            })
            .collect(),
    );
    section(&mut doc, &j, t1.is_some());
    (j, doc.to_markdown())
}
