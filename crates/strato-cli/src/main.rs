//! `strato`: the command-line client of the strato daemon, with the AWS CLI's verbs,
//! option names, JSON shapes, error messages and exit statuses.

mod args;
mod commands;
mod conn;
mod console;
mod error;
mod output;
mod parse;
mod query;
mod time;
mod wait;

use std::process::ExitCode;

use crate::error::{CliError, EXIT_OTHER};

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with status 2.
    let cli = args::cmdline::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`strato ... | head`): not worth a complaint.
        Err(CliError::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            if let Some(hint) = err.hint() {
                eprintln!("Hint: {hint}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
