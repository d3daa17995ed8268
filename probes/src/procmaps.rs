//! The executable mappings of a process (`/proc/<pid>/maps`) and its name:
//! a leaf that both the window snapshot and the DWARF unwinder read.

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Backing file, or a pseudo name such as `[vdso]`.
    pub path: String,
}

/// What is known about a process.
#[derive(Debug, Clone, Default)]
pub struct ProcInfo {
    /// `/proc/<pid>/comm` of the main thread.
    pub name: String,
    /// Executable mappings, sorted by start.
    pub maps: Vec<Mapping>,
}

/// Parses the executable mappings of `/proc/<pid>/maps`.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !perms.contains('x') {
            continue;
        }
        let (_dev, _inode) = (it.next(), it.next());
        // The path may contain spaces: take the rest of the line.
        let path = it.collect::<Vec<_>>().join(" ");
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end), Ok(offset)) = (
            u64::from_str_radix(s, 16),
            u64::from_str_radix(e, 16),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            offset,
            path,
        });
    }
    out.sort_by_key(|m| m.start);
    out
}

/// Reads a live process's name and maps; `None` once it has exited.
pub fn read_proc(tgid: u32) -> Option<ProcInfo> {
    let maps = std::fs::read_to_string(format!("/proc/{tgid}/maps")).ok()?;
    let name = std::fs::read_to_string(format!("/proc/{tgid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_owned();
    Some(ProcInfo {
        name,
        maps: parse_maps(&maps),
    })
}
