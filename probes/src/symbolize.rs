//! Stack symbolization: user frames against the files mapped by the process
//! (captured at the phase boundary, so exited processes still resolve) with
//! blazesym and Rust demangling, kernel frames from kallsyms. Names are kept
//! whole (spaces included); `;` inside a name becomes `,` so that folded
//! stacks stay parseable.
use std::collections::{BTreeMap, HashMap};

use blazesym::symbolize::{source::Elf, source::Source, Input, Symbolized, Symbolizer as Blaze};

use crate::snapshot::ProcInfo;

/// Frame depth limit of `bpf_get_stackid` (`PERF_MAX_STACK_DEPTH`).
pub const MAX_DEPTH: usize = 127;
/// Name of a frame that could not be resolved (as perf and T1).
pub const UNKNOWN: &str = "[unknown]";

/// One symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Function name (demangled), or `[unknown]`, or `[vdso]`-like pseudo names.
    pub name: String,
    /// Whether the address lies in a mapped file (named by its symbol, or
    /// `[module]` when that file has no symbol for it, e.g. static functions
    /// of a stripped libc). False for addresses outside every mapping: the
    /// garbage a broken frame-pointer walk produces.
    pub resolved: bool,
}

/// Caching symbolizer, one per render thread.
pub struct Symbolizer {
    blaze: Blaze,
    ksyms: BTreeMap<u64, String>,
    cache: HashMap<(String, u64), Option<String>>,
    /// Functions inlined at a (file, offset), leaf first (DWARF only).
    inlined: HashMap<(String, u64), Vec<String>>,
    /// Per binary, the name perf gives an address that several function
    /// symbols share (see [`perf_aliases`]).
    aliases: HashMap<String, HashMap<u64, String>>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    /// Reads kallsyms (empty if unreadable: kernel frames then stay unresolved).
    pub fn new() -> Self {
        Self::with_kernel_symbols(read_kallsyms())
    }

    /// With kernel symbols read beforehand (see [`read_kallsyms`]).
    pub fn with_kernel_symbols(ksyms: BTreeMap<u64, String>) -> Self {
        let blaze = Blaze::builder()
            .enable_code_info(true)
            .enable_inlined_fns(true)
            .enable_demangling(true)
            .build();
        Self {
            blaze,
            ksyms,
            cache: HashMap::new(),
            inlined: HashMap::new(),
            aliases: HashMap::new(),
        }
    }

    /// Kernel frames, leaf first.
    pub fn kernel(&self, ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .enumerate()
            .map(|(i, ip)| {
                let addr = if i == 0 { *ip } else { ip.saturating_sub(1) };
                match self.ksyms.range(..=addr).next_back() {
                    Some((_, name)) => Frame {
                        name: clean(name),
                        resolved: true,
                    },
                    None => Frame {
                        name: UNKNOWN.into(),
                        resolved: false,
                    },
                }
            })
            .collect()
    }

    /// User frames of a process, leaf first. Return addresses (all but the
    /// leaf) are looked up one byte back, inside the call instruction.
    /// Functions inlined at an address (where DWARF has them) come as frames
    /// of their own, leaf side of the function they were inlined into.
    pub fn user(&mut self, proc: Option<&ProcInfo>, ips: &[u64]) -> Vec<Frame> {
        let mut inlined: Vec<Vec<Frame>> = vec![Vec::new(); ips.len()];
        let out = self.user_functions(proc, ips, &mut inlined);
        let mut all = Vec::with_capacity(out.len());
        for (f, inl) in out.into_iter().zip(inlined) {
            all.extend(inl);
            all.push(f);
        }
        all
    }

