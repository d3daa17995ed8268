//! DWARF unwinding of copied user stacks (issue 12): the `unwind` mode, the
//! per-process `.eh_frame` unwinders (framehop, one module per executable
//! mapping, section data cached per binary), and the reader thread that
//! drains the `USTACKS` ring buffer, unwinds every record and aggregates the
//! result per phase slot the way `ONCPU_AGG` does in the kernel.
//!
//! Unwound stacks get ids of their own (`USTACK_ID_BASE` and up, never a
//! `STACKS` id) so that a window's keys keep the kernel's shape.
//!
//! A walk ends for one named reason ([`StackEnd`]); only [`StackEnd::Root`]
//! is a whole stack. In `dwarf` mode the walk stops at the first address
//! whose mapping has no unwind table (no `.eh_frame`/`.debug_frame`, an
//! anonymous or JIT mapping, no mapping at all) rather than guess: never a
//! wrong frame. In `auto` mode framehop falls back to frame pointers there.
//!
//! A walk that reaches the end of a full copy (a stack deeper than the copy
//! size) goes on along the kernel's frame-pointer walk of the same stack,
//! which the record carries inline, from the frame where both walks meet
//! ([`stitch`]); where they do not meet, the stack stays cut. The record's
//! kernel stack, also inline, gets an id of the same dictionary.
use std::{
    collections::HashMap,
    ops::{Deref, Range},
    path::Path,
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use framehop::{Error as FhError, FrameAddress, Module, Unwinder as _};
use object::{Object as _, ObjectSection as _, ObjectSegment as _};
use probes_common::{
    ustack::{
        InlineStacks, OffcpuEnd, UstackHeader, INLINE_FRAMES, USTACK_FLAG_FP_ONLY,
        USTACK_FLAG_FULL, USTACK_FLAG_NO_REGS, USTACK_OFFCPU, USTACK_OFFCPU_END, USTACK_ONCPU,
    },
    Agg, OffcpuKey, OncpuKey, SLOTS,
};
use serde::Serialize;

use crate::procmaps::{parse_maps, Mapping, ProcInfo};

/// First id of an unwound user stack or an inline kernel stack (kernel
/// `STACKS` ids stay below).
pub const USTACK_ID_BASE: i32 = 1 << 30;
/// `-EFAULT`, the stack id of "no stack to take" (not a loss).
const NO_STACK: i32 = -14;
/// Frame limit of one walk (as `PERF_MAX_STACK_DEPTH`).
pub const MAX_FRAMES: usize = 127;

/// How user stacks are unwound (`[probes] unwind`, `qfc-probe --unwind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum UnwindMode {
    /// Frame pointers in the kernel (`bpf_get_stackid`): cheap, broken by
    /// code built without them.
    #[default]
    Fp,
    /// Copy the user stack, unwind with `.eh_frame` in userspace; stop where
    /// a mapping has no unwind table.
    Dwarf,
    /// As `dwarf`, but frame pointers where a mapping has no unwind table.
    Auto,
}

impl UnwindMode {
    /// Name in outputs and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp => "fp",
            Self::Dwarf => "dwarf",
            Self::Auto => "auto",
        }
    }

    /// Whether user stacks are copied for userspace unwinding.
    pub fn copies(self) -> bool {
        self != Self::Fp
    }
}

/// Why a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackEnd {
    /// The unwind table marks the outermost frame (`_start`, `clone`,
    /// `clone3`, `thread_start`): a whole stack.
    Root,
    /// The walk needed stack bytes above the copy: cut by the copy size.
    CopySize,
    /// A stack read outside the copy that the copy size does not explain
    /// (bad stack pointer, or the copy faulted).
    StackRead,
    /// An address in a file mapping without `.eh_frame` or `.debug_frame`
    /// (dwarf mode), or a file that could not be read.
    NoUnwindInfo,
    /// An address in an anonymous mapping (JIT code, `[anon]`, `[heap]`).
    Anonymous,
    /// An address in no mapping of the process.
    Unmapped,
    /// The user registers could not be read (kernel thread, no user context).
    NoRegs,
    /// More than [`MAX_FRAMES`] frames.
    MaxDepth,
    /// framehop stopped: the unwinder did not advance or overflowed.
    Unwinder,
    /// Frame-pointer walk (`bpf_get_stackid`), whose end is not known.
    FramePointers,
    /// The walk reached the end of a full copy and went on along the
    /// kernel's frame-pointer walk ([`stitch`]), whose end is not known.
    CopyThenFramePointers,
}

impl StackEnd {
    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::CopySize => "copy_size",
            Self::StackRead => "stack_read",
            Self::NoUnwindInfo => "no_unwind_info",
            Self::Anonymous => "anonymous_mapping",
            Self::Unmapped => "unmapped",
            Self::NoRegs => "no_user_regs",
            Self::MaxDepth => "max_depth",
            Self::Unwinder => "unwinder_stopped",
            Self::FramePointers => "frame_pointers",
            Self::CopyThenFramePointers => "copy_then_frame_pointers",
        }
    }
}

/// One unwound user stack: instruction pointer first, then return addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unwound {
    /// Leaf first.
    pub frames: Vec<u64>,
    /// Why the walk ended.
    pub end: StackEnd,
}

