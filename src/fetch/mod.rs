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
//! talk to anything but the configured mirror (or the upstream hosts when there is none).
//!
//! Module map: this file runs the jobs; [`manifest`] (what and where), `mirror` (URL/path
//! resolution, checksum files), `download` (streaming, hashing, resume, retry), `extract`
//! (release tarballs), `cache` (content-addressed store, links, re-verification), `record`
//! (`fetched.json`), `error`, [`bundle`] (air gap), `progress` (bars or log lines). HTTP goes
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
pub use record::{FetchedSet, RECORD_FILE, ResolvedBinary, SourceRecord};

use cache::{ArchiveIndex, Cache};
use download::Downloader;
use extract::extract;
use manifest::{Checksum, Content, Job};
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
        }
    }
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
        let expected = match (&pinned, &job.checksum) {
            (Some(p), _) => Some(p.clone()),
            (None, Checksum::Sidecar { rel }) => {
                let sums = inner.source.locate(rel, job.upstream);
                match inner.dl.small(&sums).await? {
                    Some(text) => Some(parse_checksum(&text, &job.file_name).ok_or_else(|| {
                        FetchError::ChecksumEntry {
                            url: sums.to_string(),
                            file: job.file_name.clone(),
                        }
                    })?),
                    None => None,
                }
            }
            (None, Checksum::None) => None,
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