    fn user_functions(
        &mut self,
        proc: Option<&ProcInfo>,
        ips: &[u64],
        inlined: &mut [Vec<Frame>],
    ) -> Vec<Frame> {
        let mut out: Vec<Frame> = vec![
            Frame {
                name: UNKNOWN.into(),
                resolved: false
            };
            ips.len()
        ];
        let Some(proc) = proc else { return out };
        // path -> [(frame index, file offset)]
        let mut wanted: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
        for (i, ip) in ips.iter().enumerate() {
            let addr = if i == 0 { *ip } else { ip.saturating_sub(1) };
            let idx = proc.maps.partition_point(|m| m.start <= addr);
            let Some(m) = idx
                .checked_sub(1)
                .map(|j| &proc.maps[j])
                .filter(|m| addr < m.end)
            else {
                continue;
            };
            if !m.path.starts_with('/') {
                // [vdso], [anon:...], JIT code: a real frame without a file.
                let name = if m.path.is_empty() {
                    "[anon]".to_owned()
                } else {
                    m.path.clone()
                };
                out[i] = Frame {
                    name,
                    resolved: true,
                };
                continue;
            }
            wanted
                .entry(m.path.as_str())
                .or_default()
                .push((i, addr - m.start + m.offset));
        }
        for (path, frames) in wanted {
            let todo: Vec<u64> = frames
                .iter()
                .map(|(_, off)| *off)
                .filter(|off| !self.cache.contains_key(&(path.to_owned(), *off)))
                .collect();
            if !todo.is_empty() {
                let mut elf = Elf::new(path);
                // Detached debug info by build-id under /usr/lib/debug and by
                // .gnu_debuglink (libc6-dbg names libc's internal functions).
                elf.debug_syms = true;
                let src = Source::Elf(elf);
                match self.blaze.symbolize(&src, Input::FileOffset(&todo)) {
                    Ok(syms) => {
                        for (off, s) in todo.iter().zip(&syms) {
                            if let Symbolized::Sym(sym) = s {
                                if !sym.inlined.is_empty() {
                                    let names = sym
                                        .inlined
                                        .iter()
                                        .rev()
                                        .map(|f| clean(&short_cpp_name(&f.name)))
                                        .collect();
                                    self.inlined.insert((path.to_owned(), *off), names);
                                }
                            }
                        }
                        let aliases = self
                            .aliases
                            .entry(path.to_owned())
                            .or_insert_with(|| perf_aliases(path));
                        let names: Vec<Option<String>> = syms
                            .iter()
                            .map(|s| match s {
                                Symbolized::Sym(sym) if aliases.contains_key(&sym.addr) => {
                                    aliases.get(&sym.addr).map(|n| clean(&short_cpp_name(n)))
                                }
                                // aarch64 and arm ELF mapping symbols (`$x`, `$d`,
                                // `$x.12`) mark code/data runs inside functions:
                                // look past them for the function that covers it.
                                Symbolized::Sym(sym) if is_mapping_symbol(&sym.name) => {
                                    function_behind_mapping_symbol(
                                        &self.blaze,
                                        &src,
                                        sym.addr,
                                        sym.addr + sym.offset as u64,
                                    )
                                }
                                Symbolized::Sym(sym) => Some(clean(&short_cpp_name(&sym.name))),
                                Symbolized::Unknown(_) => None,
                            })
                            .collect();
                        // The function itself is named by the ELF symbol
                        // table, as perf names it (full path, demangled);
                        // DWARF names (short, with generics in a
                        // line-tables-only build) only where the symbol
                        // table has no symbol covering the address (a
                        // stripped library's internal functions), and for
                        // the inlined frames.
                        let elf_names = elf_symbol_names(&self.blaze, path, &todo, aliases);
                        for ((off, name), elf) in todo.iter().zip(names).zip(elf_names) {
                            self.cache.insert((path.to_owned(), *off), elf.or(name));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(path, error = %e, "symbolization failed");
                        for off in todo {
                            self.cache.insert((path.to_owned(), off), None);
                        }
                    }
                }
            }
            let module = path.rsplit('/').next().unwrap_or(path);
            for (i, off) in frames {
                if let Some(names) = self.inlined.get(&(path.to_owned(), off)) {
                    inlined[i] = names
                        .iter()
                        .map(|n| Frame {
                            name: n.clone(),
                            resolved: true,
                        })
                        .collect();
                }
                out[i] = match self.cache.get(&(path.to_owned(), off)) {
                    Some(Some(name)) => Frame {
                        name: name.clone(),
                        resolved: true,
                    },
                    _ => Frame {
                        name: format!("[{module}]"),
                        resolved: true,
                    },
                };
            }
        }
        out
    }
}

/// Addresses of `path` that several function symbols share (glibc's
/// `__memcpy_avx_unaligned_erms` and `__memmove_avx_unaligned_erms`), from
/// its own symbol tables and its detached debug file's (by build-id under
/// `/usr/lib/debug/.build-id`), each with the one perf prints: perf's rule
/// (`choose_best_symbol`) prefers a sized symbol, then a non-weak one, then
/// a global one, then fewer leading underscores, then the longest name.
/// Only plain (C) names are kept: a mangled choice is left to blazesym,
/// which demangles.
fn perf_aliases(path: &str) -> HashMap<u64, String> {
    use object::{Object as _, ObjectSymbol as _};
    let Some(bytes) = map_file(std::path::Path::new(path)) else {
        return HashMap::new();
    };
    let Ok(obj) = object::File::parse(&*bytes) else {
        return HashMap::new();
    };
    let debug = debug_file(&obj).and_then(|p| map_file(&p));
    let debug_obj = debug.as_deref().and_then(|d| object::File::parse(d).ok());
    // address -> candidates (name, sized, weak, global)
    let mut at: HashMap<u64, Vec<(String, bool, bool, bool)>> = HashMap::new();
    for o in std::iter::once(&obj).chain(debug_obj.as_ref()) {
        for sym in o.symbols().chain(o.dynamic_symbols()) {
            if sym.kind() != object::SymbolKind::Text || sym.address() == 0 {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            // Versioned definitions (`__libc_start_main@@GLIBC_2.34`) are
            // not names perf prints (it shows `__libc_start_main_impl`).
            if name.is_empty() || is_mapping_symbol(name) || name.contains('@') {
                continue;
            }
            let c = at.entry(sym.address()).or_default();
            if !c.iter().any(|x| x.0 == name) {
                c.push((
                    name.to_owned(),
                    sym.size() > 0,
                    sym.is_weak(),
                    sym.is_global(),
                ));
            }
        }
    }
    at.into_iter()
        .filter(|(_, c)| c.len() > 1)
        .filter_map(|(addr, c)| perf_best(c).map(|n| (addr, n)))
        .filter(|(_, n)| !n.starts_with("_Z") && !n.starts_with("_R"))
        .collect()
}

/// A read-only mapping of a file (binaries and debug files are read once
/// per session for their symbol tables, never copied whole).
fn map_file(p: &std::path::Path) -> Option<memmap2::Mmap> {
    let f = std::fs::File::open(p).ok()?;
    // SAFETY: a private read-only mapping of a file we only read; a file
    // changed underneath gives wrong names, never unsafety in this code,
    // which reads it through `object`'s bounds-checked parsing.
    unsafe { memmap2::Mmap::map(&f) }.ok()
}

/// The detached debug file of `obj`, by build-id under
/// `/usr/lib/debug/.build-id` (Debian's `-dbg` packages), if installed.
fn debug_file(obj: &object::File<'_>) -> Option<std::path::PathBuf> {
    use object::Object as _;
    let id = obj.build_id().ok().flatten()?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() < 3 {
        return None;
    }
    let (dir, rest) = hex.split_at(2);
    let p = std::path::Path::new("/usr/lib/debug/.build-id")
        .join(dir)
        .join(format!("{rest}.debug"));
    p.is_file().then_some(p)
}

/// perf's choice among symbols at one address, each (name, sized, weak,
/// global): see [`perf_aliases`]; ties go to the first name in byte order.
fn perf_best(c: Vec<(String, bool, bool, bool)>) -> Option<String> {
    let under = |n: &str| n.bytes().take_while(|b| *b == b'_').count();
    c.into_iter()
        .max_by(|a, b| {
            a.1.cmp(&b.1)
                .then((!a.2).cmp(&!b.2))
                .then(a.3.cmp(&b.3))
                .then(under(&b.0).cmp(&under(&a.0)))
                .then(a.0.len().cmp(&b.0.len()))
                .then(b.0.cmp(&a.0))
        })
        .map(|(n, ..)| n)
}

/// Names from `path`'s own ELF symbol tables (`.symtab`, `.dynsym`; no
/// DWARF, no detached debug file) for file offsets `offs`: None where no
/// symbol covers the offset or only an ELF mapping symbol does.
fn elf_symbol_names(
    blaze: &Blaze,
    path: &str,
    offs: &[u64],
    aliases: &HashMap<u64, String>,
) -> Vec<Option<String>> {
    let mut elf = Elf::new(path);
    elf.debug_syms = false;
    match blaze.symbolize(&Source::Elf(elf), Input::FileOffset(offs)) {
        Ok(syms) => syms
            .iter()
            .map(|s| match s {
                Symbolized::Sym(sym) if !is_mapping_symbol(&sym.name) => {
                    let name = aliases.get(&sym.addr).map_or(&*sym.name, String::as_str);
                    Some(clean(&short_cpp_name(name)))
                }
                _ => None,
            })
            .collect(),
        Err(_) => vec![None; offs.len()],
    }
}

/// The function symbol covering virtual address `va` of an ELF file when
/// the nearest symbol below it is the mapping symbol at `mapping_addr`:
/// steps back from one mapping symbol to the next (at most 16) and accepts
/// the first real symbol whose size reaches `va` (or that has no size).
fn function_behind_mapping_symbol(
    blaze: &Blaze,
    src: &Source,
    mut mapping_addr: u64,
    va: u64,
) -> Option<String> {
    for _ in 0..16 {
        let below = mapping_addr.checked_sub(1)?;
        match blaze.symbolize_single(src, Input::VirtOffset(below)).ok()? {
            Symbolized::Sym(s) if is_mapping_symbol(&s.name) => mapping_addr = s.addr,
            Symbolized::Sym(s) => {
                return s
                    .size
                    .is_none_or(|z| s.addr + z as u64 > va)
                    .then(|| clean(&s.name));
            }
            Symbolized::Unknown(_) => return None,
        }
    }
    None
}

/// ELF mapping symbols of aarch64 and arm (`$x`, `$d`, `$a`, `$t`, with an
/// optional `.suffix`): they mark instruction and data runs, never a function.
pub fn is_mapping_symbol(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name);
    matches!(base, "$x" | "$d" | "$a" | "$t")
}

/// `/proc/kallsyms` as address -> name (empty if unreadable). Read before
/// the probes attach: parsing it costs CPU the measured windows should not
/// pay.
pub fn read_kallsyms() -> BTreeMap<u64, String> {
    aya::util::kernel_symbols().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read /proc/kallsyms: kernel frames will be [unknown]");
        BTreeMap::new()
    })
}

