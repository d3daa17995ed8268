//! The programs and their maps.
//!
//! Every program reads the run-time [`Config`] and the current phase slot
//! first, filters by scope as early as it can, and then adds to a per-CPU
//! aggregate keyed by slot. Nothing is sent to userspace per event; whatever
//! cannot be recorded (a full map, a stack that could not be stored) is
//! counted in `DROPS` for the slot it belongs to.

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_probe_read_kernel_buf,
    },
    macros::{btf_tracepoint, map, perf_event, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, StackTrace},
    programs::{
        tracing::StackIdContext, BtfTracePointContext, PerfEventContext, RawTracePointContext,
        TracePointContext,
    },
    EbpfContext,
};
use probes_common::ustack::{
    stack_err, TASK_PREEMPTED, TASK_UNINTERRUPTIBLE, USTACK_COPIED, USTACK_OFFCPU, USTACK_ONCPU,
};
use probes_common::{
    drop_kind, log2_bucket, Agg, BioAgg, BioKey, BioStart, BioStartKey, Config, OffcpuKey,
    OffcpuStart, OncpuKey, SyscallStart, SyscallTidKey, COMM_LEN, HIST_BUCKETS, RWBS_LEN,
    SCOPE_CGROUPS, SCOPE_TGIDS, SLOTS, SYS_FDATASYNC, SYS_FSYNC,
};

use crate::ustack::EFAULT;

/// `CLONE_THREAD`: a new thread, not a new process.
const CLONE_THREAD: u64 = 0x0001_0000;

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map]
static PHASE: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);
#[map]
static TARGET_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS * drop_kind::COUNT, 0);
/// Stack dictionaries, one per phase slot (issue 12): a program stores a
/// stack in the map of the slot it read, and userspace empties that map
/// after draining the slot (a map that is never emptied fills up and then
/// loses stacks to hash collisions, `-EEXIST`). An off-CPU period keeps the
/// generation of its switch-out (`OffcpuKey::stack_gen`); userspace copies
/// the stacks of periods still in flight before it empties their map.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);
/// The odd slot's stack dictionary (see `STACKS`).
#[map]
static STACKS1: StackTrace = StackTrace::with_max_entries(16384, 0);

#[map]
static FSYNC_START: HashMap<u64, SyscallStart> = HashMap::with_max_entries(10240, 0);
#[map]
static FSYNC_AGG: PerCpuHashMap<SyscallTidKey, Agg> = PerCpuHashMap::with_max_entries(8192, 0);
/// Thread name of every thread the syscall probes saw, keyed by `pid_tgid`,
/// recorded once at the thread's first call (the insert path of
/// [`syscall_enter`]); userspace joins it at drain time and prunes the
/// entries of exited threads with the in-flight entries.
#[map]
static THREAD_COMM: HashMap<u64, [u8; COMM_LEN]> = HashMap::with_max_entries(10240, 0);
#[map]
static BIO_START: HashMap<BioStartKey, BioStart> = HashMap::with_max_entries(16384, 0);
#[map]
static BIO_AGG: PerCpuHashMap<BioKey, BioAgg> = PerCpuHashMap::with_max_entries(4096, 0);
#[map]
static OFFCPU_START: HashMap<u32, OffcpuStart> = HashMap::with_max_entries(16384, 0);
#[map]
static OFFCPU_AGG: PerCpuHashMap<OffcpuKey, Agg> = PerCpuHashMap::with_max_entries(16384, 0);
#[map]
static WP_START: HashMap<u64, SyscallStart> = HashMap::with_max_entries(10240, 0);
#[map]
static WP_AGG: PerCpuHashMap<SyscallTidKey, Agg> = PerCpuHashMap::with_max_entries(16384, 0);
#[map]
static ONCPU_AGG: PerCpuHashMap<OncpuKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

#[inline(always)]
fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

#[inline(always)]
fn slot() -> u32 {
    phase_gen() & (SLOTS - 1)
}

