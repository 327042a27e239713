//! `kubesup status`: asks the running kubesup on this data dir, over its control socket.

use std::process::ExitCode;

use crate::cli::StatusArgs;
use crate::cmd::{Globals, SetupError};
use crate::config::ConfigError;
use crate::errors::EXIT_CHECK;
use crate::supervise::control::{self, ControlError};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot render the status as JSON")]
    Json(#[from] serde_json::Error),
}

crate::errors::exit_via!(StatusError: Config, Setup);

/// Exits 0 when every component is ready, 3 otherwise.
pub fn run(a: StatusArgs, g: &Globals) -> Result<ExitCode, StatusError> {
    let paths = g.node_config(&a.node)?.paths;
    g.init_tracing(None)?;
    let report = crate::cmd::runtime()?.block_on(control::fetch_status(&paths.control_socket()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.all_ready() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK)
    })
}