/// A binary's bytes: mapped from its file, or a copy (the vDSO).
pub enum FileBytes {
    /// Read-only private mapping of the file.
    Mapped(memmap2::Mmap),
    /// Bytes held in memory.
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(v) => v,
        }
    }
}

/// Bytes of one section of a file.
#[derive(Clone)]
pub struct SectionBytes {
    file: Arc<FileBytes>,
    range: Range<usize>,
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.file[self.range.clone()]
    }
}

/// What an unwinder needs from one ELF file.
struct ObjInfo {
    file: Arc<FileBytes>,
    /// (svma range, file range) of the sections framehop reads.
    text: Option<(Range<u64>, Range<usize>)>,
    eh_frame: Option<(Range<u64>, Range<usize>)>,
    eh_frame_hdr: Option<(Range<u64>, Range<usize>)>,
    debug_frame: Option<Range<usize>>,
    got: Option<Range<u64>>,
    /// PT_LOAD segments: (file offset, file size, vaddr, executable).
    segments: Vec<(u64, u64, u64, bool)>,
    /// Address ranges (svma) that `.eh_frame` FDEs cover, sorted: outside
    /// them framehop would guess with frame pointers.
    fde_ranges: Vec<Range<u64>>,
}

impl ObjInfo {
    fn parse(file: Arc<FileBytes>) -> Option<Self> {
        let obj = object::File::parse(&file[..]).ok()?;
        let sect = |name: &str| {
            let s = obj.section_by_name(name)?;
            let (off, size) = s.file_range()?;
            let (off, size) = (usize::try_from(off).ok()?, usize::try_from(size).ok()?);
            (off.checked_add(size)? <= file.len())
                .then(|| (s.address()..s.address() + s.size(), off..off + size))
        };
        let segments = obj
            .segments()
            .filter_map(|s| {
                let (off, size) = s.file_range();
                let exec = match s.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_X != 0,
                    _ => false,
                };
                Some((off, size, s.address(), exec))
            })
            .collect();
        let eh_frame = sect(".eh_frame");
        let got = sect(".got").map(|(a, _)| a);
        let text = sect(".text");
        let fde_ranges = eh_frame
            .as_ref()
            .map(|(svma, r)| {
                fde_ranges(
                    &file[r.clone()],
                    svma.start,
                    text.as_ref().map(|(a, _)| a.start),
                    got.as_ref().map(|a| a.start),
                )
            })
            .unwrap_or_default();
        Some(Self {
            fde_ranges,
            text,
            eh_frame,
            eh_frame_hdr: sect(".eh_frame_hdr"),
            debug_frame: sect(".debug_frame").map(|(_, r)| r),
            got,
            segments,
            file: Arc::clone(&file),
        })
    }

    fn has_cfi(&self) -> bool {
        !self.fde_ranges.is_empty() || self.debug_frame.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// Whether the unwind tables describe `svma`. A `.debug_frame`-only
    /// file is taken as covering all its code.
    fn covers(&self, svma: u64) -> bool {
        if self.fde_ranges.is_empty() {
            return self.debug_frame.as_ref().is_some_and(|r| !r.is_empty());
        }
        let i = self.fde_ranges.partition_point(|r| r.start <= svma);
        i.checked_sub(1)
            .is_some_and(|j| svma < self.fde_ranges[j].end)
    }

    /// The load bias of a mapping of this file at `start` from file offset
    /// `offset`: the address of svma 0.
    fn base_avma(&self, start: u64, offset: u64) -> Option<u64> {
        let covers = |(off, size, _, _): &&(u64, u64, u64, bool)| {
            (*off & !0xfff) <= offset && offset < off + size.max(&1)
        };
        let seg = self
            .segments
            .iter()
            .filter(covers)
            .find(|s| s.3)
            .or_else(|| self.segments.iter().find(covers))?;
        let svma = seg.2.wrapping_sub(seg.0).wrapping_add(offset);
        Some(start.wrapping_sub(svma))
    }

    fn bytes(&self, r: &Range<usize>) -> SectionBytes {
        SectionBytes {
            file: Arc::clone(&self.file),
            range: r.clone(),
        }
    }

    fn module(&self, name: &str, m: &Mapping, base_avma: u64) -> Module<SectionBytes> {
        let info = framehop::ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: self.text.as_ref().map(|(a, _)| a.clone()),
            text: self.text.as_ref().map(|(_, r)| self.bytes(r)),
            got_svma: self.got.clone(),
            eh_frame_svma: self.eh_frame.as_ref().map(|(a, _)| a.clone()),
            eh_frame: self.eh_frame.as_ref().map(|(_, r)| self.bytes(r)),
            eh_frame_hdr_svma: self.eh_frame_hdr.as_ref().map(|(a, _)| a.clone()),
            eh_frame_hdr: self.eh_frame_hdr.as_ref().map(|(_, r)| self.bytes(r)),
            debug_frame: self.debug_frame.as_ref().map(|r| self.bytes(r)),
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            text_segment_svma: None,
            text_segment: None,
        };
        Module::new(name.to_owned(), m.start..m.end, base_avma, info)
    }
}