/// The phase generation userspace wrote (its low bit is the slot).
#[inline(always)]
fn phase_gen() -> u32 {
    match PHASE.get(0) {
        Some(s) => *s,
        None => 0,
    }
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn count_drop(slot: u32, kind: u32) {
    if let Some(p) = DROPS.get_ptr_mut(slot * drop_kind::COUNT + kind) {
        // SAFETY: per-CPU slot, programs do not nest on one CPU for these hooks.
        unsafe { *p += 1 }
    }
}

/// Whether the current task is in scope. Costs one array read (system), or
/// one hash lookup (tgid set, cgroup set).
#[inline(always)]
fn in_scope(cfg: &Config, tgid: u32) -> bool {
    if cfg.scope == SCOPE_TGIDS {
        tgid == cfg.root_tgid || TARGET_TGIDS.get_ptr(&tgid).is_some()
    } else if cfg.scope == SCOPE_CGROUPS {
        // SAFETY: no preconditions.
        let id = unsafe { bpf_get_current_cgroup_id() };
        TARGET_CGROUPS.get_ptr(&id).is_some()
    } else {
        tgid != 0 && tgid != cfg.self_tgid
    }
}

#[inline(always)]
fn comm() -> [u8; COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; COMM_LEN])
}

#[inline(always)]
fn latency_bucket(ns: u64) -> u32 {
    let b = log2_bucket(ns / 1000);
    if b >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        b
    }
}

/// Adds one event of `ns` to a per-CPU aggregate; false if the map is full.
#[inline(always)]
fn add_agg<K>(map: &PerCpuHashMap<K, Agg>, key: &K, ns: u64) -> bool {
    if let Some(p) = map.get_ptr_mut(key) {
        // SAFETY: this CPU's value, no concurrent writer.
        unsafe {
            (*p).count += 1;
            (*p).sum_ns += ns;
        }
        return true;
    }
    let v = Agg {
        count: 1,
        sum_ns: ns,
    };
    if map.insert(key, &v, u64::from(BPF_NOEXIST)).is_ok() {
        return true;
    }
    // Another CPU created the key first: this CPU's value now exists (zero).
    if let Some(p) = map.get_ptr_mut(key) {
        // SAFETY: as above.
        unsafe {
            (*p).count += 1;
            (*p).sum_ns += ns;
        }
        return true;
    }
    false
}

/// Entry side of a syscall latency probe. A thread's entry in `start` stays
/// once inserted and is overwritten in place on its next call (a lookup, no
/// hash update or delete: the two costliest steps of the old insert/remove
/// cycle, measured in docs/BENCHMARKS.md); `start_ns == 0` marks it idle.
/// The first call of a thread inserts; a full map counts a drop. Userspace
/// prunes the entries of exited threads at phase boundaries.
#[inline(always)]
fn syscall_enter(start: &HashMap<u64, SyscallStart>, syscall: u32, full: u32) {
    let Some(cfg) = config() else { return };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope(cfg, (pid_tgid >> 32) as u32) {
        return;
    }
    let now = now_ns();
    if let Some(p) = start.get_ptr_mut(&pid_tgid) {
        // SAFETY: this thread's own entry; only this thread writes it while
        // it is in the syscall.
        unsafe {
            (*p).start_ns = now;
            (*p).syscall = syscall;
        }
        return;
    }
    // First call of this thread: its in-flight entry and its name, once.
    let st = SyscallStart {
        start_ns: now,
        syscall,
        _pad: 0,
    };
    if start.insert(&pid_tgid, &st, 0).is_err() {
        count_drop(slot(), full);
        return;
    }
    let _ = THREAD_COMM.insert(&pid_tgid, &comm(), u64::from(BPF_NOEXIST));
}

/// Exit side: one lookup of the thread's in-flight entry (absent for every
/// thread out of scope, so no scope test is needed), then one per-CPU
/// update keyed by (slot, tgid, tid, syscall, bucket): 16 bytes to hash, no
/// thread name.
#[inline(always)]
fn syscall_exit(
    pid_tgid: u64,
    start: &HashMap<u64, SyscallStart>,
    agg: &PerCpuHashMap<SyscallTidKey, Agg>,
    full: u32,
) {
    let Some(p) = start.get_ptr_mut(&pid_tgid) else {
        return;
    };
    // SAFETY: this thread's own entry (see syscall_enter).
    let st = unsafe { *p };
    if st.start_ns == 0 {
        return;
    }
    // SAFETY: as above.
    unsafe { (*p).start_ns = 0 };
    let ns = now_ns().saturating_sub(st.start_ns);
    let slot = slot();
    let key = SyscallTidKey {
        slot,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        syscall: st.syscall as u16,
        bucket: latency_bucket(ns) as u16,
    };
    if !add_agg(agg, &key, ns) {
        count_drop(slot, full);
    }
}

