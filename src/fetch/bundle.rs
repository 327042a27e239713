//! Air-gap bundles: one uncompressed tar holding every fetched binary once (by content hash)
//! and a manifest naming each binary, its link, hash and size.
//!
//! Layout: `kubesup-bundle.json` first (so a loader knows every expected hash before it reads
//! a byte of content), then `sha256/<hex>` per distinct binary.
//!
//! Invariant: loading is all-or-nothing. Every entry is streamed into a private staging dir
//! while hashed, and only when every entry matches the manifest (and any pinned checksum) is
//! anything renamed into the cache; a tampered bundle leaves the cache as it was.
//! Uncompressed because Go binaries compress poorly for the CPU it costs; compress the file
//! in transit if the link is slow.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component as PathComponent, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use super::cache::{Cache, IO_BUF, io_err, unique_sibling};
use super::manifest::ReleaseManifest;
use super::mirror::is_sha256_hex;
use super::{FetchError, FetchedSet, ResolvedBinary, SourceRecord};
use crate::model::KubeVersion;
use crate::paths::Paths;

/// Name of the manifest entry, always the first in the tar.
pub const BUNDLE_MANIFEST: &str = "kubesup-bundle.json";
const FORMAT: u32 = 1;
const MAX_MANIFEST: u64 = 16 << 20;

/// A binary as the bundle records it: where to link it, relative to the version's bin dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleBinary {
    pub link: String,
    pub sha256: String,
    pub size: u64,
    pub argv_prefix: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub release: ReleaseManifest,
    pub binaries: BTreeMap<String, BundleBinary>,
    pub sources: BTreeMap<String, SourceRecord>,
    /// Every content entry: hex -> size.
    pub blobs: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    pub binaries: usize,
    pub blobs: usize,
    pub bytes: u64,
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    n: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

