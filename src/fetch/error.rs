//! What can go wrong while fetching, verifying, caching or bundling, and which of it is worth
//! another attempt.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::fsutil::FsError;
use crate::http::HttpError;

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
        source: HttpError,
    },
    /// The request failed before its body: the error names the URL.
    #[error(transparent)]
    Request(HttpError),
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
        source: hyper::Error,
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
    #[error("cannot read GitHub's release answer {url}")]
    ReleaseAnswer {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "GitHub's API refused {url} (HTTP {status}; it allows 60 requests an hour without a token): retry later, serve the answer from a mirror, or pin the checksum (fetch.checksums.{artifact} in the config)"
    )]
    ReleaseApiRefused {
        artifact: String,
        url: String,
        status: u16,
    },
    #[error("the release answer {url} lists no asset {asset} (is the version right?)")]
    ReleaseNoAsset { url: String, asset: String },
    #[error(
        "GitHub's release answer {url} shows no SHA-256 digest for {asset} (GitHub computes them only for assets uploaded since June 2025); pin one (fetch.checksums.{artifact} in the config) or pass --insecure-skip-verify"
    )]
    NoReleaseDigest {
        artifact: String,
        url: String,
        asset: String,
    },

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
    #[error("bundle {path}: {what}")]
    BundleRead {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("bundle {path}: bad manifest")]
    BundleManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
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
    #[error(
        "{artifact} was accepted here without a checksum (insecure_skip_verify), so this master does not hand it to nodes; pin its checksum in fetch.checksums.{artifact}"
    )]
    UnverifiedForNodes { artifact: String },
    #[error("the binary list from the master {master} is unusable: {reason}")]
    BadList { master: String, reason: String },
    #[error(
        "the master sent {binary} ({url}) with sha256 {actual}, but listed {expected}: its cache is corrupt or tampered; nothing was installed (on the master, run `kubesup fetch` to re-verify its cache)"
    )]
    MasterSentOther {
        binary: String,
        url: String,
        expected: String,
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
            Self::Request(e) => e.is_transient(),
            Self::ReadTimeout { .. }
            | Self::Body { .. }
            | Self::Truncated { .. }
            | Self::BadRange { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}
