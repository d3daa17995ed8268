//! The one clock of a run: `CLOCK_MONOTONIC` in nanoseconds, the clock of
//! `bpf_ktime_get_ns`, so load samples line up with probe snapshots. The
//! reading is `probes_common::clock`; this module adds the `Instant` anchor.

use std::time::Instant;

/// Now on `CLOCK_MONOTONIC`, in nanoseconds (the workspace's one function).
pub use probes_common::clock::monotonic_ns;

/// Maps tokio/std `Instant`s (also CLOCK_MONOTONIC on Linux) to monotonic ns.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    instant: Instant,
    ns: u64,
}

impl Anchor {
    /// Pins an `Instant` to the monotonic clock now.
    pub fn now() -> Self {
        let instant = Instant::now();
        let ns = monotonic_ns();
        Self { instant, ns }
    }

    /// The `Instant` of the anchor.
    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// Monotonic ns of the anchor.
    pub fn ns(&self) -> u64 {
        self.ns
    }

    /// Monotonic ns of `t`.
    pub fn ns_of(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.ns + d.as_nanos() as u64,
            None => self
                .ns
                .saturating_sub(self.instant.duration_since(t).as_nanos() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_tracks_the_monotonic_clock() {
        let a = Anchor::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (i, ns) = (Instant::now(), monotonic_ns());
        let mapped = a.ns_of(i);
        assert!(mapped.abs_diff(ns) < 2_000_000, "{mapped} vs {ns}");
        assert!(mapped >= a.ns() + 20_000_000);
    }
}
