//! The probes' own cost, measured in every window: per program run count and
//! run time from the kernel's BPF statistics, the probe process's own CPU
//! time, the watched target's CPU time, and the derived overhead share.
//!
//! Statistics are enabled for the session with `BPF_ENABLE_STATS`
//! (`BPF_STATS_RUN_TIME`, kernel >= 5.8): the kernel keeps them on while the
//! returned descriptor is open, so a crashed session cannot leave them on. If
//! the syscall is refused but `kernel.bpf_stats_enabled` is already 1, the
//! counters run anyway and are used. Otherwise the window says that the
//! kernel refused and why: it never reports zero for an unmeasured cost.
//!
//! The counters are cumulative per program since load; a window's cost is the
//! difference between two snapshots taken at its boundaries (right after the
//! phase-slot flip, on the same `CLOCK_MONOTONIC` instant as the window).
//!
//! `overhead_share` = (BPF run time of all programs + the probe process's
//! CPU time) / the target's CPU time, over the window. It is an **upper
//! bound** of the cost to the target: the kernel counts the runs of every
//! task that hits a tracepoint (before the scope filter rejects it), not
//! just the target's, and the probe process's CPU includes rendering the
//! previous window. BPF run time excludes the tracepoint's own entry cost
//! (the record, the call), which bpf_stats cannot see.
use std::{collections::BTreeMap, os::fd::OwnedFd, path::PathBuf};

use aya::Ebpf;

/// Where the target's CPU time comes from.
#[derive(Debug, Clone)]
pub enum TargetCpu {
    /// A process: `CLOCK_PROCESS_CPUTIME_ID` of its tgid through
    /// `clock_getcpuclockid` (all its threads, ns resolution; its child
    /// processes are not included).
    Process(u32),
    /// A cgroup v2 directory: `usage_usec` of its `cpu.stat` (descendants
    /// included).
    Cgroup(PathBuf),
    /// The whole machine: busy time of `/proc/stat` (USER_HZ ticks).
    System,
}

impl TargetCpu {
    /// What the figure covers, for the outputs.
    pub fn describe(&self) -> String {
        match self {
            Self::Process(p) => format!("process {p} (all its threads, not its children)"),
            Self::Cgroup(d) => format!("cgroup {} (cpu.stat usage_usec)", d.display()),
            Self::System => "the whole machine (/proc/stat busy time)".into(),
        }
    }

    /// CPU time so far, in ns; `None` if it cannot be read (the process
    /// exited, the cgroup was removed).
    pub fn read_ns(&self) -> Option<u64> {
        match self {
            Self::Process(pid) => process_cpu_ns(*pid),
            Self::Cgroup(dir) => {
                let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
                parse_cpu_stat_usage_ns(&text)
            }
            Self::System => {
                let text = std::fs::read_to_string("/proc/stat").ok()?;
                parse_proc_stat_busy_ns(&text, clock_ticks_per_s())
            }
        }
    }
}

fn clock_ticks_per_s() -> u64 {
    // SAFETY: no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: valid out pointer.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// This process's CPU time (user + system, all threads), in ns.
pub fn self_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `usage_usec` of a cgroup v2 `cpu.stat`, in ns.
pub fn parse_cpu_stat_usage_ns(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us * 1000)
}

/// Busy time of the `cpu` line of `/proc/stat` (user, nice, system, irq,
/// softirq, steal; not idle or iowait), in ns.
pub fn parse_proc_stat_busy_ns(text: &str, ticks_per_s: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let ticks = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some(ticks * (1_000_000_000 / ticks_per_s.max(1)))
}

/// The probe a program belongs to: the part of its name before the first
/// `_` (`writepath_exit_tp` -> `writepath`), `fdatasync_*` -> `fsync`,
/// `scope_*` -> `scope` (the process-tree bookkeeping).
pub fn probe_of(program: &str) -> &str {
    let head = program.split('_').next().unwrap_or(program);
    if head == "fdatasync" {
        "fsync"
    } else {
        head
    }
}

/// Whether the kernel's BPF statistics ran, a program's runs and run time, and
/// the probes' cost over one window: written into `session.json`, so their one
/// definition is the bundle schema's.
pub use bundle_schema::probes::{RunCost, StatsState, WindowCost};

#[derive(Debug, Clone, Default)]
struct Snapshot {
    programs: BTreeMap<String, (u64, u64)>,
    self_ns: u64,
    target_ns: Option<u64>,
}

