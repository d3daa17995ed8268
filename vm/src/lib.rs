//! Targets: the machines a scenario's node runs on. [`target::Target`] is
//! the contract the lab's orchestrator drives; [`local::LocalTarget`] runs
//! processes on this machine. QEMU guests, containers and SSH hosts implement
//! the same trait (see docs/ARCHITECTURE.md, "Targets").

pub mod local;
pub mod target;

pub use local::LocalTarget;
pub use target::{
    ExecOutput, ExitInfo, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo, TargetKind,
    TargetPath,
};
