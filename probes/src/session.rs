//! A probe session: load the embedded object, configure scope and offsets,
//! attach the selected probes, and at every phase boundary flip the phase
//! slot and drain the old one, handing the window to the render thread.
//!
//! Lockstep without losses: the kernel writes every event into the slot it
//! reads from `PHASE` at that moment. `phase()` flips the slot first (that
//! instant is the boundary, on CLOCK_MONOTONIC), waits for programs already
//! running to finish, then drains and clears the old slot. Nothing recorded
//! after the flip can land in the old window, and nothing before it is
//! missed. Each slot has its own stack map, emptied after its window is
//! drained (see `resolve_stacks`); an off-CPU period spanning a boundary
//! keeps its switch-out generation, and its stacks are pinned in userspace
//! before their map is emptied.
use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use aya::{
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, StackTraceMap},
    programs::{perf_event, PerfEvent, RawTracePoint, TracePoint},
    Ebpf, EbpfLoader, Pod,
};
use probes_common::ustack::{stack_err, ustack_bytes_ok, UnwindConfig, USTACK_MAX, USTACK_PAGE};
use probes_common::{
    drop_kind, Agg, BioAgg, BioKey, Config, OffcpuKey, OffcpuStart, OncpuKey, SyscallKey,
    SyscallStart, SyscallTidKey, COMM_LEN, SCOPE_CGROUPS, SCOPE_SYSTEM, SCOPE_TGIDS, SLOTS,
};
use serde::Serialize;

use crate::unwind::{UnwindMode, UstackReader, USTACK_ID_BASE};
use crate::{
    attach::{AttachReport, OncpuSampling},
    bpf_stats::{CostMeter, TargetCpu, WindowCost},
    error::ProbeError,
    render::{self, PhaseSummary, RenderOptions},
    scope::{self, ProbeKind, Scope},
    snapshot::{self, Drops, ProcInfo, RawPhase, StackErrs},
    tracefs::{self, Format},
};

/// How long programs that read the old slot just before a flip may still be
/// writing to it. BPF programs run to completion in microseconds.
const FLIP_GRACE: Duration = Duration::from_millis(5);

/// Aggregate maps whose size `map_entries` overrides.
const AGG_MAPS: [&str; 9] = [
    "FSYNC_START",
    "FSYNC_AGG",
    "BIO_START",
    "BIO_AGG",
    "OFFCPU_START",
    "OFFCPU_AGG",
    "WP_START",
    "WP_AGG",
    "ONCPU_AGG",
];

/// What a session watches and where it writes.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOptions {
    /// Process tree, cgroup or system.
    pub scope: Scope,
    /// Probes to attach.
    pub probes: Vec<ProbeKind>,
    /// On-CPU sampling frequency (cpu-clock).
    pub hz: u64,
    /// Off-CPU periods shorter than this are counted, not recorded.
    pub min_offcpu_us: u64,
    /// Output directory (`<phase>/<probe>.*`, `session.json`).
    pub out_dir: PathBuf,
    /// Overrides the size of every aggregate and in-flight map (tests force
    /// drops with tiny maps).
    pub map_entries: Option<u32>,
    /// Entries of the stack dictionary.
    pub stack_entries: u32,
    /// Where the writepath probe attaches.
    pub writepath_attach: WritepathAttach,
    /// How user stacks are unwound (issue 12).
    pub unwind: UnwindMode,
    /// Bytes of user stack copied per stack in `dwarf`/`auto` mode (whole
    /// pages, 4096..=65536).
    pub ustack_bytes: u32,
}

pub use crate::attach::WritepathAttach;

impl SessionOptions {
    /// Defaults for a scope and output directory: all probes, 99 Hz, 1 µs.
    pub fn new(scope: Scope, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            scope,
            probes: ProbeKind::ALL.to_vec(),
            hz: 99,
            min_offcpu_us: 1,
            out_dir: out_dir.into(),
            map_entries: None,
            stack_entries: 16384,
            writepath_attach: WritepathAttach::default(),
            unwind: UnwindMode::default(),
            ustack_bytes: DEFAULT_USTACK_BYTES,
        }
    }
}

/// Default bytes of user stack copied per stack (16 KiB).
pub const DEFAULT_USTACK_BYTES: u32 = 16384;

/// `session.json`: the session, its options and every phase window.
pub type SessionSummary = bundle_schema::probes::Session<SessionOptions>;

/// A running session. Drop detaches everything.
pub struct Session {
    ebpf: Ebpf,
    opts: SessionOptions,
    /// Phase generation written to `PHASE` (its low bit is the slot).
    gen: u32,
    current: Option<(String, u64)>,
    ready_ns: u64,
    discarded: u64,
    /// Stacks of off-CPU periods still in flight when their generation's
    /// stack map was emptied: (generation, id) -> (frames, last drain that
    /// saw the period in flight).
    pinned: HashMap<(u32, i32), (Arc<Vec<u64>>, u32)>,
    proc_cache: HashMap<u32, Arc<ProcInfo>>,
    tx: Option<mpsc::Sender<RawPhase>>,
    renderer: Option<JoinHandle<Result<Vec<PhaseSummary>, ProbeError>>>,
    nr_cpus: usize,
    cost: CostMeter,
    attach: AttachReport,
    /// Reader and unwinder of copied user stacks (`dwarf`/`auto`).
    ustacks: Option<UstackReader>,
}

