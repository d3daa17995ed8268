//! probes: the userspace side of the qfc-lab eBPF probes (aya).
//!
//! Loads the embedded kernel object ([`ebpf::OBJECT`], built by `build.rs`
//! from `probes-ebpf`), filters by process tree, cgroup or nothing
//! ([`scope`]), snapshots and resets the kernel maps at every phase boundary
//! ([`session`]), symbolizes stacks ([`symbolize`]) and writes bpftrace-style
//! text, JSON, folded stacks and flame graphs ([`render`]), and measures
//! the probes' own cost in every window ([`bpf_stats`]). [`cli`] holds the
//! `qfc-probe` arguments, which `qfc-lab probe` flattens.
pub mod attach;
pub mod bpf_stats;
pub mod cli;
pub mod ebpf;
pub mod error;
pub mod known_chain;
pub mod procmaps;
pub mod quality;
pub mod render;
pub mod scope;
pub mod session;
pub mod snapshot;
pub mod symbolize;
pub mod tracefs;
pub mod unwind;

pub use error::ProbeError;
pub use scope::{ProbeKind, Scope};
pub use session::{Session, SessionOptions, SessionSummary};
