//! The probe session the orchestrator drives: [`QfcProbe`] runs the
//! `qfc-probe` binary on the machine the probes run on with
//! `--control stdin` and speaks its line protocol (docs/ARCHITECTURE.md,
//! "Probe session control"):
//!
//! ```text
//! -> (attach)        <- ready <monotonic_ns>
//! -> phase <name>    <- phase <name> <monotonic_ns>
//! -> stop            <- stopped <monotonic_ns>
//! ```

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

use vm::{RemoteProcess, SpawnSpec, Target, TargetPath};

use crate::scenario::{ProbeScope, ProbeSpec};

/// Errors of a probe session.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("qfc-probe binary not found at {0}: build it with `cargo build -p probes` (same target directory as qfc-lab) or pass --probe-binary")]
    Missing(PathBuf),
    #[error("could not start qfc-probe: {0}")]
    Start(String),
    #[error("qfc-probe did not answer `{command}` within {timeout_s} s")]
    Timeout { command: String, timeout_s: u64 },
    #[error("qfc-probe exited while waiting for `{command}` ({status}); its stderr: {stderr}")]
    Exited {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("qfc-probe answered {line:?} to `{command}`")]
    Protocol { command: String, line: String },
}

/// `qfc-probe`'s command line after the program.
/// `cgroup`: a cgroup v2 directory that replaces `--pid` for scope
/// `target` (a container's processes).
pub fn probe_args(spec: &ProbeSpec, pid: u32, cgroup: Option<&Path>, out: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    match (spec.scope, cgroup) {
        (ProbeScope::Target, Some(cg)) => a.extend(["--cgroup".into(), cg.into()]),
        (ProbeScope::Target, None) => a.extend(["--pid".into(), pid.to_string().into()]),
        (ProbeScope::System, _) => a.push("--system".into()),
    }
    a.extend(["--out".into(), out.into()]);
    let names: Vec<&str> = spec.enable.iter().map(|p| p.name()).collect();
    a.extend(["--probes".into(), names.join(",").into()]);
    a.extend(["--hz".into(), spec.oncpu_hz.to_string().into()]);
    a.extend([
        "--min-offcpu-us".into(),
        spec.offcpu_min_us.to_string().into(),
    ]);
    a.extend(["--map-entries".into(), spec.map_entries.to_string().into()]);
    a.extend(["--unwind".into(), spec.unwind.name().into()]);
    a.extend([
        "--ustack-bytes".into(),
        spec.ustack_bytes.to_string().into(),
    ]);
    a.extend(["--control".into(), "stdin".into()]);
    a
}

/// The `qfc-probe` binary driven over stdin/stdout: one session over the
/// whole run.
pub struct QfcProbe {
    binary: PathBuf,
    spec: ProbeSpec,
    cgroup: Option<PathBuf>,
    /// Local file receiving the probe's stderr.
    stderr_log: PathBuf,
    attach_timeout: Duration,
    proc: Option<Box<dyn RemoteProcess>>,
    stdin: Option<Box<dyn Write + Send>>,
    lines: Option<Receiver<String>>,
    stderr_pump: Option<std::thread::JoinHandle<()>>,
}

impl QfcProbe {
    pub fn new(binary: PathBuf, spec: ProbeSpec, stderr_log: PathBuf) -> Self {
        Self {
            binary,
            spec,
            cgroup: None,
            stderr_log,
            attach_timeout: Duration::from_secs(90),
            proc: None,
            stdin: None,
            lines: None,
            stderr_pump: None,
        }
    }

    /// Filters by this cgroup v2 directory instead of the pid (scope `target`).
    pub fn with_cgroup(mut self, cgroup: PathBuf) -> Self {
        self.cgroup = Some(cgroup);
        self
    }

    fn stderr_tail(&mut self) -> String {
        if let Some(h) = self.stderr_pump.take() {
            let _ = h.join();
        }
        let s = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let tail: Vec<&str> = s.lines().rev().take(5).collect();
        let t = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        if t.is_empty() {
            "(empty)".into()
        } else {
            t
        }
    }

    fn expect(
        &mut self,
        command: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<u64, ProbeError> {
        let rx = self
            .lines
            .as_ref()
            .ok_or_else(|| ProbeError::Start("session not attached".into()))?;
        // In slices, so that a signal (vm's cancel flag) ends the wait at once.
        let end = std::time::Instant::now() + timeout;
        let got = loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if vm::process::cancel_requested() {
                return Err(ProbeError::Start(format!(
                    "interrupted while waiting for qfc-probe to answer `{command}`"
                )));
            }
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => continue,
                other => break other,
            }
        };
        match got {
            Ok(line) => {
                let rest = line.strip_prefix(prefix).map(str::trim);
                rest.and_then(|r| r.rsplit(' ').next())
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .ok_or(ProbeError::Protocol {
                        command: command.into(),
                        line,
                    })
            }
            Err(RecvTimeoutError::Timeout) => Err(ProbeError::Timeout {
                command: command.into(),
                timeout_s: timeout.as_secs(),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                let status = match self
                    .proc
                    .as_mut()
                    .map(|p| p.terminate(Duration::from_secs(2)))
                {
                    Some(Ok(s)) => s.to_string(),
                    _ => "unknown status".into(),
                };
                Err(ProbeError::Exited {
                    command: command.into(),
                    status,
                    stderr: self.stderr_tail(),
                })
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), ProbeError> {
        let w = self
            .stdin
            .as_mut()
            .ok_or_else(|| ProbeError::Start("session not attached".into()))?;
        w.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| w.flush())
            .map_err(|e| ProbeError::Exited {
                command: line.into(),
                status: format!("stdin closed: {e}"),
                stderr: String::new(),
            })
    }
}

impl QfcProbe {
    /// Starts the probes on the node's process `pid`, writing under `out`
    /// (a path on the target); returns the monotonic time they were ready.
    pub fn attach(
        &mut self,
        target: &mut dyn Target,
        pid: u32,
        out: &Path,
    ) -> Result<u64, ProbeError> {
        if !self.binary.is_file() {
            return Err(ProbeError::Missing(self.binary.clone()));
        }
        let remote: TargetPath = target
            .ship(&self.binary)
            .map_err(|e| ProbeError::Start(e.to_string()))?;
        let mut argv = vec![remote.into_os_string()];
        argv.extend(probe_args(&self.spec, pid, self.cgroup.as_deref(), out));
        let mut p = target
            .spawn(&SpawnSpec {
                argv,
                stdin: true,
                ..Default::default()
            })
            .map_err(|e| ProbeError::Start(e.to_string()))?;
        self.stdin = p.take_stdin();
        let (tx, rx) = channel();
        if let Some(out) = p.take_stdout() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(mut err) = p.take_stderr() {
            let path = self.stderr_log.clone();
            self.stderr_pump = Some(std::thread::spawn(move || {
                if let Ok(mut f) = std::fs::File::create(path) {
                    let _ = std::io::copy(&mut err, &mut f);
                }
            }));
        }
        self.lines = Some(rx);
        self.proc = Some(p);
        self.expect("attach", "ready", self.attach_timeout)
    }

