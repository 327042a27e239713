//! The three CAs (cluster, etcd, front-proxy): creation on first run, strict loading after.
//!
//! Invariant: a CA is never replaced silently. If its certificate exists it is used as is; a
//! missing, corrupt or mismatched key is an error, never a reason to make a new CA, because a
//! new CA would invalidate every certificate and kubeconfig handed out to other nodes.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{debug, info};

use super::error::{CorruptError, PkiError, Result};
use super::key::{KeyAlgorithm, Secret};
use super::store::{self, CertInfo, rfc3339};
use crate::model::KeyType;
use crate::paths::{CertPair, PkiPaths};

/// How far back `not_before` is set, so that a peer whose clock is a little behind does not
/// reject a certificate made a second ago as "not yet valid".
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    /// Signs the apiserver, the kubelets and every client of the apiserver.
    Cluster,
    /// Signs etcd's server and peer certs and etcd's clients; separate so that a cluster client
    /// cert cannot talk to etcd directly.
    Etcd,
    /// Signs the aggregation layer's front-proxy client cert.
    FrontProxy,
}

impl CaKind {
    pub const ALL: [CaKind; 3] = [Self::Cluster, Self::Etcd, Self::FrontProxy];

    /// Stable name used in `certs check` and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cluster => "ca",
            Self::Etcd => "etcd-ca",
            Self::FrontProxy => "front-proxy-ca",
        }
    }

    /// The subject CN, as kubeadm names them (operators recognise them in `openssl x509`).
    pub fn common_name(self) -> &'static str {
        match self {
            Self::Cluster => "kubernetes",
            Self::Etcd => "etcd-ca",
            Self::FrontProxy => "front-proxy-ca",
        }
    }

    pub fn paths(self, pki: &PkiPaths) -> CertPair {
        match self {
            Self::Cluster => pki.ca(),
            Self::Etcd => pki.etcd_ca(),
            Self::FrontProxy => pki.front_proxy_ca(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for CaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A CA certificate with its signing key, loaded on the master. There is deliberately no way to
/// get the key back out (no accessor, no serialization, `Debug` prints `***`): signing happens
/// through this value, so the CA key never leaves the process that loaded it.
pub struct LoadedCa {
    kind: CaKind,
    info: CertInfo,
    issuer: Issuer<'static, KeyPair>,
}

impl LoadedCa {
    pub fn kind(&self) -> CaKind {
        self.kind
    }

    /// The CA certificate PEM, exactly as stored (what clients are given as their trust root).
    pub fn cert_pem(&self) -> &str {
        &self.info.pem
    }

    pub fn not_after(&self) -> SystemTime {
        self.info.not_after
    }

    pub(crate) fn info(&self) -> &CertInfo {
        &self.info
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    fn from_parts(kind: CaKind, path: &Path, info: CertInfo, key: KeyPair) -> Result<Self> {
        // Build the issuer from the certificate rather than from fresh params, so that leaves
        // carry the CA's subject bytes and its subject key id as their authority key id.
        let issuer = Issuer::from_ca_cert_pem(&info.pem, key).map_err(|e| PkiError::Corrupt {
            path: path.to_path_buf(),
            reason: CorruptError::Issuer(e),
        })?;
        Ok(Self { kind, info, issuer })
    }
}

impl fmt::Debug for LoadedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCa")
            .field("kind", &self.kind)
            .field("subject", &self.info.subject)
            .field("not_after", &rfc3339(self.info.not_after))
            .field("key", &"***")
            .finish()
    }
}

/// `not_before`/`not_after` for a certificate issued at `now`: backdated by the clock skew,
/// whole seconds (X.509 times have no fractions), and never beyond `cap` (the issuer's expiry:
/// a certificate outliving its CA would only fail later, in a more confusing way).
pub(crate) fn validity(
    now: SystemTime,
    lifetime: Duration,
    cap: Option<SystemTime>,
) -> (OffsetDateTime, OffsetDateTime) {
    let mut end = now + lifetime;
    if let Some(cap) = cap
        && cap < end
    {
        end = cap;
    }
    let trunc = |t: SystemTime| {
        let t = OffsetDateTime::from(t);
        t.replace_nanosecond(0).unwrap_or(t)
    };
    // A fixed backdate would swallow a short lifetime's renewal window (renewal is due at two
    // thirds of not_before..not_after): keep it under a twentieth of the lifetime.
    let skew = CLOCK_SKEW.min(lifetime / 20);
    (trunc(now - skew), trunc(end))
}

/// A random positive 128-bit serial. rcgen's default serial is a hash of the public key, which
/// would repeat when a certificate is renewed with the same key.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keeps the DER encoding at exactly 16 bytes
    SerialNumber::from_slice(&bytes)
}

fn ca_params(kind: CaKind, now: SystemTime, lifetime: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, kind.common_name());
    p.distinguished_name = dn;
    // pathlen 0: these CAs sign leaves only, never an intermediate.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // digitalSignature as kubeadm sets it; keyCertSign and cRLSign are what a CA needs.
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let (nb, na) = validity(now, lifetime, None);
    p.not_before = nb;
    p.not_after = na;
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

/// Checks a CA pair loaded from disk and turns it into a signer.
fn validate(
    kind: CaKind,
    pair: &CertPair,
    info: CertInfo,
    key: KeyPair,
    now: SystemTime,
) -> Result<LoadedCa> {
    if !info.is_ca {
        return Err(PkiError::NotACa {
            path: pair.cert.clone(),
        });
    }
    if !info.matches_key(&key) {
        return Err(PkiError::CaKeyMismatch {
            ca: kind.name(),
            cert: pair.cert.clone(),
            key: pair.key.clone(),
        });
    }
    if now >= info.not_after {
        return Err(PkiError::CaExpired {
            ca: kind.name(),
            path: pair.cert.clone(),
            not_after: rfc3339(info.not_after),
        });
    }
    debug!(ca = %kind, not_after = %rfc3339(info.not_after), "kept existing CA");
    LoadedCa::from_parts(kind, &pair.cert, info, key)
}

/// Loads a CA that must already exist (for rotate and CSR signing, which never create CAs).
pub fn load_ca(pki: &PkiPaths, kind: CaKind, now: SystemTime) -> Result<LoadedCa> {
    let pair = kind.paths(pki);
    let Some(info) = store::load_cert(&pair.cert)? else {
        return Err(PkiError::CaMissing {
            ca: kind.name(),
            path: pair.cert,
        });
    };
    let Some(key) = store::load_key(&pair.key)? else {
        return Err(PkiError::CaKeyMissing {
            ca: kind.name(),
            cert: pair.cert,
            key: pair.key,
        });
    };
    validate(kind, &pair, info, key.pair, now)
}

/// Loads the CA, or creates it if neither its certificate nor its key exists. Returns whether
/// a certificate was written.
pub(crate) fn ensure_ca(
    pki: &PkiPaths,
    kind: CaKind,
    key_type: KeyType,
    lifetime: Duration,
    now: SystemTime,
) -> Result<(LoadedCa, bool)> {
    let pair = kind.paths(pki);
    let cert = store::load_cert(&pair.cert)?;
    let key = store::load_key(&pair.key)?;
    let key = match (cert, key) {
        (Some(info), Some(key)) => return Ok((validate(kind, &pair, info, key.pair, now)?, false)),
        (Some(_), None) => {
            return Err(PkiError::CaKeyMissing {
                ca: kind.name(),
                cert: pair.cert,
                key: pair.key,
            });
        }
        // The key is written before the certificate, so this is what a crash during the very
        // first run leaves. Nothing can have been signed yet (leaves come after the CA
        // certificate), and the same key yields the same subject key id, so finishing the CA
        // with the existing key replaces nothing.
        (None, Some(key)) => {
            info!(ca = %kind, "CA key without certificate: completing the CA with that key");
            key.pair
        }
        (None, None) => {
            let key = key_type.generate().map_err(|source| PkiError::KeyGen {
                name: kind.name().into(),
                source,
            })?;
            store::write_key(kind.name(), &pair.key, &Secret::new(key.serialize_pem()))?;
            key
        }
    };
    let cert = ca_params(kind, now, lifetime)
        .self_signed(&key)
        .map_err(|source| PkiError::Sign {
            name: kind.name().into(),
            source,
        })?;
    let pem = cert.pem();
    store::write_public(kind.name(), &pair.cert, &pem)?;
    let info = CertInfo::parse_pem(&pem).map_err(|e| PkiError::Corrupt {
        path: pair.cert.clone(),
        reason: e.into(),
    })?;
    info!(ca = %kind, key_type = ?KeyType::of(&key), not_after = %rfc3339(info.not_after), "created CA");
    Ok((LoadedCa::from_parts(kind, &pair.cert, info, key)?, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    #[test]
    fn a_new_ca_has_ca_extensions_and_sane_dates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Paths::new(dir.path()).pki();
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86400);
        let (ca, created) = ensure_ca(&pki, CaKind::Etcd, KeyType::EcdsaP256, year, now).unwrap();
        assert!(created);
        let i = ca.info();
        assert!(i.is_ca && i.key_usage.key_cert_sign && i.key_usage.crl_sign);
        assert!(i.subject_key_id.is_some());
        assert_eq!(i.authority_key_id, i.subject_key_id);
        assert!(i.not_before < now && now - CLOCK_SKEW - Duration::from_secs(1) <= i.not_before);
        assert!(i.not_after <= now + year);
        assert!(format!("{ca:?}").contains("***"));

        // Second call loads the same CA.
        let (again, created) = ensure_ca(&pki, CaKind::Etcd, KeyType::Rsa2048, year, now).unwrap();
        assert!(!created);
        assert_eq!(again.cert_pem(), ca.cert_pem());
    }

    #[test]
    fn validity_is_capped_by_the_issuer() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cap = now + Duration::from_secs(10);
        let (nb, na) = validity(now, Duration::from_secs(100), Some(cap));
        assert_eq!(na, OffsetDateTime::from(cap));
        assert_eq!(nb, OffsetDateTime::from(now - Duration::from_secs(5)));
    }

    #[test]
    fn a_short_lifetime_is_not_due_for_renewal_when_issued() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let life = Duration::from_secs(120);
        let (nb, na) = validity(now, life, None);
        let renew_at = nb + (na - nb) * 2 / 3;
        assert!(
            renew_at > OffsetDateTime::from(now + Duration::from_secs(60)),
            "{renew_at}"
        );
    }

    #[test]
    fn serials_are_random_and_positive() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a[0] < 0x80);
    }
}
