//! What one phase window drained from the kernel maps: aggregates keyed as
//! in the kernel, lost-event counters, the stacks they reference and the
//! memory maps of the processes they name (captured while those processes
//! were alive, so that they can be symbolized after they exit).
use std::{collections::HashMap, sync::Arc};

use probes_common::{
    drop_kind, ustack::stack_err, Agg, BioAgg, BioKey, OffcpuKey, OncpuKey, SyscallKey,
};

use crate::unwind::{CopyStats, StackEnd, UnwindMode};

pub use crate::procmaps::{parse_maps, read_proc, Mapping, ProcInfo};

/// Lost-event counters of one window, by `drop_kind`.
pub type Drops = [u64; drop_kind::COUNT as usize];

/// Lost events by name (only kinds that are losses, zero ones included).
pub fn lost_by_name(d: &Drops) -> std::collections::BTreeMap<String, u64> {
    (0..drop_kind::COUNT)
        .filter(|k| drop_kind::is_loss(*k))
        .map(|k| (drop_kind::NAMES[k as usize].to_owned(), d[k as usize]))
        .collect()
}

/// The raw data of one phase window.
#[derive(Debug, Default, Clone)]
pub struct RawPhase {
    /// Phase name.
    pub name: String,
    /// Window start, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Window end, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// fsync aggregates (slot field is stale, ignore it).
    pub fsync: Vec<(SyscallKey, Agg)>,
    /// Block-request aggregates.
    pub bio: Vec<(BioKey, BioAgg)>,
    /// Off-CPU aggregates.
    pub offcpu: Vec<(OffcpuKey, Agg)>,
    /// Write-path aggregates.
    pub writepath: Vec<(SyscallKey, Agg)>,
    /// On-CPU sample counts.
    pub oncpu: Vec<(OncpuKey, u64)>,
    /// Lost-event and bookkeeping counters.
    pub drops: Drops,
    /// Instruction pointers of every referenced stack id (leaf first).
    pub stacks: HashMap<i32, Arc<Vec<u64>>>,
    /// Processes referenced by the stacks.
    pub procs: HashMap<u32, Arc<ProcInfo>>,
    /// The probes' own cost over the window (`bpf_stats`).
    pub cost: Option<crate::bpf_stats::WindowCost>,
    /// How user stacks were unwound (issue 12).
    pub unwind: UnwindMode,
    /// Why each unwound user stack (id >= `USTACK_ID_BASE`) ended.
    pub ustack_ends: HashMap<i32, StackEnd>,
    /// User-stack copy statistics: on-CPU, off-CPU.
    pub copy: [CopyStats; 2],
    /// Lost stacks by site and cause (`probes_common::ustack::stack_err`).
    pub stack_errs: StackErrs,
}

/// Lost stacks of one window, `[site][cause]`.
pub type StackErrs = [[u64; stack_err::CAUSES as usize]; stack_err::SITES as usize];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_maps_with_spaces() {
        let text = "55d0c0000000-55d0c0010000 r--p 00000000 fe:01 123 /usr/bin/x\n\
                    55d0c0010000-55d0c0020000 r-xp 00010000 fe:01 123 /opt/my app/bin x\n\
                    7ffd1000-7ffd3000 r-xp 00000000 00:00 0 [vdso]\n\
                    7ffd5000-7ffd6000 rw-p 00000000 00:00 0\n";
        let m = parse_maps(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].path, "[vdso]");
        assert_eq!(
            m[1],
            Mapping {
                start: 0x55d0c0010000,
                end: 0x55d0c0020000,
                offset: 0x10000,
                path: "/opt/my app/bin x".into()
            }
        );
    }
}
