//! The container target: the node runs in a Docker container on this
//! machine's engine, shaped like production (`qfc-node-1`): a local image
//! whose entrypoint execs the node (PID 1 of the container), the json-file
//! log driver, the data directory on a named volume, ports published on
//! 127.0.0.1 only. Probes run on this host, filtered to the container's
//! process or cgroup (see [`cgroup`]).
//!
//! Flow as the orchestrator drives [`Target`]: `prepare` checks the engine
//! and creates the volume; `ship` stages a local file for the image;
//! `free_port` picks a port to publish (the same number on both sides);
//! the first `spawn` builds the image from the imported Debian base plus
//! the shipped files (or uses the user's image) and starts the container;
//! `forward` maps a published port to `127.0.0.1`; `teardown` removes the
//! container, the volume and the lab's cgroup. Inside the container the node
//! must listen on `0.0.0.0` ([`Target::listen_host`]): the container has its
//! own network namespace and Docker forwards only from the host's 127.0.0.1.
//!
//! The engine is driven through its own CLI (see [`cli`] for why not
//! testcontainers).

pub mod cgroup;
pub mod cli;
pub mod image;
pub mod logs;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::target::{
    ExecOutput, ExitInfo, Imported, RemoteProcess, SpawnSpec, Target, TargetError, TargetInfo,
    TargetKind, TargetPath,
};

/// Where the data volume is mounted in the container; the target's scratch
/// directory.
pub const DATA_MOUNT: &str = "/data";

const SHORT: Duration = Duration::from_secs(60);

/// How to set up the container target.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The docker client (see [`cli::default_docker`]).
    pub docker: PathBuf,
    /// A local image to run instead of building one (`[target.container] image`).
    pub image: Option<String>,
    /// Cache of the Debian base tarball.
    pub cache_dir: PathBuf,
    /// Suffix that makes container, volume and cgroup names unique to the run.
    pub run_id: String,
    /// Signal that stops the node (`docker run --stop-signal`). SIGINT by
    /// default: qfc-node (rev 204af41) waits only for `ctrl_c`, and as PID 1
    /// of a container it ignores SIGTERM (no handler, and the kernel drops
    /// default-action signals to a namespace's init), so `docker stop` with
    /// SIGTERM ends it with SIGKILL after the grace, without closing RocksDB.
    /// The reference node handles both.
    pub stop_signal: String,
}

impl ContainerConfig {
    /// Defaults: Debian's docker client, the lab cache, a run id from the
    /// pid and the clock.
    pub fn new(image: Option<String>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            docker: cli::default_docker(),
            image,
            cache_dir: image::default_cache(),
            run_id: format!("{}-{}", std::process::id(), nanos % 1_000_000_000),
            stop_signal: "SIGINT".into(),
        }
    }
}

/// What the bundle's context records about the container run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerContext {
    /// Docker engine version (`docker version`, server).
    pub engine_version: String,
    /// Engine API version.
    pub api_version: String,
    /// containerd version, when the engine reports it.
    pub containerd_version: Option<String>,
    /// Image the node ran from (tag).
    pub image: String,
    /// Its content-addressed id (`sha256:...`, the digest of the image
    /// config; a locally built image has no registry digest).
    pub image_id: String,
    /// Id of the Debian base image, when the lab built the node image.
    pub base_image_id: Option<String>,
    /// Container name and id.
    pub container_name: String,
    /// Container id.
    pub container_id: String,
    /// Log driver (`json-file`) and the log file on this host.
    pub log_driver: String,
    /// The json-file log on this host.
    pub log_path: Option<PathBuf>,
    /// Host pid of the container's PID 1 (the node).
    pub main_pid: u32,
    /// The node's cgroups on this host.
    pub cgroups: Option<cgroup::ProcessCgroups>,
    /// The cgroup v2 directory to give `qfc-probe --cgroup`.
    pub probe_cgroup: Option<PathBuf>,
    /// Signal that stops the node.
    pub stop_signal: String,
}

