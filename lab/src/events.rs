//! Progress of a run as events over a channel to one UI: indicatif bars for
//! people, or one JSON object per line on stdout with `--json`. Deep code
//! only sends events; only [`spawn_ui`] prints.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The steps of `qfc-lab run`, in order (`Run::execute` in
/// lab/src/orchestrate.rs). `ConnectLoad`, `StartProbes` and `StopProbes`
/// happen only when a phase has load or a probe is enabled (a probe
/// session that did not attach has no `StopProbes`); `StopNode` and
/// `WriteBundle` happen on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PrepareTarget,
    /// Only with `[node.seed_db]`: fill the datadir before the node starts.
    SeedDatadir,
    StartNode,
    WaitRpc,
    ConnectLoad,
    StartProbes,
    Phases,
    StopProbes,
    Collect,
    StopNode,
    WriteBundle,
}

/// One progress event of `qfc-lab run`.
///
/// Ordering contract (what a UI or a `--json` reader may rely on):
///
/// ```text
/// Started
///   Step(PrepareTarget)
///   [Step(SeedDatadir)]
///   Step(StartNode) NodeStarted
///   Step(WaitRpc)
///   [Step(ConnectLoad)]
///   [Step(StartProbes) [ProbesReady]]
///   Step(Phases)
///   per phase, in scenario order:
///     PhaseStarted{index} PhaseProgress* PhaseEnded
///   [Step(StopProbes)]
///   Step(Collect)
///   Step(StopNode) Step(WriteBundle)
/// Finished
/// ```
///
/// - `Started` is the first event and `Finished` the last, exactly once
///   each; errors before the bundle directory exists send no event at all
///   (they are a `lab::Failure`, printed by the binary).
/// - A run that stops early (node death, failed step, signal) skips the
///   rest of the run proper after any event, but `Step(StopNode)`,
///   `Step(WriteBundle)` and `Finished` still follow, in that order.
/// - Each `PhaseStarted` is followed by its `PhaseEnded`, also for an
///   interrupted phase; `index` counts up from 0 with no gap, `count` is the
///   scenario's number of phases, and no phase starts before the previous
///   one ended. `PhaseProgress` (zero or more) carries that phase's `name`,
///   with `elapsed_ms` not decreasing.
/// - `t_ns` values are this machine's `CLOCK_MONOTONIC` and do not
///   decrease from `ProbesReady` over `PhaseStarted`/`PhaseEnded`.
/// - `Warning` may come at any point between `Started` and `Finished`
///   (also from teardown and while the bundle is written).
/// - `Finished.exit_code` is the process's exit code; `error` is `None`
///   exactly when it is 0.
///
/// [`check_order`] checks a recorded stream against this contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        scenario: String,
        bundle: String,
    },
    Step {
        step: Step,
    },
    NodeStarted {
        pid: u32,
        rpc: String,
        metrics: String,
        p2p_port: u16,
    },
    ProbesReady {
        t_ns: u64,
    },
    PhaseStarted {
        index: usize,
        count: usize,
        name: String,
        duration_s: u64,
        t_ns: u64,
    },
    PhaseProgress {
        name: String,
        elapsed_ms: u64,
        duration_ms: u64,
    },
    PhaseEnded {
        name: String,
        t_ns: u64,
    },
    Warning {
        message: String,
    },
    Finished {
        status: String,
        bundle: String,
        error: Option<String>,
        exit_code: u8,
    },
}

/// Checks a run's events (e.g. the `--json` lines read back) against the
/// ordering contract of [`Event`]; the error names the first event that
/// breaks it.
pub fn check_order(events: &[Event]) -> Result<(), String> {
    let tokens: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Event::Warning { .. }))
        .collect();
    let n = tokens.len();
    if n < 4 || !matches!(tokens[0].1, Event::Started { .. }) {
        return Err(
            "the events do not start with started and end with stop_node, write_bundle, finished"
                .into(),
        );
    }
    let tail = [
        Event::Step {
            step: Step::StopNode,
        },
        Event::Step {
            step: Step::WriteBundle,
        },
    ];
    if tokens[n - 3].1 != &tail[0] || tokens[n - 2].1 != &tail[1] {
        return Err(format!(
            "event {} ({:?}) is not followed by stop_node, write_bundle, finished",
            tokens[n - 3].0,
            tokens[n - 3].1
        ));
    }
    match tokens[n - 1].1 {
        Event::Finished {
            error, exit_code, ..
        } if error.is_none() == (*exit_code == 0) => {}
        e => {
            return Err(format!(
                "the last event is not a consistent finished: {e:?}"
            ))
        }
    }
    if events.last() != Some(tokens[n - 1].1) {
        return Err("an event follows finished".into());
    }
    RunProper::default().check(&tokens[1..n - 3])
}

