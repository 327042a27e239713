//! Fetching the component binaries a node runs: resolve a built-in release manifest, download
//! from upstream or a mirror, verify SHA-256 while streaming, keep a content-addressed cache,
//! and make and load air-gap bundles.
//!
//! Owns: everything under `Paths::cache_dir()` (or the shared cache dir it is given) and the
//! named links plus the fetch record (`fetched.json`) in `Paths::bin_dir(version)`.
//!
//! Invariants:
//! - a file enters `cache/sha256/` only by rename after its hash was checked against a pinned
//!   or published checksum (or, with an explicit `insecure_skip_verify`, recorded as computed);
//!   a mismatching file is deleted and never linked, so it is never executed;
//! - a pinned checksum always wins over the published one;
//! - [`verify_before_exec`] is called by the supervisor before every exec of a fetched binary.
//!
//! Must not: execute what it fetches, write outside the cache dir and the version's bin dir, or
//! talk to anything but the configured mirror (or the upstream hosts when there is none:
//! dl.k8s.io, github.com, and api.github.com for release answers).
//!
//! Module map: this file runs the jobs; [`manifest`] (what and where), `mirror` (URL/path
//! resolution, checksum files), `release` (asset digests from GitHub's release API, for
//! projects that publish no checksum file), `download` (streaming, hashing, resume, retry),
//! `extract` (release tarballs), `cache` (content-addressed store, links, re-verification),
//! `record` (`fetched.json`, kubesup's CNI bin dir and the OS plugins linked into it), `error`,
//! [`bundle`] (air gap), `progress` (bars or log lines). HTTP goes
//! through [`crate::http`], with the system's trust store read only when a download goes to a
//! public https host.

pub mod bundle;
mod cache;
mod download;
mod error;
mod extract;
pub mod manifest;
mod mirror;
mod node;
mod progress;
mod record;
mod release;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::http::{Client, Trust};
use crate::model::KubeVersion;
use crate::paths::Paths;

pub use bundle::{BUNDLE_MANIFEST, BundleManifest, BundleSummary, load_bundle, write_bundle};
pub use error::FetchError;
pub use manifest::{Artifact, ReleaseManifest, VersionOverrides, host_arch, needed_artifacts};
pub use mirror::Source;
pub use node::{BinaryList, ListedBinary, MasterFiles};
pub use record::{FetchedSet, RECORD_FILE, ResolvedBinary, SourceRecord, kubesup_cni_bin_dir};

use cache::{ArchiveIndex, Cache};
use download::Downloader;
use extract::extract;
use manifest::{Checksum, Content, Job, Upstream};
use mirror::{is_sha256_hex, parse_checksum};
use progress::Progress;
use record::read_record;

/// Re-verifies `rb` right before it is executed; the supervisor calls it before every exec.
///
/// What it checks: the named link still points at `cache/sha256/<recorded hash>`; the file
/// has the recorded size, is executable and not group/world-writable; and its stat (device,
/// inode, size, mtime, ctime) equals the stamp taken when it was last fully hashed. If the
/// stamp is missing or differs, it rehashes the whole file (about 60 ms per 100 MB with the
/// CPU's SHA extensions) and refreshes the stamp.
///
/// Why not always rehash: a crash-looping component is restarted every few seconds, and
/// hashing 450 MB of binaries at every start of a 2-core node costs real CPU. Any write,
/// truncation, chmod or replacement of the file changes its ctime or inode, and ctime cannot
/// be set from user space; what the stamp cannot see is silent media corruption, which the
/// full check at fetch time and the file system's own checks are for.
///
/// Blocking: call it from a blocking context (or `spawn_blocking`) when it may rehash.
pub fn verify_before_exec(rb: &ResolvedBinary) -> Result<(), FetchError> {
    cache::verify_binary(rb)
}

/// Redirects a download may follow (GitHub's take one, to its release storage); reqwest's limit,
/// which kubesup used before.
const MAX_REDIRECTS: usize = 10;

