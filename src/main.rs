//! `employee-api`: parse the command line, run it, turn failures into one line and an exit code.

use std::process::ExitCode;

use employee_api::cli::{parse_args, run};

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` in the working directory; it never overrides variables already set.
    let _ = dotenvy::from_path(".env");
    let outcome = match parse_args(std::env::args_os().collect()) {
        Ok(cli) => run(cli).await,
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `--help` and `--version` end here too, with code 0: their text goes to stdout.
        Err(failure) if failure.code == 0 => {
            println!("{}", failure.message);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