/// Takes the snapshots and computes window costs. Hold it for the whole
/// session: dropping it turns the statistics off (if this session turned
/// them on).
pub struct CostMeter {
    _stats_fd: Option<OwnedFd>,
    state: StatsState,
    target: TargetCpu,
    last: Snapshot,
    total: Option<WindowCost>,
}

impl CostMeter {
    /// Enables the statistics (or records the refusal) and takes the first
    /// snapshot. Call it after every program is loaded and attached.
    pub fn start(ebpf: &Ebpf, target: TargetCpu) -> Self {
        let (fd, state) = enable();
        let mut m = Self {
            _stats_fd: fd,
            state,
            target,
            last: Snapshot::default(),
            total: None,
        };
        m.last = m.snapshot(ebpf);
        m
    }

    /// Whether the statistics run.
    pub fn state(&self) -> &StatsState {
        &self.state
    }

    fn snapshot(&self, ebpf: &Ebpf) -> Snapshot {
        let mut programs = BTreeMap::new();
        if matches!(self.state, StatsState::Enabled { .. }) {
            for (name, p) in ebpf.programs() {
                // Not loaded (probe not selected): no info, skipped.
                if let Ok(info) = p.info() {
                    programs.insert(
                        name.to_owned(),
                        (info.run_count(), info.run_time().as_nanos() as u64),
                    );
                }
            }
        }
        Snapshot {
            programs,
            self_ns: self_cpu_ns(),
            target_ns: self.target.read_ns(),
        }
    }

    /// The cost since the previous call (or since `start`), and a new
    /// baseline.
    pub fn window(&mut self, ebpf: &Ebpf) -> WindowCost {
        let now = self.snapshot(ebpf);
        let c = self.diff(&self.last, &now);
        self.last = now;
        c
    }

    /// Like [`window`](Self::window), and adds the window to the session
    /// total.
    pub fn window_counted(&mut self, ebpf: &Ebpf) -> WindowCost {
        let c = self.window(ebpf);
        self.total = Some(match self.total.take() {
            None => c.clone(),
            Some(t) => sum(&t, &c),
        });
        c
    }

    /// The sum of the counted windows.
    pub fn total(&self) -> Option<&WindowCost> {
        self.total.as_ref()
    }

    fn diff(&self, a: &Snapshot, b: &Snapshot) -> WindowCost {
        let mut programs = BTreeMap::new();
        let mut probes: BTreeMap<String, RunCost> = BTreeMap::new();
        for (name, (runs, ns)) in &b.programs {
            let (r0, n0) = a.programs.get(name).copied().unwrap_or((0, 0));
            let c = RunCost::new(runs.saturating_sub(r0), ns.saturating_sub(n0));
            probes.entry(probe_of(name).to_owned()).or_default().add(&c);
            programs.insert(name.clone(), c);
        }
        let enabled = matches!(self.state, StatsState::Enabled { .. });
        let bpf_cpu_s =
            enabled.then(|| programs.values().map(|c| c.run_time_ns).sum::<u64>() as f64 / 1e9);
        let target_cpu_s = match (a.target_ns, b.target_ns) {
            (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / 1e9),
            _ => None,
        };
        let probe_process_cpu_s = b.self_ns.saturating_sub(a.self_ns) as f64 / 1e9;
        WindowCost {
            bpf_stats: self.state.clone(),
            programs,
            probes,
            bpf_cpu_s,
            probe_process_cpu_s,
            target_cpu_s,
            target: self.target.describe(),
            overhead_share: share(bpf_cpu_s, probe_process_cpu_s, target_cpu_s),
        }
    }
}

fn share(bpf_s: Option<f64>, self_s: f64, target_s: Option<f64>) -> Option<f64> {
    match (bpf_s, target_s) {
        (Some(b), Some(t)) if t > 0.0 => Some((b + self_s) / t),
        _ => None,
    }
}

/// Sum of two window costs (the session total).
pub fn sum(a: &WindowCost, b: &WindowCost) -> WindowCost {
    let mut programs = a.programs.clone();
    for (k, v) in &b.programs {
        programs.entry(k.clone()).or_default().add(v);
    }
    let mut probes = a.probes.clone();
    for (k, v) in &b.probes {
        probes.entry(k.clone()).or_default().add(v);
    }
    let opt_add = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    let bpf_cpu_s = opt_add(a.bpf_cpu_s, b.bpf_cpu_s);
    let target_cpu_s = opt_add(a.target_cpu_s, b.target_cpu_s);
    let probe_process_cpu_s = a.probe_process_cpu_s + b.probe_process_cpu_s;
    WindowCost {
        bpf_stats: b.bpf_stats.clone(),
        programs,
        probes,
        bpf_cpu_s,
        probe_process_cpu_s,
        target_cpu_s,
        target: b.target.clone(),
        overhead_share: share(bpf_cpu_s, probe_process_cpu_s, target_cpu_s),
    }
}

