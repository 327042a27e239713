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
//! Module map: [`manifest`] (what and where), `mirror` (URL/path resolution, checksum files),
//! `download` (streaming, hashing, resume, retry), `cache` (content-addressed store, links,
//! re-verification), [`bundle`] (air gap), `progress` (bars or log lines).

pub mod bundle;
mod cache;
mod download;
pub mod manifest;
mod mirror;
mod progress;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::fsutil::FsError;
use crate::model::Component;
use crate::paths::Paths;

pub use bundle::{BUNDLE_MANIFEST, BundleManifest, BundleSummary, load_bundle, write_bundle};
pub use manifest::{Artifact, ReleaseManifest, VersionOverrides, host_arch, needed_artifacts};
pub use mirror::Source;

use cache::{ArchiveIndex, Cache, IO_BUF, io_err, unique_sibling, write_unique};
use download::Downloader;
use manifest::{Checksum, Content, Job, Select};
use mirror::{is_sha256_hex, parse_checksum};
use progress::Progress;

/// Everything that can go wrong while fetching, verifying, caching or bundling.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{what} version {version:?} is not a release version; write it as vX.Y.Z")]
    BadVersion { what: &'static str, version: String },
    #[error("no release manifest for Kubernetes {version}: kubesup knows v1.{first} to v1.{last}")]
    NoManifest {
        version: String,
        first: u64,
        last: u64,
    },
    #[error(
        "architecture {arch:?} is not supported; use amd64, arm64, arm, ppc64le, s390x or riscv64"
    )]
    UnsupportedArch { arch: String },
    #[error("mirror {mirror:?}: {reason}")]
    BadMirror { mirror: String, reason: String },
    #[error("pinned checksum for {name} is not a SHA-256 (64 hex characters)")]
    BadPin { name: String },
    #[error("cannot set up the HTTP client")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: nothing received for {after:?} (read timeout) after {received} bytes")]
    ReadTimeout {
        url: String,
        after: Duration,
        received: u64,
    },
    #[error("GET {url}: the connection broke after {received} bytes")]
    Body {
        url: String,
        received: u64,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: the body ended after {received} of {expected} bytes")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },
    #[error("GET {url}: asked for bytes {offset}- and got Content-Range {got:?}; starting over")]
    BadRange {
        url: String,
        offset: u64,
        got: String,
    },
    #[error("{url}: not found (the mirror lacks it, or the version is not published)")]
    NotFound { url: String },
    #[error("GET {url}: HTTP {status}")]
    Http { url: String, status: u16 },
    #[error(
        "sha256 mismatch for {url}: expected {expected}, got {actual} (the mirror or download is corrupt; re-sync the mirror or pin the right checksum)"
    )]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "no published checksum for {artifact} ({url}); pin one (fetch.checksums.{artifact} in the config) or pass --insecure-skip-verify"
    )]
    NoChecksum { artifact: String, url: String },
    #[error("checksum file {url} has no entry for {file}")]
    ChecksumEntry { url: String, file: String },
    #[error("checksum file {url} {reason}")]
    ChecksumFile { url: String, reason: &'static str },
    #[error("cannot unpack {url}")]
    Archive {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("{url} has no {member}")]
    MissingMember { url: String, member: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a link to the cached binary sha256/{expected} (it points at {target}); run `kubesup fetch` again"
    )]
    NotCacheLink {
        path: PathBuf,
        target: PathBuf,
        expected: String,
    },
    #[error("{path} has {actual} bytes, {expected} were recorded; run `kubesup fetch` again")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path} has mode {mode:o}: refusing to run a binary that is not executable or is group/world-writable"
    )]
    BadMode { path: PathBuf, mode: u32 },
    #[error(
        "{path} is corrupt: expected sha256 {expected}, got {actual}; it will not be run (run `kubesup fetch` again)"
    )]
    CorruptBinary {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{name} was not fetched for Kubernetes {version}; run `kubesup fetch --kube-version {version}`"
    )]
    NotFetched { name: String, version: String },
    #[error(
        "nothing was fetched for Kubernetes {version} (no {path}); run `kubesup fetch --kube-version {version}`"
    )]
    NoRecord { version: String, path: PathBuf },
    #[error("cannot parse the fetch record {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("bundle {path}: {reason}")]
    BundleFormat { path: PathBuf, reason: String },
    #[error(
        "bundle {path} is tampered or corrupt: {entry} has sha256 {actual}, its manifest says {expected}; nothing from it was installed"
    )]
    BundleTampered {
        path: PathBuf,
        entry: String,
        expected: String,
        actual: String,
    },
    #[error("bundle {path}: {name} has sha256 {actual}, but the pinned checksum is {pinned}")]
    BundlePin {
        path: PathBuf,
        name: String,
        pinned: String,
        actual: String,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("a fetch task failed")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl FetchError {
    /// Worth another attempt: the network or the server may do better next time.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Request { source, .. } => !source.is_builder() && !source.is_redirect(),
            Self::ReadTimeout { .. }
            | Self::Body { .. }
            | Self::Truncated { .. }
            | Self::BadRange { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

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
    pub fn record_path(paths: &Paths, kube_version: &str) -> PathBuf {
        paths.bin_dir(kube_version).join(RECORD_FILE)
    }

    /// What an earlier fetch (or bundle load) recorded, without any network: the supervisor's
    /// way to find its binaries after a restart.
    /// `kube_version` may be given with or without its `v`.
    pub fn load(paths: &Paths, kube_version: &str) -> Result<Self, FetchError> {
        let version = manifest::normalize_version("Kubernetes", kube_version)?.0;
        let path = Self::record_path(paths, &version);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FetchError::NoRecord { version, path });
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| FetchError::Record { path, source })
    }

    fn save(&self) -> Result<(), FetchError> {
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
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("kubesup/", env!("CARGO_PKG_VERSION")))
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
            retries: opts.retries,
            backoff: opts.retry_backoff,
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
    pub fn manifest(&self, kube_version: &str) -> Result<ReleaseManifest, FetchError> {
        let o = &self.inner.opts;
        ReleaseManifest::resolve(kube_version, &o.arch, &o.overrides())
    }

    /// Fetches `artifacts` of `kube_version` (downloading only what the cache lacks), links them
    /// into the version's bin dir and records the result. Returns every binary recorded for
    /// the version, including those of earlier fetches.
    pub async fn fetch(
        &self,
        kube_version: &str,
        artifacts: &[Artifact],
    ) -> Result<FetchedSet, FetchError> {
        let manifest = self.manifest(kube_version)?;
        let jobs = manifest.jobs(artifacts);
        let bin_dir = self.inner.opts.paths.bin_dir(&manifest.kube_version);
        let prev = Arc::new(read_record(&bin_dir).filter(|p| p.arch == manifest.arch));
        info!(version = %manifest.kube_version, arch = %manifest.arch, downloads = jobs.len(), "fetching");

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
                        error!(artifact = %job.name, error = %e, "fetch failed");
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
            for (_, job, r) in done {
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

    /// What an earlier fetch recorded for `kube_version` (no network).
    pub fn resolve_offline(&self, kube_version: &str) -> Result<FetchedSet, FetchError> {
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

/// Unpacks the selected members of a verified tarball into the cache, hashing each on the way.
fn extract(
    archive: &Path,
    url: &str,
    select: &Select,
    link_prefix: &str,
    cache: &Cache,
) -> Result<ArchiveIndex, FetchError> {
    let bad = |source: io::Error| FetchError::Archive {
        url: url.to_string(),
        source,
    };
    let f = fs::File::open(archive).map_err(io_err("open", archive))?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::with_capacity(IO_BUF, f));
    let mut tar = tar::Archive::new(gz);
    let tmp_dir = cache.tmp_dir();
    fs::create_dir_all(&tmp_dir).map_err(io_err("create directory", &tmp_dir))?;
    let mut idx = ArchiveIndex::default();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(base) = select.pick(&member) else {
            continue;
        };
        let name = format!("{link_prefix}{base}");
        if idx.members.contains_key(&name) {
            continue;
        }
        let tmp = unique_sibling(&tmp_dir.join(&base));
        let copied = (|| -> Result<(String, u64), FetchError> {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; IO_BUF];
            let mut n_total = 0u64;
            loop {
                let n = entry.read(&mut buf).map_err(bad)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
                n_total += n as u64;
            }
            out.sync_all().map_err(io_err("sync", &tmp))?;
            let sha = hex::encode(h.finalize());
            cache.place(&tmp, &sha, 0o755)?;
            Ok((sha, n_total))
        })();
        match copied {
            Ok(v) => {
                idx.members.insert(name, v);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    for r in select.required() {
        if !idx.members.contains_key(&format!("{link_prefix}{r}")) {
            return Err(FetchError::MissingMember {
                url: url.to_string(),
                member: (*r).to_string(),
            });
        }
    }
    Ok(idx)
}

fn read_record(bin_dir: &Path) -> Option<FetchedSet> {
    let path = bin_dir.join(RECORD_FILE);
    let bytes = fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "ignoring an unreadable fetch record");
            None
        }
    }
}