/// A demangled C++ name as perf prints it: without the return type and the
/// argument list (`void ns::f<int>(char const*) const` -> `ns::f<int>`).
/// Names that do not end in an argument list (C, Rust) are kept whole.
pub fn short_cpp_name(name: &str) -> String {
    let trimmed = name.trim_end();
    // Qualifiers after the argument list: ` const`, ` volatile`, `&`, `&&`.
    let mut end = trimmed.len();
    loop {
        let t = trimmed[..end].trim_end();
        let stripped = t
            .strip_suffix("const")
            .or_else(|| t.strip_suffix("volatile"))
            .or_else(|| t.strip_suffix('&'));
        match stripped {
            Some(r) if r.ends_with(' ') || r.ends_with(')') || r.ends_with('&') => end = r.len(),
            _ => {
                end = t.len();
                break;
            }
        }
    }
    let body = &trimmed[..end];
    if !body.ends_with(')') {
        return name.to_owned();
    }
    // The argument list: the '(' matching the final ')'.
    let bytes = body.as_bytes();
    let mut depth = 0i32;
    let mut open = None;
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    open = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(open) = open else {
        return name.to_owned();
    };
    let head = &body[..open];
    if head.is_empty() || head.ends_with("operator") {
        return name.to_owned();
    }
    // The return type: text before the last space outside <> and ().
    if head.contains("operator") {
        return head.to_owned();
    }
    let (mut angle, mut paren, mut cut) = (0i32, 0i32, 0usize);
    for (i, c) in head.char_indices() {
        match c {
            '<' => angle += 1,
            '>' => angle -= 1,
            '(' => paren += 1,
            ')' => paren -= 1,
            ' ' if angle == 0 && paren == 0 => cut = i + 1,
            _ => {}
        }
    }
    head[cut..].to_owned()
}

