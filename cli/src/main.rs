//! The `minikctl` binary: parse the command line, run the command, exit with its status.
//! Everything else lives in the library (`lib.rs`), so the tests can read it too.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::commands::run(cli))
}
