//! What the machine was (like T1's `00-context.txt`): kernel, OS, CPU,
//! memory, disks, tool versions, and the node's threads by name. Gathered
//! with short commands through the target, so it works for every target.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use vm::Target;

/// Commands whose output goes into the context, by label.
pub fn context_commands() -> Vec<(&'static str, Vec<OsString>)> {
    let sh = |s: &str| vec![OsString::from("sh"), "-c".into(), s.into()];
    vec![
        ("kernel", vec!["uname".into(), "-a".into()]),
        (
            "os",
            sh("grep PRETTY_NAME /etc/os-release | cut -d= -f2 | tr -d '\"'"),
        ),
        (
            "cpu",
            sh("lscpu 2>/dev/null || grep -m1 'model name' /proc/cpuinfo; nproc"),
        ),
        (
            "memory",
            sh("grep -E 'MemTotal|MemAvailable|SwapTotal' /proc/meminfo"),
        ),
        (
            "disks",
            sh("lsblk -o NAME,SIZE,ROTA,TYPE,MOUNTPOINT 2>/dev/null; df -h / /tmp 2>/dev/null"),
        ),
        ("cgroup", sh("cat /proc/self/cgroup")),
        ("rustc", vec!["rustc".into(), "--version".into()]),
        ("bpftool", vec!["bpftool".into(), "version".into()]),
        ("bpftrace", vec!["bpftrace".into(), "--version".into()]),
        ("perf", vec!["perf".into(), "--version".into()]),
        (
            "qemu",
            vec!["qemu-system-aarch64".into(), "--version".into()],
        ),
        (
            "rocksdb",
            sh("dpkg-query -W -f='${Version}' librocksdb-dev 2>/dev/null"),
        ),
    ]
}

/// The command that lists a process's thread names, one per line.
pub fn thread_census_command(pid: u32) -> Vec<OsString> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("cat /proc/{pid}/task/*/comm").into(),
    ]
}

/// Thread names -> count.
pub fn census(names: &str) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for n in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        *m.entry(n.to_string()).or_insert(0) += 1;
    }
    m
}

/// `context.json` (its one definition, in a leaf module the report reads too).
pub use crate::context_file::Context;

/// Runs every context command on the target (each bounded to 5 s).
pub fn gather(target: &mut dyn Target) -> Context {
    let mut c = Context {
        target: Some(target.info()),
        ..Default::default()
    };
    for (label, argv) in context_commands() {
        let text = match target.exec(&argv, Duration::from_secs(5)) {
            Ok(o) if o.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            Ok(o) => format!(
                "(failed: {}) {}",
                o.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into()),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("(unavailable: {e})"),
        };
        c.facts.insert(label.to_string(), text);
    }
    c
}

/// Thread census of `pid` on the target (empty when the process is gone).
pub fn threads(target: &mut dyn Target, pid: u32) -> BTreeMap<String, u32> {
    match target.exec(&thread_census_command(pid), Duration::from_secs(5)) {
        Ok(o) if o.success() => census(&String::from_utf8_lossy(&o.stdout)),
        _ => BTreeMap::new(),
    }
}

/// `context.txt`: the same facts for people.
pub fn render_text(c: &Context) -> String {
    let mut s = String::new();
    if let Some(t) = &c.target {
        s.push_str(&format!(
            "== target\n{:?} {} accel={} emulated={}\n\n",
            t.kind,
            t.arch,
            t.accel.as_deref().unwrap_or("-"),
            t.emulated
        ));
        if t.emulated {
            s.push_str("WARNING: the target's CPU is emulated (QEMU TCG): timings are not comparable with real hardware\n\n");
        }
    }
    for (k, v) in &c.facts {
        s.push_str(&format!("== {k}\n{v}\n\n"));
    }
    if let Some(v) = &c.node_version {
        s.push_str(&format!("== node version\n{v}\n\n"));
    }
    if !c.node_flag_notes.is_empty() {
        s.push_str("== node command line fitted to the binary's --help\n");
        for n in &c.node_flag_notes {
            s.push_str(&format!("{n}\n"));
        }
        s.push('\n');
    }
    for (title, t) in [
        ("threads at ready", &c.threads_at_ready),
        ("threads at end", &c.threads_at_end),
    ] {
        s.push_str(&format!(
            "== node {title} (pid {})\n",
            c.node_pid.unwrap_or(0)
        ));
        for (name, n) in t {
            s.push_str(&format!("{n:4} {name}\n"));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_counts_names() {
        let m = census("qfc-node\ntokio-rt-worker\ntokio-rt-worker\n\nrocksdb:low\n");
        assert_eq!(m["tokio-rt-worker"], 2);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn census_of_this_process_on_the_local_target() {
        let mut t = vm::LocalTarget::new(vm::LocalTarget::default_scratch(), false);
        t.prepare().unwrap();
        // The thread names itself once running: wait until it has.
        let (tx, rx) = std::sync::mpsc::channel();
        let _h = std::thread::Builder::new()
            .name("census-probe".into())
            .spawn(move || {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_secs(2))
            })
            .unwrap();
        rx.recv().unwrap();
        let m = threads(&mut t, std::process::id());
        assert_eq!(m.get("census-probe"), Some(&1), "{m:?}");
        t.teardown().unwrap();
    }
}