/// `CLOCK_MONOTONIC` now, in ns (the clock of `bpf_ktime_get_ns`).
pub use probes_common::clock::monotonic_ns;

trait Slotted {
    fn slot(&self) -> u32;
}
impl Slotted for SyscallTidKey {
    fn slot(&self) -> u32 {
        self.slot
    }
}
impl Slotted for BioKey {
    fn slot(&self) -> u32 {
        self.slot
    }
}
impl Slotted for OffcpuKey {
    fn slot(&self) -> u32 {
        self.slot
    }
}
impl Slotted for OncpuKey {
    fn slot(&self) -> u32 {
        self.slot
    }
}

fn add_agg(a: &mut Agg, b: &Agg) {
    a.count += b.count;
    a.sum_ns += b.sum_ns;
}
fn add_bio(a: &mut BioAgg, b: &BioAgg) {
    a.count += b.count;
    a.sum_ns += b.sum_ns;
    a.bytes += b.bytes;
}
fn add_u64(a: &mut u64, b: &u64) {
    *a += *b;
}

impl Session {
    /// Loads, configures and attaches. Needs root (CAP_BPF, CAP_PERFMON).
    #[tracing::instrument(skip_all, fields(scope = %opts.scope))]
    pub fn start(opts: SessionOptions) -> Result<Self, ProbeError> {
        if crate::ebpf::OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        tracefs::ensure_mounted()?;
        raise_memlock();
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|e| ProbeError::io("creating output directory", &opts.out_dir, e))?;

        let ksyms = crate::symbolize::read_kallsyms();
        let mut loader = EbpfLoader::new();
        if let Some(n) = opts.map_entries {
            for m in AGG_MAPS {
                loader.map_max_entries(m, n);
            }
        }
        loader.map_max_entries("STACKS", opts.stack_entries);
        if let Some(n) = opts.map_entries {
            // One name per thread of either syscall probe.
            loader.map_max_entries("THREAD_COMM", n.saturating_mul(2));
        }
        loader.map_max_entries("STACKS1", opts.stack_entries);
        let possible_cpus =
            aya::util::nr_cpus().map_err(|(what, e)| ProbeError::io("counting CPUs", what, e))?;
        // Two scratch records (on-CPU, off-CPU) per possible CPU.
        loader.map_max_entries("USTACK_SCRATCH", 2 * possible_cpus as u32);
        let mut ebpf = loader.load(crate::ebpf::OBJECT).map_err(ProbeError::Load)?;
        let ustacks = start_unwinding(&mut ebpf, &opts)?;

        let (scope_code, tgids, cgroups, target_cpu) = match &opts.scope {
            Scope::Pid(pid) => (
                SCOPE_TGIDS,
                scope::process_tree(*pid)?,
                Vec::new(),
                TargetCpu::Process(*pid),
            ),
            Scope::Cgroup(path) => {
                let dir = scope::resolve_cgroup(path)?;
                let ids = scope::cgroup_ids(&dir)?;
                (SCOPE_CGROUPS, Vec::new(), ids, TargetCpu::Cgroup(dir))
            }
            Scope::System => (SCOPE_SYSTEM, Vec::new(), Vec::new(), TargetCpu::System),
        };
        let cfg = build_config(&opts, scope_code)?;
        {
            let mut m: Array<&mut MapData, Config> = map_mut(&mut ebpf, "CONFIG")?;
            m.set(0, cfg, 0).map_err(|e| ProbeError::map("CONFIG", e))?;
        }
        {
            let mut m: aya::maps::HashMap<&mut MapData, u32, u8> =
                map_mut(&mut ebpf, "TARGET_TGIDS")?;
            for t in &tgids {
                m.insert(t, 1, 0)
                    .map_err(|e| ProbeError::map("TARGET_TGIDS", e))?;
            }
        }
        {
            let mut m: aya::maps::HashMap<&mut MapData, u64, u8> =
                map_mut(&mut ebpf, "TARGET_CGROUPS")?;
            for c in &cgroups {
                m.insert(c, 1, 0)
                    .map_err(|e| ProbeError::map("TARGET_CGROUPS", e))?;
            }
        }

