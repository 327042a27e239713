//! The record of a fetch: which binaries a release resolved to (named links into the cache, with
//! their hashes and sizes) and where each download came from, persisted as `fetched.json` in
//! the version's bin dir so that a restarted supervisor finds its binaries without the network.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::FetchError;
use super::cache::{io_err, write_unique};
use crate::model::{Component, KubeVersion};
use crate::paths::Paths;

/// A binary ready to exec: `argv_prefix` goes before the component's own arguments (the
/// `kube-apiserver` of `hyperkube kube-apiserver --flags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedBinary {
    /// The named link in the version's bin dir (so `ps` shows `kube-apiserver`, not a hash).
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub argv_prefix: Vec<String>,
}

/// Where one download came from and what it yielded; lets a later fetch of the same release
/// resolve without the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Path in the upstream layout.
    pub rel: String,
    /// Of the download itself (for an archive, of the tarball).
    pub sha256: String,
    pub size: u64,
    /// False when it was accepted under `insecure_skip_verify` without any checksum.
    pub verified: bool,
    pub archive: bool,
    /// Names of the binaries it provided.
    pub binaries: Vec<String>,
}

/// The binaries fetched for one release, persisted as `fetched.json` in the version's bin dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedSet {
    pub kube_version: String,
    pub arch: String,
    pub bin_dir: PathBuf,
    /// By binary name: component names (`kube-apiserver`, `etcd`), tools (`kubectl`,
    /// `etcdctl`, `ctr`, `runc`) and CNI plugins (`cni/bridge`).
    pub binaries: BTreeMap<String, ResolvedBinary>,
    /// By download name (`kube-apiserver`, `hyperkube`, `etcd`, ...).
    pub sources: BTreeMap<String, SourceRecord>,
}

pub const RECORD_FILE: &str = "fetched.json";

impl FetchedSet {
    pub fn record_path(paths: &Paths, kube_version: &KubeVersion) -> PathBuf {
        paths.bin_dir(&kube_version.to_string()).join(RECORD_FILE)
    }

    /// What an earlier fetch (or bundle load) recorded, without any network: the supervisor's
    /// way to find its binaries after a restart.
    pub fn load(paths: &Paths, kube_version: &KubeVersion) -> Result<Self, FetchError> {
        let version = kube_version.to_string();
        let path = Self::record_path(paths, kube_version);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FetchError::NoRecord { version, path });
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| FetchError::Record { path, source })
    }

    pub(super) fn save(&self) -> Result<(), FetchError> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_unique(&self.bin_dir.join(RECORD_FILE), &json, 0o644)
    }

    pub fn binary(&self, name: &str) -> Option<&ResolvedBinary> {
        self.binaries.get(name)
    }

    pub fn component(&self, c: Component) -> Result<&ResolvedBinary, FetchError> {
        self.binaries
            .get(c.name())
            .ok_or_else(|| FetchError::NotFetched {
                name: c.name().into(),
                version: self.kube_version.clone(),
            })
    }

    /// The directory holding the CNI plugins (`--cni-bin-dir`, containerd's `bin_dir`), when
    /// they were fetched.
    pub fn cni_bin_dir(&self) -> Option<PathBuf> {
        self.binaries
            .keys()
            .any(|k| k.starts_with("cni/"))
            .then(|| self.bin_dir.join("cni"))
    }
}

/// The record in `bin_dir`, if there is a readable one (an unreadable one is only worth a
/// warning: the fetch it would have saved is done again).
pub(super) fn read_record(bin_dir: &Path) -> Option<FetchedSet> {
    let path = bin_dir.join(RECORD_FILE);
    let bytes = fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(path = %path.display(), error = %crate::errors::chain(&e), "ignoring an unreadable fetch record");
            None
        }
    }
}
