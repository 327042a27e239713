//! Optional encryption of a backup archive: AES-256-GCM (aws-lc-rs, the crypto kubesup already
//! links for TLS and its PKI) over the archive cut into chunks, so that a snapshot of gigabytes
//! is sealed and opened while it streams, never held in memory.
//!
//! Layout: [`MAGIC`], a 16-byte random salt, a 16-byte key check, an 8-byte random nonce
//! prefix; then chunks, each `flag (1 byte) | length (u32, big endian) | ciphertext + tag`.
//! The key is HKDF-SHA256 of the key file's contents with the salt, so two archives sealed with
//! one key file never share a key and nonce. Each chunk's nonce is the prefix and the chunk's
//! number, and its flag (1 on the last chunk only) and length are authenticated as associated
//! data: chunks cannot be reordered, dropped, or cut short without failing authentication, and
//! an archive that ends before a chunk flagged last is truncated, not complete.
//!
//! The key check (a second HKDF output) tells a wrong key file from a damaged archive, so that
//! the operator hears which of the two it is.
//!
//! Must not: hold a key in anything that prints (the key bytes live only inside aws-lc's key
//! object and a zeroed buffer), or release plaintext of a chunk that failed authentication.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;

/// The first bytes of an encrypted archive.
pub const MAGIC: &[u8] = b"KUBESUP-BACKUP-AES-256-GCM-1\n";
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const PREFIX_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Plaintext per chunk: large enough that the 21 bytes of framing and tag are noise, small
/// enough to keep in memory twice.
pub const CHUNK: usize = 1 << 20;
/// The least a key file must hold: 32 bytes, the strength of the AES-256 key made from it.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptError {
    #[error(
        "key file {} holds {len} bytes; it needs at least {MIN_KEY_BYTES} random bytes, e.g. \
         `head -c 32 /dev/urandom | base64 > FILE`",
        path.display()
    )]
    ShortKey { path: PathBuf, len: usize },
    #[error("the archive is encrypted with another key file than {}", path.display())]
    WrongKey { path: PathBuf },
    #[error("the archive's chunk {index} fails authentication: it was damaged or tampered with")]
    Tampered { index: u32 },
    #[error("the archive ends before its last encrypted chunk: it is truncated")]
    Truncated,
    #[error("the archive has data after its last encrypted chunk")]
    Trailing,
    #[error("the archive's chunk {index} is malformed ({reason})")]
    Malformed { index: u32, reason: &'static str },
    #[error("cannot encrypt: {0}")]
    Seal(&'static str),
}

/// The secret read from `--encrypt-key-file`; prints as `***`.
pub struct KeyFile {
    path: PathBuf,
    ikm: Vec<u8>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({}, ***)", self.path.display())
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        // Best effort: the bytes do not outlive the value in this buffer.
        self.ikm.iter_mut().for_each(|b| *b = 0);
    }
}