/// The address ranges of every FDE of an `.eh_frame` section, sorted.
fn fde_ranges(eh: &[u8], eh_svma: u64, text: Option<u64>, got: Option<u64>) -> Vec<Range<u64>> {
    use gimli::UnwindSection as _;
    let section = gimli::EhFrame::new(eh, gimli::NativeEndian);
    let mut bases = gimli::BaseAddresses::default().set_eh_frame(eh_svma);
    if let Some(t) = text {
        bases = bases.set_text(t);
    }
    if let Some(g) = got {
        bases = bases.set_got(g);
    }
    let mut out = Vec::new();
    let mut entries = section.entries(&bases);
    while let Ok(Some(e)) = entries.next() {
        if let gimli::CieOrFde::Fde(partial) = e {
            if let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o)) {
                let start = fde.initial_address();
                out.push(start..start.saturating_add(fde.len()));
            }
        }
    }
    out.sort_by_key(|r| r.start);
    out
}

/// Parsed binaries, shared by every process (keyed by path).
#[derive(Default)]
pub struct ObjectCache {
    objs: HashMap<String, Option<Arc<ObjInfo>>>,
    vdso: Option<Option<Arc<ObjInfo>>>,
}

impl ObjectCache {
    fn get(&mut self, path: &str) -> Option<Arc<ObjInfo>> {
        if path == "[vdso]" {
            return self.vdso.get_or_insert_with(own_vdso).clone();
        }
        if !path.starts_with('/') {
            return None;
        }
        self.objs
            .entry(path.to_owned())
            .or_insert_with(|| {
                let f = std::fs::File::open(Path::new(path)).ok()?;
                // SAFETY: a read-only private mapping; a binary rewritten
                // in place while mapped is the one hazard, as for every
                // profiler that maps binaries (perf, blazesym).
                let map = unsafe { memmap2::Mmap::map(&f) }.ok()?;
                ObjInfo::parse(Arc::new(FileBytes::Mapped(map))).map(Arc::new)
            })
            .clone()
    }
}

/// The vDSO image of this process (the kernel maps the same one into every
/// process), so that samples inside `clock_gettime` unwind too.
fn own_vdso() -> Option<Arc<ObjInfo>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let m = parse_maps(&maps).into_iter().find(|m| m.path == "[vdso]")?;
    let len = usize::try_from(m.end - m.start).ok()?;
    // SAFETY: the [vdso] mapping of this process is readable and stays
    // mapped for the life of the process.
    let bytes = unsafe { std::slice::from_raw_parts(m.start as usize as *const u8, len) };
    ObjInfo::parse(Arc::new(FileBytes::Owned(bytes.to_vec()))).map(Arc::new)
}

#[cfg(target_arch = "aarch64")]
type NativeUnwinder = framehop::aarch64::UnwinderAarch64<SectionBytes>;
#[cfg(target_arch = "aarch64")]
type NativeCache = framehop::aarch64::CacheAarch64;
#[cfg(not(target_arch = "aarch64"))]
type NativeUnwinder = framehop::x86_64::UnwinderX86_64<SectionBytes>;
#[cfg(not(target_arch = "aarch64"))]
type NativeCache = framehop::x86_64::CacheX86_64;

/// One executable mapping as the unwinder sees it.
struct MapEntry {
    map: Mapping,
    /// The file and its load bias, when framehop has unwind tables for it.
    cfi: Option<(Arc<ObjInfo>, u64)>,
}

impl MapEntry {
    /// Whether the mapping is a file's (a binary, or the vDSO), not
    /// anonymous memory.
    fn is_file(&self) -> bool {
        self.map.path.starts_with('/') || self.map.path == "[vdso]"
    }

    /// Whether the unwind tables describe the code at `avma`.
    fn covers(&self, avma: u64) -> bool {
        self.cfi
            .as_ref()
            .is_some_and(|(o, base)| o.covers(avma.wrapping_sub(*base)))
    }
}

/// The unwinder of one process.
struct ProcUnwinder {
    /// `/proc/<tgid>/comm` when the maps were read.
    name: String,
    maps: Vec<MapEntry>,
    unwinder: NativeUnwinder,
    cache: NativeCache,
    read_at: Instant,
}

