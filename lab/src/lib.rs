//! qfc-lab: scenario files to reproducible evidence bundles.
//!
//! [`run`] executes one CLI command and returns the process exit code:
//! 0 ok, 1 a check failed (expectations of a run; `verify` found a
//! mismatch), 2 usage or scenario error, 3 run failed.

pub mod bundle;
pub mod cli;
pub mod clock;
pub mod context;
pub mod events;
pub mod load;
pub mod loadgen_adapter;
pub mod metrics;
pub mod node;
pub mod orchestrate;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod signals;
pub mod stats;
pub mod targets;

use cli::{Cli, Command};
use std::path::Path;

/// Exit codes (documented in README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    CheckFailed = 1,
    Usage = 2,
    RunFailed = 3,
}

/// Runs one command; prints its result (this is the binary's top level).
pub fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Validate { files, set } => {
            let mut code = Exit::Ok;
            for f in files {
                match scenario::load(&f, &set) {
                    Ok(l) => println!(
                        "ok: {} ({}, {} phases, {} s)",
                        f.display(),
                        l.scenario.name,
                        l.scenario.phases.len(),
                        l.scenario.phases.iter().map(|p| p.duration_s).sum::<u64>()
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = Exit::Usage;
                    }
                }
            }
            code
        }
        Command::Verify { dir } => match bundle::verify(&dir) {
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Usage
            }
            Ok((m, problems)) if problems.is_empty() => {
                println!(
                    "ok: {} ({} files verified, status {:?})",
                    dir.display(),
                    m.files.len(),
                    m.status
                );
                Exit::Ok
            }
            Ok((_, problems)) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!(
                    "error: {} does not match its manifest ({} problems)",
                    dir.display(),
                    problems.len()
                );
                Exit::CheckFailed
            }
        },
        Command::Run(args) => orchestrate::main(args),
        Command::Report(a) => report_command(report::cli::report(&a)),
        Command::Diff(a) => report_command(report::cli::diff(&a)),
        Command::ImportT1(a) => report_command(report::cli::import_t1(&a)),
        Command::Findings(c) => report_command(report::cli::findings(&c)),
        Command::Probe(a) => probe_command(&a),
        Command::Load(a) => load_command(&a),
        Command::Gc => {
            let r = gc_sweep();
            for l in &r.removed {
                println!("removed {l}");
            }
            for e in &r.errors {
                eprintln!("error: {e}");
            }
            if r.removed.is_empty() && r.errors.is_empty() {
                println!("nothing left behind by an earlier run");
            }
            if r.errors.is_empty() {
                Exit::Ok
            } else {
                Exit::RunFailed
            }
        }
        Command::Image(cli::ImageCommand::Build { arch, refresh }) => {
            let mut opts = vm::BuildOptions::new(arch);
            opts.refresh = refresh;
            match vm::image::build_verbose(&opts) {
                Ok(img) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&img.summary()).unwrap_or_default()
                    );
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::RunFailed
                }
            }
        }
    }
}

/// Sweeps what dead qfc-lab runs left behind (`vm::gc`); containers only
/// when a Docker engine socket is there.
pub fn gc_sweep() -> vm::gc::GcReport {
    let docker = Path::new("/usr/bin/docker");
    let engine = Path::new("/var/run/docker.sock").exists() && docker.exists();
    vm::gc::sweep(engine.then_some(docker))
}

/// `qfc-lab probe`: the probe session of `qfc-probe`, with its control
/// protocol on this process's stdin/stdout.
fn probe_command(args: &probes::cli::Args) -> Exit {
    let stdin = std::io::BufReader::new(std::io::stdin());
    match probes::cli::run(args, stdin, std::io::stdout()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::RunFailed
        }
    }
}

/// `qfc-lab load`: one load phase against a running node, summary as JSON.
fn load_command(args: &loadgen::cli::LoadArgs) -> Exit {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return Exit::RunFailed;
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    rt.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    match rt.block_on(loadgen::cli::run(args, cancel)) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::RunFailed
        }
    }
}

/// Prints a report command's output; 1 when an expectation failed, 2 on bad input.
fn report_command(r: anyhow::Result<(bool, String)>) -> Exit {
    match r {
        Ok((failed, text)) => {
            print!("{text}");
            if failed {
                Exit::CheckFailed
            } else {
                Exit::Ok
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Usage
        }
    }
}
