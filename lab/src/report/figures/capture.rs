//! The capture-quality family: how complete the probes' evidence is
//! (`probes/session.json`, `context.json`): lost events, cut or lost stacks,
//! how stacks were unwound, and whether the target was emulated.

use super::entry::{missing, Ctx, Family, Fig, Figure, FigureRef};
use crate::report::evidence::PhaseEvidence;
use crate::report::inputs::StackQuality;
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "capture",
    title: "Capture quality (probes/session.json, context.json)",
    intro: "",
    figures: &[
    Figure {
        name: "capture.lost_events",
        selectors: &[],
        unit: "events",
        good: Direction::Lower,
        doc: "events the probes dropped in the phase",
        eval: |_, p, _| {
            p.lost_events
                .map(|v| v as f64)
                .ok_or_else(|| missing(p, "session"))
        },
    },
    Figure {
        name: "capture.truncated_stack_pct",
        selectors: &[],
        unit: "%",
        good: Direction::Lower,
        doc: "share of stacks cut short, the larger of on-CPU and off-CPU: a stack lost, a walk at the depth cap or ending outside every mapping, or a copied stack (`dwarf`, `auto`) that does not reach a thread root (a copy whose walk goes on along frame pointers to one is whole)",
        eval: |_, p, _| {
            p.truncated_stack_share.map(|v| v * 100.0).ok_or_else(|| {
                "probes/session.json gives no truncated-stack share for this phase".into()
            })
        },
    },
    Figure {
        name: "capture.root_reached_pct",
        selectors: &["probe"],
        unit: "%",
        good: Direction::Higher,
        doc: "selector `probe` = `oncpu` (default) or `offcpu`: share of stacks (samples on-CPU, time off-CPU) whose user stack reaches a thread root (`_start`, `clone`, `clone3`, `thread_start`)",
        eval: |f, p, _| quality(f, p).map(|(q, _)| q.reached_root_share * 100.0),
    },
    Figure {
        name: "capture.dwarf_unwound_pct",
        selectors: &["probe"],
        unit: "%",
        good: Direction::Higher,
        doc: "share of stacks unwound from `.eh_frame` (the rest by frame pointers)",
        eval: dwarf_unwound_pct,
    },
    Figure {
        name: "capture.lost_stacks",
        selectors: &["probe"],
        unit: "stacks",
        good: Direction::Lower,
        doc: "stacks lost (a `bpf_get_stackid` error other than EFAULT that no inline walk replaced, or a full ring buffer), user and kernel; by site and cause (errno) in `session.json` `windows[].stack_quality.<probe>.lost_stacks`",
        eval: lost_stacks,
    },
    Figure {
        name: "capture.stack_map_fallbacks",
        selectors: &["probe"],
        unit: "stacks",
        good: Direction::None,
        doc: "stacks the stack map refused (EEXIST, ENOMEM) that were kept: walked by frame pointers and sent inline instead",
        eval: |f, p, _| quality(f, p).map(|(q, _)| q.stack_map_fallbacks as f64),
    },
    Figure {
        name: "capture.stack_copies_cut_short",
        selectors: &["probe"],
        unit: "copies",
        good: Direction::Lower,
        doc: "user-stack copies whose walk ran past the copy size",
        eval: |f, p, _| quality(f, p).map(|(q, _)| q.copies_cut_short as f64),
    },
    Figure {
        name: "capture.stack_bytes_per_s",
        selectors: &["probe"],
        unit: "bytes/s",
        good: Direction::None,
        doc: "bytes of user stack copied per second",
        eval: |f, p, _| quality(f, p).map(|(q, _)| q.bytes_copied_per_s),
    },
    Figure {
        name: "capture.emulated",
        selectors: &[],
        unit: "0/1",
        good: Direction::None,
        doc: "1 when the target is emulated (QEMU TCG)",
        eval: emulated,
    },
    ],
    notes: "",
};

