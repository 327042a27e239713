//! Fetch against an in-process hyper server on 127.0.0.1:0 that misbehaves on purpose, and
//! against file:// and directory mirrors. Every test has a deadline; every file is generated.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use common::files_under;
use kubesup::fetch::{Artifact, FetchError, FetchOptions, FetchedSet, Fetcher, verify_before_exec};
use kubesup::paths::Paths;

// ---------------------------------------------------------------------------------------------
// The misbehaving server.

#[derive(Clone, Debug)]
enum Behavior {
    /// 200, or 206 for `Range: bytes=N-`.
    Good,
    /// Full Content-Length, `send` bytes, then the connection breaks. Every time.
    Truncate { send: usize },
    /// Like `Truncate` on the first request, `Good` afterwards.
    DropOnce { send: usize },
    /// Headers and `send` bytes, then nothing for `stall`.
    Stall { send: usize, stall: Duration },
}

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, (Bytes, Behavior)>>,
    /// (path, Range header) of every request, in order.
    log: Mutex<Vec<(String, Option<String>)>>,
}

struct Server {
    base: String,
    state: Arc<State>,
}

type Body = BoxBody<Bytes, io::Error>;

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// `send` bytes of `body` under a Content-Length of all of it, then (after the bytes had time
/// to leave) an error, which makes hyper drop the connection.
fn broken(body: Bytes, send: usize, pause: Duration) -> Response<Body> {
    let len = body.len();
    let head = body.slice(..send.min(len));
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let head = head.clone();
        async move {
            match step {
                0 => Some((Ok(Frame::data(head)), 1)),
                1 => {
                    tokio::time::sleep(pause).await;
                    Some((Err(io::Error::other("connection dropped on purpose")), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .header(CONTENT_LENGTH, len)
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

fn stalled(body: Bytes, send: usize, stall: Duration) -> Response<Body> {
    let len = body.len();
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let body = body.clone();
        async move {
            match step {
                0 => Some((Ok(Frame::data(body.slice(..send))), 1)),
                1 => {
                    tokio::time::sleep(stall).await;
                    Some((Ok(Frame::data(body.slice(send..))), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .header(CONTENT_LENGTH, len)
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

fn ranged(body: Bytes, range: Option<&str>) -> Response<Body> {
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        None => Response::new(full(body)),
        Some(s) if s >= body.len() => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(CONTENT_RANGE, format!("bytes */{}", body.len()))
            .body(full(Bytes::new()))
            .unwrap(),
        Some(s) => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                CONTENT_RANGE,
                format!("bytes {s}-{}/{}", body.len() - 1, body.len()),
            )
            .body(full(body.slice(s..)))
            .unwrap(),
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let range = req
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let earlier = {
        let mut log = state.log.lock().unwrap();
        let n = log.iter().filter(|(p, _)| *p == path).count();
        log.push((path.clone(), range.clone()));
        n
    };
    let found = state.files.lock().unwrap().get(&path).cloned();
    let Some((body, behavior)) = found else {
        return Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full(Bytes::from_static(b"not found")))
            .unwrap());
    };
    let pause = Duration::from_millis(250);
    Ok(match behavior {
        Behavior::Good => ranged(body, range.as_deref()),
        Behavior::Truncate { send } => broken(body, send, pause),
        Behavior::DropOnce { send } if earlier == 0 => broken(body, send, pause),
        Behavior::DropOnce { .. } => ranged(body, range.as_deref()),
        Behavior::Stall { send, stall } => stalled(body, send, stall),
    })
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Self {
            base: format!("http://{addr}/"),
            state,
        }
    }

    fn put(&self, rel: &str, body: impl Into<Bytes>, behavior: Behavior) {
        self.state
            .files
            .lock()
            .unwrap()
            .insert(rel.to_string(), (body.into(), behavior));
    }

    /// Range headers of the requests for `rel`, in order.
    fn requests(&self, rel: &str) -> Vec<Option<String>> {
        self.state
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == rel)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const V: &str = "v1.20.2";

fn v() -> kubesup::model::KubeVersion {
    kubesup::model::KubeVersion::parse(V).unwrap()
}

/// Every test's deadline: a hang is a failure, not a stuck CI job.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test deadline passed")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A small fake executable: a shell script padded with deterministic noise to ~`len` bytes so
/// it arrives in several chunks.
fn fake_binary(name: &str, len: usize) -> Vec<u8> {
    let mut v = format!("#!/bin/sh\necho {name}\nexit 0\n#").into_bytes();
    let mut x: u32 = name
        .bytes()
        .fold(2166136261, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(b'a' + (x % 26) as u8);
    }
    v.push(b'\n');
    v
}

fn kube_rel(version: &str, name: &str) -> String {
    format!("release/{version}/bin/linux/amd64/{name}")
}

struct Node {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            data: dir.path().join("data"),
            _dir: dir,
        }
    }
    fn paths(&self) -> Paths {
        Paths::new(&self.data)
    }
    fn cache(&self) -> PathBuf {
        self.paths().cache_dir()
    }
    fn opts(&self, mirror: &str) -> FetchOptions {
        let mut o = FetchOptions::new(self.paths());
        o.mirror = Some(mirror.to_string());
        o.arch = "amd64".into();
        o.connect_timeout = Duration::from_secs(2);
        o.read_timeout = Duration::from_secs(2);
        o.retries = 2;
        o.retry_backoff = Duration::from_millis(10);
        o.progress_bars = false;
        o
    }
    fn fetcher(&self, mirror: &str) -> Fetcher {
        Fetcher::new(self.opts(mirror)).unwrap()
    }
}

/// After a failed download: nothing in the cache but (possibly) a resumable `.partial` in
/// `cache/partial/`.
fn assert_nothing_cached(cache: &Path) -> Vec<PathBuf> {
    let files = files_under(cache);
    let (partials, other): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|p| p.starts_with(cache.join("partial")));
    assert!(other.is_empty(), "unexpected files in the cache: {other:?}");
    assert!(files_under(&cache.join("sha256")).is_empty());
    partials
}

fn write_file(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn serve_kube(s: &Server, version: &str, name: &str, body: &[u8]) {
    let rel = kube_rel(version, name);
    s.put(&format!("{rel}.sha256"), sha(body), Behavior::Good);
    s.put(&rel, body.to_vec(), Behavior::Good);
}

fn tgz(members: &[(String, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, body) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, path, *body).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn etcd_tarball(version: &str, members: &[(&str, &[u8])]) -> Vec<u8> {
    let top = format!("etcd-{version}-linux-amd64");
    let m: Vec<(String, &[u8])> = members
        .iter()
        .map(|(n, b)| (format!("{top}/{n}"), *b))
        .collect();
    tgz(&m)
}

// ---------------------------------------------------------------------------------------------
// HTTP cases.

#[tokio::test]
async fn fetch_good_file_verifies_links_records_and_is_not_downloaded_twice() {
    bounded(async {
        let s = Server::start().await;
        let body = fake_binary("kube-apiserver", 300_000);
        serve_kube(&s, V, "kube-apiserver", &body);
        let node = Node::new();
        let set = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::KubeApiserver])
            .await
            .unwrap();

        let rb = set.binary("kube-apiserver").unwrap();
        assert_eq!(rb.sha256, sha(&body));
        assert_eq!(rb.size, body.len() as u64);
        assert!(rb.argv_prefix.is_empty());
        assert_eq!(rb.path, node.paths().bin_dir(V).join("kube-apiserver"));
        let blob = node.cache().join("sha256").join(&rb.sha256);
        assert_eq!(fs::read_link(&rb.path).unwrap(), blob);
        assert_eq!(fs::read(&rb.path).unwrap(), body);
        assert_eq!(
            fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
            0o755
        );
        verify_before_exec(rb).unwrap();
        assert!(files_under(&node.cache().join("partial")).is_empty());
        // The record resolves without any network.
        assert_eq!(FetchedSet::load(&node.paths(), &v()).unwrap(), set);

        // Again: the record and cache answer; not even the checksum is requested.
        let again = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::KubeApiserver])
            .await
            .unwrap();
        assert_eq!(again, set);
        assert_eq!(s.requests(&kube_rel(V, "kube-apiserver")).len(), 1);
        assert_eq!(
            s.requests(&format!("{}.sha256", kube_rel(V, "kube-apiserver")))
                .len(),
            1
        );

        // A second node sharing the cache: the checksum is fetched, the binary is not.
        let other = Node::new();
        let mut o = other.opts(&s.base);
        o.cache_dir = node.cache();
        let set2 = Fetcher::new(o)
            .unwrap()
            .fetch(&v(), &[Artifact::KubeApiserver])
            .await
            .unwrap();
        assert_eq!(set2.binary("kube-apiserver").unwrap().sha256, rb.sha256);
        assert_eq!(s.requests(&kube_rel(V, "kube-apiserver")).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn fetch_wrong_hash_is_refused_and_nothing_is_cached() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kubelet");
        let published = fake_binary("kubelet", 100_000);
        let served = fake_binary("evil-kubelet", 100_000);
        s.put(&format!("{rel}.sha256"), sha(&published), Behavior::Good);
        s.put(&rel, served.clone(), Behavior::Good);
        let node = Node::new();
        let err = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::Kubelet])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
        assert!(msg.contains(&format!("{}{rel}", s.base)), "{msg}");
        assert!(
            msg.contains(&sha(&published)) && msg.contains(&sha(&served)),
            "{msg}"
        );
        // Deterministic corruption is not retried.
        assert_eq!(s.requests(&rel).len(), 1);
        assert!(
            assert_nothing_cached(&node.cache()).is_empty(),
            "mismatch leaves no partial"
        );
        assert!(!node.paths().bin_dir(V).join("kubelet").exists());
    })
    .await;
}

#[tokio::test]
async fn fetch_truncated_body_fails_after_bounded_retries_keeping_a_resumable_partial() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kube-proxy");
        let body = fake_binary("kube-proxy", 200_000);
        s.put(&format!("{rel}.sha256"), sha(&body), Behavior::Good);
        s.put(&rel, body.clone(), Behavior::Truncate { send: 50_000 });
        let node = Node::new();
        let err = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::KubeProxy])
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains(&rel), "{err}");
        // 1 + retries (2) attempts, each resuming from what had arrived.
        let reqs = s.requests(&rel);
        assert_eq!(reqs.len(), 3, "{reqs:?}");
        assert_eq!(reqs[0], None);
        assert_eq!(reqs[1].as_deref(), Some("bytes=50000-"));
        let partials = assert_nothing_cached(&node.cache());
        assert_eq!(partials.len(), 1, "{partials:?}");
        assert_eq!(fs::metadata(&partials[0]).unwrap().len(), 50_000);
    })
    .await;
}

