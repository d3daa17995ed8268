//! Where the writepath probe attaches, and `auto`: the cheapest attach point
//! that this kernel loads.
//!
//! Costs, cheapest first (measured in docs/BENCHMARKS.md, "Probe cost per
//! event and attach points": BPF time per write and dd wall time):
//! - `syscalls:sys_{enter,exit}_<name>` for the 8 write-path syscalls: the
//!   kernel runs the program only for them (it builds a perf trace record
//!   on each hit first), so every other syscall costs no program run.
//! - `tp_btf` `sys_enter`/`sys_exit` and raw tracepoints `sys_enter`/`sys_exit`:
//!   the program is called straight from the raw syscall tracepoint, with no
//!   trace record, but for every syscall of every task; it rejects by
//!   syscall number (entry) or by a missing in-flight entry (exit) first.
//!   With BPF statistics on (every session), each of those runs pays two
//!   clock reads, which is why they measured dearer than the per-syscall
//!   tracepoints on this host's dd, whose other 1 M syscalls are reads.
//! - fentry/fexit on `__x64_sys_write` and siblings: not offered. Both
//!   kernels here refuse them (this host: EPERM, ftrace's function-tracing
//!   side is closed, see docs/BENCHMARKS.md; the aarch64 guest's 6.1 has no
//!   ftrace direct calls on arm64, added in 6.4).
use aya::{programs::BtfTracePoint, Btf, Ebpf};
use serde::Serialize;

use crate::error::ProbeError;

/// Attach points of the writepath probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum WritepathAttach {
    /// The first of `syscalls`, `tp-btf`, `raw` that loads and attaches.
    #[default]
    Auto,
    /// BTF-typed raw tracepoints `tp_btf/sys_enter`, `tp_btf/sys_exit`.
    TpBtf,
    /// `raw_syscalls` `sys_enter`/`sys_exit` raw tracepoints: the program
    /// runs for every syscall of every task and filters by number and tgid.
    Raw,
    /// `syscalls:sys_{enter,exit}_<name>` for the 8 write-path syscalls: the
    /// program runs only for them.
    Syscalls,
}

impl WritepathAttach {
    /// The order `auto` tries.
    pub const AUTO_ORDER: [WritepathAttach; 3] = [Self::Syscalls, Self::TpBtf, Self::Raw];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::TpBtf => "tp-btf",
            Self::Raw => "raw",
            Self::Syscalls => "syscalls",
        }
    }
}

/// Which attach point the writepath probe uses, and what `auto` tried first
/// (recorded in `session.json`).
pub use bundle_schema::probes::{AttachReport, OncpuSampling};

/// Attaches the writepath programs at `mode` (trying in order for `Auto`).
/// `attach_one` attaches the programs of one fixed point (the session's
/// tracepoint helpers); the tp_btf point is handled here.
pub fn attach_writepath(
    ebpf: &mut Ebpf,
    mode: WritepathAttach,
    mut attach_one: impl FnMut(&mut Ebpf, WritepathAttach) -> Result<(), ProbeError>,
) -> Result<AttachReport, ProbeError> {
    let order: &[WritepathAttach] = if mode == WritepathAttach::Auto {
        &WritepathAttach::AUTO_ORDER
    } else {
        std::slice::from_ref(&mode)
    };
    let mut report = AttachReport::default();
    let mut last = None;
    for m in order {
        let r = match m {
            WritepathAttach::TpBtf => attach_tp_btf(ebpf),
            _ => attach_one(ebpf, *m),
        };
        match r {
            Ok(()) => {
                report.writepath = Some(m.name().to_string());
                return Ok(report);
            }
            Err(e) => {
                tracing::info!(attach = m.name(), error = %e, "writepath attach point refused");
                report.refused.push((m.name().to_owned(), e.to_string()));
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ProbeError::State("no writepath attach point to try".into())))
}

fn attach_tp_btf(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Attach {
        program: "writepath_enter_btf".into(),
        point: "tp_btf/sys_enter".into(),
        source: aya::programs::ProgramError::Btf(e),
    })?;
    let mut done: Vec<&str> = Vec::new();
    for (prog, tp) in [
        ("writepath_enter_btf", "sys_enter"),
        ("writepath_exit_btf", "sys_exit"),
    ] {
        let point = format!("tp_btf/{tp}");
        let r = (|| {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| ProbeError::map(prog, "program missing from the object"))?
                .try_into()
                .map_err(|e| attach_err(prog, &point, e))?;
            p.load(tp, &btf).map_err(|e| attach_err(prog, &point, e))?;
            p.attach().map_err(|e| attach_err(prog, &point, e))?;
            Ok(())
        })();
        if let Err(e) = r {
            // Leave nothing half-attached for the next attach point.
            for d in done.iter().chain(std::iter::once(&prog)) {
                if let Some(Ok(p)) = ebpf.program_mut(d).map(<&mut BtfTracePoint>::try_from) {
                    let _ = p.unload();
                }
            }
            return Err(e);
        }
        done.push(prog);
    }
    Ok(())
}

fn attach_err(program: &str, point: &str, source: aya::programs::ProgramError) -> ProbeError {
    ProbeError::Attach {
        program: program.to_owned(),
        point: point.to_owned(),
        source,
    }
}
