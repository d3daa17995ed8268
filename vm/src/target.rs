//! The `Target` trait: the machine a scenario runs its node on, as the lab's
//! orchestrator drives it (see docs/ARCHITECTURE.md, "Targets").
//!
//! The trait is synchronous and small on purpose: the orchestrator calls it
//! from one thread, in order, and every method either finishes or fails with
//! a [`TargetError`]. A target owns everything it started (processes, guests,
//! port forwards, scratch files) and releases it in [`Target::teardown`],
//! which must be idempotent and is called on every exit path, including
//! after a failed `prepare`.
//!
//! Paths handed to and returned by a target are paths *on the target*
//! ([`TargetPath`]); paths on this machine are plain [`Path`]s.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::untrusted::Imported;

/// A path on the target machine (equal to a local path for the local target).
pub type TargetPath = PathBuf;

/// What kind of machine a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// This machine.
    Local,
    /// A QEMU guest booted by the lab.
    Qemu,
    /// A container started by the lab.
    Container,
    /// An existing host reached over ssh.
    Ssh,
}

/// A description of the machine, recorded in the bundle's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetInfo {
    /// Which kind of target.
    pub kind: TargetKind,
    /// CPU architecture of the target, as `uname -m` prints it (`x86_64`, `aarch64`).
    pub arch: String,
    /// Accelerator for guests (`kvm`, `hvf`, `tcg`); `None` for local and ssh.
    pub accel: Option<String>,
    /// True when the target's CPU is emulated (QEMU TCG): timings are not
    /// comparable with real hardware.
    pub emulated: bool,
}

/// A long-running process to start on the target.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    /// Program (a path on the target) followed by its arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables (added to the target's default environment).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory on the target; `None`: the target's scratch directory.
    pub cwd: Option<TargetPath>,
    /// Pipe stdin to the caller (otherwise stdin is `/dev/null`).
    pub stdin: bool,
}

/// The result of a short command run to completion on the target.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Exit code; `None` when the command was killed by a signal or timed out.
    pub code: Option<i32>,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// How a process on the target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExitInfo {
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => write!(f, "unknown status"),
        }
    }
}

/// A process started by [`Target::spawn`].
///
/// Dropping it without calling [`RemoteProcess::terminate`] must still stop
/// the process (no orphans).
pub trait RemoteProcess: Send {
    /// Process id on the target (the probes filter by it).
    fn pid(&self) -> u32;
    /// Its standard input, once (only when [`SpawnSpec::stdin`] was set).
    fn take_stdin(&mut self) -> Option<Box<dyn Write + Send>>;
    /// Its standard output, once.
    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>>;
    /// Its standard error, once.
    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>>;
    /// `Some` when the process has exited, without blocking.
    fn try_wait(&mut self) -> Result<Option<ExitInfo>, TargetError>;
    /// Asks the process (and its process group) to stop with SIGTERM, waits
    /// up to `grace`, then kills it. Idempotent; returns how it ended.
    fn terminate(&mut self, grace: Duration) -> Result<ExitInfo, TargetError>;
}

