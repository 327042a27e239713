//! kubesup's one HTTP client: HTTP/1.1 over hyper's connection API, TLS over tokio-rustls with
//! aws-lc-rs (the provider the PKI and the join server use). Downloads, probes, the Kubernetes
//! API client, etcd's v2 API and the join client all go through it.
//!
//! What a client trusts is chosen when it is built, and is never implicit ([`Trust`]):
//! - [`Trust::System`] (downloads from public hosts) reads the system's trust store only on the
//!   first https request, so a node whose mirror is a directory or an http server, or that only
//!   talks to its own cluster, never needs the `ca-certificates` package;
//! - [`Trust::Ca`] verifies against the given CAs only (the cluster's own);
//! - [`Trust::AnyCert`] accepts any certificate (still checking the handshake's signatures):
//!   only for loopback probes of components serving a self-signed certificate, and the join
//!   client's first fetch, whose answer the token's pin checks;
//! - [`Trust::PlainOnly`] refuses https altogether (plain-http probes): no root store is built.
//!
//! One connection per request, no pool: these clients make a request every few seconds at most,
//! and a pool would keep idle connections, their TLS state and a reaper task resident for the
//! life of the supervisor to save a handshake.
//!
//! Must not: use a proxy unless built with [`Builder::proxy_from_env`] (only downloads are: the
//! other clients talk to this cluster's own addresses); follow a redirect from https to http;
//! follow redirects unless asked to.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

/// The longest answer head a proxy may send to CONNECT.
const MAX_CONNECT_HEAD: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url:?} is not a usable URL: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot use the {what}")]
    Pem {
        what: &'static str,
        #[source]
        source: PemError,
    },
    #[error("cannot use the {what} for TLS")]
    TlsConfig {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "cannot verify {url}: no CA certificates were found on this system; install the ca-certificates package (or point SSL_CERT_FILE at a CA bundle), or fetch from a mirror (a directory or an http:// server)"
    )]
    NoSystemRoots { url: String },
    #[error("proxy {proxy} for {url}")]
    Proxy {
        url: String,
        proxy: String,
        #[source]
        source: ProxyError,
    },
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {url} took longer than {after:?}")]
    ConnectTimeout { url: String, after: Duration },
    #[error("TLS handshake with {url} failed")]
    Handshake {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("cannot read the answer of {url}")]
    Body {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} redirected more than {max} times")]
    TooManyRedirects { url: String, max: usize },
    #[error("{url} redirected to {location:?}, which kubesup does not follow: {reason}")]
    BadRedirect {
        url: String,
        location: String,
        reason: &'static str,
    },
    #[error("the answer of {url} is not the expected JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why a PEM given for TLS (a CA, a client certificate or key) is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("unreadable PEM")]
    Read(#[source] io::Error),
    #[error("no certificate in the PEM")]
    NoCertificate,
    #[error("no private key in the PEM")]
    NoKey,
}

/// Why a connection through a proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("not an http:// URL with a host")]
    NotHttp,
    #[error("only http:// proxies are supported")]
    Https,
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    #[error("cannot send CONNECT")]
    Send(#[source] io::Error),
    #[error("no answer to CONNECT")]
    NoAnswer(#[source] io::Error),
    #[error("its answer to CONNECT has no end")]
    Endless,
    #[error("CONNECT answered {0:?}")]
    Refused(String),
}

impl HttpError {
    /// Worth another attempt: the network or the server may do better next time. A certificate
    /// that does not verify will not verify on the next try either.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Handshake { source, .. } => !matches!(
                source
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>()),
                Some(
                    rustls::Error::InvalidCertificate(_)
                        | rustls::Error::NoCertificatesPresented
                        | rustls::Error::InvalidCertRevocationList(_)
                )
            ),
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Proxy { .. }
            | Self::Request { .. }
            | Self::Body { .. }
            | Self::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Whom a client's TLS connections trust.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Plain http only: an https URL is refused.
    PlainOnly,
    /// The system's trust store, read on the first https request.
    System,
    /// Only these CAs (PEM).
    Ca(Vec<u8>),
    /// Any server certificate; see the module header for the two places that may.
    AnyCert,
}