/// How to fetch. [`FetchOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `https://`, `http://`, `file://` or a directory, in the upstream layout; `None` means
    /// the upstream hosts.
    pub mirror: Option<String>,
    /// The node's paths: named links and the record go to `paths.bin_dir(version)`.
    pub paths: Paths,
    /// The content-addressed cache; `paths.cache_dir()` by default. Several nodes on one
    /// machine may share one.
    pub cache_dir: PathBuf,
    /// Upstream architecture name; the running machine's by default.
    pub arch: String,
    /// Downloads at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// Longest gap with no bytes received (also the wait for response headers).
    pub read_timeout: Duration,
    /// Further attempts after a transient failure.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, capped at 30 s.
    pub retry_backoff: Duration,
    /// Accept an artifact that has no published or pinned checksum (logged loudly). A checksum
    /// that exists is still checked.
    pub insecure_skip_verify: bool,
    /// SHA-256 by download name (`kube-apiserver`, `hyperkube`, `etcd`, `flanneld`, ...) or
    /// upstream file name (`etcd-v3.4.23-linux-amd64.tar.gz`); for archives it is the
    /// archive's hash. Wins over the published checksum.
    pub pinned: BTreeMap<String, String>,
    pub etcd_version: Option<String>,
    pub flannel_version: Option<String>,
    pub containerd_version: Option<String>,
    pub runc_version: Option<String>,
    pub cni_plugins_version: Option<String>,
    pub flannel_cni_version: Option<String>,
    /// Progress bars (otherwise log lines); on when stderr is a terminal.
    pub progress_bars: bool,
}

impl FetchOptions {
    /// The options a node's config asks for.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let mut o = Self::new(cfg.paths.clone());
        o.mirror = cfg.mirror.clone();
        o.concurrency = cfg.fetch.concurrency;
        o.insecure_skip_verify = cfg.fetch.insecure_skip_verify;
        o.pinned = cfg.fetch.checksums.clone();
        o.etcd_version = cfg.fetch.etcd_version.clone();
        o.flannel_version = cfg.fetch.flannel_version.clone();
        o
    }

    pub fn new(paths: Paths) -> Self {
        Self {
            mirror: None,
            cache_dir: paths.cache_dir(),
            paths,
            arch: host_arch().unwrap_or_else(|_| std::env::consts::ARCH.to_string()),
            concurrency: 4,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retries: 4,
            retry_backoff: Duration::from_millis(500),
            insecure_skip_verify: false,
            pinned: BTreeMap::new(),
            etcd_version: None,
            flannel_version: None,
            containerd_version: None,
            runc_version: None,
            cni_plugins_version: None,
            flannel_cni_version: None,
            progress_bars: io::stderr().is_terminal(),
        }
    }

    fn overrides(&self) -> VersionOverrides {
        VersionOverrides {
            etcd: self.etcd_version.clone(),
            flannel: self.flannel_version.clone(),
            containerd: self.containerd_version.clone(),
            runc: self.runc_version.clone(),
            cni_plugins: self.cni_plugins_version.clone(),
            flannel_cni: self.flannel_cni_version.clone(),
        }
    }
}

/// One download a fetch would make, as `kubesup fetch --dry-run` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDownload {
    /// The download's name (`kubelet`, `flannel-cni`): the key of a pinned checksum.
    pub name: String,
    pub url: String,
    /// Where its checksum comes from: `pinned`, the checksum file's URL, or the release
    /// answer's, in the order they are tried; empty when nothing is published.
    pub checksum: Vec<String>,
    /// What it provides, as linked in the version's bin dir (`kubelet`, `cni/flannel`); for an
    /// archive, the members that must be in it.
    pub provides: Vec<String>,
}

/// The fetcher; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    opts: FetchOptions,
    pinned: BTreeMap<String, String>,
    source: Source,
    cache: Cache,
    dl: Downloader,
}

/// One binary a job produced.
#[derive(Debug, Clone)]
struct Output {
    binary: String,
    link: String,
    sha256: String,
    size: u64,
    argv_prefix: Vec<String>,
}

