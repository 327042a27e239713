//! The archive: a tar (optionally sealed by [`super::crypt`]) whose members are, in order,
//! [`INFO`] (what the backup is: format, kubesup version, cluster settings, etcd version and
//! revision), [`KEYS`] (the cluster-wide CA keys and service-account key pair), [`SNAPSHOT`]
//! (etcd's snapshot stream as etcd sent it, its own SHA-256 trailer included, which
//! `etcdctl`/`etcdutl snapshot restore` check) and [`MANIFEST`] (the SHA-256 and size of every
//! other member), last because the snapshot's hash is known only once it has streamed.
//!
//! Reading is two passes: [`verify`] reads the whole archive and checks every member against
//! the manifest, writing nothing; [`extract`] reads it again, writes the snapshot where it is
//! told, and hashes it again, so that an archive changed between the passes is refused too.
//!
//! Invariants: the file appears under its final name only complete (temp file, fsync, rename,
//! fsync of the directory), mode 0600 from open(2) on; a failed write removes its temp file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;
use super::crypt::{self, KeyFile, OpenReader, SealWriter};
use crate::join::ClusterSettings;
use crate::pki::ClusterMaterial;

pub const INFO: &str = "kubesup-backup.json";
pub const KEYS: &str = "cluster-keys.json";
pub const SNAPSHOT: &str = "etcd.snapshot";
pub const MANIFEST: &str = "manifest.json";
/// The members a restore needs, besides the manifest.
pub const REQUIRED: [&str; 3] = [INFO, KEYS, SNAPSHOT];
/// This kubesup's archive format.
pub const FORMAT: u32 = 1;

/// [`INFO`]: what the backup is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub format: u32,
    pub kubesup_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The master the snapshot was taken on.
    pub node_name: String,
    pub settings: ClusterSettings,
    /// As the member reported it (`3.4.23`).
    pub etcd_version: String,
    pub etcd_revision: i64,
    /// Hex, as etcdctl prints them.
    pub etcd_cluster_id: String,
    pub etcd_member_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub members: Vec<ManifestEntry>,
}

/// Where the archive bytes go: the file, or the file behind encryption.
enum Sink {
    Plain(BufWriter<File>),
    Sealed(SealWriter<BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(b),
            Self::Sealed(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Sealed(w) => w.flush(),
        }
    }
}

/// An archive being written to its temp file. Dropped without [`Writer::finish`], it removes
/// the temp file: nothing that looks complete is left behind.
pub struct Writer {
    sink: Option<Sink>,
    tmp: PathBuf,
    dest: PathBuf,
    entries: Vec<ManifestEntry>,
    /// The member being streamed: its name, declared size, bytes so far and hash.
    open: Option<(String, u64, u64, Sha256)>,
}

/// The temp file of `dest`: hidden, in the same directory (so the rename is atomic), and never
/// named like a backup, so `backup list` and the retention never take it for one.
pub fn temp_of(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial.{}", std::process::id()))
}

fn tar_header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h.set_cksum();
    Ok(h)
}

impl Writer {
    pub fn create(dest: &Path, key: Option<&KeyFile>) -> Result<Self, BackupError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        crate::fsutil::create_dir_all(dir).map_err(BackupError::Fs)?;
        let tmp = temp_of(dest);
        let write_err = |source| BackupError::Write {
            path: dest.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        let mut w = Self {
            sink: None,
            tmp,
            dest: dest.to_path_buf(),
            entries: Vec::new(),
            open: None,
        };
        // open(2) applies the umask; set the exact mode explicitly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
        let out = BufWriter::with_capacity(256 * 1024, file);
        w.sink = Some(match key {
            Some(k) => Sink::Sealed(SealWriter::new(out, k).map_err(|e| w.io(e))?),
            None => Sink::Plain(out),
        });
        Ok(w)
    }

    fn io(&self, e: io::Error) -> BackupError {
        BackupError::Write {
            path: self.dest.clone(),
            source: e,
        }
    }

    fn sink(&mut self) -> Result<&mut Sink, BackupError> {
        let dest = self.dest.clone();
        self.sink.as_mut().ok_or(BackupError::Write {
            path: dest,
            source: io::Error::other("archive already finished"),
        })
    }