/// A Docker container on this machine as a target.
pub struct ContainerTarget {
    cfg: ContainerConfig,
    staging: PathBuf,
    shipped: Vec<PathBuf>,
    ports: Vec<u16>,
    volume: String,
    name: String,
    container_id: Option<String>,
    lab_cgroup: Option<PathBuf>,
    ctx: ContainerContext,
    prepared: bool,
}

impl ContainerTarget {
    /// A container target (nothing happens until `prepare`).
    pub fn new(cfg: ContainerConfig) -> Self {
        let staging = std::env::temp_dir().join(format!("qfc-lab-container-{}", cfg.run_id));
        let volume = format!("qfc-lab-data-{}", cfg.run_id);
        let name = format!("qfc-lab-node-{}", cfg.run_id);
        Self {
            cfg,
            staging,
            shipped: Vec::new(),
            ports: Vec::new(),
            volume,
            name,
            container_id: None,
            lab_cgroup: None,
            ctx: ContainerContext::default(),
            prepared: false,
        }
    }

    /// What the bundle's context should record (complete after `spawn`).
    pub fn context(&self) -> &ContainerContext {
        &self.ctx
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.name
    }

    fn docker(&self) -> &Path {
        &self.cfg.docker
    }

    fn image_for(&mut self, argv0: &str) -> Result<(String, Option<String>), TargetError> {
        if let Some(img) = &self.cfg.image {
            let out = cli::run_ok(&cli::image_id_argv(self.docker(), img), &[], SHORT).map_err(
                |e| TargetError::Container {
                    message: format!(
                        "image {img} is not in the local Docker engine ({e}): build or load it first (no registry is reachable)"
                    ),
                    source: Some(Box::new(e)),
                },
            )?;
            self.ctx.image = img.clone();
            self.ctx.image_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // A user image keeps its own layout: run argv[0] as entrypoint.
            return Ok((img.clone(), Some(argv0.to_string())));
        }
        if self.shipped.is_empty() {
            return Err(TargetError::container(
                "the container target has no node binary to put in an image: ship the node binary first or set [target.container] image",
            ));
        }
        let base_id = image::ensure_base(&self.cfg.docker, &self.staging, &self.cfg.cache_dir)?;
        let img = image::NodeImage {
            files: self.shipped.clone(),
            entrypoint: argv0.to_string(),
            workdir: DATA_MOUNT.into(),
        };
        let (tag, id) = image::build_node_image(&self.cfg.docker, &img, &self.staging.join("ctx"))?;
        self.ctx.image = tag.clone();
        self.ctx.image_id = id;
        self.ctx.base_image_id = Some(base_id);
        Ok((tag, None))
    }

    fn inspect(&self) -> Result<serde_json::Value, TargetError> {
        let out = cli::run_ok(&cli::inspect_argv(self.docker(), &self.name), &[], SHORT)?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| TargetError::Container {
                message: format!("docker inspect {}: {e}", self.name),
                source: Some(Box::new(e)),
            })?;
        Ok(v.get(0).cloned().unwrap_or(serde_json::Value::Null))
    }
}

/// Engine facts from `docker version --format '{{json .}}'` (pure):
/// `(engine version, api version, containerd version)`.
pub fn parse_version(json: &[u8]) -> Result<(String, String, Option<String>), String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let server = v
        .get("Server")
        .filter(|s| !s.is_null())
        .ok_or("no server section")?;
    let s = |x: &serde_json::Value, k: &str| x.get(k).and_then(|y| y.as_str()).map(String::from);
    let containerd = server
        .get("Components")
        .and_then(|c| c.as_array())
        .and_then(|c| {
            c.iter()
                .find(|x| x.get("Name").and_then(|n| n.as_str()) == Some("containerd"))
        })
        .and_then(|c| s(c, "Version"));
    Ok((
        s(server, "Version").ok_or("no server version")?,
        s(server, "ApiVersion").ok_or("no server api version")?,
        containerd,
    ))
}