        let mut loaded = HashSet::new();
        if matches!(opts.scope, Scope::Pid(_)) {
            attach_tp(
                &mut ebpf,
                &mut loaded,
                "scope_newtask",
                "task",
                "task_newtask",
            )?;
            attach_tp(
                &mut ebpf,
                &mut loaded,
                "scope_exit",
                "sched",
                "sched_process_exit",
            )?;
        }
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(what, e)| ProbeError::io("counting CPUs", what, e))?;
        let mut attach = AttachReport::default();
        for p in &opts.probes {
            match p {
                ProbeKind::Fsync => {
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "fsync_enter",
                        "syscalls",
                        "sys_enter_fsync",
                    )?;
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "fdatasync_enter",
                        "syscalls",
                        "sys_enter_fdatasync",
                    )?;
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "fsync_exit",
                        "syscalls",
                        "sys_exit_fsync",
                    )?;
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "fsync_exit",
                        "syscalls",
                        "sys_exit_fdatasync",
                    )?;
                }
                ProbeKind::Bio => {
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "bio_issue",
                        "block",
                        "block_rq_issue",
                    )?;
                    attach_tp(
                        &mut ebpf,
                        &mut loaded,
                        "bio_complete",
                        "block",
                        "block_rq_complete",
                    )?;
                }
                ProbeKind::Offcpu => attach_tp(
                    &mut ebpf,
                    &mut loaded,
                    "offcpu_switch",
                    "sched",
                    "sched_switch",
                )?,
                ProbeKind::Writepath => {
                    let w = crate::attach::attach_writepath(
                        &mut ebpf,
                        opts.writepath_attach,
                        |ebpf, m| attach_writepath_at(ebpf, &mut loaded, m),
                    )?;
                    attach.writepath = w.writepath;
                    attach.refused = w.refused;
                }
                ProbeKind::Oncpu => {
                    let per_task = matches!(opts.scope, Scope::Pid(_)).then_some(&tgids[..]);
                    attach.oncpu_sampling = Some(attach_oncpu(&mut ebpf, opts.hz, per_task)?);
                }
            }
        }
        let cost = CostMeter::start(&ebpf, target_cpu);
        let ready_ns = monotonic_ns();
        tracing::info!(probes = ?opts.probes, ready_ns, bpf_stats = ?cost.state(), "probes attached");

        let (tx, rx) = mpsc::channel::<RawPhase>();
        let ropts = RenderOptions {
            out_dir: opts.out_dir.clone(),
            scope: opts.scope.clone(),
            hz: opts.hz,
        };
        let probes = opts.probes.clone();
        let renderer = std::thread::Builder::new()
            .name("probe-render".into())
            .spawn(move || {
                let mut sym = crate::symbolize::Symbolizer::with_kernel_symbols(ksyms);
                let mut out = Vec::new();
                for raw in rx {
                    out.push(render::write_phase(&raw, &probes, &ropts, &mut sym)?);
                }
                Ok(out)
            })
            .map_err(|e| ProbeError::io("spawning the render thread", "probe-render", e))?;

        Ok(Self {
            ebpf,
            opts,
            gen: 0,
            current: None,
            ready_ns,
            discarded: 0,
            pinned: HashMap::new(),
            proc_cache: HashMap::new(),
            tx: Some(tx),
            renderer: Some(renderer),
            nr_cpus,
            cost,
            attach,
            ustacks,
        })
    }

    /// Attach time, CLOCK_MONOTONIC ns.
    pub fn ready_ns(&self) -> u64 {
        self.ready_ns
    }

    /// Closes the current window (if any) and opens `name`; returns the
    /// boundary (CLOCK_MONOTONIC ns).
    pub fn phase(&mut self, name: &str) -> Result<u64, ProbeError> {
        validate_phase_name(name)?;
        if self.tx.is_none() {
            return Err(ProbeError::State("phase after stop".into()));
        }
        let (old, ns) = self.flip()?;
        let cost = self.window_cost();
        let raw = self.drain(old)?;
        match self.current.take() {
            Some((prev, start)) => self.send(RawPhase {
                name: prev,
                start_ns: start,
                end_ns: ns,
                cost,
                ..raw
            })?,
            None => self.discarded += count_events(&raw),
        }
        self.current = Some((name.to_owned(), ns));
        Ok(ns)
    }

    /// Closes the last window, detaches, waits for rendering and writes
    /// `session.json`.
    pub fn stop(mut self) -> Result<(u64, SessionSummary), ProbeError> {
        let (old, ns) = self.flip()?;
        let cost = self.window_cost();
        let raw = self.drain(old)?;
        if let Some((prev, start)) = self.current.take() {
            self.send(RawPhase {
                name: prev,
                start_ns: start,
                end_ns: ns,
                cost,
                ..raw
            })?;
        }
        drop(self.tx.take());
        let windows = match self.renderer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r?,
            Some(Err(_)) => return Err(ProbeError::State("the render thread panicked".into())),
            None => Vec::new(),
        };
        let lost_events_total = windows.iter().map(|w| w.lost_total).sum();
        let summary = SessionSummary {
            options: self.opts.clone(),
            arch: std::env::consts::ARCH.to_string(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            clock: "CLOCK_MONOTONIC".to_string(),
            ready_ns: self.ready_ns,
            stopped_ns: ns,
            discarded_before_first_phase: self.discarded,
            windows,
            lost_events_total,
            bpf_stats: self.cost.state().clone(),
            attach: self.attach.clone(),
            cost_total: self.cost.total().cloned(),
            overhead_pct: self
                .cost
                .total()
                .and_then(|c| c.overhead_share)
                .map(|s| 100.0 * s),
        };
        let path = self.opts.out_dir.join("session.json");
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        std::fs::write(&path, json).map_err(|e| ProbeError::io("writing", &path, e))?;
        Ok((ns, summary))
    }

    /// The probes' cost since the previous boundary: counted in the session
    /// total when a window was open, a new baseline otherwise.
    fn window_cost(&mut self) -> Option<WindowCost> {
        if self.current.is_some() {
            Some(self.cost.window_counted(&self.ebpf))
        } else {
            self.cost.window(&self.ebpf);
            None
        }
    }

    fn send(&self, raw: RawPhase) -> Result<(), ProbeError> {
        match &self.tx {
            Some(tx) => tx.send(raw).map_err(|_| {
                ProbeError::State("the render thread stopped early (see the log)".into())
            }),
            None => Err(ProbeError::State("session already stopped".into())),
        }
    }

    /// Moves the programs to the next generation; returns the old one.
    fn flip(&mut self) -> Result<(u32, u64), ProbeError> {
        let old = self.gen;
        let new = old.wrapping_add(1);
        let mut m: Array<&mut MapData, u32> = map_mut(&mut self.ebpf, "PHASE")?;
        m.set(0, new, 0).map_err(|e| ProbeError::map("PHASE", e))?;
        let ns = monotonic_ns();
        self.gen = new;
        std::thread::sleep(FLIP_GRACE);
        Ok((old, ns))
    }

    /// Removes the syscall start entries of threads that no longer exist
    /// (the programs keep a thread's entry between calls, see
    /// `syscall_enter` in probes-ebpf): an exited thread runs no program, so
    /// removing its entry races with nothing.
    fn prune_exited_threads(&mut self) -> Result<(), ProbeError> {
        if let Some(map) = self.ebpf.map_mut("THREAD_COMM") {
            let mut m: aya::maps::HashMap<&mut MapData, u64, [u8; COMM_LEN]> =
                aya::maps::HashMap::try_from(map).map_err(|e| ProbeError::map("THREAD_COMM", e))?;
            let gone: Vec<u64> = m
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !thread_alive(*k))
                .collect();
            for k in gone {
                let _ = m.remove(&k);
            }
        }
        for name in ["FSYNC_START", "WP_START"] {
            let Some(map) = self.ebpf.map_mut(name) else {
                continue;
            };
            let mut m: aya::maps::HashMap<&mut MapData, u64, SyscallStart> =
                aya::maps::HashMap::try_from(map).map_err(|e| ProbeError::map(name, e))?;
            let gone: Vec<u64> = m
                .keys()
                .filter_map(Result::ok)
                .filter(|k| {
                    let (tgid, tid) = ((k >> 32) as u32, *k as u32);
                    !std::path::Path::new(&format!("/proc/{tgid}/task/{tid}")).exists()
                })
                .collect();
            for k in gone {
                let _ = m.remove(&k);
            }
        }
        Ok(())
    }

    /// Drains generation `gen` (its slot is `gen & (SLOTS - 1)`).
    fn drain(&mut self, gen: u32) -> Result<RawPhase, ProbeError> {
        let slot = gen & (SLOTS - 1);
        let fsync = drain_hash(&mut self.ebpf, "FSYNC_AGG", slot, add_agg)?;
        let writepath = drain_hash(&mut self.ebpf, "WP_AGG", slot, add_agg)?;
        // Thread names, read before the entries of exited threads go.
        let names = thread_names(&self.ebpf);
        self.prune_exited_threads()?;
        let mut raw = RawPhase {
            fsync: with_thread_names(fsync, &names),
            bio: drain_hash(&mut self.ebpf, "BIO_AGG", slot, add_bio)?,
            offcpu: drain_hash(&mut self.ebpf, "OFFCPU_AGG", slot, add_agg)?,
            writepath: with_thread_names(writepath, &names),
            oncpu: drain_hash(&mut self.ebpf, "ONCPU_AGG", slot, add_u64)?,
            drops: self.drain_drops(slot)?,
            ..RawPhase::default()
        };
        self.drain_ustacks(slot, &mut raw)?;
        self.resolve_stacks(gen, &mut raw)?;
        // Processes named by this window: refresh while they are alive.
        let tgids: HashSet<u32> = raw
            .offcpu
            .iter()
            .map(|(k, _)| k.tgid)
            .chain(raw.oncpu.iter().map(|(k, _)| k.tgid))
            .chain(raw.fsync.iter().map(|(k, _)| k.tgid))
            .chain(raw.writepath.iter().map(|(k, _)| k.tgid))
            .collect();
        for t in tgids {
            if let Some(p) = snapshot::read_proc(t) {
                self.proc_cache.insert(t, Arc::new(p));
            }
            if let Some(p) = self.proc_cache.get(&t) {
                raw.procs.insert(t, Arc::clone(p));
            }
        }
        Ok(raw)
    }

    /// Gives the window its stacks (issue 12): ids of generation `gen` are
    /// read from that generation's map, older ones (off-CPU periods that
    /// began in an earlier window) from `pinned`; every id is renumbered
    /// for the window. Then pins the stacks of periods still in flight and
    /// empties the generation's map, so it never fills up. An id whose
    /// stack is gone becomes `-ENOENT` (a truncated stack).
    fn resolve_stacks(&mut self, gen: u32, raw: &mut RawPhase) -> Result<(), ProbeError> {
        const ENOENT: i32 = -2;
        let map_name = |g: u32| if g & 1 == 0 { "STACKS" } else { "STACKS1" };
        let fp_id = |id: i32| (0..USTACK_ID_BASE).contains(&id);
        let wanted: HashSet<(u32, i32)> = raw
            .offcpu
            .iter()
            .flat_map(|(k, _)| [(k.stack_gen, k.ustack), (k.stack_gen, k.kstack)])
            .chain(
                raw.oncpu
                    .iter()
                    .flat_map(|(k, _)| [(gen, k.ustack), (gen, k.kstack)]),
            )
            .filter(|(_, id)| fp_id(*id))
            .collect();
        let mut remap: HashMap<(u32, i32), i32> = HashMap::new();
        {
            let stacks: StackTraceMap<&MapData> = map_ref(&self.ebpf, map_name(gen))?;
            for (g, id) in wanted {
                let frames = if g == gen {
                    stacks
                        .get(&(id as u32), 0)
                        .ok()
                        .map(|st| Arc::new(st.frames().iter().map(|f| f.ip).collect()))
                } else {
                    self.pinned.get(&(g, id)).map(|(f, _)| Arc::clone(f))
                };
                if let Some(f) = frames {
                    let n = remap.len() as i32;
                    remap.insert((g, id), n);
                    raw.stacks.insert(n, f);
                }
            }
        }
        let re = |g: u32, id: i32| {
            if fp_id(id) {
                remap.get(&(g, id)).copied().unwrap_or(ENOENT)
            } else {
                id
            }
        };
        for (k, _) in &mut raw.oncpu {
            k.ustack = re(gen, k.ustack);
            k.kstack = re(gen, k.kstack);
        }
        for (k, _) in &mut raw.offcpu {
            k.ustack = re(k.stack_gen, k.ustack);
            k.kstack = re(k.stack_gen, k.kstack);
        }
        // Pin the stacks of periods in flight; forget the pins no period
        // has referenced since before the previous drain (its end, if any,
        // has been drained by now).
        let in_flight: Vec<OffcpuStart> = {
            let m: aya::maps::HashMap<&MapData, u32, OffcpuStart> =
                map_ref(&self.ebpf, "OFFCPU_START")?;
            m.iter().filter_map(Result::ok).map(|(_, v)| v).collect()
        };
        {
            let stacks: StackTraceMap<&MapData> = map_ref(&self.ebpf, map_name(gen))?;
            for st in &in_flight {
                for id in [st.ustack, st.kstack].into_iter().filter(|id| fp_id(*id)) {
                    if let Some(p) = self.pinned.get_mut(&(st.gen, id)) {
                        p.1 = gen;
                    } else if st.gen == gen {
                        if let Ok(s) = stacks.get(&(id as u32), 0) {
                            let f = Arc::new(s.frames().iter().map(|f| f.ip).collect());
                            self.pinned.insert((gen, id), (f, gen));
                        }
                    }
                }
            }
        }
        self.pinned
            .retain(|_, (_, seen)| gen.wrapping_sub(*seen) <= 1);
        // No program writes to this generation's map until the generation
        // after next: empty it.
        let mut stacks: StackTraceMap<&mut MapData> = map_mut(&mut self.ebpf, map_name(gen))?;
        let ids: Vec<u32> = stacks.stack_ids().filter_map(Result::ok).collect();
        for id in ids {
            let _ = stacks.remove(&id);
        }
        Ok(())
    }

    /// Adds the window's unwound user stacks (on-CPU samples of `dwarf` and
    /// `auto` mode) and its lost-stack counters by cause to `raw`.
    fn drain_ustacks(&mut self, slot: u32, raw: &mut RawPhase) -> Result<(), ProbeError> {
        raw.unwind = self.opts.unwind;
        raw.stack_errs = self.drain_stack_errs(slot)?;
        let Some(reader) = &self.ustacks else {
            return Ok(());
        };
        let w = reader.drain(slot).ok_or_else(|| {
            ProbeError::State("the unwinder thread stopped early (see the log)".into())
        })?;
        raw.oncpu.extend(w.oncpu);
        raw.offcpu.extend(w.offcpu);
        raw.stacks.extend(w.stacks);
        raw.ustack_ends = w.ends;
        raw.copy = w.copy;
        // Processes that exited since the unwinder read their maps.
        for (t, p) in w.procs {
            self.proc_cache.entry(t).or_insert(p);
        }
        Ok(())
    }

    fn drain_stack_errs(&mut self, slot: u32) -> Result<StackErrs, ProbeError> {
        let mut m: PerCpuArray<&mut MapData, u64> = map_mut(&mut self.ebpf, "STACK_ERRS")?;
        let mut out = StackErrs::default();
        for site in 0..stack_err::SITES {
            for cause in 0..stack_err::CAUSES {
                let idx = (slot * stack_err::SITES + site) * stack_err::CAUSES + cause;
                let v = m
                    .get(&idx, 0)
                    .map_err(|e| ProbeError::map("STACK_ERRS", e))?;
                let n: u64 = v.iter().sum();
                out[site as usize][cause as usize] = n;
                if n != 0 {
                    let zeros = PerCpuValues::try_from(vec![0u64; self.nr_cpus])
                        .map_err(|e| ProbeError::map("STACK_ERRS", e))?;
                    m.set(idx, zeros, 0)
                        .map_err(|e| ProbeError::map("STACK_ERRS", e))?;
                }
            }
        }
        Ok(out)
    }

    fn drain_drops(&mut self, slot: u32) -> Result<Drops, ProbeError> {
        let mut m: PerCpuArray<&mut MapData, u64> = map_mut(&mut self.ebpf, "DROPS")?;
        let mut out: Drops = [0; drop_kind::COUNT as usize];
        for kind in 0..drop_kind::COUNT {
            let idx = slot * drop_kind::COUNT + kind;
            let v = m.get(&idx, 0).map_err(|e| ProbeError::map("DROPS", e))?;
            out[kind as usize] = v.iter().sum();
            if out[kind as usize] != 0 {
                let zeros = PerCpuValues::try_from(vec![0u64; self.nr_cpus])
                    .map_err(|e| ProbeError::map("DROPS", e))?;
                m.set(idx, zeros, 0)
                    .map_err(|e| ProbeError::map("DROPS", e))?;
            }
        }
        Ok(out)
    }

    /// Refreshes the memory maps of live target processes, so that a
    /// process that exits before the next boundary can still be
    /// symbolized. Cheap; call it now and then (the CLI does every second).
    pub fn refresh_processes(&mut self) {
        let tgids: Vec<u32> = match &self.opts.scope {
            Scope::Pid(_) => {
                let Ok(m) =
                    map_ref::<aya::maps::HashMap<&MapData, u32, u8>>(&self.ebpf, "TARGET_TGIDS")
                else {
                    return;
                };
                m.keys().filter_map(Result::ok).collect()
            }
            _ => {
                // Processes seen so far in the current slot.
                let Ok(m) =
                    map_ref::<PerCpuHashMap<&MapData, OncpuKey, u64>>(&self.ebpf, "ONCPU_AGG")
                else {
                    return;
                };
                let mut v: Vec<u32> = m.keys().filter_map(Result::ok).map(|k| k.tgid).collect();
                if let Ok(o) =
                    map_ref::<PerCpuHashMap<&MapData, OffcpuKey, Agg>>(&self.ebpf, "OFFCPU_AGG")
                {
                    v.extend(o.keys().filter_map(Result::ok).map(|k| k.tgid));
                }
                v.sort_unstable();
                v.dedup();
                v.retain(|t| !self.proc_cache.contains_key(t));
                v
            }
        };
        for t in tgids {
            if let Some(p) = snapshot::read_proc(t) {
                self.proc_cache.insert(t, Arc::new(p));
            }
        }
    }
}

