//! One kubesup per data dir: an exclusive flock held for the life of the process.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another kubesup{holder} is already running on data dir {dir}; stop it first, or use another --data-dir"
    )]
    Held { dir: PathBuf, holder: String },
}

/// Held for as long as the value lives; the kernel drops the lock if kubesup dies.
pub struct DataDirLock {
    _lock: Flock<std::fs::File>,
}

impl DataDirLock {
    pub fn acquire(lock_file: &Path) -> Result<Self, LockError> {
        let dir = lock_file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let open_err = |source| LockError::Open {
            path: lock_file.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(open_err)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_file)
            .map_err(open_err)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // Record the holder's pid for the error message of the next one.
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = write!(*lock, "{}", std::process::id());
                Ok(Self { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim() {
                    "" => String::new(),
                    p => format!(" (pid {p})"),
                };
                Err(LockError::Held { dir, holder })
            }
        }
    }
}
