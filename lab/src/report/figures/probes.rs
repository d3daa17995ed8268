//! The probe-cost family (issue 17): what the probes themselves cost in a
//! phase, from the `cost` of the phase's window in `probes/session.json`: runs
//! and run time of the eBPF programs (the kernel's BPF statistics), the probe
//! process's CPU time, and their share of the target's CPU time.

use std::collections::BTreeMap;

use super::entry::{missing, Ctx, Family, Fig, Figure, FigureRef};
use crate::report::evidence::PhaseEvidence;
use crate::report::inputs::{stats_refused, RunCost, WindowCost};
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "probes",
    title: "Probe cost (probes/session.json, `windows[].cost`; issue 17)",
    intro: r#"Measured in every window by the probe session itself: run counts and run times of its
eBPF programs from the kernel's BPF statistics (enabled for the session with
`BPF_ENABLE_STATS`), its own CPU time, and the CPU time of the target (the watched
process's `CLOCK_PROCESS_CPUTIME_ID`, not its children; a cgroup's `cpu.stat`
`usage_usec`; the whole machine's busy time in `/proc/stat` for `scope = "system"`).
Selectors: `probe` (`fsync`, `bio`, `offcpu`, `writepath`, `oncpu`, and `scope`, the
process-tree bookkeeping) or `program` (a program name of the object, e.g.
`fdatasync_enter`, `writepath_exit_btf`); without a selector, every program. If the kernel
refused the statistics, these figures cannot be evaluated and say why; they are never 0
for "not measured"."#,
    figures: &[
    Figure {
        name: "probes.runs",
        selectors: &["probe", "program"],
        unit: "runs",
        good: Direction::None,
        doc: "program runs in the phase: every hit of the attach point by any task, before the scope filter",
        eval: |f, p, _| Ok(runs(f, cost(p, true)?)?.0 as f64),
    },
    Figure {
        name: "probes.cost_ns_per_event",
        selectors: &["probe", "program"],
        unit: "ns",
        good: Direction::Lower,
        doc: "run time per program run (a syscall probe's entry and exit are two runs; per syscall, add them)",
        eval: cost_ns_per_event,
    },
    Figure {
        name: "probes.cpu_s",
        selectors: &["probe", "program"],
        unit: "s",
        good: Direction::Lower,
        doc: "CPU time in the programs; without a selector, plus the probe process's own CPU time",
        eval: cpu_s,
    },
    Figure {
        name: "probes.process_cpu_s",
        selectors: &[],
        unit: "s",
        good: Direction::Lower,
        doc: "CPU time of the probe process (draining, symbolization, rendering)",
        eval: |_, p, _| process_cpu_s(cost(p, false)?),
    },
    Figure {
        name: "probes.overhead_share",
        selectors: &[],
        unit: "%",
        good: Direction::Lower,
        doc: "**upper bound** of the probes' cost: (run time of every program + probe process CPU) / target CPU time. The kernel counts runs of every task hitting the attach points, and the run time of programs that run in the target's context is also inside the target's CPU time",
        eval: overhead_share,
    },
    ],
    notes: "",
};

/// The probes' cost in this phase, from the `cost` of the phase's window in
/// `probes/session.json`; `bpf` when the figure needs the kernel's BPF statistics
/// (every one but `probes.process_cpu_s`), which must then have run.
fn cost(p: &PhaseEvidence, bpf: bool) -> Result<&WindowCost, String> {
    let c = p.probe_cost.as_ref().ok_or_else(|| {
        if p.missing.contains_key("session") {
            missing(p, "session")
        } else {
            "probes/session.json records no probe cost for this phase (a probe session older than issue 17)".to_string()
        }
    })?;
    if let Some(reason) = stats_refused(&c.bpf_stats) {
        if bpf {
            return Err(format!("the kernel's BPF statistics did not run: {reason}"));
        }
    }
    Ok(c)
}

