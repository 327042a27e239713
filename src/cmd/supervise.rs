//! `kubesup supervise FILE`: kubesup's engine (restarts, backoff, process-group kills, status
//! socket) over processes listed in a YAML file, with no Kubernetes component.

use crate::cli::SuperviseArgs;
use crate::cmd::{Globals, SetupError};
use crate::config::{ConfigError, Problems};
use crate::daemon::{Daemon, DaemonError, Reload};
use crate::paths::Paths;
use crate::supervise::file::{self, FileError};

#[derive(Debug, thiserror::Error)]
pub enum SuperviseCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

crate::errors::exit_via!(SuperviseCmdError: Config, Setup);

pub fn run(a: SuperviseArgs, g: &Globals) -> Result<(), SuperviseCmdError> {
    g.init_tracing(None)?;
    if !a.data_dir.is_absolute() {
        let mut p = Problems::default();
        p.push(
            "data-dir",
            format!("{:?} is relative; use an absolute path", a.data_dir),
        );
        return Err(ConfigError::Invalid(p).into());
    }
    let paths = Paths::new(&a.data_dir);
    // Read the file before taking the lock, so a bad file changes nothing.
    let specs = file::load(&a.file, &paths)?;
    crate::cmd::runtime()?.block_on(async move {
        let daemon = Daemon::acquire(paths.clone())?;
        let path = a.file.clone();
        let reload: Reload = Box::new(move || Ok(file::load(&path, &paths)?));
        daemon
            .supervise("supervise", specs, Some(reload), Vec::new())
            .await?;
        Ok(())
    })
}