fn tar_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes `set` into one tar at `out` (via a temp file, fsync, rename). Each binary is hashed
/// again while it is copied, so a cache corrupted since the fetch cannot make a bundle that
/// its own manifest contradicts.
pub fn write_bundle(
    set: &FetchedSet,
    manifest: &ReleaseManifest,
    out: &Path,
) -> Result<BundleSummary, FetchError> {
    let mut binaries = BTreeMap::new();
    let mut blobs: BTreeMap<String, (u64, PathBuf)> = BTreeMap::new();
    for (name, rb) in &set.binaries {
        let link = rb
            .path
            .strip_prefix(&set.bin_dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| name.clone());
        binaries.insert(
            name.clone(),
            BundleBinary {
                link,
                sha256: rb.sha256.clone(),
                size: rb.size,
                argv_prefix: rb.argv_prefix.clone(),
            },
        );
        blobs
            .entry(rb.sha256.clone())
            .or_insert((rb.size, rb.path.clone()));
    }
    let bm = BundleManifest {
        format: FORMAT,
        release: manifest.clone(),
        binaries,
        sources: set.sources.clone(),
        blobs: blobs.iter().map(|(h, (s, _))| (h.clone(), *s)).collect(),
    };
    let json = serde_json::to_vec_pretty(&bm).unwrap_or_default();

    let tmp = unique_sibling(out);
    let written = (|| -> Result<u64, FetchError> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let mut tar = tar::Builder::new(BufWriter::with_capacity(IO_BUF, f));
        let werr = io_err("write", &tmp);
        tar.append_data(
            &mut tar_header(json.len() as u64, 0o644),
            BUNDLE_MANIFEST,
            json.as_slice(),
        )
        .map_err(|e| io_err("write", &tmp)(e))?;
        let mut bytes = 0;
        for (hex, (size, path)) in &blobs {
            let f = File::open(path).map_err(io_err("read", path))?;
            let mut r = HashingReader {
                inner: f.take(*size),
                hasher: Sha256::new(),
                n: 0,
            };
            tar.append_data(
                &mut tar_header(*size, 0o755),
                format!("sha256/{hex}"),
                &mut r,
            )
            .map_err(|e| io_err("write", &tmp)(e))?;
            let actual = hex::encode(r.hasher.finalize());
            if &actual != hex || r.n != *size {
                return Err(FetchError::CorruptBinary {
                    path: path.clone(),
                    expected: hex.clone(),
                    actual,
                });
            }
            bytes += size;
        }
        let w = tar.into_inner().map_err(|e| io_err("write", &tmp)(e))?;
        let f = w
            .into_inner()
            .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, out).map_err(io_err("rename", out))?;
        Ok(bytes)
    })();
    match written {
        Ok(bytes) => {
            info!(bundle = %out.display(), binaries = bm.binaries.len(), blobs = bm.blobs.len(), bytes, "bundle written");
            Ok(BundleSummary {
                binaries: bm.binaries.len(),
                blobs: bm.blobs.len(),
                bytes,
            })
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A relative path of plain names only: it becomes a path under the bin dir.
fn safe_rel(s: &str) -> bool {
    let p = Path::new(s);
    !s.is_empty()
        && p.components().count() > 0
        && p.components()
            .all(|c| matches!(c, PathComponent::Normal(n) if !n.is_empty()))
}

/// Checks a bundle manifest before any content is read.
fn validate(
    bm: &BundleManifest,
    file: &Path,
    pinned: &BTreeMap<String, String>,
) -> Result<(), FetchError> {
    let bad = |reason: String| FetchError::BundleFormat {
        path: file.to_path_buf(),
        reason,
    };
    if bm.format != FORMAT {
        return Err(bad(format!(
            "format {} is not supported (this kubesup reads {FORMAT})",
            bm.format
        )));
    }
    // The version names a directory; it must be exactly what the manifest table would make.
    let same = KubeVersion::parse(&bm.release.kube_version)
        .and_then(|v| ReleaseManifest::resolve(&v, &bm.release.arch, &Default::default()).ok())
        .is_some_and(|m| m.kube_version == bm.release.kube_version);
    if !same {
        return Err(bad(format!(
            "bad release {:?}/{:?}",
            bm.release.kube_version, bm.release.arch
        )));
    }
    for hex in bm.blobs.keys() {
        if !is_sha256_hex(hex) || hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(format!("bad blob name {hex:?}")));
        }
    }
    for (name, b) in &bm.binaries {
        if !safe_rel(name) || !safe_rel(&b.link) {
            return Err(bad(format!(
                "unsafe binary name or link {name:?} -> {:?}",
                b.link
            )));
        }
        if bm.blobs.get(&b.sha256) != Some(&b.size) {
            return Err(bad(format!(
                "{name} refers to content the bundle does not hold"
            )));
        }
    }
    // Pins name downloads; for archives the pin is of the tarball, which a bundle does not
    // carry, so only direct executables can be checked here.
    for (src, rec) in &bm.sources {
        if rec.archive {
            continue;
        }
        let Some(pin) = pinned.get(src) else { continue };
        for b in &rec.binaries {
            if let Some(bb) = bm.binaries.get(b)
                && &bb.sha256 != pin
            {
                return Err(FetchError::BundlePin {
                    path: file.to_path_buf(),
                    name: src.clone(),
                    pinned: pin.clone(),
                    actual: bb.sha256.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Verifies every entry of `file` against its manifest (and `pinned`), then installs the
/// binaries into the cache at `cache_dir`, links them in `paths.bin_dir(version)` and writes
/// the fetch record. No network.
pub fn load_bundle(
    file: &Path,
    cache_dir: &Path,
    paths: &Paths,
    pinned: &BTreeMap<String, String>,
) -> Result<FetchedSet, FetchError> {
    let bad = |reason: String| FetchError::BundleFormat {
        path: file.to_path_buf(),
        reason,
    };
    let cache = Cache::new(cache_dir);
    let f = File::open(file).map_err(io_err("open", file))?;
    let mut tar = tar::Archive::new(BufReader::with_capacity(IO_BUF, f));
    let unreadable = |what| {
        move |source| FetchError::BundleRead {
            path: file.to_path_buf(),
            what,
            source,
        }
    };
    let mut entries = tar.entries().map_err(unreadable("not a tar"))?;

    let bm: BundleManifest = {
        let mut first = entries
            .next()
            .ok_or_else(|| bad("empty".into()))?
            .map_err(unreadable("unreadable"))?;
        let name = first.path().map(|p| p.to_string_lossy().into_owned());
        if name.as_deref().ok() != Some(BUNDLE_MANIFEST) || first.size() > MAX_MANIFEST {
            return Err(bad(format!("the first entry must be {BUNDLE_MANIFEST}")));
        }
        let mut json = Vec::new();
        first
            .read_to_end(&mut json)
            .map_err(unreadable("unreadable manifest"))?;
        serde_json::from_slice(&json).map_err(|source| FetchError::BundleManifest {
            path: file.to_path_buf(),
            source,
        })?
    };
    validate(&bm, file, pinned)?;

    let staging = cache.tmp_dir().join(format!(
        "bundle-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    fs::create_dir_all(&staging).map_err(io_err("create directory", &staging))?;
    let staged = (|| -> Result<(), FetchError> {
        let mut seen = BTreeSet::new();
        for entry in entries {
            let mut e = entry.map_err(unreadable("unreadable"))?;
            let name = e
                .path()
                .map_err(unreadable("unreadable entry name"))?
                .to_string_lossy()
                .into_owned();
            let hex = name
                .strip_prefix("sha256/")
                .filter(|h| bm.blobs.contains_key(*h))
                .ok_or_else(|| bad(format!("unexpected entry {name:?}")))?
                .to_string();
            if !e.header().entry_type().is_file() || !seen.insert(hex.clone()) {
                return Err(bad(format!("unexpected entry {name:?}")));
            }
            let dst = staging.join(&hex);
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dst)
                .map_err(io_err("create", &dst))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; IO_BUF];
            let mut n_total = 0u64;
            loop {
                let n = e
                    .read(&mut buf)
                    .map_err(|err| bad(format!("{name} is unreadable ({err})")))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err("write", &dst))?;
                n_total += n as u64;
            }
            let actual = hex::encode(h.finalize());
            if actual != hex || Some(&n_total) != bm.blobs.get(&hex) {
                return Err(FetchError::BundleTampered {
                    path: file.to_path_buf(),
                    entry: name,
                    expected: hex,
                    actual,
                });
            }
            out.sync_all().map_err(io_err("sync", &dst))?;
        }
        if let Some(missing) = bm.blobs.keys().find(|h| !seen.contains(*h)) {
            return Err(bad(format!("sha256/{missing} is missing")));
        }
        Ok(())
    })();
    let placed = staged.and_then(|()| {
        for hex in bm.blobs.keys() {
            cache.place(&staging.join(hex), hex, 0o755)?;
        }
        Ok(())
    });
    let _ = fs::remove_dir_all(&staging);
    placed?;

    let version = bm.release.kube_version.clone();
    let bin_dir = paths.bin_dir(&version);
    let mut set = FetchedSet {
        kube_version: version,
        arch: bm.release.arch.clone(),
        bin_dir: bin_dir.clone(),
        binaries: BTreeMap::new(),
        sources: bm.sources.clone(),
    };
    for (name, b) in &bm.binaries {
        let path = bin_dir.join(&b.link);
        cache.link(&path, &b.sha256)?;
        set.binaries.insert(
            name.clone(),
            ResolvedBinary {
                path,
                sha256: b.sha256.clone(),
                size: b.size,
                argv_prefix: b.argv_prefix.clone(),
            },
        );
    }
    set.save()?;
    info!(bundle = %file.display(), version = %set.kube_version, binaries = set.binaries.len(), "bundle loaded");
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_are_safe() {
        assert!(safe_rel("kubelet"));
        assert!(safe_rel("cni/bridge"));
        assert!(!safe_rel("../kubelet"));
        assert!(!safe_rel("/usr/bin/x"));
        assert!(!safe_rel("cni/../../x"));
        assert!(!safe_rel(""));
    }
}
