//! `employee-api`: parse the command line, run it, turn failures into one line and an exit code.

use std::{io::Write, process::ExitCode};

use employee_api::cli::{load_dotenv, parse_args_with, run};

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` in the working directory; it never overrides variables already set.
    let dotenv = load_dotenv();
    let outcome = match parse_args_with(std::env::args_os().collect(), &dotenv) {
        Ok(cli) => run(cli).await,
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `--help` and `--version` end here too, with code 0: their text goes to stdout (a
        // closed pipe, `| head`, is no error). A closed pipe ends here with no message.
        Err(failure) if failure.code == 0 => {
            if !failure.message.is_empty() {
                let _ = writeln!(std::io::stdout().lock(), "{}", failure.message);
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let _ = writeln!(std::io::stderr().lock(), "{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
