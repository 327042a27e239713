//! The binaries a master hands the nodes that joined it, so that a node needs no route to the
//! internet or to a mirror, only to its master.
//!
//! - On the master, [`Fetcher::prepare`] fetches what a node of some architecture needs into
//!   the master's own cache, verified exactly as the master's own binaries are (published or
//!   pinned checksums), links nothing, and lists each binary by its SHA-256 ([`BinaryList`]).
//!   The join API serves that list, and the cache's files by hash, to authenticated nodes.
//! - On the node, [`Fetcher::fetch_listed`] downloads each listed binary the node's cache lacks
//!   from its master, checks its SHA-256 against the list while streaming, and only then
//!   places it in the cache and links it. A file the master serves with other content (a
//!   corrupt or tampered cache) is refused, named, and never linked, so it is never executed.
//!
//! Trust: the list travels over the join API's TLS, verified against the CA pinned by the join
//! token, and is asked with the node's own client certificate. The master vouches only for
//! what it verified itself: a binary it accepted unverified (`insecure_skip_verify`) is not
//! listed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::download::Downloader;
use super::mirror::{Location, is_sha256_hex};
use super::progress::Progress;
use super::record::read_record;
use super::{Artifact, FetchError, FetchedSet, Fetcher, ResolvedBinary, SourceRecord, blocking};
use crate::http::{Client, Trust};
use crate::model::KubeVersion;

/// One binary of a [`BinaryList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedBinary {
    /// Its name in the fetch record: a component (`kubelet`), a tool (`ctr`) or a CNI plugin
    /// (`cni/bridge`).
    pub name: String,
    /// Its named link in the version's bin dir, relative (`kubelet`, `cni/bridge`; `hyperkube`
    /// for the components it bundles).
    pub link: String,
    pub sha256: String,
    pub size: u64,
    /// Arguments before the component's own (`kubelet` of `hyperkube kubelet`).
    #[serde(default)]
    pub argv_prefix: Vec<String>,
}

/// Every binary a node runs, for one release on one architecture, by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryList {
    pub kube_version: String,
    pub arch: String,
    pub binaries: Vec<ListedBinary>,
}

/// Where a node downloads listed binaries: its master's join API, trusted through the cluster
/// CA and answered only with the node's client certificate.
#[derive(Clone)]
pub struct MasterFiles {
    /// The join URL (`https://MASTER:9443`).
    pub join_url: String,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl MasterFiles {
    /// The URL of the master's copy of the blob `sha256`.
    pub fn blob_url(&self, sha256: &str) -> String {
        format!("{}/v1/blobs/{sha256}", self.join_url.trim_end_matches('/'))
    }
}

/// The longest a listed binary may be: far above any Kubernetes binary, and a bound on what a
/// broken master can make a node write.
const MAX_BINARY: u64 = 2 << 30;

/// Why a master's list cannot be used. Checked before anything is downloaded: the list names
/// paths in the node's bin dir, and a broken master must not make the node write outside it.
fn check_list(list: &BinaryList, version: &str, arch: &str) -> Result<(), String> {
    if list.kube_version != version {
        return Err(format!(
            "it is for Kubernetes {}, this node runs {version}",
            list.kube_version
        ));
    }
    if list.arch != arch {
        return Err(format!("it is for {}, this node is {arch}", list.arch));
    }
    let mut names = BTreeSet::new();
    for b in &list.binaries {
        if !is_sha256_hex(&b.sha256) {
            return Err(format!("{}: its sha256 is not 64 hex characters", b.name));
        }
        if !safe_rel(&b.name) || !safe_rel(&b.link) {
            return Err(format!(
                "{:?} -> {:?} is not a plain name in the bin dir",
                b.name, b.link
            ));
        }
        if b.size == 0 || b.size > MAX_BINARY {
            return Err(format!("{}: size {} is out of range", b.name, b.size));
        }
        if !names.insert(b.name.as_str()) {
            return Err(format!("{} is listed twice", b.name));
        }
    }
    Ok(())
}

/// A name or `cni/NAME`: letters, digits, `.`, `_`, `-`, never `.` or `..` alone.
fn safe_rel(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let plain = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.len() <= 64
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    };
    match parts.as_slice() {
        [name] => plain(name),
        ["cni", name] => plain(name),
        _ => false,
    }
}