// ---------------------------------------------------------------- fsync

#[tracepoint(category = "syscalls", name = "sys_enter_fsync")]
pub fn fsync_enter(_ctx: TracePointContext) -> u32 {
    syscall_enter(&FSYNC_START, SYS_FSYNC, drop_kind::FSYNC_START_FULL);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_fdatasync")]
pub fn fdatasync_enter(_ctx: TracePointContext) -> u32 {
    syscall_enter(&FSYNC_START, SYS_FDATASYNC, drop_kind::FSYNC_START_FULL);
    0
}

/// Attached to both `sys_exit_fsync` and `sys_exit_fdatasync`.
#[tracepoint]
pub fn fsync_exit(_ctx: TracePointContext) -> u32 {
    syscall_exit(
        bpf_get_current_pid_tgid(),
        &FSYNC_START,
        &FSYNC_AGG,
        drop_kind::FSYNC_AGG_FULL,
    );
    0
}

// ---------------------------------------------------------------- bio

#[inline(always)]
fn read_u32(ctx: &TracePointContext, off: u32) -> u32 {
    // SAFETY: offset from the tracepoint's format file; probe-read checked.
    unsafe { ctx.read_at::<u32>(off as usize) }.unwrap_or(0)
}

#[inline(always)]
fn read_u64(ctx: &TracePointContext, off: u32) -> u64 {
    // SAFETY: as read_u32.
    unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(0)
}

#[tracepoint(category = "block", name = "block_rq_issue")]
pub fn bio_issue(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let key = BioStartKey {
        dev: read_u32(&ctx, cfg.rq_dev),
        _pad: 0,
        sector: read_u64(&ctx, cfg.rq_sector),
    };
    let mut rwbs = [0u8; RWBS_LEN];
    let src = (ctx.as_ptr() as *const u8).wrapping_add(cfg.rq_rwbs as usize);
    // SAFETY: probe-read of the tracepoint record.
    if unsafe { bpf_probe_read_kernel_buf(src, &mut rwbs) }.is_err() {
        rwbs = [0u8; RWBS_LEN];
    }
    // A proper C string: nothing survives after the first NUL, so one RWBS
    // is one key (T1's duplicated `W` keys came from stray bytes here).
    let mut seen_nul = false;
    for b in rwbs.iter_mut() {
        if seen_nul {
            *b = 0;
        } else if *b == 0 {
            seen_nul = true;
        }
    }
    let st = BioStart {
        start_ns: now_ns(),
        bytes: u64::from(read_u32(&ctx, cfg.rq_bytes)),
        rwbs,
    };
    if BIO_START.insert(&key, &st, 0).is_err() {
        count_drop(slot(), drop_kind::BIO_START_FULL);
    }
    0
}

#[tracepoint(category = "block", name = "block_rq_complete")]
pub fn bio_complete(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let skey = BioStartKey {
        dev: read_u32(&ctx, cfg.rqc_dev),
        _pad: 0,
        sector: read_u64(&ctx, cfg.rqc_sector),
    };
    let slot = slot();
    let Some(st) = BIO_START.get_ptr(&skey) else {
        count_drop(slot, drop_kind::BIO_UNMATCHED);
        return 0;
    };
    // SAFETY: value of a live entry, copied before removal.
    let st = unsafe { *st };
    let _ = BIO_START.remove(&skey);
    let ns = now_ns().saturating_sub(st.start_ns);
    let key = BioKey {
        slot,
        dev: skey.dev,
        bucket: latency_bucket(ns),
        _pad: 0,
        rwbs: st.rwbs,
    };
    if let Some(p) = BIO_AGG.get_ptr_mut(&key) {
        // SAFETY: this CPU's value.
        unsafe {
            (*p).count += 1;
            (*p).sum_ns += ns;
            (*p).bytes += st.bytes;
        }
        return 0;
    }
    let v = BioAgg {
        count: 1,
        sum_ns: ns,
        bytes: st.bytes,
    };
    if BIO_AGG.insert(&key, &v, u64::from(BPF_NOEXIST)).is_err() {
        if let Some(p) = BIO_AGG.get_ptr_mut(&key) {
            // SAFETY: this CPU's value.
            unsafe {
                (*p).count += 1;
                (*p).sum_ns += ns;
                (*p).bytes += st.bytes;
            }
        } else {
            count_drop(slot, drop_kind::BIO_AGG_FULL);
        }
    }
    0
}

// ---------------------------------------------------------------- offcpu

/// A stack id of the current task from the slot's stack map, or the
/// negative errno of `bpf_get_stackid`.
#[inline(always)]
fn stack_id<C: StackIdContext>(ctx: &C, user: bool, slot: u32) -> i32 {
    let flags = if user { u64::from(BPF_F_USER_STACK) } else { 0 };
    let r = if slot == 0 {
        ctx.get_stackid(&STACKS, flags)
    } else {
        ctx.get_stackid(&STACKS1, flags)
    };
    match r {
        Ok(id) => id as i32,
        Err(e) => e as i32,
    }
}

/// The user and kernel stack ids of the current task from the slot's
/// stack map. When the map refuses either (a hash collision, `EEXIST`, or
/// a full map, `ENOMEM`; `EFAULT` is no stack to take) and the ring buffer
/// has a reader, both stacks go inline in a record instead
/// (`USTACK_FLAG_FP_ONLY`) and both ids are `USTACK_COPIED`. Otherwise
/// every error is counted by cause in `STACK_ERRS` (sites `who.site`,
/// `who.ksite`) and all but `EFAULT` also as a `lost` drop.
#[inline(always)]
fn map_or_inline<C: StackIdContext + EbpfContext>(
    ctx: &C,
    who: &crate::ustack::Who,
    lost: u32,
) -> (i32, i32) {
    let (u, k) = (
        stack_id(ctx, true, who.slot),
        stack_id(ctx, false, who.slot),
    );
    let refused = |id: i32| id < 0 && id != EFAULT;
    if refused(u) || refused(k) {
        if let Some(ucfg) = crate::ustack::unwind_config() {
            if ucfg.map_fallback != 0 {
                let r = crate::ustack::send_ustack(ctx.as_ptr(), ucfg, who, true);
                if r.sent {
                    if r.lost {
                        count_drop(who.slot, lost);
                    }
                    return (USTACK_COPIED, USTACK_COPIED);
                }
            }
        }
    }
    for (id, site) in [(u, who.site), (k, who.ksite)] {
        if id < 0 {
            crate::ustack::count_stack_err(who.slot, site, i64::from(id));
            if id != EFAULT {
                count_drop(who.slot, lost);
            }
        }
    }
    (u, k)
}

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn offcpu_switch(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let now = now_ns();
    // Switch-out: the current task is `prev`.
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    if tid != 0 && in_scope(cfg, tgid) {
        let gen = phase_gen();
        let slot = gen & (SLOTS - 1);
        let state = read_u64(&ctx, cfg.sw_prev_state) as u32 & 0xffff;
        // DWARF mode: only an uninterruptible wait copies the user stack
        // (copying at every switch costs too much), with its kernel stack
        // inline; the rest use frame pointers and the stack map. A copy that
        // cannot be sent falls back to them too.
        let who = crate::ustack::Who {
            kind: USTACK_OFFCPU,
            site: stack_err::OFFCPU_USER,
            slot,
            gen,
            tgid,
            tid,
            ksite: stack_err::OFFCPU_KERNEL,
            state,
            time_ns: now,
            comm: comm(),
        };
        let mut copied = false;
        if let Some(ucfg) = crate::ustack::unwind_config() {
            if ucfg.offcpu_copy != 0
                && state & TASK_PREEMPTED == 0
                && state & TASK_UNINTERRUPTIBLE != 0
            {
                let r = crate::ustack::send_ustack(ctx.as_ptr(), ucfg, &who, false);
                if r.lost {
                    count_drop(slot, drop_kind::OFFCPU_STACK_LOST);
                }
                copied = r.sent;
            }
        }
        let (ustack, kstack) = if copied {
            (USTACK_COPIED, USTACK_COPIED)
        } else {
            map_or_inline(&ctx, &who, drop_kind::OFFCPU_STACK_LOST)
        };
        let st = OffcpuStart {
            start_ns: now,
            tgid,
            ustack,
            kstack,
            state,
            comm: who.comm,
            gen,
            _pad: 0,
        };
        if OFFCPU_START.insert(&tid, &st, 0).is_err() {
            count_drop(slot, drop_kind::OFFCPU_START_FULL);
        }
    }
    // Switch-in of `next`: only tasks recorded at switch-out are in the map.
    let next = read_u32(&ctx, cfg.sw_next_pid);
    if next == 0 {
        return 0;
    }
    let Some(st) = OFFCPU_START.get_ptr(&next) else {
        return 0;
    };
    // SAFETY: value of a live entry, copied before removal.
    let st = unsafe { *st };
    let _ = OFFCPU_START.remove(&next);
    let delta = now.saturating_sub(st.start_ns);
    let slot = slot();
    if delta < cfg.min_offcpu_ns {
        count_drop(slot, drop_kind::OFFCPU_BELOW_MIN);
        return 0;
    }
    if st.ustack == USTACK_COPIED {
        // Aggregated in userspace with its unwound stack.
        crate::ustack::send_offcpu_end(slot, next, st.tgid, st.start_ns, delta);
        return 0;
    }
    let key = OffcpuKey {
        slot,
        tgid: st.tgid,
        ustack: st.ustack,
        kstack: st.kstack,
        state: st.state,
        stack_gen: st.gen,
        comm: st.comm,
    };
    if !add_agg(&OFFCPU_AGG, &key, delta) {
        count_drop(slot, drop_kind::OFFCPU_AGG_FULL);
    }
    0
}

// ---------------------------------------------------------------- writepath

/// Index in `SYSCALL_NAMES` of a write-path syscall number, or -1.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn write_path_syscall(nr: i64) -> i32 {
    match nr {
        64 => 0,
        68 => 1,
        66 => 2,
        70 => 3,
        287 => 4,
        82 => 5,
        83 => 6,
        84 => 7,
        _ => -1,
    }
}

