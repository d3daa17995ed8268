//! Types shared by the kernel programs (`probes-ebpf`) and their loader
//! (`probes`): map keys and values, the run-time configuration and the
//! indices of the lost-event counters.
//!
//! Every type is `#[repr(C)]` with its fields ordered so that there is no
//! implicit padding (explicit `_pad` fields instead), because map keys are
//! hashed byte for byte by the kernel and any uninitialised padding byte would
//! split one logical key into several. `aya::Pod` is implemented behind the
//! `user` feature.
//!
//! Phase slots: every aggregate key starts with `slot`, the phase slot the
//! kernel read from the `PHASE` map when it recorded the event. The loader
//! flips the slot at a phase boundary and then drains the old slot, so an
//! event is never lost or counted twice at a boundary.
#![no_std]

#[cfg(feature = "clock")]
extern crate std;

#[cfg(feature = "clock")]
pub mod clock;
pub mod ustack;

/// Length of a task's `comm` (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of the RWBS string kept per block request (NUL padded).
pub const RWBS_LEN: usize = 8;
/// Number of phase slots the kernel side alternates between.
pub const SLOTS: u32 = 2;
/// Number of log2 buckets: bucket 0 holds 0, bucket b >= 1 holds
/// [2^(b-1), 2^b), as bpftrace's `hist()`.
pub const HIST_BUCKETS: u32 = 64;

/// Scope: every task on the machine except the probe process itself.
pub const SCOPE_SYSTEM: u32 = 0;
/// Scope: the tgids in `TARGET_TGIDS` (a process tree, extended on fork).
pub const SCOPE_TGIDS: u32 = 1;
/// Scope: the cgroup v2 ids in `TARGET_CGROUPS` (a cgroup and its descendants).
pub const SCOPE_CGROUPS: u32 = 2;

/// Write-path syscalls, in output order. The index is the `syscall` field of
/// [`SyscallKey`].
pub const SYSCALL_NAMES: [&str; 8] = [
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "fsync",
    "fdatasync",
    "sync_file_range",
];
/// Index of fsync in [`SYSCALL_NAMES`].
pub const SYS_FSYNC: u32 = 5;
/// Index of fdatasync in [`SYSCALL_NAMES`].
pub const SYS_FDATASYNC: u32 = 6;

/// Lost-event and bookkeeping counters, indexed `slot * DROP_KINDS + kind`
/// in the per-CPU `DROPS` array.
pub mod drop_kind {
    /// fsync: in-flight map full at syscall entry.
    pub const FSYNC_START_FULL: u32 = 0;
    /// fsync: aggregate map full.
    pub const FSYNC_AGG_FULL: u32 = 1;
    /// bio: in-flight request map full at issue.
    pub const BIO_START_FULL: u32 = 2;
    /// bio: aggregate map full.
    pub const BIO_AGG_FULL: u32 = 3;
    /// offcpu: in-flight (switched-out task) map full.
    pub const OFFCPU_START_FULL: u32 = 4;
    /// offcpu: aggregate map full.
    pub const OFFCPU_AGG_FULL: u32 = 5;
    /// offcpu: stack could not be stored (stack map collision or full).
    pub const OFFCPU_STACK_LOST: u32 = 6;
    /// writepath: in-flight map full at syscall entry.
    pub const WP_START_FULL: u32 = 7;
    /// writepath: aggregate map full.
    pub const WP_AGG_FULL: u32 = 8;
    /// oncpu: aggregate map full.
    pub const ONCPU_AGG_FULL: u32 = 9;
    /// oncpu: stack could not be stored (stack map collision or full).
    pub const ONCPU_STACK_LOST: u32 = 10;
    /// Scope: a new process of the tree could not be added (tgid set full).
    pub const TGID_SET_FULL: u32 = 11;
    /// Not a loss: off-CPU periods shorter than the threshold.
    pub const OFFCPU_BELOW_MIN: u32 = 12;
    /// Not a loss: block completions whose issue was not seen (in flight at attach).
    pub const BIO_UNMATCHED: u32 = 13;
    /// Number of kinds.
    pub const COUNT: u32 = 14;
    /// Names, by index, as they appear in the outputs.
    pub const NAMES: [&str; COUNT as usize] = [
        "fsync_inflight_full",
        "fsync_map_full",
        "bio_inflight_full",
        "bio_map_full",
        "offcpu_inflight_full",
        "offcpu_map_full",
        "offcpu_stack_lost",
        "writepath_inflight_full",
        "writepath_map_full",
        "oncpu_map_full",
        "oncpu_stack_lost",
        "tgid_set_full",
        "offcpu_below_threshold",
        "bio_unmatched_completion",
    ];
    /// Whether a kind is a loss (as opposed to bookkeeping).
    pub const fn is_loss(kind: u32) -> bool {
        kind != OFFCPU_BELOW_MIN && kind != BIO_UNMATCHED
    }
}