/// The stack quality of `{probe=...}` (default `oncpu`) in this phase: the
/// probe's `stack_quality` object in session.json (issue 12), and the probe name.
fn quality<'a>(f: &FigureRef, p: &'a PhaseEvidence) -> Result<(&'a StackQuality, String), String> {
    let probe = f.sel("probe").unwrap_or("oncpu");
    let q = p
        .stack_quality
        .as_ref()
        .and_then(|q| q.get(probe))
        .ok_or_else(|| {
            format!("probes/session.json gives no stack quality for {probe} in this phase (probe not run, or recorded before issue 12)")
        })?;
    Ok((q, probe.to_string()))
}

/// Stacks unwound from `.eh_frame`; 0 when the method share names no `dwarf`.
fn dwarf_unwound_pct(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let (q, _) = quality(f, p)?;
    Ok(q.method_share.get("dwarf").copied().unwrap_or(0.0) * 100.0)
}

/// `lost_stacks` is `{site: {cause: n}}`; EFAULT means the task had no user
/// stack to take (a kernel thread), not a loss, so it is left out.
fn lost_stacks(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let (q, _) = quality(f, p)?;
    Ok(q.lost_stacks
        .values()
        .flat_map(|c| c.iter())
        .filter(|(cause, _)| cause.as_str() != "EFAULT")
        .map(|(_, n)| *n as f64)
        .sum())
}

fn emulated(_: &FigureRef, _: &PhaseEvidence, ctx: &Ctx) -> Fig {
    ctx.emulated
        .map(|e| if e { 1.0 } else { 0.0 })
        .ok_or_else(|| {
            "neither context.json nor manifest.json says whether the target is emulated".into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::eval_in;

    fn eval_name(name: &str, p: &PhaseEvidence, ctx: &Ctx) -> Fig {
        eval_in(&[&FAMILY], name, p, ctx)
    }

    /// Issue 12: the stack-quality figures read session.json's
    /// `stack_quality` per probe; lost stacks exclude EFAULT (no stack).
    #[test]
    fn stack_quality_figures() {
        let mut p = PhaseEvidence::default();
        let e = eval_name("capture.root_reached_pct", &p, &Ctx::default()).unwrap_err();
        assert!(e.contains("no stack quality for oncpu"), "{e}");
        let on = StackQuality {
            reached_root_share: 0.97,
            method_share: [("dwarf".into(), 0.75), ("fp".into(), 0.25)].into(),
            lost_stacks: [
                (
                    "oncpu_user".into(),
                    [("EEXIST".into(), 2), ("EFAULT".into(), 40)].into(),
                ),
                ("oncpu_kernel".into(), [("ENOMEM".into(), 1)].into()),
            ]
            .into(),
            copies: 10,
            copies_cut_short: 3,
            stack_map_fallbacks: 5,
            bytes_copied_per_s: 4096.0,
            ..Default::default()
        };
        let off = StackQuality {
            reached_root_share: 0.5,
            method_share: [("fp".into(), 1.0)].into(),
            ..Default::default()
        };
        p.stack_quality = Some([("oncpu".into(), on), ("offcpu".into(), off)].into());
        let f = |n: &str| eval_name(n, &p, &Ctx::default()).unwrap();
        assert!((f("capture.root_reached_pct") - 97.0).abs() < 1e-9);
        assert!((f("capture.root_reached_pct{probe=offcpu}") - 50.0).abs() < 1e-9);
        assert_eq!(f("capture.dwarf_unwound_pct"), 75.0);
        assert_eq!(f("capture.dwarf_unwound_pct{probe=offcpu}"), 0.0);
        assert_eq!(f("capture.lost_stacks"), 3.0);
        assert_eq!(f("capture.stack_copies_cut_short"), 3.0);
        assert_eq!(f("capture.stack_map_fallbacks"), 5.0);
        assert_eq!(f("capture.stack_map_fallbacks{probe=offcpu}"), 0.0);
        assert_eq!(f("capture.stack_bytes_per_s"), 4096.0);
    }
}