/// Keeps the full name; only `;` (the folded-stack separator) is replaced.
fn clean(name: &str) -> String {
    // kallsyms separates a module's name with a tab (`vp_notify\t[virtio_pci]`).
    name.replace(';', ",").replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::read_proc;

    #[inline(never)]
    fn qfc_probe_symbolize_self_test_marker() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn mapping_symbols_are_not_functions() {
        for m in ["$x", "$d", "$x.12", "$d.3", "$a", "$t"] {
            assert!(is_mapping_symbol(m), "{m}");
        }
        for f in ["$LT$impl", "main", "x", "$xyz", "_$d"] {
            assert!(!is_mapping_symbol(f), "{f}");
        }
    }

    /// perf's rule among aliases: sized, then strong, then global, then
    /// fewer leading underscores, then the longest name.
    #[test]
    fn aliases_resolve_as_perf_does() {
        let c = |n: &str, sized, weak, global| (n.to_owned(), sized, weak, global);
        let best = |v| perf_best(v).unwrap();
        assert_eq!(
            best(vec![
                c("__memcpy_avx_unaligned_erms", true, false, false),
                c("__memmove_avx_unaligned_erms", true, false, false),
            ]),
            "__memmove_avx_unaligned_erms"
        );
        assert_eq!(
            best(vec![
                c("aa_long", false, false, true),
                c("b", true, false, false)
            ]),
            "b"
        );
        assert_eq!(
            best(vec![
                c("strong", true, false, false),
                c("weak_longer", true, true, false)
            ]),
            "strong"
        );
        assert_eq!(
            best(vec![
                c("local_longer", true, false, false),
                c("global", true, false, true)
            ]),
            "global"
        );
        assert_eq!(
            best(vec![
                c("__x_longer", true, false, true),
                c("_x", true, false, true)
            ]),
            "_x"
        );
        // This process's own libc (found in its maps, whatever the
        // architecture), when its detached debug info is installed, as
        // scripts/setup.sh does: glibc's copy routine has both names.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so"))
            .expect("the test process maps libc")
            .to_owned();
        let bytes = map_file(std::path::Path::new(&libc)).unwrap();
        let obj = object::File::parse(&*bytes).unwrap();
        let a = perf_aliases(&libc);
        let has = |n: &str| a.values().any(|v| v == n);
        if debug_file(&obj).is_none() {
            eprintln!(
                "aliases: {libc} has no detached debug file (libc6-dbg): its aliases not checked"
            );
        } else if cfg!(target_arch = "x86_64") {
            assert!(has("__memmove_avx_unaligned_erms"), "{a:?}");
            assert!(!has("__memcpy_avx_unaligned_erms"), "{a:?}");
        } else {
            assert!(
                !a.is_empty(),
                "no alias found in {libc} with its debug file"
            );
        }
    }

    #[test]
    fn resolves_own_function_with_rust_demangling() {
        let addr = qfc_probe_symbolize_self_test_marker as *const () as usize as u64;
        assert_eq!(qfc_probe_symbolize_self_test_marker(), 42);
        let proc = read_proc(std::process::id()).unwrap();
        let mut s = Symbolizer::new();
        let frames = s.user(Some(&proc), &[addr + 1]);
        assert!(frames[0].resolved, "{frames:?}");
        assert!(
            frames[0]
                .name
                .ends_with("qfc_probe_symbolize_self_test_marker"),
            "{frames:?}"
        );
        assert!(
            !frames[0].name.contains("::h"),
            "hash suffix kept: {frames:?}"
        );
    }

    /// Issue 12: C++ names as perf prints them.
    #[test]
    fn cpp_names_lose_return_type_and_arguments() {
        assert_eq!(
            short_cpp_name("void rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::FindSpliceForLevel<true>(char const*, rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::Node*, rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::Node*, int, rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::Node**, rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::Node**)"),
            "rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::FindSpliceForLevel<true>"
        );
        assert_eq!(
            short_cpp_name(
                "rocksdb::DBImpl::SyncClosedLogs(rocksdb::JobContext*, rocksdb::VersionEdit*)"
            ),
            "rocksdb::DBImpl::SyncClosedLogs"
        );
        assert_eq!(
            short_cpp_name("rocksdb::Slice::compare(rocksdb::Slice const&) const"),
            "rocksdb::Slice::compare"
        );
        assert_eq!(
            short_cpp_name("(anonymous namespace)::worker(void*)"),
            "(anonymous namespace)::worker"
        );
        for keep in [
            "_int_malloc",
            "core::ptr::drop_in_place<alloc::vec::Vec<u8>>",
            "[libc.so.6]",
            "std::operator<< <std::char_traits<char> >",
        ] {
            assert_eq!(short_cpp_name(keep), keep);
        }
    }

    #[test]
    fn names_keep_spaces_and_lose_semicolons() {
        assert_eq!(
            clean("<[u8; 32] as core::fmt::Debug>::fmt"),
            "<[u8, 32] as core::fmt::Debug>::fmt"
        );
    }

    #[test]
    fn unknown_without_maps() {
        let mut s = Symbolizer::new();
        let f = s.user(None, &[1, 2]);
        assert!(f.iter().all(|f| !f.resolved && f.name == UNKNOWN));
    }
}