fn thread_alive(pid_tgid: u64) -> bool {
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    std::path::Path::new(&format!("/proc/{tgid}/task/{tid}")).exists()
}

/// The name of every thread the syscall probes saw (`THREAD_COMM`, recorded
/// by the kernel at each thread's first call), by `pid_tgid`.
fn thread_names(ebpf: &Ebpf) -> HashMap<u64, [u8; COMM_LEN]> {
    let Ok(m) = map_ref::<aya::maps::HashMap<&MapData, u64, [u8; COMM_LEN]>>(ebpf, "THREAD_COMM")
    else {
        return HashMap::new();
    };
    m.iter().filter_map(Result::ok).collect()
}

/// Turns the kernel's per-thread keys into (tgid, thread name) keys. A thread
/// whose name was not recorded (its name map was full) is named `tid-<tid>`.
fn with_thread_names(
    rows: Vec<(SyscallTidKey, Agg)>,
    names: &HashMap<u64, [u8; COMM_LEN]>,
) -> Vec<(SyscallKey, Agg)> {
    rows.into_iter()
        .map(|(k, a)| {
            let id = (u64::from(k.tgid) << 32) | u64::from(k.tid);
            let comm = names.get(&id).copied().unwrap_or_else(|| {
                let mut c = [0u8; COMM_LEN];
                let s = format!("tid-{}", k.tid);
                let n = s.len().min(COMM_LEN - 1);
                c[..n].copy_from_slice(&s.as_bytes()[..n]);
                c
            });
            (
                SyscallKey {
                    slot: k.slot,
                    tgid: k.tgid,
                    syscall: u32::from(k.syscall),
                    bucket: u32::from(k.bucket),
                    comm,
                },
                a,
            )
        })
        .collect()
}

