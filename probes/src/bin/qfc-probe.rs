//! `qfc-probe`: the self-contained probe session binary (also shipped into
//! guests and onto SSH hosts). Thin: logging, arguments, exit code.
use clap::Parser;

/// Runs the qfc-lab eBPF probes (fsync, bio, offcpu, writepath, oncpu) over phase windows.
#[derive(Parser)]
#[command(name = "qfc-probe", version)]
struct Cli {
    #[command(flatten)]
    args: probes::cli::Args,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QFC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let stdin = std::io::BufReader::new(std::io::stdin());
    match probes::cli::run(&cli.args, stdin, std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qfc-probe: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
