//! `kubesup token create|list|delete`, against the etcd of the master on this data dir. Tokens
//! live in the cluster's etcd, so any master can make one and every master's join API accepts
//! it; a token needs a master's etcd client key to make, so only a master can make one.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::TokenCommand;
use crate::cmd::{Globals, SetupError};
use crate::config::{ConfigError, Problems};
use crate::etcd::{self, EtcdError, EtcdTls};
use crate::join::store::{self, StoreError};
use crate::join::token::{self, Token, TokenError};
use crate::model::Role;

#[derive(Debug, thiserror::Error)]
pub enum TokenCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot reach the master's etcd: is `kubesup master` running on {data_dir}?")]
    Etcd {
        data_dir: PathBuf,
        #[source]
        source: EtcdError,
    },
    #[error("cannot read the cluster CA {path}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pin(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::errors::exit_via!(TokenCmdError: Config, Setup);

pub fn run(cmd: TokenCommand, g: &Globals) -> Result<(), TokenCmdError> {
    g.init_tracing(None)?;
    crate::cmd::runtime()?.block_on(token(cmd, g))
}

async fn token(cmd: TokenCommand, g: &Globals) -> Result<(), TokenCmdError> {
    let node = match &cmd {
        TokenCommand::Create { node, .. }
        | TokenCommand::List { node }
        | TokenCommand::Delete { node, .. } => node,
    };
    let cfg = g.node_config(node)?;
    let pki = cfg.paths.pki();
    let client_cert = pki.apiserver_etcd_client();
    let tls = EtcdTls {
        ca: pki.etcd_ca().cert,
        cert: client_cert.cert,
        key: client_cert.key,
    };
    let endpoint = etcd::local_endpoint(cfg.ports.etcd_client);
    let mut etcd = etcd::connect(&endpoint, &tls)
        .await
        .map_err(|source| TokenCmdError::Etcd {
            data_dir: cfg.paths.data_dir().to_path_buf(),
            source,
        })?;
    match cmd {
        TokenCommand::Create {
            role,
            ttl,
            description,
            ..
        } => {
            // A master token carries the CA keys to whoever holds it: short-lived by default.
            let ttl = ttl.unwrap_or_else(|| match role {
                Role::Master => "1h".into(),
                Role::Worker => "24h".into(),
            });
            let ttl = match ttl.trim() {
                "0" => Duration::ZERO,
                t => humantime::parse_duration(t).map_err(|e| {
                    let mut p = Problems::default();
                    p.push(
                        "ttl",
                        format!("{t:?} is not a duration ({e}); use e.g. 24h, 30m, or 0 for never"),
                    );
                    ConfigError::Invalid(p)
                })?,
            };
            let ca = pki.ca().cert;
            let ca_pem = std::fs::read_to_string(&ca)
                .map_err(|source| TokenCmdError::ReadCa { path: ca, source })?;
            let pin = token::ca_pin(&ca_pem)?;
            let token = Token::generate(&pin);
            let rec = store::create(&mut etcd, &token, role, ttl, description).await?;
            if ttl.is_zero() {
                eprintln!(
                    "warning: this token never expires; delete it with `kubesup token delete {}` when done",
                    rec.id
                );
            }
            // The only time the secret is ever shown.
            println!("{}", token.expose());
        }
        TokenCommand::List { .. } => {
            let mut rows = store::list(&mut etcd).await?;
            rows.sort_by(|a, b| a.created.cmp(&b.created));
            println!(
                "{:<8} {:<7} {:<22} {:<22} DESCRIPTION",
                "ID", "ROLE", "CREATED", "EXPIRES"
            );
            for r in rows {
                println!(
                    "{:<8} {:<7} {:<22} {:<22} {}",
                    r.id,
                    r.role,
                    r.created,
                    r.expires.as_deref().unwrap_or("never"),
                    r.description.as_deref().unwrap_or("")
                );
            }
        }
        TokenCommand::Delete { id, .. } => {
            store::delete(&mut etcd, &id).await?;
            println!("deleted token {id}");
        }
    }
    Ok(())
}