/// The run proper of [`check_order`]: any prefix of the full sequence, but
/// never one that stops inside a phase.
#[derive(Default)]
struct RunProper {
    last_t_ns: u64,
    probes_ready: bool,
    phases_ended: usize,
    phase_count: Option<usize>,
}

impl RunProper {
    fn check(mut self, tokens: &[(usize, &Event)]) -> Result<(), String> {
        let mut it = tokens.iter().peekable();
        let bad = |(i, e): &(usize, &Event), want: &str| {
            Err(format!("event {i} ({e:?}) where {want} was expected"))
        };
        let step = |s: Step| move |e: &Event| e == &Event::Step { step: s };
        for want in [Step::PrepareTarget, Step::StartNode] {
            if want == Step::StartNode {
                it.next_if(|t| step(Step::SeedDatadir)(t.1));
            }
            match it.next() {
                None => return Ok(()),
                Some(t) if step(want)(t.1) => {}
                Some(t) => return bad(t, &format!("step {want:?}")),
            }
        }
        match it.next() {
            None => return Ok(()),
            Some((_, Event::NodeStarted { .. })) => {}
            Some(t) => return bad(t, "node_started"),
        }
        match it.next() {
            None => return Ok(()),
            Some(t) if step(Step::WaitRpc)(t.1) => {}
            Some(t) => return bad(t, "step WaitRpc"),
        }
        it.next_if(|t| step(Step::ConnectLoad)(t.1));
        if it.next_if(|t| step(Step::StartProbes)(t.1)).is_some() {
            if let Some((_, Event::ProbesReady { t_ns })) =
                it.next_if(|t| matches!(t.1, Event::ProbesReady { .. }))
            {
                self.last_t_ns = *t_ns;
                self.probes_ready = true;
            }
        }
        match it.next() {
            None => return Ok(()),
            Some(t) if step(Step::Phases)(t.1) => {}
            Some(t) => return bad(t, "step Phases"),
        }
        while let Some(t) = it.next_if(|t| matches!(t.1, Event::PhaseStarted { .. })) {
            self.phase(t, &mut it)?;
        }
        if let Some(t) = it.next_if(|t| step(Step::StopProbes)(t.1)) {
            if !self.probes_ready {
                return Err(format!("event {}: stop_probes without probes_ready", t.0));
            }
        }
        match it.next() {
            None => return Ok(()),
            Some(t) if step(Step::Collect)(t.1) => {
                if self.phase_count != Some(self.phases_ended) {
                    return Err(format!(
                        "event {}: collect after {} of {:?} phases",
                        t.0, self.phases_ended, self.phase_count
                    ));
                }
            }
            Some(t) => return bad(t, "a phase, stop_probes or collect"),
        }
        match it.next() {
            None => Ok(()),
            Some(t) => bad(t, "stop_node after collect"),
        }
    }

