//! `qfc-lab run`: prepare target -> seed datadir -> start node -> wait for
//! RPC -> connect load -> attach probes -> phases in order on one monotonic
//! clock -> stop probes -> collect -> stop node -> write the bundle. Every
//! exit path (node death, failed step, SIGINT/SIGTERM) tears down what was
//! started and still writes the bundle, `incomplete` with the reason.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use vm::{RemoteProcess, SpawnSpec, Target};

use crate::bundle::{self, Layout, Manifest, PluginFailure, Status};
use crate::cli::RunArgs;
use crate::clock::{monotonic_ns, utc_compact, utc_now};
use crate::context::{self, Context};
use crate::events::{self, Event, Events, Step};
use crate::load::{self, Endpoints, LoadPlugin};
use crate::metrics;
use crate::node::{self, NodePorts};
use crate::probe::{ProbePlugin, QfcProbe};
use crate::scenario::{self, Loaded, Scenario, TargetSpec};
use crate::targets::{self, AnyTarget};
use crate::{signals, Exit};

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    #[error("node exited ({status}) {when}; see node/stderr.log and node/stdout.log")]
    NodeDied { status: String, when: String },
    #[error("{step:?}: {message}")]
    Step { step: Step, message: String },
}

fn step_err(step: Step) -> impl Fn(String) -> RunError {
    move |message| RunError::Step { step, message }
}

/// `timeline.json`, in the bundle schema shared with the report.
pub use bundle_schema::timeline::{PhaseWindow, Timeline, TimelineEvent};

/// Fills `{name}` and `{utc}` in the bundle directory template.
pub fn bundle_dir(template: &str, name: &str, utc: &str) -> PathBuf {
    PathBuf::from(template.replace("{name}", name).replace("{utc}", utc))
}

