//! `kubesup backup [--output FILE] [--encrypt-key-file F]` and `kubesup backup list`, on a
//! master whose `kubesup master` is running (the snapshot is streamed from its etcd member).
//!
//! The config is the node's (`--config`, `--data-dir`) with a joined or restored master's
//! recorded cluster settings laid over it, as `kubesup master` lays them: the archive's
//! settings are the cluster's, which is what a restore must start from.

use crate::backup::{self, BackupError, Dest};
use crate::cli::{BackupArgs, BackupCommand, NodeArgs};
use crate::cmd::{Globals, SetupError};
use crate::config::{Config, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum BackupCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("cannot render the backups as JSON")]
    Json(#[from] serde_json::Error),
}

crate::errors::exit_via!(BackupCmdError: Config, Setup, Backup);

pub fn run(a: BackupArgs, g: &Globals) -> Result<(), BackupCmdError> {
    g.init_tracing(None)?;
    match a.command {
        Some(BackupCommand::List { node, json }) => list(&node, json, g),
        None => {
            let cfg = master_config(&a.node, g)?;
            let key = a
                .encrypt_key_file
                .as_deref()
                .map(backup::read_key_file)
                .transpose()?
                .map(std::sync::Arc::new);
            let dest = match a.output {
                Some(f) => Dest::File(f),
                None => Dest::Dir(cfg.backup.dir.clone()),
            };
            let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
            let made = crate::cmd::runtime()?.block_on(backup::create(&cfg, &tls, dest, key))?;
            println!(
                "{} (etcd revision {}, {} bytes, {:.1}s); it holds the cluster's CA keys: keep it \
                 as safe as they are",
                made.path.display(),
                made.revision,
                made.size,
                made.elapsed.as_secs_f64()
            );
            Ok(())
        }
    }
}

/// The node's config, with the cluster settings a joined (or restored) master recorded.
fn master_config(node: &NodeArgs, g: &Globals) -> Result<Config, BackupCmdError> {
    let raw = g.raw_config(&node.common())?;
    let paths = crate::paths::Paths::new(&raw.data_dir);
    let joined = crate::cmd::master::join::read_joined(&paths).map_err(|e| {
        ConfigError::Invalid(crate::config::Problems::one(
            "data-dir",
            crate::errors::chain(&e),
        ))
    })?;
    Ok(crate::cmd::master::join::config_with(raw, joined.as_ref())?)
}

fn list(node: &NodeArgs, json: bool, g: &Globals) -> Result<(), BackupCmdError> {
    let cfg = g.node_config(node)?;
    let all = backup::list(&cfg.backup.dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no backups in {}", cfg.backup.dir.display());
        return Ok(());
    }
    println!(
        "{:<18} {:>12} {:>10}  PATH",
        "TIME (UTC)", "SIZE", "REVISION"
    );
    for b in all {
        println!(
            "{:<18} {:>12} {:>10}  {}",
            b.stamp,
            b.size,
            b.revision,
            b.path.display()
        );
    }
    Ok(())
}