/// State of a container from `docker inspect` (pure): `(running, pid, exit code)`.
pub fn parse_state(inspect: &serde_json::Value) -> (bool, u32, Option<i32>) {
    let st = &inspect["State"];
    let running = st["Running"].as_bool().unwrap_or(false);
    let pid = st["Pid"].as_u64().unwrap_or(0) as u32;
    let code = (!running)
        .then(|| st["ExitCode"].as_i64().map(|c| c as i32))
        .flatten();
    (running, pid, code)
}

impl Target for ContainerTarget {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: TargetKind::Container,
            arch: std::env::consts::ARCH.to_string(),
            accel: None,
            emulated: false,
        }
    }

    fn prepare(&mut self) -> Result<(), TargetError> {
        let out = cli::run(&cli::version_argv(self.docker()), &[], SHORT)?;
        let (engine, api, containerd) = parse_version(&out.stdout).map_err(|e| {
            TargetError::container(format!(
                "the Docker engine is not reachable through {} ({e}; {}): start it with scripts/services.sh",
                self.docker().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })?;
        tracing::info!(%engine, %api, "docker engine");
        self.ctx.engine_version = engine;
        self.ctx.api_version = api;
        self.ctx.containerd_version = containerd;
        std::fs::create_dir_all(&self.staging).map_err(|source| TargetError::Io {
            what: "creating",
            path: self.staging.clone(),
            source,
        })?;
        cli::run_ok(
            &cli::volume_create_argv(self.docker(), &self.volume),
            &[],
            SHORT,
        )?;
        self.prepared = true;
        Ok(())
    }

    fn scratch_dir(&self) -> TargetPath {
        PathBuf::from(DATA_MOUNT)
    }

    fn ship(&mut self, local: &Path) -> Result<TargetPath, TargetError> {
        let name = local.file_name().ok_or_else(|| {
            TargetError::Unsupported(format!("{} has no file name to ship", local.display()))
        })?;
        let dest = Path::new(image::BIN_DIR).join(name);
        if self.container_id.is_some() {
            // After start: copy into the running container.
            cli::run_ok(
                &cli::cp_to_argv(self.docker(), local, &self.name, &dest),
                &[],
                SHORT,
            )?;
        } else {
            if !local.is_file() {
                return Err(TargetError::Unsupported(format!(
                    "{} is not a file: give the path of the node binary",
                    local.display()
                )));
            }
            self.shipped.push(local.to_path_buf());
        }
        Ok(dest)
    }

    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Box<dyn RemoteProcess>, TargetError> {
        if self.container_id.is_some() {
            return Err(TargetError::Unsupported(
                "the container target runs one process, the node, as the container's entrypoint: run other tools (probes) on the host against its pid or cgroup".into(),
            ));
        }
        if spec.stdin {
            return Err(TargetError::Unsupported(
                "the node's container has no stdin (production runs it detached)".into(),
            ));
        }
        let (argv0, args) = spec
            .argv
            .split_first()
            .ok_or_else(TargetError::empty_command)?;
        let argv0 = argv0.to_string_lossy().into_owned();
        let (image, entrypoint) = self.image_for(&argv0)?;
        let run = cli::RunSpec {
            name: self.name.clone(),
            image,
            entrypoint,
            args: args.to_vec(),
            volume: self.volume.clone(),
            volume_mount: DATA_MOUNT.into(),
            ports: self.ports.clone(),
            env: spec.env.clone(),
            workdir: spec.cwd.as_ref().map(|p| p.to_string_lossy().into_owned()),
            labels: vec![("qfc-lab.run".into(), self.cfg.run_id.clone())],
            stop_signal: Some(self.cfg.stop_signal.clone()),
        };
        self.ctx.stop_signal = self.cfg.stop_signal.clone();
        let out = cli::run_ok(&cli::run_argv(self.docker(), &run), &[], SHORT)?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.container_id = Some(id.clone());
        self.ctx.container_id = id;
        self.ctx.container_name = self.name.clone();
        let ins = self.inspect()?;
        let (running, pid, code) = parse_state(&ins);
        self.ctx.log_driver = ins["HostConfig"]["LogConfig"]["Type"]
            .as_str()
            .unwrap_or("")
            .into();
        self.ctx.log_path = ins["LogPath"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        self.ctx.main_pid = pid;
        if running && pid > 0 {
            self.ctx.cgroups = cgroup::of_pid(pid).ok();
            match cgroup::ensure_v2(pid, &self.name) {
                Ok(p) => {
                    if p.components().any(|c| c.as_os_str() == "qfc-lab") {
                        self.lab_cgroup = Some(p.clone());
                    }
                    self.ctx.probe_cgroup = Some(p);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no cgroup v2 for the container: probes must filter by pid")
                }
            }
        }
        let follower = match &self.ctx.log_path {
            Some(p) => {
                Some(
                    logs::Follower::start(p.clone()).map_err(|source| TargetError::Io {
                        what: "following",
                        path: p.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        if !running {
            tracing::warn!(?code, "the node's container exited at once");
        }
        Ok(Box::new(ContainerProcess {
            docker: self.cfg.docker.clone(),
            name: self.name.clone(),
            pid,
            follower,
            exited: (!running).then_some(ExitInfo { code, signal: None }),
        }))
    }

    fn exec(&mut self, argv: &[OsString], timeout: Duration) -> Result<ExecOutput, TargetError> {
        let full = if self.container_id.is_some() {
            cli::exec_argv(self.docker(), &self.name, argv)
        } else {
            let img = self
                .cfg
                .image
                .clone()
                .unwrap_or_else(|| image::BASE_TAG.to_string());
            cli::run_rm_argv(self.docker(), &img, argv)
        };
        cli::run(&full, &[], timeout)
    }

    fn free_port(&mut self) -> Result<u16, TargetError> {
        if self.container_id.is_some() {
            return Err(TargetError::Unsupported(
                "ports of a running container cannot be published any more: ask for every port before spawning the node".into(),
            ));
        }
        // Free on the host's loopback now; the container's own namespace is empty.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| TargetError::Io {
            what: "binding",
            path: "127.0.0.1:0".into(),
            source,
        })?;
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        self.ports.push(port);
        Ok(port)
    }

    fn forward(&mut self, target_port: u16) -> Result<SocketAddr, TargetError> {
        if self.ports.contains(&target_port) {
            Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, target_port)))
        } else {
            Err(TargetError::Unsupported(format!(
                "port {target_port} was not published: get it from free_port before spawning the node"
            )))
        }
    }

    fn listen_host(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }

    fn fetch_dir(&mut self, remote: &Path, local: &Path) -> Result<Imported, TargetError> {
        // `docker cp` keeps links and owners: copy into a staging directory,
        // then through the untrusted gate.
        let staging = tempfile::Builder::new()
            .prefix("qfc-lab-fetch-")
            .tempdir()
            .map_err(|source| TargetError::Io {
                what: "creating a staging directory",
                path: std::env::temp_dir(),
                source,
            })?;
        let slot = staging.path().join("out");
        cli::run_ok(
            &cli::cp_from_argv(self.docker(), &self.name, remote, &slot),
            &[],
            SHORT,
        )?;
        crate::untrusted::import_tree(&slot, local, crate::untrusted::Limits::default()).map_err(
            |source| TargetError::Io {
                what: "copying the container's evidence",
                path: slot.clone(),
                source,
            },
        )
    }

    fn teardown(&mut self) -> Result<(), TargetError> {
        if self.container_id.take().is_some() {
            if let Err(e) = cli::run_ok(&cli::rm_argv(self.docker(), &self.name), &[], SHORT) {
                tracing::warn!(error = %e, "removing the node's container");
            }
        }
        if let Some(cg) = self.lab_cgroup.take() {
            cgroup::remove_v2(&cg);
        }
        if self.prepared {
            self.prepared = false;
            if let Err(e) = cli::run_ok(
                &cli::volume_rm_argv(self.docker(), &self.volume),
                &[],
                SHORT,
            ) {
                tracing::warn!(error = %e, "removing the data volume");
            }
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        Ok(())
    }
}

impl Drop for ContainerTarget {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The node's container as a process.
pub struct ContainerProcess {
    docker: PathBuf,
    name: String,
    pid: u32,
    follower: Option<logs::Follower>,
    exited: Option<ExitInfo>,
}

impl ContainerProcess {
    fn state(&self) -> Result<(bool, u32, Option<i32>), TargetError> {
        let out = cli::run_ok(&cli::inspect_argv(&self.docker, &self.name), &[], SHORT)?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| TargetError::Container {
                message: format!("docker inspect {}: {e}", self.name),
                source: Some(Box::new(e)),
            })?;
        Ok(parse_state(&v[0]))
    }

    fn finish(&mut self, code: Option<i32>) -> ExitInfo {
        // Docker reports 128+N for a signal death of PID 1.
        let info = match code {
            Some(c) if c > 128 && c < 160 => ExitInfo {
                code: None,
                signal: Some(c - 128),
            },
            c => ExitInfo {
                code: c,
                signal: None,
            },
        };
        if let Some(f) = &self.follower {
            f.done.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.exited = Some(info);
        info
    }
}

impl RemoteProcess for ContainerProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn take_stdin(&mut self) -> Option<Box<dyn Write + Send>> {
        None
    }

    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        let r = self.follower.as_mut()?.stdout.take()?;
        Some(Box::new(r))
    }

    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>> {
        let r = self.follower.as_mut()?.stderr.take()?;
        Some(Box::new(r))
    }

    fn try_wait(&mut self) -> Result<Option<ExitInfo>, TargetError> {
        if let Some(e) = self.exited {
            return Ok(Some(e));
        }
        let (running, _, code) = self.state()?;
        Ok((!running).then(|| self.finish(code)))
    }

    fn terminate(&mut self, grace: Duration) -> Result<ExitInfo, TargetError> {
        if let Some(e) = self.exited {
            return Ok(e);
        }
        let t0 = Instant::now();
        cli::run_ok(
            &cli::stop_argv(&self.docker, &self.name, grace),
            &[],
            grace + SHORT,
        )?;
        let (running, _, code) = self.state()?;
        if running {
            return Err(TargetError::container(format!(
                "container {} still runs {:?} after docker stop",
                self.name,
                t0.elapsed()
            )));
        }
        Ok(self.finish(code))
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = cli::run(
                &cli::stop_argv(&self.docker, &self.name, Duration::from_secs(2)),
                &[],
                SHORT,
            );
        }
        if let Some(f) = &self.follower {
            f.done.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_json_of_docker_20_10() {
        let j = br#"{"Client":{"Version":"20.10.24+dfsg1","ApiVersion":"1.41"},"Server":{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1"},{"Name":"containerd","Version":"1.6.20~ds1"}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12"}}"#;
        let (e, a, c) = parse_version(j).unwrap();
        assert_eq!(
            (e.as_str(), a.as_str(), c.as_deref()),
            ("20.10.24+dfsg1", "1.41", Some("1.6.20~ds1"))
        );
        let err = parse_version(br#"{"Client":{"Version":"1"},"Server":null}"#).unwrap_err();
        assert!(err.contains("no server"), "{err}");
    }

    #[test]
    fn state_of_running_and_exited() {
        let r: serde_json::Value =
            serde_json::from_str(r#"{"State":{"Running":true,"Pid":4242,"ExitCode":0}}"#).unwrap();
        assert_eq!(parse_state(&r), (true, 4242, None));
        let x: serde_json::Value =
            serde_json::from_str(r#"{"State":{"Running":false,"Pid":0,"ExitCode":143}}"#).unwrap();
        assert_eq!(parse_state(&x), (false, 0, Some(143)));
    }

    #[test]
    fn ports_are_published_before_spawn_only() {
        let mut t = ContainerTarget::new(ContainerConfig::new(None));
        let p = t.free_port().unwrap();
        assert_eq!(t.forward(p).unwrap(), SocketAddr::from(([127, 0, 0, 1], p)));
        assert!(t.forward(p.wrapping_add(1)).is_err());
        assert_eq!(t.listen_host(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(t.scratch_dir(), PathBuf::from("/data"));
        t.container_id = Some("x".into());
        assert!(t
            .free_port()
            .unwrap_err()
            .to_string()
            .contains("before spawning"));
        t.container_id = None;
    }
}