struct JobResult {
    record: SourceRecord,
    outputs: Vec<Output>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| FetchError::Task { source })?
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Self, FetchError> {
        let source = Source::parse(opts.mirror.as_deref())?;
        let mut pinned = BTreeMap::new();
        for (name, hash) in &opts.pinned {
            let hash = hash.trim().to_ascii_lowercase();
            if !is_sha256_hex(&hash) {
                return Err(FetchError::BadPin { name: name.clone() });
            }
            pinned.insert(name.clone(), hash);
        }
        // Release downloads answer 302 to a storage host; proxies are the environment's, as
        // for any download tool. The trust store is read only if a download is https.
        let client = Client::builder()
            .trust(Trust::System)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("kubesup/", env!("CARGO_PKG_VERSION")))
            .follow_redirects(MAX_REDIRECTS)
            .proxy_from_env()
            .build()
            .map_err(|source| FetchError::Client { source })?;
        if opts.insecure_skip_verify {
            warn!(
                "insecure_skip_verify is set: artifacts without a published or pinned checksum will be accepted unverified"
            );
        }
        let dl = Downloader {
            client,
            read_timeout: opts.read_timeout,
            retry: Downloader::retry_policy(opts.retries, opts.retry_backoff),
            progress: Progress::new(opts.progress_bars),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                cache: Cache::new(&opts.cache_dir),
                opts,
                pinned,
                source,
                dl,
            }),
        })
    }

    /// The release manifest `fetch` would use for `kube_version`.
    pub fn manifest(&self, kube_version: &KubeVersion) -> Result<ReleaseManifest, FetchError> {
        let o = &self.inner.opts;
        ReleaseManifest::resolve(kube_version, &o.arch, &o.overrides())
    }

    /// The downloads [`Fetcher::fetch`] of `artifacts` would make (before looking at the
    /// cache), without any I/O.
    pub fn plan(
        &self,
        kube_version: &KubeVersion,
        artifacts: &[Artifact],
    ) -> Result<Vec<PlannedDownload>, FetchError> {
        let manifest = self.manifest(kube_version)?;
        let source = &self.inner.source;
        Ok(manifest
            .jobs(artifacts)
            .into_iter()
            .map(|job| {
                let checksum = match self.pinned_for(&job) {
                    Some(_) => vec!["pinned".to_string()],
                    None => job
                        .checksum
                        .iter()
                        .map(|c| match c {
                            Checksum::Sidecar { rel } => source.locate(rel, job.upstream),
                            Checksum::ReleaseDigest { rel, .. } => {
                                source.locate(rel, Upstream::GitHubApi)
                            }
                        })
                        .map(|l| l.to_string())
                        .collect(),
                };
                let provides = match &job.content {
                    Content::Executable { link } => vec![link.clone()],
                    Content::Archive {
                        select,
                        link_prefix,
                    } => select
                        .required()
                        .into_iter()
                        .map(|(_, kept_as)| format!("{link_prefix}{kept_as}"))
                        .collect(),
                };
                PlannedDownload {
                    url: source.locate(&job.rel, job.upstream).to_string(),
                    name: job.name,
                    checksum,
                    provides,
                }
            })
            .collect())
    }

    /// Fetches `artifacts` of `kube_version` (downloading only what the cache lacks), links them
    /// into the version's bin dir and records the result. Returns every binary recorded for
    /// the version, including those of earlier fetches.
    pub async fn fetch(
        &self,
        kube_version: &KubeVersion,
        artifacts: &[Artifact],
    ) -> Result<FetchedSet, FetchError> {
        let manifest = self.manifest(kube_version)?;
        let jobs = manifest.jobs(artifacts);
        let bin_dir = self.inner.opts.paths.bin_dir(&manifest.kube_version);
        let prev = Arc::new(read_record(&bin_dir).filter(|p| p.arch == manifest.arch));
        info!(version = %manifest.kube_version, arch = %manifest.arch, downloads = jobs.len(), "fetching");

        let done = self.run_jobs(jobs, prev.clone()).await?;

        let mut set = match Arc::try_unwrap(prev).unwrap_or_else(|a| (*a).clone()) {
            Some(p) => p,
            None => FetchedSet {
                kube_version: manifest.kube_version.clone(),
                arch: manifest.arch.clone(),
                bin_dir: bin_dir.clone(),
                binaries: BTreeMap::new(),
                sources: BTreeMap::new(),
            },
        };
        set.bin_dir = bin_dir.clone();
        let cache = self.inner.cache.clone();
        let set = blocking(move || {
            for (job, r) in done {
                // Binaries the old download of this name gave and the new one does not (etcdutl
                // after a downgrade of etcd) must not linger as stale links.
                if let Some(old) = set.sources.get(&job.name) {
                    for b in &old.binaries {
                        if !r.record.binaries.contains(b)
                            && let Some(rb) = set.binaries.remove(b)
                        {
                            let _ = fs::remove_file(&rb.path);
                        }
                    }
                }
                for o in r.outputs {
                    let path = bin_dir.join(&o.link);
                    cache.link(&path, &o.sha256)?;
                    set.binaries.insert(
                        o.binary,
                        ResolvedBinary {
                            path,
                            sha256: o.sha256,
                            size: o.size,
                            argv_prefix: o.argv_prefix,
                        },
                    );
                }
                set.sources.insert(job.name.clone(), r.record);
            }
            set.save()?;
            Ok(set)
        })
        .await?;
        info!(version = %set.kube_version, binaries = set.binaries.len(), bin_dir = %set.bin_dir.display(), "fetched");
        Ok(set)
    }

    /// Runs `jobs` (each from the cache when it can, downloading and verifying otherwise), at
    /// most `concurrency` at once, and returns their results in the jobs' order.
    async fn run_jobs(
        &self,
        jobs: Vec<Job>,
        prev: Arc<Option<FetchedSet>>,
    ) -> Result<Vec<(Job, JobResult)>, FetchError> {
        let sem = Arc::new(Semaphore::new(self.inner.opts.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let (this, prev, sem) = (self.clone(), prev.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = this.run_job(&job, prev.as_ref().as_ref()).await;
                (i, job, r)
            });
        }
        // Let every download finish even when one fails: what succeeded is cached for the next
        // try, and a person sees every failure at once.
        let mut done = Vec::new();
        let mut first_err = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, job, Ok(r))) => done.push((i, job, r)),
                Ok((_, job, Err(e))) => {
                    if first_err.is_some() {
                        error!(artifact = %job.name, error = %crate::errors::chain(&e), "fetch failed");
                    } else {
                        first_err = Some(e);
                    }
                }
                Err(source) => {
                    first_err.get_or_insert(FetchError::Task { source });
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        done.sort_by_key(|(i, _, _)| *i);
        Ok(done.into_iter().map(|(_, job, r)| (job, r)).collect())
    }

    /// What an earlier fetch recorded for `kube_version` (no network).
    pub fn resolve_offline(&self, kube_version: &KubeVersion) -> Result<FetchedSet, FetchError> {
        FetchedSet::load(&self.inner.opts.paths, kube_version)
    }

    /// Writes one tar holding every binary of `set` and a manifest of names and hashes.
    pub async fn write_bundle(
        &self,
        set: &FetchedSet,
        manifest: &ReleaseManifest,
        out: &Path,
    ) -> Result<BundleSummary, FetchError> {
        let (set, manifest, out) = (set.clone(), manifest.clone(), out.to_path_buf());
        blocking(move || write_bundle(&set, &manifest, &out)).await
    }

    /// Verifies and installs a bundle made by [`Fetcher::write_bundle`]; no network.
    pub async fn load_bundle(&self, file: &Path) -> Result<FetchedSet, FetchError> {
        let (file, inner) = (file.to_path_buf(), self.inner.clone());
        blocking(move || {
            load_bundle(
                &file,
                &inner.opts.cache_dir,
                &inner.opts.paths,
                &inner.pinned,
            )
        })
        .await
    }

    fn pinned_for(&self, job: &Job) -> Option<String> {
        let p = &self.inner.pinned;
        p.get(&job.name).or_else(|| p.get(&job.file_name)).cloned()
    }

    /// Outputs of an earlier fetch of the same file that are all still in the cache.
    fn reuse(
        &self,
        job: &Job,
        prev: Option<&FetchedSet>,
        pinned: Option<&str>,
    ) -> Result<Option<JobResult>, FetchError> {
        let Some(prev) = prev else { return Ok(None) };
        let Some(rec) = prev.sources.get(&job.name) else {
            return Ok(None);
        };
        if rec.rel != job.rel
            || pinned.is_some_and(|p| p != rec.sha256)
            || (!rec.verified && !self.inner.opts.insecure_skip_verify)
        {
            return Ok(None);
        }
        let cache = &self.inner.cache;
        let outputs = match &job.content {
            Content::Executable { link } => {
                if cache.lookup(&rec.sha256)? != Some(rec.size) {
                    return Ok(None);
                }
                executable_outputs(job, link, &rec.sha256, rec.size)
            }
            Content::Archive { .. } => {
                let mut outs = Vec::new();
                for name in &rec.binaries {
                    let Some(rb) = prev.binaries.get(name) else {
                        return Ok(None);
                    };
                    if cache.lookup(&rb.sha256)? != Some(rb.size) {
                        return Ok(None);
                    }
                    outs.push(Output {
                        binary: name.clone(),
                        link: name.clone(),
                        sha256: rb.sha256.clone(),
                        size: rb.size,
                        argv_prefix: Vec::new(),
                    });
                }
                outs
            }
        };
        let mut record = rec.clone();
        record.binaries = outputs.iter().map(|o| o.binary.clone()).collect();
        Ok(Some(JobResult { record, outputs }))
    }

    async fn run_job(&self, job: &Job, prev: Option<&FetchedSet>) -> Result<JobResult, FetchError> {
        let inner = &self.inner;
        let pinned = self.pinned_for(job);
        {
            let (this, job2, prev2, pinned2) =
                (self.clone(), job.clone(), prev.cloned(), pinned.clone());
            let reused =
                blocking(move || this.reuse(&job2, prev2.as_ref(), pinned2.as_deref())).await?;
            if let Some(r) = reused {
                debug!(artifact = %job.name, "already fetched and cached");
                return Ok(r);
            }
        }

        let loc = inner.source.locate(&job.rel, job.upstream);
        let url = loc.to_string();
        let expected = match pinned.clone() {
            Some(p) => Some(p),
            None => self.published_checksum(job).await?,
        };
        if expected.is_none() {
            if !inner.opts.insecure_skip_verify {
                return Err(FetchError::NoChecksum {
                    artifact: job.name.clone(),
                    url,
                });
            }
            error!(artifact = %job.name, %url,
                "no checksum to verify against: accepting it UNVERIFIED because insecure_skip_verify is set");
        }

        let cache = inner.cache.clone();
        // Already cached under the expected hash: no download.
        if let Some(h) = expected.clone() {
            let (c, job2) = (cache.clone(), job.clone());
            let hit = blocking(move || cached_outputs(&c, &job2, &h)).await?;
            if let Some(outputs) = hit {
                debug!(artifact = %job.name, "in the cache");
                return Ok(JobResult {
                    record: record_for(
                        job,
                        expected.as_deref().unwrap_or_default(),
                        &outputs,
                        true,
                    ),
                    outputs,
                });
            }
        }

        let key = hex::encode(Sha256::digest(format!(
            "{url}\n{}",
            expected.as_deref().unwrap_or("")
        )));
        let partial_name = format!("{}.{}.partial", job.file_name, &key[..16]);
        let d = inner
            .dl
            .download(
                &loc,
                &job.name,
                expected.as_deref(),
                &cache.partial_dir(),
                &partial_name,
            )
            .await?;
        let verified = expected.is_some();
        let (sha, size) = (d.sha256.clone(), d.size);
        let job2 = job.clone();
        let outputs = blocking(move || {
            let outs = match &job2.content {
                Content::Executable { link } => {
                    cache.place(&d.path, &d.sha256, 0o755)?;
                    executable_outputs(&job2, link, &d.sha256, d.size)
                }
                Content::Archive {
                    select,
                    link_prefix,
                } => {
                    let r = extract(&d.path, &url, select, link_prefix, &cache);
                    // The tarball is not kept: its index and members are what matter.
                    let _ = fs::remove_file(&d.path);
                    let idx = r?;
                    cache.write_archive_index(&d.sha256, &idx)?;
                    index_outputs(&idx)
                }
            };
            Ok(outs)
        })
        .await?;
        let mut record = record_for(job, &sha, &outputs, verified);
        record.size = size;
        Ok(JobResult { record, outputs })
    }
}