impl ProcUnwinder {
    fn load(tgid: u32, objs: &mut ObjectCache) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{tgid}/maps")).ok()?;
        let mut p = Self::from_maps(parse_maps(&text), objs);
        p.name = std::fs::read_to_string(format!("/proc/{tgid}/comm"))
            .unwrap_or_default()
            .trim_end()
            .to_owned();
        Some(p)
    }

    fn from_maps(maps: Vec<Mapping>, objs: &mut ObjectCache) -> Self {
        let mut unwinder = NativeUnwinder::new();
        let mut entries = Vec::with_capacity(maps.len());
        for m in maps {
            let mut cfi = None;
            if let Some(obj) = objs.get(&m.path) {
                let base = if m.path == "[vdso]" {
                    Some(m.start)
                } else {
                    obj.base_avma(m.start, m.offset)
                };
                if let (Some(base), true) = (base, obj.has_cfi()) {
                    unwinder.add_module(obj.module(&m.path, &m, base));
                    cfi = Some((Arc::clone(&obj), base));
                }
            }
            entries.push(MapEntry { map: m, cfi });
        }
        Self {
            name: String::new(),
            maps: entries,
            unwinder,
            cache: NativeCache::new(),
            read_at: Instant::now(),
        }
    }

    fn mapping(&self, addr: u64) -> Option<&MapEntry> {
        let i = self.maps.partition_point(|e| e.map.start <= addr);
        i.checked_sub(1)
            .map(|j| &self.maps[j])
            .filter(|e| addr < e.map.end)
    }

    /// Whether `addr` is in a file mapping (code of a binary, or the vDSO).
    fn is_code(&self, addr: u64) -> bool {
        self.mapping(addr).is_some_and(MapEntry::is_file)
    }

    /// Walks one copied stack.
    fn unwind(&mut self, h: &UstackHeader, stack: &[u8], mode: UnwindMode) -> Unwound {
        let strict = mode == UnwindMode::Dwarf;
        let (base, copied) = (h.base, stack.len() as u64);
        let over_copy = std::cell::Cell::new(false);
        let mut read = |addr: u64| -> Result<u64, ()> {
            let off = addr.wrapping_sub(base);
            if addr < base || off.saturating_add(8) > copied {
                if addr >= base.saturating_add(copied).saturating_sub(7) {
                    over_copy.set(true);
                }
                return Err(());
            }
            let o = off as usize;
            let mut b = [0u8; 8];
            b.copy_from_slice(&stack[o..o + 8]);
            Ok(u64::from_le_bytes(b))
        };
        #[cfg(target_arch = "aarch64")]
        let mut regs = framehop::aarch64::UnwindRegsAarch64::new_with_ptr_auth_mask(
            framehop::aarch64::PtrAuthMask::from_max_known_address(
                self.unwinder.max_known_code_address(),
            ),
            h.lr,
            h.sp,
            h.fp,
        );
        #[cfg(not(target_arch = "aarch64"))]
        let mut regs = framehop::x86_64::UnwindRegsX86_64::new(h.ip, h.sp, h.fp);
        #[cfg(target_arch = "aarch64")]
        let ip = framehop::aarch64::PtrAuthMask::from_max_known_address(
            self.unwinder.max_known_code_address(),
        )
        .strip_ptr_auth(h.ip);
        #[cfg(not(target_arch = "aarch64"))]
        let ip = h.ip;

        let mut frames = vec![ip];
        let mut addr = FrameAddress::from_instruction_pointer(ip);
        let end = loop {
            if frames.len() >= MAX_FRAMES {
                break StackEnd::MaxDepth;
            }
            let lookup = addr.address_for_lookup();
            let (cfi, file) = match self.mapping(lookup) {
                None => {
                    // A return address into no mapping is garbage read from
                    // the stack, not a frame: drop it.
                    if frames.len() > 1 {
                        frames.pop();
                    }
                    break StackEnd::Unmapped;
                }
                Some(e) => (e.covers(lookup), e.is_file()),
            };
            if !file {
                break StackEnd::Anonymous;
            }
            if !cfi && strict {
                break StackEnd::NoUnwindInfo;
            }
            match self
                .unwinder
                .unwind_frame(addr, &mut regs, &mut self.cache, &mut read)
            {
                Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                    Some(next) => {
                        frames.push(ra);
                        addr = next;
                    }
                    None => break StackEnd::Root,
                },
                // Without an unwind table framehop's frame-pointer fallback
                // stops at a zero rbp, which proves nothing in code that
                // uses rbp as a general register.
                Ok(None) if cfi => break StackEnd::Root,
                Ok(None) => break StackEnd::NoUnwindInfo,
                Err(FhError::CouldNotReadStack(_)) => {
                    break if over_copy.get() && h.flags & USTACK_FLAG_FULL != 0 {
                        StackEnd::CopySize
                    } else {
                        StackEnd::StackRead
                    };
                }
                Err(_) => break StackEnd::Unwinder,
            }
        };
        Unwound { frames, end }
    }
}

/// Unwinders for every process seen, and the binaries they share.
#[derive(Default)]
pub struct Unwinders {
    procs: HashMap<u32, ProcUnwinder>,
    objs: ObjectCache,
}

/// How soon a process's maps may be re-read when an address is in none.
const MAPS_REFRESH: Duration = Duration::from_millis(200);

impl Unwinders {
    /// Unwinds one record of process `h.tgid`; a walk cut by the copy size
    /// goes on along `user_fp`, the kernel's frame-pointer walk of the same
    /// stack, where the two meet.
    pub fn unwind_record(&mut self, r: &Record<'_>, mode: UnwindMode) -> Unwound {
        let u = self.unwind(&r.h, r.stack, mode);
        if u.end != StackEnd::CopySize || r.user_fp.is_empty() {
            return u;
        }
        let Some(p) = self.procs.get(&r.h.tgid) else {
            return u;
        };
        let Some(frames) = stitch(&u.frames, &r.user_fp, |a| p.is_code(a)) else {
            return u;
        };
        let end = if frames.len() >= MAX_FRAMES {
            StackEnd::MaxDepth
        } else {
            StackEnd::CopyThenFramePointers
        };
        Unwound { frames, end }
    }

