//! `employee-api`: parse the command line, run it, turn failures into one line and an exit code.

use std::process::ExitCode;

use clap::Parser;
use employee_api::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` never overrides variables already set in the environment.
    let _ = dotenvy::dotenv();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
