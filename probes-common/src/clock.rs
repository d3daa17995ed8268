//! The one clock of a run: `CLOCK_MONOTONIC` in nanoseconds, the clock of the
//! kernel programs' `bpf_ktime_get_ns`, so that phase boundaries, probe
//! snapshots and load samples line up. `lab`, `loadgen` and `probes` all read
//! it here (the `clock` feature, std only); wall-clock time is metadata only.

use nix::time::{clock_gettime, ClockId};

/// Now on `CLOCK_MONOTONIC`, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux: clock_gettime can only fail
    // for an unknown clock id or a bad pointer, neither possible here.
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always readable");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_ns_advances_with_a_sleep() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = monotonic_ns();
        assert!(b >= a + 20_000_000, "{a} -> {b}");
        // The same clock as std's Instant on Linux: within a few ms of each other's
        // elapsed time.
        let (i, n) = (std::time::Instant::now(), monotonic_ns());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (di, dn) = (i.elapsed().as_nanos() as u64, monotonic_ns() - n);
        assert!(di.abs_diff(dn) < 2_000_000, "{di} vs {dn}");
    }
}