    /// One phase: started (next index, same count), progress of that phase
    /// with `elapsed_ms` not decreasing, ended.
    fn phase<'a>(
        &mut self,
        start: &(usize, &Event),
        it: &mut impl Iterator<Item = &'a (usize, &'a Event)>,
    ) -> Result<(), String> {
        let Event::PhaseStarted {
            index,
            count,
            name,
            t_ns,
            ..
        } = start.1
        else {
            return Err(format!("event {} is not phase_started", start.0));
        };
        if *index != self.phases_ended || *count != *self.phase_count.get_or_insert(*count) {
            return Err(format!(
                "event {} starts phase {index} of {count} after {} of {:?} ended",
                start.0, self.phases_ended, self.phase_count
            ));
        }
        self.t_ns(start.0, *t_ns)?;
        let mut elapsed = 0;
        for (i, e) in it {
            match e {
                Event::PhaseProgress {
                    name: n,
                    elapsed_ms,
                    ..
                } if n == name && *elapsed_ms >= elapsed => elapsed = *elapsed_ms,
                Event::PhaseEnded { name: n, t_ns } if n == name => {
                    self.phases_ended += 1;
                    return self.t_ns(*i, *t_ns);
                }
                e => return Err(format!("event {i} ({e:?}) inside phase {name}")),
            }
        }
        Err(format!("phase {name} started but never ended"))
    }

    fn t_ns(&mut self, i: usize, t_ns: u64) -> Result<(), String> {
        if t_ns < self.last_t_ns {
            return Err(format!(
                "event {i}: t_ns {t_ns} is before the previous {}",
                self.last_t_ns
            ));
        }
        self.last_t_ns = t_ns;
        Ok(())
    }
}

/// Sends events; cloning is cheap.
pub type Events = Sender<Event>;

/// Starts the UI thread; drop every sender, then join the handle.
pub fn spawn_ui(json: bool) -> (Events, std::thread::JoinHandle<()>) {
    let (tx, rx) = channel();
    let h = std::thread::spawn(move || if json { json_ui(rx) } else { bar_ui(rx) });
    (tx, h)
}

