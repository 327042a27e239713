//! The record of a fetch: which binaries a release resolved to (named links into the cache, with
//! their hashes and sizes) and where each download came from, persisted as `fetched.json` in
//! the version's bin dir so that a restarted supervisor finds its binaries without the network.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::FetchError;
use super::cache::{io_err, symlink_atomic, write_unique};
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

    /// kubesup's own CNI bin dir for this release: the fetched plugins (`cni/NAME` links into
    /// the cache) and, beside them, links to the OS's ([`FetchedSet::link_os_cni_plugins`]).
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.bin_dir.join(CNI_DIR)
    }

    /// Links every executable in `os_dir` (Debian's /usr/lib/cni, or /opt/cni/bin) into
    /// [`FetchedSet::cni_bin_dir`] under its own name, so that containerd finds the runtime's
    /// plugins from the OS and flannel's fetched one in one dir. A fetched plugin of the same
    /// name wins (it is verified; the OS file is not kubesup's to check). Links to OS plugins
    /// that are gone are removed. Each link is replaced atomically, so a containerd using the
    /// dir meanwhile never misses a plugin that stays. Returns the names linked, sorted.
    pub fn link_os_cni_plugins(&self, os_dir: &Path) -> Result<Vec<String>, FetchError> {
        let dir = self.cni_bin_dir();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let fetched = |name: &str| self.binaries.contains_key(&format!("{CNI_DIR}/{name}"));
        let mut linked = Vec::new();
        for entry in fs::read_dir(os_dir).map_err(io_err("read", os_dir))? {
            let entry = entry.map_err(io_err("read", os_dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let target = entry.path();
            // metadata() follows links: Debian's dir may itself hold links to the plugins.
            let executable = fs::metadata(&target)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if name.starts_with('.') || !executable || fetched(&name) {
                continue;
            }
            symlink_atomic(&dir.join(&name), &target)?;
            linked.push(name);
        }
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let entry = entry.map_err(io_err("read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if is_link && !fetched(&name) && !linked.contains(&name) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        linked.sort();
        Ok(linked)
    }
}

/// The name of the CNI plugins' dir in a version's bin dir (`cni/bridge` in the record).
const CNI_DIR: &str = "cni";

/// kubesup's own CNI bin dir for `kube_version`: where the fetched CNI plugins are linked
/// ([`FetchedSet::cni_bin_dir`] of its fetch), known before anything is fetched.
pub fn kubesup_cni_bin_dir(paths: &Paths, kube_version: &KubeVersion) -> PathBuf {
    paths.bin_dir(&kube_version.to_string()).join(CNI_DIR)
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