impl KeyFile {
    /// The key file's contents, surrounding whitespace trimmed (so that a key written by
    /// `base64` or an editor, with its newline, is the same key).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, CryptError> {
        let ikm = bytes.trim_ascii().to_vec();
        if ikm.len() < MIN_KEY_BYTES {
            return Err(CryptError::ShortKey {
                path: path.to_path_buf(),
                len: ikm.len(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            ikm,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive key and the key check for `salt`.
    fn derive(&self, salt: &[u8]) -> Result<(LessSafeKey, [u8; CHECK_LEN]), CryptError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.ikm);
        let mut key = [0u8; 32];
        let mut check = [0u8; CHECK_LEN];
        let fail = |_| CryptError::Seal("key derivation failed");
        prk.expand(&[b"kubesup backup v1 aes-256-gcm key"], &AES_256_GCM)
            .map_err(fail)?
            .fill(&mut key)
            .map_err(fail)?;
        prk.expand(&[b"kubesup backup v1 key check"], Len(CHECK_LEN))
            .map_err(fail)?
            .fill(&mut check)
            .map_err(fail)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(fail);
        key.iter_mut().for_each(|b| *b = 0);
        Ok((LessSafeKey::new(unbound?), check))
    }
}

/// An HKDF output length that is not an algorithm's key.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u32) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(last: bool, index: u32, len: u32) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[0] = u8::from(last);
    a[1..5].copy_from_slice(&index.to_be_bytes());
    a[5..].copy_from_slice(&len.to_be_bytes());
    a
}

/// Seals what is written into chunks; [`SealWriter::finish`] writes the last one.
pub struct SealWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    prefix: [u8; PREFIX_LEN],
    index: u32,
    buf: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    pub fn new(mut inner: W, key: &KeyFile) -> io::Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        let mut prefix = [0u8; PREFIX_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| io_err(CryptError::Seal("no randomness")))?;
        aws_lc_rs::rand::fill(&mut prefix)
            .map_err(|_| io_err(CryptError::Seal("no randomness")))?;
        let (key, check) = key.derive(&salt).map_err(io_err)?;
        inner.write_all(MAGIC)?;
        inner.write_all(&salt)?;
        inner.write_all(&check)?;
        inner.write_all(&prefix)?;
        Ok(Self {
            inner,
            key,
            prefix,
            index: 0,
            buf: Vec::with_capacity(CHUNK + TAG_LEN),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        // A chunk is at most CHUNK + TAG_LEN bytes, far below u32::MAX.
        let len = u32::try_from(self.buf.len() + TAG_LEN)
            .map_err(|_| io_err(CryptError::Seal("chunk too large")))?;
        let index = self.index;
        self.index = index
            .checked_add(1)
            .ok_or_else(|| io_err(CryptError::Seal("too many chunks")))?;
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(&self.prefix, index),
                Aad::from(aad(last, index, len)),
                &mut self.buf,
            )
            .map_err(|_| io_err(CryptError::Seal("AES-GCM failed")))?;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(tag.as_ref())?;
        self.buf.clear();
        Ok(())
    }

    /// Seals what is left as the last chunk and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is sealed early: a chunk is only ever written whole.
        self.inner.flush()
    }
}

