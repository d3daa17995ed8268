//! Stack-quality figures of one window (issue 12): the share of stacks that
//! reach a thread root, the share unwound by each method, why walks ended,
//! the lost stacks by site and cause (errno), and the user-stack copies
//! (count, cut short by the copy size, bytes per second). Weighted like the
//! flame graph they describe: samples on-CPU, µs off-CPU.
use std::collections::BTreeMap;

use probes_common::ustack::stack_err;

use crate::{
    snapshot::RawPhase,
    symbolize::{Frame, MAX_DEPTH},
    unwind::{StackEnd, USTACK_ID_BASE},
};

/// Outermost frames that start a thread: a frame-pointer walk that ends on
/// one of them is whole too. glibc's `start_thread` is the first user code
/// of a new thread (its unwind table marks it outermost on aarch64).
pub const THREAD_ROOTS: [&str; 8] = [
    "_start",
    "clone",
    "__clone",
    "clone3",
    "__clone3",
    "thread_start",
    "__GI___clone3",
    "start_thread",
];

/// How a user stack was unwound: frame pointers in the kernel, `.eh_frame`
/// on a copy, or a copy whose walk went on along frame pointers.
pub fn method(ustack: i32, end: Option<StackEnd>) -> &'static str {
    // A stack the stack map refused comes inline with the frame-pointer end.
    if ustack < USTACK_ID_BASE || end == Some(StackEnd::FramePointers) {
        "fp"
    } else if end == Some(StackEnd::CopyThenFramePointers) {
        "dwarf_then_fp"
    } else {
        "dwarf"
    }
}

/// Whether a user stack (leaf first) reaches a thread root: the unwind
/// table said so (`end`), or its outermost frame is a thread entry.
pub fn reaches_root(user: &[Frame], end: Option<StackEnd>) -> bool {
    end == Some(StackEnd::Root)
        || user
            .last()
            .is_some_and(|f| THREAD_ROOTS.contains(&f.name.as_str()))
}

/// Whether a user stack (leaf first, `depth` addresses walked) counts as cut
/// short in the truncated-stack share: a walk that hit the depth cap or
/// ends in an address outside every mapping; and a copied stack (`end` is
/// set) that does not reach a thread root. A copy whose walk went on along
/// frame pointers to a thread root is whole.
pub fn user_cut_short(user: &[Frame], depth: usize, end: Option<StackEnd>) -> bool {
    depth >= MAX_DEPTH
        || user.last().is_none_or(|l| !l.resolved)
        || (end.is_some() && !reaches_root(user, end))
}

/// The figures of one probe in one window, as `session.json` records them.
pub use bundle_schema::probes::StackQuality;

/// Accumulates [`StackQuality`] over a window's stacks.
#[derive(Default)]
pub struct QualityAcc {
    weight: u64,
    root: u64,
    methods: BTreeMap<&'static str, u64>,
    ends: BTreeMap<&'static str, u64>,
}

impl QualityAcc {
    /// Adds one stack of `weight` (no user stack at all: not counted).
    pub fn add(&mut self, weight: u64, ustack: i32, user: &[Frame], end: Option<StackEnd>) {
        if user.is_empty() && end.is_none() {
            return;
        }
        self.weight += weight;
        if reaches_root(user, end) {
            self.root += weight;
        }
        *self.methods.entry(method(ustack, end)).or_default() += weight;
        let end = end.unwrap_or(StackEnd::FramePointers);
        *self.ends.entry(end.name()).or_default() += weight;
    }

    /// The figures, with the window's copies (`copy`: 0 on-CPU, 1
    /// off-CPU) and lost stacks of `sites`.
    pub fn finish(self, raw: &RawPhase, sites: &[u32], copy: usize) -> StackQuality {
        let share = |n: u64| {
            if self.weight == 0 {
                0.0
            } else {
                n as f64 / self.weight as f64
            }
        };
        let secs = raw.end_ns.saturating_sub(raw.start_ns) as f64 / 1e9;
        let lost_stacks = sites
            .iter()
            .map(|s| {
                let causes = stack_err::CAUSE_NAMES
                    .iter()
                    .enumerate()
                    .map(|(c, name)| ((*name).to_owned(), raw.stack_errs[*s as usize][c]))
                    .collect();
                (stack_err::SITE_NAMES[*s as usize].to_owned(), causes)
            })
            .collect();
        let (c, cut, bytes, fallbacks) = raw.copy.get(copy).map_or((0, 0, 0, 0), |s| {
            (s.copies, s.cut_short, s.bytes, s.stack_map_fallbacks)
        });
        StackQuality {
            weight: self.weight,
            reached_root_share: share(self.root),
            method_share: self
                .methods
                .iter()
                .map(|(k, v)| ((*k).to_owned(), share(*v)))
                .collect(),
            ends: self
                .ends
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            lost_stacks,
            copies: c,
            copies_cut_short: cut,
            stack_map_fallbacks: fallbacks,
            bytes_copied: bytes,
            bytes_copied_per_s: if secs > 0.0 { bytes as f64 / secs } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Frame {
        Frame {
            name: name.into(),
            resolved: true,
        }
    }

    #[test]
    fn cut_short_by_depth_address_or_root() {
        let whole = [f("leaf"), f("main"), f("start_thread")];
        // A copy walked on along frame pointers to a thread root is whole.
        assert!(!user_cut_short(
            &whole,
            3,
            Some(StackEnd::CopyThenFramePointers)
        ));
        assert!(!user_cut_short(&whole[..2], 2, Some(StackEnd::Root)));
        // ...and cut short when the joined walk stops before one.
        assert!(user_cut_short(
            &whole[..2],
            2,
            Some(StackEnd::CopyThenFramePointers)
        ));
        assert!(user_cut_short(&whole[..2], 2, Some(StackEnd::CopySize)));
        assert!(user_cut_short(&whole[..2], 2, Some(StackEnd::NoUnwindInfo)));
        // Frame-pointer stacks (no `end`): the depth cap and garbage only.
        assert!(!user_cut_short(&whole[..2], 2, None));
        assert!(user_cut_short(&whole, MAX_DEPTH, None));
        let garbage = Frame {
            name: "[unknown]".into(),
            resolved: false,
        };
        assert!(user_cut_short(&[f("leaf"), garbage], 2, None));
        assert!(user_cut_short(&[], 0, None));
    }

    #[test]
    fn roots_by_table_or_by_name() {
        assert!(reaches_root(&[f("x")], Some(StackEnd::Root)));
        assert!(reaches_root(&[f("x"), f("clone3")], None));
        assert!(!reaches_root(&[f("x"), f("[libc.so.6]")], None));
        assert!(!reaches_root(&[f("x")], Some(StackEnd::CopySize)));
    }

    #[test]
    fn shares_are_weighted() {
        let mut a = QualityAcc::default();
        a.add(3, USTACK_ID_BASE, &[f("main")], Some(StackEnd::Root));
        a.add(1, 5, &[f("leaf")], None);
        a.add(7, -14, &[], None); // kernel thread: no user stack
        let q = a.finish(&RawPhase::default(), &[stack_err::ONCPU_USER], 0);
        assert_eq!(q.weight, 4);
        assert_eq!(q.reached_root_share, 0.75);
        assert_eq!(q.method_share["dwarf"], 0.75);
        assert_eq!(q.ends["frame_pointers"], 1);
        assert_eq!(q.lost_stacks["oncpu_user"]["EEXIST"], 0);
    }
}
