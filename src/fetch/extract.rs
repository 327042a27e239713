//! Unpacking the members a job selects from a verified release tarball into the cache, hashing
//! each on the way.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::FetchError;
use super::cache::{ArchiveIndex, Cache, IO_BUF, io_err, unique_sibling};
use super::manifest::Select;

/// Unpacks the selected members of a verified tarball into the cache, hashing each on the way.
pub(super) fn extract(
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
    for (member, kept_as) in select.required() {
        if !idx.members.contains_key(&format!("{link_prefix}{kept_as}")) {
            return Err(FetchError::MissingMember {
                url: url.to_string(),
                member,
            });
        }
    }
    Ok(idx)
}