/// A machine the lab runs a node on.
pub trait Target: Send {
    /// Describes the machine.
    fn info(&self) -> TargetInfo;
    /// Brings the machine up (boot a guest, open a connection, create the
    /// scratch directory). Called once, before anything else.
    fn prepare(&mut self) -> Result<(), TargetError>;
    /// A scratch directory on the target, private to this run and removed by
    /// `teardown` (node datadirs and probe output go under it).
    fn scratch_dir(&self) -> TargetPath;
    /// Makes a local file available on the target and returns its path there.
    fn ship(&mut self, local: &Path) -> Result<TargetPath, TargetError>;
    /// Starts a long-running process with piped stdout and stderr.
    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Box<dyn RemoteProcess>, TargetError>;
    /// Runs a short command to completion (killed after `timeout`).
    fn exec(&mut self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError>;
    /// A TCP port on the target's loopback that is free now.
    fn free_port(&mut self) -> Result<u16, TargetError>;
    /// Maps a TCP port listening on the target's loopback to an address on
    /// this machine's loopback (identity for the local target).
    fn forward(&mut self, target_port: u16) -> Result<SocketAddr, TargetError>;
    /// The address a node on the target must bind its RPC, metrics and p2p
    /// listeners to so that [`Target::forward`] reaches them: `127.0.0.1`
    /// by default; `0.0.0.0` in a container, whose network namespace is its
    /// own and whose published ports arrive on its interface, not on its
    /// loopback (they are published on this machine's 127.0.0.1 only).
    fn listen_host(&self) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    }
    /// Why the target machine itself is gone (a QEMU guest whose process
    /// exited), or `None` while it is up or for targets that cannot vanish
    /// on their own (this machine).
    fn gone(&mut self) -> Option<String> {
        None
    }
    /// Copies a directory from the target into `local` (created if missing)
    /// through the untrusted-evidence gate ([`crate::untrusted`]): only
    /// regular files and directories arrive, with this process's owner and
    /// fixed modes; everything else is named in [`Imported::refused`].
    fn fetch_dir(&mut self, remote: &Path, local: &Path) -> Result<Imported, TargetError>;
    /// Stops everything the target started and releases the machine.
    /// Idempotent; called on every exit path.
    fn teardown(&mut self) -> Result<(), TargetError>;
}

/// Errors of every target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target kind is parsed but not implemented yet.
    #[error("target kind `{0}` is not available yet: use kind = \"local\" until its issue lands")]
    NotAvailable(String),
    /// A program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command did not finish in time.
    #[error("{program} did not finish within {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// A local file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command run on (or for) the target exited unsuccessfully.
    #[error("`{argv}` failed ({}): {stderr}", code.map_or("killed".to_string(), |c| format!("exit code {c}")))]
    Exec {
        /// The command line, shell-quoted for reading.
        argv: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// An ssh command, session or tunnel failed.
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    /// A tunnel or remote process over ssh failed in a way ssh itself did
    /// not classify.
    #[error("{what}: {message}")]
    Remote {
        /// What was being done, and on which host.
        what: String,
        /// What happened (ssh's stderr, a parse failure).
        message: String,
    },
    /// The QEMU guest could not be launched or booted.
    #[error(transparent)]
    Qemu(#[from] crate::qemu::QemuError),
    /// A failure inside a QEMU guest, with the tail of its serial console.
    #[error("{source}\nserial console tail:\n{serial_tail}")]
    GuestConsole {
        /// The failure.
        #[source]
        source: Box<TargetError>,
        /// The last lines the guest printed.
        serial_tail: String,
    },
    /// A failure inside a QEMU guest that had died meanwhile.
    #[error("{source}; the guest is gone: {why}")]
    GuestGone {
        /// The failure seen first.
        #[source]
        source: Box<TargetError>,
        /// How QEMU ended.
        why: String,
    },
    /// The container engine, an image or a container said no.
    #[error("{message}")]
    Container {
        /// What failed and what to do.
        message: String,
        /// The underlying failure, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Waiting for or polling a process (local, or the ssh client) failed.
    #[error("{what}: {source}")]
    Wait {
        /// What was waited for.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM arrived while a command ran.
    #[error("{what}: interrupted (SIGINT/SIGTERM)")]
    Interrupted {
        /// The command.
        what: String,
    },
    /// The target was asked for something it cannot do in its state or
    /// at all (not prepared, a port after the node started, an empty
    /// command line, a path without a file name): a bug in the caller or
    /// a scenario the target does not support; the message says which.
    #[error("{0}")]
    Unsupported(String),
}

impl TargetError {
    /// A container failure without an underlying error.
    pub fn container(message: impl Into<String>) -> Self {
        TargetError::Container {
            message: message.into(),
            source: None,
        }
    }

    /// An empty command line handed to the target.
    pub fn empty_command() -> Self {
        TargetError::Unsupported("empty command line".into())
    }
}
