//! Command-line arguments (flattened into `qfc-lab probe` by the lab) and
//! the session driver: a fixed duration, or the stdin line protocol of
//! docs/ARCHITECTURE.md ("Probe session control").
use std::{
    io::{BufRead, Write},
    path::PathBuf,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::ArgGroup;

use crate::{
    scope::{ProbeKind, Scope},
    session::{Session, SessionOptions, WritepathAttach, DEFAULT_USTACK_BYTES},
    unwind::UnwindMode,
};

/// How phases are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Control {
    /// One command per line on stdin, one answer per line on stdout.
    Stdin,
}

/// `qfc-probe` / `qfc-lab probe` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["pid", "cgroup", "system"])))]
#[command(group(ArgGroup::new("length").required(true).args(["duration_s", "control"])))]
pub struct Args {
    /// Watch this process and its descendants (new ones join on fork).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Watch a cgroup v2 and everything below it (absolute path, or relative
    /// to the cgroup2 mount).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Watch every task on the machine but the probe itself.
    #[arg(long)]
    pub system: bool,
    /// Probes to attach, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fsync,bio,offcpu,writepath,oncpu"
    )]
    pub probes: Vec<ProbeKind>,
    /// On-CPU sampling frequency (software cpu-clock event).
    #[arg(long, default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub hz: u64,
    /// Off-CPU periods shorter than this are counted, not recorded.
    #[arg(long, default_value_t = 1)]
    pub min_offcpu_us: u64,
    /// Output directory: `<phase>/<probe>.{txt,json}`, `<phase>/{oncpu,offcpu}.{folded,svg}`, `session.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Capture one window of this many seconds, then stop.
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Drive phases from stdin (`phase <name>`, `stop`).
    #[arg(long, value_enum)]
    pub control: Option<Control>,
    /// Name of the single window with --duration-s.
    #[arg(long, default_value = "capture")]
    pub phase_name: String,
    /// Entries of every aggregate and in-flight map (default: built-in sizes).
    #[arg(long)]
    pub map_entries: Option<u32>,
    /// Entries of the stack dictionary.
    #[arg(long, default_value_t = 16384)]
    pub stack_entries: u32,
    /// Attach points of the writepath probe.
    #[arg(long, value_enum, default_value_t = WritepathAttach::Auto)]
    pub writepath_attach: WritepathAttach,
    /// How user stacks are unwound: `fp` (frame pointers, in the kernel),
    /// `dwarf` (copy the stack, unwind with .eh_frame), `auto` (dwarf, and
    /// frame pointers where a mapping has no unwind table).
    #[arg(long, value_enum, default_value_t = UnwindMode::Fp)]
    pub unwind: UnwindMode,
    /// Bytes of user stack copied per stack with --unwind dwarf|auto (whole
    /// 4 KiB pages, at most 64 KiB).
    #[arg(long, default_value_t = DEFAULT_USTACK_BYTES)]
    pub ustack_bytes: u32,
}

impl Args {
    /// The session options these arguments describe.
    pub fn session_options(&self) -> Result<SessionOptions> {
        let scope = match (&self.pid, &self.cgroup, self.system) {
            (Some(p), None, false) => Scope::Pid(*p),
            (None, Some(c), false) => Scope::Cgroup(c.clone()),
            (None, None, true) => Scope::System,
            _ => bail!("give exactly one of --pid, --cgroup, --system"),
        };
        let mut probes = self.probes.clone();
        probes.sort();
        probes.dedup();
        Ok(SessionOptions {
            scope,
            probes,
            hz: self.hz,
            min_offcpu_us: self.min_offcpu_us,
            out_dir: self.out.clone(),
            map_entries: self.map_entries,
            stack_entries: self.stack_entries,
            writepath_attach: self.writepath_attach,
            unwind: self.unwind,
            ustack_bytes: self.ustack_bytes,
        })
    }
}

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Close the current window, open `name`.
    Phase(String),
    /// Close the last window and detach.
    Stop,
}

