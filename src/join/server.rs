//! The join API, served by a master over TLS (its `join-server` certificate, from the cluster
//! CA) on `--join-port`.
//!
//! - `GET /v1/ca` — unauthenticated: the cluster CA bundle. A worker checks it against the pin
//!   in its token before it sends anything secret.
//! - `POST /v1/join` — `Authorization: Bearer <id>.<secret>`, a JSON body with the node's
//!   name, addresses and CSRs made on the worker (its private keys never leave it). Answers
//!   the signed kubelet client and serving certificates, kube-proxy's certificate, and what the
//!   node needs to run.
//! - `POST /v1/renew` — the same body, from a node that already joined, authenticated by its
//!   current kubelet client certificate (TLS client auth, checked against the cluster CA) whose
//!   key must be the one recorded for that node. Answers new certificates for new keys, so a
//!   worker renews in the background instead of on restart.
//!
//! - `POST /v1/binaries` and `GET /v1/blobs/SHA256` — a joined node's binaries, listed by hash
//!   and served from the master's cache, to the node's current kubelet client certificate
//!   ([`super::binaries`]).
//!
//! - `POST /v1/join-master` — `Authorization: Bearer <id>.<secret>` of a token created with
//!   `--role master` (a worker token is refused with 403), a JSON body with the joining master's
//!   name and address. Answers the cluster-wide key material (the three CAs and the
//!   service-account key pair), the settings every master shares, and the etcd members' client
//!   URLs. Nothing is recorded: the joiner adds itself to etcd, as a learner.
//!
//! Security: secrets are compared in constant time against a stored hash; failed attempts are
//! rate-limited per source address; bodies are size- and time-limited; a node name that
//! already joined with another key is refused unless the master runs with `--force`; every
//! request is logged, never with a secret or a key.
//!
//! Fails closed: when the cluster store cannot be read or written, a request is answered 503
//! "cluster store unavailable, retry" (not counted as a failed attempt: the outage is ours),
//! and nothing is recorded. A node name is claimed by one compare-and-set in the store, made
//! only after its certificates are signed, so of two joins racing for one name one wins and
//! the other gets the refusal a taken name gets.
//!
//! Owns: routing, the handlers, the rate limit, and the node-signing policy's use. The wire
//! types are in [`super::wire`], TLS in [`super::tls`], the store in [`super::store`], and
//! the master's start-up in `serve.rs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::store::{Backend, StoreError, TokenRecord};
use super::token::secret_matches;
use super::wire::{
    ClusterInfo, ClusterSettings, JoinRequest, JoinResponse, MasterJoinRequest, MasterJoinResponse,
};
use crate::model::Role;
use crate::paths::PkiPaths;
use crate::pki::{
    ClusterMaterial, LoadedCa, NodeCertKind, NodeIdentity, PolicyError, sign_node_csr,
};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Failed attempts allowed per source address per window, before it is refused outright.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer to any request the store could not serve: one line, and no hint of what was
/// asked, so it reveals nothing about tokens or nodes.
pub const STORE_UNAVAILABLE: &str = "cluster store unavailable, retry";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on the join port {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    // The cause is in the text because the text is the answer the node gets.
    #[error("malformed {what} request: {detail}")]
    Malformed {
        what: &'static str,
        detail: serde_json::Error,
    },
    #[error("the kubelet client CSR is unreadable")]
    UnreadableCsr,
}

