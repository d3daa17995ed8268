//! `qfc-refnode`: runtime (worker threads named `tokio-rt-worker`), logging
//! (tracing fmt to stdout, level only from `--log-level`) and exit code.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = refnode::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(refnode::cli::log_level(&cli.log_level))
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .thread_name(refnode::TOKIO_THREAD_NAME)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(refnode::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
