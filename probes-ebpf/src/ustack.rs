//! Copied user stacks (issue 12): the user registers and the top of the user
//! stack of an on-CPU sample, or of an off-CPU switch-out in uninterruptible
//! wait, sent through the `USTACKS` ring buffer for `.eh_frame` unwinding in
//! userspace; and the lost-stack counters by cause (`STACK_ERRS`).
//!
//! The user registers come from `bpf_task_pt_regs(current)`: the registers
//! the task saved when it entered the kernel, valid whether the sample
//! interrupted user or kernel code, and at a context switch. The copy takes
//! whole pages from the page holding `sp` upwards (see
//! `probes_common::ustack`), built in a per-CPU scratch entry of an array
//! (a per-CPU array cannot hold 64 KiB values) and sent with
//! `bpf_ringbuf_output` at its copied length. The kernel stack, and the user
//! stack by frame pointers when the copy is full, go inline in the record
//! (`bpf_get_stack`), not through a stack map.
use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{bpf_probe_read_kernel, generated},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use probes_common::ustack::{
    stack_err, InlineStacks, OffcpuEnd, UnwindConfig, UstackHeader, UstackRecord, INLINE_FRAMES,
    USTACK_FLAG_FP_ONLY, USTACK_FLAG_FULL, USTACK_FLAG_NO_REGS, USTACK_MAX_PAGES,
    USTACK_OFFCPU_END, USTACK_PAGE,
};

/// `-EFAULT` from `bpf_get_stackid` or `bpf_get_stack`: no stack to take
/// (a kernel thread's user stack, a user-mode sample's kernel stack), not a
/// loss.
pub(crate) const EFAULT: i32 = -14;

/// Unwinding configuration (slot 0).
#[map]
pub(crate) static UNWIND_CONFIG: Array<UnwindConfig> = Array::with_max_entries(1, 0);
/// Scratch records, two per possible CPU (`cpu * 2 + site`: on-CPU, off-CPU),
/// resized by the loader to the number of CPUs.
#[map]
static USTACK_SCRATCH: Array<UstackRecord> = Array::with_max_entries(2, 0);
/// Copied stacks, to the userspace unwinder (32 MiB: about 2,000 copies of
/// 16 KiB while the unwinder maps a new binary).
#[map]
static USTACKS: RingBuf = RingBuf::with_byte_size(32 << 20, 0);
/// Lost stacks by slot, site and cause (see `probes_common::ustack::stack_err`).
#[map]
static STACK_ERRS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stack_err::COUNT, 0);

/// Offsets in `struct pt_regs` of ip, sp, frame pointer and link register.
#[cfg(bpf_target_arch = "aarch64")]
const REG_OFF: [usize; 4] = [32 * 8, 31 * 8, 29 * 8, 30 * 8];
/// Offsets in `struct pt_regs` of ip, sp, frame pointer (x86_64: rbp; no
/// link register, the last one is read as 0).
#[cfg(not(bpf_target_arch = "aarch64"))]
const REG_OFF: [usize; 4] = [16 * 8, 19 * 8, 4 * 8, usize::MAX];

#[inline(always)]
pub(crate) fn unwind_config() -> Option<&'static UnwindConfig> {
    UNWIND_CONFIG.get(0)
}

/// Counts a lost stack of `site` in `slot` by the errno of `bpf_get_stackid`.
#[inline(always)]
pub(crate) fn count_stack_err(slot: u32, site: u32, err: i64) {
    let cause = match err {
        -17 => stack_err::EEXIST,
        -12 => stack_err::ENOMEM,
        e if e == i64::from(EFAULT) => stack_err::EFAULT,
        _ => stack_err::OTHER,
    };
    count_cause(slot, site, cause);
}

#[inline(always)]
fn count_cause(slot: u32, site: u32, cause: u32) {
    let idx = (slot * stack_err::SITES + site) * stack_err::CAUSES + cause;
    if let Some(p) = STACK_ERRS.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot.
        unsafe { *p += 1 }
    }
}

/// The user registers saved at kernel entry: ip, sp, fp, lr.
#[inline(always)]
fn user_regs() -> Option<[u64; 4]> {
    // SAFETY: helpers without preconditions; the result is probe-read.
    let regs = unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) };
    if regs == 0 {
        return None;
    }
    let base = regs as usize as *const u8;
    let mut out = [0u64; 4];
    for (i, off) in REG_OFF.iter().enumerate() {
        if *off == usize::MAX {
            continue;
        }
        // SAFETY: probe-read of the task's pt_regs.
        out[i] = unsafe { bpf_probe_read_kernel(base.wrapping_add(*off).cast::<u64>()) }.ok()?;
    }
    Some(out)
}

/// Sends the end of an off-CPU period whose stack was copied.
#[inline(always)]
pub(crate) fn send_offcpu_end(slot: u32, tid: u32, tgid: u32, start_ns: u64, delta_ns: u64) {
    let end = OffcpuEnd {
        kind: USTACK_OFFCPU_END,
        slot,
        tid,
        tgid,
        start_ns,
        delta_ns,
    };
    if USTACKS.output::<OffcpuEnd>(&end, 0).is_err() {
        count_cause(slot, stack_err::OFFCPU_USER, stack_err::RINGBUF_FULL);
    }
}

/// Which fields of a record the caller fills.
pub(crate) struct Who {
    pub kind: u32,
    pub site: u32,
    pub slot: u32,
    pub gen: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Site of the kernel stack (lost-stack counters).
    pub ksite: u32,
    pub state: u32,
    pub time_ns: u64,
    pub comm: [u8; probes_common::COMM_LEN],
}

