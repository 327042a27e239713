//! `kubesup manpage` (hidden): writes the man page that `contrib/kubesup.1` is refreshed from.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;
use crate::errors::Exit;

#[derive(Debug, thiserror::Error)]
pub enum ManpageError {
    #[error("cannot render the man page")]
    Render(#[source] std::io::Error),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Exit for ManpageError {}

pub fn run(dir: &Path) -> Result<(), ManpageError> {
    let write = |path: &Path, source| ManpageError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write(dir, e))?;
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(ManpageError::Render)?;
    let path = dir.join("kubesup.1");
    std::fs::write(&path, buf).map_err(|e| write(&path, e))
}