/// Index in `SYSCALL_NAMES` of a write-path syscall number, or -1.
#[cfg(not(bpf_target_arch = "aarch64"))]
#[inline(always)]
fn write_path_syscall(nr: i64) -> i32 {
    // x86_64 numbers.
    match nr {
        1 => 0,
        18 => 1,
        20 => 2,
        296 => 3,
        328 => 4,
        74 => 5,
        75 => 6,
        277 => 7,
        _ => -1,
    }
}

/// `raw_syscalls:sys_enter` as a raw tracepoint: the syscall number is a
/// register compare on the context (no helper, no map) before anything else.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn writepath_enter(ctx: RawTracePointContext) -> u32 {
    let nr: i64 = ctx.arg(1);
    let idx = write_path_syscall(nr);
    if idx < 0 {
        return 0;
    }
    syscall_enter(&WP_START, idx as u32, drop_kind::WP_START_FULL);
    0
}

/// Runs at the exit of every syscall of every task: only threads with an
/// in-flight entry (recorded in scope at entry) have anything to do, and
/// a thread's next exit after a write-path entry is that syscall's.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn writepath_exit(_ctx: RawTracePointContext) -> u32 {
    syscall_exit(
        bpf_get_current_pid_tgid(),
        &WP_START,
        &WP_AGG,
        drop_kind::WP_AGG_FULL,
    );
    0
}

