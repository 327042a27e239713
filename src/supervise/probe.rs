//! Readiness and liveness probes: a TCP connect, a unix socket connect, or an HTTP(S) GET
//! (optionally with a client certificate), each with its own timeout.
//!
//! A probe only answers "ok or not"; what a failure means (not ready yet, or dead) is the state
//! machine's decision. Probes are built when a child starts, so a renewed certificate is picked
//! up by the next start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path} for the probe")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client for probe {url}")]
    Client { url: String, source: reqwest::Error },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    Tcp(SocketAddr),
    Unix(PathBuf),
    Http { url: String, tls: Option<TlsProbe> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsProbe {
    /// CA to verify the server with. `None` accepts any server certificate: only for
    /// loopback endpoints of components that serve a self-signed cert of their own.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM files).
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeSpec {
    pub probe: Probe,
    /// Poll interval until the child is first ready; short, so dependents start promptly.
    pub startup_period: Duration,
    /// Poll interval once ready (liveness).
    pub period: Duration,
    pub timeout: Duration,
}

impl ProbeSpec {
    pub fn new(probe: Probe) -> Self {
        Self {
            probe,
            startup_period: Duration::from_millis(100),
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A probe ready to run repeatedly.
pub enum Prober {
    Tcp(SocketAddr, Duration),
    Unix(PathBuf, Duration),
    Http(reqwest::Client, String),
}

impl Prober {
    pub fn build(spec: &ProbeSpec) -> Result<Self, ProbeError> {
        Ok(match &spec.probe {
            Probe::Tcp(addr) => Self::Tcp(*addr, spec.timeout),
            Probe::Unix(path) => Self::Unix(path.clone(), spec.timeout),
            Probe::Http { url, tls } => {
                let mut b = reqwest::Client::builder()
                    .timeout(spec.timeout)
                    .connect_timeout(spec.timeout)
                    .no_proxy()
                    .pool_max_idle_per_host(1);
                match tls {
                    // Plain HTTP. Without a root store of its own, reqwest would load the
                    // system's (~150 certificates) into every such client, held for as long
                    // as the probe runs, for a connection that never does TLS.
                    None => b = b.tls_certs_only(std::iter::empty()),
                    Some(tls) => {
                        b = match &tls.ca {
                            Some(ca) => {
                                let pem = read(ca)?;
                                let cert =
                                    reqwest::Certificate::from_pem(&pem).map_err(|source| {
                                        ProbeError::Client {
                                            url: url.clone(),
                                            source,
                                        }
                                    })?;
                                b.tls_certs_only([cert])
                            }
                            None => b.tls_danger_accept_invalid_certs(true),
                        };
                        if let Some((cert, key)) = &tls.client {
                            let mut pem = read(cert)?;
                            pem.extend(read(key)?);
                            let id = reqwest::Identity::from_pem(&pem).map_err(|source| {
                                ProbeError::Client {
                                    url: url.clone(),
                                    source,
                                }
                            })?;
                            b = b.identity(id);
                        }
                    }
                }
                let client = b.build().map_err(|source| ProbeError::Client {
                    url: url.clone(),
                    source,
                })?;
                Self::Http(client, url.clone())
            }
        })
    }

    pub async fn check(&self) -> bool {
        match self {
            Self::Tcp(addr, t) => matches!(
                tokio::time::timeout(*t, tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            ),
            Self::Unix(path, t) => matches!(
                tokio::time::timeout(*t, tokio::net::UnixStream::connect(path)).await,
                Ok(Ok(_))
            ),
            Self::Http(client, url) => match client.get(url).send().await {
                Ok(resp) if resp.status().is_success() => true,
                Ok(resp) => {
                    debug!(url, status = %resp.status(), "probe answered not ok");
                    false
                }
                Err(e) => {
                    debug!(url, error = %e, "probe failed");
                    false
                }
            },
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ProbeError> {
    std::fs::read(path).map_err(|source| ProbeError::Read {
        path: path.clone(),
        source,
    })
}
