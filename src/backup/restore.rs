//! Restore: a verified archive becomes a data dir that `kubesup master` starts as the first
//! master of the restored cluster.
//!
//! etcd's data is restored as a **new one-member cluster** (new member ID, new cluster ID,
//! this node's name and peer URL, a new `--initial-cluster-token`), by the tool of the etcd
//! release that will run it: `etcdutl snapshot restore` from 3.5 on, with
//! `--bump-revision 1000000000 --mark-compacted` (etcd's recovery guide for Kubernetes: no
//! watcher sees revisions go backwards, and every watch is made to list again), and
//! `etcdctl snapshot restore` on 3.4, which has neither. Both check the snapshot's own
//! SHA-256 trailer; kubesup never passes `--skip-hash-check`.
//!
//! Order: everything is restored into a staging dir first; the keys are installed, then the
//! staged etcd data is renamed into place last, since etcd's data is what makes a data dir a
//! member ([`crate::paths::Paths::etcd_has_data`]): a restore killed midway leaves a data dir
//! that is not taken for a restored one.
//!
//! Must not: delete anything of the operator's. Old state is moved aside, whole, into
//! `before-restore-STAMP/` in the data dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::info;

use super::BackupError;
use crate::fetch::FetchedSet;
use crate::model::KubeVersion;
use crate::paths::Paths;

/// What in a data dir is a node's state (as opposed to the binary cache, logs and lock,
/// which a restore reuses): any of these makes the data dir "not empty".
pub fn existing_state(paths: &Paths) -> Vec<PathBuf> {
    paths
        .node_state()
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect()
}

/// Moves the node state of `paths` into `before-restore-STAMP/` in the data dir; returns it.
pub fn move_aside(paths: &Paths, found: &[PathBuf]) -> Result<PathBuf, BackupError> {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let aside = paths.moved_aside(&stamp);
    crate::fsutil::create_dir_all(&aside).map_err(BackupError::Fs)?;
    for from in found {
        let Some(name) = from.file_name() else {
            continue;
        };
        let to = aside.join(name);
        std::fs::rename(from, &to).map_err(|source| BackupError::MoveAside {
            from: from.clone(),
            to: to.clone(),
            source,
        })?;
    }
    info!(moved_to = %aside.display(), "moved the data dir's old state aside");
    Ok(aside)
}

/// The etcd tool that restores a snapshot for the etcd version that will run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// etcd 3.4: `ETCDCTL_API=3 etcdctl snapshot restore`.
    Etcdctl(PathBuf),
    /// etcd 3.5 and later: `etcdutl snapshot restore`, with the revision bump.
    Etcdutl(PathBuf),
}