/// How a client is made; [`Client::builder`].
pub struct Builder {
    trust: Trust,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    redirects: usize,
    proxy: Option<Matcher>,
    user_agent: Option<&'static str>,
}

impl Builder {
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// A client certificate (PEM chain) and its key (PEM), presented to servers that ask.
    pub fn identity(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.identity = Some((cert_pem, key_pem));
        self
    }

    /// The limit on TCP connect, proxy tunnel and TLS handshake together.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The limit on a whole request, from sending it to the end of the answer's body.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Follow up to `max` redirects of GET requests (release downloads answer 302 to another
    /// host), never from https to http.
    pub fn follow_redirects(mut self, max: usize) -> Self {
        self.redirects = max;
        self
    }

    /// Use the proxies `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (or their lower
    /// case forms) name, read now. Only `http://` proxies are supported.
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = Some(Matcher::from_env());
        self
    }

    #[cfg(test)]
    fn proxy(mut self, m: Matcher) -> Self {
        self.proxy = Some(m);
        self
    }

    pub fn user_agent(mut self, ua: &'static str) -> Self {
        self.user_agent = Some(ua);
        self
    }

    pub fn build(self) -> Result<Client, HttpError> {
        let identity = self
            .identity
            .map(|(cert, key)| parse_identity(&cert, &key))
            .transpose()?;
        let tls = match self.trust {
            Trust::PlainOnly => Tls::PlainOnly,
            Trust::System => Tls::System(OnceCell::new()),
            Trust::Ca(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut &pem[..]) {
                    let cert = cert.map_err(|e| HttpError::Pem {
                        what: "CA certificate",
                        source: PemError::Read(e),
                    })?;
                    roots.add(cert).map_err(|source| HttpError::TlsConfig {
                        what: "CA certificate",
                        source,
                    })?;
                }
                if roots.is_empty() {
                    return Err(HttpError::Pem {
                        what: "CA certificate",
                        source: PemError::NoCertificate,
                    });
                }
                Tls::Fixed(Arc::new(tls_config(Verify::Roots(roots), identity)?))
            }
            Trust::AnyCert => Tls::Fixed(Arc::new(tls_config(Verify::Any, identity)?)),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                tls,
                proxy: self.proxy,
                connect_timeout: self.connect_timeout,
                timeout: self.timeout,
                redirects: self.redirects,
                user_agent: self.user_agent.map(HeaderValue::from_static),
            }),
        })
    }
}

/// A client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    tls: Tls,
    proxy: Option<Matcher>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    redirects: usize,
    user_agent: Option<HeaderValue>,
}

enum Tls {
    PlainOnly,
    /// Filled on the first https request; stays empty if there is none.
    System(OnceCell<Arc<ClientConfig>>),
    Fixed(Arc<ClientConfig>),
}

