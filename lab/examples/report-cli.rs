//! Stand-in for the `qfc-lab report | diff | import-t1` subcommands until the spine's CLI
//! flattens `lab::report::cli`: `cargo run -p lab --example report-cli -- report DIR`.

use clap::{Parser, Subcommand};
use lab::report::cli;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Report(cli::ReportArgs),
    Diff(cli::DiffArgs),
    ImportT1(cli::ImportT1Args),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let (code, text) = match Cli::parse().cmd {
        Cmd::Report(a) => cli::report(&a)?,
        Cmd::Diff(a) => cli::diff(&a)?,
        Cmd::ImportT1(a) => cli::import_t1(&a)?,
    };
    print!("{text}");
    Ok(code)
}
