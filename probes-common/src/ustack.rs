//! Copied user stacks (issue 12): the run-time unwinding configuration, the
//! record a program sends through the `USTACKS` ring buffer (user registers
//! and the top of the user stack, for `.eh_frame` unwinding in userspace),
//! and the lost-stack counters by cause.
//!
//! The copy starts at the page that holds the user `sp` (`sp & !4095`) and
//! takes whole pages upwards, at most `copy_pages`: every read is one
//! constant-size `bpf_probe_read_user`, which any verifier accepts, and a
//! read that faults (the end of the stack mapping) ends the copy. The record
//! is sent with only the pages copied.
//!
//! Two stacks the kernel walks travel inline with every record, not through
//! a stack map (whose hash buckets collide, `-EEXIST`): the kernel stack,
//! and the user stack by frame pointers. The second lets userspace go on
//! along the frame-pointer chain where the `.eh_frame` walk reaches the end
//! of the copy (a stack deeper than the copy size).

/// Size of one copied page.
pub const USTACK_PAGE: usize = 4096;
/// Most pages a record can hold (64 KiB: the reference node's release
/// tokio stacks, which perf unwinds whole with its 64 KiB copy).
pub const USTACK_MAX_PAGES: u32 = 16;
/// Bytes of stack a record can hold.
pub const USTACK_MAX: usize = USTACK_PAGE * USTACK_MAX_PAGES as usize;

/// Whether `bytes` is a copy size a session accepts: whole pages, from one
/// page to [`USTACK_MAX`] (`qfc-probe --ustack-bytes`, `[probes] ustack_bytes`).
pub const fn ustack_bytes_ok(bytes: u32) -> bool {
    let (page, max) = (USTACK_PAGE as u32, USTACK_MAX as u32);
    bytes >= page && bytes <= max && bytes % page == 0
}

/// Frames an inline stack holds (`PERF_MAX_STACK_DEPTH`, as a stack map).
pub const INLINE_FRAMES: usize = 127;

/// `UstackHeader::kind`: an on-CPU sample (its count is one).
pub const USTACK_ONCPU: u32 = 1;
/// `UstackHeader::kind`: an off-CPU switch-out in uninterruptible wait.
pub const USTACK_OFFCPU: u32 = 2;

/// Record kind of an [`OffcpuEnd`]: the switch-in that ends an off-CPU
/// period whose stack was copied at switch-out.
pub const USTACK_OFFCPU_END: u32 = 3;

/// `OffcpuStart::ustack` of a period whose user stack went to `USTACKS`
/// (not an errno: those are -1..-4095).
pub const USTACK_COPIED: i32 = -0x4000_0000;
/// `prev_state` bit of an uninterruptible wait (`TASK_UNINTERRUPTIBLE`).
pub const TASK_UNINTERRUPTIBLE: u32 = 2;
/// `prev_state` bit of a preempted (runnable) task (`TASK_REPORT_MAX`).
pub const TASK_PREEMPTED: u32 = 0x100;

/// `UstackHeader::flags`: every page asked for was read, so the stack may
/// go on above the copy (an unwind that runs past it was cut by the size).
pub const USTACK_FLAG_FULL: u32 = 1;
/// `UstackHeader::flags`: the user registers could not be read.
pub const USTACK_FLAG_NO_REGS: u32 = 2;
/// `UstackHeader::flags`: no copy; the user stack is the kernel's
/// frame-pointer walk in `InlineStacks::user_fp`. Sent when the stack map
/// refused a stack (a hash collision, `EEXIST`, or a full map, `ENOMEM`)
/// that frame pointers were to carry.
pub const USTACK_FLAG_FP_ONLY: u32 = 4;

/// Unwinding configuration, slot 0 of the `UNWIND_CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnwindConfig {
    /// 1: on-CPU samples copy the user stack into `USTACKS` instead of
    /// `bpf_get_stackid(BPF_F_USER_STACK)` (frame pointers).
    pub oncpu_copy: u32,
    /// 1: off-CPU switch-outs in uninterruptible wait copy the user stack.
    pub offcpu_copy: u32,
    /// Pages copied per record, 1..=`USTACK_MAX_PAGES` (0 when nothing is
    /// copied: `fp` mode).
    pub copy_pages: u32,
    /// 1: a stack that the stack map refuses goes inline through `USTACKS`
    /// (`USTACK_FLAG_FP_ONLY`) instead of being lost. Set whenever the
    /// ring buffer has a reader.
    pub map_fallback: u32,
}