impl Fetcher {
    /// On a master: fetches `artifacts` of `kube_version` for this fetcher's architecture into
    /// the cache (reusing what is there), and lists every binary they yield. Links and records
    /// nothing, so a list for another architecture never touches the master's own binaries.
    pub async fn prepare(
        &self,
        kube_version: &KubeVersion,
        artifacts: &[Artifact],
    ) -> Result<BinaryList, FetchError> {
        let manifest = self.manifest(kube_version)?;
        let jobs = manifest.jobs(artifacts);
        let bin_dir = self.inner.opts.paths.bin_dir(&manifest.kube_version);
        // The master's own record lets a master loaded from a bundle (no network) list what it
        // runs itself.
        let prev = Arc::new(read_record(&bin_dir).filter(|p| p.arch == manifest.arch));
        info!(version = %manifest.kube_version, arch = %manifest.arch, downloads = jobs.len(), "preparing the binaries of a node");
        let done = self.run_jobs(jobs, prev).await?;
        let mut binaries = Vec::new();
        for (job, r) in done {
            if !r.record.verified {
                return Err(FetchError::UnverifiedForNodes { artifact: job.name });
            }
            binaries.extend(r.outputs.into_iter().map(|o| ListedBinary {
                name: o.binary,
                link: o.link,
                sha256: o.sha256,
                size: o.size,
                argv_prefix: o.argv_prefix,
            }));
        }
        Ok(BinaryList {
            kube_version: manifest.kube_version,
            arch: manifest.arch,
            binaries,
        })
    }