    /// A whole member at once.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<(), BackupError> {
        self.begin(name, data.len() as u64)?;
        self.stream(data)?;
        self.end()
    }

    /// Starts a member of `size` bytes, streamed with [`Writer::stream`].
    pub fn begin(&mut self, name: &str, size: u64) -> Result<(), BackupError> {
        let h = tar_header(name, size).map_err(|e| self.io(e))?;
        let r = self.sink()?.write_all(h.as_bytes());
        r.map_err(|e| self.io(e))?;
        self.open = Some((name.to_string(), size, 0, Sha256::new()));
        Ok(())
    }

    pub fn stream(&mut self, data: &[u8]) -> Result<(), BackupError> {
        let Some((name, size, written, hash)) = self.open.as_mut() else {
            return Err(self.io(io::Error::other("no member open")));
        };
        *written += data.len() as u64;
        if *written > *size {
            return Err(BackupError::SnapshotSize {
                member: name.clone(),
                expected: *size,
                got: *written,
            });
        }
        hash.update(data);
        let r = self.sink()?.write_all(data);
        r.map_err(|e| self.io(e))
    }

    pub fn end(&mut self) -> Result<(), BackupError> {
        let Some((name, size, written, hash)) = self.open.take() else {
            return Err(self.io(io::Error::other("no member open")));
        };
        if written != size {
            return Err(BackupError::SnapshotSize {
                member: name,
                expected: size,
                got: written,
            });
        }
        let pad = (512 - (size % 512) as usize) % 512;
        let r = self.sink()?.write_all(&[0u8; 512][..pad]);
        r.map_err(|e| self.io(e))?;
        self.entries.push(ManifestEntry {
            name,
            size,
            sha256: hex::encode(hash.finalize()),
        });
        Ok(())
    }

    /// Writes the manifest and the end of the tar, seals, fsyncs and renames into place.
    pub fn finish(mut self) -> Result<PathBuf, BackupError> {
        let manifest = Manifest {
            members: self.entries.clone(),
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| self.io(io::Error::other(e)))?;
        self.begin(MANIFEST, json.len() as u64)?;
        self.stream(&json)?;
        self.end()?;
        let r = self.sink()?.write_all(&[0u8; 1024]);
        r.map_err(|e| self.io(e))?;
        let sink = self
            .sink
            .take()
            .ok_or_else(|| self.io(io::Error::other("archive already finished")))?;
        let out = match sink {
            Sink::Plain(w) => w,
            Sink::Sealed(w) => w.finish().map_err(|e| self.io(e))?,
        };
        let file = out.into_inner().map_err(|e| self.io(e.into_error()))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(|e| self.io(e))?;
        let dir = self.dest.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        Ok(self.dest.clone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // After a successful finish the temp file is renamed away and this finds nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// The archive's plaintext: the file as it is, or opened with the key.
fn open_plain(path: &Path, key: Option<&KeyFile>) -> Result<Box<dyn Read>, BackupError> {
    let read_err = |source| BackupError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = BufReader::with_capacity(256 * 1024, File::open(path).map_err(read_err)?);
    let mut head = vec![0u8; crypt::MAGIC.len()];
    let n = read_up_to(&mut f, &mut head).map_err(read_err)?;
    let encrypted = n == head.len() && head == crypt::MAGIC;
    match (encrypted, key) {
        (true, None) => Err(BackupError::NeedsKey {
            path: path.to_path_buf(),
        }),
        (true, Some(k)) => Ok(Box::new(OpenReader::new(f, k).map_err(|e| {
            BackupError::Crypt {
                path: path.to_path_buf(),
                source: e,
            }
        })?)),
        (false, Some(k)) => Err(BackupError::NotEncrypted {
            path: path.to_path_buf(),
            key: k.path().to_path_buf(),
        }),
        (false, None) => Ok(Box::new(io::Cursor::new(head[..n].to_vec()).chain(f))),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What [`verify`] found: every member checked against the manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    pub info: BackupInfo,
    pub manifest: Manifest,
}

/// An io error while reading the archive, told apart: a crypt failure speaks for itself, an
/// early end is truncation, the rest is a damaged archive.
fn read_failure(path: &Path, e: io::Error) -> BackupError {
    if let Some(c) = crypt::from_io(&e) {
        return BackupError::Crypt {
            path: path.to_path_buf(),
            source: c,
        };
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return BackupError::Truncated {
            path: path.to_path_buf(),
        };
    }
    BackupError::Damaged {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads every member through `each(name, reader)`, hashing as it goes, and checks the result
/// against the manifest. Writes nothing of its own.
fn walk(
    path: &Path,
    key: Option<&KeyFile>,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), BackupError>,
) -> Result<Verified, BackupError> {
    let plain = open_plain(path, key)?;
    let mut tar = tar::Archive::new(plain);
    let mut seen: Vec<ManifestEntry> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut info: Option<BackupInfo> = None;
    let entries = tar.entries().map_err(|e| read_failure(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_failure(path, e))?;
        let name = entry
            .path()
            .map_err(|e| read_failure(path, e))?
            .to_string_lossy()
            .into_owned();
        if seen.is_empty() && manifest.is_none() && name != INFO {
            return Err(BackupError::Foreign {
                path: path.to_path_buf(),
                reason: format!("its first member is {name:?}, not {INFO}"),
            });
        }
        if manifest.is_some() {
            return Err(BackupError::Damaged {
                path: path.to_path_buf(),
                reason: format!("member {name:?} follows the manifest"),
            });
        }
        if seen.iter().any(|e| e.name == name) {
            return Err(BackupError::Damaged {
                path: path.to_path_buf(),
                reason: format!("member {name:?} appears twice"),
            });
        }
        let declared = entry.size();
        let mut hashing = Hashing {
            inner: &mut entry,
            hash: Sha256::new(),
            size: 0,
        };
        match name.as_str() {
            MANIFEST | INFO => {
                let mut text = Vec::new();
                hashing
                    .read_to_end(&mut text)
                    .map_err(|e| read_failure(path, e))?;
                let bad = |e: serde_json::Error| BackupError::Damaged {
                    path: path.to_path_buf(),
                    reason: format!("{name} is not valid: {e}"),
                };
                if name == MANIFEST {
                    manifest = Some(serde_json::from_slice(&text).map_err(bad)?);
                    continue;
                }
                info = Some(
                    serde_json::from_slice(&text).map_err(|e| BackupError::Foreign {
                        path: path.to_path_buf(),
                        reason: format!("{INFO} is not kubesup's ({e})"),
                    })?,
                );
            }
            _ => each(&name, &mut hashing)?,
        }
        // Whatever `each` left unread is hashed too: the manifest covers every byte.
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| read_failure(path, e))?;
        // tar reads a member cut short as a short member: its header says how long it is.
        if hashing.size != declared {
            return Err(BackupError::Truncated {
                path: path.to_path_buf(),
            });
        }
        seen.push(ManifestEntry {
            name,
            size: hashing.size,
            sha256: hex::encode(hashing.hash.finalize()),
        });
    }
    let Some(manifest) = manifest else {
        // A tar cut at a member boundary reads as a shorter archive: the manifest, written
        // last, is what tells it is not whole.
        return Err(if seen.is_empty() {
            BackupError::Foreign {
                path: path.to_path_buf(),
                reason: "it holds no members".into(),
            }
        } else {
            BackupError::Truncated {
                path: path.to_path_buf(),
            }
        });
    };
    check_against(path, &manifest, &seen)?;
    let info = info.ok_or_else(|| BackupError::MissingMember {
        path: path.to_path_buf(),
        member: INFO.into(),
    })?;
    check_compatible(path, &info)?;
    Ok(Verified { info, manifest })
}

fn check_against(
    path: &Path,
    manifest: &Manifest,
    seen: &[ManifestEntry],
) -> Result<(), BackupError> {
    let listed: BTreeMap<&str, &ManifestEntry> = manifest
        .members
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    for want in REQUIRED {
        if !listed.contains_key(want) || !seen.iter().any(|s| s.name == want) {
            return Err(BackupError::MissingMember {
                path: path.to_path_buf(),
                member: want.into(),
            });
        }
    }
    for s in seen {
        let Some(e) = listed.get(s.name.as_str()) else {
            return Err(BackupError::Damaged {
                path: path.to_path_buf(),
                reason: format!("member {:?} is not in the manifest", s.name),
            });
        };
        if e.sha256 != s.sha256 || e.size != s.size {
            return Err(BackupError::Checksum {
                path: path.to_path_buf(),
                member: s.name.clone(),
            });
        }
    }
    for e in &manifest.members {
        if !seen.iter().any(|s| s.name == e.name) {
            return Err(BackupError::MissingMember {
                path: path.to_path_buf(),
                member: e.name.clone(),
            });
        }
    }
    Ok(())
}

/// The archive's format and kubesup version against this kubesup's: another major version
/// (for 0.x, another minor, as semver has it) may have put other things in it.
fn check_compatible(path: &Path, info: &BackupInfo) -> Result<(), BackupError> {
    let ours = semver::Version::parse(env!("CARGO_PKG_VERSION")).ok();
    let theirs = semver::Version::parse(&info.kubesup_version).ok();
    let compatible = match (&ours, &theirs) {
        (Some(o), Some(t)) if o.major == 0 => t.major == 0 && t.minor == o.minor,
        (Some(o), Some(t)) => t.major == o.major,
        _ => false,
    };
    if info.format != FORMAT || !compatible {
        return Err(BackupError::Foreign {
            path: path.to_path_buf(),
            reason: format!(
                "it was made by kubesup {} (archive format {}); this is kubesup {} (format \
                 {FORMAT}); restore it with a kubesup of the same major version",
                info.kubesup_version,
                info.format,
                env!("CARGO_PKG_VERSION")
            ),
        });
    }
    Ok(())
}

/// Reads the whole archive and checks every member against the manifest. Writes nothing.
pub fn verify(path: &Path, key: Option<&KeyFile>) -> Result<Verified, BackupError> {
    walk(path, key, |_, _| Ok(()))
}

/// The second pass: the keys, and the snapshot written to `snapshot_to` (0600). The whole
/// archive is checked again; on any failure the snapshot file is removed.
pub fn extract(
    path: &Path,
    key: Option<&KeyFile>,
    snapshot_to: &Path,
) -> Result<(Verified, ClusterMaterial), BackupError> {
    let mut keys: Option<Vec<u8>> = None;
    let result = walk(path, key, |name, r| {
        match name {
            KEYS => {
                let mut text = Vec::new();
                r.read_to_end(&mut text)
                    .map_err(|e| read_failure(path, e))?;
                keys = Some(text);
            }
            SNAPSHOT => {
                let write_err = |source| BackupError::Write {
                    path: snapshot_to.to_path_buf(),
                    source,
                };
                let mut f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(snapshot_to)
                    .map_err(write_err)?;
                io::copy(r, &mut f).map_err(|e| read_failure(path, e))?;
                f.sync_all().map_err(write_err)?;
            }
            _ => {}
        }
        Ok(())
    });
    let verified = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(snapshot_to);
            return Err(e);
        }
    };
    let material = keys
        .as_deref()
        .map(serde_json::from_slice::<ClusterMaterial>)
        .transpose()
        .map_err(|e| BackupError::Damaged {
            path: path.to_path_buf(),
            reason: format!("{KEYS} is not valid: {e}"),
        })?
        .ok_or_else(|| BackupError::MissingMember {
            path: path.to_path_buf(),
            member: KEYS.into(),
        })?;
    Ok((verified, material))
}

/// Reads and hashes what passes through.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hash: Sha256,
    size: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn info() -> BackupInfo {
        BackupInfo {
            format: FORMAT,
            kubesup_version: env!("CARGO_PKG_VERSION").into(),
            created: "2026-12-07T00:00:00Z".into(),
            node_name: "m1".into(),
            settings: ClusterSettings::sample(),
            etcd_version: "3.4.23".into(),
            etcd_revision: 42,
            etcd_cluster_id: "abc".into(),
            etcd_member_id: "def".into(),
        }
    }

    /// A real archive with real keys (a generated PKI) and a fake snapshot.
    pub fn write_sample(dir: &Path, dest: &Path, key: Option<&KeyFile>, snapshot: &[u8]) {
        let paths = crate::paths::Paths::new(dir.join("pki-src"));
        crate::pki::Pki::new(&paths)
            .generate(&crate::pki::test_spec())
            .unwrap();
        let material = ClusterMaterial::read(&paths.pki()).unwrap();
        let mut w = Writer::create(dest, key).unwrap();
        w.add(INFO, &serde_json::to_vec(&info()).unwrap()).unwrap();
        w.add(KEYS, &serde_json::to_vec(&material).unwrap())
            .unwrap();
        w.begin(SNAPSHOT, snapshot.len() as u64).unwrap();
        for c in snapshot.chunks(1000) {
            w.stream(c).unwrap();
        }
        w.end().unwrap();
        w.finish().unwrap();
    }

    fn key(s: &str) -> KeyFile {
        KeyFile::from_bytes(Path::new("/k"), s.as_bytes()).unwrap()
    }

    #[test]
    fn an_archive_verifies_and_extracts_and_is_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out/b.tar");
        let snap: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        write_sample(tmp.path(), &dest, None, &snap);
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!temp_of(&dest).exists());
        let v = verify(&dest, None).unwrap();
        assert_eq!(v.info, info());
        assert_eq!(
            v.manifest
                .members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            REQUIRED
        );
        let out = tmp.path().join("snap.db");
        let (_, material) = extract(&dest, None, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), snap);
        assert!(format!("{material:?}").contains("***"));
    }

    #[test]
    fn every_kind_of_damage_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("b.tar");
        let snap = vec![7u8; 3000];
        write_sample(tmp.path(), &dest, None, &snap);
        let good = fs::read(&dest).unwrap();
        let bad = tmp.path().join("bad.tar");

        // A flipped byte in the snapshot's data.
        let at = good
            .windows(3000)
            .position(|w| w == snap.as_slice())
            .unwrap()
            + 1500;
        let mut flipped = good.clone();
        flipped[at] ^= 0xff;
        fs::write(&bad, &flipped).unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(
            matches!(&e, BackupError::Checksum { member, .. } if member == SNAPSHOT),
            "{e}"
        );

        // Truncated in the middle of a member, and at the end of the snapshot member.
        fs::write(&bad, &good[..at]).unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(matches!(e, BackupError::Truncated { .. }), "{e}");
        let snap_end = (at - 1500 + 3000).div_ceil(512) * 512;
        fs::write(&bad, &good[..snap_end]).unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(matches!(e, BackupError::Truncated { .. }), "{e}");

        // Not a kubesup archive at all.
        fs::write(&bad, b"hello").unwrap();
        assert!(verify(&bad, None).is_err());
        let mut other = tar::Builder::new(Vec::new());
        let h = tar_header("etc/passwd", 4).unwrap();
        other.append(&h, &b"root"[..]).unwrap();
        fs::write(&bad, other.into_inner().unwrap()).unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(matches!(e, BackupError::Foreign { .. }), "{e}");

        // A member missing: the same archive without its keys.
        let mut w = Writer::create(&bad, None).unwrap();
        w.add(INFO, &serde_json::to_vec(&info()).unwrap()).unwrap();
        w.add(SNAPSHOT, &snap).unwrap();
        w.finish().unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(
            matches!(&e, BackupError::MissingMember { member, .. } if member == KEYS),
            "{e}"
        );

        // Another major version.
        let mut w = Writer::create(&bad, None).unwrap();
        let mut old = info();
        old.kubesup_version = "7.0.0".into();
        w.add(INFO, &serde_json::to_vec(&old).unwrap()).unwrap();
        w.add(KEYS, b"{}").unwrap();
        w.add(SNAPSHOT, &snap).unwrap();
        w.finish().unwrap();
        let e = verify(&bad, None).unwrap_err();
        assert!(e.to_string().contains("kubesup 7.0.0"), "{e}");

        // Nothing was written by any refusal: no snapshot file appears on a failed extract.
        let out = tmp.path().join("never.db");
        fs::write(&bad, &flipped).unwrap();
        assert!(extract(&bad, None, &out).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn encrypted_archives_need_the_right_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("b.tar.enc");
        let k = key("0123456789abcdef0123456789abcdef");
        write_sample(tmp.path(), &dest, Some(&k), &[1u8; 2000]);
        assert!(fs::read(&dest).unwrap().starts_with(crypt::MAGIC));
        verify(&dest, Some(&k)).unwrap();
        let e = verify(&dest, None).unwrap_err();
        assert!(matches!(e, BackupError::NeedsKey { .. }), "{e}");
        let e = verify(&dest, Some(&key("another key that is long enough!!"))).unwrap_err();
        assert!(
            matches!(
                e,
                BackupError::Crypt {
                    source: crypt::CryptError::WrongKey { .. },
                    ..
                }
            ),
            "{e}"
        );
        let good = fs::read(&dest).unwrap();
        fs::write(&dest, &good[..good.len() - 100]).unwrap();
        let e = verify(&dest, Some(&k)).unwrap_err();
        assert!(
            matches!(
                e,
                BackupError::Crypt {
                    source: crypt::CryptError::Truncated,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn an_abandoned_writer_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("b.tar");
        let mut w = Writer::create(&dest, None).unwrap();
        w.begin(SNAPSHOT, 100).unwrap();
        w.stream(&[0u8; 50]).unwrap();
        assert!(temp_of(&dest).exists());
        assert!(matches!(
            w.end().unwrap_err(),
            BackupError::SnapshotSize { .. }
        ));
        drop(w);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