impl Tool {
    /// From the fetched etcd release of version `etcd_version` (`v3.4.23`).
    pub fn pick(fetched: &FetchedSet, etcd_version: &str) -> Result<Self, BackupError> {
        let at_least_35 = KubeVersion::parse(etcd_version).is_some_and(|v| v.at_least(3, 5));
        let (name, wrap): (&'static str, fn(PathBuf) -> Self) = if at_least_35 {
            ("etcdutl", Self::Etcdutl)
        } else {
            ("etcdctl", Self::Etcdctl)
        };
        let bin = fetched.binary(name).ok_or_else(|| BackupError::NoTool {
            tool: name,
            version: etcd_version.to_string(),
        })?;
        Ok(wrap(bin.path.clone()))
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Etcdctl(p) | Self::Etcdutl(p) => p,
        }
    }

    /// The command that restores `snapshot` into `data_dir` (which must not exist) as member
    /// `name` of a new one-member cluster at `peer_url`.
    pub fn command(
        &self,
        snapshot: &Path,
        name: &str,
        peer_url: &str,
        token: &str,
        data_dir: &Path,
    ) -> Command {
        let mut c = Command::new(self.path());
        // An explicit environment, as for every process kubesup starts: nothing of the
        // caller's ETCDCTL_* settings leaks in.
        c.env_clear();
        c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Self::Etcdctl(_) = self {
            c.env("ETCDCTL_API", "3");
        }
        c.arg("snapshot")
            .arg("restore")
            .arg(snapshot)
            .arg(format!("--name={name}"))
            .arg(format!("--initial-cluster={name}={peer_url}"))
            .arg(format!("--initial-cluster-token={token}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--data-dir={}", data_dir.display()));
        if let Self::Etcdutl(_) = self {
            c.arg("--bump-revision=1000000000").arg("--mark-compacted");
        }
        c
    }

    /// Runs [`Tool::command`] to completion. A one-shot command (`kubesup restore`), not the
    /// daemon: there is no reaper here for its exit status to be stolen by.
    pub fn run(
        &self,
        snapshot: &Path,
        name: &str,
        peer_url: &str,
        token: &str,
        data_dir: &Path,
    ) -> Result<(), BackupError> {
        let out = self
            .command(snapshot, name, peer_url, token, data_dir)
            .output()
            .map_err(|source| BackupError::Spawn {
                tool: self.path().to_path_buf(),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        Err(BackupError::Tool {
            tool: self.path().to_path_buf(),
            status: out.status.to_string(),
            output: lines[lines.len().saturating_sub(3)..].join(" / "),
        })
    }
}

/// A fresh `--initial-cluster-token`: a restored cluster must not be mistaken by etcd for the
/// one its snapshot came from.
pub fn new_token() -> String {
    let b: [u8; 8] = rand::random();
    format!("kubesup-restored-{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::ResolvedBinary;

    fn fetched(names: &[&str]) -> FetchedSet {
        FetchedSet {
            kube_version: "v1.20.2".into(),
            arch: "amd64".into(),
            bin_dir: "/d/bin/v1.20.2".into(),
            binaries: names
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        ResolvedBinary {
                            path: PathBuf::from(format!("/d/bin/v1.20.2/{n}")),
                            sha256: String::new(),
                            size: 0,
                            argv_prefix: Vec::new(),
                        },
                    )
                })
                .collect(),
            sources: Default::default(),
        }
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_tool_matches_the_etcd_version_and_bumps_the_revision_where_it_can() {
        let set = fetched(&["etcd", "etcdctl", "etcdutl"]);
        let old = Tool::pick(&set, "v3.4.23").unwrap();
        assert!(matches!(old, Tool::Etcdctl(_)));
        let a = args(&old.command(
            Path::new("/s.db"),
            "m1",
            "https://10.0.0.1:2380",
            "t",
            Path::new("/d/etcd"),
        ));
        assert!(a.contains(&"--initial-cluster=m1=https://10.0.0.1:2380".to_string()));
        assert!(
            !a.iter()
                .any(|x| x.contains("bump") || x.contains("skip-hash"))
        );
        let envs: Vec<_> = old
            .command(Path::new("/s"), "m", "u", "t", Path::new("/d"))
            .get_envs()
            .map(|(k, v)| (k.to_os_string(), v.map(|v| v.to_os_string())))
            .collect();
        assert!(envs.contains(&("ETCDCTL_API".into(), Some("3".into()))));

        let new = Tool::pick(&set, "v3.5.21").unwrap();
        assert!(matches!(new, Tool::Etcdutl(_)));
        let a = args(&new.command(Path::new("/s.db"), "m1", "u", "t", Path::new("/d")));
        assert!(a.contains(&"--bump-revision=1000000000".to_string()));
        assert!(a.contains(&"--mark-compacted".to_string()));
        assert!(!a.iter().any(|x| x.contains("skip-hash")));

        let e = Tool::pick(&fetched(&["etcd", "etcdctl"]), "v3.6.0").unwrap_err();
        assert!(
            matches!(
                e,
                BackupError::NoTool {
                    tool: "etcdutl",
                    ..
                }
            ),
            "{e}"
        );
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn old_state_is_moved_aside_never_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path());
        assert!(existing_state(&paths).is_empty());
        std::fs::create_dir_all(paths.etcd_data_dir().join("member")).unwrap();
        std::fs::create_dir_all(paths.pki().dir()).unwrap();
        std::fs::write(paths.pki().dir().join("ca.key"), b"k").unwrap();
        std::fs::create_dir_all(paths.cache_dir()).unwrap();
        let found = existing_state(&paths);
        assert_eq!(found.len(), 2, "{found:?}");
        let aside = move_aside(&paths, &found).unwrap();
        assert!(existing_state(&paths).is_empty());
        assert_eq!(std::fs::read(aside.join("pki/ca.key")).unwrap(), b"k");
        assert!(aside.join("etcd/member").is_dir());
        assert!(paths.cache_dir().is_dir(), "the binary cache stays");
    }
}
