//! The embedded eBPF object built by `build.rs`.

/// The `probes-ebpf` object file, 8-byte aligned for the ELF parser.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probes"));
