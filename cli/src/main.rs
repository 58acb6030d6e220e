//! The `minikctl` binary: parse the command line, run the command, exit with its status.
//! Everything else lives in the library (`lib.rs`), so the tests can read it too. A usage
//! error exits 1, as kubectl's do (clap's own habit is 2); `--help` exits 0.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match cli::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
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