/// Run-time configuration, slot 0 of the `CONFIG` array. Tracepoint field
/// offsets come from tracefs `format` files so that one object runs on any
/// kernel (this host's 6.18, the guest's 6.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// One of `SCOPE_*`.
    pub scope: u32,
    /// The probe process itself, never recorded.
    pub self_tgid: u32,
    /// Off-CPU periods shorter than this are not recorded (only counted).
    pub min_offcpu_ns: u64,
    /// `sched_switch`: offset of `prev_pid`.
    pub sw_prev_pid: u32,
    /// `sched_switch`: offset of `prev_state` (a `long`).
    pub sw_prev_state: u32,
    /// `sched_switch`: offset of `next_pid`.
    pub sw_next_pid: u32,
    /// `block_rq_issue`: offset of `dev`.
    pub rq_dev: u32,
    /// `block_rq_issue`: offset of `sector`.
    pub rq_sector: u32,
    /// `block_rq_issue`: offset of `bytes`.
    pub rq_bytes: u32,
    /// `block_rq_issue`: offset of `rwbs`.
    pub rq_rwbs: u32,
    /// `block_rq_complete`: offset of `dev`.
    pub rqc_dev: u32,
    /// `block_rq_complete`: offset of `sector`.
    pub rqc_sector: u32,
    /// `task_newtask`: offset of `pid`.
    pub nt_pid: u32,
    /// `task_newtask`: offset of `clone_flags`.
    pub nt_clone_flags: u32,
    /// Scope `SCOPE_TGIDS`: the watched process itself, checked by a compare
    /// before the `TARGET_TGIDS` lookup (its descendants); 0 otherwise.
    pub root_tgid: u32,
}

/// A log2 latency bucket of one syscall, keyed by process and thread name
/// (`fsync` and `writepath` probes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    /// Phase slot.
    pub slot: u32,
    /// Process (thread group) id.
    pub tgid: u32,
    /// Index in [`SYSCALL_NAMES`].
    pub syscall: u32,
    /// log2 bucket of the latency in µs.
    pub bucket: u32,
    /// Thread name.
    pub comm: [u8; COMM_LEN],
}

/// The kernel's key of the syscall probes (`fsync`, `writepath`): a log2
/// latency bucket of one syscall of one thread. The thread name is not in
/// the hot key: it is recorded once per thread in `THREAD_COMM` (at the
/// thread's first call) and joined in userspace at drain time, which turns
/// these keys into [`SyscallKey`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallTidKey {
    /// Phase slot.
    pub slot: u32,
    /// Process (thread group) id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Index in [`SYSCALL_NAMES`].
    pub syscall: u16,
    /// log2 bucket of the latency in µs.
    pub bucket: u16,
}

/// Count and summed latency.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agg {
    /// Events.
    pub count: u64,
    /// Sum of latencies (or off-CPU time) in ns.
    pub sum_ns: u64,
}

/// A syscall in flight, keyed by `pid_tgid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallStart {
    /// `bpf_ktime_get_ns` at entry.
    pub start_ns: u64,
    /// Index in [`SYSCALL_NAMES`].
    pub syscall: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// A block request in flight.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BioStartKey {
    /// Device (kernel `dev_t`: major << 20 | minor).
    pub dev: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// First sector.
    pub sector: u64,
}

/// What is remembered about a request between issue and completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioStart {
    /// `bpf_ktime_get_ns` at issue.
    pub start_ns: u64,
    /// Request size.
    pub bytes: u64,
    /// RWBS, a C string NUL padded (nothing after the first NUL).
    pub rwbs: [u8; RWBS_LEN],
}

/// A log2 latency bucket of block requests of one device and RWBS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BioKey {
    /// Phase slot.
    pub slot: u32,
    /// Device (kernel `dev_t`).
    pub dev: u32,
    /// log2 bucket of the latency in µs.
    pub bucket: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// RWBS, a C string NUL padded (nothing after the first NUL).
    pub rwbs: [u8; RWBS_LEN],
}

/// Count, summed latency and bytes of block requests.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioAgg {
    /// Requests.
    pub count: u64,
    /// Sum of issue-to-completion latencies in ns.
    pub sum_ns: u64,
    /// Sum of request sizes.
    pub bytes: u64,
}