/// Parses one line of the control protocol.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let mut it = line.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some("phase"), Some(name), None) => Ok(Command::Phase(name.to_owned())),
        (Some("stop"), None, None) => Ok(Command::Stop),
        _ => Err(format!(
            "unknown command {line:?}: expected `phase <name>` or `stop`"
        )),
    }
}

/// Runs a session to completion, answering on `out`.
pub fn run(args: &Args, input: impl BufRead + Send + 'static, mut out: impl Write) -> Result<()> {
    let opts = args.session_options()?;
    let out_dir = opts.out_dir.clone();
    let mut session = Session::start(opts).with_context(|| {
        format!(
            "starting the probe session writing to {}",
            out_dir.display()
        )
    })?;
    writeln!(out, "ready {}", session.ready_ns())?;
    out.flush()?;
    match (args.duration_s, args.control) {
        (Some(secs), _) => {
            let ns = session.phase(&args.phase_name)?;
            writeln!(out, "phase {} {ns}", args.phase_name)?;
            out.flush()?;
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                std::thread::sleep(
                    Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
                );
                session.refresh_processes();
            }
        }
        (None, Some(Control::Stdin)) => {
            let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
            std::thread::spawn(move || {
                for line in input.lines() {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => session.refresh_processes(),
                    // EOF on stdin: the controller is gone; stop cleanly.
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Ok(line) => {
                        let line = line.context("reading the control stream")?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match parse_command(&line) {
                            Ok(Command::Phase(name)) => match session.phase(&name) {
                                Ok(ns) => writeln!(out, "phase {name} {ns}")?,
                                Err(e) => writeln!(out, "error {e}")?,
                            },
                            Ok(Command::Stop) => break,
                            Err(e) => writeln!(out, "error {e}")?,
                        }
                        out.flush()?;
                    }
                }
            }
        }
        (None, None) => bail!("give --duration-s N or --control stdin"),
    }
    let (ns, summary) = session.stop().context("stopping the probe session")?;
    writeln!(out, "stopped {ns}")?;
    out.flush()?;
    tracing::info!(windows = summary.windows.len(), lost = summary.lost_events_total, out = %out_dir.display(), "probe session written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn parses_protocol_lines() {
        assert_eq!(
            parse_command("phase warmup"),
            Ok(Command::Phase("warmup".into()))
        );
        assert_eq!(parse_command("  stop "), Ok(Command::Stop));
        assert!(parse_command("phase").unwrap_err().contains("expected"));
        assert!(parse_command("phase a b").is_err());
        assert!(parse_command("go").is_err());
    }

    #[test]
    fn scope_is_exactly_one() {
        let t =
            Top::try_parse_from(["x", "--pid", "1", "--out", "o", "--duration-s", "1"]).unwrap();
        assert_eq!(t.args.session_options().unwrap().scope, Scope::Pid(1));
        assert!(Top::try_parse_from([
            "x",
            "--pid",
            "1",
            "--system",
            "--out",
            "o",
            "--duration-s",
            "1"
        ])
        .is_err());
        assert!(Top::try_parse_from(["x", "--out", "o", "--duration-s", "1"]).is_err());
        assert!(
            Top::try_parse_from(["x", "--system", "--out", "o"]).is_err(),
            "needs a duration or control"
        );
    }

    #[test]
    fn probe_list_and_defaults() {
        let t = Top::try_parse_from([
            "x",
            "--system",
            "--out",
            "o",
            "--control",
            "stdin",
            "--probes",
            "oncpu,fsync,oncpu",
        ])
        .unwrap();
        let o = t.args.session_options().unwrap();
        assert_eq!(o.probes, vec![ProbeKind::Fsync, ProbeKind::Oncpu]);
        assert_eq!(o.hz, 99);
        assert!(Top::try_parse_from([
            "x",
            "--system",
            "--out",
            "o",
            "--control",
            "stdin",
            "--probes",
            "kprobe"
        ])
        .is_err());
        assert!(Top::try_parse_from([
            "x",
            "--system",
            "--out",
            "o",
            "--control",
            "stdin",
            "--hz",
            "0"
        ])
        .is_err());
    }
}
