//! The library's error type.
use std::path::PathBuf;

/// What can go wrong while setting up, running or writing a probe session.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The embedded object is empty (built with `AYA_BUILD_SKIP=1`).
    #[error("the embedded eBPF object is empty: probes was built with AYA_BUILD_SKIP=1; rebuild without it (needs bpf-linker, see scripts/setup.sh)")]
    NoObject,
    /// Loading the object or creating its maps failed.
    #[error("loading the eBPF object failed: {0}; run as root on a kernel with BPF and BTF")]
    Load(#[source] aya::EbpfError),
    /// Loading or attaching one program failed.
    #[error("attaching {program} to {point} failed: {source}; check that tracefs is mounted (scripts/services.sh) and that the kernel has this tracepoint")]
    Attach {
        /// Program name in the object.
        program: String,
        /// Where it was to be attached.
        point: String,
        /// The cause.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map could not be read, written or found.
    #[error("eBPF map {map}: {detail}")]
    Map {
        /// Map name.
        map: String,
        /// What failed.
        detail: String,
    },
    /// tracefs is missing and could not be mounted.
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {0}; run as root or mount it (bash scripts/services.sh)")]
    Tracefs(String),
    /// A tracepoint format file lacks a field the programs need.
    #[error("tracepoint {tracepoint} has no field {field} in {path}: this kernel's format is not supported", path = path.display())]
    Format {
        /// `category/name`.
        tracepoint: String,
        /// Field name.
        field: String,
        /// The format file.
        path: PathBuf,
    },
    /// The target process or cgroup does not exist.
    #[error("target {0} not found: check the pid or cgroup path")]
    Target(String),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The session was driven out of order (e.g. `phase` after `stop`).
    #[error("probe session: {0}")]
    State(String),
}

impl ProbeError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn map(map: &str, detail: impl std::fmt::Display) -> Self {
        Self::Map {
            map: map.to_owned(),
            detail: detail.to_string(),
        }
    }
}
