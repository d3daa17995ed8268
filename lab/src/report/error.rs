//! The report's error: which file could not be read, written or understood, and
//! what to do about it. A leaf: every report module returns it, it refers to none.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check that the directory is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed {path}: {what}; fix or remove the file and re-run `qfc-lab report`")]
    Parse { path: PathBuf, what: String },
    #[error("{path} is not a bundle ({why}); pass a directory written by `qfc-lab run`")]
    NotABundle { path: PathBuf, why: String },
    #[error("{path} holds none of T1's files (01-fsync-latency.txt ... 05-oncpu.folded); pass the directory that holds them")]
    NotT1 { path: PathBuf },
}
