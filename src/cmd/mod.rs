//! One file per subcommand: each takes its parsed arguments, does its work, and returns its own
//! error type, which knows its exit code ([`crate::errors::Exit`]).
//!
//! Also here: what every subcommand shares to get going, [`Globals`] (the global flags),
//! tracing set-up and the async runtime.

pub mod backup;
pub mod certs;
pub mod completions;
pub mod config;
pub mod etcd;
pub mod fetch;
pub mod install;
pub mod jointoken;
pub mod manpage;
pub mod master;
pub mod nodelb;
pub mod reset;
pub mod restore;
pub mod status;
pub mod supervise;
pub mod token;
pub mod version;
pub mod worker;

use std::io::IsTerminal;

use crate::cli::{CommonArgs, NodeArgs};
use crate::config::{Config, ConfigError, LogFormat, RawConfig};
use crate::errors::{EXIT_INVALID, Exit};
use crate::etcd::EtcdTls;
use crate::paths::PkiPaths;

/// The client certificate kubesup's own reads of a master's etcd use (`etcd members`,
/// `status`, flannel's config): the healthcheck client, so that they never borrow the API
/// server's identity.
pub fn healthcheck_tls(pki: &PkiPaths) -> EtcdTls {
    let client = pki.etcd_healthcheck_client();
    EtcdTls {
        ca: pki.etcd_ca().cert,
        cert: client.cert,
        key: client.key,
    }
}

/// The flags every subcommand takes.
#[derive(Debug, Clone)]
pub struct Globals {
    /// Log filter, tracing-subscriber's `Targets` syntax.
    pub log: String,
    /// `--log-format`, when given; the config file's setting applies otherwise.
    pub log_format: Option<String>,
}

impl Globals {
    /// Starts tracing with `--log-format`, or else `fallback` (the config's), or text.
    pub fn init_tracing(&self, fallback: Option<LogFormat>) -> Result<(), SetupError> {
        let format = match self.log_format.as_deref() {
            None => fallback.unwrap_or_default(),
            Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(SetupError::LogFormat(other.to_string())),
        };
        init_tracing(&self.log, format)
    }

    /// The node's validated config from `--config`, the environment and the flags.
    pub fn config(&self, common: &CommonArgs) -> Result<Config, ConfigError> {
        crate::config::load(
            common.config.as_deref(),
            common.overrides(self.log_format.clone()),
        )
    }

    /// The same layers, not yet validated (see [`crate::config::load_raw`]).
    pub fn raw_config(&self, common: &CommonArgs) -> Result<RawConfig, ConfigError> {
        crate::config::load_raw(
            common.config.as_deref(),
            common.overrides(self.log_format.clone()),
        )
    }

    /// The config of the node whose data dir `node` names (for commands that talk to it).
    pub fn node_config(&self, node: &NodeArgs) -> Result<Config, ConfigError> {
        crate::config::load(node.config.as_deref(), node.common().overrides(None))
    }
}

/// What can go wrong before a subcommand starts its work.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--log {filter:?} is not a valid log filter; use e.g. info or kubesup=debug,warn")]
    LogFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("--log-format {0:?} is unknown; use text or json")]
    LogFormat(String),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl Exit for SetupError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::LogFilter { .. } | Self::LogFormat(_) => EXIT_INVALID,
            Self::Runtime(_) => crate::errors::EXIT_FAILURE,
        }
    }
}

fn init_tracing(filter: &str, format: LogFormat) -> Result<(), SetupError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `Targets` ("info", "kubesup=debug,warn"): per-target levels without EnvFilter's regex
    // engine, which kubesup would carry resident for span-field matching nobody uses.
    let targets: tracing_subscriber::filter::Targets =
        filter.parse().map_err(|source| SetupError::LogFilter {
            filter: filter.to_string(),
            source,
        })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(targets);
    // A second init (tests calling run twice) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    Ok(())
}

/// One thread runs every task: a supervisor is idle almost always, its work is waiting on
/// events, and each extra worker thread costs resident memory (its stack and malloc arena).
/// Blocking work (file hashing, helper commands) goes to the small blocking pool.
pub fn runtime() -> Result<tokio::runtime::Runtime, SetupError> {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_stack_size(512 * 1024)
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)
}