    /// On a node: makes the binaries of `list` present (downloading from `master` what the
    /// cache lacks, each checked against the list's SHA-256), links them into the version's bin
    /// dir and records them. Nothing is linked unless every binary checked out.
    pub async fn fetch_listed(
        &self,
        kube_version: &KubeVersion,
        list: &BinaryList,
        master: &MasterFiles,
    ) -> Result<FetchedSet, FetchError> {
        let o = &self.inner.opts;
        let version = kube_version.to_string();
        check_list(list, &version, &o.arch).map_err(|reason| FetchError::BadList {
            master: master.join_url.clone(),
            reason,
        })?;
        let client = Client::builder()
            .trust(Trust::Ca(master.ca_pem.clone()))
            .identity(master.cert_pem.clone(), master.key_pem.clone())
            .connect_timeout(o.connect_timeout)
            .user_agent(concat!("kubesup/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| FetchError::Client { source })?;
        let dl = Arc::new(Downloader {
            client,
            read_timeout: o.read_timeout,
            retry: Downloader::retry_policy(o.retries, o.retry_backoff),
            progress: Progress::new(o.progress_bars),
        });
        info!(version, master = %master.join_url, binaries = list.binaries.len(), "fetching this node's binaries from its master");

        // One download per distinct hash: hyperkube's five components are one file.
        let mut wanted: BTreeMap<&str, &ListedBinary> = BTreeMap::new();
        for b in &list.binaries {
            wanted.entry(b.sha256.as_str()).or_insert(b);
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(o.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for b in wanted.into_values() {
            let (b, dl, sem, cache) =
                (b.clone(), dl.clone(), sem.clone(), self.inner.cache.clone());
            let url = master.blob_url(&b.sha256);
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let (c, hex) = (cache.clone(), b.sha256.clone());
                if blocking(move || c.lookup(&hex)).await? == Some(b.size) {
                    debug!(binary = %b.name, "in the cache");
                    return Ok(());
                }
                let partial = format!("{}.master.partial", b.sha256);
                let d = dl
                    .download(
                        &Location::Url(url.clone()),
                        &b.name,
                        Some(&b.sha256),
                        &cache.partial_dir(),
                        &partial,
                    )
                    .await
                    .map_err(|e| match e {
                        FetchError::HashMismatch {
                            expected, actual, ..
                        } => FetchError::MasterSentOther {
                            binary: b.name.clone(),
                            url,
                            expected,
                            actual,
                        },
                        other => other,
                    })?;
                blocking(move || cache.place(&d.path, &d.sha256, 0o755).map(|_| ())).await
            });
        }
        // Every download runs to its end, so a person sees every refused file at once.
        let mut first_err = None;
        while let Some(joined) = tasks.join_next().await {
            let e = match joined {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(source) => FetchError::Task { source },
            };
            if first_err.is_some() {
                tracing::error!(error = %crate::errors::chain(&e), "fetch from the master failed");
            } else {
                first_err = Some(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }

        let bin_dir = o.paths.bin_dir(&version);
        let (cache, list, arch) = (self.inner.cache.clone(), list.clone(), o.arch.clone());
        let set = blocking(move || {
            let mut set = read_record(&bin_dir)
                .filter(|p| p.arch == arch)
                .unwrap_or_else(|| FetchedSet {
                    kube_version: version.clone(),
                    arch: arch.clone(),
                    bin_dir: bin_dir.clone(),
                    binaries: BTreeMap::new(),
                    sources: BTreeMap::new(),
                });
            set.bin_dir = bin_dir.clone();
            for b in list.binaries {
                let path = bin_dir.join(&b.link);
                cache.link(&path, &b.sha256)?;
                set.sources.insert(
                    b.name.clone(),
                    SourceRecord {
                        rel: format!("v1/blobs/{}", b.sha256),
                        sha256: b.sha256.clone(),
                        size: b.size,
                        verified: true,
                        archive: false,
                        binaries: vec![b.name.clone()],
                    },
                );
                set.binaries.insert(
                    b.name,
                    ResolvedBinary {
                        path,
                        sha256: b.sha256,
                        size: b.size,
                        argv_prefix: b.argv_prefix,
                    },
                );
            }
            set.save()?;
            Ok(set)
        })
        .await?;
        info!(version = %set.kube_version, binaries = set.binaries.len(), bin_dir = %set.bin_dir.display(), "fetched from the master");
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(name: &str, link: &str) -> ListedBinary {
        ListedBinary {
            name: name.into(),
            link: link.into(),
            sha256: "ab".repeat(32),
            size: 10,
            argv_prefix: Vec::new(),
        }
    }

    fn list(binaries: Vec<ListedBinary>) -> BinaryList {
        BinaryList {
            kube_version: "v1.20.2".into(),
            arch: "amd64".into(),
            binaries,
        }
    }

    #[test]
    fn a_list_of_plain_names_is_accepted() {
        let l = list(vec![
            bin("kubelet", "kubelet"),
            bin("cni/bridge", "cni/bridge"),
        ]);
        assert_eq!(check_list(&l, "v1.20.2", "amd64"), Ok(()));
    }

    #[test]
    fn a_list_that_would_write_outside_the_bin_dir_is_refused() {
        for (name, link) in [
            ("kubelet", "../kubelet"),
            ("kubelet", "/usr/bin/kubelet"),
            ("kubelet", "cni/../../x"),
            ("kubelet", "sub/kubelet"),
            ("..", "kubelet"),
            ("kubelet", ""),
            ("kubelet", "cni/"),
        ] {
            let l = list(vec![bin(name, link)]);
            assert!(
                check_list(&l, "v1.20.2", "amd64").is_err(),
                "{name} -> {link} was accepted"
            );
        }
    }

    #[test]
    fn a_list_for_another_release_or_arch_or_with_bad_fields_is_refused() {
        let l = list(vec![bin("kubelet", "kubelet")]);
        assert!(
            check_list(&l, "v1.21.0", "amd64")
                .unwrap_err()
                .contains("v1.20.2")
        );
        assert!(
            check_list(&l, "v1.20.2", "arm64")
                .unwrap_err()
                .contains("amd64")
        );
        let mut bad = bin("kubelet", "kubelet");
        bad.sha256 = "xyz".into();
        assert!(check_list(&list(vec![bad]), "v1.20.2", "amd64").is_err());
        let mut huge = bin("kubelet", "kubelet");
        huge.size = MAX_BINARY + 1;
        assert!(check_list(&list(vec![huge]), "v1.20.2", "amd64").is_err());
        let twice = list(vec![bin("kubelet", "kubelet"), bin("kubelet", "kubelet")]);
        assert!(
            check_list(&twice, "v1.20.2", "amd64")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn the_blob_url_is_under_the_join_api() {
        let m = MasterFiles {
            join_url: "https://10.0.0.1:9443/".into(),
            ca_pem: Vec::new(),
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
        };
        assert_eq!(
            m.blob_url("ab"),
            "https://10.0.0.1:9443/v1/blobs/ab".to_string()
        );
    }
}