/// Entry point of `qfc-lab run`.
pub fn main(args: RunArgs) -> Exit {
    if let Err(e) = signals::install() {
        eprintln!("error: cannot install signal handlers: {e}");
        return Exit::RunFailed;
    }
    let loaded = match scenario::load(&args.scenario, &args.set) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let s = &loaded.scenario;
    let root = args
        .out
        .clone()
        .unwrap_or_else(|| bundle_dir(&s.bundle.dir, &s.name, &utc_compact()));
    if root.exists()
        && std::fs::read_dir(&root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        eprintln!(
            "error: bundle directory {} exists and is not empty: choose another --out",
            root.display()
        );
        return Exit::Usage;
    }
    let layout = Layout::new(root.clone());
    if let Err(e) = layout.create() {
        eprintln!(
            "error: cannot create bundle directory {}: {e}",
            root.display()
        );
        return Exit::RunFailed;
    }
    // The target, with what it needs first (guest image, cross-built binaries).
    // What a killed earlier run left behind goes first.
    let swept = crate::gc_sweep();
    for l in &swept.removed {
        if !args.json {
            eprintln!("removed {l} (left by an earlier run)");
        }
        tracing::info!(removed = %l, "gc");
    }
    let run_dir = root.join(".target");
    let built = targets::build(s, args.keep_scratch, &run_dir, &|m| {
        if !args.json {
            eprintln!("{m}");
        }
        tracing::info!(message = %m, "target preparation");
    });
    let (target, cross_bins) = match built {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: {}: target {:?}: {e}",
                args.scenario.display(),
                s.target.kind()
            );
            let _ = std::fs::remove_dir_all(&root);
            return Exit::RunFailed;
        }
    };
    let node_binary = match cross_bins
        .node
        .clone()
        .map(Ok)
        .unwrap_or_else(|| node::resolve_binary(&s.node, args.node_binary.as_deref()))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            let _ = std::fs::remove_dir_all(&root);
            return Exit::Usage;
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

    let (events, ui) = events::spawn_ui(args.json);
    let _ = events.send(Event::Started {
        scenario: args.scenario.display().to_string(),
        bundle: root.display().to_string(),
    });
    let started_utc = utc_now();
    let mut run = Run {
        s: s.clone(),
        layout: layout.clone(),
        events: events.clone(),
        target,
        host: None,
        node_binary: node_binary.clone(),
        node: None,
        pumps: Vec::new(),
        probe: None,
        probe_binary,
        load: load::default_plugin(),
        timeline: Timeline {
            clock: "CLOCK_MONOTONIC".into(),
            ..Default::default()
        },
        context: Context::default(),
        failures: Vec::new(),
        lost: Vec::new(),
        endpoints: None,
        verdicts: None,
        node_info: None,
    };
    let result = run.execute();
    // A node that "died" on a guest may have died with the guest: say so
    // (before teardown, which kills QEMU either way).
    let gone = if result.is_err() {
        run.target.t().gone()
    } else {
        None
    };
    run.teardown();
    let error = result.err().map(|e| match gone {
        Some(why) => format!("{e}; the target itself is gone: {why}"),
        None => e.to_string(),
    });
    let write = run.write_bundle(&loaded, &started_utc, error.clone());
    let (status, code, error) = match write {
        Err(w) => (
            Status::Incomplete,
            Exit::RunFailed,
            Some(format!(
                "{}writing the bundle failed: {w}",
                error.map(|e| format!("{e}; ")).unwrap_or_default()
            )),
        ),
        Ok(Status::Incomplete) => (
            Status::Incomplete,
            Exit::RunFailed,
            Some(match error {
                Some(e) => e,
                None => format!(
                    "the bundle is incomplete:\n  {}",
                    run.lost
                        .iter()
                        .map(|w| format!("evidence missing: {w}"))
                        .chain(
                            run.failures
                                .iter()
                                .map(|f| format!("{}: {}", f.plugin, f.error))
                        )
                        .chain(run.verdicts.iter().flat_map(|v| {
                            v.verdicts
                                .iter()
                                .filter(|x| {
                                    x.status == crate::report::expect::Status::CannotEvaluate
                                })
                                .map(|x| x.sentence())
                        }))
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ),
            }),
        ),
        Ok(Status::Complete) => match run.verdicts.as_ref().filter(|v| v.any_failed()) {
            Some(v) => (
                Status::Complete,
                Exit::CheckFailed,
                Some(format!(
                    "expectations failed (see report.md):\n  {}",
                    v.verdicts
                        .iter()
                        .filter(|x| x.status == crate::report::expect::Status::Fail)
                        .map(|x| x.sentence())
                        .collect::<Vec<_>>()
                        .join("\n  ")
                )),
            ),
            None => (Status::Complete, Exit::Ok, None),
        },
    };
    let _ = events.send(Event::Finished {
        status: format!("{status:?}").to_lowercase(),
        bundle: root.display().to_string(),
        error,
        exit_code: code as u8,
    });
    drop(run);
    drop(events);
    let _ = ui.join();
    code
}

struct Run {
    s: Scenario,
    layout: Layout,
    events: Events,
    target: AnyTarget,
    /// This machine, for probes of a container target (they run on the host).
    host: Option<vm::LocalTarget>,
    node_binary: PathBuf,
    node: Option<Box<dyn RemoteProcess>>,
    /// Copies of the node's stdout/stderr; each returns why its log is incomplete.
    pumps: Vec<std::thread::JoinHandle<Option<String>>>,
    probe: Option<Box<dyn ProbePlugin>>,
    probe_binary: PathBuf,
    load: Box<dyn LoadPlugin>,
    timeline: Timeline,
    context: Context,
    failures: Vec<PluginFailure>,
    /// Evidence that is missing from the bundle, and why ([`Run::lost`]).
    lost: Vec<String>,
    /// Expectation verdicts, once the report is rendered (`write_bundle`).
    verdicts: Option<crate::report::Verdicts>,
    endpoints: Option<Endpoints>,
    /// `vm::nodebin::inspect` of the node binary, for the manifest.
    node_info: Option<serde_json::Value>,
}

