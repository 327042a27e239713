//! Backup, restore and the way back from lost quorum: what a cluster needs to come back is
//! etcd's data plus the keys that make it trustworthy, in one archive.
//!
//! - [`create`] streams a snapshot from this master's etcd member (etcd-client's maintenance
//!   API, etcd's own SHA-256 trailer kept) into an archive ([`archive`]) with the cluster-wide
//!   keys ([`crate::pki::ClusterMaterial`]), the cluster settings and kubesup's version,
//!   optionally sealed with AES-256-GCM ([`crypt`]).
//! - [`schedule`] makes one every `backup.schedule` on the etcd leader's master only, so one
//!   cluster makes one backup per period, and keeps the newest `backup.keep` ([`prune`]).
//! - [`restore`] turns a verified archive into a data dir holding a new one-member etcd
//!   cluster and the same CAs; [`reset`] is `kubesup master --cluster-reset`'s record.
//!
//! Invariants: an archive holds CA keys, so it is 0600 from its first byte and appears under
//! its name only complete; nothing secret is logged (keys travel as
//! [`crate::pki::Secret`]/[`crypt::KeyFile`], whose `Debug` prints `***`); an archive is
//! verified whole, against its manifest, before a restore writes anything.
//!
//! Must not: import `crate::cmd` (the commands call this, never the reverse); delete data of
//! an operator's (a restore over old data moves it aside).

pub mod archive;
pub mod crypt;
pub mod reset;
pub mod restore;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::info;

pub use archive::{BackupInfo, Manifest, Verified};
pub use crypt::{CryptError, KeyFile};
pub use schedule::schedule;

use crate::config::Config;
use crate::etcd::EtcdTls;
use crate::join::ClusterSettings;
use crate::pki::ClusterMaterial;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Fs(crate::fsutil::FsError),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the key file {}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is encrypted; pass the key file it was made with: --encrypt-key-file FILE", path.display())]
    NeedsKey { path: PathBuf },
    #[error(
        "{} is not encrypted, but --encrypt-key-file {} was given; drop the flag to restore it",
        path.display(),
        key.display()
    )]
    NotEncrypted { path: PathBuf, key: PathBuf },
    #[error("refusing {}", path.display())]
    Crypt {
        path: PathBuf,
        #[source]
        source: CryptError,
    },
    #[error("refusing {}: it is truncated (a backup cut short, or a partial copy)", path.display())]
    Truncated { path: PathBuf },
    #[error("refusing {}: it is damaged ({reason})", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("refusing {}: it is not a kubesup backup of this version ({reason})", path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error("refusing {}: member {member} is missing", path.display())]
    MissingMember { path: PathBuf, member: String },
    #[error(
        "refusing {}: member {member} does not match the SHA-256 in its manifest (damaged or \
         tampered with)",
        path.display()
    )]
    Checksum { path: PathBuf, member: String },
    #[error("etcd's snapshot stream for {member} was {got} bytes where {expected} were announced")]
    SnapshotSize {
        member: String,
        expected: u64,
        got: u64,
    },
    #[error("cannot reach this master's etcd")]
    Etcd(#[source] crate::etcd::EtcdError),
    #[error("etcd request {what} failed")]
    EtcdRequest {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd's snapshot stream stalled for {}", humantime::format_duration(*.0))]
    Stalled(Duration),
    #[error("the backup was interrupted before it was complete; no archive was written")]
    Interrupted,
    #[error("cannot read this master's cluster keys (is this a master's data dir?)")]
    Keys(#[source] crate::pki::PkiError),
    #[error("cannot install the archive's cluster keys")]
    Install(#[source] crate::pki::PkiError),
    #[error(
        "data dir {} already holds a node ({}); restore into an empty data dir, or pass --force \
         to move the old data aside (it is kept, not deleted)",
        data_dir.display(),
        found.join(", ")
    )]
    NotEmpty {
        data_dir: PathBuf,
        found: Vec<String>,
    },
    #[error("cannot move {} aside to {}", from.display(), to.display())]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fetched etcd {version} has no {tool}; it cannot restore a snapshot")]
    NoTool { tool: &'static str, version: String },
    #[error("cannot run {}", tool.display())]
    Spawn {
        tool: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} snapshot restore failed ({status}): {output}", tool.display())]
    Tool {
        tool: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "--cluster-reset needs this master's etcd data, and {} has none: it is for a master \
         that was a member of the cluster that lost its quorum",
        data_dir.display()
    )]
    NothingToReset { data_dir: PathBuf },
    #[error("cannot list backups in {}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::errors::Exit for BackupError {
    fn exit_code(&self) -> u8 {
        match self {
            // Refused before anything was written: the input (archive, key, data dir, flag)
            // is what must change.
            Self::NeedsKey { .. }
            | Self::NotEncrypted { .. }
            | Self::Truncated { .. }
            | Self::Damaged { .. }
            | Self::Foreign { .. }
            | Self::MissingMember { .. }
            | Self::Checksum { .. }
            | Self::NotEmpty { .. }
            | Self::NothingToReset { .. }
            | Self::Crypt {
                source:
                    CryptError::ShortKey { .. }
                    | CryptError::WrongKey { .. }
                    | CryptError::Tampered { .. }
                    | CryptError::Truncated
                    | CryptError::Trailing
                    | CryptError::Malformed { .. },
                ..
            } => crate::errors::EXIT_INVALID,
            _ => crate::errors::EXIT_FAILURE,
        }
    }
}

/// Reads `--encrypt-key-file`.
pub fn read_key_file(path: &Path) -> Result<KeyFile, BackupError> {
    let bytes = std::fs::read(path).map_err(|source| BackupError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    KeyFile::from_bytes(path, &bytes).map_err(|source| BackupError::Crypt {
        path: path.to_path_buf(),
        source,
    })
}

/// File names of backups: `kubesup-backup-20261207T031500Z-r1234.tar`. The stamp has a fixed
/// width, so names sort in time order.
const PREFIX: &str = "kubesup-backup-";
const SUFFIX: &str = ".tar";

/// The name of a backup taken at `at` of etcd revision `revision`.
pub fn file_name(at: SystemTime, revision: i64) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{PREFIX}{stamp}-r{revision}{SUFFIX}")
}

/// One backup in a backup dir, as `kubesup backup list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub path: PathBuf,
    /// `20261207T031500Z`, from the name.
    pub stamp: String,
    pub revision: i64,
    pub size: u64,
}

