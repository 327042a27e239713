//! Where a file in the upstream layout is read from: the upstream hosts, an HTTP(S) mirror, or
//! a local directory (`file://` or a plain path), plus the parsing of published checksum files.
//!
//! A mirror is a plain copy of the upstream files with the host dropped
//! (`release/v1.20.2/bin/linux/amd64/kubelet`, `etcd-io/etcd/releases/download/v3.4.23/...`),
//! so `wget -x` or `rsync` of upstream makes one, and a directory mirror can be served by any
//! static web server.
//! Must not: do network or file I/O (that is download.rs).

use std::fmt;
use std::path::PathBuf;

use super::FetchError;
use super::manifest::Upstream;

const DL_K8S: &str = "https://dl.k8s.io/";
const GITHUB: &str = "https://github.com/";
const GITHUB_API: &str = "https://api.github.com/";

/// Where all artifacts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// https://dl.k8s.io for Kubernetes, https://github.com for the rest.
    Upstream,
    /// Base URL with a trailing `/`.
    Http(String),
    Dir(PathBuf),
}

/// One concrete file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url(String),
    File(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Url(u) => f.write_str(u),
            Location::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

impl Source {
    /// Parses `--mirror`: `https://...`, `http://...`, `file:///dir` or a plain directory path.
    pub fn parse(mirror: Option<&str>) -> Result<Self, FetchError> {
        let Some(m) = mirror.map(str::trim).filter(|m| !m.is_empty()) else {
            return Ok(Source::Upstream);
        };
        let bad = |reason: &str| FetchError::BadMirror {
            mirror: m.to_string(),
            reason: reason.to_string(),
        };
        let lower = m.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if m.contains('#') {
                return Err(bad("the URL must not have a query or fragment"));
            }
            let url = crate::http::parse_url(m).map_err(|e| match e {
                crate::http::HttpError::BadUrl { reason, .. } => bad(reason),
                other => bad(&other.to_string()),
            })?;
            if url.query().is_some() {
                return Err(bad("the URL must not have a query or fragment"));
            }
            let mut base = url.to_string();
            if !base.ends_with('/') {
                base.push('/');
            }
            return Ok(Source::Http(base));
        }
        let dir = if lower.starts_with("file:") {
            file_url_path(m).ok_or_else(|| bad("use file:///absolute/path (no host)"))?
        } else if m.contains("://") {
            return Err(bad(
                "unsupported scheme; use https://, http://, file:// or a directory",
            ));
        } else {
            PathBuf::from(m)
        };
        if !dir.is_dir() {
            return Err(bad("is not a directory"));
        }
        Ok(Source::Dir(dir))
    }

    /// The location of `rel` (a path in the upstream layout).
    pub(crate) fn locate(&self, rel: &str, upstream: Upstream) -> Location {
        match self {
            Source::Upstream => {
                let host = match upstream {
                    Upstream::DlK8s => DL_K8S,
                    Upstream::GitHub => GITHUB,
                    Upstream::GitHubApi => GITHUB_API,
                };
                Location::Url(format!("{host}{rel}"))
            }
            Source::Http(base) => Location::Url(format!("{base}{rel}")),
            Source::Dir(dir) => Location::File(dir.join(rel)),
        }
    }
}