impl Client {
    /// Defaults: [`Trust::PlainOnly`], a 10 s connect timeout, no overall timeout, no
    /// redirects, no proxy.
    pub fn builder() -> Builder {
        Builder {
            trust: Trust::PlainOnly,
            identity: None,
            connect_timeout: Duration::from_secs(10),
            timeout: None,
            redirects: 0,
            proxy: None,
            user_agent: None,
        }
    }

    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::PUT, url)
    }

    pub fn patch(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::PATCH, url)
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            url: url.to_string(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            error: None,
        }
    }

    /// The TLS configuration for `url`, reading the system store the first time it is needed.
    async fn tls_for(&self, url: &str) -> Result<Arc<ClientConfig>, HttpError> {
        match &self.inner.tls {
            Tls::PlainOnly => Err(HttpError::BadUrl {
                url: url.to_string(),
                reason: "this client speaks plain http only",
            }),
            Tls::Fixed(c) => Ok(c.clone()),
            Tls::System(cell) => cell
                .get_or_try_init(|| async { system_config(url).map(Arc::new) })
                .await
                .cloned(),
        }
    }

    /// Sends one request and follows redirects as the client was built to.
    async fn execute(
        &self,
        method: Method,
        url: String,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, HttpError> {
        let first = url.clone();
        let mut url = url;
        let mut uri = parse_url(&url)?;
        let mut hops = 0;
        loop {
            let resp = self
                .once(method.clone(), &uri, &url, &headers, body.clone())
                .await?;
            let redirect = self.inner.redirects > 0
                && (method == Method::GET || method == Method::HEAD)
                && matches!(resp.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if !redirect {
                return Ok(resp);
            }
            if hops == self.inner.redirects {
                return Err(HttpError::TooManyRedirects {
                    url: first,
                    max: self.inner.redirects,
                });
            }
            hops += 1;
            let location = resp
                .headers
                .get(header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let bad = |reason| HttpError::BadRedirect {
                url: url.clone(),
                location: location.clone(),
                reason,
            };
            let next = resolve_location(&uri, &location).ok_or_else(|| bad("not a URL"))?;
            if uri.scheme_str() == Some("https") && next.scheme_str() != Some("https") {
                return Err(bad("it leaves https"));
            }
            if next.authority() != uri.authority() {
                // Credentials meant for one host are not sent to another.
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::COOKIE);
            }
            debug!(from = %url, to = %next, "following a redirect");
            url = next.to_string();
            uri = next;
        }
    }

    /// One request on a new connection.
    async fn once(
        &self,
        method: Method,
        uri: &Uri,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, HttpError> {
        let target = Target::of(uri, url)?;
        // Before connecting: a missing trust store is the error to report, not a refused port.
        let tls = if target.https {
            Some(self.tls_for(url).await?)
        } else {
            None
        };
        let proxy = self.inner.proxy.as_ref().and_then(|m| m.intercept(uri));
        let after = self.inner.connect_timeout;
        let stream = timeout(after, self.connect(&target, tls, proxy.as_ref(), url))
            .await
            .map_err(|_| HttpError::ConnectTimeout {
                url: url.to_string(),
                after,
            })??;
        let request_err = |source| HttpError::Request {
            url: url.to_string(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(request_err)?;
        // The connection's own errors reach the caller through the response or its body.
        tokio::spawn(async move {
            let _ = conn.await;
        });

        // Plain http through a proxy is forwarded: the request line carries the whole URL.
        let forwarded = proxy.is_some() && !target.https;
        let request_uri = if forwarded {
            uri.clone()
        } else {
            uri.path_and_query()
                .map_or("/", |p| p.as_str())
                .parse()
                .map_err(|_| HttpError::BadUrl {
                    url: url.to_string(),
                    reason: "bad path",
                })?
        };
        let mut req = hyper::Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = request_uri;
        *req.headers_mut() = headers.clone();
        let h = req.headers_mut();
        h.insert(header::HOST, target.host_header(url)?);
        if let Some(ua) = &self.inner.user_agent {
            h.entry(header::USER_AGENT).or_insert_with(|| ua.clone());
        }
        h.entry(header::ACCEPT)
            .or_insert_with(|| HeaderValue::from_static("*/*"));
        if forwarded && let Some(auth) = proxy.as_ref().and_then(Intercept::basic_auth) {
            h.insert(header::PROXY_AUTHORIZATION, auth.clone());
        }
        let resp = sender.send_request(req).await.map_err(request_err)?;
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            url: url.to_string(),
            deadline: None,
        })
    }

    async fn connect(
        &self,
        target: &Target,
        tls: Option<Arc<ClientConfig>>,
        proxy: Option<&Intercept>,
        url: &str,
    ) -> Result<Stream, HttpError> {
        let tcp = match proxy {
            None => tcp(&target.host, target.port)
                .await
                .map_err(|source| HttpError::Connect {
                    url: url.to_string(),
                    source,
                })?,
            Some(p) => via_proxy(p, target, url).await?,
        };
        let Some(config) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let name = ServerName::try_from(target.host.clone()).map_err(|_| HttpError::BadUrl {
            url: url.to_string(),
            reason: "the host is not a valid DNS name or IP address",
        })?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| HttpError::Handshake {
                url: url.to_string(),
                source,
            })?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// One request being put together; [`RequestBuilder::send`] sends it.
pub struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    error: Option<HttpError>,
}

impl RequestBuilder<'_> {
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                self.headers.insert(name, v);
            }
            Err(_) => {
                self.error.get_or_insert(HttpError::BadUrl {
                    url: self.url.clone(),
                    reason: "a header value has characters HTTP does not allow",
                });
            }
        }
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        let value = format!("Bearer {token}");
        let mut this = self.header(header::AUTHORIZATION, &value);
        if let Some(v) = this.headers.get_mut(header::AUTHORIZATION) {
            v.set_sensitive(true);
        }
        this
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.header(header::CONTENT_TYPE, content_type)
    }

    pub fn json<T: serde::Serialize>(self, value: &T) -> Self {
        // Serializing kubesup's own request types cannot fail (no maps with non-string keys).
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.body("application/json", body)
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.body("application/x-www-form-urlencoded", body)
    }

    pub async fn send(self) -> Result<Response, HttpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (client, url) = (self.client, self.url.clone());
        let run = client.execute(self.method, self.url, self.headers, self.body);
        let Some(after) = client.inner.timeout else {
            return run.await;
        };
        let deadline = Instant::now() + after;
        let mut resp = timeout_at(deadline, run)
            .await
            .map_err(|_| HttpError::Timeout { url, after })??;
        resp.deadline = Some((deadline, after));
        Ok(resp)
    }
}

