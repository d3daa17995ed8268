//! The one gate for evidence that comes back from another machine: a QEMU
//! guest's 9p share or an SSH host's tar stream. Whatever is on the other
//! side is untrusted input, so only regular files and directories pass, with
//! every path checked component by component (no absolute path, no `..`, no
//! empty or NUL-bearing name), written afresh by this process (so with this
//! process's owner and fixed modes: 0644 files, 0755 directories), and never
//! through a link. Symlinks, hard links, FIFOs, sockets and device nodes are
//! refused and named in [`Imported::refused`]; so is anything past the size
//! and entry limits. Nothing here opens a non-regular file (a FIFO would
//! block the reader).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Limits on one import.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of file content in all.
    pub max_bytes: u64,
    /// Files and directories in all.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 4 GiB and 200,000 entries: a probe session writes megabytes in a few
    /// hundred files; anything near these is a bug or hostile.
    fn default() -> Self {
        Self {
            max_bytes: 4 << 30,
            max_entries: 200_000,
        }
    }
}

/// One entry that did not come through, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// The entry's path as the other side named it (lossy UTF-8).
    pub path: String,
    pub why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.why)
    }
}

/// What an import brought in.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub refused: Vec<Refused>,
}

/// Checks a relative path from the other side: only normal components (a
/// leading `./` is dropped), none empty, no NUL, at most 64 deep and 4096
/// bytes long. Returns the path to join under the destination.
pub fn check_rel_path(raw: &[u8]) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStrExt;
    if raw.is_empty() {
        return Err("empty name".into());
    }
    if raw.len() > 4096 {
        return Err(format!("name of {} bytes (limit 4096)", raw.len()));
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    let p = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("names the top directory itself".into());
    }
    if out.components().count() > 64 {
        return Err("more than 64 levels deep".into());
    }
    Ok(out)
}

struct Gate<'a> {
    to: &'a Path,
    limits: Limits,
    out: Imported,
}

impl Gate<'_> {
    fn refuse(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.out.refused.push(Refused {
            path: path.into(),
            why: why.into(),
        });
    }

    fn over_entries(&mut self, path: &str) -> bool {
        if self.out.files + self.out.dirs >= self.limits.max_entries {
            self.refuse(
                path,
                format!("over the limit of {} entries", self.limits.max_entries),
            );
            return true;
        }
        false
    }

    /// Creates the directories of `rel` under the destination, refusing to
    /// pass through anything that is not a real directory.
    fn make_dirs(&mut self, rel: &Path) -> io::Result<bool> {
        let mut cur = self.to.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&cur)?;
                    std::fs::set_permissions(
                        &cur,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )?;
                    self.out.dirs += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Writes one regular file's content at `rel` (a new file: an existing
    /// entry of that name is refused, never overwritten or followed).
    fn write_file(&mut self, shown: &str, rel: &Path, content: &mut dyn Read) -> io::Result<()> {
        if self.over_entries(shown) {
            return Ok(());
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !self.make_dirs(parent)? {
                self.refuse(shown, "a parent is not a directory");
                return Ok(());
            }
        }
        let dst = self.to.join(rel);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&dst)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.refuse(shown, "an entry of that name already exists");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let room = self.limits.max_bytes.saturating_sub(self.out.bytes);
        let n = io::copy(&mut content.take(room), &mut f)?;
        self.out.bytes += n;
        // Anything left means the limit cut the file: say so, keep the head.
        let mut probe = [0u8; 1];
        if n == room && content.read(&mut probe)? > 0 {
            self.refuse(
                shown,
                format!("cut at the limit of {} bytes in all", self.limits.max_bytes),
            );
        }
        f.flush()?;
        self.out.files += 1;
        Ok(())
    }
}

