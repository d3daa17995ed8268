//! Kernel side of the qfc-lab probes: five programs that aggregate in maps
//! (fsync, bio, offcpu, writepath, oncpu), a fork tracker that extends the
//! target process tree, and the shared maps (configuration, phase slot,
//! target sets, lost-event counters, stack traces); `ustack` copies user
//! stacks for DWARF unwinding in userspace.
//!
//! Built only for `bpfel-unknown-none` by `probes/build.rs`; on the host
//! target this file compiles to an empty binary so that `cargo build
//! --workspace` does not break.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod prog;
#[cfg(target_arch = "bpf")]
mod ustack;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
