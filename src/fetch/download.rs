//! Downloads: stream to a `.partial` file while computing SHA-256 over the same bytes (one pass,
//! no re-read), resume with HTTP Range, retry with exponential backoff, time out idle reads.
//!
//! Invariants:
//! - the hasher has seen exactly the bytes in the `.partial` file, in order, at every point a
//!   request starts; that is what makes a resumed download's hash the hash of the whole file;
//! - a download whose hash does not match is deleted here and never reaches the cache;
//! - one `.partial` has one writer: it is flock(2)ed, and a second process fetching the same
//!   file (nodes sharing a cache) writes its own uniquely named one instead.
//!
//! A `.partial` is kept after a transient failure (timeout, dropped connection, 5xx) that ran
//! out of retries, so that the next fetch resumes it; it is removed after a hash mismatch, a
//! 4xx or a local I/O error, where its bytes are worthless.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{CONTENT_RANGE, RANGE};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::FetchError;
use super::cache::{IO_BUF, io_err, unique_sibling};
use super::mirror::Location;
use super::progress::{Bar, Progress};
use crate::http::{Client, HttpError, Response};
use crate::retry::Backoff;

/// Checksum files are a few hundred bytes; anything much larger is not one.
const MAX_CHECKSUM_FILE: usize = 1 << 20;
/// Longest wait between attempts, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) struct Downloader {
    pub client: Client,
    pub read_timeout: Duration,
    /// Between attempts at one file: transient failures only, bounded.
    pub retry: Backoff,
    pub progress: Progress,
}

/// A complete, fsynced, hash-checked download, still in the partial dir (same file system as
/// the cache, so the caller can rename it in). Holds the flock until dropped.
pub(crate) struct Downloaded {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    _lock: Flock<File>,
}

/// The `.partial` file being written, with the hash of what it holds.
struct Partial {
    file: Flock<File>,
    path: PathBuf,
    /// Bytes hashed so far = bytes on disk + `buf`.
    len: u64,
    buf: Vec<u8>,
    hasher: Sha256,
    /// Part of the content came from an earlier response (Range/206).
    resumed: bool,
}