pub struct JoinContext {
    pub ca: LoadedCa,
    /// Signs flanneld's etcd client certs; `None` when the cluster does not run flannel.
    pub etcd_ca: Option<LoadedCa>,
    pub cluster: ClusterInfo,
    pub backend: Backend,
    /// Let a node name rejoin with a new key (`kubesup master --force`).
    pub force: bool,
    pub leaf_validity: Duration,
    /// What control-plane joins are answered with; `None` (tests, benchmarks): they are
    /// refused.
    pub masters: Option<MasterSource>,
    /// What nodes fetch their binaries from; `None` (tests, benchmarks): they are refused.
    pub binaries: Option<super::binaries::NodeBinaries>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Where a master's cluster-wide keys are, read at each control-plane join (so a join sees the
/// files as they are, never a copy held in memory), and the settings every master shares.
pub struct MasterSource {
    pub pki: PkiPaths,
    pub settings: ClusterSettings,
}

impl JoinContext {
    pub fn new(
        ca: LoadedCa,
        cluster: ClusterInfo,
        backend: Backend,
        force: bool,
        leaf_validity: Duration,
    ) -> Self {
        Self {
            ca,
            etcd_ca: None,
            cluster,
            backend,
            force,
            leaf_validity,
            masters: None,
            binaries: None,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn limited(&self, ip: IpAddr) -> bool {
        let Ok(f) = self.failures.lock() else {
            return true;
        };
        f.get(&ip)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
    }

    /// An error answer that counts as a failed attempt from `ip`, toward the rate limit.
    pub(super) fn refuse(
        &self,
        ip: IpAddr,
        status: StatusCode,
        message: &str,
    ) -> Response<Full<Bytes>> {
        if let Ok(mut f) = self.failures.lock() {
            let e = f.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= FAILURE_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
        error(status, message)
    }

    /// The answer when the store failed: 503 and no strike, since a strike is for a bad
    /// credential and this is our own outage. The node retries; nothing was recorded.
    fn unavailable(
        &self,
        peer: IpAddr,
        node: Option<&str>,
        e: &StoreError,
    ) -> Response<Full<Bytes>> {
        warn!(
            %peer,
            node,
            error = %crate::errors::chain(e),
            "join API: the cluster store failed; answered 503"
        );
        error(StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE)
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, ctx: Arc<JoinContext>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %crate::errors::chain(&e), "join server accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            // Verified against the cluster CA by the handshake, when the client sent one.
            let client_cert: Option<Arc<Vec<u8>>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.as_ref().to_vec()));
            let svc = hyper::service::service_fn(move |req| {
                handle(ctx.clone(), peer.ip(), client_cert.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// Every answer's body: a small JSON or PEM in memory, or a binary streamed from the cache.
pub(super) type ServerBody = BoxBody<Bytes, std::io::Error>;

pub(super) fn boxed(r: Response<Full<Bytes>>) -> Response<ServerBody> {
    r.map(|b| b.map_err(|never| match never {}).boxed())
}

pub(super) fn reply(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub(super) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        serde_json::json!({ "error": message }).to_string(),
        "application/json",
    )
}

/// Routes one request. Generic over the body so that tests can call it without a connection.
async fn handle<B>(
    ctx: Arc<JoinContext>,
    peer: IpAddr,
    client_cert: Option<Arc<Vec<u8>>>,
    req: Request<B>,
) -> Result<Response<ServerBody>, Infallible>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let cert = client_cert.as_deref().map(Vec::as_slice);
    // Binaries are served to joined nodes only, and are not failed attempts at a secret.
    if method == Method::GET
        && let Some(sha) = path.strip_prefix("/v1/blobs/")
    {
        let resp = super::binaries::blob(&ctx, peer, cert, sha).await;
        info!(%peer, %method, path, status = resp.status().as_u16(), "join api request");
        return Ok(resp);
    }
    let resp = match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/ca") => reply(
            StatusCode::OK,
            ctx.ca.cert_pem().to_string(),
            "application/x-pem-file",
        ),
        // Failed attempts at any of them are counted together, per source address.
        (Method::POST, "/v1/join" | "/v1/renew" | "/v1/join-master") if ctx.limited(peer) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; wait a minute",
        ),
        (Method::POST, "/v1/join") => join(&ctx, peer, req).await,
        (Method::POST, "/v1/join-master") => join_master(&ctx, peer, req).await,
        (Method::POST, "/v1/renew") => renew(&ctx, peer, cert, req).await,
        (Method::POST, "/v1/binaries") => super::binaries::list(&ctx, peer, cert, req).await,
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    info!(%peer, %method, path, status = resp.status().as_u16(), "join api request");
    Ok(boxed(resp))
}

async fn join<B>(ctx: &JoinContext, peer: IpAddr, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (record, body) = match authenticate(ctx, peer, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (request, key_pin) = match parse_request(&body, "join") {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let node = &request.node_name;
    // An unreadable record is not "no record": that would hand a joined node's name to any
    // token holder for the length of an etcd blip.
    let known = match ctx.backend.node_key(node).await {
        Ok(k) => k,
        Err(e) => return ctx.unavailable(peer, Some(node), &e),
    };
    if known.as_deref().is_some_and(|k| k != key_pin) && !ctx.force {
        warn!(%peer, node = %node, token = %record.id, "refused: node name already joined with another key");
        return taken(node);
    }
    let mut answer = match sign(ctx, &request) {
        Ok(a) => a,
        Err(e) => {
            warn!(%peer, node = %node, token = %record.id, error = %crate::errors::chain(&e), "refused a CSR");
            return error(StatusCode::FORBIDDEN, &e.to_string());
        }
    };
    // flanneld on the node gets every etcd member, so losing one master loses it nothing. A
    // failed read keeps this master's own etcd: it answered the token a moment ago.
    match ctx.backend.etcd_client_urls().await {
        Ok(urls) if !urls.is_empty() => answer.cluster.etcd_servers = urls,
        Ok(_) => {}
        Err(e) => {
            warn!(%peer, node = %node, error = %crate::errors::chain(&e), "cannot list the etcd members; the node gets this master's etcd only");
        }
    }
    // Recorded only once the certificates are signed, and only over the record read above: a
    // join that claimed the name in between wins, and this one is refused as if it had come
    // second (with --force too: a forced rejoin replaces a key it has seen, not one it has not).
    match ctx
        .backend
        .claim_node(node, known.as_deref(), &key_pin)
        .await
    {
        Ok(true) => {
            info!(%peer, node = %node, token = %record.id, "node joined");
            json(&answer)
        }
        Ok(false) => {
            warn!(%peer, node = %node, token = %record.id, "refused: another join claimed the node name first");
            taken(node)
        }
        Err(e) => ctx.unavailable(peer, Some(node), &e),
    }
}

/// Checks the bearer token of a join and reads the body: the token's record, or the answer
/// that refuses it. One message for every authentication failure, so nobody can probe which
/// ids exist.
async fn authenticate<B>(
    ctx: &JoinContext,
    peer: IpAddr,
    req: Request<B>,
) -> Result<(TokenRecord, Bytes), Response<Full<Bytes>>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let unauthorized = || {
        ctx.refuse(
            peer,
            StatusCode::UNAUTHORIZED,
            "invalid, expired or revoked join token",
        )
    };
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some((id, secret)) = bearer.as_deref().and_then(|b| b.split_once('.')) else {
        return Err(unauthorized());
    };
    let body = read_body(req).await?;
    // The store's lease deletes expired tokens; the recorded expiry is a second check for
    // tokens read just before their lease ran out.
    match ctx.backend.token(id).await {
        Ok(Some(r)) if secret_matches(secret, &r.secret_sha256) && !expired(&r) => Ok((r, body)),
        Ok(_) => Err(unauthorized()),
        // Not a strike: the token may well be good.
        Err(e) => Err(ctx.unavailable(peer, None, &e)),
    }
}

/// A master joining the control plane: a master token buys the cluster-wide keys, the shared
/// settings and the etcd members; the joiner does the rest itself (its own certificates, its
/// etcd learner), so nothing here can be left half-done.
async fn join_master<B>(ctx: &JoinContext, peer: IpAddr, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (record, body) = match authenticate(ctx, peer, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if record.role != Role::Master {
        warn!(%peer, token = %record.id, "refused a control-plane join with a worker token");
        // A strike: a worker token holder probing for CA keys is what the limit is for.
        return ctx.refuse(
            peer,
            StatusCode::FORBIDDEN,
            "this is a worker token, which cannot join a master; on a master, run `kubesup token create --role master`",
        );
    }
    let request: MasterJoinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(detail) => {
            let e = ServerError::Malformed {
                what: "master join",
                detail,
            };
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let Some(source) = &ctx.masters else {
        return error(
            StatusCode::NOT_FOUND,
            "this join API does not accept control-plane joins",
        );
    };
    let material = match ClusterMaterial::read(&source.pki) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(%peer, error = %crate::errors::chain(&e), "cannot read the cluster's key material for a master join");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this master cannot read its cluster keys; try another master",
            );
        }
    };
    let etcd_client_urls = match ctx.backend.etcd_client_urls().await {
        Ok(u) => u,
        Err(e) => return ctx.unavailable(peer, Some(&request.node_name), &e),
    };
    info!(
        %peer,
        master = %request.node_name,
        advertise = %request.advertise,
        token = %record.id,
        "handed the cluster keys to a joining master"
    );
    let answer = MasterJoinResponse {
        material,
        settings: source.settings.clone(),
        etcd_client_urls,
    };
    reply(
        StatusCode::OK,
        serde_json::to_string(&answer).unwrap_or_default(),
        "application/json",
    )
}

/// The refusal of a node name that joined with another key.
fn taken(node: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::CONFLICT,
        &format!(
            "node {node} already joined with another key; delete it (kubectl delete node) and restart the master with --force to let it rejoin"
        ),
    )
}

/// Renews the certificates of a node that joined: it authenticates with its current kubelet
/// client certificate, whose key must be the one recorded for it, and may ask only for its own
/// identity.
async fn renew<B>(
    ctx: &JoinContext,
    peer: IpAddr,
    client_cert: Option<&[u8]>,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let unauthorized = || {
        ctx.refuse(
            peer,
            StatusCode::UNAUTHORIZED,
            "renewal needs this node's current kubelet client certificate",
        )
    };
    let (name, pin) = match authenticate_node(ctx, peer, client_cert, "renewal").await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let (request, new_pin) = match parse_request(&body, "renewal") {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if request.node_name != name {
        warn!(%peer, node = %name, asked = %request.node_name, "refused a renewal for another node");
        return ctx.refuse(
            peer,
            StatusCode::FORBIDDEN,
            "a node can renew only its own certificates",
        );
    }
    let answer = match sign(ctx, &request) {
        Ok(a) => a,
        Err(e) => {
            warn!(%peer, node = %name, error = %crate::errors::chain(&e), "refused a CSR");
            return error(StatusCode::FORBIDDEN, &e.to_string());
        }
    };
    // The new key replaces the one this certificate holds, not one recorded since: of two
    // renewals with the same certificate, one wins and the other is refused as stale.
    match ctx.backend.claim_node(&name, Some(&pin), &new_pin).await {
        Ok(true) => {
            info!(%peer, node = %name, "node certificates renewed");
            json(&answer)
        }
        Ok(false) => {
            warn!(%peer, node = %name, "refused a renewal: the node's key was replaced meanwhile");
            unauthorized()
        }
        Err(e) => ctx.unavailable(peer, Some(&name), &e),
    }
}

/// The node a request comes from, by its current kubelet client certificate (verified against
/// the cluster CA by the handshake), and that key's pin. A certificate whose key was since
/// replaced (by a renewal, or a forced rejoin) is no longer the node's.
pub(super) async fn authenticate_node(
    ctx: &JoinContext,
    peer: IpAddr,
    client_cert: Option<&[u8]>,
    what: &'static str,
) -> Result<(String, String), Response<Full<Bytes>>> {
    let unauthorized = || {
        ctx.refuse(
            peer,
            StatusCode::UNAUTHORIZED,
            &format!("{what} needs this node's current kubelet client certificate"),
        )
    };
    let Some((name, pin)) = client_cert.and_then(node_of_client_cert) else {
        return Err(unauthorized());
    };
    match ctx.backend.node_key(&name).await {
        Ok(current) if current.as_deref() == Some(pin.as_str()) => Ok((name, pin)),
        Ok(_) => {
            warn!(%peer, node = %name, what, "refused: not the node's current key");
            Err(unauthorized())
        }
        Err(e) => Err(ctx.unavailable(peer, Some(&name), &e)),
    }
}

/// A node request and the pin of its kubelet client key (the node's identity across renewals
/// and rejoins).
fn parse_request(body: &[u8], what: &'static str) -> Result<(JoinRequest, String), ServerError> {
    let request: JoinRequest =
        serde_json::from_slice(body).map_err(|detail| ServerError::Malformed { what, detail })?;
    let pin = csr_key_pin(&request.kubelet_client_csr).ok_or(ServerError::UnreadableCsr)?;
    Ok((request, pin))
}

/// Reads a request body, bounded in size and time.
pub(super) async fn read_body<B>(req: Request<B>) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(
        REQUEST_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "request body too slow")),
        Ok(Err(_)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
        Ok(Ok(b)) => Ok(b.to_bytes()),
    }
}

/// Signs a node's CSRs under the node policy, and makes the answer it needs. Records nothing:
/// the caller claims the node name once this succeeded.
fn sign(ctx: &JoinContext, request: &JoinRequest) -> Result<JoinResponse, PolicyError> {
    let node = NodeIdentity {
        name: request.node_name.clone(),
        ips: request.node_ips.clone(),
    };
    let v = ctx.leaf_validity;
    let sign = |csr: &str, kind| sign_node_csr(&ctx.ca, csr, &node, kind, v);
    let client = sign(&request.kubelet_client_csr, NodeCertKind::KubeletClient)?;
    let serving = sign(&request.kubelet_serving_csr, NodeCertKind::KubeletServing)?;
    let proxy = sign(&request.kube_proxy_csr, NodeCertKind::KubeProxy)?;
    let flannel = match (&request.flannel_etcd_csr, &ctx.etcd_ca) {
        (Some(csr), Some(etcd_ca)) => Some((
            etcd_ca.cert_pem().to_string(),
            sign_node_csr(etcd_ca, csr, &node, NodeCertKind::FlannelEtcdClient, v)?,
        )),
        _ => None,
    };
    Ok(JoinResponse {
        ca: ctx.ca.cert_pem().to_string(),
        kubelet_client_cert: client,
        kubelet_serving_cert: serving,
        kube_proxy_cert: proxy,
        etcd_ca: flannel.as_ref().map(|(ca, _)| ca.clone()),
        flannel_etcd_cert: flannel.map(|(_, cert)| cert),
        cluster: ctx.cluster.clone(),
    })
}

fn json(answer: &JoinResponse) -> Response<Full<Bytes>> {
    reply(
        StatusCode::OK,
        serde_json::to_string(answer).unwrap_or_default(),
        "application/json",
    )
}

fn expired(r: &TokenRecord) -> bool {
    r.expires
        .as_deref()
        .and_then(|e| humantime::parse_rfc3339(e).ok())
        .is_some_and(|t| t <= std::time::SystemTime::now())
}

/// SHA-256 of the public key in a CSR: the node's identity across rejoins.
fn csr_key_pin(csr_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).ok()?;
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    Some(hex::encode(Sha256::digest(
        csr.certification_request_info.subject_pki.raw,
    )))
}