/// Copies the tree under `from` (a directory another machine wrote, e.g. a
/// 9p share) into `to` through the gate. `from` itself must be a real
/// directory.
pub fn import_tree(from: &Path, to: &Path, limits: Limits) -> io::Result<Imported> {
    let top = std::fs::symlink_metadata(from)?;
    if !top.file_type().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a directory", from.display()),
        ));
    }
    std::fs::create_dir_all(to)?;
    let mut g = Gate {
        to,
        limits,
        out: Imported::default(),
    };
    walk(&mut g, from, Path::new(""))?;
    Ok(g.out)
}

fn walk(g: &mut Gate<'_>, from: &Path, rel: &Path) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let shown = r.to_string_lossy().into_owned();
        // DirEntry::file_type does not follow symlinks.
        let ft = e.file_type()?;
        if ft.is_dir() {
            if g.over_entries(&shown) {
                continue;
            }
            if g.make_dirs(&r)? {
                walk(g, from, &r)?;
            } else {
                g.refuse(shown, "a parent is not a directory");
            }
        } else if ft.is_file() {
            // O_NOFOLLOW + O_NONBLOCK, then fstat: a file swapped for a link
            // or a FIFO between listing and opening is still refused.
            let src = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(e.path())
            {
                Ok(f) => f,
                Err(err) => {
                    g.refuse(shown, format!("cannot open: {err}"));
                    continue;
                }
            };
            if !src.metadata()?.file_type().is_file() {
                g.refuse(shown, "not a regular file when opened");
                continue;
            }
            let mut src: File = src;
            g.write_file(&shown, &r, &mut src)?;
        } else {
            g.refuse(shown, kind_name(&ft));
        }
    }
    Ok(())
}

fn kind_name(ft: &std::fs::FileType) -> String {
    let k = if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file or directory"
    };
    format!("{k}: not copied")
}

