//! `kubesup restore FILE [--data-dir DIR] [--force] [--encrypt-key-file F]`: a backup becomes
//! the data dir of the first master of the restored cluster.
//!
//! In order, and nothing is written before step 4:
//! 1. the archive is read whole and every member checked against its manifest (a tampered,
//!    truncated or foreign archive, or a wrong key, is refused here with one line);
//! 2. the data dir must hold no node state (unless `--force`);
//! 3. this node's flags are validated with the archive's cluster settings laid over them, as a
//!    joining master's are (a conflicting flag is refused by key);
//! 4. under the data-dir lock: old state moved aside (`--force`), the etcd release fetched,
//!    the archive read again into a staging dir, etcd's data restored there as a new
//!    one-member cluster ([`crate::backup::restore`]), the cluster keys installed, the cluster
//!    settings recorded (`cluster.json`, so that `kubesup master` and later joiners run with
//!    them), and etcd's data renamed into place last.

use std::path::PathBuf;

use tracing::info;

use crate::backup::{self, BackupError, archive, restore};
use crate::cli::RestoreArgs;
use crate::cmd::master::join::JoinedCluster;
use crate::cmd::{Globals, SetupError};
use crate::config::ConfigError;
use crate::model::NodeRole;

#[derive(Debug, thiserror::Error)]
pub enum RestoreCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Lock(#[from] crate::supervise::lock::LockError),
    #[error(transparent)]
    Build(#[from] crate::plan::BuildError),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: crate::fsutil::FsError,
    },
}

crate::errors::exit_via!(RestoreCmdError: Config, Setup, Backup);

pub fn run(a: RestoreArgs, g: &Globals) -> Result<(), RestoreCmdError> {
    let key = a
        .encrypt_key_file
        .as_deref()
        .map(backup::read_key_file)
        .transpose()?;
    // 1. The whole archive, before anything else: a bad one is the first thing to hear of.
    let verified = archive::verify(&a.file, key.as_ref())?;

    // 2. The target.
    let mut raw = g.raw_config(&a.common)?;
    let paths = crate::paths::Paths::new(&raw.data_dir);
    let found = restore::existing_state(&paths);
    if !found.is_empty() && !a.force {
        return Err(BackupError::NotEmpty {
            data_dir: paths.data_dir().to_path_buf(),
            found: found
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
        }
        .into());
    }

    // 3. This node's config, with the cluster's settings.
    let settings = verified.info.settings.clone();
    settings.apply(&mut raw)?;
    let cfg = raw.validate()?;
    let advertise = cfg.require_advertise()?;
    g.init_tracing(Some(cfg.log_format))?;
    info!(
        archive = %a.file.display(),
        created = %verified.info.created,
        from = %verified.info.node_name,
        etcd_revision = verified.info.etcd_revision,
        "the archive is whole: every member matches its manifest"
    );

    // 4. Under the lock: no kubesup may run on this data dir meanwhile.
    let _lock = crate::supervise::lock::DataDirLock::acquire(&paths.lock_file())?;
    if !found.is_empty() {
        let aside = restore::move_aside(&paths, &found)?;
        println!("the data dir's old state was moved to {}", aside.display());
    }
    let role = NodeRole::Master { schedulable: false };
    let (fetched, manifest) =
        crate::cmd::runtime()?.block_on(crate::plan::fetch_binaries(&cfg, role))?;
    let tool = restore::Tool::pick(&fetched, &manifest.etcd_version)?;

    let staging = paths.restore_staging();
    let _ = std::fs::remove_dir_all(&staging);
    let write = |path: PathBuf| {
        move |source| RestoreCmdError::Write {
            path: path.clone(),
            source,
        }
    };
    crate::fsutil::create_dir_all(&staging).map_err(write(staging.clone()))?;
    let result = (|| -> Result<(), RestoreCmdError> {
        let snapshot = paths.restore_staging_snapshot();
        let (_, material) = archive::extract(&a.file, key.as_ref(), &snapshot)?;
        let peer_url = crate::components::https_url(advertise, cfg.ports.etcd_peer);
        let token = restore::new_token();
        info!(tool = %tool.path().display(), name = %cfg.node_name, peer = %peer_url, "restoring etcd's data as a new one-member cluster");
        tool.run(
            &snapshot,
            &cfg.node_name,
            &peer_url,
            &token,
            &paths.restore_staging_etcd(),
        )?;
        material
            .install(&paths.pki())
            .map_err(BackupError::Install)?;
        let joined = JoinedCluster {
            join_url: crate::components::https_url(advertise, cfg.join_port),
            settings,
            etcd_client_urls: vec![crate::etcd::endpoint(advertise, cfg.ports.etcd_client)],
        };
        let text = serde_json::to_vec_pretty(&joined).map_err(|e| BackupError::Write {
            path: paths.joined_cluster(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::write_atomic(&paths.joined_cluster(), &text, 0o600)
            .map_err(write(paths.joined_cluster()))?;
        // Last: etcd's data is what makes this data dir a member.
        let etcd = paths.etcd_data_dir();
        std::fs::rename(paths.restore_staging_etcd(), &etcd).map_err(|source| {
            BackupError::MoveAside {
                from: paths.restore_staging_etcd(),
                to: etcd.clone(),
                source,
            }
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| BackupError::Write {
                path: etcd.clone(),
                source,
            },
        )?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    println!(
        "restored {} (etcd revision {}, taken on {} at {}) into {} as a new one-member cluster; \
         start it with `kubesup master` on this data dir. Other masters: `kubesup reset`, then \
         join again with `kubesup master --join`.",
        a.file.display(),
        verified.info.etcd_revision,
        verified.info.node_name,
        verified.info.created,
        paths.data_dir().display()
    );
    Ok(())
}