fn count_events(raw: &RawPhase) -> u64 {
    raw.fsync.iter().map(|(_, a)| a.count).sum::<u64>()
        + raw.bio.iter().map(|(_, a)| a.count).sum::<u64>()
        + raw.offcpu.iter().map(|(_, a)| a.count).sum::<u64>()
        + raw.writepath.iter().map(|(_, a)| a.count).sum::<u64>()
        + raw.oncpu.iter().map(|(_, c)| *c).sum::<u64>()
}

/// Phase names become directory names.
pub fn validate_phase_name(name: &str) -> Result<(), ProbeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ProbeError::State(format!(
            "invalid phase name {name:?}: use 1-64 characters among A-Z a-z 0-9 - _ ."
        )))
    }
}

fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        // Kernels >= 5.11 account BPF memory to the cgroup: not needed there.
        tracing::debug!(error = %std::io::Error::last_os_error(), "raising RLIMIT_MEMLOCK failed; continuing");
    }
}

/// Configures user-stack copies (`dwarf`, `auto`) and starts the reader of
/// the `USTACKS` ring buffer, which in every mode also takes the stacks the
/// stack map refuses (`UnwindConfig::map_fallback`).
fn start_unwinding(
    ebpf: &mut Ebpf,
    opts: &SessionOptions,
) -> Result<Option<UstackReader>, ProbeError> {
    let (oncpu, offcpu) = (
        opts.probes.contains(&ProbeKind::Oncpu),
        opts.probes.contains(&ProbeKind::Offcpu),
    );
    if !(oncpu || offcpu) {
        return Ok(None);
    }
    let copies = opts.unwind.copies();
    if copies && !ustack_bytes_ok(opts.ustack_bytes) {
        return Err(ProbeError::State(format!(
            "user stack copy size {} bytes: use a multiple of {USTACK_PAGE} from {USTACK_PAGE} to {USTACK_MAX}",
            opts.ustack_bytes
        )));
    }
    let ucfg = UnwindConfig {
        oncpu_copy: u32::from(copies && oncpu),
        offcpu_copy: u32::from(copies && offcpu),
        copy_pages: if copies {
            opts.ustack_bytes / USTACK_PAGE as u32
        } else {
            0
        },
        map_fallback: 1,
    };
    {
        let mut m: Array<&mut MapData, UnwindConfig> = map_mut(ebpf, "UNWIND_CONFIG")?;
        m.set(0, ucfg, 0)
            .map_err(|e| ProbeError::map("UNWIND_CONFIG", e))?;
    }
    let map = ebpf
        .take_map("USTACKS")
        .ok_or_else(|| ProbeError::map("USTACKS", "missing from the object"))?;
    let ring = aya::maps::RingBuf::try_from(map).map_err(|e| ProbeError::map("USTACKS", e))?;
    UstackReader::spawn(ring, opts.unwind)
        .map(Some)
        .map_err(|e| ProbeError::io("spawning the unwinder thread", "probe-unwind", e))
}

