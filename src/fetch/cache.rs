//! The content-addressed binary cache and the per-version named links into it.
//!
//! Layout under the cache dir (`Paths::cache_dir()`, or a cache shared by several nodes):
//! - `sha256/<hex>`: one verified file per content hash (0755 executables). Only this module
//!   puts files there, and only by rename(2) of a file whose hash it has just checked, so a
//!   file in `sha256/` always has the content its name says, or is missing.
//! - `verified/<hex>`: the stat stamp (device, inode, size, mtime, ctime) taken after the file
//!   was last fully hashed; it is what makes [`verify_binary`] cheap.
//! - `archives/<hex>.json`: which binaries a verified tarball contained, so the tarball itself
//!   need not be kept or downloaded again.
//! - `partial/`: resumable downloads; `tmp/`: archive extraction and bundle staging.
//!
//! Must not: execute anything, or trust a file it did not hash or stamp.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::{FetchError, ResolvedBinary};

/// Buffer for hashing and copying files: large enough that syscalls are not the cost.
pub(crate) const IO_BUF: usize = 1 << 20;

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io {
        action,
        path,
        source,
    }
}

/// SHA-256 and length of a file, in one read.
pub(crate) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hex::encode(h.finalize()), n_total))
}

/// What a file looked like when it was last hashed. Any write, truncate, chmod or replacement
/// changes ctime (or the inode), and ctime cannot be set from user space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            mode: m.mode(),
        }
    }
}

/// Members of a verified archive: binary name -> (sha256, size).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArchiveIndex {
    pub members: BTreeMap<String, (String, u64)>,
}

/// Writes `bytes` to `path` via a uniquely named temp file, fsync and rename. (fsutil's temp
/// name is per process; several tasks here may write stamps at once.)
pub(crate) fn write_unique(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FetchError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let tmp = unique_sibling(path);
    let r = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(io_err("write", path))
}