fn parse_name(name: &str) -> Option<(String, i64)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (stamp, rev) = rest.split_once("-r")?;
    let ok = stamp.len() == 16 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T';
    ok.then(|| Some((stamp.to_string(), rev.parse().ok()?)))?
}

/// The backups in `dir`, oldest first. Temp files of backups being written (hidden, named
/// `.NAME.partial.PID`) are not backups and are not listed.
pub fn list(dir: &Path) -> Result<Vec<Listed>, BackupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BackupError::List {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stamp, revision)) = parse_name(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Listed {
            path: entry.path(),
            stamp,
            revision,
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| (&a.stamp, a.revision).cmp(&(&b.stamp, b.revision)));
    Ok(out)
}

/// A temp file untouched this long belongs to a backup that died (a writer that is alive
/// writes every few milliseconds, and gives up after [`STALL`] without data).
const ABANDONED: Duration = Duration::from_secs(600);

/// Keeps the newest `keep` backups in `dir` and removes the others, and the temp files of
/// backups that died midway; returns what it removed. Only files named as kubesup names
/// backups (and their temp files) are touched.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let mut removed = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let temp = name.starts_with(&format!(".{PREFIX}")) && name.contains(".partial.");
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED);
            if temp && old && std::fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    let all = list(dir)?;
    let excess = all.len().saturating_sub(keep);
    for old in all.into_iter().take(excess) {
        match std::fs::remove_file(&old.path) {
            Ok(()) => removed.push(old.path),
            Err(e) => {
                tracing::warn!(path = %old.path.display(), error = %e, "cannot remove an old backup")
            }
        }
    }
    Ok(removed)
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct Made {
    pub path: PathBuf,
    pub revision: i64,
    pub size: u64,
    pub elapsed: Duration,
}

/// Where [`create`] puts the archive: a file, or a dir (named by time and revision there).
#[derive(Debug, Clone)]
pub enum Dest {
    File(PathBuf),
    Dir(PathBuf),
}

/// A message from the snapshot stream to the archive writer's thread.
enum Piece {
    Start {
        info: Box<BackupInfo>,
        keys: Vec<u8>,
        size: u64,
        dest: PathBuf,
    },
    Chunk(Vec<u8>),
    Done,
}

/// Each message of the snapshot stream must come within this; etcd sends 32 KiB at a time.
const STALL: Duration = Duration::from_secs(60);

