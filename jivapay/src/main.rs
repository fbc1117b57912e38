//! `jivapay`: one binary, one subcommand per component. See `jivapay --help`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = jivapay::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jivapay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(jivapay::run(cli));
    // Background tasks (librdkafka callbacks, servers) get a bounded time to finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line that says what is wrong and how to fix it; no panic trace.
            eprintln!("jivapay: {e}");
            ExitCode::FAILURE
        }
    }
}
