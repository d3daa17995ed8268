//! The off-CPU family: figures over `probes/<phase>/offcpu.folded` (weight =
//! microseconds off CPU): time off CPU, its share by wait reason or thread, and
//! the share spent on a disk-write stall path.

use regex::Regex;

use super::entry::{missing, pct, Ctx, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{PhaseEvidence, StackData};
use crate::report::folded::{classify_offcpu, is_disk_write_stall, Reason, Stack};
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "offcpu",
    title: "Off-CPU (probes/<phase>/offcpu.folded; weight = microseconds off CPU)",
    intro: "",
    figures: &[
        Figure {
            name: "offcpu.total_s",
            selectors: &["thread"],
            unit: "s",
            good: Direction::None,
            doc: "off-CPU time summed over threads",
            eval: total_s,
        },
        Figure {
            name: "offcpu.share",
            selectors: &["reason", "thread"],
            unit: "%",
            good: Direction::None,
            doc: "share of off-CPU time by wait reason, or on a thread",
            eval: share,
        },
        Figure {
            name: "offcpu.share_matching:<regex>",
            selectors: &[],
            unit: "%",
            good: Direction::None,
            doc: "share of off-CPU time in stacks with a frame matching the regex",
            eval: share_matching,
        },
        Figure {
            name: "offcpu.disk_write_stall",
            selectors: &[],
            unit: "%",
            good: Direction::Lower,
            doc: "share of off-CPU time on a disk-write stall path; 0 means there is none",
            eval: disk_write_stall,
        },
    ],
    notes: r#"Wait reasons (`reason=`), first match wins: `disk` (a disk-write stall path, `io_schedule`,
`blk_mq_*`, page/buffer locks, jbd2/ext4/xfs waits), `futex`, `network` (`tcp_recvmsg`,
`sk_wait_data`, socket receive), `poll` (`ep_poll`, `do_epoll_wait`, poll/select),
`sleep` (nanosleep, hrtimeouts), `other`.

A **disk-write stall path** is a stack through `fsync`/`fdatasync` (`do_fsync`,
`__x64_sys_fdatasync`, `__arm64_sys_fsync`, ...), `file_write_and_wait_range`,
`__filemap_fdatawait_range`, `folio_wait_writeback`/`wait_on_page_writeback`,
`jbd2_log_wait_commit`, `blkdev_issue_flush`, `submit_bio_wait`, `balance_dirty_pages`,
`ext4_sync_file`, `xfs_file_fsync`, or RocksDB's WAL sync (`SyncWAL`, `::Sync(`, `::Fsync(`)."#,
};

/// The off-CPU stacks, after checking that a `{thread=...}` can be honoured.
fn stacks<'a>(f: &FigureRef, p: &'a PhaseEvidence) -> Result<&'a StackData, String> {
    let s = p.offcpu.as_ref().ok_or_else(|| missing(p, "offcpu"))?;
    if f.sel("thread").is_some() && !s.has_threads {
        return Err("these off-CPU stacks carry no thread names".into());
    }
    Ok(s)
}

/// Whether a stack is on the `{thread=...}` of `f` (any stack without one).
fn on_thread(f: &FigureRef, x: &Stack) -> bool {
    match f.sel("thread") {
        Some(t) => x.thread.as_deref() == Some(t),
        None => true,
    }
}

fn total_s(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(f, p)?;
    let us: u64 = s
        .folded
        .stacks
        .iter()
        .filter(|x| on_thread(f, x))
        .map(|x| x.count)
        .sum();
    Ok(us as f64 / 1e6)
}

/// By `{reason=...}` (the first wait-reason rule that matches), on a
/// `{thread=...}`, or both; one of them is required.
fn share(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(f, p)?;
    let reason = f.sel("reason").and_then(Reason::from_name);
    let n: u64 = s
        .folded
        .stacks
        .iter()
        .filter(|x| on_thread(f, x))
        .filter(|x| reason.is_none_or(|r| classify_offcpu(&x.frames) == r))
        .map(|x| x.count)
        .sum();
    if reason.is_none() && f.sel("thread").is_none() {
        return Err("offcpu.share needs {reason=...} or {thread=...}".into());
    }
    pct(n as f64, s.folded.total() as f64, "off-CPU time")
}

fn share_matching(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(f, p)?;
    let re = Regex::new(f.pattern.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    pct(
        s.folded.matching(&re) as f64,
        s.folded.total() as f64,
        "off-CPU time",
    )
}

fn disk_write_stall(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(f, p)?;
    let n: u64 = s
        .folded
        .stacks
        .iter()
        .filter(|x| is_disk_write_stall(&x.frames))
        .map(|x| x.count)
        .sum();
    pct(n as f64, s.folded.total() as f64, "off-CPU time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::eval_in;

    fn eval_name(name: &str, p: &PhaseEvidence) -> Fig {
        eval_in(&[&FAMILY], name, p, &Ctx::default())
    }

    /// Known answer: 4 s off CPU, 1 s of it in fdatasync (a disk-write stall),
    /// 3 s in futex waits.
    #[test]
    fn time_and_reasons_of_known_stacks() {
        let folded = crate::report::folded::Folded::parse(
            "node;main;fdatasync;do_fsync_[k];file_write_and_wait_range_[k] 1000000\n\
             node;main;syscall;futex_wait_[k] 3000000\n",
            true,
        );
        let p = PhaseEvidence {
            offcpu: Some(StackData {
                folded,
                window_s: Some(1.0),
                has_threads: true,
                sample_hz: None,
            }),
            ..Default::default()
        };
        let f = |n: &str| eval_name(n, &p).unwrap();
        assert_eq!(f("offcpu.total_s"), 4.0);
        assert_eq!(f("offcpu.total_s{thread=other}"), 0.0);
        assert_eq!(f("offcpu.disk_write_stall"), 25.0);
        assert_eq!(f("offcpu.share{reason=disk}"), 25.0);
        assert_eq!(f("offcpu.share{reason=futex}"), 75.0);
        assert_eq!(f("offcpu.share_matching:futex"), 75.0);
        let e = eval_name("offcpu.share", &p).unwrap_err();
        assert!(e.contains("needs {reason=...}"), "{e}");
    }
}