fn build_config(opts: &SessionOptions, scope_code: u32) -> Result<Config, ProbeError> {
    let mut cfg = Config {
        scope: scope_code,
        self_tgid: std::process::id(),
        root_tgid: match opts.scope {
            Scope::Pid(pid) => pid,
            _ => 0,
        },
        min_offcpu_ns: opts.min_offcpu_us.saturating_mul(1000),
        ..Config::default()
    };
    if opts.probes.contains(&ProbeKind::Offcpu) {
        let f = Format::read("sched", "sched_switch")?;
        cfg.sw_prev_pid = f.offset("prev_pid")?;
        cfg.sw_prev_state = f.offset("prev_state")?;
        cfg.sw_next_pid = f.offset("next_pid")?;
    }
    if opts.probes.contains(&ProbeKind::Bio) {
        let f = Format::read("block", "block_rq_issue")?;
        cfg.rq_dev = f.offset("dev")?;
        cfg.rq_sector = f.offset("sector")?;
        cfg.rq_bytes = f.offset("bytes")?;
        cfg.rq_rwbs = f.offset("rwbs")?;
        let f = Format::read("block", "block_rq_complete")?;
        cfg.rqc_dev = f.offset("dev")?;
        cfg.rqc_sector = f.offset("sector")?;
    }
    if matches!(opts.scope, Scope::Pid(_)) {
        let f = Format::read("task", "task_newtask")?;
        cfg.nt_pid = f.offset("pid")?;
        cfg.nt_clone_flags = f.offset("clone_flags")?;
    }
    Ok(cfg)
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<T, ProbeError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf
        .map_mut(name)
        .ok_or_else(|| ProbeError::map(name, "missing from the object"))?;
    T::try_from(m).map_err(|e| ProbeError::map(name, e))
}

fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &str) -> Result<T, ProbeError>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf
        .map(name)
        .ok_or_else(|| ProbeError::map(name, "missing from the object"))?;
    T::try_from(m).map_err(|e| ProbeError::map(name, e))
}

fn drain_hash<K, V>(
    ebpf: &mut Ebpf,
    name: &str,
    slot: u32,
    sum: fn(&mut V, &V),
) -> Result<Vec<(K, V)>, ProbeError>
where
    K: Pod + Slotted,
    V: Pod,
{
    let mut m: PerCpuHashMap<&mut MapData, K, V> = map_mut(ebpf, name)?;
    let keys: Vec<K> = m
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.slot() == slot)
        .collect();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Ok(vals) = m.get(&k, 0) {
            if let Some((first, rest)) = vals.split_first() {
                let mut acc = *first;
                for v in rest {
                    sum(&mut acc, v);
                }
                out.push((k, acc));
            }
        }
        let _ = m.remove(&k);
    }
    Ok(out)
}

fn attach_err(program: &str, point: &str, source: aya::programs::ProgramError) -> ProbeError {
    ProbeError::Attach {
        program: program.to_owned(),
        point: point.to_owned(),
        source,
    }
}

fn attach_tp(
    ebpf: &mut Ebpf,
    loaded: &mut HashSet<&'static str>,
    prog: &'static str,
    category: &str,
    name: &str,
) -> Result<(), ProbeError> {
    let point = format!("tracepoint {category}/{name}");
    let p: &mut TracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| ProbeError::map(prog, "program missing from the object"))?
        .try_into()
        .map_err(|e| attach_err(prog, &point, e))?;
    if loaded.insert(prog) {
        p.load().map_err(|e| attach_err(prog, &point, e))?;
    }
    p.attach(category, name)
        .map_err(|e| attach_err(prog, &point, e))?;
    Ok(())
}

