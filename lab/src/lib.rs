//! qfc-lab: scenario files to reproducible evidence bundles.
//!
//! [`run`] executes one CLI command and returns its exit code, or a
//! [`Failure`] for the binary to print: 0 ok, 1 a check failed
//! (expectations of a run; `verify` found a mismatch; `diff
//! --fail-on-regression` found a regression), 2 usage or scenario error,
//! 3 run failed, 4 an expectation over repetitions is inconclusive.

pub mod bundle;
pub mod cli;
pub mod clock;
pub mod context;
pub mod context_file;
pub mod events;
pub mod exit;
pub mod load;
pub mod loadgen_adapter;
pub mod metrics;
pub mod node;
pub mod orchestrate;
pub mod probe;
pub mod repeat;
pub mod report;
pub mod scenario;
pub mod schema;
pub mod signals;
pub mod stats;
pub mod targets;

use cli::{Cli, Command};
pub use exit::{error_chain, Exit, Failure};
use std::path::Path;

/// Runs one command and prints its output; errors are returned, not
/// printed (the binary prints a [`Failure`]).
pub fn run(cli: Cli) -> Result<Exit, Failure> {
    match cli.command {
        Command::Validate { files, set } => validate_command(&files, &set),
        Command::Verify { dir } => verify_command(&dir),
        Command::Run(args) => repeat::main(args),
        Command::Report(a) => {
            not_a_parent(&a.dir, "report")?;
            report_command(report::cli::report(&a))
        }
        // two single runs: the phase-by-phase diff; a repeated bundle on
        // either side (or `--json`): the noise-aware diff
        Command::Diff(a) => report_command(
            if a.json || repeat::is_parent(&a.a) || repeat::is_parent(&a.b) {
                repeat::diff(&a)
            } else {
                report::cli::diff(&a)
            },
        ),
        Command::ImportT1(a) => report_command(report::cli::import_t1(&a)),
        Command::Findings(c) => report_command(report::cli::findings(&c)),
        Command::Probe(a) => probe_command(&a),
        Command::Load(a) => load_command(&a),
        Command::Gc => gc_command(),
        Command::Image(cli::ImageCommand::Build { arch, refresh }) => {
            let mut opts = vm::BuildOptions::new(arch);
            opts.refresh = refresh;
            let img = vm::image::build_verbose(&opts).map_err(Failure::run_failed)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&img.summary()).unwrap_or_default()
            );
            Ok(Exit::Ok)
        }
    }
}

/// `qfc-lab validate`: every file is checked; each bad one is an error (exit 2).
fn validate_command(files: &[std::path::PathBuf], set: &[String]) -> Result<Exit, Failure> {
    let mut errors = Vec::new();
    for f in files {
        match scenario::load(f, set) {
            Ok(l) => println!(
                "ok: {} ({}, {} phases, {} s)",
                f.display(),
                l.scenario.name,
                l.scenario.phases.len(),
                l.scenario.phases.iter().map(|p| p.duration_s).sum::<u64>()
            ),
            Err(e) => errors.push(anyhow::Error::from(e)),
        }
    }
    if errors.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Failure {
            exit: Exit::Usage,
            errors,
        })
    }
}

/// `qfc-lab verify`: the problems found are its output (stderr); a
/// mismatch is exit 1, an unreadable bundle exit 2. A parent bundle of
/// `run --repeat` is checked with every repetition.
fn verify_command(dir: &Path) -> Result<Exit, Failure> {
    let (what, problems) = if repeat::is_parent(dir) {
        let (m, problems) = repeat::verify(dir)?;
        let what = format!(
            "{} repetitions and the summary verified",
            m.repetitions.len()
        );
        (what, problems)
    } else {
        let (m, problems) = bundle::verify(dir).map_err(Failure::usage)?;
        let what = format!("{} files verified, status {:?}", m.files.len(), m.status);
        (what, problems.iter().map(ToString::to_string).collect())
    };
    if problems.is_empty() {
        println!("ok: {} ({what})", dir.display());
        return Ok(Exit::Ok);
    }
    for p in &problems {
        eprintln!("{p}");
    }
    Err(Failure::new(
        Exit::CheckFailed,
        anyhow::anyhow!(
            "{} does not match its manifest ({} problems)",
            dir.display(),
            problems.len()
        ),
    ))
}

/// `report` reads one run's bundle; a parent bundle of `run --repeat` is
/// refused with what to read instead (its statistics and verdicts are in
/// `summary/`; `diff` takes parent bundles).
fn not_a_parent(dir: &Path, cmd: &str) -> Result<(), Failure> {
    if !repeat::is_parent(dir) {
        return Ok(());
    }
    Err(Failure::usage(anyhow::anyhow!(
        "{} holds repeated runs (rep-01/ ...), not one run: its statistics and verdicts are in {}; `{cmd}` reads one repetition, e.g. {}",
        dir.display(),
        dir.join("summary/summary.md").display(),
        dir.join("rep-01").display()
    )))
}

/// `qfc-lab gc`: what was removed is its output; each removal that failed
/// is an error (exit 3).
fn gc_command() -> Result<Exit, Failure> {
    let r = orchestrate::gc_sweep();
    for l in &r.removed {
        println!("removed {l}");
    }
    if r.removed.is_empty() && r.errors.is_empty() {
        println!("nothing left behind by an earlier run");
    }
    if r.errors.is_empty() {
        return Ok(Exit::Ok);
    }
    Err(Failure {
        exit: Exit::RunFailed,
        errors: r.errors.into_iter().map(anyhow::Error::msg).collect(),
    })
}

/// `qfc-lab probe`: the probe session of `qfc-probe`, with its control
/// protocol on this process's stdin/stdout.
fn probe_command(args: &probes::cli::Args) -> Result<Exit, Failure> {
    let stdin = std::io::BufReader::new(std::io::stdin());
    probes::cli::run(args, stdin, std::io::stdout()).map_err(Failure::run_failed)?;
    Ok(Exit::Ok)
}

/// `qfc-lab load`: one load phase against a running node, summary as JSON.
fn load_command(args: &loadgen::cli::LoadArgs) -> Result<Exit, Failure> {
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::run_failed(anyhow::anyhow!("cannot start the tokio runtime: {e}")))?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    rt.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    let summary = rt
        .block_on(loadgen::cli::run(args, cancel))
        .map_err(Failure::run_failed)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    Ok(Exit::Ok)
}

/// Prints a report command's output; 1 when an expectation failed, 2 on bad input.
fn report_command(r: anyhow::Result<(bool, String)>) -> Result<Exit, Failure> {
    let (failed, text) = r.map_err(Failure::usage)?;
    print!("{text}");
    Ok(if failed { Exit::CheckFailed } else { Exit::Ok })
}
