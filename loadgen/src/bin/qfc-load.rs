//! `qfc-load`: the load generator alone (the same flags as `qfc-lab load`),
//! for benchmarks and ad-hoc runs; prints the phase summary as JSON.

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Drive a qfc node on loopback for one phase and print the summary")]
struct Opts {
    #[command(flatten)]
    load: loadgen::cli::LoadArgs,
}

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    rt.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    match rt.block_on(loadgen::cli::run(&opts.load, cancel)) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
