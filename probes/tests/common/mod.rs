//! The known-answer workloads' line handshake, shared by the probe test
//! binaries: the child prints `ready <pid>`, waits for `go`, does its exact
//! work, prints `done` (optionally with a value); dropping the handle kills it.
#![allow(dead_code)] // each test binary uses its own part of it

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use libtest_mimic::Failed;

pub struct Workload {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub pid: u32,
    /// The value after `done`, once [`Workload::run`] has returned.
    pub done: Option<String>,
}

impl Workload {
    /// Starts `bin ARGS` and reads its `ready <pid>` line.
    pub fn spawn(bin: &Path, args: &[&str]) -> Result<Self, Failed> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .ok_or(format!("bad ready line {line:?}"))?;
        Ok(Self {
            child,
            stdin,
            stdout,
            pid,
            done: None,
        })
    }

    /// Lets the workload run and waits until it has done its work.
    pub fn run(&mut self) -> Result<(), Failed> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        // `done`, or `done <checksum>` (the no-frame-pointer workload keeps
        // its result alive that way).
        let mut words = line.split_whitespace();
        if words.next() != Some("done") {
            return Err(format!("workload said {line:?} instead of done").into());
        }
        self.done = words.next().map(str::to_owned);
        Ok(())
    }

    /// Closes its stdin and waits for a successful exit.
    pub fn finish(mut self) -> Result<(), Failed> {
        drop(self.stdin.take());
        let st = self.child.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("workload exited with {st}").into());
        }
        Ok(())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
