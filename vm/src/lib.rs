//! Targets: the machines a scenario's node runs on. [`target::Target`] is
//! the contract the lab's orchestrator drives; [`local::LocalTarget`] runs
//! processes on this machine; QEMU guests (image recipe, command lines as
//! pure functions, lifecycle), SSH hosts and containers implement the same
//! trait, with cross-compilation of the binaries shipped to them. See
//! docs/ARCHITECTURE.md, "Targets".

pub mod arch;
pub mod cross;
pub mod image;
pub mod local;
pub mod process;
pub mod qemu;
pub mod ssh;
pub mod target;

pub use arch::{Accel, AccelChoice, Arch, HostFacts, ResolvedAccel};
pub use image::{BuildOptions, Image, ImageSummary};
pub use local::LocalTarget;
pub use qemu::{Guest, GuestOptions, QemuConfig};
pub use ssh::{SshDest, SshHost};
pub use target::{
    ExecOutput, ExitInfo, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo, TargetKind,
    TargetPath,
};