/// What [`send_ustack`] did.
pub(crate) struct Sent {
    /// The record went to the ring buffer (if not, it was counted).
    pub sent: bool,
    /// A stack of a sent record was lost: the kernel stack, or the user
    /// stack of an `fp_only` record (counted by cause; the caller counts
    /// the drop).
    pub lost: bool,
}

/// Copies the user registers and stack of the current task, walks its
/// kernel stack (and its user stack by frame pointers when the copy is
/// full) into the record, and sends it. `ctx` is the program's context.
/// `fp_only`: copy nothing, walk the user stack by frame pointers instead
/// (`USTACK_FLAG_FP_ONLY`: the stack map refused the stacks).
#[inline(always)]
pub(crate) fn send_ustack(
    ctx: *mut core::ffi::c_void,
    cfg: &UnwindConfig,
    who: &Who,
    fp_only: bool,
) -> Sent {
    let not_sent = Sent {
        sent: false,
        lost: false,
    };
    // SAFETY: no preconditions.
    let cpu = unsafe { generated::bpf_get_smp_processor_id() };
    let scratch_site = if who.kind == probes_common::ustack::USTACK_OFFCPU {
        1
    } else {
        0
    };
    let Some(rec) = USTACK_SCRATCH.get_ptr_mut(cpu * 2 + scratch_site) else {
        count_cause(who.slot, who.site, stack_err::OTHER);
        return not_sent;
    };
    // SAFETY: this CPU's scratch entry for this site; these programs do not
    // nest on one CPU for one site.
    let rec = unsafe { &mut *rec };
    let mut flags = if fp_only { USTACK_FLAG_FP_ONLY } else { 0 };
    let (mut pages, mut base) = (0u32, 0u64);
    let regs = user_regs();
    let r = match regs {
        Some(r) => r,
        None => {
            flags |= USTACK_FLAG_NO_REGS;
            [0; 4]
        }
    };
    if !fp_only && regs.is_some() && r[1] != 0 {
        base = r[1] & !(USTACK_PAGE as u64 - 1);
        let data = rec.data.as_mut_ptr();
        for i in 0..USTACK_MAX_PAGES {
            if i >= cfg.copy_pages {
                break;
            }
            let off = i as usize * USTACK_PAGE;
            // SAFETY: off + USTACK_PAGE <= USTACK_MAX, inside the record.
            let rc = unsafe {
                generated::bpf_probe_read_user(
                    data.wrapping_add(off).cast(),
                    USTACK_PAGE as u32,
                    (base + off as u64) as usize as *const core::ffi::c_void,
                )
            };
            if rc != 0 {
                break;
            }
            pages += 1;
        }
        if pages >= cfg.copy_pages {
            flags |= USTACK_FLAG_FULL;
        }
    }
    if pages > USTACK_MAX_PAGES {
        return not_sent;
    }
    let (kstack_err, kframes) = inline_stack(ctx, &mut rec.stacks, false);
    let (ustack_err, fp_frames) = if flags & (USTACK_FLAG_FULL | USTACK_FLAG_FP_ONLY) != 0 {
        inline_stack(ctx, &mut rec.stacks, true)
    } else {
        (0, 0)
    };
    // The walk carries an fp_only record's user stack: its failure (but
    // EFAULT, no user stack to take) loses that stack.
    let ustack_lost = fp_only && ustack_err < 0 && ustack_err != EFAULT;
    let kstack_lost = kstack_err < 0 && kstack_err != EFAULT;
    rec.hdr = UstackHeader {
        kind: who.kind,
        slot: who.gen,
        tgid: who.tgid,
        tid: who.tid,
        kstack_err,
        flags,
        ip: r[0],
        sp: r[1],
        fp: r[2],
        lr: r[3],
        base,
        copied: pages * USTACK_PAGE as u32,
        state: who.state,
        time_ns: who.time_ns,
        comm: who.comm,
        kframes,
        fp_frames,
    };
    let len = core::mem::size_of::<UstackHeader>()
        + core::mem::size_of::<InlineStacks>()
        + pages as usize * USTACK_PAGE;
    // SAFETY: len <= size_of::<UstackRecord>() (pages <= USTACK_MAX_PAGES).
    let bytes =
        unsafe { core::slice::from_raw_parts((rec as *const UstackRecord).cast::<u8>(), len) };
    if USTACKS.output::<[u8]>(bytes, 0).is_err() {
        count_cause(who.slot, who.site, stack_err::RINGBUF_FULL);
        return not_sent;
    }
    // Counted only for a record that was sent: an unsent one falls back to
    // the stack map (off-CPU), which counts its own losses.
    if kstack_err < 0 {
        count_stack_err(who.slot, who.ksite, i64::from(kstack_err));
    }
    if ustack_lost {
        count_stack_err(who.slot, who.site, i64::from(ustack_err));
    }
    Sent {
        sent: true,
        lost: kstack_lost || ustack_lost,
    }
}

/// Walks the kernel stack (`user` false) or the user stack by frame
/// pointers into `stacks`: (0 or the negative errno, frames written).
#[inline(always)]
fn inline_stack(ctx: *mut core::ffi::c_void, stacks: &mut InlineStacks, user: bool) -> (i32, u32) {
    let (buf, flags) = if user {
        (stacks.user_fp.as_mut_ptr(), u64::from(BPF_F_USER_STACK))
    } else {
        (stacks.kernel.as_mut_ptr(), 0)
    };
    // SAFETY: buf holds INLINE_FRAMES u64s, inside this CPU's scratch entry.
    let n = unsafe { generated::bpf_get_stack(ctx, buf.cast(), (INLINE_FRAMES * 8) as u32, flags) };
    if n < 0 {
        (n as i32, 0)
    } else {
        (0, (n as u32 / 8).min(INLINE_FRAMES as u32))
    }
}