impl Fetcher {
    /// The first checksum `job`'s upstream publishes, trying its sources in order; `None` when
    /// none of them exists. A source that exists but has no usable entry for the file is an
    /// error, not a reason to try the next: the publisher said something, and it is not "yes".
    async fn published_checksum(&self, job: &Job) -> Result<Option<String>, FetchError> {
        let source = &self.inner.source;
        for c in &job.checksum {
            match c {
                Checksum::Sidecar { rel } => {
                    let sums = source.locate(rel, job.upstream);
                    if let Some(text) = self.inner.dl.small(&sums).await? {
                        return parse_checksum(&text, &job.file_name)
                            .ok_or_else(|| FetchError::ChecksumEntry {
                                url: sums.to_string(),
                                file: job.file_name.clone(),
                            })
                            .map(Some);
                    }
                }
                Checksum::ReleaseDigest { rel, asset } => {
                    let answer = source.locate(rel, Upstream::GitHubApi);
                    let read = match self.inner.dl.small(&answer).await {
                        Err(FetchError::Http { url, status }) if status == 403 || status == 429 => {
                            return Err(FetchError::ReleaseApiRefused {
                                artifact: job.name.clone(),
                                url,
                                status,
                            });
                        }
                        r => r?,
                    };
                    if let Some(text) = read {
                        let url = answer.to_string();
                        return release::asset_sha256(&text, &url, asset, &job.name).map(Some);
                    }
                }
            }
            debug!(artifact = %job.name, "no checksum published there; trying the next source");
        }
        Ok(None)
    }
}

