//! Progress of a run as events over a channel to one UI: indicatif bars for
//! people, or one JSON object per line on stdout with `--json`. Deep code
//! only sends events; only [`spawn_ui`] prints.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use serde::Serialize;

/// The steps of `qfc-lab run`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PrepareTarget,
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

/// One progress event.
#[derive(Debug, Clone, Serialize)]
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
