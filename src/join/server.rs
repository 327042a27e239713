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
//! Security: secrets are compared in constant time against a stored hash; failed attempts are
//! rate-limited per source address; bodies are size- and time-limited; a node name that
//! already joined with another key is refused unless the master runs with `--force`; every
//! request is logged, never with a secret or a key.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::store::TokenRecord;
use super::token::secret_matches;
use crate::pki::{LoadedCa, NodeCertKind, NodeIdentity, sign_node_csr};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Failed attempts allowed per source address per window, before it is refused outright.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on the join port {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the join server certificate or key is unusable: {0}")]
    Tls(String),
}

/// What a node needs to run, besides its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub api_servers: Vec<String>,
    pub etcd_servers: Vec<String>,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub network: String,
    pub kube_version: String,
    pub etcd_version: Option<String>,
    pub mirror: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    pub kubelet_client_csr: String,
    pub kubelet_serving_csr: String,
    pub kube_proxy_csr: String,
    /// flanneld's etcd client CSR, when the cluster's network is flannel.
    #[serde(default)]
    pub flannel_etcd_csr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub ca: String,
    pub kubelet_client_cert: String,
    pub kubelet_serving_cert: String,
    pub kube_proxy_cert: String,
    /// The etcd CA and flanneld's etcd client cert, when a flannel CSR was sent.
    #[serde(default)]
    pub etcd_ca: Option<String>,
    #[serde(default)]
    pub flannel_etcd_cert: Option<String>,
    pub cluster: ClusterInfo,
}

/// Where tokens and joined nodes are kept: etcd on a master, memory in tests and benchmarks.
pub enum Backend {
    Etcd(Box<etcd_client::Client>),
    Memory(Mutex<MemoryBackend>),
}

#[derive(Default)]
pub struct MemoryBackend {
    pub tokens: HashMap<String, TokenRecord>,
    pub nodes: HashMap<String, String>,
}

const NODES: &str = "/kubesup/nodes/";

impl Backend {
    async fn token(&self, id: &str) -> Option<TokenRecord> {
        match self {
            Self::Etcd(c) => super::store::get(&mut c.clone(), id).await.ok().flatten(),
            Self::Memory(m) => m.lock().ok()?.tokens.get(id).cloned(),
        }
    }

    async fn node_key(&self, name: &str) -> Option<String> {
        match self {
            Self::Etcd(c) => {
                let resp = c.clone().get(format!("{NODES}{name}"), None).await.ok()?;
                resp.kvs()
                    .first()
                    .and_then(|kv| kv.value_str().ok().map(String::from))
            }
            Self::Memory(m) => m.lock().ok()?.nodes.get(name).cloned(),
        }
    }

    async fn set_node_key(&self, name: &str, pin: &str) -> bool {
        match self {
            Self::Etcd(c) => c
                .clone()
                .put(format!("{NODES}{name}"), pin, None)
                .await
                .is_ok(),
            Self::Memory(m) => m
                .lock()
                .map(|mut m| m.nodes.insert(name.to_string(), pin.to_string()))
                .is_ok(),
        }
    }
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
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
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
    fn refuse(&self, ip: IpAddr, status: StatusCode, message: &str) -> Response<Full<Bytes>> {
        if let Ok(mut f) = self.failures.lock() {
            let e = f.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= FAILURE_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
        error(status, message)
    }
}

/// TLS settings from the join-server certificate and key (PEM). A client may present a
/// certificate issued by `client_ca` (a node renewing with its kubelet client certificate);
/// none is needed for the CA bundle or for a join with a token.
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, ServerError> {
    let provider = provider();
    let cert = ServerCert::from_pem(cert_pem, key_pem, None, &provider)?;
    server_config(provider, client_ca_pem, cert)
}

/// Like [`tls_config`], from the certificate and key files, which are read again when the
/// certificate file changes: the master renews the join server's certificate in the
/// background, and the join API runs on through that.
pub fn tls_config_from_files(
    cert: &Path,
    key: &Path,
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, ServerError> {
    let provider = provider();
    let cert = ServerCert::from_files(cert, key, &provider)?;
    server_config(provider, client_ca_pem, cert)
}

/// Named rather than left to rustls' process-wide default: aws-lc-rs, the one the PKI signs
/// with (and the only one linked).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(e.to_string())
}

fn server_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    client_ca_pem: &[u8],
    cert: ServerCert,
) -> Result<rustls::ServerConfig, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut &client_ca_pem[..]) {
        roots.add(ca.map_err(tls_err)?).map_err(tls_err)?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(tls_err)?;
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(clients)
        .with_cert_resolver(Arc::new(cert)))
}