/// What a record carries before the stack bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UstackHeader {
    /// `USTACK_ONCPU` or `USTACK_OFFCPU`.
    pub kind: u32,
    /// Phase generation (the `PHASE` value; the slot is its low bit).
    pub slot: u32,
    /// Process.
    pub tgid: u32,
    /// Thread.
    pub tid: u32,
    /// 0, or the negative errno of `bpf_get_stack` for the kernel stack
    /// (`InlineStacks::kernel`).
    pub kstack_err: i32,
    /// `USTACK_FLAG_*`.
    pub flags: u32,
    /// User instruction pointer.
    pub ip: u64,
    /// User stack pointer.
    pub sp: u64,
    /// User frame pointer (rbp, x29).
    pub fp: u64,
    /// Link register (x30 on aarch64, 0 on x86_64).
    pub lr: u64,
    /// Address of the first copied byte (`sp & !4095`).
    pub base: u64,
    /// Bytes copied (a multiple of `USTACK_PAGE`).
    pub copied: u32,
    /// `prev_state` at switch-out (off-CPU), 0 on-CPU.
    pub state: u32,
    /// `bpf_ktime_get_ns` when the record was made.
    pub time_ns: u64,
    /// Thread name.
    pub comm: [u8; crate::COMM_LEN],
    /// Valid frames in `InlineStacks::kernel` (0: no kernel stack).
    pub kframes: u32,
    /// Valid frames in `InlineStacks::user_fp` (0: none taken or none found).
    pub fp_frames: u32,
}

/// The stacks the kernel walked for a record, leaf first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct InlineStacks {
    /// Kernel stack (`bpf_get_stack`, flags 0).
    pub kernel: [u64; INLINE_FRAMES],
    /// User stack by frame pointers (`bpf_get_stack`, `BPF_F_USER_STACK`),
    /// taken only when the copy is full (`USTACK_FLAG_FULL`) or there is
    /// no copy (`USTACK_FLAG_FP_ONLY`).
    pub user_fp: [u64; INLINE_FRAMES],
}

/// The end of an off-CPU period whose user stack was copied: sent at
/// switch-in, matched in userspace with the copy by (`tid`, `start_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffcpuEnd {
    /// `USTACK_OFFCPU_END`.
    pub kind: u32,
    /// Phase slot at switch-in.
    pub slot: u32,
    /// Thread.
    pub tid: u32,
    /// Process.
    pub tgid: u32,
    /// Switch-out time (the copy's `time_ns`).
    pub start_ns: u64,
    /// Off-CPU time.
    pub delta_ns: u64,
}

/// A record as the programs build it in their per-CPU scratch entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UstackRecord {
    /// Registers and identity.
    pub hdr: UstackHeader,
    /// Kernel stack and frame-pointer user stack.
    pub stacks: InlineStacks,
    /// Stack bytes, `hdr.copied` of them valid.
    pub data: [u8; USTACK_MAX],
}

/// Lost-stack counters, indexed
/// `(slot * STACK_SITES + site) * STACK_CAUSES + cause` in the per-CPU
/// `STACK_ERRS` array.
pub mod stack_err {
    /// Site: the user stack of an on-CPU sample.
    pub const ONCPU_USER: u32 = 0;
    /// Site: the kernel stack of an on-CPU sample.
    pub const ONCPU_KERNEL: u32 = 1;
    /// Site: the user stack of an off-CPU period.
    pub const OFFCPU_USER: u32 = 2;
    /// Site: the kernel stack of an off-CPU period.
    pub const OFFCPU_KERNEL: u32 = 3;
    /// Number of sites.
    pub const SITES: u32 = 4;
    /// Site names, by index.
    pub const SITE_NAMES: [&str; SITES as usize] =
        ["oncpu_user", "oncpu_kernel", "offcpu_user", "offcpu_kernel"];

    /// `-EEXIST`: the stack's hash bucket holds another stack.
    pub const EEXIST: u32 = 0;
    /// `-ENOMEM`: the stack map has no free entry.
    pub const ENOMEM: u32 = 1;
    /// `-EFAULT`: no stack to take (not a loss for a kernel thread's user stack).
    pub const EFAULT: u32 = 2;
    /// A copied-stack record did not fit in the ring buffer.
    pub const RINGBUF_FULL: u32 = 3;
    /// Any other error.
    pub const OTHER: u32 = 4;
    /// Number of causes.
    pub const CAUSES: u32 = 5;
    /// Cause names, by index (the errno name where there is one).
    pub const CAUSE_NAMES: [&str; CAUSES as usize] =
        ["EEXIST", "ENOMEM", "EFAULT", "ringbuf_full", "other"];
    /// Entries of the counter array.
    pub const COUNT: u32 = crate::SLOTS * SITES * CAUSES;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)], Copy, integers and byte arrays only, no implicit
    // padding (checked by the size tests).
    unsafe impl aya::Pod for super::UnwindConfig {}
    unsafe impl aya::Pod for super::UstackHeader {}
    unsafe impl aya::Pod for super::OffcpuEnd {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_have_no_implicit_padding() {
        assert_eq!(size_of::<UnwindConfig>(), 16);
        assert_eq!(size_of::<OffcpuEnd>(), 32);
        assert_eq!(
            size_of::<UstackHeader>(),
            6 * 4 + 5 * 8 + 2 * 4 + 8 + crate::COMM_LEN + 2 * 4
        );
        assert_eq!(size_of::<UstackHeader>() % 8, 0);
        assert_eq!(size_of::<InlineStacks>(), 2 * INLINE_FRAMES * 8);
        assert_eq!(
            size_of::<UstackRecord>(),
            size_of::<UstackHeader>() + size_of::<InlineStacks>() + USTACK_MAX
        );
        assert_eq!(stack_err::SITE_NAMES.len(), stack_err::SITES as usize);
        assert_eq!(stack_err::CAUSE_NAMES.len(), stack_err::CAUSES as usize);
    }
}
