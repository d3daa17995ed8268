//! `qfc-lab run` as a recipe of named steps ([`Run::execute`]):
//! prepare target -> seed datadir -> start node -> wait for RPC -> connect
//! load -> start probes -> phases in order on one monotonic clock -> stop
//! probes -> collect -> (teardown) -> seal the bundle. Each step is a method
//! that returns what the next one needs; a failed step is a
//! [`RunError::Step`] naming it, with its typed cause ([`StepError`]). Every
//! exit path (node death, failed step, SIGINT/SIGTERM) tears down what was
//! started and still writes the bundle, `incomplete` with the reason.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use vm::{RemoteProcess, SpawnSpec, Target, TargetError};

use crate::bundle::{self, Layout, Manifest, PluginFailure, Status};
use crate::cli::RunArgs;
use crate::clock::{monotonic_ns, utc_compact, utc_now};
use crate::context::{self, Context};
use crate::events::{self, Event, Events, Step};
use crate::exit::{Exit, Failure};
use crate::load::{Endpoints, LoadPluginError};
use crate::loadgen_adapter::Loadgen;
use crate::metrics;
use crate::node::{self, NodePorts};
use crate::probe::QfcProbe;
use crate::report::expect::Status as VerdictStatus;
use crate::report::Verdicts;
use crate::scenario::{self, Loaded, Phase, Scenario, TargetSpec};
use crate::signals;
use crate::targets::{self, AnyTarget};

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    #[error("node exited ({status}) {when}; see node/stderr.log and node/stdout.log")]
    NodeDied { status: String, when: String },
    #[error("{step:?}: {source}")]
    Step {
        step: Step,
        #[source]
        source: StepError,
    },
}

