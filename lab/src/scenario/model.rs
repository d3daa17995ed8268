//! Stage two of the scenario parse: validated domain types with every
//! default filled in. This is the "resolved" scenario recorded in the
//! bundle's manifest. A phase's load is `loadgen::PhaseLoad` itself, checked
//! by loadgen's one validator ([`loadgen::PhaseLoad::check`]) whose field
//! errors are placed in the file through the spans kept here.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use loadgen::{CompactionLoad, PhaseLoad, RateStep, RpcLoad, SyncLoad, TxLoad};
use serde::Serialize;
use serde_spanned::Spanned;

use super::kinds::*;
use super::raw::*;

/// A validated scenario with every default filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub target: TargetSpec,
    pub node: NodeSpec,
    pub probes: ProbeSpec,
    pub phases: Vec<Phase>,
    pub expects: Vec<Expect>,
    pub bundle: BundleSpec,
    /// `[run] repeat`: how many repetitions `qfc-lab run` makes (default 1;
    /// `--repeat` overrides it).
    pub repeat: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetSpec {
    Local,
    /// `[target.qemu]`: the `vm` crate's own configuration.
    Qemu(vm::QemuConfig),
    Container {
        image: Option<String>,
    },
    Ssh(SshSpec),
}

impl TargetSpec {
    pub fn kind(&self) -> TargetKind {
        match self {
            Self::Local => TargetKind::Local,
            Self::Qemu(_) => TargetKind::Qemu,
            Self::Container { .. } => TargetKind::Container,
            Self::Ssh(_) => TargetKind::Ssh,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SshSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: String,
    pub known_hosts: String,
    pub workdir: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub kind: NodeKind,
    /// `None` for refnode: `qfc-refnode` next to the `qfc-lab` executable.
    pub binary: Option<PathBuf>,
    pub dev: bool,
    pub no_network: bool,
    pub chain_id: u64,
    pub log_level: LogLevel,
    pub mine: bool,
    pub threads: Option<u32>,
    pub db_statistics: bool,
    pub snapshot_interval_secs: u64,
    pub extra_args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Reference-node-only knobs; `None` for qfc-node.
    pub refnode: Option<RefnodeSpec>,
    pub seed_db: Option<SeedDb>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefnodeSpec {
    pub block_interval_ms: Option<u64>,
    pub synced_commit: bool,
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedDb {
    pub keys: u64,
    pub value_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeSpec {
    pub enable: Vec<ProbeKind>,
    pub scope: ProbeScope,
    pub oncpu_hz: u32,
    pub offcpu_min_us: u64,
    pub map_entries: u32,
    pub unwind: UnwindMode,
    /// User stack bytes copied per sample when `unwind` copies stacks
    /// (`qfc-probe --ustack-bytes`).
    pub ustack_bytes: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub duration_s: u64,
    /// The load generator's own type, validated by it.
    pub load: PhaseLoad,
}

#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    pub figure: String,
    pub phase: Option<String>,
    pub op: CompareOp,
    pub value: f64,
    pub why: Option<String>,
    /// `[[expect]] stat`: which statistic of the repetitions is judged
    /// (`None`: `all`; one run is judged on its value whatever it says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat: Option<crate::report::spec::Stat>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleSpec {
    /// Template; `{name}` and `{utc}` are filled in at run time.
    pub dir: String,
    pub metrics_interval_s: u64,
}

/// A stage-two problem: where, which field, what was expected, a hint.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub span: Range<usize>,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

type V<T> = Result<T, Invalid>;

fn bad(span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        span,
        field: field.into(),
        message: message.into(),
        hint: None,
    }
}

fn positive_u32(v: &Option<Spanned<u32>>, field: String, default: u32) -> V<u32> {
    match v {
        None => Ok(default),
        Some(s) if *s.get_ref() > 0 => Ok(*s.get_ref()),
        Some(s) => Err(bad(s.span(), field, "expected an integer > 0, found 0")),
    }
}

fn positive_u64(v: &Option<Spanned<u64>>, field: String, default: u64) -> V<u64> {
    match v {
        None => Ok(default),
        Some(s) if *s.get_ref() > 0 => Ok(*s.get_ref()),
        Some(s) => Err(bad(s.span(), field, "expected an integer > 0, found 0")),
    }
}

/// Validates a raw scenario and fills in defaults.
pub fn validate(raw: RawScenario, whole: Range<usize>) -> V<Scenario> {
    if !valid_name(raw.name.get_ref()) {
        return Err(Invalid {
            hint: Some("use letters, digits, '-' and '_' only, at most 64 characters".into()),
            ..bad(
                raw.name.span(),
                "name",
                format!("invalid name {:?}", raw.name.get_ref()),
            )
        });
    }
    let target = validate_target(raw.target)?;
    let node = validate_node(raw.node)?;
    let probes = validate_probes(raw.probes)?;
    let Some(raw_phases) = raw.phase else {
        return Err(Invalid {
            hint: Some("add at least one [[phase]] with name and duration_s".into()),
            ..bad(
                whole,
                "phase",
                "missing: a scenario needs at least one phase",
            )
        });
    };
    let phases_span = raw_phases.span();
    let raw_phases = raw_phases.into_inner();
    if raw_phases.is_empty() {
        return Err(Invalid {
            hint: Some("add at least one [[phase]] with name and duration_s".into()),
            ..bad(phases_span, "phase", "expected at least one phase")
        });
    }
    let mut phases: Vec<Phase> = Vec::with_capacity(raw_phases.len());
    for (i, p) in raw_phases.into_iter().enumerate() {
        let phase = validate_phase(i, p, &phases)?;
        phases.push(phase);
    }
    let expects = raw
        .expect
        .into_iter()
        .enumerate()
        .map(|(i, e)| validate_expect(i, e, &phases, &probes))
        .collect::<V<Vec<_>>>()?;
    let bundle = validate_bundle(raw.bundle)?;
    let repeat = validate_repeat(raw.run)?;
    Ok(Scenario {
        name: raw.name.into_inner(),
        description: raw.description,
        seed: raw.seed,
        target,
        node,
        probes,
        phases,
        expects,
        bundle,
        repeat,
    })
}

/// One `[[expect]]` entry: a known figure, of a phase that exists, that the
/// scenario can evaluate (its probe enabled, its workload driven).
fn validate_expect(i: usize, e: RawExpect, phases: &[Phase], probes: &ProbeSpec) -> V<Expect> {
    if e.figure.get_ref().trim().is_empty() {
        return Err(bad(
            e.figure.span(),
            format!("expect[{i}].figure"),
            "expected a figure name",
        ));
    }
    if let Err(fe) = crate::report::parse_figure(e.figure.get_ref()) {
        return Err(Invalid {
            hint: Some("figure names are listed in docs/FIGURES.md".into()),
            ..bad(
                e.figure.span(),
                format!("expect[{i}].figure"),
                fe.to_string(),
            )
        });
    }
    if let Some(p) = &e.phase {
        if !phases.iter().any(|ph| &ph.name == p.get_ref()) {
            let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
            return Err(Invalid {
                hint: super::error::did_you_mean(p.get_ref(), &names)
                    .or_else(|| Some(format!("phases are: {}", names.join(", ")))),
                ..bad(
                    p.span(),
                    format!("expect[{i}].phase"),
                    format!("no phase named {:?}", p.get_ref()),
                )
            });
        }
    }
    if !e.value.is_finite() {
        return Err(bad(
            e.figure.span(),
            format!("expect[{i}].value"),
            "expected a finite number",
        ));
    }
    // A probe figure of a probe that is not enabled could never be
    // evaluated either.
    let family = e.figure.get_ref().split(['.', ':']).next().unwrap_or("");
    if let Some(k) = ProbeKind::ALL.iter().find(|k| k.name() == family) {
        if !probes.enable.contains(k) {
            return Err(Invalid {
                hint: Some(format!(
                    "add \"{family}\" to [probes] enable, or drop this expectation"
                )),
                ..bad(
                    e.figure.span(),
                    format!("expect[{i}].figure"),
                    format!(
                        "{} can never be evaluated: the {family} probe is not enabled",
                        e.figure.get_ref()
                    ),
                )
            });
        }
    }
    // A load figure of a workload the phase (or, without a phase, the
    // whole run) never drives could never be evaluated: refuse it now.
    if let Some(w) = e
        .figure
        .get_ref()
        .strip_prefix("load.")
        .and_then(|r| r.split('.').next())
    {
        let drives = |l: &PhaseLoad| match w {
            "rpc" => l.rpc.is_some(),
            "tx" => l.tx.is_some(),
            "sync" => l.sync.is_some(),
            "compaction" => l.compaction.is_some(),
            _ => true,
        };
        let (ok, scope) = match &e.phase {
            Some(p) => (
                phases
                    .iter()
                    .any(|ph| &ph.name == p.get_ref() && drives(&ph.load)),
                format!("phase {:?} runs no {w} load", p.get_ref()),
            ),
            None => (
                phases.iter().any(|ph| drives(&ph.load)),
                format!("no phase runs {w} load"),
            ),
        };
        if !ok {
            return Err(Invalid {
                hint: Some(format!(
                    "add [phase.load.{w}] to that phase, or expect a figure of a workload it runs"
                )),
                ..bad(
                    e.figure.span(),
                    format!("expect[{i}].figure"),
                    format!("{} can never be evaluated: {scope}", e.figure.get_ref()),
                )
            });
        }
    }
    Ok(Expect {
        figure: e.figure.into_inner(),
        phase: e.phase.map(Spanned::into_inner),
        op: e.op,
        value: e.value,
        why: e.why,
        stat: e.stat,
    })
}

/// `[run] repeat`: 1 to [`MAX_REPEAT`] repetitions (default 1).
fn validate_repeat(r: Option<RawRun>) -> V<u32> {
    match r.and_then(|r| r.repeat) {
        None => Ok(1),
        Some(n) if (1..=MAX_REPEAT as u64).contains(n.get_ref()) => Ok(*n.get_ref() as u32),
        Some(n) => Err(Invalid {
            hint: Some(format!(
                "give 1 (one run) to {MAX_REPEAT}; 5 or more for a noise estimate (docs/STATISTICS.md)"
            )),
            ..bad(
                n.span(),
                "run.repeat",
                format!("expected 1 to {MAX_REPEAT} repetitions, found {}", n.get_ref()),
            )
        }),
    }
}

/// The most repetitions one `qfc-lab run` makes.
pub const MAX_REPEAT: u32 = 100;

/// `[bundle]`, with its defaults.
fn validate_bundle(b: Option<RawBundle>) -> V<BundleSpec> {
    Ok(match b {
        None => BundleSpec {
            dir: DEFAULT_BUNDLE_DIR.into(),
            metrics_interval_s: 1,
        },
        Some(b) => {
            let dir = match b.dir {
                None => DEFAULT_BUNDLE_DIR.to_string(),
                Some(d) if d.get_ref().trim().is_empty() => {
                    return Err(bad(d.span(), "bundle.dir", "expected a directory path"))
                }
                Some(d) => d.into_inner(),
            };
            BundleSpec {
                dir,
                metrics_interval_s: b.metrics_interval_s.unwrap_or(1),
            }
        }
    })
}

/// Default `[bundle] dir`.
pub const DEFAULT_BUNDLE_DIR: &str = "runs/{name}-{utc}";

fn validate_target(t: Option<RawTarget>) -> V<TargetSpec> {
    let Some(t) = t else {
        return Ok(TargetSpec::Local);
    };
    let kind = *t.kind.get_ref();
    // A table for another kind is a mistake worth naming.
    let stray = [
        ("qemu", TargetKind::Qemu, t.qemu.as_ref().map(|s| s.span())),
        (
            "container",
            TargetKind::Container,
            t.container.as_ref().map(|s| s.span()),
        ),
        ("ssh", TargetKind::Ssh, t.ssh.as_ref().map(|s| s.span())),
    ];
    for (name, k, span) in stray {
        if let Some(span) = span {
            if k != kind {
                return Err(Invalid {
                    hint: Some(format!("set kind = \"{name}\" or remove [target.{name}]")),
                    ..bad(
                        span,
                        format!("target.{name}"),
                        format!("[target.{name}] given but kind is not \"{name}\""),
                    )
                });
            }
        }
    }
    Ok(match kind {
        TargetKind::Local => TargetSpec::Local,
        TargetKind::Qemu => {
            let q = t.qemu.map(Spanned::into_inner);
            let q = q.as_ref();
            TargetSpec::Qemu(vm::QemuConfig {
                arch: q.and_then(|q| q.arch).unwrap_or(Arch::Aarch64),
                cpus: positive_u32(
                    &q.and_then(|q| q.cpus.clone()),
                    "target.qemu.cpus".into(),
                    2,
                )?,
                mem_mib: positive_u32(
                    &q.and_then(|q| q.mem_mib.clone()),
                    "target.qemu.mem_mib".into(),
                    2048,
                )?,
                accel: q.and_then(|q| q.accel).unwrap_or(Accel::Auto),
                boot_timeout_s: positive_u64(
                    &q.and_then(|q| q.boot_timeout_s.clone()),
                    "target.qemu.boot_timeout_s".into(),
                    180,
                )?,
            })
        }
        TargetKind::Container => TargetSpec::Container {
            image: t.container.and_then(|c| c.into_inner().image),
        },
        TargetKind::Ssh => {
            let Some(s) = t.ssh else {
                return Err(Invalid {
                    hint: Some("add [target.ssh] with at least host = \"...\"".into()),
                    ..bad(
                        t.kind.span(),
                        "target.ssh",
                        "missing: kind = \"ssh\" needs a [target.ssh] table",
                    )
                });
            };
            let s = s.into_inner();
            if s.host.get_ref().trim().is_empty() {
                return Err(bad(
                    s.host.span(),
                    "target.ssh.host",
                    "expected a host name or address",
                ));
            }
            // A value that starts with `-` would be read by ssh as an option
            // (`-oProxyCommand=...` runs a command here): never accepted.
            if s.host.get_ref().starts_with('-') {
                return Err(Invalid {
                    hint: Some("a host name or address never starts with '-'".into()),
                    ..bad(
                        s.host.span(),
                        "target.ssh.host",
                        format!(
                            "refused host {:?}: it would be read as an ssh option",
                            s.host.get_ref()
                        ),
                    )
                });
            }
            if let Some(u) = s
                .user
                .as_ref()
                .filter(|u| u.get_ref().starts_with('-') || u.get_ref().is_empty())
            {
                return Err(Invalid {
                    hint: Some("a user name never starts with '-'".into()),
                    ..bad(
                        u.span(),
                        "target.ssh.user",
                        format!(
                            "refused user {:?}: it would be read as an ssh option",
                            u.get_ref()
                        ),
                    )
                });
            }
            TargetSpec::Ssh(SshSpec {
                host: s.host.into_inner(),
                port: s.port.unwrap_or(22),
                user: s
                    .user
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| "root".into()),
                key: s.key.unwrap_or_else(|| "~/.ssh/id_ed25519".into()),
                known_hosts: s.known_hosts.unwrap_or_else(|| "~/.ssh/known_hosts".into()),
                workdir: s.workdir.unwrap_or_else(|| "/tmp/qfc-lab".into()),
            })
        }
    })
}

fn validate_node(n: Option<RawNode>) -> V<NodeSpec> {
    let Some(n) = n else {
        return Ok(NodeSpec {
            kind: NodeKind::Refnode,
            binary: None,
            dev: true,
            no_network: false,
            chain_id: 9000,
            log_level: LogLevel::Info,
            mine: false,
            threads: None,
            db_statistics: true,
            snapshot_interval_secs: 0,
            extra_args: Vec::new(),
            env: BTreeMap::new(),
            refnode: Some(RefnodeSpec {
                block_interval_ms: None,
                synced_commit: false,
                admin: true,
            }),
            seed_db: None,
        });
    };
    let kind = n
        .kind
        .as_ref()
        .map(|k| *k.get_ref())
        .unwrap_or(NodeKind::Refnode);
    let binary = match (&n.binary, kind) {
        (Some(b), _) if b.get_ref().trim().is_empty() => {
            return Err(bad(
                b.span(),
                "node.binary",
                "expected a path to a node binary",
            ))
        }
        (Some(b), _) => Some(PathBuf::from(b.get_ref())),
        (None, NodeKind::Refnode) => None,
        (None, NodeKind::QfcNode) => {
            let span = n.kind.as_ref().map(|k| k.span()).unwrap_or(0..0);
            return Err(Invalid {
                hint: Some(
                    "build qfc-node from qfc-core and set binary = \"/path/to/qfc-node\"".into(),
                ),
                ..bad(
                    span,
                    "node.binary",
                    "missing: kind = \"qfc-node\" needs a binary",
                )
            });
        }
    };
    let refnode = match (n.refnode, kind) {
        (Some(r), NodeKind::QfcNode) => {
            return Err(Invalid {
                hint: Some(
                    "remove [node.refnode]: its knobs exist only in the reference node".into(),
                ),
                ..bad(
                    r.span(),
                    "node.refnode",
                    "reference-node-only knobs given with kind = \"qfc-node\"",
                )
            })
        }
        (r, NodeKind::Refnode) => {
            let r = r.map(Spanned::into_inner);
            let interval = match r.as_ref().and_then(|r| r.block_interval_ms.clone()) {
                Some(s) if *s.get_ref() == 0 => {
                    return Err(bad(
                        s.span(),
                        "node.refnode.block_interval_ms",
                        "expected an integer > 0, found 0",
                    ))
                }
                s => s.map(Spanned::into_inner),
            };
            Some(RefnodeSpec {
                block_interval_ms: interval,
                synced_commit: r.as_ref().and_then(|r| r.synced_commit).unwrap_or(false),
                admin: r.as_ref().and_then(|r| r.admin).unwrap_or(true),
            })
        }
        (None, NodeKind::QfcNode) => None,
    };
    let threads = match n.threads {
        Some(t) if *t.get_ref() == 0 => {
            return Err(Invalid {
                hint: Some("leave threads out to let the node use one per CPU".into()),
                ..bad(t.span(), "node.threads", "expected an integer > 0, found 0")
            })
        }
        t => t.map(Spanned::into_inner),
    };
    let seed_db = match n.seed_db {
        None => None,
        Some(s) => Some(SeedDb {
            keys: positive_u64(&Some(s.keys), "node.seed_db.keys".into(), 0)?,
            value_bytes: positive_u64(&Some(s.value_bytes), "node.seed_db.value_bytes".into(), 0)?,
        }),
    };
    Ok(NodeSpec {
        kind,
        binary,
        dev: n.dev.unwrap_or(true),
        no_network: n.no_network.unwrap_or(false),
        chain_id: n.chain_id.unwrap_or(9000),
        log_level: n.log_level.unwrap_or(LogLevel::Info),
        mine: n.mine.unwrap_or(false),
        threads,
        db_statistics: n.db_statistics.unwrap_or(true),
        snapshot_interval_secs: n.snapshot_interval_secs.unwrap_or(0),
        extra_args: n.extra_args.unwrap_or_default(),
        env: n.env.unwrap_or_default(),
        refnode,
        seed_db,
    })
}

fn validate_probes(p: Option<RawProbes>) -> V<ProbeSpec> {
    let p = p.unwrap_or(RawProbes {
        enable: None,
        scope: None,
        oncpu_hz: None,
        offcpu_min_us: None,
        map_entries: None,
        unwind: None,
        ustack_bytes: None,
    });
    let enable = match p.enable {
        None => ProbeKind::ALL.to_vec(),
        Some(e) => {
            let span = e.span();
            let mut v = e.into_inner();
            let n = v.len();
            v.sort();
            v.dedup();
            if v.len() != n {
                return Err(bad(span, "probes.enable", "a probe is listed twice"));
            }
            v
        }
    };
    Ok(ProbeSpec {
        enable,
        scope: p.scope.unwrap_or(ProbeScope::Target),
        oncpu_hz: positive_u32(&p.oncpu_hz, "probes.oncpu_hz".into(), 99)?,
        offcpu_min_us: p.offcpu_min_us.unwrap_or(1),
        map_entries: positive_u32(&p.map_entries, "probes.map_entries".into(), 10240)?,
        unwind: p.unwind.unwrap_or_default(),
        ustack_bytes: ustack_bytes(&p.ustack_bytes)?,
    })
}

/// `probes.ustack_bytes`: whole pages, from one page to the probe's maximum.
fn ustack_bytes(v: &Option<Spanned<u32>>) -> V<u32> {
    use probes_common::ustack::{ustack_bytes_ok, USTACK_MAX, USTACK_PAGE};
    let Some(s) = v else {
        return Ok(probes::session::DEFAULT_USTACK_BYTES);
    };
    let b = *s.get_ref();
    if ustack_bytes_ok(b) {
        return Ok(b);
    }
    let (page, max) = (USTACK_PAGE, USTACK_MAX);
    Err(Invalid {
        hint: Some(format!(
            "use a multiple of {page} from {page} to {max}; a stack deeper than the copy goes on along frame pointers where it can, and is counted as cut short by the copy size where it cannot"
        )),
        ..bad(
            s.span(),
            "probes.ustack_bytes",
            format!("{b} bytes is not a whole number of pages within the copy limit"),
        )
    })
}

fn validate_phase(i: usize, p: RawPhase, before: &[Phase]) -> V<Phase> {
    let f = |k: &str| format!("phase[{i}].{k}");
    if !valid_name(p.name.get_ref()) {
        return Err(Invalid {
            hint: Some("use letters, digits, '-' and '_' only (it names bundle folders)".into()),
            ..bad(
                p.name.span(),
                f("name"),
                format!("invalid phase name {:?}", p.name.get_ref()),
            )
        });
    }
    if before.iter().any(|b| &b.name == p.name.get_ref()) {
        return Err(Invalid {
            hint: Some("give every phase its own name".into()),
            ..bad(
                p.name.span(),
                f("name"),
                format!("duplicate phase name {:?}", p.name.get_ref()),
            )
        });
    }
    let duration_s = positive_u64(&Some(p.duration_s), f("duration_s"), 0)?;
    let load = match p.load {
        None => PhaseLoad::default(),
        Some(l) => validate_load(i, l)?,
    };
    Ok(Phase {
        name: p.name.into_inner(),
        duration_s,
        load,
    })
}

/// Where each field of a phase's load was written, by loadgen's field path
/// (`rpc.rate_per_s`, `rpc.steps[1].duration_s`), so that loadgen's
/// validator's errors point into the file.
#[derive(Default)]
struct LoadSpans(Vec<(String, Range<usize>)>);

impl LoadSpans {
    fn note<T>(&mut self, field: &str, v: &Option<Spanned<T>>) {
        if let Some(v) = v {
            self.0.push((field.to_string(), v.span()));
        }
    }

    /// The span of `field`, else of the closest enclosing field written
    /// (`rpc.mix` for a weight), else `fallback`.
    fn of(&self, field: &str, fallback: Range<usize>) -> Range<usize> {
        let mut f = field;
        loop {
            if let Some((_, span)) = self.0.iter().find(|(k, _)| k == f) {
                return span.clone();
            }
            match f.rfind(['.', '[']) {
                Some(i) => f = &f[..i],
                None => return fallback,
            }
        }
    }
}

/// Builds `[phase.load.*]` of phase `i` as `loadgen::PhaseLoad` with the
/// scenario's defaults, then runs loadgen's validator on it. What only the
/// file can get wrong (an unknown method name, an empty `steps` list) is
/// checked here; every range and rule between fields is loadgen's.
fn validate_load(i: usize, l: RawLoad) -> V<PhaseLoad> {
    let f = |k: &str| format!("phase[{i}].load.{k}");
    let mut spans = LoadSpans::default();
    let mut fallback = 0..0;
    let rpc = match l.rpc {
        None => None,
        Some(r) => {
            let mut mix = BTreeMap::new();
            for (method, w) in r.mix.unwrap_or_default() {
                let Some(m) = RpcMethod::from_name(&method) else {
                    let names: Vec<&str> = RpcMethod::ALL.iter().map(|m| m.name()).collect();
                    return Err(Invalid {
                        hint: super::error::did_you_mean(&method, &names),
                        ..bad(
                            w.span(),
                            f(&format!("rpc.mix.{method}")),
                            format!("unknown JSON-RPC method {method:?}"),
                        )
                    });
                };
                if fallback == (0..0) {
                    spans.0.push(("rpc.mix".into(), w.span()));
                    fallback = w.span();
                }
                mix.insert(m, w.into_inner());
            }
            if mix.is_empty() {
                mix.insert(RpcMethod::EthBlockNumber, 1);
            }
            spans.note("rpc.rate_per_s", &r.rate_per_s);
            spans.note("rpc.ramp_to_per_s", &r.ramp_to_per_s);
            spans.note("rpc.steps", &r.steps);
            spans.note("rpc.concurrency", &r.concurrency);
            spans.note("rpc.timeout_ms", &r.timeout_ms);
            let mut steps = Vec::new();
            if let Some(st) = &r.steps {
                if st.get_ref().is_empty() {
                    return Err(bad(
                        st.span(),
                        f("rpc.steps"),
                        "expected at least one { duration_s, rate_per_s }",
                    ));
                }
                for (k, x) in st.get_ref().iter().enumerate() {
                    let d = format!("rpc.steps[{k}].duration_s");
                    let r = format!("rpc.steps[{k}].rate_per_s");
                    spans.note(&d, &Some(x.duration_s.clone()));
                    spans.note(&r, &Some(x.rate_per_s.clone()));
                    steps.push(RateStep {
                        duration_s: *x.duration_s.get_ref(),
                        rate_per_s: *x.rate_per_s.get_ref(),
                    });
                }
            }
            Some(RpcLoad {
                model: r.model.unwrap_or(LoadModel::Open),
                // Without a rate, a stepped phase starts at its first step's.
                rate_per_s: match (&r.rate_per_s, steps.first()) {
                    (Some(v), _) => *v.get_ref(),
                    (None, Some(first)) => first.rate_per_s,
                    (None, None) => 100.0,
                },
                ramp_to_per_s: r.ramp_to_per_s.map(Spanned::into_inner),
                steps,
                concurrency: r.concurrency.map_or(16, Spanned::into_inner),
                timeout_ms: r.timeout_ms.map_or(5000, Spanned::into_inner),
                mix,
            })
        }
    };
    let tx = l.tx.map(|t| {
        spans.note("tx.rate_per_s", &t.rate_per_s);
        spans.note("tx.accounts", &t.accounts);
        spans.note("tx.sample_receipts", &t.sample_receipts);
        spans.note("tx.timeout_ms", &t.timeout_ms);
        TxLoad {
            rate_per_s: t.rate_per_s.map_or(100.0, Spanned::into_inner),
            accounts: t.accounts.map_or(16, Spanned::into_inner),
            sample_receipts: t.sample_receipts.map_or(0.01, Spanned::into_inner),
            timeout_ms: t.timeout_ms.map_or(5000, Spanned::into_inner),
            closed: false,
        }
    });
    let sync = l.sync.map(|s| {
        spans.note("sync.peers", &s.peers);
        spans.note("sync.rate_per_s", &s.rate_per_s);
        spans.note("sync.timeout_ms", &s.timeout_ms);
        SyncLoad {
            peers: s.peers.map_or(8, Spanned::into_inner),
            rate_per_s: s.rate_per_s.map_or(50.0, Spanned::into_inner),
            request: s.request.unwrap_or(SyncRequestKind::Range),
            timeout_ms: s.timeout_ms.map_or(30_000, Spanned::into_inner),
        }
    });
    let compaction = l.compaction.map(|c| {
        spans.note("compaction.flood_mib", &c.flood_mib);
        CompactionLoad {
            method: c.method.unwrap_or(CompactionMethod::Auto),
            flood_mib: c.flood_mib.map_or(256, Spanned::into_inner),
        }
    });
    let load = PhaseLoad {
        rpc,
        tx,
        sync,
        compaction,
    };
    load.check().map_err(|e| Invalid {
        span: spans.of(&e.field, fallback),
        field: f(&e.field),
        message: e.message,
        hint: e.hint,
    })?;
    Ok(load)
}
