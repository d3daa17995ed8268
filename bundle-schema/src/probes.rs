//! The probes' JSON files: `probes/session.json` (the session and one entry
//! per phase window: lost events, cut stacks, stack quality, the probes' own
//! cost), `probes/<phase>/{fsync,writepath,bio}.json` (log2 latency
//! histograms by syscall, thread, process and request type) and
//! `probes/<phase>/{oncpu,offcpu}.json` (stacks and their shares). Written by the
//! `probes` crate through these types, read by the report through the same.
//!
//! The probe session's options and its scope are the `probes` crate's own
//! configuration types: type parameters here (`probes::SessionOptions`,
//! `&probes::Scope` when written), any JSON value when read.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One log2 bucket, `[lo, hi)` in µs; the first is `[0, 1)`, bpftrace's `[0]`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Bucket {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

/// A log2 latency histogram in µs with its call count and summed latency
/// (bpftrace's `hist()` plus `count()` and `sum()`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hist {
    /// Events.
    pub count: u64,
    /// Summed latency, µs.
    pub sum_us: f64,
    /// The non-empty buckets, in order.
    pub buckets: Vec<Bucket>,
}

/// The fields every per-phase probe file opens with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Header<Scope = serde_json::Value> {
    /// `fsync`, `writepath`, `bio`.
    pub probe: String,
    /// The phase window.
    pub phase: String,
    /// Window start and end, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// What the session watched.
    pub scope: Scope,
    /// Lost events by kind over the window.
    pub lost_events: BTreeMap<String, u64>,
}

/// One (process, thread, syscall) of a syscall probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyscallRow {
    pub tgid: u32,
    pub process: String,
    pub thread: String,
    pub syscall: String,
    pub count: u64,
    pub sum_us: f64,
}

/// A process's histogram, with its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessHist {
    pub tgid: u32,
    pub process: String,
    pub hist: Hist,
}

/// `probes/<phase>/fsync.json` and `probes/<phase>/writepath.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyscallFile<Scope = serde_json::Value> {
    #[serde(flatten)]
    pub header: Header<Scope>,
    /// Every call of the probe's syscalls.
    pub total: Hist,
    /// By syscall name.
    pub by_syscall: BTreeMap<String, Hist>,
    /// By thread name (comm).
    pub by_thread: BTreeMap<String, Hist>,
    /// By process id.
    pub by_process: BTreeMap<u32, ProcessHist>,
    /// By `"<thread>, <syscall>"`.
    pub by_thread_syscall: BTreeMap<String, Hist>,
    /// Flat rows, for tables.
    pub rows: Vec<SyscallRow>,
}

/// `probes/<phase>/bio.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BioFile<Scope = serde_json::Value> {
    #[serde(flatten)]
    pub header: Header<Scope>,
    /// Every block request, issue to completion.
    pub total: Hist,
    /// By device name.
    pub by_dev: BTreeMap<String, Hist>,
    /// By request type (`rwbs`: `W`, `WS`, `R`, `FF`, ...).
    pub by_rwbs: BTreeMap<String, Hist>,
    pub bytes_by_rwbs: BTreeMap<String, u64>,
    pub bytes_by_dev: BTreeMap<String, u64>,
}

/// Whether the kernel's BPF statistics ran for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StatsState {
    /// Enabled by this session.
    Enabled {
        /// How: `BPF_ENABLE_STATS` or the sysctl.
        how: String,
    },
    /// The kernel refused; the cost of the programs is not measured.
    Refused {
        /// The kernel's answer and what to do.
        reason: String,
    },
}

/// Run count and time of one program (or of all programs of one probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunCost {
    /// Program runs in the window (every hit of its attach points, before
    /// any scope filter).
    pub runs: u64,
    /// Summed run time in ns.
    pub run_time_ns: u64,
    /// `run_time_ns / runs`; absent when the program did not run.
    pub ns_per_event: Option<f64>,
    /// `run_time_ns` in seconds (CPU time spent in the program).
    pub cpu_s: f64,
}