/// The node a verified client certificate names (`CN=system:node:NAME`, `O=system:nodes`, as
/// the join API issues kubelet client certificates) and the SHA-256 of its public key.
fn node_of_client_cert(der: &[u8]) -> Option<(String, String)> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .strip_prefix("system:node:")?
        .to_string();
    let in_nodes = subject
        .iter_organization()
        .any(|o| o.as_str() == Ok("system:nodes"));
    (in_nodes && !name.is_empty()).then(|| {
        let pin = hex::encode(Sha256::digest(cert.public_key().raw));
        (name, pin)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::MutexGuard;

    use super::*;
    use crate::join::store::{MemoryBackend, StoreOp};
    use crate::join::token::{Token, ca_pin};

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// A join API with the in-memory store and one valid token, called without a connection.
    struct Master {
        ctx: Arc<JoinContext>,
        token: Token,
        _dir: tempfile::TempDir,
    }

    fn master() -> Master {
        master_with(|_| None)
    }

    /// A master whose nodes fetch binaries as `binaries` (given the test's scratch dir) says.
    fn master_with(
        binaries: impl FnOnce(&std::path::Path) -> Option<crate::join::binaries::NodeBinaries>,
    ) -> Master {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::paths::Paths::new(dir.path().join("data"));
        let pki = crate::pki::Pki::new(&paths);
        pki.generate(&crate::pki::test_spec()).unwrap();
        let ca = pki.load_ca(crate::pki::CaKind::Cluster).unwrap();
        let token = Token::generate(&ca_pin(ca.cert_pem()).unwrap());
        let mut mem = MemoryBackend::default();
        mem.tokens.insert(
            token.id.clone(),
            TokenRecord {
                id: token.id.clone(),
                secret_sha256: token.secret_hash(),
                role: crate::model::Role::Worker,
                description: None,
                created: "2024-01-01T00:00:00Z".into(),
                expires: None,
            },
        );
        let cluster = ClusterInfo {
            api_servers: vec!["https://127.0.0.1:6443".into()],
            etcd_servers: vec!["https://127.0.0.1:2379".into()],
            cluster_dns: "10.3.0.10".into(),
            cluster_domain: "cluster.local".into(),
            pod_cidr: "10.2.0.0/16".into(),
            service_cidr: "10.3.0.0/24".into(),
            network: "none".into(),
            kube_version: "v1.20.2".into(),
            etcd_version: None,
            mirror: None,
            flannel_backend: "vxlan".into(),
        };
        let mut ctx = JoinContext::new(
            ca,
            cluster,
            Backend::Memory(Mutex::new(mem)),
            false,
            Duration::from_secs(3600),
        );
        ctx.binaries = binaries(dir.path());
        Master {
            ctx: Arc::new(ctx),
            token,
            _dir: dir,
        }
    }

    impl Master {
        fn memory(&self) -> MutexGuard<'_, MemoryBackend> {
            let Backend::Memory(m) = &self.ctx.backend else {
                panic!("not the memory store")
            };
            m.lock().unwrap()
        }

        fn fail(&self, ops: &[StoreOp]) {
            self.memory().failing = ops.iter().copied().collect();
        }

        fn recorded(&self, node: &str) -> Option<String> {
            self.memory().nodes.get(node).cloned()
        }

        async fn join(&self, request: &JoinRequest) -> (StatusCode, Bytes) {
            let bearer = self.token.expose();
            let bearer = bearer.split_once("::").unwrap().1;
            let req = Request::post("/v1/join")
                .header(hyper::header::AUTHORIZATION, format!("Bearer {bearer}"))
                .body(Full::new(Bytes::from(serde_json::to_vec(request).unwrap())))
                .unwrap();
            call(&self.ctx, None, req).await
        }

        async fn renew(&self, client_cert_pem: &str, request: &JoinRequest) -> (StatusCode, Bytes) {
            let der = rustls_pemfile::certs(&mut client_cert_pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
                .to_vec();
            let req = Request::post("/v1/renew")
                .body(Full::new(Bytes::from(serde_json::to_vec(request).unwrap())))
                .unwrap();
            call(&self.ctx, Some(der), req).await
        }
    }

    async fn call(
        ctx: &Arc<JoinContext>,
        client_cert: Option<Vec<u8>>,
        req: Request<Full<Bytes>>,
    ) -> (StatusCode, Bytes) {
        let Ok(resp) = handle(ctx.clone(), PEER, client_cert.map(Arc::new), req).await;
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    fn csr(key: &rcgen::KeyPair, cn: &str, org: Option<&str>, dns: Option<&str>) -> String {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if let Some(o) = org {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o);
        }
        if let Some(d) = dns {
            params.subject_alt_names = vec![rcgen::SanType::DnsName(d.try_into().unwrap())];
        }
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    /// A node's request with fresh keys, and the pin the store records for it.
    fn request(node: &str) -> (JoinRequest, String) {
        let key = || rcgen::KeyPair::generate().unwrap();
        let cn = format!("system:node:{node}");
        let client = csr(&key(), &cn, Some("system:nodes"), None);
        let pin = csr_key_pin(&client).unwrap();
        let request = JoinRequest {
            node_name: node.into(),
            node_ips: vec!["10.77.0.3".parse().unwrap()],
            kubelet_client_csr: client,
            kubelet_serving_csr: csr(&key(), &cn, Some("system:nodes"), Some(node)),
            kube_proxy_csr: csr(&key(), "system:kube-proxy", None, None),
            flannel_etcd_csr: None,
        };
        (request, pin)
    }

    fn error_of(body: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["error"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_store_that_fails_answers_503_records_nothing_and_strikes_nobody() {
        let m = master();
        // Wherever the outage starts: reading the token, the node's record, or claiming it.
        for op in [StoreOp::ReadToken, StoreOp::ReadNode, StoreOp::ClaimNode] {
            m.fail(&[op]);
            // More than the rate limit allows: none of these is a strike.
            for _ in 0..=MAX_FAILURES {
                let (status, body) = m.join(&request("w1").0).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{op:?}");
                assert_eq!(error_of(&body), STORE_UNAVAILABLE, "{op:?}");
            }
            assert_eq!(m.recorded("w1"), None, "{op:?}");
        }
        m.fail(&[]);
        let (ok, pin) = request("w1");
        let (status, body) = m.join(&ok).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(m.recorded("w1"), Some(pin));
    }

    #[tokio::test]
    async fn an_unreadable_node_record_does_not_let_another_key_take_the_name() {
        let m = master();
        let (first, pin) = request("w1");
        assert_eq!(m.join(&first).await.0, StatusCode::OK);
        // The defect this guards against: an etcd blip read as "never joined", and the
        // newcomer's key recorded over the node's.
        m.fail(&[StoreOp::ReadNode]);
        let (status, body) = m.join(&request("w1").0).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_of(&body), STORE_UNAVAILABLE);
        assert_eq!(m.recorded("w1").as_ref(), Some(&pin));
        // Once the store answers, the name is refused as taken, as ever.
        m.fail(&[]);
        let (status, body) = m.join(&request("w1").0).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(error_of(&body).contains("already joined with another key"));
        assert_eq!(m.recorded("w1"), Some(pin));
    }

    #[tokio::test]
    async fn a_renewal_fails_closed_too() {
        let m = master();
        let (first, pin) = request("w1");
        let (status, body) = m.join(&first).await;
        assert_eq!(status, StatusCode::OK);
        let joined: JoinResponse = serde_json::from_slice(&body).unwrap();
        for op in [StoreOp::ReadNode, StoreOp::ClaimNode] {
            m.fail(&[op]);
            for _ in 0..=MAX_FAILURES {
                let (status, body) = m.renew(&joined.kubelet_client_cert, &request("w1").0).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{op:?}");
                assert_eq!(error_of(&body), STORE_UNAVAILABLE, "{op:?}");
            }
            assert_eq!(m.recorded("w1").as_ref(), Some(&pin), "{op:?}");
        }
        m.fail(&[]);
        let (next, new_pin) = request("w1");
        let (status, _) = m.renew(&joined.kubelet_client_cert, &next).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(m.recorded("w1"), Some(new_pin));
    }

    #[tokio::test]
    async fn of_concurrent_joins_under_one_name_exactly_one_wins() {
        const JOINS: usize = 3;
        let m = Arc::new(master());
        // Every join reads the name as free and signs before any claims it: the race the
        // claim's compare-and-set must settle.
        m.memory().claims_meet = Some(Arc::new(tokio::sync::Barrier::new(JOINS)));
        let tasks: Vec<_> = (0..JOINS)
            .map(|_| {
                let m = m.clone();
                let (req, pin) = request("w1");
                tokio::spawn(async move {
                    let (status, body) = m.join(&req).await;
                    (status, body, pin)
                })
            })
            .collect();
        let results = tokio::time::timeout(Duration::from_secs(60), async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
        .await
        .expect("the joins finish within a minute");
        m.memory().claims_meet = None;
        let winners: Vec<_> = results
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for (status, body, _) in results.iter().filter(|(s, _, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::CONFLICT);
            assert!(error_of(body).contains("already joined with another key"));
        }
        assert_eq!(m.recorded("w1").as_ref(), Some(&winners[0].2));
    }

    fn der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// A master whose mirror (a directory) holds a kubelet and a kube-proxy of v1.20.2 with
    /// their published checksums; the contents, by name.
    fn master_with_a_mirror() -> (Master, Vec<(&'static str, Vec<u8>)>) {
        let files = vec![
            ("kubelet", b"#!/bin/sh\necho kubelet\n".to_vec()),
            ("kube-proxy", b"#!/bin/sh\necho kube-proxy\n".to_vec()),
        ];
        let f2 = files.clone();
        let m = master_with(move |scratch| {
            let rel = scratch.join("mirror/release/v1.20.2/bin/linux/amd64");
            std::fs::create_dir_all(&rel).unwrap();
            for (name, body) in &f2 {
                std::fs::write(rel.join(name), body).unwrap();
                let sum = hex::encode(Sha256::digest(body));
                std::fs::write(rel.join(format!("{name}.sha256")), sum).unwrap();
            }
            let paths = crate::paths::Paths::new(scratch.join("data"));
            let mut opts = crate::fetch::FetchOptions::new(paths);
            opts.mirror = Some(scratch.join("mirror").to_string_lossy().into_owned());
            opts.arch = "amd64".into();
            Some(crate::join::binaries::NodeBinaries::new(
                opts,
                crate::model::KubeVersion::parse("v1.20.2").unwrap(),
                crate::model::Network::None,
            ))
        });
        (m, files)
    }

    #[tokio::test]
    async fn a_joined_node_gets_its_binaries_listed_and_served_and_nobody_else_does() {
        let (m, files) = master_with_a_mirror();
        let (status, body) = m.join(&request("w1").0).await;
        assert_eq!(status, StatusCode::OK);
        let joined: JoinResponse = serde_json::from_slice(&body).unwrap();
        let cert = der(&joined.kubelet_client_cert);
        let ask = serde_json::json!({"arch": "amd64", "runtime": false}).to_string();
        let list_req = || Request::post("/v1/binaries").body(Full::new(Bytes::from(ask.clone())));

        let (status, body) = call(&m.ctx, Some(cert.clone()), list_req().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let list: crate::fetch::BinaryList = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (list.kube_version.as_str(), list.arch.as_str()),
            ("v1.20.2", "amd64")
        );
        let mut names: Vec<&str> = list.binaries.iter().map(|b| b.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["kube-proxy", "kubelet"]);
        for (name, content) in &files {
            let b = list.binaries.iter().find(|b| b.name == *name).unwrap();
            assert_eq!(b.sha256, hex::encode(Sha256::digest(content)), "{name}");
            let get = Request::get(format!("/v1/blobs/{}", b.sha256))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (status, body) = call(&m.ctx, Some(cert.clone()), get).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], &content[..], "{name}");
        }

        // No certificate, or a hash that is not one or not in the cache: nothing is served.
        let (status, _) = call(&m.ctx, None, list_req().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let sha = &list.binaries[0].sha256;
        for (cert, path, want) in [
            (None, format!("/v1/blobs/{sha}"), StatusCode::UNAUTHORIZED),
            (
                Some(cert.clone()),
                "/v1/blobs/../../etc/passwd".into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Some(cert.clone()),
                format!("/v1/blobs/{}", "0".repeat(64)),
                StatusCode::NOT_FOUND,
            ),
        ] {
            let get = Request::get(path.clone())
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (status, _) = call(&m.ctx, cert, get).await;
            assert_eq!(status, want, "{path}");
        }
    }

    #[tokio::test]
    async fn a_binary_the_master_cannot_verify_is_refused_with_its_name() {
        let (m, _) = master_with_a_mirror();
        let (_, body) = m.join(&request("w1").0).await;
        let joined: JoinResponse = serde_json::from_slice(&body).unwrap();
        // The published checksum no longer matches the file: the master refuses to list it.
        let mirror = m._dir.path().join("mirror/release/v1.20.2/bin/linux/amd64");
        std::fs::write(mirror.join("kube-proxy"), b"tampered").unwrap();
        let ask = serde_json::json!({"arch": "amd64", "runtime": false}).to_string();
        let req = Request::post("/v1/binaries")
            .body(Full::new(Bytes::from(ask)))
            .unwrap();
        let (status, body) = call(&m.ctx, Some(der(&joined.kubelet_client_cert)), req).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let e = error_of(&body);
        assert!(
            e.contains("kube-proxy") && e.contains("sha256 mismatch"),
            "{e}"
        );
    }
}
