//! probes: the userspace side of the qfc-lab eBPF probes.
pub mod ebpf;