/// [`writepath_enter`] as a BTF-typed raw tracepoint (`tp_btf/sys_enter`):
/// same hook and cost class, `id` read straight from the context.
#[btf_tracepoint(function = "sys_enter")]
pub fn writepath_enter_btf(ctx: BtfTracePointContext) -> u32 {
    let nr: i64 = ctx.arg(1);
    let idx = write_path_syscall(nr);
    if idx < 0 {
        return 0;
    }
    syscall_enter(&WP_START, idx as u32, drop_kind::WP_START_FULL);
    0
}

/// [`writepath_exit`] as a BTF-typed raw tracepoint (`tp_btf/sys_exit`).
#[btf_tracepoint(function = "sys_exit")]
pub fn writepath_exit_btf(_ctx: BtfTracePointContext) -> u32 {
    syscall_exit(
        bpf_get_current_pid_tgid(),
        &WP_START,
        &WP_AGG,
        drop_kind::WP_AGG_FULL,
    );
    0
}

/// The same probe on the per-syscall tracepoints (`syscalls:sys_enter_write`
/// and its siblings): the kernel runs it only for those syscalls, so other
/// syscalls of the target (dd's reads) and of every other task cost nothing.
/// `__syscall_nr` sits at offset 8 of every `syscalls:*` record.
#[tracepoint]
pub fn writepath_enter_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: __syscall_nr sits at offset 8 of every syscalls:* record; a
    // direct context load (the verifier checks the bounds), not the
    // bpf_probe_read_kernel helper call of `read_at`.
    let nr: i32 =
        unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(8).cast::<i32>()) };
    let idx = write_path_syscall(i64::from(nr));
    if idx < 0 {
        return 0;
    }
    syscall_enter(&WP_START, idx as u32, drop_kind::WP_START_FULL);
    0
}

