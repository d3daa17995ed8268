//! Building the scenario's target (`[target] kind`): local, container, ssh
//! or qemu, and what each needs before the run starts (the guest image and
//! aarch64 cross-built binaries for qemu). [`AnyTarget`] keeps the concrete
//! type so the orchestrator can read target-specific facts (the container's
//! cgroup and main pid, the guest's accelerator and image key) for the
//! bundle's context.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;

use vm::container::{ContainerConfig, ContainerTarget};
use vm::{LocalTarget, QemuTarget, SshTarget, SshTargetConfig, Target};

use crate::scenario::{NodeKind, Scenario, SshSpec, TargetSpec};

/// The scenario's target with its concrete type.
pub enum AnyTarget {
    Local(LocalTarget),
    Container(Box<ContainerTarget>),
    Ssh(SshTarget),
    Qemu(Box<QemuTarget>),
}

impl AnyTarget {
    /// The target behind the trait.
    pub fn t(&mut self) -> &mut dyn Target {
        match self {
            Self::Local(t) => t,
            Self::Container(t) => t.as_mut(),
            Self::Ssh(t) => t,
            Self::Qemu(t) => t.as_mut(),
        }
    }

    /// Read-only access behind the trait.
    pub fn r(&self) -> &dyn Target {
        match self {
            Self::Local(t) => t,
            Self::Container(t) => t.as_ref(),
            Self::Ssh(t) => t,
            Self::Qemu(t) => t.as_ref(),
        }
    }

    /// True when the probes run on this host instead of through the
    /// target's spawn (the container target spawns only the node).
    pub fn probes_on_host(&self) -> bool {
        matches!(self, Self::Container(_))
    }

    /// Target-specific facts for `context.json` (after the node started).
    pub fn details(&self) -> TargetDetails {
        match self {
            Self::Local(_) | Self::Ssh(_) => TargetDetails::default(),
            Self::Container(c) => TargetDetails {
                container: Some(c.context().clone()),
                ..Default::default()
            },
            Self::Qemu(q) => TargetDetails {
                image: Some(q.image()),
                accel_reason: q.accel().map(|a| format!("{a:?}")),
                launch_to_ready_ms: q.launch_to_ready().map(|d| d.as_millis() as u64),
                qemu_argv: q
                    .qemu_argv()
                    .map(|a| a.iter().map(|x| x.to_string_lossy().into_owned()).collect()),
                serial_log: Some(q.serial_log()),
                ..Default::default()
            },
        }
    }
}

/// What a target adds to `context.json` (the one definition is the bundle file's).
pub use crate::context_file::TargetDetails;

/// Binaries for the target's architecture, when they differ from the host's.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    pub node: Option<PathBuf>,
    pub probe: Option<PathBuf>,
}

/// The qfc-lab source tree to cross-build the guest's binaries from, found
/// at run time (never a path compiled into the binary): `$QFC_LAB_WORKSPACE`,
/// else the first directory above this executable (`target/<profile>/`),
/// then above the current directory, whose `Cargo.toml` is the qfc-lab
/// workspace (it lists the `refnode` and `probes` members).
pub fn workspace_root() -> Result<PathBuf, String> {
    if let Some(w) = std::env::var_os("QFC_LAB_WORKSPACE") {
        let w = PathBuf::from(w);
        return if is_workspace(&w) {
            Ok(w)
        } else {
            Err(format!(
                "QFC_LAB_WORKSPACE={} is not the qfc-lab source tree (no workspace Cargo.toml with refnode and probes)",
                w.display()
            ))
        };
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    starts
        .iter()
        .flatten()
        .flat_map(|s| s.ancestors())
        .find(|d| is_workspace(d))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            "cannot find the qfc-lab source tree to cross-build the guest's qfc-refnode and qfc-probe: run qfc-lab from inside the repository or set QFC_LAB_WORKSPACE to it".to_string()
        })
}

fn is_workspace(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| {
        t.contains("[workspace]") && t.contains("\"refnode\"") && t.contains("\"probes\"")
    })
}