/// A target thread switched out, keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffcpuStart {
    /// `bpf_ktime_get_ns` at switch-out.
    pub start_ns: u64,
    /// Process.
    pub tgid: u32,
    /// User stack id in `STACKS` (negative: error from `bpf_get_stackid`).
    pub ustack: i32,
    /// Kernel stack id in `STACKS` (negative: error).
    pub kstack: i32,
    /// `prev_state` at switch-out (0: preempted while runnable).
    pub state: u32,
    /// Thread name.
    pub comm: [u8; COMM_LEN],
    /// Phase generation at switch-out: names the stack map of the ids.
    pub gen: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Off-CPU time of one (process, thread name, stacks, state).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OffcpuKey {
    /// Phase slot.
    pub slot: u32,
    /// Process.
    pub tgid: u32,
    /// User stack id (negative: error).
    pub ustack: i32,
    /// Kernel stack id (negative: error).
    pub kstack: i32,
    /// `prev_state` at switch-out, masked to the low 16 bits.
    pub state: u32,
    /// Phase generation at switch-out: names the stack map of the ids.
    pub stack_gen: u32,
    /// Thread name.
    pub comm: [u8; COMM_LEN],
}

/// On-CPU samples of one (process, thread name, stacks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OncpuKey {
    /// Phase slot.
    pub slot: u32,
    /// Process.
    pub tgid: u32,
    /// User stack id (negative: error).
    pub ustack: i32,
    /// Kernel stack id (negative: error).
    pub kstack: i32,
    /// Thread name.
    pub comm: [u8; COMM_LEN],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are #[repr(C)], Copy, made only of integers and
    // byte arrays, with no implicit padding (checked by the size tests).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::SyscallKey {}
    unsafe impl aya::Pod for super::SyscallTidKey {}
    unsafe impl aya::Pod for super::Agg {}
    unsafe impl aya::Pod for super::SyscallStart {}
    unsafe impl aya::Pod for super::BioStartKey {}
    unsafe impl aya::Pod for super::BioStart {}
    unsafe impl aya::Pod for super::BioKey {}
    unsafe impl aya::Pod for super::BioAgg {}
    unsafe impl aya::Pod for super::OffcpuStart {}
    unsafe impl aya::Pod for super::OffcpuKey {}
    unsafe impl aya::Pod for super::OncpuKey {}
}

/// log2 bucket as bpftrace's `hist()`: 0 -> 0, v >= 1 -> floor(log2 v) + 1.
/// Written without loops or `leading_zeros` so that the BPF back end emits
/// straight-line code.
#[inline(always)]
pub fn log2_bucket(v: u64) -> u32 {
    if v == 0 {
        return 0;
    }
    let mut x = v;
    let mut r = 0u32;
    if x >= 1 << 32 {
        x >>= 32;
        r += 32;
    }
    if x >= 1 << 16 {
        x >>= 16;
        r += 16;
    }
    if x >= 1 << 8 {
        x >>= 8;
        r += 8;
    }
    if x >= 1 << 4 {
        x >>= 4;
        r += 4;
    }
    if x >= 1 << 2 {
        x >>= 2;
        r += 2;
    }
    if x >= 1 << 1 {
        r += 1;
    }
    r + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_have_no_implicit_padding() {
        // Sum of field sizes == struct size means no hidden padding.
        assert_eq!(size_of::<Config>(), 4 + 4 + 8 + 12 * 4);
        assert_eq!(size_of::<SyscallKey>(), 4 * 4 + COMM_LEN);
        assert_eq!(size_of::<SyscallTidKey>(), 3 * 4 + 2 * 2);
        assert_eq!(size_of::<Agg>(), 16);
        assert_eq!(size_of::<SyscallStart>(), 16);
        assert_eq!(size_of::<BioStartKey>(), 16);
        assert_eq!(size_of::<BioStart>(), 16 + RWBS_LEN);
        assert_eq!(size_of::<BioKey>(), 16 + RWBS_LEN);
        assert_eq!(size_of::<BioAgg>(), 24);
        assert_eq!(size_of::<OffcpuStart>(), 8 + 16 + COMM_LEN + 8);
        assert_eq!(size_of::<OffcpuKey>(), 24 + COMM_LEN);
        assert_eq!(size_of::<OncpuKey>(), 16 + COMM_LEN);
    }

    #[test]
    fn log2_bucket_matches_bpftrace_hist() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 1);
        assert_eq!(log2_bucket(2), 2);
        assert_eq!(log2_bucket(3), 2);
        assert_eq!(log2_bucket(4), 3);
        assert_eq!(log2_bucket(1023), 10);
        assert_eq!(log2_bucket(1024), 11);
        assert_eq!(log2_bucket(u64::MAX), 64);
        for v in 1..5000u64 {
            assert_eq!(log2_bucket(v), 64 - v.leading_zeros());
        }
    }
}