fn record_for(job: &Job, sha: &str, outputs: &[Output], verified: bool) -> SourceRecord {
    SourceRecord {
        rel: job.rel.clone(),
        sha256: sha.to_string(),
        size: match &job.content {
            Content::Executable { .. } => outputs.first().map_or(0, |o| o.size),
            Content::Archive { .. } => 0,
        },
        verified,
        archive: matches!(job.content, Content::Archive { .. }),
        binaries: outputs.iter().map(|o| o.binary.clone()).collect(),
    }
}

fn executable_outputs(job: &Job, link: &str, sha: &str, size: u64) -> Vec<Output> {
    job.provides
        .iter()
        .map(|p| Output {
            binary: p.binary.clone(),
            link: link.to_string(),
            sha256: sha.to_string(),
            size,
            argv_prefix: p.argv_prefix.clone(),
        })
        .collect()
}

fn index_outputs(idx: &ArchiveIndex) -> Vec<Output> {
    idx.members
        .iter()
        .map(|(name, (sha, size))| Output {
            binary: name.clone(),
            link: name.clone(),
            sha256: sha.clone(),
            size: *size,
            argv_prefix: Vec::new(),
        })
        .collect()
}

/// The outputs of `job` if the download with hash `h` was already cached (for an archive:
/// indexed, with every member still present).
fn cached_outputs(cache: &Cache, job: &Job, h: &str) -> Result<Option<Vec<Output>>, FetchError> {
    match &job.content {
        Content::Executable { link } => Ok(cache
            .lookup(h)?
            .map(|size| executable_outputs(job, link, h, size))),
        Content::Archive { .. } => {
            let Some(idx) = cache.archive_index(h) else {
                return Ok(None);
            };
            for (sha, size) in idx.members.values() {
                if cache.lookup(sha)? != Some(*size) {
                    return Ok(None);
                }
            }
            Ok(Some(index_outputs(&idx)))
        }
    }
}

