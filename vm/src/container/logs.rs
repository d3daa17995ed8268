//! The node's stdout and stderr, read back from Docker's json-file log.
//!
//! Production runs the node with the json-file log driver and nobody
//! attached; the lab does the same and follows the log file on this host
//! (`/var/lib/docker/containers/ID/ID-json.log`) instead of `docker logs -f`
//! or an attach stream, which would make dockerd write every line a second
//! time (to our socket) and inflate the very writes T1's finding 2 is about.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// One record of the json-file driver.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct LogRecord {
    /// The bytes the container wrote (a line with its `\n`, or part of a
    /// long line).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 time dockerd received it.
    #[serde(default)]
    pub time: String,
}

/// Parses one line of a json-file log.
pub fn parse_record(line: &str) -> Option<LogRecord> {
    serde_json::from_str(line).ok()
}

/// Follows a json-file log: a thread reads it from the start and copies each
/// record's text to the stdout or stderr pipe it returns. It stops when
/// `done` is set and the file has no more complete lines, or when both
/// readers are dropped.
pub struct Follower {
    /// The container's stdout.
    pub stdout: Option<std::io::PipeReader>,
    /// The container's stderr.
    pub stderr: Option<std::io::PipeReader>,
    /// Set to stop following (after the container has exited).
    pub done: Arc<AtomicBool>,
}

impl Follower {
    /// Starts following `path`.
    pub fn start(path: PathBuf) -> std::io::Result<Self> {
        let (out_r, mut out_w) = std::io::pipe()?;
        let (err_r, mut err_w) = std::io::pipe()?;
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        std::thread::Builder::new().name("json-log-follow".into()).spawn(move || {
            let file = loop {
                match File::open(&path) {
                    Ok(f) => break f,
                    Err(_) if !stop.load(Ordering::Relaxed) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "no container log to follow");
                        return;
                    }
                }
            };
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let (mut out_ok, mut err_ok) = (true, true);
            loop {
                let finishing = stop.load(Ordering::Relaxed);
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        if let Some(r) = parse_record(line.trim_end()) {
                            let w: &mut dyn Write = if r.stream == "stderr" {
                                if !err_ok {
                                    line.clear();
                                    continue;
                                }
                                &mut err_w
                            } else {
                                if !out_ok {
                                    line.clear();
                                    continue;
                                }
                                &mut out_w
                            };
                            if w.write_all(r.log.as_bytes()).is_err() {
                                if r.stream == "stderr" {
                                    err_ok = false
                                } else {
                                    out_ok = false
                                }
                            }
                        }
                        line.clear();
                        if !out_ok && !err_ok {
                            return;
                        }
                    }
                    // A partial line stays in `line` until the rest arrives.
                    Ok(_) if finishing => return,
                    Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the container log");
                        return;
                    }
                }
            }
        })?;
        Ok(Self {
            stdout: Some(out_r),
            stderr: Some(err_r),
            done,
        })
    }
}

/// Reads the whole of a json-file log into (stdout, stderr) bytes.
pub fn read_all(mut r: impl Read) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut s = String::new();
    r.read_to_string(&mut s)?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for l in s.lines() {
        if let Some(rec) = parse_record(l) {
            if rec.stream == "stderr" {
                &mut err
            } else {
                &mut out
            }
            .extend_from_slice(rec.log.as_bytes());
        }
    }
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_by_stream() {
        let log = concat!(
            r#"{"log":"hello\n","stream":"stdout","time":"2026-11-27T19:00:00.1Z"}"#,
            "\n",
            r#"{"log":"oops \"quoted\"\n","stream":"stderr","time":"2026-11-27T19:00:00.2Z"}"#,
            "\n",
            "not json\n",
            r#"{"log":"world\n","stream":"stdout","time":"2026-11-27T19:00:00.3Z"}"#,
            "\n"
        );
        let (out, err) = read_all(log.as_bytes()).unwrap();
        assert_eq!(out, b"hello\nworld\n");
        assert_eq!(err, b"oops \"quoted\"\n");
    }

    #[test]
    fn follower_copies_and_waits_for_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut f = File::create(&path).unwrap();
        let mut fol = Follower::start(path.clone()).unwrap();
        let mut out = fol.stdout.take().unwrap();
        let mut err = fol.stderr.take().unwrap();
        writeln!(f, r#"{{"log":"a\n","stream":"stdout","time":"t"}}"#).unwrap();
        // Half a record, completed later: must come out whole, once.
        write!(f, r#"{{"log":"b\n","stream":"#).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        writeln!(f, r#""stderr","time":"t"}}"#).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        fol.done.store(true, Ordering::Relaxed);
        let (mut o, mut e) = (String::new(), String::new());
        out.read_to_string(&mut o).unwrap();
        err.read_to_string(&mut e).unwrap();
        assert_eq!(o, "a\n");
        assert_eq!(e, "b\n");
    }
}