/// Reads a tar stream (as `tar -cf -` on the other side writes it) into
/// `to` through the gate. Owners, modes, times and extended attributes in
/// the stream are ignored.
pub fn import_tar<R: Read>(stream: R, to: &Path, limits: Limits) -> io::Result<Imported> {
    std::fs::create_dir_all(to)?;
    let mut g = Gate {
        to,
        limits,
        out: Imported::default(),
    };
    let mut ar = tar::Archive::new(stream);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = match check_rel_path(&raw) {
            Ok(r) => r,
            Err(why) => {
                // `tar -C parent -cf - name` writes `name/` first: that one
                // (`.` after the drop of `./`) is the top itself.
                if raw == b"./" || raw == b"." {
                    continue;
                }
                g.refuse(shown, why);
                continue;
            }
        };
        let ty = entry.header().entry_type();
        if ty.is_dir() {
            if g.over_entries(&shown) {
                continue;
            }
            if !g.make_dirs(&rel)? {
                g.refuse(shown, "a parent is not a directory");
            }
        } else if ty.is_file() {
            g.write_file(&shown, &rel, &mut entry)?;
        } else {
            let what = if ty.is_symlink() {
                "a symbolic link"
            } else if ty.is_hard_link() {
                "a hard link"
            } else if ty.is_fifo() {
                "a FIFO"
            } else if ty.is_character_special() {
                "a character device"
            } else if ty.is_block_special() {
                "a block device"
            } else {
                "an entry of an unsupported type"
            };
            g.refuse(shown, format!("{what}: not copied"));
        }
    }
    Ok(g.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn rel_paths() {
        assert_eq!(
            check_rel_path(b"a/b.txt").unwrap(),
            PathBuf::from("a/b.txt")
        );
        assert_eq!(check_rel_path(b"./a").unwrap(), PathBuf::from("a"));
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"/etc/passwd",
            b"",
            b"a\0b",
            b".",
        ] {
            assert!(
                check_rel_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tree_refuses_links_fifos_and_keeps_files() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("p")).unwrap();
        std::fs::write(from.path().join("p/ok.txt"), b"evidence").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.path().join("p/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc", from.path().join("etcdir")).unwrap();
        nix::unistd::mkfifo(&from.path().join("p/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let mut perms = std::fs::metadata(from.path().join("p/ok.txt"))
            .unwrap()
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o4777);
        std::fs::set_permissions(from.path().join("p/ok.txt"), perms).unwrap();

        let got = import_tree(from.path(), to.path(), Limits::default()).unwrap();
        assert_eq!(got.files, 1);
        assert_eq!(
            std::fs::read(to.path().join("p/ok.txt")).unwrap(),
            b"evidence"
        );
        let m = std::fs::metadata(to.path().join("p/ok.txt")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644, "mode is ours, not the sender's");
        let refused: Vec<&str> = got.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, ["etcdir", "p/fifo", "p/passwd"]);
        assert!(got.refused[0].why.contains("symbolic link"));
        assert!(got.refused[1].why.contains("FIFO"));
        for name in ["etcdir", "p/fifo", "p/passwd"] {
            assert!(
                std::fs::symlink_metadata(to.path().join(name)).is_err(),
                "{name}"
            );
        }
    }

    /// A tar header with a raw name, as a hostile sender can write it (the
    /// `tar` crate's builder refuses `..`, so the name is set by hand).
    fn raw_entry(b: &mut Vec<u8>, name: &[u8], ty: tar::EntryType, data: &[u8], uid: u64) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(0o6755);
        h.set_uid(uid);
        h.set_gid(uid);
        if ty == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        b.extend(std::iter::repeat_n(0u8, pad));
    }

    #[test]
    fn tar_refuses_traversal_links_devices_and_owners() {
        let mut b = Vec::new();
        raw_entry(&mut b, b"out/", tar::EntryType::Directory, b"", 0);
        raw_entry(
            &mut b,
            b"out/ok.txt",
            tar::EntryType::Regular,
            b"fine",
            4242,
        );
        raw_entry(&mut b, b"../x", tar::EntryType::Regular, b"escape", 0);
        raw_entry(&mut b, b"/tmp/abs", tar::EntryType::Regular, b"abs", 0);
        raw_entry(&mut b, b"out/link", tar::EntryType::Symlink, b"", 0);
        raw_entry(&mut b, b"out/fifo", tar::EntryType::Fifo, b"", 0);
        raw_entry(&mut b, b"out/dev", tar::EntryType::Char, b"", 0);
        b.extend(std::iter::repeat_n(0u8, 1024));
        let to = tempfile::tempdir().unwrap();
        let dst = to.path().join("d");
        let got = import_tar(&b[..], &dst, Limits::default()).unwrap();
        assert_eq!(got.files, 1);
        let m = std::fs::metadata(dst.join("out/ok.txt")).unwrap();
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw(), "owner is ours");
        assert_eq!(m.mode() & 0o7777, 0o644);
        let refused: Vec<&str> = got.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            refused,
            ["../x", "/tmp/abs", "out/link", "out/fifo", "out/dev"]
        );
        assert!(!to.path().join("x").exists());
        assert!(
            !Path::new("/tmp/abs").exists()
                || std::fs::read(Path::new("/tmp/abs")).unwrap() != b"abs"
        );
    }

    #[test]
    fn limits_cut_and_say_so() {
        let from = tempfile::tempdir().unwrap();
        std::fs::write(from.path().join("a"), vec![1u8; 100]).unwrap();
        std::fs::write(from.path().join("b"), vec![2u8; 100]).unwrap();
        let to = tempfile::tempdir().unwrap();
        let got = import_tree(
            from.path(),
            to.path(),
            Limits {
                max_bytes: 150,
                max_entries: 10,
            },
        )
        .unwrap();
        assert_eq!(got.bytes, 150);
        assert_eq!(got.refused.len(), 1);
        assert_eq!(got.refused[0].path, "b");
        assert!(got.refused[0].why.contains("cut at the limit"));
    }
}