fn sysctl_on() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

fn enable() -> (Option<OwnedFd>, StatsState) {
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => (
            Some(fd),
            StatsState::Enabled {
                how: "BPF_ENABLE_STATS (BPF_STATS_RUN_TIME), held for the session".into(),
            },
        ),
        Err(e) if sysctl_on() => {
            tracing::debug!(error = %e, "BPF_ENABLE_STATS refused; kernel.bpf_stats_enabled is 1");
            (
                None,
                StatsState::Enabled {
                    how: format!(
                        "sysctl kernel.bpf_stats_enabled=1 (BPF_ENABLE_STATS refused: {e})"
                    ),
                },
            )
        }
        Err(e) => (
            None,
            StatsState::Refused {
                reason: format!(
                    "the kernel refused BPF_ENABLE_STATS ({e}) and kernel.bpf_stats_enabled is 0: \
                     the programs' cost is not measured; run as root on kernel >= 5.8, or set \
                     the sysctl before the run"
                ),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_map_to_probes() {
        assert_eq!(probe_of("fsync_enter"), "fsync");
        assert_eq!(probe_of("fdatasync_enter"), "fsync");
        assert_eq!(probe_of("writepath_exit_tp"), "writepath");
        assert_eq!(probe_of("bio_issue"), "bio");
        assert_eq!(probe_of("scope_newtask"), "scope");
        assert_eq!(probe_of("oncpu"), "oncpu");
    }

    #[test]
    fn cpu_sources_parse() {
        assert_eq!(
            parse_cpu_stat_usage_ns("usage_usec 1500\nuser_usec 1000\n"),
            Some(1_500_000)
        );
        assert_eq!(parse_cpu_stat_usage_ns("user_usec 1\n"), None);
        // user nice system idle iowait irq softirq steal
        let s = "cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(
            parse_proc_stat_busy_ns(s, 100),
            Some((10 + 1 + 5 + 2 + 3 + 4) * 10_000_000)
        );
    }

    #[test]
    fn window_difference_and_share() {
        let m = CostMeter {
            _stats_fd: None,
            state: StatsState::Enabled { how: "test".into() },
            target: TargetCpu::System,
            last: Snapshot::default(),
            total: None,
        };
        let a = Snapshot {
            programs: [("fsync_enter".to_owned(), (10, 1000))].into(),
            self_ns: 1_000_000,
            target_ns: Some(0),
        };
        let b = Snapshot {
            programs: [
                ("fsync_enter".to_owned(), (510, 51_000)),
                ("fsync_exit".to_owned(), (500, 100_000)),
            ]
            .into(),
            self_ns: 11_000_000,
            target_ns: Some(1_000_000_000),
        };
        let c = m.diff(&a, &b);
        assert_eq!(c.programs["fsync_enter"].runs, 500);
        assert_eq!(c.programs["fsync_enter"].ns_per_event, Some(100.0));
        assert_eq!(c.probes["fsync"].runs, 1000);
        assert_eq!(c.probes["fsync"].run_time_ns, 150_000);
        let share = c.overhead_share.unwrap();
        assert!((share - (150_000.0 + 10_000_000.0) / 1e9).abs() < 1e-12);
        let t = sum(&c, &c);
        assert_eq!(t.probes["fsync"].runs, 2000);
        assert!((t.overhead_share.unwrap() - share).abs() < 1e-12);
    }

    #[test]
    fn refused_stats_give_no_figure() {
        let m = CostMeter {
            _stats_fd: None,
            state: StatsState::Refused {
                reason: "EPERM".into(),
            },
            target: TargetCpu::System,
            last: Snapshot::default(),
            total: None,
        };
        let b = Snapshot {
            programs: BTreeMap::new(),
            self_ns: 5,
            target_ns: Some(10),
        };
        let c = m.diff(&Snapshot::default(), &b);
        assert!(c.bpf_cpu_s.is_none());
        assert!(c.overhead_share.is_none());
        assert!(c.programs.is_empty());
    }
}