impl Partial {
    /// Opens (or creates) `dir/name` and locks it. If another process holds it, falls back to
    /// a private file so that the two never interleave writes.
    fn open(dir: &Path, name: &str) -> Result<Self, FetchError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let shared = dir.join(name);
        let open = |p: &Path, create_new: bool| {
            let mut o = OpenOptions::new();
            o.read(true).write(true).mode(0o600);
            if create_new {
                o.create_new(true);
            } else {
                o.create(true);
            }
            o.open(p).map_err(io_err("open", p))
        };
        let (file, path) = match Flock::lock(open(&shared, false)?, FlockArg::LockExclusiveNonblock)
        {
            Ok(f) => (f, shared),
            Err((_, errno)) => {
                let private = unique_sibling(&shared);
                debug!(partial = %shared.display(), %errno, "partial busy; using a private one");
                let f = Flock::lock(open(&private, true)?, FlockArg::LockExclusiveNonblock)
                    .map_err(|(_, e)| io_err("lock", &private)(io::Error::from(e)))?;
                (f, private)
            }
        };
        let mut p = Self {
            file,
            path,
            len: 0,
            buf: Vec::with_capacity(IO_BUF),
            hasher: Sha256::new(),
            resumed: false,
        };
        p.len = p
            .file
            .seek(SeekFrom::End(0))
            .map_err(io_err("seek", &p.path))?;
        Ok(p)
    }

    /// Hashes what an earlier run left in the file, so the download can continue after it.
    fn seed(&mut self) -> io::Result<()> {
        let mut f = File::open(&self.path)?;
        let mut buf = vec![0u8; IO_BUF];
        let mut n_total = 0u64;
        while n_total < self.len {
            let want = buf.len().min((self.len - n_total) as usize);
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            n_total += n as u64;
        }
        if n_total != self.len {
            self.reset()?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        if self.buf.is_empty() && bytes.len() >= IO_BUF / 4 {
            return self.file.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= IO_BUF {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        self.hasher = Sha256::new();
        self.resumed = false;
        Ok(())
    }

    fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }

    /// fsync off the async worker threads: it can take a while for a 100 MB file.
    async fn sync(&self) -> Result<(), FetchError> {
        let f = self.file.try_clone().map_err(io_err("sync", &self.path))?;
        tokio::task::spawn_blocking(move || f.sync_all())
            .await
            .map_err(|source| FetchError::Task { source })?
            .map_err(io_err("sync", &self.path))
    }

    fn into_downloaded(self, sha256: String) -> Downloaded {
        Downloaded {
            path: self.path,
            sha256,
            size: self.len,
            _lock: self.file,
        }
    }
}

/// `bytes START-END/TOTAL` -> (START, Some(TOTAL)); TOTAL may be `*`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// `bytes */TOTAL` (the form of a 416 answer) -> TOTAL.
fn parse_unsatisfied_range(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

impl Downloader {
    /// The retry policy for `opts`: `retries` retries after the first attempt, from `first`
    /// doubling up to [`MAX_BACKOFF`], less up to a quarter at random, so that nodes restarted
    /// together do not retry in lockstep.
    pub(crate) fn retry_policy(retries: u32, first: Duration) -> Backoff {
        Backoff::exponential(first, MAX_BACKOFF)
            .with_jitter(0.25)
            .with_attempts(retries.saturating_add(1))
    }

    /// Reads a small text file (a published checksum). `Ok(None)` when it does not exist.
    pub(crate) async fn small(&self, loc: &Location) -> Result<Option<String>, FetchError> {
        match loc {
            Location::File(path) => match fs::read(path) {
                Ok(b) if b.len() > MAX_CHECKSUM_FILE => Err(FetchError::ChecksumFile {
                    url: loc.to_string(),
                    reason: "is too large to be a checksum file",
                }),
                Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("read", path)(e)),
            },
            Location::Url(url) => {
                let mut failures = 0;
                loop {
                    match self.small_attempt(url).await {
                        Err(FetchError::NotFound { .. }) => return Ok(None),
                        Err(e) if e.is_transient() && self.retry.allows(failures + 1) => {
                            failures += 1;
                            let d = self.retry.wait(failures);
                            warn!(url, attempt = failures, error = %crate::errors::chain(&e), retry_in = ?d, "retrying");
                            tokio::time::sleep(d).await;
                        }
                        r => return r.map(Some),
                    }
                }
            }
        }
    }

    async fn small_attempt(&self, url: &str) -> Result<String, FetchError> {
        let mut resp = self.send(url, None).await?;
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Err(FetchError::NotFound { url: url.into() }),
            status => {
                return Err(FetchError::Http {
                    url: url.into(),
                    status,
                });
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(url, &mut resp, body.len() as u64).await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_CHECKSUM_FILE {
                return Err(FetchError::ChecksumFile {
                    url: url.into(),
                    reason: "is too large to be a checksum file",
                });
            }
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn send(&self, url: &str, range_from: Option<u64>) -> Result<Response, FetchError> {
        let mut req = self.client.get(url);
        if let Some(offset) = range_from {
            req = req.header(RANGE, &format!("bytes={offset}-"));
        }
        match timeout(self.read_timeout, req.send()).await {
            Err(_) => Err(FetchError::ReadTimeout {
                url: url.into(),
                after: self.read_timeout,
                received: range_from.unwrap_or(0),
            }),
            Ok(Err(e)) => Err(FetchError::Request(e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The next body chunk, or a timeout if none arrives within the read timeout: the limit is
    /// on the idle gap, so a slow but steady download of a big file is never cut off.
    async fn next_chunk(
        &self,
        url: &str,
        resp: &mut Response,
        received: u64,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        match timeout(self.read_timeout, resp.chunk()).await {
            Err(_) => Err(FetchError::ReadTimeout {
                url: url.into(),
                after: self.read_timeout,
                received,
            }),
            Ok(Err(HttpError::Body { source, .. })) => Err(FetchError::Body {
                url: url.into(),
                received,
                source,
            }),
            Ok(Err(e)) => Err(FetchError::Request(e)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// Downloads `loc` into `partial_dir/partial_name`, verifying against `expected` when given.
    pub(crate) async fn download(
        &self,
        loc: &Location,
        label: &str,
        expected: Option<&str>,
        partial_dir: &Path,
        partial_name: &str,
    ) -> Result<Downloaded, FetchError> {
        let bar = self.progress.start(label, &loc.to_string());
        let r = match loc {
            Location::Url(url) => {
                self.http(url, &bar, expected, partial_dir, partial_name)
                    .await
            }
            Location::File(path) => {
                let (path, bar2, expected) =
                    (path.clone(), bar.clone(), expected.map(str::to_string));
                let (dir, name, url) = (
                    partial_dir.to_path_buf(),
                    partial_name.to_string(),
                    loc.to_string(),
                );
                tokio::task::spawn_blocking(move || {
                    copy_file(&path, &url, &bar2, expected.as_deref(), &dir, &name)
                })
                .await
                .map_err(|source| FetchError::Task { source })?
            }
        };
        match &r {
            Ok(d) => bar.finish(d.size, &d.sha256),
            Err(_) => bar.abandon(),
        }
        r
    }

    async fn http(
        &self,
        url: &str,
        bar: &Bar,
        expected: Option<&str>,
        partial_dir: &Path,
        partial_name: &str,
    ) -> Result<Downloaded, FetchError> {
        let mut p = Partial::open(partial_dir, partial_name)?;
        if p.len > 0 {
            let path = p.path.clone();
            // Seeding re-reads only the prefix an earlier run left; it is bounded by the file.
            p = tokio::task::spawn_blocking(move || p.seed().map(|()| p))
                .await
                .map_err(|source| FetchError::Task { source })?
                .map_err(io_err("read", &path))?;
            debug!(url, offset = p.len, "resuming a partial download");
        }
        let mut failures = 0u32;
        let mut restarted = false;
        loop {
            let result = self.attempt(url, &mut p, bar).await;
            // Whatever happened, the file must hold everything hashed before the next request.
            if let Err(e) = p.flush() {
                let err = io_err("write", &p.path)(e);
                p.remove();
                return Err(err);
            }
            match result {
                Ok(()) => {
                    let actual = p.hex();
                    if let Some(exp) = expected
                        && exp != actual
                    {
                        // A resumed download may have spliced two different versions of the
                        // file (the mirror was updated in between): one clean try is owed.
                        if p.resumed && !restarted {
                            warn!(
                                url,
                                "sha256 mismatch after a resumed download; starting over"
                            );
                            restarted = true;
                            p.reset().map_err(io_err("truncate", &p.path))?;
                            continue;
                        }
                        p.remove();
                        return Err(FetchError::HashMismatch {
                            url: url.into(),
                            expected: exp.into(),
                            actual,
                        });
                    }
                    if let Err(e) = p.sync().await {
                        p.remove();
                        return Err(e);
                    }
                    return Ok(p.into_downloaded(actual));
                }
                Err(e) if e.is_transient() && self.retry.allows(failures + 1) => {
                    failures += 1;
                    let d = self.retry.wait(failures);
                    warn!(url, attempt = failures, received = p.len, error = %crate::errors::chain(&e), retry_in = ?d,
                        "download failed; retrying");
                    tokio::time::sleep(d).await;
                }
                Err(e) => {
                    if !e.is_transient() || p.len == 0 {
                        p.remove();
                    } else {
                        debug!(partial = %p.path.display(), bytes = p.len, "kept for resuming");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One request: continues from `p.len` when it is non-zero.
    async fn attempt(&self, url: &str, p: &mut Partial, bar: &Bar) -> Result<(), FetchError> {
        let offset = p.len;
        let mut resp = self.send(url, (offset > 0).then_some(offset)).await?;
        let status = resp.status().as_u16();
        let content_range = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let path = p.path.clone();
        let io = |e| io_err("truncate", &path)(e);
        let total = match status {
            200 => {
                if offset > 0 {
                    debug!(url, "server ignored the Range request; starting over");
                    p.reset().map_err(io)?;
                }
                resp.content_length()
            }
            206 if offset > 0 => match parse_content_range(&content_range) {
                Some((start, total)) if start == offset => {
                    p.resumed = true;
                    total.or(resp.content_length().map(|l| l + offset))
                }
                _ => {
                    p.reset().map_err(io)?;
                    return Err(FetchError::BadRange {
                        url: url.into(),
                        offset,
                        got: content_range,
                    });
                }
            },
            416 if offset > 0 => {
                // `bytes */TOTAL` equal to what we hold: the earlier attempt got everything.
                if parse_unsatisfied_range(&content_range) == Some(offset) {
                    return Ok(());
                }
                p.reset().map_err(io)?;
                return Err(FetchError::BadRange {
                    url: url.into(),
                    offset,
                    got: content_range,
                });
            }
            404 | 410 => return Err(FetchError::NotFound { url: url.into() }),
            _ => {
                return Err(FetchError::Http {
                    url: url.into(),
                    status,
                });
            }
        };
        bar.set_length(total);
        bar.set_position(p.len);
        while let Some(chunk) = self.next_chunk(url, &mut resp, p.len).await? {
            p.write(&chunk).map_err(io_err("write", &p.path))?;
            bar.inc(chunk.len() as u64);
        }
        match total {
            Some(t) if p.len != t => Err(FetchError::Truncated {
                url: url.into(),
                received: p.len,
                expected: t,
            }),
            _ => Ok(()),
        }
    }
}

/// A file mirror: copy while hashing. No resume: a local read does not fail halfway the way a
/// network does, and starting over costs little.
fn copy_file(
    src: &Path,
    url: &str,
    bar: &Bar,
    expected: Option<&str>,
    partial_dir: &Path,
    partial_name: &str,
) -> Result<Downloaded, FetchError> {
    let mut input = match File::open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FetchError::NotFound { url: url.into() });
        }
        Err(e) => return Err(io_err("open", src)(e)),
    };
    bar.set_length(input.metadata().ok().map(|m| m.len()));
    let mut p = Partial::open(partial_dir, partial_name)?;
    let copied = (|| -> Result<(), FetchError> {
        p.reset().map_err(io_err("truncate", &p.path))?;
        let mut buf = vec![0u8; IO_BUF];
        loop {
            let n = input.read(&mut buf).map_err(io_err("read", src))?;
            if n == 0 {
                break;
            }
            p.write(&buf[..n]).map_err(io_err("write", &p.path))?;
            bar.inc(n as u64);
        }
        p.flush().map_err(io_err("write", &p.path))?;
        p.file.sync_all().map_err(io_err("sync", &p.path))
    })();
    if let Err(e) = copied {
        p.remove();
        return Err(e);
    }
    let actual = p.hex();
    if let Some(exp) = expected
        && exp != actual
    {
        p.remove();
        return Err(FetchError::HashMismatch {
            url: url.into(),
            expected: exp.into(),
            actual,
        });
    }
    Ok(p.into_downloaded(actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_unsatisfied_range("bytes */200"), Some(200));
    }

    #[tokio::test]
    async fn backoff_doubles_and_is_capped() {
        let d = Downloader {
            client: Client::builder().build().unwrap(),
            read_timeout: Duration::from_secs(1),
            retry: Downloader::retry_policy(3, Duration::from_millis(100)),
            progress: Progress::new(false),
        };
        let ms = |n| d.retry.wait(n).as_millis();
        assert!((75..=100).contains(&ms(1)), "{}", ms(1));
        assert!((150..=200).contains(&ms(2)));
        assert!((300..=400).contains(&ms(3)));
        assert!(d.retry.wait(40) <= MAX_BACKOFF);
        // Three retries after the first attempt, then no more.
        assert!(d.retry.allows(3) && !d.retry.allows(4));
    }

    #[test]
    fn partial_resume_hash_equals_whole_hash() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut p = Partial::open(dir.path(), "x.partial").unwrap();
            p.write(&data[..123_456]).unwrap();
            p.flush().unwrap();
        }
        let mut p = Partial::open(dir.path(), "x.partial").unwrap();
        assert_eq!(p.len, 123_456);
        p.seed().unwrap();
        p.write(&data[123_456..]).unwrap();
        p.flush().unwrap();
        assert_eq!(p.hex(), hex::encode(Sha256::digest(&data)));
        assert_eq!(fs::read(&p.path).unwrap(), data);
    }

    #[test]
    fn a_busy_partial_is_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let a = Partial::open(dir.path(), "x.partial").unwrap();
        let b = Partial::open(dir.path(), "x.partial").unwrap();
        assert_ne!(a.path, b.path);
    }
}
