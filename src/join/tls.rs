//! The join server's TLS: its rustls configuration, and the certificate resolver that serves a
//! renewed `join-server` certificate without a restart.
//!
//! Owns: which crypto provider the join API uses, which client certificates it accepts (any
//! from the cluster CA, or none: the CA bundle and a join with a token need none), and when a
//! renewed certificate is taken.
//!
//! Invariants: a certificate is served only with its own key; a renewal half written (one of
//! the two files replaced) leaves the one in use serving. It never logs a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::{debug, info};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the join server certificate's PEM is unreadable")]
    CertPem(#[source] std::io::Error),
    #[error("no certificate in the join server's certificate file")]
    NoCert,
    #[error("the join server key's PEM is unreadable")]
    KeyPem(#[source] std::io::Error),
    #[error("no private key in the join server's key file")]
    NoKey,
    #[error("the client CA bundle's PEM is unreadable")]
    ClientCaPem(#[source] std::io::Error),
    #[error("the join server cannot use {what}")]
    Rustls {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the join server's client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

fn rustls_err(what: &'static str) -> impl FnOnce(rustls::Error) -> TlsError {
    move |source| TlsError::Rustls { what, source }
}

/// TLS settings from the join-server certificate and key (PEM). A client may present a
/// certificate issued by `client_ca` (a node renewing with its kubelet client certificate);
/// none is needed for the CA bundle or for a join with a token.
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
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
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let cert = ServerCert::from_files(cert, key, &provider)?;
    server_config(provider, client_ca_pem, cert)
}

/// Named rather than left to rustls' process-wide default: aws-lc-rs, the one the PKI signs
/// with (and the only one linked).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    client_ca_pem: &[u8],
    cert: ServerCert,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut &client_ca_pem[..]) {
        roots
            .add(ca.map_err(TlsError::ClientCaPem)?)
            .map_err(rustls_err("the client CA"))?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(TlsError::Verifier)?;
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("the crypto provider's protocol versions"))?
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
    ) -> Result<Self, TlsError> {
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
    ) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.to_path_buf(),
                source,
            })
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
            Err(e) => debug!(
                error = %crate::errors::chain(&e),
                "join API: the certificate files do not match yet"
            ),
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
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(TlsError::CertPem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCert);
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(TlsError::KeyPem)?
        .ok_or(TlsError::NoKey)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(rustls_err("the private key"))?;
    let certified = rustls::sign::CertifiedKey::new(certs, key);
    certified
        .keys_match()
        .map_err(rustls_err("a certificate and key that do not match"))?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
