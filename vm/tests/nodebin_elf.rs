//! Known answers for node-binary inspection (`vm::nodebin`): the same C
//! program built by gcc with and without frame pointers, then stripped,
//! must be judged "frame pointers: yes", "no" and "unknown, no symbols".
//! Skipped, with the reason, when gcc is missing.

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use vm::nodebin::{self, FramePointers};

/// A program with 60 non-trivial functions (each well over 32 bytes).
fn source() -> String {
    let mut s = String::from("#include <stdio.h>\n");
    for i in 0..60 {
        s.push_str(&format!(
            "__attribute__((noinline)) long f{i}(long *a, long n) {{ long s = {i}; \
             for (long j = 0; j < n; j++) {{ s += a[j] * {m} ^ (s >> 3); if (s & 1) s = s * 7 + j; }} \
             printf(\"%ld\\n\", s); return s; }}\n",
            m = i + 3
        ));
    }
    s.push_str("int main(int c, char **v) { long a[4] = {c, 2, 3, 4}; long t = 0;\n");
    for i in 0..60 {
        s.push_str(&format!("t += f{i}(a, c);\n"));
    }
    s.push_str("return (int)(t & 1) + (v == 0); }\n");
    s
}

fn gcc(dir: &Path, name: &str, flags: &[&str]) -> Result<std::path::PathBuf, Failed> {
    let src = dir.join("p.c");
    std::fs::write(&src, source()).map_err(|e| e.to_string())?;
    let out = dir.join(name);
    let st = Command::new("gcc")
        .args(flags)
        .args(["-O2", "-fno-inline", "-Wl,--build-id", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("gcc {flags:?} failed").into());
    }
    Ok(out)
}

fn known_answers() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let arch = std::env::consts::ARCH;
    let with = gcc(dir.path(), "with-fp", &["-fno-omit-frame-pointer"])?;
    let without = gcc(dir.path(), "without-fp", &["-fomit-frame-pointer"])?;
    let a = nodebin::inspect(&with, arch)?;
    let b = nodebin::inspect(&without, arch)?;
    eprintln!(
        "with: {:?} {:?}; without: {:?} {:?}",
        a.frame_pointers, a.frame_pointer_share, b.frame_pointers, b.frame_pointer_share
    );
    assert_eq!(a.frame_pointers, FramePointers::Yes);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(b.frame_pointers, FramePointers::No);
    assert!(
        b.warnings
            .iter()
            .any(|w| w.contains("force-frame-pointers")),
        "{:?}",
        b.warnings
    );
    assert!(a.build_id.is_some() && a.function_symbols >= 60);

    let stripped = dir.path().join("stripped");
    std::fs::copy(&with, &stripped).map_err(|e| e.to_string())?;
    let st = Command::new("strip")
        .arg(&stripped)
        .status()
        .map_err(|e| e.to_string())?;
    assert!(st.success());
    let c = nodebin::inspect(&stripped, arch)?;
    assert_eq!(c.frame_pointers, FramePointers::Unknown);
    assert_eq!(c.function_symbols, 0);
    assert!(
        c.warnings.iter().any(|w| w.contains("no symbol table")),
        "{:?}",
        c.warnings
    );
    // Stripping keeps the build id and changes the BLAKE3.
    assert_eq!(c.build_id, a.build_id);
    assert_ne!(c.blake3, a.blake3);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let has_gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_gcc {
        eprintln!("skipping nodebin_known_answers: gcc is not installed (apt-get install gcc)");
    }
    let trials =
        vec![Trial::test("nodebin_known_answers", known_answers).with_ignored_flag(!has_gcc)];
    libtest_mimic::run(&args, trials).exit();
}