/// The join server's certificate and key; with `files`, re-read when the certificate file's
/// modification time changes.
#[derive(Debug)]
struct ServerCert {
    files: Option<(PathBuf, PathBuf)>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Arc<rustls::sign::CertifiedKey>)>,
}

impl ServerCert {
    fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        files: Option<(PathBuf, PathBuf)>,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, ServerError> {
        let key = certified_key(cert_pem, key_pem, provider)?;
        let modified = files.as_ref().and_then(|(c, _)| modified(c));
        Ok(Self {
            files,
            provider: provider.clone(),
            current: Mutex::new((modified, Arc::new(key))),
        })
    }

    fn from_files(
        cert: &Path,
        key: &Path,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, ServerError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| ServerError::Tls(format!("{}: {e}", p.display())))
        };
        Self::from_pem(
            &read(cert)?,
            &read(key)?,
            Some((cert.to_path_buf(), key.to_path_buf())),
            provider,
        )
    }

    /// Takes a renewed certificate once both files are readable and match; until then the
    /// one in use stays.
    fn reload_if_changed(&self) {
        let Some((cert, key)) = &self.files else {
            return;
        };
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        let now = modified(cert);
        if now.is_none() || now == current.0 {
            return;
        }
        let (Ok(c), Ok(k)) = (std::fs::read(cert), std::fs::read(key)) else {
            return;
        };
        match certified_key(&c, &k, &self.provider) {
            Ok(fresh) => {
                info!(cert = %cert.display(), "join API: serving the renewed certificate");
                *current = (now, Arc::new(fresh));
            }
            // Mid-renewal (key written, certificate not yet, or the reverse): next time.
            Err(e) => debug!(error = %e, "join API: the certificate files do not match yet"),
        }
    }
}

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.reload_if_changed();
        self.current.lock().ok().map(|c| c.1.clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A certificate chain and its key (PEM), checked to belong together.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, ServerError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(tls_err)?;
    if certs.is_empty() {
        return Err(ServerError::Tls(
            "no certificate in the certificate file".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(tls_err)?
        .ok_or_else(|| ServerError::Tls("no private key in the key file".into()))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(tls_err)?;
    let certified = rustls::sign::CertifiedKey::new(certs, key);
    certified.keys_match().map_err(tls_err)?;
    Ok(certified)
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
                warn!(error = %e, "join server accept failed");
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

fn reply(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        serde_json::json!({ "error": message }).to_string(),
        "application/json",
    )
}

async fn handle(
    ctx: Arc<JoinContext>,
    peer: IpAddr,
    client_cert: Option<Arc<Vec<u8>>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/ca") => reply(
            StatusCode::OK,
            ctx.ca.cert_pem().to_string(),
            "application/x-pem-file",
        ),
        // Failed attempts at either are counted together, per source address.
        (Method::POST, "/v1/join" | "/v1/renew") if ctx.limited(peer) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; wait a minute",
        ),
        (Method::POST, "/v1/join") => join(&ctx, peer, req).await,
        (Method::POST, "/v1/renew") => {
            renew(&ctx, peer, client_cert.as_deref().map(Vec::as_slice), req).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    info!(%peer, %method, path, status = resp.status().as_u16(), "join api request");
    Ok(resp)
}

async fn join(
    ctx: &JoinContext,
    peer: IpAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    // One message for every authentication failure, so nobody can probe which ids exist.
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
        return unauthorized();
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    // The store's lease deletes expired tokens; the recorded expiry is a second check for
    // tokens read just before their lease ran out.
    let record = match ctx.backend.token(id).await {
        Some(r) if secret_matches(secret, &r.secret_sha256) && !expired(&r) => r,
        _ => return unauthorized(),
    };
    let (request, key_pin) = match parse_request(&body, "join") {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let node = &request.node_name;
    match ctx.backend.node_key(node).await {
        Some(known) if known != key_pin && !ctx.force => {
            warn!(%peer, node = %node, token = %record.id, "refused: node name already joined with another key");
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "node {} already joined with another key; delete it (kubectl delete node) and restart the master with --force to let it rejoin",
                    node
                ),
            );
        }
        _ => {}
    }
    match issue(ctx, &request, &key_pin).await {
        Ok(resp) => {
            info!(%peer, node = %node, token = %record.id, "node joined");
            resp
        }
        Err((e, resp)) => {
            warn!(%peer, node = %node, token = %record.id, error = %e, "refused a CSR");
            resp
        }
    }
}

/// Renews the certificates of a node that joined: it authenticates with its current kubelet
/// client certificate, whose key must be the one recorded for it, and may ask only for its own
/// identity.
async fn renew(
    ctx: &JoinContext,
    peer: IpAddr,
    client_cert: Option<&[u8]>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let unauthorized = || {
        ctx.refuse(
            peer,
            StatusCode::UNAUTHORIZED,
            "renewal needs this node's current kubelet client certificate",
        )
    };
    let Some((name, pin)) = client_cert.and_then(node_of_client_cert) else {
        return unauthorized();
    };
    // A certificate whose key was since replaced (by a renewal, or a forced rejoin) is no
    // longer this node's.
    if ctx.backend.node_key(&name).await.as_deref() != Some(pin.as_str()) {
        warn!(%peer, node = %name, "refused a renewal: not the node's current key");
        return unauthorized();
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let (request, new_pin) = match parse_request(&body, "renewal") {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if request.node_name != name {
        warn!(%peer, node = %name, asked = %request.node_name, "refused a renewal for another node");
        return ctx.refuse(
            peer,
            StatusCode::FORBIDDEN,
            "a node can renew only its own certificates",
        );
    }
    match issue(ctx, &request, &new_pin).await {
        Ok(resp) => {
            info!(%peer, node = %name, "node certificates renewed");
            resp
        }
        Err((e, resp)) => {
            warn!(%peer, node = %name, error = %e, "refused a CSR");
            resp
        }
    }
}

/// A node request and the pin of its kubelet client key (the node's identity across renewals
/// and rejoins), or what is wrong with it.
fn parse_request(body: &[u8], what: &str) -> Result<(JoinRequest, String), String> {
    let request: JoinRequest =
        serde_json::from_slice(body).map_err(|e| format!("malformed {what} request: {e}"))?;
    let pin = csr_key_pin(&request.kubelet_client_csr)
        .ok_or_else(|| "the kubelet client CSR is unreadable".to_string())?;
    Ok((request, pin))
}

/// Reads a request body, bounded in size and time.
async fn read_body(req: Request<hyper::body::Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
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

/// Signs a node's CSRs under the node policy, records `key_pin` as its key, and answers what
/// it needs. The error carries the reason (for the log) and the response.
async fn issue(
    ctx: &JoinContext,
    request: &JoinRequest,
    key_pin: &str,
) -> Result<Response<Full<Bytes>>, (String, Response<Full<Bytes>>)> {
    let node = NodeIdentity {
        name: request.node_name.clone(),
        ips: request.node_ips.clone(),
    };
    let v = ctx.leaf_validity;
    let sign = |csr: &str, kind| sign_node_csr(&ctx.ca, csr, &node, kind, v);
    let signed = (|| {
        Ok::<_, crate::pki::PolicyError>((
            sign(&request.kubelet_client_csr, NodeCertKind::KubeletClient)?,
            sign(&request.kubelet_serving_csr, NodeCertKind::KubeletServing)?,
            sign(&request.kube_proxy_csr, NodeCertKind::KubeProxy)?,
        ))
    })();
    let flannel = match (&request.flannel_etcd_csr, &ctx.etcd_ca) {
        (Some(csr), Some(etcd_ca)) => Some(
            sign_node_csr(etcd_ca, csr, &node, NodeCertKind::FlannelEtcdClient, v)
                .map(|cert| (etcd_ca.cert_pem().to_string(), cert)),
        ),
        _ => None,
    }
    .transpose();
    let ((client, serving, proxy), flannel) = signed
        .and_then(|s| flannel.map(|f| (s, f)))
        .map_err(|e| (e.to_string(), error(StatusCode::FORBIDDEN, &e.to_string())))?;
    if !ctx.backend.set_node_key(&node.name, key_pin).await {
        let message = "cannot record the node; retry";
        return Err((
            message.to_string(),
            error(StatusCode::SERVICE_UNAVAILABLE, message),
        ));
    }
    let resp = JoinResponse {
        ca: ctx.ca.cert_pem().to_string(),
        kubelet_client_cert: client,
        kubelet_serving_cert: serving,
        kube_proxy_cert: proxy,
        etcd_ca: flannel.as_ref().map(|(ca, _)| ca.clone()),
        flannel_etcd_cert: flannel.map(|(_, cert)| cert),
        cluster: ctx.cluster.clone(),
    };
    Ok(reply(
        StatusCode::OK,
        serde_json::to_string(&resp).unwrap_or_default(),
        "application/json",
    ))
}

/// Serves the join API on a master for as long as the task runs: the cluster CA signs node
/// certificates, tokens are read from the master's etcd, and the server listens on the
/// advertise address only.
pub async fn serve_on_master(
    cfg: crate::config::Config,
    advertise: IpAddr,
    manifest: crate::fetch::ReleaseManifest,
    force: bool,
) {
    let pki_paths = cfg.paths.pki();
    let pki = crate::pki::Pki::new(&cfg.paths);
    let load = || -> Result<_, String> {
        let ca = pki
            .load_ca(crate::pki::CaKind::Cluster)
            .map_err(|e| e.to_string())?;
        let etcd_ca = match cfg.network {
            crate::model::Network::Flannel => Some(
                pki.load_ca(crate::pki::CaKind::Etcd)
                    .map_err(|e| e.to_string())?,
            ),
            crate::model::Network::None => None,
        };
        let pair = pki_paths.join_server();
        let tls = tls_config_from_files(&pair.cert, &pair.key, ca.cert_pem().as_bytes())
            .map_err(|e| e.to_string())?;
        Ok((ca, etcd_ca, tls))
    };
    let (ca, etcd_ca, tls) = match load() {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "the join API cannot start; workers cannot join");
            return;
        }
    };
    let client_pair = pki_paths.apiserver_etcd_client();
    let etcd_tls = crate::etcd::EtcdTls {
        ca: pki_paths.etcd_ca().cert,
        cert: client_pair.cert,
        key: client_pair.key,
    };
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    // etcd was ready a moment ago; a restart of it in between is retried, boundedly per
    // attempt, for as long as kubesup runs.
    let mut delay = Duration::from_millis(200);
    let etcd = loop {
        match crate::etcd::connect(&endpoint, &etcd_tls).await {
            Ok(c) => break c,
            Err(e) => {
                warn!(error = %e, "join API: cannot reach etcd yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let cluster = ClusterInfo {
        api_servers: vec![crate::components::https_url(advertise, cfg.api_port)],
        etcd_servers: vec![crate::etcd::endpoint(advertise, cfg.ports.etcd_client)],
        cluster_dns: cfg.cluster_dns.to_string(),
        cluster_domain: cfg.cluster_domain.clone(),
        pod_cidr: cfg.pod_cidr.to_string(),
        service_cidr: cfg.service_cidr.to_string(),
        network: cfg.network.to_string(),
        kube_version: cfg.kube_version.to_string(),
        etcd_version: Some(manifest.etcd_version.clone()),
        mirror: cfg.mirror.clone(),
    };
    let mut ctx = JoinContext::new(
        ca,
        cluster,
        Backend::Etcd(Box::new(etcd)),
        force,
        cfg.pki.leaf_validity,
    );
    ctx.etcd_ca = etcd_ca;
    let addr = SocketAddr::new(advertise, cfg.join_port);
    let listener = match bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the join API cannot start; workers cannot join");
            return;
        }
    };
    info!(%addr, force, "join API listening");
    serve(listener, tls, Arc::new(ctx)).await;
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
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn serving(cert: &ServerCert) -> Vec<u8> {
        cert.reload_if_changed();
        cert.current.lock().unwrap().1.cert[0].to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_served_once_both_files_match() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let sc = ServerCert::from_files(&cert, &key, &provider()).unwrap();
        let first = serving(&sc);
        assert_eq!(serving(&sc), first, "unchanged files: same certificate");

        // Renewal half done: a new certificate beside the old key is not taken.
        let (cert_b, key_b) = self_signed(dir.path(), "b");
        std::fs::copy(&cert_b, &cert).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&cert)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(serving(&sc), first);

        // Both written: served from the next handshake on.
        std::fs::copy(&key_b, &key).unwrap();
        let renewed = serving(&sc);
        assert_ne!(renewed, first);
        assert_eq!(
            renewed,
            std::fs::read(&cert_b)
                .map(|pem| {
                    rustls_pemfile::certs(&mut &pem[..])
                        .next()
                        .unwrap()
                        .unwrap()
                        .to_vec()
                })
                .unwrap()
        );
    }
}