/// An answer whose body has not been read yet.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    /// After redirects.
    url: String,
    /// The client's overall timeout, which the body must be read within too.
    deadline: Option<(Instant, Duration)>,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The URL that answered, after redirects.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body's length as the server announced it.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame =
                match self.deadline {
                    Some((deadline, after)) => timeout_at(deadline, self.body.frame())
                        .await
                        .map_err(|_| HttpError::Timeout {
                            url: self.url.clone(),
                            after,
                        })?,
                    None => self.body.frame().await,
                };
            match frame {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(HttpError::Body {
                        url: self.url.clone(),
                        source,
                    });
                }
                // Trailers and empty frames carry nothing a caller reads.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>, HttpError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, HttpError> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, HttpError> {
        let url = self.url.clone();
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|source| HttpError::Json { url, source })
    }
}

/// Parses an absolute `http://` or `https://` URL with a host.
pub fn parse_url(url: &str) -> Result<Uri, HttpError> {
    let bad = |reason| HttpError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("only http:// and https:// URLs are supported")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    Ok(uri)
}

/// The URL's port, or its scheme's (443, 80); `None` for another scheme without a port.
pub fn port_or_known_default(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where a `Location` header points, relative to the URL that answered.
fn resolve_location(base: &Uri, location: &str) -> Option<Uri> {
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let absolute = if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    parse_url(&absolute).ok()
}

/// Where to connect for a URL.
struct Target {
    https: bool,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    explicit_port: bool,
}

impl Target {
    fn of(uri: &Uri, url: &str) -> Result<Self, HttpError> {
        let bad = |reason| HttpError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("only http:// and https:// URLs are supported")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("the URL has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Self {
            https,
            host,
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            explicit_port: uri.port_u16().is_some(),
        })
    }

    /// The host as a URL writes it: an IPv6 literal in brackets.
    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host[:port]` for the Host header, without any user info of the URL.
    fn authority(&self) -> String {
        if self.explicit_port {
            format!("{}:{}", self.bracketed_host(), self.port)
        } else {
            self.bracketed_host()
        }
    }

    fn host_header(&self, url: &str) -> Result<HeaderValue, HttpError> {
        HeaderValue::from_str(&self.authority()).map_err(|_| HttpError::BadUrl {
            url: url.to_string(),
            reason: "the host has characters HTTP does not allow",
        })
    }
}

async fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect((host, port)).await?;
    // A request goes out in one or two writes; Nagle would hold the second one back for the
    // server's delayed ACK.
    s.set_nodelay(true)?;
    Ok(s)
}

/// A TCP connection through `proxy` that reaches `target`: the proxy itself for plain http
/// (the request is then forwarded), a CONNECT tunnel for https.
async fn via_proxy(proxy: &Intercept, target: &Target, url: &str) -> Result<TcpStream, HttpError> {
    let err = |source: ProxyError| HttpError::Proxy {
        url: url.to_string(),
        proxy: proxy.uri().to_string(),
        source,
    };
    let p =
        Target::of(proxy.uri(), &proxy.uri().to_string()).map_err(|_| err(ProxyError::NotHttp))?;
    if p.https {
        return Err(err(ProxyError::Https));
    }
    let mut s = tcp(&p.host, p.port)
        .await
        .map_err(|e| err(ProxyError::Connect(e)))?;
    if !target.https {
        return Ok(s);
    }
    let authority = format!("{}:{}", target.bracketed_host(), target.port);
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.basic_auth().and_then(|a| a.to_str().ok()) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| err(ProxyError::Send(e)))?;
    // Byte by byte up to the blank line: what follows the head is the tunnel's, and belongs
    // to the TLS handshake.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_HEAD {
            return Err(err(ProxyError::Endless));
        }
        let b = s
            .read_u8()
            .await
            .map_err(|e| err(ProxyError::NoAnswer(e)))?;
        answer.push(b);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(s),
        _ => Err(err(ProxyError::Refused(status_line.to_string()))),
    }
}

/// A connection, with or without TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Named rather than left to rustls' process-wide default, which depends on which crates in
/// the build enable which provider.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

enum Verify {
    Roots(RootCertStore),
    Any,
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn parse_identity(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, HttpError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpError::Pem {
            what: "client certificate",
            source: PemError::Read(e),
        })?;
    if certs.is_empty() {
        return Err(HttpError::Pem {
            what: "client certificate",
            source: PemError::NoCertificate,
        });
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| HttpError::Pem {
            what: "client key",
            source: PemError::Read(e),
        })?
        .ok_or_else(|| HttpError::Pem {
            what: "client key",
            source: PemError::NoKey,
        })?;
    Ok((certs, key))
}

fn tls_config(verify: Verify, identity: Option<Identity>) -> Result<ClientConfig, HttpError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| HttpError::TlsConfig {
            what: "TLS versions",
            source,
        })?;
    let builder = match verify {
        Verify::Roots(roots) => builder.with_root_certificates(roots),
        Verify::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider))),
    };
    let mut config = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|source| HttpError::TlsConfig {
                what: "client certificate",
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The system's trust store, as rustls-native-certs finds it (`SSL_CERT_FILE`, `SSL_CERT_DIR`,
/// then the distribution's bundle). Read once per client, at its first https request; a
/// blocking read of one file of a few hundred kB, once, is not worth a thread hop.
fn system_config(url: &str) -> Result<ClientConfig, HttpError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        debug!(error = %crate::errors::chain(e), "skipped part of the system trust store");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(HttpError::NoSystemRoots {
            url: url.to_string(),
        });
    }
    debug!(roots = added, ignored, "read the system trust store");
    tls_config(Verify::Roots(roots), None)
}

/// Accepts any server certificate, but still checks that the server holds its key (the
/// handshake signature), so the connection is at least to whoever owns that certificate.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    type Handler =
        Arc<dyn Fn(&hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> + Send + Sync>;

    /// Every test's deadline: a hang is a failure.
    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("test deadline passed")
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> hyper::Response<Full<Bytes>> {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in headers {
            r.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    /// An HTTP(S) server on 127.0.0.1:0 answering with `handler`; it lives as long as the
    /// test's runtime.
    async fn serve(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (tls, handler) = (tls.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let r = handler(&req);
                        async move { Ok::<_, Infallible>(r) }
                    });
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(sock), svc)
                                .await;
                        }
                        Some(cfg) => {
                            if let Ok(s) = TlsAcceptor::from(cfg).accept(sock).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(s), svc)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A CA, and a server certificate for 127.0.0.1 it issued.
    struct Pki {
        ca_pem: String,
        server: Arc<rustls::ServerConfig>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn pki(client_auth: bool) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let provider = provider();
        let b = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = if client_auth {
            let mut roots = RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        } else {
            b.with_no_client_auth()
        };
        let server = b
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Pki {
            ca_pem,
            server: Arc::new(server),
            issuer,
        }
    }

    fn ok() -> Handler {
        Arc::new(|_| answer(200, &[], "ok"))
    }

    #[tokio::test]
    async fn redirects_are_followed_to_another_host_with_the_range_kept() {
        bounded(async {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s2 = seen.clone();
            let storage = serve(
                None,
                Arc::new(move |req| {
                    let range = req.headers().get(header::RANGE).cloned();
                    s2.lock().unwrap().push((req.uri().to_string(), range));
                    answer(206, &[], "the object")
                }),
            )
            .await;
            let target = format!("http://{storage}/objects/1?sig=x");
            let release = serve(
                None,
                Arc::new(move |_| answer(302, &[("location", &target)], "")),
            )
            .await;
            let c = Client::builder().follow_redirects(10).build().unwrap();
            let resp = c
                .get(&format!("http://{release}/download/kubelet"))
                .header(header::RANGE, "bytes=5-")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 206);
            assert!(resp.url().starts_with(&format!("http://{storage}/")));
            assert_eq!(resp.text().await.unwrap(), "the object");
            {
                let seen = seen.lock().unwrap();
                assert_eq!(seen.len(), 1);
                assert_eq!(seen[0].0, "/objects/1?sig=x");
                assert_eq!(seen[0].1.as_ref().unwrap(), "bytes=5-");
            }

            // Without follow_redirects, the 302 is the answer.
            let plain = Client::builder().build().unwrap();
            let resp = plain
                .get(&format!("http://{release}/x"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 302);
        })
        .await;
    }

    #[tokio::test]
    async fn a_redirect_loop_ends_after_the_limit() {
        bounded(async {
            let hits = Arc::new(Mutex::new(0));
            let h2 = hits.clone();
            let addr = serve(
                None,
                Arc::new(move |_| {
                    *h2.lock().unwrap() += 1;
                    answer(301, &[("location", "/again")], "")
                }),
            )
            .await;
            let c = Client::builder().follow_redirects(3).build().unwrap();
            let err = c
                .get(&format!("http://{addr}/start"))
                .send()
                .await
                .err()
                .unwrap();
            assert!(
                matches!(err, HttpError::TooManyRedirects { max: 3, .. }),
                "{err:?}"
            );
            assert!(!err.is_transient());
            assert_eq!(*hits.lock().unwrap(), 4);
        })
        .await;
    }

    #[tokio::test]
    async fn a_redirect_from_https_to_http_is_refused() {
        bounded(async {
            let plain = serve(None, ok()).await;
            let to = format!("http://{plain}/x");
            let p = pki(false);
            let secure = serve(
                Some(p.server.clone()),
                Arc::new(move |_| answer(302, &[("location", &to)], "")),
            )
            .await;
            let c = Client::builder()
                .trust(Trust::Ca(p.ca_pem.into_bytes()))
                .follow_redirects(10)
                .build()
                .unwrap();
            let err = c
                .get(&format!("https://{secure}/x"))
                .send()
                .await
                .err()
                .unwrap();
            assert!(matches!(err, HttpError::BadRedirect { .. }), "{err:?}");
            assert!(err.to_string().contains("leaves https"), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn a_pinned_ca_verifies_and_any_other_is_refused() {
        bounded(async {
            let p = pki(false);
            let addr = serve(Some(p.server.clone()), ok()).await;
            let url = format!("https://{addr}/healthz");
            let good = Client::builder()
                .trust(Trust::Ca(p.ca_pem.clone().into_bytes()))
                .build()
                .unwrap();
            let resp = good.get(&url).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), "ok");

            let other = pki(false);
            let wrong = Client::builder()
                .trust(Trust::Ca(other.ca_pem.into_bytes()))
                .build()
                .unwrap();
            let err = wrong.get(&url).send().await.err().unwrap();
            assert!(matches!(err, HttpError::Handshake { .. }), "{err:?}");
            assert!(!err.is_transient(), "a bad certificate is not transient");

            let any = Client::builder().trust(Trust::AnyCert).build().unwrap();
            assert_eq!(any.get(&url).send().await.unwrap().status(), 200);

            let plain = Client::builder().build().unwrap();
            let err = plain.get(&url).send().await.err().unwrap();
            assert!(matches!(err, HttpError::BadUrl { .. }), "{err:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented() {
        bounded(async {
            let p = pki(true);
            let addr = serve(Some(p.server.clone()), ok()).await;
            let url = format!("https://{addr}/");
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["client".to_string()])
                .unwrap()
                .signed_by(&key, &p.issuer)
                .unwrap();
            let with = Client::builder()
                .trust(Trust::Ca(p.ca_pem.clone().into_bytes()))
                .identity(cert.pem().into_bytes(), key.serialize_pem().into_bytes())
                .build()
                .unwrap();
            assert_eq!(with.get(&url).send().await.unwrap().status(), 200);
            let without = Client::builder()
                .trust(Trust::Ca(p.ca_pem.into_bytes()))
                .build()
                .unwrap();
            assert!(without.get(&url).send().await.is_err());
        })
        .await;
    }

    #[tokio::test]
    async fn the_overall_timeout_covers_a_stalled_body() {
        bounded(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Headers and half the body, then silence (the socket stays open until the test
            // ends).
            let server = tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf_")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
            let c = Client::builder()
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap();
            let started = std::time::Instant::now();
            let resp = c.get(&format!("http://{addr}/")).send().await.unwrap();
            let err = resp.bytes().await.err().unwrap();
            assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
            server.abort();
        })
        .await;
    }

    #[tokio::test]
    async fn proxies_forward_http_and_tunnel_https() {
        bounded(async {
            let p = pki(false);
            let origin_tls = serve(Some(p.server.clone()), ok()).await;
            // A forward proxy for http: it sees the whole URL in the request line.
            let forwarded = Arc::new(Mutex::new(Vec::new()));
            let f2 = forwarded.clone();
            let http_proxy = serve(
                None,
                Arc::new(move |req| {
                    f2.lock().unwrap().push(req.uri().to_string());
                    answer(200, &[], "via proxy")
                }),
            )
            .await;
            // A CONNECT proxy for https: answers 200 and splices to the origin.
            let tunnels = Arc::new(Mutex::new(Vec::new()));
            let t2 = tunnels.clone();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let connect_proxy = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    let t2 = t2.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
                            let Ok(b) = sock.read_u8().await else { return };
                            head.push(b);
                        }
                        let line = String::from_utf8_lossy(&head)
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        t2.lock().unwrap().push(line.clone());
                        let target = line
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or_default()
                            .to_string();
                        let Ok(mut up) = TcpStream::connect(target).await else {
                            return;
                        };
                        if sock
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .is_ok()
                        {
                            let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
                        }
                    });
                }
            });
            let m = Matcher::builder()
                .http(format!("http://{http_proxy}"))
                .https(format!("http://{connect_proxy}"))
                .build();
            let c = Client::builder()
                .trust(Trust::Ca(p.ca_pem.into_bytes()))
                .proxy(m)
                .build()
                .unwrap();
            let resp = c.get("http://example.invalid/file").send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), "via proxy");
            assert_eq!(
                forwarded.lock().unwrap().as_slice(),
                ["http://example.invalid/file"]
            );
            let resp = c
                .get(&format!("https://{origin_tls}/x"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.text().await.unwrap(), "ok");
            assert_eq!(
                tunnels.lock().unwrap().as_slice(),
                [format!("CONNECT {origin_tls} HTTP/1.1")]
            );
        })
        .await;
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base: Uri = "https://github.com/etcd-io/etcd/releases/download/v1/x.tar.gz"
            .parse()
            .unwrap();
        let r = |l| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(
            r("https://objects.example/a?b=c").as_deref(),
            Some("https://objects.example/a?b=c")
        );
        assert_eq!(
            r("//cdn.example/a").as_deref(),
            Some("https://cdn.example/a")
        );
        assert_eq!(r("/a/b").as_deref(), Some("https://github.com/a/b"));
        assert_eq!(
            r("y.tar.gz").as_deref(),
            Some("https://github.com/etcd-io/etcd/releases/download/v1/y.tar.gz")
        );
        assert_eq!(r("ftp://x/").as_deref(), None);
    }

    #[test]
    fn forms_encode_as_browsers_do() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            form_encode("{\"Network\":\"10.2.0.0/16\"}"),
            "%7B%22Network%22%3A%2210.2.0.0%2F16%22%7D"
        );
    }
}