/// Exit side of [`writepath_enter_tp`].
#[tracepoint]
pub fn writepath_exit_tp(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Only entries recorded (in scope) at entry are in WP_START.
    syscall_exit(pid_tgid, &WP_START, &WP_AGG, drop_kind::WP_AGG_FULL);
    0
}

// ---------------------------------------------------------------- oncpu

#[perf_event]
pub fn oncpu_sample(ctx: PerfEventContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if pid_tgid as u32 == 0 || !in_scope(cfg, tgid) {
        return 0;
    }
    let gen = phase_gen();
    let slot = gen & (SLOTS - 1);
    // DWARF mode: the user stack is copied for userspace unwinding, with
    // the kernel stack inline, and the sample is counted there, not in
    // ONCPU_AGG.
    let who = crate::ustack::Who {
        kind: USTACK_ONCPU,
        site: stack_err::ONCPU_USER,
        slot,
        gen,
        tgid,
        tid: pid_tgid as u32,
        ksite: stack_err::ONCPU_KERNEL,
        state: 0,
        time_ns: now_ns(),
        comm: comm(),
    };
    if let Some(ucfg) = crate::ustack::unwind_config() {
        if ucfg.oncpu_copy != 0 {
            if crate::ustack::send_ustack(ctx.as_ptr(), ucfg, &who, false).lost {
                count_drop(slot, drop_kind::ONCPU_STACK_LOST);
            }
            return 0;
        }
    }
    let (ustack, kstack) = map_or_inline(&ctx, &who, drop_kind::ONCPU_STACK_LOST);
    if ustack == USTACK_COPIED {
        // Counted in userspace with its inline stacks.
        return 0;
    }
    let key = OncpuKey {
        slot,
        tgid,
        ustack,
        kstack,
        comm: who.comm,
    };
    if let Some(p) = ONCPU_AGG.get_ptr_mut(&key) {
        // SAFETY: this CPU's value.
        unsafe { *p += 1 }
        return 0;
    }
    if ONCPU_AGG
        .insert(&key, &1u64, u64::from(BPF_NOEXIST))
        .is_err()
    {
        if let Some(p) = ONCPU_AGG.get_ptr_mut(&key) {
            // SAFETY: this CPU's value.
            unsafe { *p += 1 }
        } else {
            count_drop(slot, drop_kind::ONCPU_AGG_FULL);
        }
    }
    0
}

// ---------------------------------------------------------------- scope

/// Extends the target process tree: a new process (not a thread) whose
/// parent is in the set joins it.
#[tracepoint(category = "task", name = "task_newtask")]
pub fn scope_newtask(ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    if cfg.scope != SCOPE_TGIDS {
        return 0;
    }
    if read_u64(&ctx, cfg.nt_clone_flags) & CLONE_THREAD != 0 {
        return 0;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if TARGET_TGIDS.get_ptr(&parent).is_none() {
        return 0;
    }
    let child = read_u32(&ctx, cfg.nt_pid);
    if TARGET_TGIDS.insert(&child, &1u8, 0).is_err() {
        count_drop(slot(), drop_kind::TGID_SET_FULL);
    }
    0
}

/// Forgets a process of the tree when its main thread exits, so that a
/// recycled pid is not mistaken for the target.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn scope_exit(_ctx: TracePointContext) -> u32 {
    let Some(cfg) = config() else { return 0 };
    if cfg.scope != SCOPE_TGIDS {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid as u32 == (pid_tgid >> 32) as u32 {
        let _ = TARGET_TGIDS.remove(&((pid_tgid >> 32) as u32));
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