/// Makes one backup from this master's own etcd member (its client port on 127.0.0.1), with
/// this master's cluster keys. The archive is written on a blocking thread, fed through a bounded channel,
/// so that a scheduled backup inside the daemon never stalls the supervisor's one thread.
pub async fn create(
    cfg: &Config,
    tls: &EtcdTls,
    dest: Dest,
    key: Option<std::sync::Arc<KeyFile>>,
) -> Result<Made, BackupError> {
    let started = std::time::Instant::now();
    let material = ClusterMaterial::read(&cfg.paths.pki()).map_err(BackupError::Keys)?;
    let keys = serde_json::to_vec(&material).map_err(|e| BackupError::Write {
        path: PathBuf::from(archive::KEYS),
        source: std::io::Error::other(e),
    })?;
    drop(material);
    // No request timeout: a snapshot of gigabytes takes as long as it takes. A stalled stream
    // is caught message by message instead (STALL).
    let opts = crate::etcd::tls_options(tls)
        .map_err(BackupError::Etcd)?
        .with_connect_timeout(Duration::from_secs(5));
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    let mut client = crate::etcd::connect_with(&endpoint, opts)
        .await
        .map_err(BackupError::Etcd)?;
    let status = tokio::time::timeout(Duration::from_secs(10), client.status())
        .await
        .map_err(|_| BackupError::Stalled(Duration::from_secs(10)))?
        .map_err(|source| BackupError::EtcdRequest {
            what: "status",
            source,
        })?;
    let header = status.header();
    let revision = header.map(|h| h.revision()).unwrap_or_default();
    let now = SystemTime::now();
    let info = BackupInfo {
        format: archive::FORMAT,
        kubesup_version: env!("CARGO_PKG_VERSION").into(),
        created: humantime::format_rfc3339_seconds(now).to_string(),
        node_name: cfg.node_name.clone(),
        settings: ClusterSettings::of(cfg),
        etcd_version: status.version().to_string(),
        etcd_revision: revision,
        etcd_cluster_id: crate::etcd::members::hex(header.map(|h| h.cluster_id()).unwrap_or(0)),
        etcd_member_id: crate::etcd::members::hex(header.map(|h| h.member_id()).unwrap_or(0)),
    };
    let dest = match dest {
        Dest::File(f) => f,
        Dest::Dir(d) => d.join(file_name(now, revision)),
    };

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(16);
    let key_for_writer = key.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<PathBuf, BackupError> {
        let Some(Piece::Start {
            info,
            keys,
            size,
            dest,
        }) = rx.blocking_recv()
        else {
            return Err(BackupError::Interrupted);
        };
        let mut w = archive::Writer::create(&dest, key_for_writer.as_deref())?;
        let info = serde_json::to_vec_pretty(&info).map_err(|e| BackupError::Write {
            path: dest.clone(),
            source: std::io::Error::other(e),
        })?;
        w.add(archive::INFO, &info)?;
        w.add(archive::KEYS, &keys)?;
        w.begin(archive::SNAPSHOT, size)?;
        loop {
            match rx.blocking_recv() {
                Some(Piece::Chunk(c)) => w.stream(&c)?,
                Some(Piece::Done) => break,
                // The sender went away without Done: the writer is dropped, and with it the
                // temp file.
                Some(Piece::Start { .. }) | None => return Err(BackupError::Interrupted),
            }
        }
        w.end()?;
        w.finish()
    });

    let streamed = stream_snapshot(&mut client, &tx, info, keys, dest).await;
    // On an error, dropping the sender without Done makes the writer abandon the temp file.
    if streamed.is_ok() {
        let _ = tx.send(Piece::Done).await;
    }
    drop(tx);
    let written = writer.await.map_err(|_| BackupError::Interrupted)?;
    // The writer's own error (a size that does not add up, a full disk) is the cause; the
    // stream's "interrupted" is only its echo.
    let path = match (streamed, written) {
        (_, Err(e)) if !matches!(e, BackupError::Interrupted) => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(()), written) => written?,
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let made = Made {
        path,
        revision,
        size,
        elapsed: started.elapsed(),
    };
    info!(
        path = %made.path.display(),
        revision,
        size,
        encrypted = key.is_some(),
        elapsed = ?made.elapsed,
        "backup written"
    );
    Ok(made)
}

async fn stream_snapshot(
    client: &mut etcd_client::Client,
    tx: &tokio::sync::mpsc::Sender<Piece>,
    info: BackupInfo,
    keys: Vec<u8>,
    dest: PathBuf,
) -> Result<(), BackupError> {
    let mut stream = tokio::time::timeout(STALL, client.snapshot())
        .await
        .map_err(|_| BackupError::Stalled(STALL))?
        .map_err(snapshot_failed)?;
    let Some(first) = next(&mut stream).await? else {
        return Err(BackupError::SnapshotSize {
            member: archive::SNAPSHOT.into(),
            expected: 1,
            got: 0,
        });
    };
    // etcd announces the database's size (what this message holds plus what remains) and,
    // after the database, sends its SHA-256 (32 bytes) in one more message: the stream is
    // exactly `etcdctl snapshot save`'s file, whose trailer `snapshot restore` checks.
    let size = first.blob().len() as u64 + first.remaining_bytes() + 32;
    let send = |p: Piece| async { tx.send(p).await.map_err(|_| BackupError::Interrupted) };
    send(Piece::Start {
        info: Box::new(info),
        keys,
        size,
        dest,
    })
    .await?;
    send(Piece::Chunk(first.blob().to_vec())).await?;
    while let Some(m) = next(&mut stream).await? {
        send(Piece::Chunk(m.blob().to_vec())).await?;
    }
    Ok(())
}

fn snapshot_failed(source: etcd_client::Error) -> BackupError {
    BackupError::EtcdRequest {
        what: "snapshot",
        source,
    }
}

/// The next message of the snapshot stream, within [`STALL`].
async fn next(
    s: &mut etcd_client::SnapshotStreaming,
) -> Result<Option<etcd_client::SnapshotResponse>, BackupError> {
    tokio::time::timeout(STALL, s.message())
        .await
        .map_err(|_| BackupError::Stalled(STALL))?
        .map_err(snapshot_failed)
}