/// Opens an archive sealed by [`SealWriter`], chunk by chunk, releasing only authenticated
/// plaintext.
pub struct OpenReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    prefix: [u8; PREFIX_LEN],
    index: u32,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> OpenReader<R> {
    /// `inner` is positioned just after [`MAGIC`].
    pub fn new(mut inner: R, key: &KeyFile) -> Result<Self, CryptError> {
        let mut head = [0u8; SALT_LEN + CHECK_LEN + PREFIX_LEN];
        inner
            .read_exact(&mut head)
            .map_err(|_| CryptError::Truncated)?;
        let (salt, rest) = head.split_at(SALT_LEN);
        let (check, prefix) = rest.split_at(CHECK_LEN);
        let (key_obj, expected) = key.derive(salt)?;
        // Not secret-dependent timing that matters: the check is a public function of the key.
        if expected != check {
            return Err(CryptError::WrongKey {
                path: key.path.clone(),
            });
        }
        let mut p = [0u8; PREFIX_LEN];
        p.copy_from_slice(prefix);
        Ok(Self {
            inner,
            key: key_obj,
            prefix: p,
            index: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> Result<(), CryptError> {
        let index = self.index;
        let mut head = [0u8; 5];
        read_full(&mut self.inner, &mut head)?;
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(CryptError::Malformed {
                    index,
                    reason: "bad flag",
                });
            }
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let ulen = len as usize;
        if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&ulen) {
            return Err(CryptError::Malformed {
                index,
                reason: "bad length",
            });
        }
        self.buf.resize(ulen, 0);
        read_full(&mut self.inner, &mut self.buf)?;
        let plain_len = self
            .key
            .open_in_place(
                nonce(&self.prefix, index),
                Aad::from(aad(last, index, len)),
                &mut self.buf,
            )
            .map_err(|_| CryptError::Tampered { index })?
            .len();
        self.buf.truncate(plain_len);
        self.pos = 0;
        self.index = index.checked_add(1).ok_or(CryptError::Malformed {
            index,
            reason: "too many chunks",
        })?;
        if last {
            self.done = true;
            let mut one = [0u8; 1];
            match self.inner.read(&mut one) {
                Ok(0) => {}
                Ok(_) => return Err(CryptError::Trailing),
                Err(_) => return Err(CryptError::Truncated),
            }
        }
        Ok(())
    }
}

/// `read_exact`, with an early end read as truncation.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), CryptError> {
    r.read_exact(buf).map_err(|_| CryptError::Truncated)
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk().map_err(io_err)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Carries a [`CryptError`] through `io::Read`/`io::Write` (the tar layer above speaks io);
/// [`from_io`] takes it back out.
fn io_err(e: CryptError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The [`CryptError`] an io error carries, if it came from this module.
pub fn from_io(e: &io::Error) -> Option<CryptError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CryptError>())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> KeyFile {
        KeyFile::from_bytes(Path::new("/k"), text.as_bytes()).unwrap()
    }

    fn seal(data: &[u8], k: &KeyFile) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), k).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn open(sealed: &[u8], k: &KeyFile) -> Result<Vec<u8>, CryptError> {
        let rest = sealed.strip_prefix(MAGIC).expect("magic");
        let mut r = OpenReader::new(rest, k)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| from_io(&e).expect("a crypt error"))?;
        Ok(out)
    }

    const K1: &str = "0123456789abcdef0123456789abcdef\n";
    const K2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn round_trips_across_chunks_and_a_short_key_is_refused() {
        let k = key(K1);
        assert_eq!(format!("{k:?}"), "KeyFile(/k, ***)");
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&data, &k);
            assert_eq!(open(&sealed, &k).unwrap(), data, "size {size}");
        }
        // The same plaintext twice: different salt, different bytes.
        assert_ne!(seal(b"x", &k), seal(b"x", &k));
        let e = KeyFile::from_bytes(Path::new("/k"), b"short\n").unwrap_err();
        assert!(matches!(e, CryptError::ShortKey { len: 5, .. }), "{e}");
    }

    #[test]
    fn wrong_key_tampering_truncation_and_trailing_data_are_each_named() {
        let k = key(K1);
        let data: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 7) as u8).collect();
        let sealed = seal(&data, &k);

        let e = open(&sealed, &key(K2)).unwrap_err();
        assert!(matches!(e, CryptError::WrongKey { .. }), "{e}");

        let mut flipped = sealed.clone();
        let at = MAGIC.len() + 40 + 5 + 1000;
        flipped[at] ^= 1;
        let e = open(&flipped, &k).unwrap_err();
        assert!(matches!(e, CryptError::Tampered { index: 0 }), "{e}");

        // Cut at a chunk boundary: every chunk left is authentic, but the last one is missing.
        let first_chunk_end = MAGIC.len() + 40 + 5 + CHUNK + TAG_LEN;
        let e = open(&sealed[..first_chunk_end], &k).unwrap_err();
        assert!(matches!(e, CryptError::Truncated), "{e}");
        let e = open(&sealed[..sealed.len() - 3], &k).unwrap_err();
        assert!(matches!(e, CryptError::Truncated), "{e}");

        // The last flag flipped on the first chunk: authentication fails, not a short read.
        let mut early_last = sealed.clone();
        early_last[MAGIC.len() + 40] = 1;
        let e = open(&early_last, &k).unwrap_err();
        assert!(matches!(e, CryptError::Tampered { index: 0 }), "{e}");

        let mut trailing = sealed.clone();
        trailing.push(0);
        let e = open(&trailing, &k).unwrap_err();
        assert!(matches!(e, CryptError::Trailing), "{e}");
    }
}