/// Attaches the writepath programs at a fixed tracepoint-based point; on
/// failure, unloads what it loaded so that `auto` can try the next point.
fn attach_writepath_at(
    ebpf: &mut Ebpf,
    loaded: &mut HashSet<&'static str>,
    mode: WritepathAttach,
) -> Result<(), ProbeError> {
    let r = match mode {
        WritepathAttach::Raw => attach_raw(ebpf, "writepath_enter", "sys_enter")
            .and_then(|()| attach_raw(ebpf, "writepath_exit", "sys_exit")),
        WritepathAttach::Syscalls => probes_common::SYSCALL_NAMES.iter().try_for_each(|name| {
            let (enter, exit) = (format!("sys_enter_{name}"), format!("sys_exit_{name}"));
            attach_tp(ebpf, loaded, "writepath_enter_tp", "syscalls", &enter)?;
            attach_tp(ebpf, loaded, "writepath_exit_tp", "syscalls", &exit)
        }),
        other => Err(ProbeError::State(format!(
            "writepath attach point {} is not a tracepoint",
            other.name()
        ))),
    };
    if r.is_err() {
        for prog in [
            "writepath_enter",
            "writepath_exit",
            "writepath_enter_tp",
            "writepath_exit_tp",
        ] {
            loaded.remove(prog);
            if let Some(p) = ebpf.program_mut(prog) {
                let _ = match p {
                    aya::programs::Program::RawTracePoint(p) => p.unload(),
                    aya::programs::Program::TracePoint(p) => p.unload(),
                    _ => Ok(()),
                };
            }
        }
    }
    r
}

fn attach_raw(ebpf: &mut Ebpf, prog: &str, tp: &str) -> Result<(), ProbeError> {
    let point = format!("raw tracepoint {tp}");
    let p: &mut RawTracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| ProbeError::map(prog, "program missing from the object"))?
        .try_into()
        .map_err(|e| attach_err(prog, &point, e))?;
    p.load().map_err(|e| attach_err(prog, &point, e))?;
    p.attach(tp).map_err(|e| attach_err(prog, &point, e))?;
    Ok(())
}

/// Attaches the on-CPU sampler: a cpu-clock event at `hz`. For a process
/// scope (`per_task`: its processes), one event per thread, opened with
/// `inherit` so that the threads and processes they start later carry it
/// too: each thread is sampled on its own CPU time, as `perf record -p`
/// does, and a timer that fires while interrupts are off during a context
/// switch is not charged to the thread switched in. One pass over the
/// threads listed at attach: a thread started meanwhile by a thread already
/// attached inherits its event, and a second listing could not tell it
/// from one started by a thread not yet attached, so opening one for every
/// new thread would sample some twice. Otherwise one event per CPU,
/// filtered by the program.
fn attach_oncpu(
    ebpf: &mut Ebpf,
    hz: u64,
    per_task: Option<&[u32]>,
) -> Result<OncpuSampling, ProbeError> {
    let prog = "oncpu_sample";
    let point = format!("perf event cpu-clock at {hz} Hz");
    let p: &mut PerfEvent = ebpf
        .program_mut(prog)
        .ok_or_else(|| ProbeError::map(prog, "program missing from the object"))?
        .try_into()
        .map_err(|e| attach_err(prog, &point, e))?;
    p.load().map_err(|e| attach_err(prog, &point, e))?;
    let clock = || perf_event::PerfEventConfig::Software(perf_event::SoftwareEvent::CpuClock);
    let Some(tgids) = per_task else {
        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| ProbeError::io("listing online CPUs", what, e))?;
        for cpu in cpus {
            p.attach(
                clock(),
                perf_event::PerfEventScope::AllProcessesOneCpu { cpu },
                perf_event::SamplePolicy::Frequency(hz),
                false,
            )
            .map_err(|e| attach_err(prog, &point, e))?;
        }
        return Ok(OncpuSampling::PerCpu);
    };
    for tid in scope::threads_of(tgids) {
        let r = p.attach(
            clock(),
            perf_event::PerfEventScope::OneProcess {
                pid: tid,
                cpu: None,
            },
            perf_event::SamplePolicy::Frequency(hz),
            true,
        );
        match r {
            Ok(_) => {}
            // The thread ended between the listing and the open.
            Err(_) if !std::path::Path::new(&format!("/proc/{tid}")).exists() => {}
            Err(e) => return Err(attach_err(prog, &format!("{point}, thread {tid}"), e)),
        }
    }
    Ok(OncpuSampling::PerTask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_join_at_drain() {
        let key = |tid, bucket| SyscallTidKey {
            slot: 1,
            tgid: 7,
            tid,
            syscall: 6,
            bucket,
        };
        let agg = Agg {
            count: 3,
            sum_ns: 30,
        };
        let mut name = [0u8; COMM_LEN];
        name[..8].copy_from_slice(b"qfc-wr-b");
        let names: HashMap<u64, [u8; COMM_LEN]> = [((7u64 << 32) | 8, name)].into();
        let out = with_thread_names(vec![(key(8, 4), agg), (key(9, 5), agg)], &names);
        assert_eq!(out[0].0.comm, name);
        assert_eq!(
            (out[0].0.tgid, out[0].0.syscall, out[0].0.bucket),
            (7, 6, 4)
        );
        assert_eq!(out[0].1, agg);
        // A thread whose name was not recorded is named by its id.
        assert_eq!(&out[1].0.comm[..6], b"tid-9\0");
    }

    #[test]
    fn phase_names_are_safe_directory_names() {
        assert!(validate_phase_name("steady-1").is_ok());
        assert!(validate_phase_name("a.b_c").is_ok());
        for bad in ["", "..", ".", "a/b", "x y", "é"] {
            let err = validate_phase_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid phase name"), "{err}");
        }
    }
}