pub(crate) fn unique_sibling(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(
        ".tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    path.with_file_name(name)
}

/// Points `link` at `target` by rename(2) of a new symlink over it: a reader (containerd
/// looking up a CNI plugin) sees the old link or the new one, never none. A no-op when it
/// already points there.
pub(crate) fn symlink_atomic(link: &Path, target: &Path) -> Result<(), FetchError> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let dir = link.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let tmp = unique_sibling(link);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("create link", &tmp))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("replace link", link)(e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), FetchError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `root` is made absolute: the named links point into it and must not depend on the
    /// working directory of whoever follows them.
    pub(crate) fn new(root: &Path) -> Self {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Self { root }
    }

    pub(crate) fn blob(&self, hex: &str) -> PathBuf {
        self.root.join("sha256").join(hex)
    }

    pub(crate) fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn stamp_path(&self, hex: &str) -> PathBuf {
        self.root.join("verified").join(hex)
    }

    fn archive_path(&self, hex: &str) -> PathBuf {
        self.root.join("archives").join(format!("{hex}.json"))
    }

    /// The size of the blob `hex` if it is present and still has that content: cheap when its
    /// stamp matches, a full rehash otherwise. A blob that fails the rehash is removed so that
    /// it is fetched again, and reported absent.
    pub(crate) fn lookup(&self, hex: &str) -> Result<Option<u64>, FetchError> {
        let path = self.blob(hex);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("inspect", &path)(e)),
        };
        if stamp_matches(&self.stamp_path(hex), &meta) {
            return Ok(Some(meta.len()));
        }
        let (actual, size) = hash_file(&path).map_err(io_err("hash", &path))?;
        if actual != hex {
            warn!(path = %path.display(), expected = hex, actual, "corrupt cache entry removed");
            fs::remove_file(&path).map_err(io_err("remove corrupt", &path))?;
            return Ok(None);
        }
        self.write_stamp(hex, &path)?;
        Ok(Some(size))
    }

    /// Moves `tmp` (same file system, content already hashed to `hex`) to `sha256/<hex>`.
    pub(crate) fn place(&self, tmp: &Path, hex: &str, mode: u32) -> Result<PathBuf, FetchError> {
        let dst = self.blob(hex);
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        // Another task or process may have placed the same content meanwhile; keep its inode
        // (and stamp) rather than churn it.
        if self.lookup(hex)?.is_some() && mode_is(&dst, mode) {
            let _ = fs::remove_file(tmp);
            return Ok(dst);
        }
        fs::set_permissions(tmp, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", tmp))?;
        fs::rename(tmp, &dst).map_err(io_err("move into the cache", &dst))?;
        sync_dir(&dir)?;
        self.write_stamp(hex, &dst)?;
        debug!(sha256 = hex, path = %dst.display(), "placed in cache");
        Ok(dst)
    }

    fn write_stamp(&self, hex: &str, path: &Path) -> Result<(), FetchError> {
        let meta = fs::metadata(path).map_err(io_err("inspect", path))?;
        let json = serde_json::to_vec(&Stamp::of(&meta)).unwrap_or_default();
        write_unique(&self.stamp_path(hex), &json, 0o644)
    }

    /// Points `link` (a named link in a version's bin dir) at the blob, replacing atomically.
    pub(crate) fn link(&self, link: &Path, hex: &str) -> Result<(), FetchError> {
        symlink_atomic(link, &self.blob(hex))
    }

    pub(crate) fn archive_index(&self, hex: &str) -> Option<ArchiveIndex> {
        let bytes = fs::read(self.archive_path(hex)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub(crate) fn write_archive_index(
        &self,
        hex: &str,
        idx: &ArchiveIndex,
    ) -> Result<(), FetchError> {
        let json = serde_json::to_vec_pretty(idx).unwrap_or_default();
        write_unique(&self.archive_path(hex), &json, 0o644)
    }
}

fn mode_is(path: &Path, mode: u32) -> bool {
    fs::metadata(path).is_ok_and(|m| m.mode() & 0o7777 == mode)
}

fn stamp_matches(stamp: &Path, meta: &fs::Metadata) -> bool {
    fs::read(stamp)
        .ok()
        .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok())
        .is_some_and(|s| s == Stamp::of(meta))
}

/// Re-verifies a resolved binary right before it is executed. See `verify_before_exec`.
pub(crate) fn verify_binary(rb: &ResolvedBinary) -> Result<(), FetchError> {
    let link_meta = fs::symlink_metadata(&rb.path).map_err(io_err("inspect", &rb.path))?;
    let (target, via_cache) = if link_meta.file_type().is_symlink() {
        let t = fs::read_link(&rb.path).map_err(io_err("read link", &rb.path))?;
        let t = match rb.path.parent() {
            Some(dir) if t.is_relative() => dir.join(t),
            _ => t,
        };
        // The link must name the content it claims: `.../sha256/<the recorded hash>`.
        let named_right = t.file_name().is_some_and(|n| n == rb.sha256.as_str())
            && t.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "sha256");
        if !named_right {
            return Err(FetchError::NotCacheLink {
                path: rb.path.clone(),
                target: t,
                expected: rb.sha256.clone(),
            });
        }
        (t, true)
    } else {
        (rb.path.clone(), false)
    };
    let meta = fs::metadata(&target).map_err(io_err("inspect", &target))?;
    if !meta.is_file() || meta.len() != rb.size {
        return Err(FetchError::SizeMismatch {
            path: target,
            expected: rb.size,
            actual: meta.len(),
        });
    }
    // kubesup runs its children as root: a binary others may rewrite is not one to run.
    if meta.mode() & 0o022 != 0 || meta.mode() & 0o100 == 0 {
        return Err(FetchError::BadMode {
            path: target,
            mode: meta.mode() & 0o7777,
        });
    }
    let stamp = via_cache
        .then(|| {
            target
                .parent()?
                .parent()
                .map(|c| c.join("verified").join(&rb.sha256))
        })
        .flatten();
    if let Some(s) = &stamp
        && stamp_matches(s, &meta)
    {
        return Ok(());
    }
    let (actual, _) = hash_file(&target).map_err(io_err("hash", &target))?;
    if actual != rb.sha256 {
        return Err(FetchError::CorruptBinary {
            path: target,
            expected: rb.sha256.clone(),
            actual,
        });
    }
    if let Some(s) = stamp {
        let json = serde_json::to_vec(&Stamp::of(&meta)).unwrap_or_default();
        // A read-only cache still verifies (by rehash) every time; not worth failing over.
        if let Err(e) = write_unique(&s, &json, 0o644) {
            debug!(error = %crate::errors::chain(&e), "cannot refresh the verification stamp");
        }
    }
    Ok(())
}