#[tokio::test]
async fn fetch_not_found_and_missing_checksum() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kube-scheduler");
        s.put(&format!("{rel}.sha256"), sha(b"x"), Behavior::Good);
        let node = Node::new();
        let err = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::KubeScheduler])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::NotFound { url } if url.ends_with(&rel)),
            "{err:?}"
        );
        assert_eq!(s.requests(&rel).len(), 1, "a 404 is not retried");
        assert!(assert_nothing_cached(&node.cache()).is_empty());

        // No published checksum and nothing pinned: refused before downloading.
        let rel = kube_rel(V, "kubectl");
        s.put(&rel, fake_binary("kubectl", 1000), Behavior::Good);
        let err = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::Kubectl])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::NoChecksum { .. }), "{err:?}");
        assert!(err.to_string().contains("--insecure-skip-verify"));
        assert!(s.requests(&rel).is_empty());
    })
    .await;
}

#[tokio::test]
async fn fetch_slow_reply_hits_the_read_timeout() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kube-controller-manager");
        let body = fake_binary("kube-controller-manager", 100_000);
        s.put(&format!("{rel}.sha256"), sha(&body), Behavior::Good);
        s.put(
            &rel,
            body.clone(),
            Behavior::Stall {
                send: 10_000,
                stall: Duration::from_secs(30),
            },
        );
        let node = Node::new();
        let mut o = node.opts(&s.base);
        o.read_timeout = Duration::from_millis(300);
        o.retries = 1;
        let started = Instant::now();
        let err = Fetcher::new(o)
            .unwrap()
            .fetch(&v(), &[Artifact::KubeControllerManager])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::ReadTimeout {
                    received: 10_000,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(s.requests(&rel).len(), 2);
        assert_eq!(assert_nothing_cached(&node.cache()).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn fetch_resumes_with_range_after_a_dropped_connection() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kubelet");
        let body = fake_binary("kubelet", 400_000);
        s.put(&format!("{rel}.sha256"), sha(&body), Behavior::Good);
        s.put(&rel, body.clone(), Behavior::DropOnce { send: 123_456 });
        let node = Node::new();
        let set = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::Kubelet])
            .await
            .unwrap();
        assert_eq!(
            s.requests(&rel),
            vec![None, Some("bytes=123456-".to_string())]
        );
        let rb = set.binary("kubelet").unwrap();
        assert_eq!(rb.sha256, sha(&body));
        assert_eq!(fs::read(&rb.path).unwrap(), body);
        verify_before_exec(rb).unwrap();
        assert!(files_under(&node.cache().join("partial")).is_empty());
    })
    .await;
}

