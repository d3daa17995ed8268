//! Targets: the machines a scenario's node runs on. [`target::Target`] is
//! the contract the lab's orchestrator drives; [`local::LocalTarget`] runs
//! processes on this machine, [`qemu_target::QemuTarget`] boots a guest from
//! a cached image ([`image`]) and reaches it over ssh, [`ssh_target::SshTarget`]
//! drives an existing host. Also: QEMU command lines as pure functions
//! ([`qemu`]), accelerator choice ([`arch`]) and cross-compilation of the
//! binaries shipped to targets ([`cross`]). See docs/ARCHITECTURE.md, "Targets".

pub mod arch;
pub mod container;
pub mod cross;
pub mod gc;
pub mod hostprep;
pub mod image;
pub mod local;
pub mod nodebin;
pub mod process;
pub mod qemu;
pub mod qemu_target;
pub mod remote;
pub mod ssh;
pub mod ssh_target;
pub mod target;
pub mod testing;
pub mod untrusted;

pub use arch::{Accel, AccelChoice, Arch, HostFacts, ResolvedAccel};
pub use image::{BuildOptions, Image, ImageSummary};
pub use local::LocalTarget;
pub use qemu::{Guest, GuestOptions, QemuConfig};
pub use qemu_target::QemuTarget;
pub use ssh::{SshDest, SshHost};
pub use ssh_target::{SshTarget, SshTargetConfig};
pub use target::{
    ExecOutput, ExitInfo, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo, TargetKind,
    TargetPath,
};
