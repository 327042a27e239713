//! The one configuration of a node: file, then `KUBESUP_*` environment, then flags.
//!
//! Owns: the YAML file format (`deny_unknown_fields` everywhere, so a typo is an error rather
//! than a silently ignored setting), the defaults, and [`RawConfig::validate`], which turns raw
//! strings into typed values and reports **every** problem at once, one per line, each naming
//! the field and the fix.
//!
//! Invariants:
//! - nothing in kubesup reads a raw value. Everything downstream takes a validated [`Config`],
//!   so a bad config fails before anything is written or started;
//! - `validate` never stops at the first problem: each section pushes into one [`Problems`],
//!   and a [`Config`] exists only when that list is empty;
//! - a problem's text is the contract with the operator (and with the CLI tests): the field as
//!   written in the file, then what to do.
//!
//! Must not: touch the disk beyond reading the one config file, start or write anything, or
//! guess a fix for a bad value (a wrong value is reported, never silently replaced).
//!
//! Room map: this file holds the error, the problem list and the layering entry points
//! ([`load`], [`load_raw`]); `raw` is the reading side (the file format, its defaults, the
//! env/flag [`Overrides`] and how they are laid over the file); `validate` is one function per
//! section turning raw into typed values; `types` is the typed result, [`Config`].
//!
//! Why YAML: every file an operator of this tool already edits is YAML (kubeconfigs, the
//! KubeletConfiguration kubesup writes, k3s' and k0s' own configs), and `kubectl`-style tooling
//! reads it. The environment layer comes from clap's `env` support on each flag, which gives
//! flag > env; applying the flag layer over the file gives the rest of the order.

mod raw;
mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use raw::{
    Overrides, RawBackup, RawConfig, RawContainerd, RawDns, RawFetch, RawFlannel, RawJoin,
    RawKubelet, RawPki, RawPorts, RawSupervisor, YamlError,
};
pub use types::{
    BackupSettings, Config, ContainerdSettings, DnsSettings, FetchSettings, FlannelSettings,
    KubeletSettings, LogFormat, PkiSettings, Ports, SupervisorSettings,
};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/kubesup";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kubesup/config.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML's own message (line, column, the unknown key) is the cause, chained once.
    #[error("config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: YamlError,
    },
    #[error("{0}")]
    Invalid(Problems),
}

impl crate::errors::Exit for ConfigError {
    fn exit_code(&self) -> u8 {
        crate::errors::EXIT_INVALID
    }

    /// Problems speak for themselves, one line each (`invalid config: FIELD: what to do`).
    fn render(&self) -> String {
        match self {
            Self::Invalid(p) => p.to_string(),
            other => format!("error: {}", crate::errors::chain(other)),
        }
    }
}

/// Every validation problem found, one per line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config key (`service-cidr`, `ports.etcd-client`), as written in the file.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "invalid config: {}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

impl Problems {
    /// One problem alone.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut p = Self::default();
        p.push(field, message);
        p
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// A node's config: the file (the one named, or [`DEFAULT_CONFIG_FILE`] when it exists), then
/// `KUBESUP_*` environment and flags (`overrides`), validated as a whole.
pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
    load_raw(file, overrides)?.validate()
}

/// The same layers, not yet validated: a worker validates again once the master's cluster
/// settings are laid over them.
pub fn load_raw(file: Option<&Path>, overrides: Overrides) -> Result<RawConfig, ConfigError> {
    let default = Path::new(DEFAULT_CONFIG_FILE);
    let file = file.or_else(|| default.exists().then_some(default));
    let mut raw = match file {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    raw.apply(overrides);
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several problems read as several lines, each with the same prefix the CLI tests match.
    #[test]
    fn problems_print_one_line_each() {
        let mut p = Problems::default();
        p.push("api-port", "0 is not a port; use 1-65535");
        p.push("data-dir", "\"rel\" is relative");
        assert_eq!(
            p.to_string(),
            "invalid config: api-port: 0 is not a port; use 1-65535\n\
             invalid config: data-dir: \"rel\" is relative"
        );
    }

    /// A file that is not YAML names the file, then the YAML's message, once (the cause is a
    /// source, not repeated in the text).
    #[test]
    fn a_parse_error_prints_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "advertize: 10.0.0.1\n").unwrap();
        let e = RawConfig::from_file(&file).unwrap_err();
        let text = crate::errors::chain(&e);
        let prefix = format!("config file {}: ", file.display());
        assert!(text.starts_with(&prefix), "{text}");
        assert_eq!(
            text.matches("unknown field `advertize`").count(),
            1,
            "{text}"
        );
    }
}