#[cfg(test)]
mod tests {
    //! flanneld and flannel's CNI plugin through a directory mirror in the upstream layout,
    //! with the release answers GitHub's API gives, at the API's path without the host.

    use super::*;

    const V: &str = "v1.37.1";
    const FLANNEL: &str = "v0.27.4";
    const FLANNEL_CNI: &str = "v1.9.1-flannel1";

    fn kube() -> KubeVersion {
        KubeVersion::parse(V).unwrap()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn put(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    /// A gzipped tarball holding `members` (name, body), as flannel-io/cni-plugin packs it.
    fn tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, body) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            tar.append_data(&mut h, name, *body).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    /// A release answer listing `assets` (name, digest or null).
    fn answer(assets: &[(&str, Option<String>)]) -> String {
        let assets: Vec<serde_json::Value> = assets
            .iter()
            .map(|(name, digest)| {
                serde_json::json!({"name": name, "size": 1, "digest": digest.as_ref().map(|d| format!("sha256:{d}"))})
            })
            .collect();
        serde_json::json!({"tag_name": "x", "assets": assets}).to_string()
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        mirror: PathBuf,
        opts: FetchOptions,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let mirror = tmp.path().join("mirror");
        fs::create_dir_all(&mirror).unwrap();
        let mut opts = FetchOptions::new(Paths::new(tmp.path().join("data")));
        opts.mirror = Some(mirror.display().to_string());
        opts.arch = "amd64".into();
        opts.retries = 0;
        opts.progress_bars = false;
        Setup {
            _tmp: tmp,
            mirror,
            opts,
        }
    }

    fn flanneld_rel() -> String {
        format!("flannel-io/flannel/releases/download/{FLANNEL}/flanneld-amd64")
    }

    fn flanneld_answer_rel() -> String {
        format!("repos/flannel-io/flannel/releases/tags/{FLANNEL}")
    }

    fn cni_rel() -> String {
        format!(
            "flannel-io/cni-plugin/releases/download/{FLANNEL_CNI}/cni-plugin-flannel-linux-amd64-v1.9.1.tgz"
        )
    }

    #[tokio::test]
    async fn flanneld_is_verified_against_the_digest_in_githubs_release_answer() {
        let s = setup();
        let body = b"#!/bin/sh\n# flanneld, as far as this test is concerned\n".to_vec();
        put(&s.mirror, &flanneld_rel(), &body);
        put(
            &s.mirror,
            &flanneld_answer_rel(),
            answer(&[
                ("flanneld-arm64", Some(sha(b"other"))),
                ("flanneld-amd64", Some(sha(&body))),
            ])
            .as_bytes(),
        );
        let set = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::Flanneld])
            .await
            .unwrap();
        assert_eq!(set.binaries["flanneld"].sha256, sha(&body));
        assert!(set.sources["flanneld"].verified);

