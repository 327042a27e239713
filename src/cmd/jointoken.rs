//! The join token on a joining node's command line, shared by `kubesup worker` and
//! `kubesup master --join`: where it comes from (flag, environment or file), how it is read,
//! and how a token given as a flag is kept out of the process list.

use std::path::PathBuf;

use tracing::warn;

use crate::config::{ConfigError, Problems};
use crate::join::token::Token;

#[derive(Debug, thiserror::Error)]
pub enum JoinTokenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot execute kubesup again without --token on its command line")]
    Reexec(#[source] std::io::Error),
}

crate::errors::exit_via!(JoinTokenError: Config);

/// Where the join token comes from (flag or environment, or a file).
pub enum TokenSource {
    Value(String),
    File(PathBuf),
}

impl TokenSource {
    /// The flag's value first, then a file from the flag or the config.
    pub fn pick(value: Option<String>, file: Option<PathBuf>) -> Option<Self> {
        match (value, file) {
            (Some(t), _) => Some(Self::Value(t)),
            (None, Some(f)) => Some(Self::File(f)),
            (None, None) => None,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    let mut p = Problems::default();
    p.push(field, message);
    ConfigError::Invalid(p)
}

/// Reads and parses the token; a world-readable token file is used, with a warning.
pub fn read(source: TokenSource) -> Result<Token, ConfigError> {
    let text = match source {
        TokenSource::Value(t) => t,
        TokenSource::File(path) => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path).map_err(|e| {
                invalid("token-file", format!("cannot read {}: {e}", path.display()))
            })?;
            if meta.permissions().mode() & 0o004 != 0 {
                warn!(file = %path.display(), "the token file is world-readable; chmod 600 it");
            }
            std::fs::read_to_string(&path).map_err(|e| {
                invalid("token-file", format!("cannot read {}: {e}", path.display()))
            })?
        }
    };
    Token::parse(&text).map_err(|e| invalid("token", e.to_string()))
}

/// A token given as `--token T` would stay in `/proc/PID/cmdline`, which every user of the
/// machine can read (`ps`), for as long as the node runs, though it is needed for the first
/// join only (k0s#413). So kubesup executes itself again, same PID, without the flag, and
/// hands the token over in `KUBESUP_TOKEN`, which clap reads like the flag:
/// `/proc/PID/environ` is readable by the process's own user only, and supervised components
/// get an explicit environment, so they never inherit it. Returns only when there was nothing
/// to scrub (the token came from the environment already).
pub fn scrub_from_argv() -> Result<(), JoinTokenError> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let Some(argv0) = args.next() else {
        return Ok(());
    };
    let (mut kept, mut token) = (Vec::new(), None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--token") => token = args.next(),
            Some(a) if a.starts_with("--token=") => {
                token = Some(a.trim_start_matches("--token=").into());
            }
            _ => kept.push(arg),
        }
    }
    let Some(token) = token else {
        return Ok(());
    };
    // A malformed token is refused here, in this process, with its one-line error.
    if let Some(text) = token.to_str() {
        Token::parse(text).map_err(|e| invalid("token", e.to_string()))?;
    }
    tracing::debug!("re-executing without --token on the command line");
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(kept)
        .env("KUBESUP_TOKEN", token)
        .exec();
    Err(JoinTokenError::Reexec(err))
}