#[tokio::test]
async fn fetch_resumes_a_partial_left_by_an_earlier_run() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kube-proxy");
        let body = fake_binary("kube-proxy", 200_000);
        s.put(&format!("{rel}.sha256"), sha(&body), Behavior::Good);
        s.put(&rel, body.clone(), Behavior::Truncate { send: 70_000 });
        let node = Node::new();
        let mut o = node.opts(&s.base);
        o.retries = 0;
        assert!(
            Fetcher::new(o)
                .unwrap()
                .fetch(&v(), &[Artifact::KubeProxy])
                .await
                .is_err()
        );
        // The server recovers; a new run continues from byte 70000.
        s.put(&rel, body.clone(), Behavior::Good);
        let set = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::KubeProxy])
            .await
            .unwrap();
        assert_eq!(s.requests(&rel)[1].as_deref(), Some("bytes=70000-"));
        assert_eq!(set.binary("kube-proxy").unwrap().sha256, sha(&body));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Mirrors, manifests and checksums.

#[tokio::test]
async fn fetch_from_file_url_and_directory_mirrors() {
    bounded(async {
        let m = tempfile::tempdir().unwrap();
        let api = fake_binary("kube-apiserver", 50_000);
        let kubelet = fake_binary("kubelet", 60_000);
        for (n, b) in [("kube-apiserver", &api), ("kubelet", &kubelet)] {
            write_file(m.path(), &kube_rel(V, n), b);
            write_file(
                m.path(),
                &format!("{}.sha256", kube_rel(V, n)),
                sha(b).as_bytes(),
            );
        }
        let mirror_dir = m.path().to_str().unwrap().to_string();
        for mirror in [format!("file://{mirror_dir}"), mirror_dir.clone()] {
            let node = Node::new();
            let set = node
                .fetcher(&mirror)
                .fetch(&v(), &[Artifact::KubeApiserver, Artifact::Kubelet])
                .await
                .unwrap();
            assert_eq!(set.binary("kube-apiserver").unwrap().sha256, sha(&api));
            assert_eq!(set.binary("kubelet").unwrap().sha256, sha(&kubelet));
            for rb in set.binaries.values() {
                verify_before_exec(rb).unwrap();
            }
        }
        // A corrupt file in a directory mirror is refused like any other.
        write_file(m.path(), &kube_rel(V, "kubelet"), b"tampered");
        let node = Node::new();
        let err = node
            .fetcher(&mirror_dir)
            .fetch(&v(), &[Artifact::Kubelet])
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::HashMismatch { ref url, .. } if url.starts_with("file://")),
            "{err:?}"
        );
        assert!(assert_nothing_cached(&node.cache()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn fetch_etcd_tarball_verified_by_sha256sums_then_extracted() {
    bounded(async {
        let s = Server::start().await;
        let etcd = fake_binary("etcd", 80_000);
        let etcdctl = fake_binary("etcdctl", 40_000);
        let tgz = etcd_tarball(
            "v3.4.23",
            &[
                ("README.md", b"docs"),
                ("etcd", &etcd),
                ("etcdctl", &etcdctl),
            ],
        );
        let dir = "etcd-io/etcd/releases/download/v3.4.23";
        let file = "etcd-v3.4.23-linux-amd64.tar.gz";
        let sums = format!(
            "{}  etcd-v3.4.23-linux-arm64.tar.gz\n{}  {file}\n",
            sha(b"other"),
            sha(&tgz)
        );
        s.put(&format!("{dir}/SHA256SUMS"), sums, Behavior::Good);
        s.put(&format!("{dir}/{file}"), tgz.clone(), Behavior::Good);

        let node = Node::new();
        let mut o = node.opts(&s.base);
        o.etcd_version = Some("3.4.23".into());
        let set = Fetcher::new(o.clone())
            .unwrap()
            .fetch(&v(), &[Artifact::Etcd])
            .await
            .unwrap();
        let e = set.component(kubesup::model::Component::Etcd).unwrap();
        assert_eq!(e.sha256, sha(&etcd));
        assert_eq!(fs::read(&e.path).unwrap(), etcd);
        assert_eq!(set.binary("etcdctl").unwrap().sha256, sha(&etcdctl));
        assert!(set.binary("README.md").is_none());
        assert_eq!(set.sources["etcd"].sha256, sha(&tgz));
        // Only the two binaries are kept, not the tarball.
        assert_eq!(files_under(&node.cache().join("sha256")).len(), 2);
        verify_before_exec(e).unwrap();

        // Another node on the same cache: the archive index answers; no tarball download.
        let other = Node::new();
        let mut o2 = other.opts(&s.base);
        o2.etcd_version = Some("v3.4.23".into());
        o2.cache_dir = node.cache();
        let set2 = Fetcher::new(o2)
            .unwrap()
            .fetch(&v(), &[Artifact::Etcd])
            .await
            .unwrap();
        assert_eq!(set2.binary("etcd").unwrap().sha256, sha(&etcd));
        assert_eq!(s.requests(&format!("{dir}/{file}")).len(), 1);

        // A tarball that does not match SHA256SUMS is refused before extraction.
        let bad = etcd_tarball("v3.4.23", &[("etcd", b"evil"), ("etcdctl", b"evil")]);
        s.put(&format!("{dir}/{file}"), bad, Behavior::Good);
        let fresh = Node::new();
        let mut o3 = fresh.opts(&s.base);
        o3.etcd_version = Some("v3.4.23".into());
        let err = Fetcher::new(o3)
            .unwrap()
            .fetch(&v(), &[Artifact::Etcd])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
        assert!(assert_nothing_cached(&fresh.cache()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn fetch_hyperkube_for_an_old_version() {
    bounded(async {
        let s = Server::start().await;
        let old = "v1.18.20";
        let hk = fake_binary("hyperkube", 150_000);
        let kubectl = fake_binary("kubectl", 10_000);
        serve_kube(&s, old, "hyperkube", &hk);
        serve_kube(&s, old, "kubectl", &kubectl);
        let node = Node::new();
        let set = node
            .fetcher(&s.base)
            .fetch(
                &kubesup::model::KubeVersion::parse(old).unwrap(),
                &[
                    Artifact::KubeApiserver,
                    Artifact::KubeScheduler,
                    Artifact::Kubelet,
                    Artifact::Kubectl,
                ],
            )
            .await
            .unwrap();
        let hk_path = node.paths().bin_dir(old).join("hyperkube");
        for name in ["kube-apiserver", "kube-scheduler", "kubelet"] {
            let rb = set.binary(name).unwrap();
            assert_eq!(rb.path, hk_path);
            assert_eq!(rb.sha256, sha(&hk));
            assert_eq!(rb.argv_prefix, vec![name.to_string()]);
        }
        let k = set.binary("kubectl").unwrap();
        assert!(k.argv_prefix.is_empty() && k.sha256 == sha(&kubectl));
        assert_eq!(s.requests(&kube_rel(old, "hyperkube")).len(), 1);
        assert!(s.requests(&kube_rel(old, "kube-apiserver")).is_empty());
    })
    .await;
}

#[tokio::test]
async fn fetch_pinned_checksum_wins_over_the_published_one() {
    bounded(async {
        let s = Server::start().await;
        let rel = kube_rel(V, "kubelet");
        let body = fake_binary("kubelet", 20_000);
        // The published checksum is wrong, the pin is right: the pin wins.
        s.put(&format!("{rel}.sha256"), sha(b"stale"), Behavior::Good);
        s.put(&rel, body.clone(), Behavior::Good);
        let node = Node::new();
        let mut o = node.opts(&s.base);
        o.pinned = BTreeMap::from([("kubelet".to_string(), sha(&body).to_uppercase())]);
        let set = Fetcher::new(o).unwrap().fetch(&v(), &[Artifact::Kubelet]).await.unwrap();
        assert_eq!(set.binary("kubelet").unwrap().sha256, sha(&body));
        assert!(s.requests(&format!("{rel}.sha256")).is_empty(), "a pin needs no published checksum");

        // The published checksum is right, the pin is not: refused.
        s.put(&format!("{rel}.sha256"), sha(&body), Behavior::Good);
        let node = Node::new();
        let mut o = node.opts(&s.base);
        o.pinned = BTreeMap::from([("kubelet".to_string(), sha(b"other"))]);
        let err = Fetcher::new(o).unwrap().fetch(&v(), &[Artifact::Kubelet]).await.unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { ref expected, .. } if *expected == sha(b"other")), "{err:?}");
        assert!(assert_nothing_cached(&node.cache()).is_empty());

        // A malformed pin is an error up front.
        let mut o = node.opts(&s.base);
        o.pinned = BTreeMap::from([("kubelet".to_string(), "abc".to_string())]);
        assert!(matches!(Fetcher::new(o), Err(FetchError::BadPin { .. })));
    })
    .await;
}

#[tokio::test]
async fn fetch_insecure_skip_verify_is_required_without_any_checksum() {
    bounded(async {
        let s = Server::start().await;
        let rel = "flannel-io/flannel/releases/download/v0.13.0/flanneld-amd64";
        let body = fake_binary("flanneld", 30_000);
        s.put(rel, body.clone(), Behavior::Good);
        let node = Node::new();
        let err = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::Flanneld])
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::NoChecksum { ref artifact, .. } if artifact == "flanneld"),
            "{err:?}"
        );
        assert!(s.requests(rel).is_empty());

        let mut o = node.opts(&s.base);
        o.insecure_skip_verify = true;
        let set = Fetcher::new(o.clone())
            .unwrap()
            .fetch(&v(), &[Artifact::Flanneld])
            .await
            .unwrap();
        let rb = set.binary("flanneld").unwrap();
        assert_eq!(rb.sha256, sha(&body));
        assert!(!set.sources["flanneld"].verified);
        verify_before_exec(rb).unwrap();

        // insecure_skip_verify does not switch off a checksum that exists.
        let krel = kube_rel(V, "kube-proxy");
        s.put(&format!("{krel}.sha256"), sha(b"published"), Behavior::Good);
        s.put(&krel, fake_binary("kube-proxy", 1000), Behavior::Good);
        let err = Fetcher::new(o)
            .unwrap()
            .fetch(&v(), &[Artifact::KubeProxy])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn fetch_verify_before_exec_catches_a_changed_binary_and_refetch_repairs_it() {
    bounded(async {
        let m = tempfile::tempdir().unwrap();
        let body = fake_binary("kube-scheduler", 40_000);
        write_file(m.path(), &kube_rel(V, "kube-scheduler"), &body);
        write_file(
            m.path(),
            &format!("{}.sha256", kube_rel(V, "kube-scheduler")),
            sha(&body).as_bytes(),
        );
        let mirror = m.path().to_str().unwrap();
        let node = Node::new();
        let set = node
            .fetcher(mirror)
            .fetch(&v(), &[Artifact::KubeScheduler])
            .await
            .unwrap();
        let rb = set.binary("kube-scheduler").unwrap().clone();
        verify_before_exec(&rb).unwrap();

        // Same size, one byte changed (as root can): caught by the stamp, confirmed by rehash.
        let blob = fs::read_link(&rb.path).unwrap();
        let mut changed = body.clone();
        changed[20] ^= 1;
        fs::write(&blob, &changed).unwrap();
        let err = verify_before_exec(&rb).unwrap_err();
        assert!(matches!(err, FetchError::CorruptBinary { .. }), "{err:?}");
        // Truncated: caught by the size check.
        fs::write(&blob, &body[..100]).unwrap();
        assert!(matches!(
            verify_before_exec(&rb),
            Err(FetchError::SizeMismatch { .. })
        ));
        // A link pointing elsewhere is refused.
        let elsewhere = node.data.join("elsewhere");
        fs::write(&elsewhere, &body).unwrap();
        let mut fake = rb.clone();
        fake.path = node.data.join("link");
        std::os::unix::fs::symlink(&elsewhere, &fake.path).unwrap();
        assert!(matches!(
            verify_before_exec(&fake),
            Err(FetchError::NotCacheLink { .. })
        ));

        // A new fetch notices the corrupt cache entry and replaces it.
        let set = node
            .fetcher(mirror)
            .fetch(&v(), &[Artifact::KubeScheduler])
            .await
            .unwrap();
        verify_before_exec(set.binary("kube-scheduler").unwrap()).unwrap();
        assert_eq!(fs::read(&rb.path).unwrap(), body);
    })
    .await;
}

#[tokio::test]
async fn fetch_container_runtime_artifacts_when_asked() {
    bounded(async {
        let m = tempfile::tempdir().unwrap();
        let node = Node::new();
        let fetcher = node.fetcher(m.path().to_str().unwrap());
        let rm = fetcher.manifest(&v()).unwrap();

        let (cv, bare) = (
            &rm.containerd_version,
            rm.containerd_version.trim_start_matches('v'),
        );
        let ctr_bins: Vec<(String, Vec<u8>)> = ["containerd", "containerd-shim-runc-v2", "ctr"]
            .iter()
            .map(|n| (format!("bin/{n}"), fake_binary(n, 5_000)))
            .collect();
        let refs: Vec<(String, &[u8])> = ctr_bins
            .iter()
            .map(|(p, b)| (p.clone(), b.as_slice()))
            .collect();
        let c_tgz = tgz(&refs);
        let c_rel = format!(
            "containerd/containerd/releases/download/{cv}/containerd-{bare}-linux-amd64.tar.gz"
        );
        write_file(m.path(), &c_rel, &c_tgz);
        write_file(
            m.path(),
            &format!("{c_rel}.sha256sum"),
            format!("{}  containerd-{bare}-linux-amd64.tar.gz\n", sha(&c_tgz)).as_bytes(),
        );

        let runc = fake_binary("runc", 8_000);
        let r_dir = format!("opencontainers/runc/releases/download/{}", rm.runc_version);
        write_file(m.path(), &format!("{r_dir}/runc.amd64"), &runc);
        write_file(
            m.path(),
            &format!("{r_dir}/runc.sha256sum"),
            format!("{} *runc.arm64\n{} *runc.amd64\n", sha(b"arm"), sha(&runc)).as_bytes(),
        );

        let nv = &rm.cni_plugins_version;
        let plugins: Vec<(String, Vec<u8>)> = ["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .map(|n| (format!("./{n}"), fake_binary(n, 3_000)))
            .collect();
        let refs: Vec<(String, &[u8])> = plugins
            .iter()
            .map(|(p, b)| (p.clone(), b.as_slice()))
            .collect();
        let n_tgz = tgz(&refs);
        let n_rel = format!(
            "containernetworking/plugins/releases/download/{nv}/cni-plugins-linux-amd64-{nv}.tgz"
        );
        write_file(m.path(), &n_rel, &n_tgz);
        write_file(
            m.path(),
            &format!("{n_rel}.sha256"),
            format!("{}  cni-plugins-linux-amd64-{nv}.tgz\n", sha(&n_tgz)).as_bytes(),
        );

        let set = fetcher.fetch(&v(), &Artifact::RUNTIME).await.unwrap();
        let c = set
            .component(kubesup::model::Component::Containerd)
            .unwrap();
        assert_eq!(c.sha256, sha(&ctr_bins[0].1));
        assert_eq!(set.binary("ctr").unwrap().sha256, sha(&ctr_bins[2].1));
        assert_eq!(set.binary("runc").unwrap().sha256, sha(&runc));
        let cni = set.cni_bin_dir();
        assert_eq!(cni, node.paths().bin_dir(V).join("cni"));
        assert_eq!(fs::read(cni.join("portmap")).unwrap(), plugins[3].1);
        for rb in set.binaries.values() {
            verify_before_exec(rb).unwrap();
        }
        // A CNI tarball without host-local is incomplete.
        let partial: Vec<(String, &[u8])> = vec![("./bridge".into(), b"x")];
        let bad = tgz(&partial);
        write_file(m.path(), &n_rel, &bad);
        write_file(m.path(), &format!("{n_rel}.sha256"), sha(&bad).as_bytes());
        let other = Node::new();
        let err = other
            .fetcher(m.path().to_str().unwrap())
            .fetch(&v(), &[Artifact::CniPlugins])
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::MissingMember { ref member, .. } if member == "host-local"),
            "{err:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Air gap.

#[tokio::test]
async fn fetch_bundle_round_trip_and_a_tampered_bundle_is_refused() {
    bounded(async {
        let m = tempfile::tempdir().unwrap();
        let api = fake_binary("kube-apiserver", 70_000);
        let kubelet = fake_binary("kubelet", 50_000);
        for (n, b) in [("kube-apiserver", &api), ("kubelet", &kubelet)] {
            write_file(m.path(), &kube_rel(V, n), b);
            write_file(
                m.path(),
                &format!("{}.sha256", kube_rel(V, n)),
                sha(b).as_bytes(),
            );
        }
        let etcd = fake_binary("etcd", 30_000);
        let tgz = etcd_tarball("v3.4.23", &[("etcd", &etcd), ("etcdctl", b"#!/bin/sh\n")]);
        let dir = "etcd-io/etcd/releases/download/v3.4.23";
        write_file(
            m.path(),
            &format!("{dir}/etcd-v3.4.23-linux-amd64.tar.gz"),
            &tgz,
        );
        write_file(
            m.path(),
            &format!("{dir}/SHA256SUMS"),
            format!("{}  etcd-v3.4.23-linux-amd64.tar.gz\n", sha(&tgz)).as_bytes(),
        );

        let online = Node::new();
        let mut o = online.opts(m.path().to_str().unwrap());
        o.etcd_version = Some("v3.4.23".into());
        let fetcher = Fetcher::new(o).unwrap();
        let set = fetcher
            .fetch(
                &v(),
                &[Artifact::KubeApiserver, Artifact::Kubelet, Artifact::Etcd],
            )
            .await
            .unwrap();
        let bundle = online.data.join("bundle.tar");
        let summary = fetcher
            .write_bundle(&set, &fetcher.manifest(&v()).unwrap(), &bundle)
            .await
            .unwrap();
        assert_eq!(summary.binaries, 4);

        // An air-gapped node: no mirror reachable at all.
        let offline = Node::new();
        let mut oo = offline.opts("http://127.0.0.1:9/");
        oo.retries = 0;
        let f2 = Fetcher::new(oo).unwrap();
        let loaded = f2.load_bundle(&bundle).await.unwrap();
        assert_eq!(loaded.binaries.len(), 4);
        for (name, rb) in &loaded.binaries {
            assert_eq!(rb.sha256, set.binaries[name].sha256);
            assert!(rb.path.starts_with(offline.paths().bin_dir(V)));
            verify_before_exec(rb).unwrap();
        }
        assert_eq!(FetchedSet::load(&offline.paths(), &v()).unwrap(), loaded);
        // And `fetch` there resolves from the record without the network.
        let again = f2
            .fetch(&v(), &[Artifact::KubeApiserver, Artifact::Kubelet])
            .await
            .unwrap();
        assert_eq!(again.binaries["kubelet"].sha256, sha(&kubelet));

        // Tamper: change one byte of kube-apiserver's content inside the tar.
        let mut bytes = fs::read(&bundle).unwrap();
        let needle = b"echo kube-apiserver";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at + 5] = b'X';
        let tampered = online.data.join("tampered.tar");
        fs::write(&tampered, &bytes).unwrap();
        let victim = Node::new();
        let f3 = victim.fetcher("http://127.0.0.1:9/");
        let err = f3.load_bundle(&tampered).await.unwrap_err();
        assert!(matches!(err, FetchError::BundleTampered { .. }), "{err:?}");
        assert!(err.to_string().contains("nothing from it was installed"));
        assert!(
            files_under(&victim.cache()).is_empty(),
            "{:?}",
            files_under(&victim.cache())
        );
        assert!(!FetchedSet::record_path(&victim.paths(), &v()).exists());

        // A bundle whose binary contradicts a pinned checksum is refused too.
        let mut op = victim.opts("http://127.0.0.1:9/");
        op.pinned = BTreeMap::from([("kubelet".to_string(), sha(b"something else"))]);
        let err = Fetcher::new(op)
            .unwrap()
            .load_bundle(&bundle)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::BundlePin { .. }), "{err:?}");
        assert!(files_under(&victim.cache()).is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The system's trust store is read only for public https hosts.

/// Set in the child process of `a_node_with_an_http_mirror_needs_no_trust_store`.
const NO_TRUST_STORE_CHILD: &str = "KUBESUP_TEST_NO_TRUST_STORE_CHILD";

/// A root without the ca-certificates package, as far as kubesup can tell: this test binary
/// runs `no_trust_store_child` again in a child process whose SSL_CERT_FILE and SSL_CERT_DIR
/// point at an empty file and an empty directory (which rustls-native-certs then reads instead
/// of the distribution's bundle). The environment is the child's own, so no other test here
/// sees it.
#[test]
fn a_node_with_an_http_mirror_needs_no_trust_store() {
    if std::env::var_os(NO_TRUST_STORE_CHILD).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, certs) = (dir.path().join("empty.pem"), dir.path().join("certs"));
    fs::write(&file, "").unwrap();
    fs::create_dir(&certs).unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "no_trust_store_child", "--nocapture"])
        .env(NO_TRUST_STORE_CHILD, "1")
        .env("SSL_CERT_FILE", &file)
        .env("SSL_CERT_DIR", &certs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for proxy in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // Our own child, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child test did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran the one test (a filter that matched nothing would also succeed).
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Does its work only as the child of `a_node_with_an_http_mirror_needs_no_trust_store`.
#[tokio::test]
async fn no_trust_store_child() {
    if std::env::var_os(NO_TRUST_STORE_CHILD).is_none() {
        return;
    }
    bounded(async {
        let s = Server::start().await;
        let node = Node::new();
        let body = fake_binary("kubectl", 50_000);
        serve_kube(&s, V, "kubectl", &body);
        let set = node
            .fetcher(&s.base)
            .fetch(&v(), &[Artifact::Kubectl])
            .await
            .unwrap();
        assert_eq!(set.binary("kubectl").unwrap().sha256, sha(&body));

        let mirror = tempfile::tempdir().unwrap();
        write_file(mirror.path(), &kube_rel(V, "kubectl"), &body);
        write_file(
            mirror.path(),
            &format!("{}.sha256", kube_rel(V, "kubectl")),
            sha(&body).as_bytes(),
        );
        let other = Node::new();
        other
            .fetcher(mirror.path().to_str().unwrap())
            .fetch(&v(), &[Artifact::Kubectl])
            .await
            .unwrap();

        // An https source needs the store: building the fetcher still works, the first
        // request fails at once (no retries) with one line that says what to install.
        let https = Node::new();
        let err = https
            .fetcher("https://127.0.0.1:9/mirror")
            .fetch(&v(), &[Artifact::Kubectl])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("install the ca-certificates package"), "{msg}");
        assert!(msg.contains("https://127.0.0.1:9/mirror/"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(!err.is_transient(), "{err:?}");
    })
    .await;
}