        // A digest that does not match is a mismatch, and nothing is linked.
        let s = setup();
        put(&s.mirror, &flanneld_rel(), &body);
        put(
            &s.mirror,
            &flanneld_answer_rel(),
            answer(&[("flanneld-amd64", Some(sha(b"another build")))]).as_bytes(),
        );
        let err = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::Flanneld])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");

        // An asset GitHub has no digest for: one line saying to pin one; a pin wins.
        let s = setup();
        put(&s.mirror, &flanneld_rel(), &body);
        put(
            &s.mirror,
            &flanneld_answer_rel(),
            answer(&[("flanneld-amd64", None)]).as_bytes(),
        );
        let err = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::Flanneld])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::NoReleaseDigest { .. }), "{err:?}");
        assert!(
            err.to_string().contains("fetch.checksums.flanneld"),
            "{err}"
        );
        let mut o = s.opts.clone();
        o.pinned = BTreeMap::from([("flanneld".to_string(), sha(&body))]);
        let set = Fetcher::new(o)
            .unwrap()
            .fetch(&kube(), &[Artifact::Flanneld])
            .await
            .unwrap();
        assert!(set.sources["flanneld"].verified);
    }

    #[tokio::test]
    async fn flannels_cni_plugin_is_linked_as_cni_flannel_from_its_sidecar_or_the_release_answer() {
        let plugin = b"#!/bin/sh\n# flannel's CNI plugin, as far as this test is concerned\n";
        // An archive from before v1.2.0: every architecture's binary, under `./`.
        let archive = tgz(&[
            ("./flannel-arm64", b"arm64 build"),
            ("./flannel-amd64", plugin),
        ]);
        let name = "cni-plugin-flannel-linux-amd64-v1.9.1.tgz";

        // The sidecar its release scripts publish (sha256sum's format).
        let s = setup();
        put(&s.mirror, &cni_rel(), &archive);
        put(
            &s.mirror,
            &format!("{}.sha256", cni_rel()),
            format!("{}  {name}\n", sha(&archive)).as_bytes(),
        );
        let set = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::FlannelCni])
            .await
            .unwrap();
        let rb = &set.binaries["cni/flannel"];
        assert_eq!(rb.sha256, sha(plugin));
        assert_eq!(rb.path, set.cni_bin_dir().join("flannel"));
        assert_eq!(fs::read(&rb.path).unwrap(), plugin);
        assert_eq!(set.binaries.len(), 1, "{:?}", set.binaries.keys());
        verify_before_exec(rb).unwrap();

        // No sidecar: the release answer's digest, from the same origin.
        let s = setup();
        put(&s.mirror, &cni_rel(), &archive);
        put(
            &s.mirror,
            &format!("repos/flannel-io/cni-plugin/releases/tags/{FLANNEL_CNI}"),
            answer(&[(name, Some(sha(&archive)))]).as_bytes(),
        );
        let set = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::FlannelCni])
            .await
            .unwrap();
        assert!(set.sources["flannel-cni"].verified);
        assert_eq!(set.binaries["cni/flannel"].sha256, sha(plugin));

        // Neither: no published checksum, refused before downloading.
        let s = setup();
        put(&s.mirror, &cni_rel(), &archive);
        let err = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::FlannelCni])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::NoChecksum { artifact, .. } if artifact == "flannel-cni"),
            "{err:?}"
        );

        // An archive without this architecture's binary is refused by name.
        let s = setup();
        let wrong = tgz(&[("flannel-arm64", b"arm64 build")]);
        put(&s.mirror, &cni_rel(), &wrong);
        put(
            &s.mirror,
            &format!("{}.sha256", cni_rel()),
            format!("{}  {name}\n", sha(&wrong)).as_bytes(),
        );
        let err = Fetcher::new(s.opts.clone())
            .unwrap()
            .fetch(&kube(), &[Artifact::FlannelCni])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::MissingMember { member, .. } if member == "flannel-amd64"),
            "{err:?}"
        );
    }

    /// GitHub's API refusing (its hourly limit for clients without a token) is one line
    /// saying what to do, not a bare status.
    #[tokio::test]
    async fn a_refusing_release_api_says_to_retry_mirror_or_pin() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        // Answers 403 to every request, for at most 10 s.
        let server = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut paths = Vec::new();
            while std::time::Instant::now() < deadline && paths.is_empty() {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = [0u8; 4096];
                        let n = c.read(&mut buf).unwrap_or(0);
                        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                        paths.push(head.split_whitespace().nth(1).unwrap_or("").to_string());
                        let _ = c.write_all(
                            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            paths
        });
        let s = setup();
        let mut o = s.opts.clone();
        o.mirror = Some(format!("http://127.0.0.1:{port}/"));
        let err = Fetcher::new(o)
            .unwrap()
            .fetch(&kube(), &[Artifact::Flanneld])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::ReleaseApiRefused { status: 403, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("fetch.checksums.flanneld"),
            "{err}"
        );
        let paths = server.join().unwrap();
        assert_eq!(paths, vec![format!("/{}", flanneld_answer_rel())]);
    }

    #[test]
    fn the_plan_names_every_download_and_where_its_checksum_comes_from() {
        let s = setup();
        let plan = Fetcher::new(s.opts.clone())
            .unwrap()
            .plan(&kube(), &[Artifact::Flanneld, Artifact::FlannelCni])
            .unwrap();
        let fc = plan.iter().find(|d| d.name == "flannel-cni").unwrap();
        assert_eq!(fc.provides, vec!["cni/flannel".to_string()]);
        assert!(fc.url.ends_with(&cni_rel()), "{}", fc.url);
        assert_eq!(fc.checksum.len(), 2);
        let f = plan.iter().find(|d| d.name == "flanneld").unwrap();
        assert!(f.checksum[0].ends_with(&flanneld_answer_rel()), "{f:?}");
    }

    #[test]
    fn the_os_cni_plugins_are_linked_beside_the_fetched_ones_and_stale_links_go() {
        let tmp = tempfile::tempdir().unwrap();
        let os = tmp.path().join("usr-lib-cni");
        fs::create_dir_all(&os).unwrap();
        let exe = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::write(p, b"#!/bin/sh\n").unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        for p in ["bridge", "host-local", "flannel", "old"] {
            exe(&os.join(p));
        }
        fs::write(os.join("README"), b"not a plugin").unwrap();
        let bin_dir = tmp.path().join("bin/v1.37.1");
        let fetched = bin_dir.join("cni/flannel");
        fs::create_dir_all(fetched.parent().unwrap()).unwrap();
        exe(&fetched);
        let set = FetchedSet {
            kube_version: V.into(),
            arch: "amd64".into(),
            bin_dir: bin_dir.clone(),
            binaries: BTreeMap::from([(
                "cni/flannel".to_string(),
                ResolvedBinary {
                    path: fetched.clone(),
                    sha256: sha(b"#!/bin/sh\n"),
                    size: 10,
                    argv_prefix: Vec::new(),
                },
            )]),
            sources: BTreeMap::new(),
        };
        let linked = set.link_os_cni_plugins(&os).unwrap();
        assert_eq!(linked, vec!["bridge", "host-local", "old"]);
        let dir = set.cni_bin_dir();
        assert_eq!(
            fs::read_link(dir.join("bridge")).unwrap(),
            os.join("bridge")
        );
        // The fetched (verified) flannel wins over the OS's.
        assert!(!fs::symlink_metadata(&fetched).unwrap().is_symlink());
        assert!(!dir.join("README").exists());

        // A plugin the OS no longer has loses its link; the others stay.
        fs::remove_file(os.join("old")).unwrap();
        let linked = set.link_os_cni_plugins(&os).unwrap();
        assert_eq!(linked, vec!["bridge", "host-local"]);
        assert!(fs::symlink_metadata(dir.join("old")).is_err());
        assert!(dir.join("bridge").exists() && fetched.exists());
    }
}