    /// Unwinds one record of process `h.tgid`.
    pub fn unwind(&mut self, h: &UstackHeader, stack: &[u8], mode: UnwindMode) -> Unwound {
        if h.flags & USTACK_FLAG_NO_REGS != 0 || h.sp == 0 || h.ip == 0 {
            return Unwound {
                frames: Vec::new(),
                end: StackEnd::NoRegs,
            };
        }
        let stale = match self.procs.get(&h.tgid) {
            None => true,
            Some(p) => p.mapping(h.ip).is_none() && p.read_at.elapsed() >= MAPS_REFRESH,
        };
        if stale {
            match ProcUnwinder::load(h.tgid, &mut self.objs) {
                Some(p) => {
                    self.procs.insert(h.tgid, p);
                }
                None if !self.procs.contains_key(&h.tgid) => {
                    return Unwound {
                        frames: vec![h.ip],
                        end: StackEnd::Unmapped,
                    }
                }
                None => {}
            }
        }
        match self.procs.get_mut(&h.tgid) {
            Some(p) => p.unwind(h, stack, mode),
            None => Unwound {
                frames: vec![h.ip],
                end: StackEnd::Unmapped,
            },
        }
    }

    /// The maps this unwinder read for `tgid` (a process that exited before
    /// the boundary is still symbolized with them).
    pub fn proc_info(&self, tgid: u32) -> Option<ProcInfo> {
        self.procs.get(&tgid).map(|p| ProcInfo {
            name: p.name.clone(),
            maps: p.maps.iter().map(|e| e.map.clone()).collect(),
        })
    }

    /// Forgets processes that exited.
    pub fn prune(&mut self) {
        self.procs
            .retain(|t, _| Path::new(&format!("/proc/{t}")).exists());
    }
}

/// Joins a DWARF walk `dw` (leaf first) that stopped at the end of its
/// copy to the kernel's frame-pointer walk `fp` of the same stack (leaf
/// first): the walks meet where `fp` holds the DWARF walk's last two return
/// addresses in a row, taken at the same occurrence (recursion repeats
/// them); `fp`'s frames above that point follow, up to the first that is not
/// code (`is_code`) and at most [`MAX_FRAMES`] in all. None when the DWARF
/// walk has fewer than two return addresses or the walks do not meet: a
/// frame-pointer chain that does not hold the frames the DWARF walk found
/// is not trusted for the rest.
pub fn stitch(dw: &[u64], fp: &[u64], is_code: impl Fn(u64) -> bool) -> Option<Vec<u64>> {
    if dw.len() < 3 || fp.len() < 3 {
        return None;
    }
    let pair = (dw[dw.len() - 2], dw[dw.len() - 1]);
    let pairs = |s: &[u64]| -> Vec<usize> {
        // Index of the second element of every matching pair, return
        // addresses only (index 0 is the instruction pointer).
        (2..s.len()).filter(|&i| (s[i - 1], s[i]) == pair).collect()
    };
    let nth = pairs(dw).len();
    let j = *pairs(fp).get(nth.checked_sub(1)?)?;
    let mut out = dw.to_vec();
    for &a in &fp[j + 1..] {
        if out.len() >= MAX_FRAMES || a == 0 || !is_code(a) {
            break;
        }
        out.push(a);
    }
    (out.len() > dw.len()).then_some(out)
}

/// Copy statistics of one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CopyStats {
    /// Records (stacks copied).
    pub copies: u64,
    /// Stack bytes copied.
    pub bytes: u64,
    /// Walks that ran past a full copy (cut by the copy size).
    pub cut_short: u64,
    /// Records that could not be parsed (shorter than their header says).
    pub malformed: u64,
    /// Off-CPU ends whose copy was lost or replaced (not attributed).
    pub unmatched_ends: u64,
    /// Stacks the stack map refused that came inline by frame pointers
    /// (`USTACK_FLAG_FP_ONLY`), not counted as copies.
    pub stack_map_fallbacks: u64,
}

/// An off-CPU switch-out whose user stack was copied, waiting for its
/// switch-in (matched by thread and start time).
#[derive(Debug, Clone)]
struct OffcpuCopy {
    start_ns: u64,
    key: OffcpuKey,
}

/// What one window drained from the ring buffer.
#[derive(Debug, Default)]
pub struct UstackWindow {
    /// On-CPU sample counts, `ustack` an unwound-stack id.
    pub oncpu: Vec<(OncpuKey, u64)>,
    /// Off-CPU periods in uninterruptible wait, `ustack` an unwound-stack id.
    pub offcpu: Vec<(OffcpuKey, Agg)>,
    /// Frames of every unwound-stack id this window references.
    pub stacks: HashMap<i32, Arc<Vec<u64>>>,
    /// End of every unwound-stack id this window references.
    pub ends: HashMap<i32, StackEnd>,
    /// Copy statistics: on-CPU, off-CPU.
    pub copy: [CopyStats; 2],
    /// The maps the unwinder read for the window's processes.
    pub procs: HashMap<u32, Arc<ProcInfo>>,
}

#[derive(Default)]
struct SlotAgg {
    oncpu: HashMap<OncpuKey, u64>,
    offcpu: HashMap<OffcpuKey, Agg>,
    copy: [CopyStats; 2],
}

/// What the reader keeps between records.
#[derive(Default)]
struct ReaderState {
    unw: Unwinders,
    dict: Dict,
    slots: Vec<SlotAgg>,
    /// Off-CPU copies waiting for their end, by thread (a newer switch-out
    /// of the thread replaces an older one whose end never came: a period
    /// below the threshold).
    pending: HashMap<u32, OffcpuCopy>,
}