/// (runs, run time in ns) of `{program=...}`, of `{probe=...}` (all its
/// programs), or of every probe; naming both is an error.
fn runs(f: &FigureRef, c: &WindowCost) -> Result<(u64, u64), String> {
    match (f.sel("program"), f.sel("probe")) {
        (Some(_), Some(_)) => Err(format!(
            "{} takes {{probe=...}} or {{program=...}}, not both",
            f.base
        )),
        (Some(name), None) => c
            .programs
            .get(name)
            .map(|r| (r.runs, r.run_time_ns))
            .ok_or_else(|| {
                format!(
                    "no eBPF program {name} was loaded (loaded: {})",
                    keys(&c.programs)
                )
            }),
        (None, Some(name)) => c
            .probes
            .get(name)
            .map(|r| (r.runs, r.run_time_ns))
            .ok_or_else(|| {
                format!(
                    "no probe {name} was attached (attached: {})",
                    keys(&c.probes)
                )
            }),
        (None, None) => Ok(c
            .probes
            .values()
            .fold((0, 0), |a, r| (a.0 + r.runs, a.1 + r.run_time_ns))),
    }
}

/// Run time per run: a syscall probe's entry and exit are two runs.
fn cost_ns_per_event(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let (n, ns) = runs(f, cost(p, true)?)?;
    if n == 0 {
        Err("the programs did not run in this phase".into())
    } else {
        Ok(ns as f64 / n as f64)
    }
}

/// CPU time in the programs; without a selector, plus the probe process's own.
fn cpu_s(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let c = cost(p, true)?;
    let (_, ns) = runs(f, c)?;
    let own = if f.sel("probe").is_none() && f.sel("program").is_none() {
        process_cpu_s(c)?
    } else {
        0.0
    };
    Ok(ns as f64 / 1e9 + own)
}

fn process_cpu_s(c: &WindowCost) -> Fig {
    Ok(c.probe_process_cpu_s)
}

/// The probe session's own upper bound: (BPF run time + probe process CPU) /
/// target CPU, or why the target's CPU time is missing.
fn overhead_share(_: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let c = cost(p, true)?;
    c.overhead_share
        .map(|s| 100.0 * s)
        .ok_or_else(|| match c.target_cpu_s {
            None => format!(
                "the CPU time of the target ({}) could not be read",
                c.target
            ),
            Some(t) if t <= 0.0 => "the target used no CPU in this phase".into(),
            Some(_) => "the overhead share is not recorded".into(),
        })
}

fn keys(m: &BTreeMap<String, RunCost>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::eval_in;

    fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
        eval_in(&[&FAMILY], name, p, ctx)
    }

    fn cost(state: &str) -> WindowCost {
        use crate::report::inputs::StatsState;
        WindowCost {
            bpf_stats: if state == "enabled" {
                StatsState::Enabled {
                    how: "BPF_ENABLE_STATS".into(),
                }
            } else {
                StatsState::Refused {
                    reason: "EPERM".into(),
                }
            },
            programs: [
                ("fdatasync_enter".into(), RunCost::new(500, 50_000)),
                ("fsync_exit".into(), RunCost::new(500, 100_000)),
            ]
            .into(),
            probes: [("fsync".into(), RunCost::new(1000, 150_000))].into(),
            bpf_cpu_s: Some(0.00015),
            probe_process_cpu_s: 0.01,
            target_cpu_s: Some(1.0),
            target: "process 1".into(),
            overhead_share: Some(0.01015),
        }
    }

    #[test]
    fn probe_cost_figures() {
        let p = PhaseEvidence {
            probe_cost: Some(cost("enabled")),
            ..Default::default()
        };
        let e = |n: &str| eval_name(n, &p, &Ctx::default());
        assert_eq!(e("probes.runs{program=fdatasync_enter}"), Ok(500.0));
        assert_eq!(
            e("probes.cost_ns_per_event{program=fdatasync_enter}"),
            Ok(100.0)
        );
        assert_eq!(e("probes.cost_ns_per_event{probe=fsync}"), Ok(150.0));
        assert_eq!(e("probes.cpu_s{probe=fsync}"), Ok(0.00015));
        assert!((e("probes.cpu_s").unwrap() - 0.01015).abs() < 1e-12);
        assert!((e("probes.overhead_share").unwrap() - 1.015).abs() < 1e-9);
        assert!(e("probes.runs{probe=bio}")
            .unwrap_err()
            .contains("attached: fsync"));
        let refused = PhaseEvidence {
            probe_cost: Some(cost("refused")),
            ..Default::default()
        };
        let r = eval_name("probes.overhead_share", &refused, &Ctx::default()).unwrap_err();
        assert!(r.contains("did not run: EPERM"), "{r}");
        assert!(eval_name("probes.runs", &refused, &Ctx::default()).is_err());
        let none = eval_name("probes.runs", &PhaseEvidence::default(), &Ctx::default());
        assert!(none.unwrap_err().contains("no probe cost"));
    }
}
