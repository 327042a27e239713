//! kubesup's entry point: parse the command line, run, map errors to exit codes.
//!
//! Exit codes ([`kubesup::errors`]): 0 success; 1 the operation failed; 2 bad input (config or
//! usage), found before anything was written or started; 3 a check found a problem
//! (`certs check`, `status` with a component not ready).

use std::process::ExitCode;

use clap::Parser;
use kubesup::errors::Exit;

fn main() -> ExitCode {
    let cli = kubesup::cli::Cli::parse();
    match kubesup::run::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line per problem: a config error lists every bad field.
            eprintln!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