/// Why a step failed, one variant per cause. The messages are the bundle's
/// `error` after the step's name (`SeedDatadir: seeding the datadir: ...`).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The target refused an operation (prepare, port, ship, spawn, forward).
    #[error("{0}")]
    Target(#[source] TargetError),
    /// This host's scratch for the probes of a container target.
    #[error("host scratch for the probes: {0}")]
    HostScratch(#[source] TargetError),
    #[error("seeding the datadir: {0}")]
    Seed(#[source] LoadPluginError),
    #[error("[node.seed_db] is not supported on the container target (its datadir is a Docker volume created at start): remove [node.seed_db] or use kind = \"local\", \"qemu\" or \"ssh\"")]
    SeedOnContainer,
    #[error("a temporary directory for the seeded datadir: {0}")]
    SeedTempdir(#[source] std::io::Error),
    #[error("running tar to pack the seeded datadir: {0}")]
    SeedPackSpawn(#[source] std::io::Error),
    #[error("tar could not pack the seeded datadir {}: {status}", dir.display())]
    SeedPack {
        dir: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("shipping the seeded datadir: {0}")]
    SeedShip(#[source] TargetError),
    #[error("unpacking the seeded datadir on the target: {0}")]
    SeedUnpackExec(#[source] TargetError),
    #[error("unpacking the seeded datadir on the target failed: {stderr}")]
    SeedUnpack { stderr: String },
    /// The node binary is built for another architecture than the target's.
    #[error("{0}")]
    NodeBinary(#[source] vm::nodebin::NodeBinError),
    /// A file of the bundle the step writes (`load/seed_db.json`, `node/cmdline.json`).
    #[error("{0}")]
    Write(#[source] std::io::Error),
    #[error("the node's RPC at {rpc} did not answer eth_blockNumber within {wait_s} s: {source}")]
    RpcTimeout {
        rpc: SocketAddr,
        wait_s: u64,
        #[source]
        source: metrics::HttpError,
    },
    #[error("{}: {source}", path.display())]
    Series {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Maps a step's cause to the run's error, naming the step.
fn at(step: Step) -> impl Fn(StepError) -> RunError {
    move |source| RunError::Step { step, source }
}

/// `timeline.json`, in the bundle schema shared with the report.
pub use bundle_schema::timeline::{PhaseWindow, Timeline, TimelineEvent};

/// Fills `{name}` and `{utc}` in the bundle directory template.
pub fn bundle_dir(template: &str, name: &str, utc: &str) -> PathBuf {
    PathBuf::from(template.replace("{name}", name).replace("{utc}", utc))
}

/// Sweeps what dead qfc-lab runs left behind (`vm::gc`); containers only
/// when a Docker engine socket is there.
pub fn gc_sweep() -> vm::gc::GcReport {
    let docker = Path::new("/usr/bin/docker");
    let engine = Path::new("/var/run/docker.sock").exists() && docker.exists();
    vm::gc::sweep(engine.then_some(docker))
}

/// Entry point of `qfc-lab run`. Errors before the bundle exists are a
/// [`Failure`]; from then on the outcome is reported by the progress UI
/// (`Event::Finished`) and the bundle, and returned as the exit code.
pub fn main(args: RunArgs) -> Result<Exit, Failure> {
    signals::install()
        .map_err(|e| Failure::run_failed(anyhow::anyhow!("cannot install signal handlers: {e}")))?;
    let loaded = scenario::load(&args.scenario, &args.set).map_err(Failure::usage)?;
    let s = &loaded.scenario;
    let layout = open_bundle(&args, s)?;
    let root = layout.root.clone();
    let (target, node_binary, probe_binary) = match prepare_binaries(&args, s, &layout) {
        Ok(t) => t,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&root);
            return Err(f);
        }
    };
    let (events, ui) = events::spawn_ui(args.json);
    let _ = events.send(Event::Started {
        scenario: args.scenario.display().to_string(),
        bundle: root.display().to_string(),
    });
    let started_utc = utc_now();
    let run = Run::new(
        s.clone(),
        layout,
        events.clone(),
        target,
        node_binary,
        probe_binary,
    );
    let ended = run.execute(&loaded, &started_utc);
    let _ = events.send(Event::Finished {
        status: format!("{:?}", ended.status).to_lowercase(),
        bundle: root.display().to_string(),
        error: ended.error,
        exit_code: ended.code as u8,
    });
    drop(events);
    let _ = ui.join();
    Ok(ended.code)
}

/// Creates the bundle directory (`--out` or the scenario's template); it
/// must not exist or be empty.
fn open_bundle(args: &RunArgs, s: &Scenario) -> Result<Layout, Failure> {
    let root = args
        .out
        .clone()
        .unwrap_or_else(|| bundle_dir(&s.bundle.dir, &s.name, &utc_compact()));
    if root.exists()
        && std::fs::read_dir(&root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "bundle directory {} exists and is not empty: choose another --out",
            root.display()
        )));
    }
    let layout = Layout::new(root.clone());
    layout.create().map_err(|e| {
        Failure::run_failed(anyhow::anyhow!(
            "cannot create bundle directory {}: {e}",
            root.display()
        ))
    })?;
    Ok(layout)
}

/// The target, with what it needs first (guest image, cross-built
/// binaries), after sweeping what a killed earlier run left behind; and the
/// node and probe binaries to ship to it.
fn prepare_binaries(
    args: &RunArgs,
    s: &Scenario,
    layout: &Layout,
) -> Result<(AnyTarget, PathBuf, PathBuf), Failure> {
    let swept = gc_sweep();
    for l in &swept.removed {
        if !args.json {
            eprintln!("removed {l} (left by an earlier run)");
        }
        tracing::info!(removed = %l, "gc");
    }
    let run_dir = layout.root.join(".target");
    let built = targets::build(s, args.keep_scratch, &run_dir, &|m| {
        if !args.json {
            eprintln!("{m}");
        }
        tracing::info!(message = %m, "target preparation");
    });
    let (target, cross_bins) = built.map_err(|e| {
        Failure::run_failed(anyhow::anyhow!(
            "{}: target {:?}: {e}",
            args.scenario.display(),
            s.target.kind()
        ))
    })?;
    let node_binary = match cross_bins.node.clone() {
        Some(b) => b,
        None => {
            node::resolve_binary(&s.node, args.node_binary.as_deref()).map_err(Failure::usage)?
        }
    };
    let probe_binary = cross_bins
        .probe
        .clone()
        .or_else(|| args.probe_binary.clone())
        .or_else(|| node::sibling_binary("qfc-probe"))
        .unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("qfc-probe")))
                .unwrap_or_else(|| PathBuf::from("qfc-probe"))
        });
    Ok((target, node_binary, probe_binary))
}

/// How a run ended: the bundle's status, the exit code, and the error the
/// progress UI prints.
struct Ended {
    status: Status,
    code: Exit,
    error: Option<String>,
}

/// What [`Run::prepare_target`] returns: where the node's data and the
/// probes' output go.
struct Prepared {
    /// The node's datadir on the target.
    datadir: PathBuf,
    /// The probes' output directory on the machine they run on.
    probe_out: PathBuf,
}

/// What [`Run::start_node`] returns: the node's pid and addresses (the
/// process itself is the run's, for teardown on every path).
struct StartedNode {
    pid: u32,
    rpc: SocketAddr,
    metrics: SocketAddr,
    p2p: SocketAddr,
}

/// What the phases share: the metrics series file and whether the load
/// generator is connected.
struct Phases {
    series: std::fs::File,
    series_path: PathBuf,
    /// The first failed series write since the last phase ended.
    series_error: Option<std::io::Error>,
    metrics: SocketAddr,
    load_connected: bool,
}

/// What [`Run::seal`] returns: the status it sealed and the expectation
/// verdicts, when the report rendered.
struct Sealed {
    status: Status,
    verdicts: Option<Verdicts>,
}

struct Run {
    s: Scenario,
    layout: Layout,
    events: Events,
    target: AnyTarget,
    /// This machine, for the probes of a container target (they run on the
    /// host against its cgroup); `None` for every other target. Read it
    /// through [`Run::probe_machine`].
    host: Option<vm::LocalTarget>,
    node_binary: PathBuf,
    probe_binary: PathBuf,
    load: Loadgen,
    // What teardown stops, on every path: set by the step that starts it.
    node: Option<Box<dyn RemoteProcess>>,
    /// Copies of the node's stdout/stderr; each returns why its log is incomplete.
    pumps: Vec<std::thread::JoinHandle<Option<String>>>,
    probe: Option<QfcProbe>,
    // The evidence gathered so far, which seal writes on every path.
    timeline: Timeline,
    context: Context,
    failures: Vec<PluginFailure>,
    /// Evidence that is missing from the bundle, and why ([`Run::lost`]).
    lost: Vec<String>,
    /// `vm::nodebin::inspect` of the node binary, for the manifest (once
    /// the node step inspected it).
    node_info: Option<serde_json::Value>,
}

impl Run {
    fn new(
        s: Scenario,
        layout: Layout,
        events: Events,
        target: AnyTarget,
        node_binary: PathBuf,
        probe_binary: PathBuf,
    ) -> Self {
        // A container shares this host's kernel: the probes run here.
        let host = target
            .probes_on_host()
            .then(|| vm::LocalTarget::new(vm::LocalTarget::default_scratch(), false));
        Self {
            s,
            layout,
            events,
            target,
            host,
            node_binary,
            probe_binary,
            load: Loadgen::new(),
            node: None,
            pumps: Vec::new(),
            probe: None,
            timeline: Timeline {
                clock: "CLOCK_MONOTONIC".into(),
                ..Default::default()
            },
            context: Context::default(),
            failures: Vec::new(),
            lost: Vec::new(),
            node_info: None,
        }
    }

    /// The run: the steps in order, each given what the previous returned;
    /// then teardown and seal, on every path.
    fn execute(mut self, loaded: &Loaded, started_utc: &str) -> Ended {
        let result = (|| -> Result<(), RunError> {
            let prepared = self.prepare_target()?;
            if let Some(sd) = self.s.node.seed_db.clone() {
                self.seed_datadir(&prepared.datadir, sd.keys, sd.value_bytes)?;
            }
            let node = self.start_node(&prepared.datadir)?;
            let endpoints = self.wait_rpc(&node)?;
            let load_connected = self.connect_load(&endpoints)?;
            self.start_probes(node.pid, &prepared.probe_out)?;
            let mut phases = self.open_phases(&node, load_connected)?;
            let count = self.s.phases.len();
            for (i, phase) in self.s.phases.clone().iter().enumerate() {
                self.run_phase(i, count, phase, &mut phases)?;
            }
            self.context.threads_at_end = self.census(node.pid);
            self.stop_probes()?;
            self.collect()
        })();
        let error = self.stop(result);
        let sealed = self.seal(loaded, started_utc, error.clone());
        self.ended(sealed, error)
    }

    /// The machine the probes run on: this host for a container target,
    /// the target otherwise. Its context, thread census and the node
    /// binary's `--version`/`--help` are read there too.
    fn probe_machine(&mut self) -> &mut dyn Target {
        match self.host.as_mut() {
            Some(h) => h,
            None => self.target.t(),
        }
    }

    /// The node binary's path on [`Run::probe_machine`]: the local file on
    /// this host (a container's image is built at spawn, same arch), the
    /// shipped copy on a target.
    fn node_binary_on_probe_machine(&self, shipped: &Path) -> PathBuf {
        match self.host {
            Some(_) => self.node_binary.clone(),
            None => shipped.to_path_buf(),
        }
    }

    /// Marks the start of a step (timeline and progress) unless a signal
    /// or the node's death ended the run.
    fn step(&mut self, step: Step) -> Result<(), RunError> {
        self.check()?;
        self.mark(format!("step {step:?}"));
        let _ = self.events.send(Event::Step { step });
        Ok(())
    }

    /// Thread census of the node on the probe machine (a container's pid
    /// is a host pid).
    fn census(&mut self, pid: u32) -> std::collections::BTreeMap<String, u32> {
        context::threads(self.probe_machine(), pid)
    }

    /// True when the probes read this machine's CLOCK_MONOTONIC (they run
    /// on this kernel: local and container targets).
    fn probe_clock_is_ours(&self) -> bool {
        matches!(
            self.s.target,
            TargetSpec::Local | TargetSpec::Container { .. }
        )
    }

    /// A probe-reported time as a timeline entry on this machine's clock:
    /// the probe's own reading is kept in the text when it is another kernel's.
    fn on_host_clock(&self, probe_t: u64, what: &str) -> (u64, String) {
        if self.probe_clock_is_ours() {
            (probe_t, what.to_string())
        } else {
            (
                monotonic_ns(),
                format!("{what} (target clock {probe_t} ns)"),
            )
        }
    }

    fn mark(&mut self, what: String) {
        self.timeline.events.push(TimelineEvent {
            t_ns: monotonic_ns(),
            what,
        });
    }

    /// Evidence that should be in the bundle and is not: the bundle will be
    /// `incomplete` with this reason, and the run exits non-zero.
    fn lost(&mut self, why: String) {
        tracing::info!(%why, "evidence lost");
        let _ = self.events.send(Event::Warning {
            message: format!("evidence missing: {why}"),
        });
        self.lost.push(why);
    }

    fn warn(&mut self, plugin: &str, phase: Option<&str>, error: String) {
        tracing::info!(plugin, ?phase, %error, "plug-in failure");
        let _ = self.events.send(Event::Warning {
            message: format!("{plugin}: {error}"),
        });
        self.failures.push(PluginFailure {
            plugin: plugin.into(),
            phase: phase.map(Into::into),
            error,
        });
    }

    /// Signal or node death ends the run.
    fn check(&mut self) -> Result<(), RunError> {
        check_alive(&mut self.node, String::new)
    }

    /// Prepares the target (and this host's scratch when the probes run
    /// here) and gathers the context from the probe machine.
    fn prepare_target(&mut self) -> Result<Prepared, RunError> {
        self.step(Step::PrepareTarget)?;
        let err = at(Step::PrepareTarget);
        self.target
            .t()
            .prepare()
            .map_err(|e| err(StepError::Target(e)))?;
        if let Some(h) = self.host.as_mut() {
            h.prepare().map_err(|e| err(StepError::HostScratch(e)))?;
        }
        // A container shares this host's kernel: the host's facts are the
        // context (and the probes run here, against its cgroup).
        self.context = context::gather(self.probe_machine());
        if self.host.is_some() {
            self.context.target = Some(self.target.r().info());
        }
        self.context.target_details = self.target.details();
        let scratch = self.target.t().scratch_dir();
        let probe_out = match self.host {
            Some(_) => self.layout.probes_dir(),
            None => scratch.join("probes"),
        };
        Ok(Prepared {
            datadir: scratch.join("node-data"),
            probe_out,
        })
    }

    /// Seeds the node's datadir before the node starts and records the
    /// seed in `load/seed_db.json`. On the local target the load generator
    /// writes it in place; on a guest or SSH host it is written here,
    /// packed with `tar`, shipped and unpacked at `datadir` (RocksDB's
    /// files are the same on every little-endian machine).
    fn seed_datadir(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
    ) -> Result<(), RunError> {
        self.step(Step::SeedDatadir)?;
        let err = at(Step::SeedDatadir);
        let seed = self.s.seed;
        let report = match self.s.target {
            TargetSpec::Local => self
                .load
                .seed_db(datadir, keys, value_bytes, seed, &stop_requested)
                .map_err(|e| interrupted_or(err(StepError::Seed(e))))?,
            TargetSpec::Container { .. } => return Err(err(StepError::SeedOnContainer)),
            TargetSpec::Ssh(_) | TargetSpec::Qemu(_) => self
                .seed_remote(datadir, keys, value_bytes)
                .map_err(|e| interrupted_or(err(e)))?,
        };
        std::fs::create_dir_all(self.layout.load_dir()).map_err(|e| err(StepError::Write(e)))?;
        let json = sorted_json(&report).unwrap_or_default();
        bundle::write_atomic(&self.layout.load_dir().join("seed_db.json"), &json)
            .map_err(|e| err(StepError::Write(e)))?;
        self.mark("datadir seeded".into());
        Ok(())
    }

    /// The remote half of [`Run::seed_datadir`]: seed here, pack, ship, unpack.
    fn seed_remote(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
    ) -> Result<loadgen::SeedReport, StepError> {
        let tmp = tempfile::Builder::new()
            .prefix("qfc-lab-seed-")
            .tempdir()
            .map_err(StepError::SeedTempdir)?;
        let local = tmp.path().join("node-data");
        let report = self
            .load
            .seed_db(&local, keys, value_bytes, self.s.seed, &stop_requested)
            .map_err(StepError::Seed)?;
        let tarball = tmp.path().join("seed-db.tar");
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&local)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .map_err(StepError::SeedPackSpawn)?;
        if !st.success() {
            return Err(StepError::SeedPack {
                dir: local,
                status: st,
            });
        }
        let remote = self
            .target
            .t()
            .ship(&tarball)
            .map_err(StepError::SeedShip)?;
        let script = format!(
            "mkdir -p {d} && tar -xf {t} -C {d} && rm -f {t}",
            d = vm::ssh::shell_quote(&datadir.display().to_string()),
            t = vm::ssh::shell_quote(&remote.display().to_string()),
        );
        let out = self
            .target
            .t()
            .exec(
                &["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(600),
            )
            .map_err(StepError::SeedUnpackExec)?;
        if !out.success() {
            return Err(StepError::SeedUnpack {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(report)
    }

    /// Ships and starts the node with the command line its binary accepts,
    /// copies its output into `node/`, and forwards its ports here.
    fn start_node(&mut self, datadir: &Path) -> Result<StartedNode, RunError> {
        self.step(Step::StartNode)?;
        let err = at(Step::StartNode);
        let target = |e| err(StepError::Target(e));
        let ports = NodePorts {
            rpc: self.target.t().free_port().map_err(target)?,
            metrics: self.target.t().free_port().map_err(target)?,
            p2p: self.target.t().free_port().map_err(target)?,
        };
        let argv = self.node_command(datadir, ports)?;
        let env = self
            .s
            .node
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut proc = self
            .target
            .t()
            .spawn(&SpawnSpec {
                argv,
                env,
                cwd: None,
                stdin: false,
            })
            .map_err(target)?;
        for (reader, name) in [
            (proc.take_stdout(), "stdout.log"),
            (proc.take_stderr(), "stderr.log"),
        ] {
            if let Some(r) = reader {
                let path = self.layout.node_dir().join(name);
                self.pumps
                    .push(std::thread::spawn(move || pump_log(r, &path, name)));
            }
        }
        let pid = proc.pid();
        self.node = Some(proc);
        self.context.node_pid = Some(pid);
        self.context.target = Some(self.target.r().info());
        self.context.target_details = self.target.details();
        let node = StartedNode {
            pid,
            rpc: self.target.t().forward(ports.rpc).map_err(target)?,
            metrics: self.target.t().forward(ports.metrics).map_err(target)?,
            p2p: self.target.t().forward(ports.p2p).map_err(target)?,
        };
        let _ = self.events.send(Event::NodeStarted {
            pid,
            rpc: node.rpc.to_string(),
            metrics: node.metrics.to_string(),
            p2p_port: ports.p2p,
        });
        self.mark(format!("node started pid {pid}"));
        Ok(node)
    }

    /// Ships the node binary, inspects it (manifest facts, version) and
    /// fits the scenario's command line to the flags its `--help` lists;
    /// writes `node/cmdline.json`. Returns the argv on the target.
    fn node_command(
        &mut self,
        datadir: &Path,
        ports: NodePorts,
    ) -> Result<Vec<OsString>, RunError> {
        let err = at(Step::StartNode);
        let remote_bin = self
            .target
            .t()
            .ship(&self.node_binary)
            .map_err(|e| err(StepError::Target(e)))?;
        let arch = self.target.r().info().arch;
        self.node_info = match vm::nodebin::inspect(&self.node_binary, &arch) {
            Ok(b) => {
                for w in &b.warnings {
                    let _ = self.events.send(Event::Warning {
                        message: format!("node binary: {w}"),
                    });
                }
                serde_json::to_value(&b).ok()
            }
            Err(e @ vm::nodebin::NodeBinError::ArchMismatch { .. }) => {
                return Err(err(StepError::NodeBinary(e)))
            }
            // A script or unreadable ELF still runs; the manifest just lacks the facts.
            Err(e) => {
                let _ = self.events.send(Event::Warning {
                    message: format!("node binary not inspected: {e}"),
                });
                None
            }
        };
        let bin = self.node_binary_on_probe_machine(&remote_bin);
        self.context.node_version = vm::nodebin::version_on(self.probe_machine(), &bin);
        // The real qfc-node's flags differ between revisions: fit the command
        // line to what this binary's --help lists, and say what changed.
        let wanted = node::node_args(&self.s.node, datadir, ports, self.target.r().listen_host());
        let accepted = vm::nodebin::flags_on(self.probe_machine(), &bin);
        // `extra_args` are the user's own words: passed as written.
        let split = wanted.len() - self.s.node.extra_args.len();
        let (mut fitted, notes) = vm::nodebin::fit_args(&wanted[..split], accepted.as_deref());
        fitted.extend_from_slice(&wanted[split..]);
        for n in &notes {
            let _ = self.events.send(Event::Warning {
                message: format!("node command line: {n}"),
            });
        }
        self.context.node_flag_notes = notes;
        let mut argv = vec![remote_bin.into_os_string()];
        argv.extend(fitted);
        let cmdline = crate::context_file::NodeCmdline {
            argv: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            env: self.s.node.env.clone(),
            ports,
        };
        bundle::write_atomic(
            &self.layout.node_dir().join("cmdline.json"),
            &serde_json::to_vec_pretty(&cmdline).unwrap_or_default(),
        )
        .map_err(|e| err(StepError::Write(e)))?;
        Ok(argv)
    }

    /// Waits until the node answers `eth_blockNumber`; returns where the
    /// load generator finds it.
    fn wait_rpc(&mut self, node: &StartedNode) -> Result<Endpoints, RunError> {
        self.step(Step::WaitRpc)?;
        // An emulated guest (QEMU TCG) starts the node several times slower.
        let wait_s = if self.target.r().info().emulated {
            300
        } else {
            60
        };
        let deadline = Instant::now() + Duration::from_secs(wait_s);
        loop {
            check_alive(&mut self.node, || "before its RPC answered".into())?;
            match metrics::rpc(node.rpc, "eth_blockNumber", Duration::from_secs(2)) {
                Ok(_) => break,
                Err(source) if Instant::now() >= deadline => {
                    return Err(at(Step::WaitRpc)(StepError::RpcTimeout {
                        rpc: node.rpc,
                        wait_s,
                        source,
                    }))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.mark("rpc ready".into());
        self.context.threads_at_ready = self.census(node.pid);
        Ok(Endpoints {
            rpc: node.rpc,
            metrics: node.metrics,
            p2p: if self.s.node.no_network {
                None
            } else {
                Some(node.p2p)
            },
            chain_id: self.s.node.chain_id,
            admin_rpc: self.s.node.refnode.as_ref().is_some_and(|r| r.admin),
        })
    }

    /// Connects the load generator when a phase has load; returns whether
    /// it is connected (a failure is a plug-in failure, not the run's end).
    fn connect_load(&mut self, endpoints: &Endpoints) -> Result<bool, RunError> {
        if !self.s.phases.iter().any(|p| !p.load.is_empty()) {
            return Ok(false);
        }
        self.step(Step::ConnectLoad)?;
        match self.load.connect(endpoints, self.s.seed, &stop_requested) {
            Ok(()) => Ok(true),
            // a signal, not a load failure: `check` ends the run as interrupted
            Err(_) if stop_requested() => self.check().map(|()| false),
            Err(e) => {
                self.warn("load", None, e.to_string());
                Ok(false)
            }
        }
    }

    /// Attaches the probes to the node on the probe machine, when any are
    /// enabled (a failure is a plug-in failure, not the run's end).
    fn start_probes(&mut self, pid: u32, probe_out: &Path) -> Result<(), RunError> {
        if self.s.probes.enable.is_empty() {
            return Ok(());
        }
        self.step(Step::StartProbes)?;
        let mut p = QfcProbe::new(
            self.probe_binary.clone(),
            self.s.probes.clone(),
            self.layout.root.join("probes-stderr.log"),
        );
        let cgroup = self
            .context
            .target_details
            .container
            .as_ref()
            .and_then(|c| c.probe_cgroup.clone());
        if let Some(cg) = cgroup {
            p = p.with_cgroup(cg);
        }
        match p.attach(self.probe_machine(), pid, probe_out) {
            Ok(t) => {
                let (t, what) = self.on_host_clock(t, "probes ready");
                self.timeline.events.push(TimelineEvent { t_ns: t, what });
                let _ = self.events.send(Event::ProbesReady { t_ns: t });
                self.probe = Some(p);
            }
            Err(e) => {
                p.abort();
                self.warn("probes", None, e.to_string());
            }
        }
        Ok(())
    }

    /// Starts the phases: opens `metrics/series.jsonl`.
    fn open_phases(
        &mut self,
        node: &StartedNode,
        load_connected: bool,
    ) -> Result<Phases, RunError> {
        self.step(Step::Phases)?;
        let series_path = self.layout.metrics_series();
        let series = std::fs::File::create(&series_path).map_err(|source| {
            at(Step::Phases)(StepError::Series {
                path: series_path.clone(),
                source,
            })
        })?;
        Ok(Phases {
            series,
            series_path,
            series_error: None,
            metrics: node.metrics,
            load_connected,
        })
    }

    /// One phase: its window opens (probe marker), the load runs for its
    /// duration while this thread watches the node and signals and scrapes
    /// the metrics series, then its window closes and the boundary scrape
    /// is kept. An interrupted phase keeps what it has.
    fn run_phase(
        &mut self,
        index: usize,
        count: usize,
        phase: &Phase,
        ph: &mut Phases,
    ) -> Result<(), RunError> {
        self.check()?;
        self.open_window(index, count, phase);
        let load_dir = self.layout.load_phase(&phase.name);
        let run_load = ph.load_connected && !phase.load.is_empty();
        if !phase.load.is_empty() && !ph.load_connected {
            self.warn(
                "load",
                Some(&phase.name),
                "phase ran without its load (the load generator is not connected)".into(),
            );
        }
        let (outcome, load_result) = self.drive_phase(phase, run_load, &load_dir, ph);
        if let Some(e) = ph.series_error.take() {
            self.lost(format!(
                "writing {} in phase {}: {e}",
                ph.series_path.display(),
                phase.name
            ));
        }
        match load_result {
            Some(Ok(summary)) => {
                let path = load_dir.join("summary.json");
                if !path.exists() {
                    let written = sorted_json(&summary)
                        .map_err(std::io::Error::other)
                        .and_then(|b| bundle::write_atomic(&path, &b));
                    if let Err(e) = written {
                        self.lost(format!("writing {}: {e}", path.display()));
                    }
                }
            }
            Some(Err(e)) => self.warn("load", Some(&phase.name), e.to_string()),
            None => {}
        }
        self.close_window(phase, outcome.is_ok(), ph.metrics);
        outcome
    }

    /// The phase marker: the probes' window (on their clock when it is
    /// ours), the timeline's window and the progress event.
    fn open_window(&mut self, index: usize, count: usize, phase: &Phase) {
        let mut probe_start_ns = None;
        let start_ns = match self.probe.as_mut().map(|p| p.phase(&phase.name)) {
            Some(Ok(t)) if self.probe_clock_is_ours() => t,
            Some(Ok(t)) => {
                probe_start_ns = Some(t);
                monotonic_ns()
            }
            Some(Err(e)) => {
                if let Some(mut p) = self.probe.take() {
                    p.abort();
                }
                self.warn("probes", Some(&phase.name), e.to_string());
                monotonic_ns()
            }
            None => monotonic_ns(),
        };
        self.timeline.phases.push(PhaseWindow {
            name: phase.name.clone(),
            start_ns,
            probe_start_ns,
            end_ns: None,
            planned_s: phase.duration_s,
            completed: false,
        });
        let _ = self.events.send(Event::PhaseStarted {
            index,
            count,
            name: phase.name.clone(),
            duration_s: phase.duration_s,
            t_ns: start_ns,
        });
    }

    /// The load on its own thread while this one keeps time, watches the
    /// node and signals, and scrapes metrics. Returns how the phase ended
    /// and the load's result (when it ran).
    fn drive_phase(
        &mut self,
        phase: &Phase,
        run_load: bool,
        load_dir: &Path,
        ph: &mut Phases,
    ) -> (
        Result<(), RunError>,
        Option<Result<loadgen::PhaseSummary, LoadPluginError>>,
    ) {
        let cancel = AtomicBool::new(false);
        let duration = Duration::from_secs(phase.duration_s);
        let interval = self.s.bundle.metrics_interval_s;
        let load = &mut self.load;
        let node = &mut self.node;
        let events = &self.events;
        std::thread::scope(|sc| {
            let handle = run_load.then(|| {
                let cancel = &cancel;
                let dir = load_dir.to_path_buf();
                sc.spawn(move || {
                    let _ = std::fs::create_dir_all(&dir);
                    load.run_phase(phase, &dir, cancel)
                })
            });
            let begin = Instant::now();
            let mut next_scrape = begin;
            let outcome = loop {
                if let Err(e) = check_alive(node, || format!("during phase {}", phase.name)) {
                    break Err(e);
                }
                let elapsed = begin.elapsed();
                if interval > 0 && Instant::now() >= next_scrape {
                    next_scrape += Duration::from_secs(interval);
                    if let Err(e) = scrape_series(&mut ph.series, ph.metrics, &phase.name) {
                        ph.series_error.get_or_insert(e);
                    }
                }
                let _ = events.send(Event::PhaseProgress {
                    name: phase.name.clone(),
                    elapsed_ms: elapsed.as_millis() as u64,
                    duration_ms: duration.as_millis() as u64,
                });
                if elapsed >= duration {
                    break Ok(());
                }
                std::thread::sleep((duration - elapsed).min(Duration::from_millis(200)));
            };
            if outcome.is_err() {
                cancel.store(true, Ordering::SeqCst);
            }
            // Give the load a bounded grace to finish its phase, then cancel it.
            let load_result = handle.map(|h| {
                let grace = Instant::now() + Duration::from_secs(15);
                while !h.is_finished() && Instant::now() < grace && signals::requested().is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                cancel.store(true, Ordering::SeqCst);
                h.join().unwrap_or(Err(LoadPluginError::Panicked))
            });
            (outcome, load_result)
        })
    }

    /// Closes the phase's window (timeline, progress) and keeps the
    /// boundary scrape, also for an interrupted phase (what it has).
    fn close_window(&mut self, phase: &Phase, completed: bool, metrics_addr: SocketAddr) {
        let end_ns = monotonic_ns();
        if let Some(w) = self.timeline.phases.last_mut() {
            w.end_ns = Some(end_ns);
            w.completed = completed;
        }
        let _ = self.events.send(Event::PhaseEnded {
            name: phase.name.clone(),
            t_ns: end_ns,
        });
        match metrics::http(
            metrics_addr,
            "GET",
            "/metrics",
            None,
            Duration::from_secs(3),
        ) {
            Ok(text) => {
                let path = self.layout.metrics_phase(&phase.name);
                if let Err(e) = std::fs::write(&path, text) {
                    self.lost(format!("writing {}: {e}", path.display()));
                }
            }
            Err(e) => self.warn("metrics", Some(&phase.name), e.to_string()),
        }
    }

    /// Closes the probes' last window and detaches them, when attached.
    fn stop_probes(&mut self) -> Result<(), RunError> {
        if self.probe.is_none() {
            return Ok(());
        }
        self.step(Step::StopProbes)?;
        if let Some(mut p) = self.probe.take() {
            match p.stop() {
                Ok(t) => {
                    let (t, what) = self.on_host_clock(t, "probes stopped");
                    self.timeline.events.push(TimelineEvent { t_ns: t, what });
                }
                Err(e) => {
                    p.abort();
                    self.warn("probes", None, e.to_string());
                }
            }
        }
        Ok(())
    }

    /// The last step of the run proper: the evidence is fetched by the
    /// teardown that follows on every path.
    fn collect(&mut self) -> Result<(), RunError> {
        self.step(Step::Collect)
    }

    /// Ends the run proper: says whether the target itself is gone when a
    /// step failed (a node that "died" on a guest may have died with the
    /// guest; asked before teardown, which kills QEMU either way), then
    /// tears down. Returns the run's error for the bundle.
    fn stop(&mut self, result: Result<(), RunError>) -> Option<String> {
        let gone = if result.is_err() {
            self.target.t().gone()
        } else {
            None
        };
        self.teardown();
        result.err().map(|e| match gone {
            Some(why) => format!("{e}; the target itself is gone: {why}"),
            None => e.to_string(),
        })
    }

    /// Stops everything started, in reverse order; safe to call on any path.
    /// Order: probes, node, node log copies, probe output fetch, target,
    /// this host's scratch, serial console into the bundle.
    fn teardown(&mut self) {
        // A signal cancelled the step that was waiting; the teardown's own
        // waits (node stop, evidence fetch) run unless another one comes.
        vm::process::clear_cancel();
        if let Some(mut p) = self.probe.take() {
            p.abort();
            self.mark("probes aborted".into());
        }
        let _ = self.events.send(Event::Step {
            step: Step::StopNode,
        });
        if let Some(mut n) = self.node.take() {
            match n.terminate(Duration::from_secs(10)) {
                Ok(st) => self.mark(format!("node stopped ({st})")),
                Err(e) => self.mark(format!("node stop failed: {e}")),
            }
        }
        let pumps: Vec<_> = self.pumps.drain(..).collect();
        for h in pumps {
            match h.join() {
                Ok(None) => {}
                Ok(Some(why)) => self.lost(why),
                Err(_) => self.lost("a node log copier panicked".into()),
            }
        }
        // Probe output lives on the target until fetched (probes on this
        // host wrote straight into the bundle).
        let probe_out = self.target.t().scratch_dir().join("probes");
        if self.host.is_none()
            && (probe_out.exists() || !matches!(self.s.target, TargetSpec::Local))
        {
            match self
                .target
                .t()
                .fetch_dir(&probe_out, &self.layout.probes_dir())
            {
                Ok(got) => {
                    for r in got.refused {
                        self.warn(
                            "fetch",
                            None,
                            format!("refused from the target's probe output: {r}"),
                        );
                    }
                }
                Err(e) => self.lost(format!(
                    "the probe output could not be fetched from the target: {e}"
                )),
            }
        }
        if let Err(e) = self.target.t().teardown() {
            self.failures.push(PluginFailure {
                plugin: "target".into(),
                phase: None,
                error: format!("teardown: {e}"),
            });
        }
        if let Some(mut h) = self.host.take() {
            let _ = h.teardown();
        }
        // The guest's serial console goes into the bundle.
        if let Some(serial) = self.target.details().serial_log {
            if serial.is_file() {
                let _ = std::fs::copy(&serial, self.layout.root.join("serial.log"));
            }
        }
        let _ = std::fs::remove_dir_all(self.layout.root.join(".target"));
    }

    /// Writes what the run has (each write that fails is a reason the bundle
    /// is incomplete, and the others still happen), renders the report,
    /// then seals the manifest. Returns the status it sealed.
    fn seal(
        &mut self,
        loaded: &Loaded,
        started_utc: &str,
        error: Option<String>,
    ) -> std::io::Result<Sealed> {
        let _ = self.events.send(Event::Step {
            step: Step::WriteBundle,
        });
        let l = self.layout.clone();
        // The space held back since the start: the manifest must fit.
        l.release_reserve();
        self.write_evidence(loaded);
        // The report reads the effective scenario (`--set` applied) from the
        // manifest: a provisional one holds it until the seal below.
        let resolved = serde_json::to_value(&self.s).map_err(std::io::Error::other)?;
        if let Err(e) = json_to(
            &l.manifest(),
            &serde_json::json!({ "status": "incomplete", "scenario_resolved": resolved }),
        ) {
            self.lost(format!("writing {}: {e}", l.manifest().display()));
        }
        // The report reads what was just written; it is sealed into the manifest with it.
        let verdicts = match crate::report::finish_run(&l.root) {
            Ok(o) => Some(o.verdicts),
            Err(e) => {
                self.failures.push(PluginFailure {
                    plugin: "report".into(),
                    phase: None,
                    error: e.to_string(),
                });
                None
            }
        };
        let reasons = self.incomplete_reasons(error.as_deref(), verdicts.as_ref());
        let mut m = self.manifest(
            loaded,
            started_utc,
            error,
            reasons,
            verdicts.as_ref(),
            resolved,
        );
        let status = seal_manifest(&l, &mut m)?;
        Ok(Sealed { status, verdicts })
    }

    /// The files of the bundle that hold what the run gathered: the
    /// scenario as written, the probes' stderr, the plug-in failure lists,
    /// context and timeline.
    fn write_evidence(&mut self, loaded: &Loaded) {
        let l = self.layout.clone();
        let mut writes: Vec<(PathBuf, std::io::Result<()>)> = Vec::new();
        writes.push((l.scenario(), std::fs::write(l.scenario(), &loaded.text)));
        let stderr_log = l.root.join("probes-stderr.log");
        if stderr_log.exists() {
            let dst = l.probes_dir().join("qfc-probe.stderr.log");
            let moved = std::fs::create_dir_all(l.probes_dir())
                .and_then(|()| std::fs::rename(&stderr_log, &dst));
            writes.push((dst, moved));
        }
        // One file per plug-in failure list, next to the plug-in's output.
        for plugin in ["probes", "load"] {
            let fs: Vec<&PluginFailure> = self
                .failures
                .iter()
                .filter(|f| f.plugin == plugin)
                .collect();
            if !fs.is_empty() {
                let dir = l.root.join(plugin);
                let path = dir.join("failure.json");
                let w = std::fs::create_dir_all(&dir).and_then(|()| json_to(&path, &fs));
                writes.push((path, w));
            }
        }
        writes.push((l.context_json(), json_to(&l.context_json(), &self.context)));
        writes.push((
            l.context_txt(),
            std::fs::write(l.context_txt(), context::render_text(&self.context)),
        ));
        writes.push((l.timeline(), json_to(&l.timeline(), &self.timeline)));
        for (path, w) in writes {
            if let Err(e) = w {
                self.lost(format!("writing {}: {e}", path.display()));
            }
        }
    }

    /// Why the bundle is incomplete: the run's error, missing evidence,
    /// plug-in failures, expectations that could not be evaluated.
    fn incomplete_reasons(&self, error: Option<&str>, verdicts: Option<&Verdicts>) -> Vec<String> {
        let mut reasons: Vec<String> = error.iter().map(|e| e.to_string()).collect();
        reasons.extend(self.lost.iter().map(|w| format!("evidence missing: {w}")));
        reasons.extend(self.failures.iter().map(|f| {
            format!(
                "{}{}: {}",
                f.plugin,
                f.phase
                    .as_deref()
                    .map(|p| format!(" in phase {p}"))
                    .unwrap_or_default(),
                f.error
            )
        }));
        if let Some(v) = verdicts {
            reasons.extend(
                v.verdicts
                    .iter()
                    .filter(|x| x.status == VerdictStatus::CannotEvaluate)
                    .map(|x| format!("expectation not evaluated: {}", x.sentence())),
            );
        }
        reasons
    }

    /// The manifest to seal: complete when there is no reason otherwise.
    fn manifest(
        &self,
        loaded: &Loaded,
        started_utc: &str,
        error: Option<String>,
        reasons: Vec<String>,
        verdicts: Option<&Verdicts>,
        resolved: serde_json::Value,
    ) -> Manifest {
        let expectations = match verdicts {
            _ if self.s.expects.is_empty() => "none",
            None => "not_evaluated",
            Some(v) if v.any_failed() => "fail",
            Some(v) if v.cannot_evaluate > 0 => "cannot_evaluate",
            Some(_) => "pass",
        };
        let status = if reasons.is_empty() {
            Status::Complete
        } else {
            Status::Incomplete
        };
        Manifest {
            format: 1,
            name: self.s.name.clone(),
            seed: self.s.seed,
            status,
            error: error.or_else(|| reasons.first().cloned()),
            incomplete_reasons: reasons,
            plugin_failures: self.failures.clone(),
            scenario_file: loaded.file.clone(),
            scenario_as_written: loaded.text.clone(),
            overrides: loaded.overrides.clone(),
            scenario_resolved: resolved,
            qfc_lab_version: env!("CARGO_PKG_VERSION").into(),
            qfc_lab_git_commit: option_env!("QFC_LAB_GIT_COMMIT")
                .unwrap_or("unknown")
                .into(),
            node_binary: Some(self.node_binary.display().to_string()),
            node_binary_blake3: bundle::hash_file(&self.node_binary).ok(),
            started_utc: started_utc.into(),
            ended_utc: utc_now(),
            expectations: expectations.into(),
            target: self.context.target.clone(),
            image_key: self
                .context
                .target_details
                .image
                .as_ref()
                .map(|i| i.key.clone()),
            node_binary_info: self.node_info.clone(),
            files: Default::default(),
        }
    }

    /// The exit code and the error the progress UI prints, from what was
    /// sealed (or why sealing failed).
    fn ended(&self, sealed: std::io::Result<Sealed>, error: Option<String>) -> Ended {
        let (status, code, error) = match sealed {
            Err(w) => (
                Status::Incomplete,
                Exit::RunFailed,
                Some(format!(
                    "{}writing the bundle failed: {w}",
                    error.map(|e| format!("{e}; ")).unwrap_or_default()
                )),
            ),
            Ok(Sealed {
                status: Status::Incomplete,
                verdicts,
            }) => (
                Status::Incomplete,
                Exit::RunFailed,
                Some(error.unwrap_or_else(|| self.incomplete_summary(verdicts.as_ref()))),
            ),
            Ok(Sealed {
                status: Status::Complete,
                verdicts,
            }) => match verdicts.as_ref().filter(|v| v.any_failed()) {
                Some(v) => (
                    Status::Complete,
                    Exit::CheckFailed,
                    Some(format!(
                        "expectations failed (see report.md):\n  {}",
                        v.verdicts
                            .iter()
                            .filter(|x| x.status == VerdictStatus::Fail)
                            .map(|x| x.sentence())
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    )),
                ),
                None => (Status::Complete, Exit::Ok, None),
            },
        };
        Ended {
            status,
            code,
            error,
        }
    }

    /// "the bundle is incomplete:" with one reason a line, for the UI.
    fn incomplete_summary(&self, verdicts: Option<&Verdicts>) -> String {
        format!(
            "the bundle is incomplete:\n  {}",
            self.lost
                .iter()
                .map(|w| format!("evidence missing: {w}"))
                .chain(
                    self.failures
                        .iter()
                        .map(|f| format!("{}: {}", f.plugin, f.error))
                )
                .chain(verdicts.iter().flat_map(|v| {
                    v.verdicts
                        .iter()
                        .filter(|x| x.status == VerdictStatus::CannotEvaluate)
                        .map(|x| x.sentence())
                }))
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    }
}

/// Seals `m` into the bundle. When the disk is full, the rendered report
/// (derived: `qfc-lab report DIR` renders it again) goes first to make room,
/// and the bundle is sealed incomplete saying so.
fn seal_manifest(l: &Layout, m: &mut Manifest) -> std::io::Result<Status> {
    match bundle::seal(l, m) {
        Ok(()) => Ok(m.status),
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            for f in crate::report::RENDERED_FILES {
                let _ = std::fs::remove_file(l.root.join(f));
            }
            m.status = Status::Incomplete;
            m.incomplete_reasons.push(format!(
                "the disk filled up: the report was removed to make room for the manifest ({e}); render it again with `qfc-lab report DIR` once there is space"
            ));
            m.error
                .get_or_insert_with(|| m.incomplete_reasons[0].clone());
            bundle::seal(l, m)?;
            Ok(Status::Incomplete)
        }
        Err(e) => Err(e),
    }
}

/// A signal or the node's death ends the run; `when` says when the node
/// died ("during phase x"). Checked at each step, while waiting for RPC and
/// throughout a phase.
/// Whether a signal asked the run to stop: long in-process steps (seeding,
/// connecting the load) poll it, so Ctrl-C takes effect within 2 s.
fn stop_requested() -> bool {
    signals::requested().is_some()
}

/// The signal's own error when a signal stopped the step, else `e`.
fn interrupted_or(e: RunError) -> RunError {
    match signals::requested() {
        Some(sig) => RunError::Interrupted(signals::name(sig)),
        None => e,
    }
}

fn check_alive(
    node: &mut Option<Box<dyn RemoteProcess>>,
    when: impl FnOnce() -> String,
) -> Result<(), RunError> {
    if let Some(sig) = signals::requested() {
        return Err(RunError::Interrupted(signals::name(sig)));
    }
    if let Some(n) = node.as_mut() {
        if let Ok(Some(status)) = n.try_wait() {
            return Err(RunError::NodeDied {
                status: status.to_string(),
                when: when(),
            });
        }
    }
    Ok(())
}

/// Copies one of the node's output streams into its log in the bundle. The
/// stream is read to its end even when the log cannot be written (a node
/// blocked on a full pipe would stall the run); the first write error is
/// returned as the reason the log is incomplete.
fn pump_log(mut r: Box<dyn std::io::Read + Send>, path: &Path, name: &str) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::create(path);
    let mut why = f
        .as_ref()
        .err()
        .map(|e| format!("creating node/{name}: {e}"));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if why.is_none() {
            if let Ok(f) = f.as_mut() {
                if let Err(e) = f.write_all(&buf[..n]) {
                    why = Some(format!("writing node/{name}: {e}"));
                }
            }
        }
    }
    if why.is_none() {
        if let Ok(f) = f.as_mut() {
            if let Err(e) = f.flush().and_then(|()| f.sync_data()) {
                why = Some(format!("writing node/{name}: {e}"));
            }
        }
    }
    why
}

/// `v` as pretty JSON with its object keys sorted (through a
/// `serde_json::Value`), as the bundle has always had the load generator's
/// reports.
fn sorted_json<T: Serialize>(v: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_value(v).and_then(|v| serde_json::to_vec_pretty(&v))
}

/// Writes `v` as pretty JSON to `path`.
fn json_to<T: Serialize + ?Sized>(path: &Path, v: &T) -> std::io::Result<()> {
    std::fs::write(
        path,
        serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?,
    )
}

/// One `series.jsonl` line: `{"t_ns":..,"phase":..,"samples":{..}}` or the
/// scrape error; `Err` when the line could not be written.
fn scrape_series(
    out: &mut std::fs::File,
    addr: std::net::SocketAddr,
    phase: &str,
) -> std::io::Result<()> {
    let t_ns = monotonic_ns();
    let mut line = bundle_schema::metrics::MetricsLine {
        t_ns,
        phase: Some(phase.to_string()),
        ..Default::default()
    };
    match metrics::http(addr, "GET", "/metrics", None, Duration::from_secs(1)) {
        Ok(text) => line.samples = Some(metrics::parse_prom(&text)),
        Err(e) => line.error = Some(e.to_string()),
    }
    writeln!(out, "{}", serde_json::to_string(&line)?)
}

/// Where `qfc-lab run` writes when `--out` is not given (for messages).
pub fn default_dir(s: &Scenario) -> PathBuf {
    bundle_dir(&s.bundle.dir, &s.name, "<utc>")
}