    /// Closes the current window and opens one for phase `name`.
    pub fn phase(&mut self, name: &str) -> Result<u64, ProbeError> {
        let cmd = format!("phase {name}");
        self.send(&cmd)?;
        self.expect(&cmd, &format!("phase {name}"), Duration::from_secs(30))
    }

    /// Closes the last window and detaches.
    pub fn stop(&mut self) -> Result<u64, ProbeError> {
        self.send("stop")?;
        let t = self.expect("stop", "stopped", Duration::from_secs(120))?;
        self.stdin = None;
        if let Some(p) = self.proc.as_mut() {
            let _ = p.terminate(Duration::from_secs(10));
        }
        if let Some(h) = self.stderr_pump.take() {
            let _ = h.join();
        }
        Ok(t)
    }

    /// Stops the session at once (teardown path); idempotent.
    pub fn abort(&mut self) {
        self.stdin = None;
        if let Some(mut p) = self.proc.take() {
            let _ = p.terminate(Duration::from_secs(5));
        }
        if let Some(h) = self.stderr_pump.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ProbeKind;

    #[test]
    fn probe_command_line() {
        let spec = ProbeSpec {
            enable: vec![ProbeKind::Fsync, ProbeKind::Oncpu],
            scope: ProbeScope::Target,
            oncpu_hz: 49,
            offcpu_min_us: 1,
            map_entries: 10,
            unwind: crate::scenario::UnwindMode::Dwarf,
            ustack_bytes: 32768,
        };
        let a: Vec<String> = probe_args(&spec, 7, None, Path::new("/o"))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(a.join(" "), "--pid 7 --out /o --probes fsync,oncpu --hz 49 --min-offcpu-us 1 --map-entries 10 --unwind dwarf --ustack-bytes 32768 --control stdin");
        let c: Vec<String> = probe_args(
            &spec,
            7,
            Some(Path::new("/sys/fs/cgroup/x")),
            Path::new("/o"),
        )
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
        assert_eq!(c[..2].join(" "), "--cgroup /sys/fs/cgroup/x");
    }

    /// The protocol against a stand-in speaking it (a shell script), on the
    /// local target: ready, two phases, stop, in order, with the times it sent.
    #[test]
    fn speaks_the_line_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-probe");
        std::fs::write(
            &script,
            "#!/bin/sh\necho ready 10\nwhile read cmd arg; do\n  case $cmd in\n    phase) echo \"phase $arg 20\";;\n    stop) echo stopped 30; exit 0;;\n  esac\ndone\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        let mut t = vm::LocalTarget::new(dir.path().join("scratch"), false);
        t.prepare().unwrap();
        let spec = ProbeSpec {
            enable: vec![ProbeKind::Fsync],
            scope: ProbeScope::System,
            oncpu_hz: 99,
            offcpu_min_us: 1,
            map_entries: 10,
            unwind: Default::default(),
            ustack_bytes: 16384,
        };
        let mut p = QfcProbe::new(script, spec, dir.path().join("stderr.log"));
        assert_eq!(p.attach(&mut t, 1, dir.path()).unwrap(), 10);
        assert_eq!(p.phase("warmup").unwrap(), 20);
        assert_eq!(p.phase("stress").unwrap(), 20);
        assert_eq!(p.stop().unwrap(), 30);
        t.teardown().unwrap();
    }

    #[test]
    fn missing_binary_is_a_named_failure() {
        let mut t = vm::LocalTarget::new(vm::LocalTarget::default_scratch(), false);
        t.prepare().unwrap();
        let spec = ProbeSpec {
            enable: vec![ProbeKind::Fsync],
            scope: ProbeScope::Target,
            oncpu_hz: 99,
            offcpu_min_us: 1,
            map_entries: 10,
            unwind: Default::default(),
            ustack_bytes: 16384,
        };
        let mut p = QfcProbe::new("/nonexistent/qfc-probe".into(), spec, "/tmp/x.log".into());
        let e = p
            .attach(&mut t, 1, Path::new("/tmp"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/qfc-probe"), "{e}");
        t.teardown().unwrap();
    }
}
