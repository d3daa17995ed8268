//! `qfc-lab`: parses arguments, installs logging, runs [`lab::run`] and
//! turns its outcome into the documented exit code. This is the one place
//! an error is printed (with its chain, [`lab::Failure`]).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = lab::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("QFC_LAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let code = match lab::run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.exit
        }
    };
    std::process::ExitCode::from(code as u8)
}