fn json_ui(rx: Receiver<Event>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for e in rx {
        if let Ok(line) = serde_json::to_string(&e) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

fn bar_ui(rx: Receiver<Event>) {
    use indicatif::{ProgressBar, ProgressStyle};
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut phase_bar: Option<ProgressBar> = None;
    for e in rx {
        match e {
            Event::Started { scenario, bundle } => {
                spinner.println(format!("qfc-lab: {scenario} -> {bundle}"))
            }
            Event::Step { step } => spinner.set_message(format!("{step:?}")),
            Event::NodeStarted { pid, rpc, .. } => {
                spinner.println(format!("node pid {pid}, RPC http://{rpc}"))
            }
            Event::ProbesReady { .. } => spinner.println("probes attached"),
            Event::PhaseStarted {
                index,
                count,
                name,
                duration_s,
                ..
            } => {
                let b = ProgressBar::new(duration_s * 1000);
                b.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:40}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_prefix(format!("phase {}/{count} {name}", index + 1));
                phase_bar = Some(b);
            }
            Event::PhaseProgress {
                elapsed_ms,
                duration_ms,
                ..
            } => {
                if let Some(b) = &phase_bar {
                    b.set_position(elapsed_ms.min(duration_ms));
                    b.set_message(format!(
                        "{:.0}/{:.0} s",
                        elapsed_ms as f64 / 1e3,
                        duration_ms as f64 / 1e3
                    ));
                }
            }
            Event::PhaseEnded { .. } => {
                if let Some(b) = phase_bar.take() {
                    b.finish();
                }
            }
            Event::Warning { message } => spinner.println(format!("warning: {message}")),
            Event::Finished {
                status,
                bundle,
                error,
                ..
            } => {
                if let Some(b) = phase_bar.take() {
                    b.abandon();
                }
                spinner.finish_and_clear();
                match error {
                    None => eprintln!("{status}: {bundle}"),
                    Some(e) => eprintln!("{status}: {bundle}\nerror: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: Step) -> Event {
        Event::Step { step }
    }

    fn phase(index: usize, name: &str, t0: u64) -> Vec<Event> {
        vec![
            Event::PhaseStarted {
                index,
                count: 2,
                name: name.into(),
                duration_s: 1,
                t_ns: t0,
            },
            Event::PhaseProgress {
                name: name.into(),
                elapsed_ms: 0,
                duration_ms: 1000,
            },
            Event::PhaseProgress {
                name: name.into(),
                elapsed_ms: 1000,
                duration_ms: 1000,
            },
            Event::PhaseEnded {
                name: name.into(),
                t_ns: t0 + 10,
            },
        ]
    }

    fn finished(exit_code: u8) -> Event {
        Event::Finished {
            status: "complete".into(),
            bundle: "b".into(),
            error: (exit_code != 0).then(|| "e".into()),
            exit_code,
        }
    }

    /// A whole run with load and probes, as `Run::execute` sends it.
    fn full_run() -> Vec<Event> {
        let mut v = vec![
            Event::Started {
                scenario: "s".into(),
                bundle: "b".into(),
            },
            step(Step::PrepareTarget),
            step(Step::StartNode),
            Event::NodeStarted {
                pid: 1,
                rpc: "127.0.0.1:1".into(),
                metrics: "127.0.0.1:2".into(),
                p2p_port: 3,
            },
            step(Step::WaitRpc),
            step(Step::ConnectLoad),
            step(Step::StartProbes),
            Event::ProbesReady { t_ns: 5 },
            Event::Warning {
                message: "w".into(),
            },
            step(Step::Phases),
        ];
        v.extend(phase(0, "warmup", 10));
        v.extend(phase(1, "stress", 30));
        v.extend([
            step(Step::StopProbes),
            step(Step::Collect),
            step(Step::StopNode),
            step(Step::WriteBundle),
            finished(0),
        ]);
        v
    }

    #[test]
    fn a_whole_run_keeps_the_contract() {
        check_order(&full_run()).unwrap();
    }

    #[test]
    fn an_interrupted_run_keeps_the_contract_when_it_still_stops_and_seals() {
        let full = full_run();
        // Interrupted in the second phase: it still ends, then teardown and seal.
        let cut = full
            .iter()
            .position(|e| e == &step(Step::StopProbes))
            .unwrap();
        let mut v = full[..cut].to_vec();
        v.extend([step(Step::StopNode), step(Step::WriteBundle), finished(3)]);
        check_order(&v).unwrap();
        // Failed at prepare.
        let v = vec![
            full[0].clone(),
            step(Step::StopNode),
            step(Step::WriteBundle),
            finished(3),
        ];
        check_order(&v).unwrap();
    }

    #[test]
    fn each_break_of_the_contract_is_caught() {
        let full = full_run();
        let without = |pred: &dyn Fn(&Event) -> bool| -> Vec<Event> {
            full.iter().filter(|e| !pred(e)).cloned().collect()
        };
        let cases: Vec<(&str, Vec<Event>)> = vec![
            (
                "a phase without its end",
                without(&|e| matches!(e, Event::PhaseEnded { name, .. } if name == "stress")),
            ),
            ("no started", full[1..].to_vec()),
            (
                "no write_bundle",
                without(&|e| e == &step(Step::WriteBundle)),
            ),
            (
                "collect before every phase ran",
                without(&|e| match e {
                    Event::PhaseStarted { name, .. }
                    | Event::PhaseProgress { name, .. }
                    | Event::PhaseEnded { name, .. } => name == "stress",
                    _ => false,
                }),
            ),
            (
                "stop_probes without probes_ready",
                without(&|e| matches!(e, Event::ProbesReady { .. })),
            ),
            (
                "node_started missing",
                without(&|e| matches!(e, Event::NodeStarted { .. })),
            ),
            ("finished not last", {
                let mut v = full.clone();
                v.push(Event::Warning {
                    message: "late".into(),
                });
                v
            }),
            ("exit 0 with an error", {
                let mut v = full.clone();
                *v.last_mut().unwrap() = Event::Finished {
                    status: "complete".into(),
                    bundle: "b".into(),
                    error: Some("e".into()),
                    exit_code: 0,
                };
                v
            }),
            ("phases out of order", {
                let mut v = full.clone();
                let i = v
                    .iter()
                    .position(|e| matches!(e, Event::PhaseStarted { index: 1, .. }))
                    .unwrap();
                if let Event::PhaseStarted { index, .. } = &mut v[i] {
                    *index = 0;
                }
                v
            }),
            ("time going back", {
                let mut v = full.clone();
                let i = v
                    .iter()
                    .position(|e| matches!(e, Event::PhaseStarted { index: 1, .. }))
                    .unwrap();
                if let Event::PhaseStarted { t_ns, .. } = &mut v[i] {
                    *t_ns = 1;
                }
                v
            }),
        ];
        for (what, v) in cases {
            assert!(check_order(&v).is_err(), "{what}: not caught");
        }
    }
}
