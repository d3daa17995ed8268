//! Targets that are not this machine: QEMU guests (image recipe, command
//! lines as pure functions, lifecycle), SSH hosts, and cross-compilation of
//! the binaries shipped to them. See docs/ARCHITECTURE.md, "Targets".

pub mod arch;
pub mod cross;
pub mod image;
pub mod process;
pub mod qemu;
pub mod ssh;

pub use arch::{Accel, AccelChoice, Arch, HostFacts, ResolvedAccel};
pub use image::{BuildOptions, Image, ImageSummary};
pub use qemu::{Guest, GuestOptions, QemuConfig};
pub use ssh::{SshDest, SshHost};