impl RunCost {
    /// The derived fields from the two counts.
    pub fn new(runs: u64, run_time_ns: u64) -> Self {
        Self {
            runs,
            run_time_ns,
            ns_per_event: (runs > 0).then(|| run_time_ns as f64 / runs as f64),
            cpu_s: run_time_ns as f64 / 1e9,
        }
    }

    /// Adds another window's (or program's) counts.
    pub fn add(&mut self, o: &RunCost) {
        *self = Self::new(self.runs + o.runs, self.run_time_ns + o.run_time_ns);
    }
}

/// The probes' cost over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WindowCost {
    /// Whether the BPF statistics ran; when refused, `programs` and
    /// `probes` are empty and `overhead_share` is absent.
    pub bpf_stats: StatsState,
    /// Per program (name in the object).
    pub programs: BTreeMap<String, RunCost>,
    /// Per probe (sum of its programs; `ns_per_event` is per program run).
    pub probes: BTreeMap<String, RunCost>,
    /// BPF run time of every program, in seconds.
    pub bpf_cpu_s: Option<f64>,
    /// CPU time of the probe process itself (draining, symbolization,
    /// rendering), in seconds.
    pub probe_process_cpu_s: f64,
    /// CPU time of the target over the window, in seconds.
    pub target_cpu_s: Option<f64>,
    /// What `target_cpu_s` covers.
    pub target: String,
    /// `(bpf_cpu_s + probe_process_cpu_s) / target_cpu_s`: an upper bound.
    /// Absent when a term is unknown or the target used no CPU.
    pub overhead_share: Option<f64>,
}

/// The stack-quality figures of one stack probe in one window (issue 12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StackQuality {
    /// Weight of the stacks with a user part (samples, or µs off-CPU).
    pub weight: u64,
    /// Share of that weight whose user stack reaches a thread root.
    pub reached_root_share: f64,
    /// Share of that weight by unwinding method (`dwarf`, `fp`, and
    /// `dwarf_then_fp` for a copy whose walk went on along frame pointers).
    pub method_share: BTreeMap<String, f64>,
    /// Weight by why the walk ended (`root`, `copy_size`, `no_unwind_info`,
    /// `anonymous_mapping`, ..., `frame_pointers` for fp walks,
    /// `copy_then_frame_pointers` for joined ones).
    pub ends: BTreeMap<String, u64>,
    /// Lost stacks by site (`oncpu_user`, ...) and cause (`EEXIST`, ...).
    pub lost_stacks: BTreeMap<String, BTreeMap<String, u64>>,
    /// User stacks copied (dwarf/auto).
    pub copies: u64,
    /// Copies whose walk ran past the copy size.
    pub copies_cut_short: u64,
    /// Stacks the stack map refused (a hash collision, `EEXIST`, or a full
    /// map, `ENOMEM`) that were kept: walked by frame pointers and sent
    /// inline instead, so not lost.
    #[serde(default)]
    pub stack_map_fallbacks: u64,
    /// Bytes of user stack copied.
    pub bytes_copied: u64,
    /// Bytes of user stack copied per second of the window.
    pub bytes_copied_per_s: f64,
}

/// What `session.json` records about one phase window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Window {
    /// Phase name.
    pub phase: String,
    /// Window start, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Window end, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// Lost events by kind.
    pub lost_events: BTreeMap<String, u64>,
    /// Sum of `lost_events`.
    pub lost_total: u64,
    /// Off-CPU periods below the threshold (counted, not recorded).
    pub offcpu_below_threshold: u64,
    /// Block completions whose issue was not seen.
    pub bio_unmatched_completions: u64,
    /// Share of stacks (weighted by samples / off-CPU time) that end in an
    /// unresolved or truncated frame, per stack probe.
    pub truncated_stack_share: BTreeMap<String, f64>,
    /// Events recorded per probe.
    pub events: BTreeMap<String, u64>,
    /// The probes' own cost over the window (issue 17).
    pub cost: Option<WindowCost>,
    /// How user stacks were unwound.
    pub unwind: String,
    /// Stack-quality figures per stack probe (issue 12).
    pub stack_quality: BTreeMap<String, StackQuality>,
}

