//! `timeline.json`: the run's events and phase windows on the spine's
//! `CLOCK_MONOTONIC`, written by `lab` (the spine) and read by the report.

use serde::{Deserialize, Serialize};

/// `timeline.json`: everything on `CLOCK_MONOTONIC` nanoseconds.
///
/// `clock`, `events`, and a window's `planned_s` and `completed` default when
/// absent: the report's fixture bundles (`lab/tests/data/report/*`) predate
/// them and hold only the phase windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timeline {
    /// The clock of every `*_ns` field (`CLOCK_MONOTONIC`).
    #[serde(default)]
    pub clock: String,
    /// Run events (node started, RPC ready, probes stopped, ...), in order.
    #[serde(default)]
    pub events: Vec<TimelineEvent>,
    /// The phase windows, in order.
    pub phases: Vec<PhaseWindow>,
}

/// One run event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEvent {
    pub t_ns: u64,
    pub what: String,
}

/// One phase window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhaseWindow {
    pub name: String,
    /// This machine's CLOCK_MONOTONIC, like every other `t_ns` here.
    pub start_ns: u64,
    /// The probe's own clock at the phase marker when the probes run on
    /// another kernel (QEMU guest, SSH host): the key into `probes/session.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_start_ns: Option<u64>,
    /// `None` while the phase runs (and in a bundle of a run that died in it).
    pub end_ns: Option<u64>,
    /// The scenario's duration of the phase, seconds.
    #[serde(default)]
    pub planned_s: u64,
    /// The phase ran to its end.
    #[serde(default)]
    pub completed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Timeline {
            clock: "CLOCK_MONOTONIC".into(),
            events: vec![TimelineEvent {
                t_ns: 5,
                what: "rpc ready".into(),
            }],
            phases: vec![
                PhaseWindow {
                    name: "warmup".into(),
                    start_ns: 10,
                    probe_start_ns: Some(7),
                    end_ns: Some(20),
                    planned_s: 1,
                    completed: true,
                },
                PhaseWindow {
                    name: "stress".into(),
                    start_ns: 20,
                    probe_start_ns: None,
                    end_ns: None,
                    planned_s: 2,
                    completed: false,
                },
            ],
        };
        let text = serde_json::to_string_pretty(&t).unwrap();
        assert!(!text.contains("probe_start_ns\": null"), "{text}");
        assert_eq!(serde_json::from_str::<Timeline>(&text).unwrap(), t);
    }
}
