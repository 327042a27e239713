//! The dispatcher: one arm per subcommand, each handing its arguments to its file in
//! [`crate::cmd`]. Every error type maps itself to its exit code and its text
//! ([`crate::errors::Exit`]); nothing here inspects an error.

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::cmd::{self, Globals};

/// Any subcommand's failure, still typed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Manpage(#[from] cmd::manpage::ManpageError),
    #[error(transparent)]
    Status(#[from] cmd::status::StatusError),
    #[error(transparent)]
    Supervise(#[from] cmd::supervise::SuperviseCmdError),
    #[error(transparent)]
    Certs(#[from] cmd::certs::CertsError),
    #[error(transparent)]
    Fetch(#[from] cmd::fetch::FetchCmdError),
    #[error(transparent)]
    Master(#[from] cmd::master::MasterError),
    #[error(transparent)]
    Worker(#[from] cmd::worker::WorkerError),
    #[error(transparent)]
    Reset(#[from] cmd::reset::ResetError),
    #[error(transparent)]
    Token(#[from] cmd::token::TokenCmdError),
    #[error(transparent)]
    Install(#[from] cmd::install::InstallError),
    #[error(transparent)]
    Etcd(#[from] cmd::etcd::EtcdCmdError),
    #[error(transparent)]
    Backup(#[from] cmd::backup::BackupCmdError),
    #[error(transparent)]
    Restore(#[from] cmd::restore::RestoreCmdError),
}

crate::errors::exit_via!(
    Error: Config, Manpage, Status, Supervise, Certs, Fetch, Master, Worker, Reset, Token, Install,
    Etcd, Backup, Restore,
);

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    // Daemons keep SIGPIPE ignored, so a log reader going away does not stop the supervisor;
    // commands that print and exit end quietly on a closed pipe, as `cat` does. Daemons stay
    // resident, so they keep one malloc arena.
    if matches!(
        cli.command,
        Command::Master(_) | Command::Worker(_) | Command::Supervise(_)
    ) {
        crate::supervise::limit_malloc_arenas();
    } else {
        crate::supervise::default_sigpipe();
    }
    let g = Globals {
        log: cli.log,
        log_format: cli.log_format,
    };
    match cli.command {
        Command::Version => cmd::version::run(),
        Command::Completions(a) => cmd::completions::run(a),
        Command::Manpage { out_dir } => cmd::manpage::run(&out_dir)?,
        Command::Config(c) => cmd::config::run(c, &g)?,
        Command::Status(a) => return Ok(cmd::status::run(a, &g)?),
        Command::Supervise(a) => cmd::supervise::run(a, &g)?,
        Command::Certs(c) => return Ok(cmd::certs::run(c, &g)?),
        Command::Fetch(a) => cmd::fetch::run(a, &g)?,
        Command::Master(a) => cmd::master::run(a, &g)?,
        Command::Worker(a) => cmd::worker::run(a, &g)?,
        Command::Reset(a) => cmd::reset::run(a, &g)?,
        Command::Token(t) => cmd::token::run(t, &g)?,
        Command::Etcd(e) => cmd::etcd::run(e, &g)?,
        Command::Backup(a) => cmd::backup::run(a, &g)?,
        Command::Restore(a) => cmd::restore::run(a, &g)?,
        Command::Install(c) => cmd::install::run(c, &g)?,
        Command::Uninstall(a) => cmd::install::run_uninstall(a, &g)?,
    }
    Ok(ExitCode::SUCCESS)
}
