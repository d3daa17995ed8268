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
pub mod targets;

use cli::{Cli, Command};

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
                eprintln!("error: {} does not match its manifest ({} problems)", dir.display(), problems.len());
                Exit::CheckFailed
            }
        },
        Command::Run(args) => orchestrate::main(args),
        Command::Report(a) => report_command(report::cli::report(&a)),
        Command::Diff(a) => report_command(report::cli::diff(&a)),
        Command::ImportT1(a) => report_command(report::cli::import_t1(&a)),
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