/// Which attach point the writepath probe uses, and what `auto` tried first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttachReport {
    /// The attach point in use.
    pub writepath: Option<String>,
    /// Attach points tried before it, with the kernel's refusal.
    pub refused: Vec<(String, String)>,
    /// How the on-CPU probe's cpu-clock timer runs: `per_task` (one event
    /// per thread of the target processes, inherited by the threads and
    /// processes they start, as `perf record -p`) or `per_cpu` (one per CPU,
    /// filtered in the program: cgroup and system scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oncpu_sampling: Option<OncpuSampling>,
}

/// How the on-CPU probe's cpu-clock timer runs (see [`AttachReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OncpuSampling {
    /// One event per thread of the target processes, inherited.
    PerTask,
    /// One event per CPU, filtered in the program.
    PerCpu,
}

/// `probes/session.json`. `Options` is the session's configuration
/// (`probes::SessionOptions` when written, any JSON when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Session<Options = serde_json::Value> {
    /// Options the session ran with.
    pub options: Options,
    /// Machine architecture.
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// The clock of every `*_ns` field.
    pub clock: String,
    /// Attach complete.
    pub ready_ns: u64,
    /// Detach.
    pub stopped_ns: u64,
    /// Events recorded between attach and the first phase (discarded).
    pub discarded_before_first_phase: u64,
    /// The windows, in order.
    pub windows: Vec<Window>,
    /// Sum of lost events over all windows.
    pub lost_events_total: u64,
    /// Whether the kernel's BPF statistics ran.
    pub bpf_stats: StatsState,
    /// The probes' cost summed over all windows.
    pub cost_total: Option<WindowCost>,
    /// The writepath probe's attach point, and what `auto` tried first.
    pub attach: AttachReport,
    /// `100 * cost_total.overhead_share`: an upper bound of the probes'
    /// CPU cost relative to the target's CPU time.
    pub overhead_pct: Option<f64>,
}

/// One stack of `oncpu.json` or `offcpu.json`, leaf first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StackRecord {
    /// Samples (on-CPU) or µs off-CPU.
    pub count: u64,
    pub tgid: u32,
    pub thread: String,
    pub user: Vec<String>,
    pub kernel: Vec<String>,
    pub truncated: bool,
    /// Why the user walk ended (unwound stacks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Off-CPU: the wait class (`disk`, `lock`, `net`, `sleep`, `other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Off-CPU: the task state when it left the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<u32>,
}

/// `probes/<phase>/oncpu.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OncpuFile<Scope = serde_json::Value> {
    #[serde(flatten)]
    pub header: Header<Scope>,
    /// Sampling frequency, Hz.
    pub hz: u64,
    pub samples: u64,
    pub truncated_stack_share: f64,
    pub stack_quality: StackQuality,
    pub samples_by_thread: BTreeMap<String, u64>,
    pub samples_by_process: BTreeMap<u32, u64>,
    /// Leaf frames by samples, largest first.
    pub top_frames: Vec<(String, u64)>,
    pub stacks: Vec<StackRecord>,
}

/// `probes/<phase>/offcpu.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OffcpuFile<Scope = serde_json::Value> {
    #[serde(flatten)]
    pub header: Header<Scope>,
    pub total_us: f64,
    pub periods: u64,
    pub truncated_stack_share: f64,
    pub stack_quality: StackQuality,
    pub us_by_class: BTreeMap<String, f64>,
    pub us_by_thread: BTreeMap<String, f64>,
    pub us_by_process: BTreeMap<u32, f64>,
    /// Stacks with off-CPU time in µs as `count`.
    pub stacks: Vec<StackRecord>,
}

impl Window {
    /// The largest truncated-stack share over the stack probes.
    pub fn max_truncated_stack_share(&self) -> Option<f64> {
        self.truncated_stack_share
            .values()
            .copied()
            .reduce(f64::max)
    }
}