/// The unwound-stack dictionary of a session.
#[derive(Default)]
struct Dict {
    ids: HashMap<Unwound, i32>,
    by_id: HashMap<i32, (Arc<Vec<u64>>, StackEnd)>,
}

impl Dict {
    fn id(&mut self, u: Unwound) -> i32 {
        if let Some(id) = self.ids.get(&u) {
            return *id;
        }
        let id = USTACK_ID_BASE + self.ids.len() as i32;
        self.by_id.insert(id, (Arc::new(u.frames.clone()), u.end));
        self.ids.insert(u, id);
        id
    }
}

enum Request {
    Drain(u32, mpsc::Sender<UstackWindow>),
}

/// The ring-buffer reader thread.
pub struct UstackReader {
    tx: Option<mpsc::Sender<Request>>,
    handle: Option<JoinHandle<()>>,
}

impl UstackReader {
    /// Starts the thread on the `USTACKS` ring buffer.
    pub fn spawn(
        ring: aya::maps::RingBuf<aya::maps::MapData>,
        mode: UnwindMode,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let handle = std::thread::Builder::new()
            .name("probe-unwind".into())
            .spawn(move || reader_loop(ring, mode, &rx))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Everything recorded in `slot` (call after the slot flip and its
    /// grace period: every record of the slot is then in the ring).
    pub fn drain(&self, slot: u32) -> Option<UstackWindow> {
        let (tx, rx) = mpsc::channel();
        self.tx.as_ref()?.send(Request::Drain(slot, tx)).ok()?;
        rx.recv().ok()
    }
}

impl Drop for UstackReader {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn reader_loop(
    mut ring: aya::maps::RingBuf<aya::maps::MapData>,
    mode: UnwindMode,
    rx: &mpsc::Receiver<Request>,
) {
    let mut st = ReaderState {
        slots: (0..SLOTS).map(|_| SlotAgg::default()).collect(),
        ..ReaderState::default()
    };
    let mut last_prune = Instant::now();
    loop {
        while let Some(item) = ring.next() {
            consume(&item, mode, &mut st);
        }
        if last_prune.elapsed() > Duration::from_secs(10) {
            st.unw.prune();
            last_prune = Instant::now();
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Request::Drain(slot, reply)) => {
                while let Some(item) = ring.next() {
                    consume(&item, mode, &mut st);
                }
                let agg = std::mem::take(&mut st.slots[(slot % SLOTS) as usize]);
                let mut w = UstackWindow {
                    copy: agg.copy,
                    ..UstackWindow::default()
                };
                let keys: Vec<(i32, i32)> = agg
                    .oncpu
                    .keys()
                    .map(|k| (k.ustack, k.kstack))
                    .chain(agg.offcpu.keys().map(|k| (k.ustack, k.kstack)))
                    .collect();
                for (u, k) in keys {
                    if let Some((frames, end)) = st.dict.by_id.get(&u) {
                        w.stacks.insert(u, Arc::clone(frames));
                        w.ends.insert(u, *end);
                    }
                    // An inline kernel stack: frames only (an end is a user walk's).
                    if let Some((frames, _)) = st.dict.by_id.get(&k) {
                        w.stacks.insert(k, Arc::clone(frames));
                    }
                }
                let tgids: std::collections::HashSet<u32> = agg
                    .oncpu
                    .keys()
                    .map(|k| k.tgid)
                    .chain(agg.offcpu.keys().map(|k| k.tgid))
                    .collect();
                for t in tgids {
                    if let Some(p) = st.unw.proc_info(t) {
                        w.procs.insert(t, Arc::new(p));
                    }
                }
                w.oncpu = agg.oncpu.into_iter().collect();
                w.offcpu = agg.offcpu.into_iter().collect();
                let _ = reply.send(w);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One record from the ring buffer: header, the kernel's inline stacks
/// (valid frames only) and the stack copy.
#[derive(Debug)]
pub struct Record<'a> {
    /// Registers and identity.
    pub h: UstackHeader,
    /// Kernel stack, leaf first (empty: none).
    pub kernel: Vec<u64>,
    /// User stack by frame pointers, leaf first (empty: not taken).
    pub user_fp: Vec<u64>,
    /// The copied stack bytes.
    pub stack: &'a [u8],
}

/// Parses a record; None if it is shorter than its header says or claims
/// more inline frames than it can hold.
pub fn parse_record(bytes: &[u8]) -> Option<Record<'_>> {
    let hl = std::mem::size_of::<UstackHeader>();
    let il = std::mem::size_of::<InlineStacks>();
    if bytes.len() < hl + il {
        return None;
    }
    // SAFETY: UstackHeader is plain old data; read_unaligned copes with
    // the ring buffer's 8-byte alignment or less.
    let h: UstackHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let (kn, fn_) = (h.kframes as usize, h.fp_frames as usize);
    if kn > INLINE_FRAMES || fn_ > INLINE_FRAMES {
        return None;
    }
    let words = |at: usize, n: usize| -> Vec<u64> {
        bytes[at..at + n * 8]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .collect()
    };
    let kernel = words(hl, kn);
    let user_fp = words(hl + INLINE_FRAMES * 8, fn_);
    let end = (hl + il).checked_add(h.copied as usize)?;
    let stack = bytes.get(hl + il..end)?;
    Some(Record {
        h,
        kernel,
        user_fp,
        stack,
    })
}

/// Parses an off-CPU end record.
pub fn parse_end(bytes: &[u8]) -> Option<OffcpuEnd> {
    if bytes.len() < std::mem::size_of::<OffcpuEnd>() {
        return None;
    }
    // SAFETY: OffcpuEnd is plain old data, the length is checked.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

fn consume(bytes: &[u8], mode: UnwindMode, st: &mut ReaderState) {
    let kind = bytes
        .get(..4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    if kind == USTACK_OFFCPU_END {
        let Some(e) = parse_end(bytes) else {
            st.slots[0].copy[1].malformed += 1;
            return;
        };
        match st.pending.remove(&e.tid) {
            Some(p) if p.start_ns == e.start_ns => {
                let key = OffcpuKey {
                    slot: e.slot % SLOTS,
                    ..p.key
                };
                let a = st.slots[(e.slot % SLOTS) as usize]
                    .offcpu
                    .entry(key)
                    .or_default();
                a.count += 1;
                a.sum_ns += e.delta_ns;
            }
            // The copy was lost or replaced: nothing to attribute to.
            _ => st.slots[(e.slot % SLOTS) as usize].copy[1].unmatched_ends += 1,
        }
        return;
    }
    let Some(r) = parse_record(bytes) else {
        st.slots[0].copy[0].malformed += 1;
        return;
    };
    let h = r.h;
    let fp_only = h.flags & USTACK_FLAG_FP_ONLY != 0;
    // A stack the stack map refused: the kernel's frame-pointer walk, as the
    // map would have held it (no walk: no user stack).
    let u = if fp_only {
        Unwound {
            frames: r.user_fp,
            end: StackEnd::FramePointers,
        }
    } else {
        st.unw.unwind_record(&r, mode)
    };
    let end = u.end;
    let ustack = if fp_only && u.frames.is_empty() {
        NO_STACK
    } else {
        st.dict.id(u)
    };
    // The inline kernel stack: an id of the same dictionary, or the
    // errno as `bpf_get_stackid` would give it (no frames: no stack).
    let kstack = if h.kstack_err < 0 {
        h.kstack_err
    } else if r.kernel.is_empty() {
        NO_STACK
    } else {
        st.dict.id(Unwound {
            frames: r.kernel,
            end: StackEnd::FramePointers,
        })
    };
    let agg = &mut st.slots[(h.slot % SLOTS) as usize];
    let c = &mut agg.copy[usize::from(h.kind == USTACK_OFFCPU)];
    if fp_only {
        c.stack_map_fallbacks += 1;
    } else {
        c.copies += 1;
        c.bytes += u64::from(h.copied);
    }
    if matches!(end, StackEnd::CopySize | StackEnd::CopyThenFramePointers) {
        c.cut_short += 1;
    }
    match h.kind {
        USTACK_ONCPU => {
            let key = OncpuKey {
                slot: h.slot % SLOTS,
                tgid: h.tgid,
                ustack,
                kstack,
                comm: h.comm,
            };
            *agg.oncpu.entry(key).or_default() += 1;
        }
        USTACK_OFFCPU => {
            let key = OffcpuKey {
                slot: h.slot,
                tgid: h.tgid,
                ustack,
                kstack,
                state: h.state,
                stack_gen: h.slot,
                comm: h.comm,
            };
            st.pending.insert(
                h.tid,
                OffcpuCopy {
                    start_ns: h.time_ns,
                    key,
                },
            );
        }
        _ => agg.copy[0].malformed += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_lying_records_are_rejected_not_read() {
        let (hl, il) = (
            std::mem::size_of::<UstackHeader>(),
            std::mem::size_of::<InlineStacks>(),
        );
        assert!(parse_record(&[0u8; 10]).is_none());
        let write = |b: &mut Vec<u8>, h: UstackHeader| {
            // SAFETY: b holds at least a header.
            unsafe { std::ptr::write_unaligned(b.as_mut_ptr().cast(), h) };
        };
        let h = UstackHeader {
            copied: 4096,
            kframes: 2,
            fp_frames: 1,
            ..UstackHeader::default()
        };
        let mut b = vec![0u8; hl + il + 100];
        write(&mut b, h);
        assert!(parse_record(&b).is_none(), "claims 4096 bytes, has 100");
        b.resize(hl + il + 4096, 0);
        b[hl..hl + 8].copy_from_slice(&7u64.to_ne_bytes());
        b[hl + INLINE_FRAMES * 8..hl + INLINE_FRAMES * 8 + 8].copy_from_slice(&9u64.to_ne_bytes());
        let r = parse_record(&b).expect("a whole record");
        assert_eq!(
            (r.stack.len(), r.kernel.len(), r.user_fp.len()),
            (4096, 2, 1)
        );
        assert_eq!((r.kernel[0], r.user_fp[0]), (7, 9));
        for (k, f) in [(INLINE_FRAMES as u32 + 1, 0), (0, u32::MAX)] {
            write(
                &mut b,
                UstackHeader {
                    kframes: k,
                    fp_frames: f,
                    ..h
                },
            );
            assert!(parse_record(&b).is_none(), "claims {k}/{f} inline frames");
        }
        assert!(
            parse_record(&b[..hl + 8]).is_none(),
            "no room for the inline stacks"
        );
    }

    /// The frame-pointer chain is followed only from where it holds the
    /// DWARF walk's last two return addresses in a row, at the same
    /// occurrence, and only through code.
    #[test]
    fn stitch_joins_only_where_the_walks_meet() {
        let code = |a: u64| (0x1000..0x9000).contains(&a);
        // DWARF: ip, r1, r2, cut. FP: ip, r1, r2, r3, r4, then a non-code word.
        let dw = [0x1001, 0x2002, 0x3003];
        let fp = [0x1001, 0x2002, 0x3003, 0x4004, 0x5005, 0xdead_0000];
        assert_eq!(
            stitch(&dw, &fp, code),
            Some(vec![0x1001, 0x2002, 0x3003, 0x4004, 0x5005])
        );
        // The FP chain skipped the leaf's caller: the last pair still meets.
        let fp_skip = [0x1001, 0x3003, 0x4004];
        assert_eq!(
            stitch(&dw, &fp_skip, code),
            None,
            "pair (r1, r2) not in a row"
        );
        // Walks that do not meet, or nothing to add.
        assert_eq!(stitch(&dw, &[0x1001, 0x7007, 0x8008, 0x4004], code), None);
        assert_eq!(stitch(&dw, &dw, code), None);
        assert_eq!(stitch(&dw[..2], &fp, code), None, "one return address");
        // Recursion: the pair occurs twice in the DWARF walk, so the join is
        // at its second occurrence in the FP chain.
        let dw_rec = [0x1001, 0x2002, 0x3003, 0x2002, 0x3003];
        let fp_rec = [
            0x1001, 0x2002, 0x3003, 0x2002, 0x3003, 0x2002, 0x3003, 0x6006,
        ];
        assert_eq!(
            stitch(&dw_rec, &fp_rec, code),
            Some(vec![
                0x1001, 0x2002, 0x3003, 0x2002, 0x3003, 0x2002, 0x3003, 0x6006
            ])
        );
        // A zero or the depth limit ends the join.
        let fp_zero = [0x1001, 0x2002, 0x3003, 0x4004, 0, 0x5005];
        assert_eq!(stitch(&dw, &fp_zero, code).map(|v| v.len()), Some(4));
        let long: Vec<u64> = [0x1001, 0x2002, 0x3003]
            .into_iter()
            .chain((0..300).map(|i| 0x4000 + i))
            .collect();
        assert_eq!(stitch(&dw, &long, code).map(|v| v.len()), Some(MAX_FRAMES));
    }

    #[test]
    fn no_regs_is_named_not_guessed() {
        let mut u = Unwinders::default();
        let h = UstackHeader {
            flags: USTACK_FLAG_NO_REGS,
            ..UstackHeader::default()
        };
        assert_eq!(u.unwind(&h, &[], UnwindMode::Dwarf).end, StackEnd::NoRegs);
    }

    /// A stack copy that ends mid-frame: the walk stops with `copy_size`
    /// when the copy was full, never inventing a frame.
    #[test]
    fn copy_ending_mid_frame_is_cut_by_size() {
        let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let mut objs = ObjectCache::default();
        let mut p = ProcUnwinder::from_maps(maps, &mut objs);
        // A real return address of this binary's code (this test function)
        // as ip, with an 8-byte stack that cannot hold its caller's frame.
        let ip = copy_ending_mid_frame_is_cut_by_size as *const () as usize as u64 + 4;
        let h = UstackHeader {
            ip,
            sp: 0x7000_0000_0000,
            fp: 0x7000_0000_0000,
            base: 0x7000_0000_0000,
            copied: 8,
            flags: USTACK_FLAG_FULL,
            ..UstackHeader::default()
        };
        let u = p.unwind(&h, &[0xaau8; 8], UnwindMode::Dwarf);
        assert_eq!(u.frames, vec![ip], "{u:?}");
        assert!(
            matches!(u.end, StackEnd::CopySize | StackEnd::Root),
            "{u:?}"
        );
        assert_ne!(u.end, StackEnd::Root, "an 8-byte copy cannot be whole");
    }

    #[test]
    fn anonymous_and_unmapped_addresses_stop_the_walk() {
        let maps = vec![
            Mapping {
                start: 0x1000,
                end: 0x2000,
                offset: 0,
                path: String::new(),
            },
            Mapping {
                start: 0x3000,
                end: 0x4000,
                offset: 0,
                path: "/nonexistent/lib.so".into(),
            },
        ];
        let mut objs = ObjectCache::default();
        let mut p = ProcUnwinder::from_maps(maps, &mut objs);
        let mk = |ip| UstackHeader {
            ip,
            sp: 0x10_0000,
            base: 0x10_0000,
            copied: 64,
            ..UstackHeader::default()
        };
        let stack = [0u8; 64];
        assert_eq!(
            p.unwind(&mk(0x1800), &stack, UnwindMode::Dwarf).end,
            StackEnd::Anonymous
        );
        assert_eq!(
            p.unwind(&mk(0x3800), &stack, UnwindMode::Dwarf).end,
            StackEnd::NoUnwindInfo
        );
        assert_eq!(
            p.unwind(&mk(0x9000), &stack, UnwindMode::Dwarf).end,
            StackEnd::Unmapped
        );
    }
}
