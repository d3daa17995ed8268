//! The one clock of a run: `CLOCK_MONOTONIC` in nanoseconds, the clock of
//! `bpf_ktime_get_ns`, so that phase boundaries, probe snapshots and load
//! samples line up. Wall-clock time is metadata only. The monotonic reading
//! itself is `probes_common::clock`, shared with `loadgen` and `probes`.

/// Now on `CLOCK_MONOTONIC`, in nanoseconds (the workspace's one function).
pub use probes_common::clock::monotonic_ns;

/// Wall-clock now, RFC 3339 UTC.
pub fn utc_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Wall-clock now for directory names: `20261127T190000Z`.
pub fn utc_compact() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}
