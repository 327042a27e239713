//! Readiness and liveness probes: a TCP connect, a unix socket connect, or an HTTP(S) GET
//! (optionally with a client certificate), each with its own timeout.
//!
//! A probe only answers "ok or not"; what a failure means (not ready yet, or dead) is the state
//! machine's decision. Probes are built when a child starts, so a renewed certificate is picked
//! up by the next start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::debug;

use crate::http::{HttpError, Trust};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path} for the probe")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client for probe {url}")]
    Client {
        url: String,
        #[source]
        source: crate::http::HttpError,
    },
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
    Http(crate::http::Client, String),
}

impl Prober {
    pub fn build(spec: &ProbeSpec) -> Result<Self, ProbeError> {
        Ok(match &spec.probe {
            Probe::Tcp(addr) => Self::Tcp(*addr, spec.timeout),
            Probe::Unix(path) => Self::Unix(path.clone(), spec.timeout),
            Probe::Http { url, tls } => {
                // No proxy: probes go to this node's own components.
                let mut b = crate::http::Client::builder()
                    .timeout(spec.timeout)
                    .connect_timeout(spec.timeout);
                b = match tls {
                    // Plain HTTP: no root store at all, held for as long as the probe runs,
                    // for a connection that never does TLS.
                    None => b.trust(Trust::PlainOnly),
                    Some(tls) => {
                        b = match &tls.ca {
                            Some(ca) => b.trust(Trust::Ca(read(ca)?)),
                            None => b.trust(Trust::AnyCert),
                        };
                        match &tls.client {
                            Some((cert, key)) => b.identity(read(cert)?, read(key)?),
                            None => b,
                        }
                    }
                };
                let client = b.build().map_err(|source| ProbeError::Client {
                    url: url.clone(),
                    source,
                })?;
                Self::Http(client, url.clone())
            }
        })
    }

    pub async fn check(&self) -> Verdict {
        let answered = |ok: bool| if ok { Verdict::Ok } else { Verdict::Failed };
        match self {
            Self::Tcp(addr, t) => match tokio::time::timeout(*t, TcpStream::connect(addr)).await {
                Ok(r) => answered(r.is_ok()),
                Err(_) => Verdict::NoAnswer,
            },
            Self::Unix(path, t) => {
                match tokio::time::timeout(*t, tokio::net::UnixStream::connect(path)).await {
                    Ok(r) => answered(r.is_ok()),
                    Err(_) => Verdict::NoAnswer,
                }
            }
            Self::Http(client, url) => match client.get(url).send().await {
                Ok(resp) if resp.status().is_success() => Verdict::Ok,
                Ok(resp) => {
                    debug!(url, status = %resp.status(), "probe answered not ok");
                    Verdict::Failed
                }
                Err(e) => {
                    debug!(url, error = %crate::errors::chain(&e), "probe failed");
                    match e {
                        HttpError::Timeout { .. } | HttpError::ConnectTimeout { .. } => {
                            Verdict::NoAnswer
                        }
                        _ => Verdict::Failed,
                    }
                }
            },
        }
    }
}

/// What one health check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The component answered, or refused the connection: it runs, or is gone.
    Failed,
    /// Nothing came back within the timeout: the component is hung (SIGSTOPped, deadlocked,
    /// its machine frozen) or badly overloaded. The check has already waited its whole
    /// timeout, so the next one may follow at once.
    NoAnswer,
}

impl Verdict {
    pub fn ok(self) -> bool {
        self == Self::Ok
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ProbeError> {
    std::fs::read(path).map_err(|source| ProbeError::Read {
        path: path.clone(),
        source,
    })
}
