//! The join API's binaries for nodes: a master fetches, verifies and lists what a node needs,
//! and serves those files from its cache, so that a node reaches nothing but its master.
//!
//! - `POST /v1/binaries` — a [`BinariesRequest`] (the node's architecture, and whether it takes
//!   the container runtime from the master too), authenticated by the node's current kubelet
//!   client certificate. The master fetches what the node needs into its own cache (from its
//!   mirror or upstream, verified as its own binaries are) and answers a
//!   [`crate::fetch::BinaryList`]: each binary by name and SHA-256.
//! - `GET /v1/blobs/SHA256` — one file of the master's cache by its hash, to the same nodes,
//!   streamed. The master does not rehash it first: the node checks every byte against the
//!   list before the file enters its own cache, so a corrupt or tampered copy is refused there.
//!
//! Owns: the choice of artifacts for a node, the serialisation of preparations, and the
//! streaming of cache files. The fetching itself is [`crate::fetch`]'s.

use std::net::IpAddr;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body, Frame};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::server::{JoinContext, ServerBody, authenticate_node, boxed, error, read_body, reply};
use crate::fetch::{Artifact, FetchOptions, Fetcher, needed_artifacts};
use crate::model::{KubeVersion, Network, NodeRole};

/// The read size when streaming a cache file to a node.
const BLOB_CHUNK: usize = 256 * 1024;

/// What a node asks its master for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinariesRequest {
    /// Upstream architecture name (`amd64`).
    pub arch: String,
    /// Also containerd, runc and the CNI plugins (the node has no containerd of its own).
    pub runtime: bool,
}

/// What a master hands its nodes: its own fetch settings (mirror, pins, versions), the
/// cluster's release and network.
pub struct NodeBinaries {
    pub fetch: FetchOptions,
    pub kube_version: KubeVersion,
    pub network: Network,
    /// One preparation at a time: two nodes joining at once must not download the same file
    /// into the same partial file.
    lock: tokio::sync::Mutex<()>,
}

impl NodeBinaries {
    pub fn new(fetch: FetchOptions, kube_version: KubeVersion, network: Network) -> Self {
        let mut fetch = fetch;
        // The master's log, not a terminal, shows this work.
        fetch.progress_bars = false;
        Self {
            fetch,
            kube_version,
            network,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The artifacts a worker node of this cluster runs.
    pub fn artifacts(&self, runtime: bool) -> Vec<Artifact> {
        let mut a = needed_artifacts(NodeRole::Worker, self.network);
        if runtime {
            a.extend(Artifact::RUNTIME);
        }
        a
    }

    fn cache_file(&self, sha256: &str) -> PathBuf {
        self.fetch.cache_dir.join("sha256").join(sha256)
    }
}

/// `POST /v1/binaries`.
pub(super) async fn list<B>(
    ctx: &JoinContext,
    peer: IpAddr,
    client_cert: Option<&[u8]>,
    req: Request<B>,
) -> Response<http_body_util::Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (node, _) = match authenticate_node(ctx, peer, client_cert, "fetching binaries").await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let Some(nb) = &ctx.binaries else {
        return error(
            StatusCode::NOT_FOUND,
            "this master does not hand out binaries; set a mirror on the node",
        );
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request: BinariesRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("malformed binaries request: {e}"),
            );
        }
    };
    let mut opts = nb.fetch.clone();
    opts.arch = request.arch.clone();
    let artifacts = nb.artifacts(request.runtime);
    let _one_at_a_time = nb.lock.lock().await;
    let prepared = match Fetcher::new(opts) {
        Ok(f) => f.prepare(&nb.kube_version, &artifacts).await,
        Err(e) => Err(e),
    };
    match prepared {
        Ok(list) => {
            info!(%peer, %node, arch = %list.arch, binaries = list.binaries.len(), "listed a node's binaries");
            reply(
                StatusCode::OK,
                serde_json::to_string(&list).unwrap_or_default(),
                "application/json",
            )
        }
        Err(e) => {
            let message = format!(
                "the master cannot fetch this node's binaries: {}",
                crate::errors::chain(&e)
            );
            warn!(%peer, %node, error = %crate::errors::chain(&e), "cannot prepare a node's binaries");
            error(StatusCode::BAD_GATEWAY, &message)
        }
    }
}

/// `GET /v1/blobs/SHA256`.
pub(super) async fn blob(
    ctx: &JoinContext,
    peer: IpAddr,
    client_cert: Option<&[u8]>,
    sha256: &str,
) -> Response<ServerBody> {
    if let Err(resp) = authenticate_node(ctx, peer, client_cert, "fetching binaries").await {
        return boxed(resp);
    }
    let Some(nb) = &ctx.binaries else {
        return boxed(error(StatusCode::NOT_FOUND, "no such binary"));
    };
    // The hash is the whole name: nothing else can reach the file system.
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return boxed(error(StatusCode::BAD_REQUEST, "not a sha256"));
    }
    let path = nb.cache_file(sha256);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return boxed(error(StatusCode::NOT_FOUND, "no such binary"));
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot open a cache file for a node");
            return boxed(error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read it"));
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    // Large reads: a 100 MB kubelet in 4 KiB frames (the default) costs the master CPU.
    let stream = tokio_util::io::ReaderStream::with_capacity(file, BLOB_CHUNK).map_ok(Frame::data);
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        headers.insert(hyper::header::CONTENT_LENGTH, len.into());
    }
    *resp.status_mut() = StatusCode::OK;
    resp
}