/// The path of a `file:` URL: `file:///abs/path` or `file://localhost/abs/path`, with `%XX`
/// escapes decoded. `None` for another host or a relative path.
fn file_url_path(url: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let rest = url.get("file:".len()..)?;
    let path = match rest.strip_prefix("//") {
        Some(r) => r.strip_prefix("localhost").unwrap_or(r),
        None => rest,
    };
    if !path.starts_with('/') {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut bytes = Vec::with_capacity(path.len());
    let mut it = path.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Finds the SHA-256 of `file_name` in a published checksum file. Accepts the two upstream
/// formats: the bare hex (Kubernetes' `NAME.sha256`), and `sha256sum` lines
/// (`<hex>  <name>` or `<hex> *<name>`, as in etcd's `SHA256SUMS` and runc's `runc.sha256sum`).
/// A name with a directory matches on its base name.
pub(crate) fn parse_checksum(text: &str, file_name: &str) -> Option<String> {
    let mut bare = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(hash), name) = (words.next(), words.next()) else {
            continue;
        };
        if !is_sha256_hex(hash) {
            continue;
        }
        match name {
            None => bare.push(hash),
            Some(name) => {
                let name = name.trim_start_matches('*');
                let base = name.rsplit('/').next().unwrap_or(name);
                if base == file_name {
                    return Some(hash.to_ascii_lowercase());
                }
            }
        }
    }
    // A bare hash only counts when it is the file's only content: with several, which is ours?
    match bare.as_slice() {
        [one] => Some(one.to_ascii_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "2de5e663495f849363ad407029a12eeead1a5febec11df59f4e0ef9053700969";
    const H2: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn parses_bare_and_sum_formats() {
        assert_eq!(parse_checksum(H1, "kubelet").as_deref(), Some(H1));
        assert_eq!(
            parse_checksum(&format!("{}\n", H1.to_uppercase()), "x").as_deref(),
            Some(H1)
        );
        let sums = format!(
            "{H2}  etcd-v3.4.23-linux-arm64.tar.gz\n{H1}  etcd-v3.4.23-linux-amd64.tar.gz\n"
        );
        assert_eq!(
            parse_checksum(&sums, "etcd-v3.4.23-linux-amd64.tar.gz").as_deref(),
            Some(H1)
        );
        assert_eq!(
            parse_checksum(&sums, "etcd-v3.4.23-linux-s390x.tar.gz"),
            None
        );
        let runc = format!("{H2} *runc.arm64\n{H1} *runc.amd64\n");
        assert_eq!(parse_checksum(&runc, "runc.amd64").as_deref(), Some(H1));
        assert_eq!(parse_checksum(&format!("{H1}\n{H2}\n"), "x"), None);
        assert_eq!(parse_checksum("<html>not found</html>", "x"), None);
    }

    #[test]
    fn mirror_forms() {
        assert_eq!(Source::parse(None).unwrap(), Source::Upstream);
        assert_eq!(
            Source::parse(Some("http://127.0.0.1:8080/m")).unwrap(),
            Source::Http("http://127.0.0.1:8080/m/".into())
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap();
        assert_eq!(
            Source::parse(Some(p)).unwrap(),
            Source::Dir(d.path().to_path_buf())
        );
        assert_eq!(
            Source::parse(Some(&format!("file://{p}"))).unwrap(),
            Source::Dir(d.path().to_path_buf())
        );
        assert!(Source::parse(Some("ftp://x/")).is_err());
        assert!(Source::parse(Some("file://host/x")).is_err());
        assert!(Source::parse(Some("/nonexistent/kubesup-mirror")).is_err());
        assert!(Source::parse(Some("https://x/?a=b")).is_err());
        assert!(Source::parse(Some("https://x/m#frag")).is_err());
        assert!(Source::parse(Some("https:///m")).is_err());
        assert_eq!(
            file_url_path("file:///srv/a%20b/m"),
            Some(PathBuf::from("/srv/a b/m"))
        );
        assert_eq!(
            file_url_path("file://localhost/srv/m"),
            Some(PathBuf::from("/srv/m"))
        );
        assert_eq!(file_url_path("file:relative/m"), None);
    }

    #[test]
    fn upstream_hosts() {
        let s = Source::Upstream;
        assert_eq!(
            s.locate("release/v1.20.2/bin/linux/amd64/kubelet", Upstream::DlK8s),
            Location::Url("https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubelet".into())
        );
        assert_eq!(
            s.locate(
                "etcd-io/etcd/releases/download/v3.4.23/SHA256SUMS",
                Upstream::GitHub
            )
            .to_string(),
            "https://github.com/etcd-io/etcd/releases/download/v3.4.23/SHA256SUMS"
        );
    }
}