/// Expands a leading `~/` with `$HOME`.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `[target.ssh]` in the vm crate's form.
pub fn ssh_config(s: &SshSpec) -> SshTargetConfig {
    SshTargetConfig {
        host: s.host.clone(),
        port: s.port,
        user: s.user.clone(),
        key: expand_home(&s.key),
        known_hosts: expand_home(&s.known_hosts),
        // The base: the target makes a private directory under it.
        workdir: s.workdir.clone(),
    }
}

/// `[target.qemu]` in the vm crate's form.
/// Builds the target; for qemu this finds or builds the guest image and
/// cross-builds the reference node and qfc-probe for the guest (both cached),
/// reporting each step through `progress`.
pub fn build(
    s: &Scenario,
    keep_scratch: bool,
    run_dir: &Path,
    progress: &dyn Fn(String),
) -> Result<(AnyTarget, Binaries), String> {
    match &s.target {
        TargetSpec::Local => Ok((
            AnyTarget::Local(LocalTarget::new(
                LocalTarget::default_scratch(),
                keep_scratch,
            )),
            Binaries::default(),
        )),
        TargetSpec::Container { image } => Ok((
            AnyTarget::Container(Box::new(ContainerTarget::new(ContainerConfig::new(
                image.clone(),
            )))),
            Binaries::default(),
        )),
        TargetSpec::Ssh(spec) => Ok((
            AnyTarget::Ssh(SshTarget::new(ssh_config(spec))),
            Binaries::default(),
        )),
        TargetSpec::Qemu(q) => {
            let cfg = q.clone();
            let opts = vm::BuildOptions::new(cfg.arch);
            let image = match vm::image::cached(&opts.clone()).map_err(|e| e.to_string())? {
                Some(i) => {
                    progress(format!(
                        "guest image {} (cached)",
                        &i.key[..16.min(i.key.len())]
                    ));
                    i
                }
                None => {
                    progress(format!(
                        "building the {} guest image (first use: minutes)",
                        cfg.arch.as_str()
                    ));
                    let (tx, rx) = channel::<vm::image::Progress>();
                    let built = std::thread::scope(|sc| {
                        let h = sc.spawn(move || vm::image::build(&opts, &tx));
                        for p in rx {
                            progress(format!("image: {p:?}"));
                        }
                        h.join()
                            .map_err(|_| "the image build thread panicked".to_string())
                    })?;
                    built.map_err(|e| format!("building the guest image: {e}"))?
                }
            };
            let mut bins = Binaries::default();
            let host_arch = vm::Arch::host();
            if host_arch != Some(cfg.arch) {
                progress(format!(
                    "cross-building qfc-refnode and qfc-probe for {} (cached by cargo)",
                    cfg.arch.as_str()
                ));
                let mut copts = vm::cross::CrossOptions::lab_binaries(cfg.arch, workspace_root()?);
                if s.node.kind != NodeKind::Refnode || s.node.binary.is_some() {
                    copts.bins.retain(|(_, b)| b == "qfc-probe");
                }
                let built = vm::cross::build(&copts)
                    .map_err(|e| format!("cross-building for the guest: {e}"))?;
                for (name, path) in built {
                    match name.as_str() {
                        "qfc-refnode" => bins.node = Some(path),
                        "qfc-probe" => bins.probe = Some(path),
                        _ => {}
                    }
                }
            }
            Ok((
                AnyTarget::Qemu(Box::new(QemuTarget::new(cfg, image, run_dir.to_path_buf()))),
                bins,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_config_expands_home_and_gives_each_run_its_workdir() {
        let spec = SshSpec {
            host: "127.0.0.1".into(),
            port: 2222,
            user: "root".into(),
            key: "~/.ssh/k".into(),
            known_hosts: "/etc/kh".into(),
            workdir: "/tmp/qfc-lab/".into(),
        };
        let c = ssh_config(&spec);
        assert_eq!(c.known_hosts, PathBuf::from("/etc/kh"));
        assert!(!c.key.starts_with("~"), "{:?}", c.key);
        assert_eq!(
            c.workdir, "/tmp/qfc-lab/",
            "the base; the target makes a private dir"
        );
    }

    #[test]
    fn the_workspace_is_found_at_run_time() {
        // The test binary lives in target/debug/deps/: its ancestors hold the workspace.
        let w = workspace_root().unwrap();
        assert!(w.join("refnode").is_dir(), "{}", w.display());
        assert!(!is_workspace(Path::new("/")));
    }
}