impl Run {
    fn step(&mut self, step: Step) -> Result<(), RunError> {
        self.check()?;
        self.mark(format!("step {step:?}"));
        let _ = self.events.send(Event::Step { step });
        Ok(())
    }

    /// Thread census of the node: through the host for a container (its
    /// pid is a host pid), through the target otherwise.
    fn census(&mut self, pid: u32) -> std::collections::BTreeMap<String, u32> {
        match self.host.as_mut() {
            Some(h) => context::threads(h, pid),
            None => context::threads(self.target.t(), pid),
        }
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
        if let Some(sig) = signals::requested() {
            return Err(RunError::Interrupted(signals::name(sig)));
        }
        if let Some(n) = self.node.as_mut() {
            if let Ok(Some(status)) = n.try_wait() {
                return Err(RunError::NodeDied {
                    status: status.to_string(),
                    when: String::new(),
                });
            }
        }
        Ok(())
    }

    /// Seeds the node's datadir before the node starts. On the local target
    /// the load plug-in writes it in place; on a guest or SSH host it is
    /// written here, packed with `tar`, shipped and unpacked at `datadir`
    /// (RocksDB's files are the same on every little-endian machine).
    fn seed_datadir(
        &mut self,
        datadir: &Path,
        keys: u64,
        value_bytes: u64,
    ) -> Result<serde_json::Value, RunError> {
        let se = step_err(Step::StartNode);
        let seed = self.s.seed;
        match self.s.target {
            TargetSpec::Local => {
                return self
                    .load
                    .seed_db(datadir, keys, value_bytes, seed)
                    .map_err(|e| se(format!("seeding the datadir: {e}")))
            }
            TargetSpec::Container { .. } => {
                return Err(se(
                    "[node.seed_db] is not supported on the container target (its datadir is a Docker volume created at start): remove [node.seed_db] or use kind = \"local\", \"qemu\" or \"ssh\"".into(),
                ))
            }
            TargetSpec::Ssh(_) | TargetSpec::Qemu(_) => {}
        }
        let tmp = tempfile::Builder::new()
            .prefix("qfc-lab-seed-")
            .tempdir()
            .map_err(|e| se(format!("a temporary directory for the seeded datadir: {e}")))?;
        let local = tmp.path().join("node-data");
        let report = self
            .load
            .seed_db(&local, keys, value_bytes, seed)
            .map_err(|e| se(format!("seeding the datadir: {e}")))?;
        let tarball = tmp.path().join("seed-db.tar");
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&local)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .map_err(|e| se(format!("running tar to pack the seeded datadir: {e}")))?;
        if !st.success() {
            return Err(se(format!(
                "tar could not pack the seeded datadir {}: {st}",
                local.display()
            )));
        }
        let remote = self
            .target
            .t()
            .ship(&tarball)
            .map_err(|e| se(format!("shipping the seeded datadir: {e}")))?;
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
            .map_err(|e| se(format!("unpacking the seeded datadir on the target: {e}")))?;
        if !out.success() {
            return Err(se(format!(
                "unpacking the seeded datadir on the target failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(report)
    }

    fn execute(&mut self) -> Result<(), RunError> {
        self.step(Step::PrepareTarget)?;
        self.target
            .t()
            .prepare()
            .map_err(|e| step_err(Step::PrepareTarget)(e.to_string()))?;
        // A container shares this host's kernel: the host's facts are the
        // context (and the probes run here, against its cgroup).
        if self.target.probes_on_host() {
            let mut h = vm::LocalTarget::new(vm::LocalTarget::default_scratch(), false);
            h.prepare().map_err(|e| {
                step_err(Step::PrepareTarget)(format!("host scratch for the probes: {e}"))
            })?;
            self.context = context::gather(&mut h);
            self.context.target = Some(self.target.r().info());
            self.host = Some(h);
        } else {
            self.context = context::gather(self.target.t());
        }
        self.context.target_details = self.target.details();
        let scratch = self.target.t().scratch_dir();
        let datadir = scratch.join("node-data");

        if let Some(sd) = self.s.node.seed_db.clone() {
            let report = self.seed_datadir(&datadir, sd.keys, sd.value_bytes)?;
            std::fs::create_dir_all(self.layout.load_dir())
                .map_err(|e| step_err(Step::StartNode)(e.to_string()))?;
            bundle::write_atomic(
                &self.layout.load_dir().join("seed_db.json"),
                &serde_json::to_vec_pretty(&report).unwrap_or_default(),
            )
            .map_err(|e| step_err(Step::StartNode)(e.to_string()))?;
            self.mark("datadir seeded".into());
        }

        self.step(Step::StartNode)?;
        let se = step_err(Step::StartNode);
        let ports = NodePorts {
            rpc: self.target.t().free_port().map_err(|e| se(e.to_string()))?,
            metrics: self.target.t().free_port().map_err(|e| se(e.to_string()))?,
            p2p: self.target.t().free_port().map_err(|e| se(e.to_string()))?,
        };
        let remote_bin = self
            .target
            .t()
            .ship(&self.node_binary)
            .map_err(|e| se(e.to_string()))?;
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
                return Err(se(e.to_string()))
            }
            // A script or unreadable ELF still runs; the manifest just lacks the facts.
            Err(e) => {
                let _ = self.events.send(Event::Warning {
                    message: format!("node binary not inspected: {e}"),
                });
                None
            }
        };
        // The container's image is built at spawn: ask the binary here (same arch).
        self.context.node_version = if self.target.probes_on_host() {
            self.host
                .as_mut()
                .and_then(|h| vm::nodebin::version_on(h, &self.node_binary))
        } else {
            vm::nodebin::version_on(self.target.t(), &remote_bin)
        };
        // The real qfc-node's flags differ between revisions: fit the command
        // line to what this binary's --help lists, and say what changed.
        let wanted = node::node_args(&self.s.node, &datadir, ports, self.target.r().listen_host());
        let accepted = if self.target.probes_on_host() {
            self.host
                .as_mut()
                .and_then(|h| vm::nodebin::flags_on(h, &self.node_binary))
        } else {
            vm::nodebin::flags_on(self.target.t(), &remote_bin)
        };
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
        let cmdline = serde_json::json!({
            "argv": argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
            "env": self.s.node.env,
            "ports": ports,
        });
        bundle::write_atomic(
            &self.layout.node_dir().join("cmdline.json"),
            &serde_json::to_vec_pretty(&cmdline).unwrap_or_default(),
        )
        .map_err(|e| se(e.to_string()))?;
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
            .map_err(|e| se(e.to_string()))?;
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
        let rpc = self
            .target
            .t()
            .forward(ports.rpc)
            .map_err(|e| se(e.to_string()))?;
        let metrics_addr = self
            .target
            .t()
            .forward(ports.metrics)
            .map_err(|e| se(e.to_string()))?;
        let p2p = self
            .target
            .t()
            .forward(ports.p2p)
            .map_err(|e| se(e.to_string()))?;
        let _ = self.events.send(Event::NodeStarted {
            pid,
            rpc: rpc.to_string(),
            metrics: metrics_addr.to_string(),
            p2p_port: ports.p2p,
        });
        self.mark(format!("node started pid {pid}"));

        self.step(Step::WaitRpc)?;
        // An emulated guest (QEMU TCG) starts the node several times slower.
        let rpc_wait_s = if self.target.r().info().emulated {
            300
        } else {
            60
        };
        let deadline = Instant::now() + Duration::from_secs(rpc_wait_s);
        loop {
            self.check().map_err(|e| match e {
                RunError::NodeDied { status, .. } => RunError::NodeDied {
                    status,
                    when: "before its RPC answered".into(),
                },
                e => e,
            })?;
            match metrics::rpc(rpc, "eth_blockNumber", Duration::from_secs(2)) {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(step_err(Step::WaitRpc)(format!("the node's RPC at {rpc} did not answer eth_blockNumber within {rpc_wait_s} s: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.mark("rpc ready".into());
        self.context.threads_at_ready = self.census(pid);
        let endpoints = Endpoints {
            rpc,
            metrics: metrics_addr,
            p2p: if self.s.node.no_network {
                None
            } else {
                Some(p2p)
            },
            chain_id: self.s.node.chain_id,
            admin_rpc: self.s.node.refnode.as_ref().is_some_and(|r| r.admin),
        };
        self.endpoints = Some(endpoints);

        let has_load = self.s.phases.iter().any(|p| !p.load.is_empty());
        let mut load_ok = false;
        if has_load {
            self.step(Step::ConnectLoad)?;
            match self.load.connect(&endpoints, self.s.seed) {
                Ok(()) => load_ok = true,
                Err(e) => self.warn("load", None, e.to_string()),
            }
        }

        let probe_out = if self.target.probes_on_host() {
            self.layout.probes_dir()
        } else {
            scratch.join("probes")
        };
        if !self.s.probes.enable.is_empty() {
            self.step(Step::StartProbes)?;
            let mut qp = QfcProbe::new(
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
                qp = qp.with_cgroup(cg);
            }
            let mut p: Box<dyn ProbePlugin> = Box::new(qp);
            let attached = match self.host.as_mut() {
                Some(h) => p.attach(h, pid, &probe_out),
                None => p.attach(self.target.t(), pid, &probe_out),
            };
            match attached {
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
        }

        self.step(Step::Phases)?;
        let series_path = self.layout.metrics_series();
        let mut series = std::fs::File::create(&series_path)
            .map_err(|e| step_err(Step::Phases)(format!("{}: {e}", series_path.display())))?;
        let phases = self.s.phases.clone();
        let mut series_error: Option<std::io::Error> = None;
        for (i, phase) in phases.iter().enumerate() {
            self.check()?;
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
                index: i,
                count: phases.len(),
                name: phase.name.clone(),
                duration_s: phase.duration_s,
                t_ns: start_ns,
            });
            let load_dir = self.layout.load_phase(&phase.name);
            let cancel = AtomicBool::new(false);
            let duration = Duration::from_secs(phase.duration_s);
            let run_load = load_ok && !phase.load.is_empty();
            if !phase.load.is_empty() && !load_ok {
                self.warn(
                    "load",
                    Some(&phase.name),
                    "phase ran without its load (the load generator is not connected)".into(),
                );
            }
            let interval = self.s.bundle.metrics_interval_s;
            // The load runs on its own thread; this one keeps time, watches
            // the node and signals, and scrapes metrics.
            let load = &mut self.load;
            let (outcome, load_result) = std::thread::scope(|sc| {
                let handle = run_load.then(|| {
                    let cancel = &cancel;
                    let dir = load_dir.clone();
                    sc.spawn(move || {
                        let _ = std::fs::create_dir_all(&dir);
                        load.run_phase(phase, &dir, cancel)
                    })
                });
                let begin = Instant::now();
                let mut next_scrape = begin;
                let outcome = loop {
                    if let Some(sig) = signals::requested() {
                        break Err(RunError::Interrupted(signals::name(sig)));
                    }
                    if let Some(n) = self.node.as_mut() {
                        if let Ok(Some(st)) = n.try_wait() {
                            break Err(RunError::NodeDied {
                                status: st.to_string(),
                                when: format!("during phase {}", phase.name),
                            });
                        }
                    }
                    let elapsed = begin.elapsed();
                    if interval > 0 && Instant::now() >= next_scrape {
                        next_scrape += Duration::from_secs(interval);
                        if let Err(e) = scrape_series(&mut series, metrics_addr, &phase.name) {
                            series_error.get_or_insert(e);
                        }
                    }
                    let _ = self.events.send(Event::PhaseProgress {
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
                    while !h.is_finished()
                        && Instant::now() < grace
                        && signals::requested().is_none()
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    cancel.store(true, Ordering::SeqCst);
                    h.join().unwrap_or_else(|_| {
                        Err(load::LoadPluginError::Failed("load thread panicked".into()))
                    })
                });
                (outcome, load_result)
            });
            if let Some(e) = series_error.take() {
                self.lost(format!(
                    "writing {} in phase {}: {e}",
                    series_path.display(),
                    phase.name
                ));
            }
            match load_result {
                Some(Ok(summary)) => {
                    let path = load_dir.join("summary.json");
                    if !path.exists() {
                        let written = serde_json::to_vec_pretty(&summary)
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
            let end_ns = monotonic_ns();
            if let Some(w) = self.timeline.phases.last_mut() {
                w.end_ns = Some(end_ns);
                w.completed = outcome.is_ok();
            }
            let _ = self.events.send(Event::PhaseEnded {
                name: phase.name.clone(),
                t_ns: end_ns,
            });
            // Boundary scrape, also for an interrupted phase (what it has).
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
            outcome?;
        }
        self.context.threads_at_end = self.census(pid);

        if self.probe.is_some() {
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
        }
        self.step(Step::Collect)?;
        Ok(())
    }

    /// Stops everything started, in reverse order; safe to call on any path.
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
        // Probe output lives on the target until fetched.
        let probe_out = self.target.t().scratch_dir().join("probes");
        if !self.target.probes_on_host()
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
    fn write_bundle(
        &mut self,
        loaded: &Loaded,
        started_utc: &str,
        error: Option<String>,
    ) -> std::io::Result<Status> {
        let _ = self.events.send(Event::Step {
            step: Step::WriteBundle,
        });
        let l = self.layout.clone();
        // The space held back since the start: the manifest must fit.
        l.release_reserve();
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
        match crate::report::finish_run(&l.root) {
            Ok(o) => self.verdicts = Some(o.verdicts),
            Err(e) => self.failures.push(PluginFailure {
                plugin: "report".into(),
                phase: None,
                error: e.to_string(),
            }),
        }
        let expectations = match &self.verdicts {
            _ if self.s.expects.is_empty() => "none",
            None => "not_evaluated",
            Some(v) if v.any_failed() => "fail",
            Some(v) if v.cannot_evaluate > 0 => "cannot_evaluate",
            Some(_) => "pass",
        };
        let mut reasons: Vec<String> = error.iter().cloned().collect();
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
        if let Some(v) = &self.verdicts {
            reasons.extend(
                v.verdicts
                    .iter()
                    .filter(|x| x.status == crate::report::expect::Status::CannotEvaluate)
                    .map(|x| format!("expectation not evaluated: {}", x.sentence())),
            );
        }
        let status = if reasons.is_empty() {
            Status::Complete
        } else {
            Status::Incomplete
        };
        let error = error.or_else(|| reasons.first().cloned());
        let mut m = Manifest {
            format: 1,
            name: self.s.name.clone(),
            seed: self.s.seed,
            status,
            error,
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
            target: self
                .context
                .target
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
            image_key: self
                .context
                .target_details
                .image
                .as_ref()
                .map(|i| i.key.clone()),
            node_binary_info: self.node_info.clone(),
            files: Default::default(),
        };
        match bundle::seal(&l, &mut m) {
            Ok(()) => Ok(status),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                // No room for the manifest: the rendered report is derived
                // (`qfc-lab report DIR` renders it again), so it goes first.
                for f in crate::report::RENDERED_FILES {
                    let _ = std::fs::remove_file(l.root.join(f));
                }
                m.status = Status::Incomplete;
                m.incomplete_reasons.push(format!(
                    "the disk filled up: the report was removed to make room for the manifest ({e}); render it again with `qfc-lab report DIR` once there is space"
                ));
                m.error
                    .get_or_insert_with(|| m.incomplete_reasons[0].clone());
                bundle::seal(&l, &mut m)?;
                Ok(Status::Incomplete)
            }
            Err(e) => Err(e),
        }
    }
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
