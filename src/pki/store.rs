//! Reading, validating and writing PKI files.
//!
//! Invariants: a file that exists but does not parse is an error naming that file and is never
//! overwritten; every write goes through `fsutil::write_atomic` (keys and kubeconfigs 0600,
//! certificates and public keys 0644), so a crash leaves either the old file or the new one.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use serde::Serialize;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::{CertError, CorruptError, PkiError, Result};
use super::key::Secret;
use crate::fsutil;

pub(crate) const KEY_MODE: u32 = 0o600;
pub(crate) const CERT_MODE: u32 = 0o644;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    /// A kind kubesup never issues (URI, e-mail, ...), kept so that a mismatch is visible.
    Other(String),
}

impl San {
    /// Extra SANs arrive as strings: an IP if it parses as one, else a DNS name.
    pub fn parse(s: &str) -> San {
        match s.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(s.to_string()),
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(ip) => write!(f, "{ip}"),
            San::Other(o) => f.write_str(o),
        }
    }
}

/// What kubesup needs to know about a certificate on disk, owned (no borrow of the DER).
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    /// The file's text as read, embedded verbatim into kubeconfigs.
    pub pem: String,
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub sans: Vec<San>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
    pub key_usage: KeyUsageBits,
    pub server_auth: bool,
    pub client_auth: bool,
    /// Any EKU besides serverAuth/clientAuth (a cert kubesup did not make).
    pub other_ekus: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// The raw subjectPublicKey bits, comparable with `KeyPair::public_key_raw`.
    pub public_key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeyUsageBits {
    pub digital_signature: bool,
    pub key_encipherment: bool,
    pub key_cert_sign: bool,
    pub crl_sign: bool,
    /// Any other bit (nonRepudiation, keyAgreement, ...).
    pub other: bool,
}

impl CertInfo {
    pub fn parse_pem(text: &str) -> std::result::Result<CertInfo, CertError> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(CertError::NotPem)?;
        if pem.label != "CERTIFICATE" {
            return Err(CertError::NotACertificate { label: pem.label });
        }
        let mut info = Self::parse_der(&pem.contents)?;
        info.pem = text.to_string();
        Ok(info)
    }

    pub fn parse_der(der: &[u8]) -> std::result::Result<CertInfo, CertError> {
        let (_, x) = X509Certificate::from_der(der).map_err(CertError::NotX509)?;
        let bad = |extension, cause| CertError::Extension { extension, cause };
        let is_ca = x
            .basic_constraints()
            .map_err(|e| bad("basicConstraints", e))?
            .is_some_and(|bc| bc.value.ca);
        let key_usage = x
            .key_usage()
            .map_err(|e| bad("keyUsage", e))?
            .map(|ku| {
                let k = ku.value;
                KeyUsageBits {
                    digital_signature: k.digital_signature(),
                    key_encipherment: k.key_encipherment(),
                    key_cert_sign: k.key_cert_sign(),
                    crl_sign: k.crl_sign(),
                    other: k.non_repudiation()
                        || k.data_encipherment()
                        || k.key_agreement()
                        || k.encipher_only()
                        || k.decipher_only(),
                }
            })
            .unwrap_or_default();
        let (server_auth, client_auth, other_ekus) = match x
            .extended_key_usage()
            .map_err(|e| bad("extendedKeyUsage", e))?
        {
            Some(e) => {
                let e = e.value;
                let other = e.any
                    || e.code_signing
                    || e.email_protection
                    || e.time_stamping
                    || e.ocsp_signing
                    || !e.other.is_empty();
                (e.server_auth, e.client_auth, other)
            }
            None => (false, false, false),
        };
        let mut sans = Vec::new();
        if let Some(san) = x
            .subject_alternative_name()
            .map_err(|e| bad("subjectAltName", e))?
        {
            for name in &san.value.general_names {
                sans.push(general_name_to_san(name));
            }
        }
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        for ext in x.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(kid) => subject_key_id = Some(kid.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        let common_name = x
            .subject()
            .iter_common_name()
            .find_map(|a| a.as_str().ok().map(str::to_string));
        let organizations = x
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        Ok(CertInfo {
            pem: String::new(),
            der: der.to_vec(),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            common_name,
            organizations,
            sans,
            not_before: from_unix(x.validity().not_before.timestamp()),
            not_after: from_unix(x.validity().not_after.timestamp()),
            is_ca,
            key_usage,
            server_auth,
            client_auth,
            other_ekus,
            subject_key_id,
            authority_key_id,
            public_key: x.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whether `key` is the private half of this certificate's public key.
    pub fn matches_key(&self, key: &KeyPair) -> bool {
        self.public_key == key.public_key_raw()
    }

    /// Whether `ca` issued this certificate: issuer name, key identifier and a verified
    /// signature. The signature check is what catches a CA that was re-made with the same
    /// name but a new key.
    pub fn issued_by(&self, ca: &CertInfo) -> bool {
        if self.issuer != ca.subject {
            return false;
        }
        if let (Some(aki), Some(ski)) = (&self.authority_key_id, &ca.subject_key_id)
            && aki != ski
        {
            return false;
        }
        let (Ok((_, leaf)), Ok((_, ca))) = (
            X509Certificate::from_der(&self.der),
            X509Certificate::from_der(&ca.der),
        ) else {
            return false;
        };
        // rcgen's aws_lc_rs feature turns on x509-parser's `verify-aws`, which provides this.
        leaf.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Total lifetime (not_after - not_before).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }

    /// The start of the renewal window: two thirds into the lifetime.
    pub fn renew_at(&self) -> SystemTime {
        self.not_before + self.lifetime() * 2 / 3
    }
}

fn general_name_to_san(name: &GeneralName<'_>) -> San {
    match name {
        GeneralName::DNSName(d) => San::Dns((*d).to_string()),
        GeneralName::IPAddress(b) => match b.len() {
            4 => San::Ip(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
            16 => San::Ip(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
            _ => San::Other(format!("IP:{}", hex::encode(b))),
        },
        other => San::Other(format!("{other:?}")),
    }
}

pub(crate) fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// RFC 3339 in UTC, seconds precision, for tables, JSON and error messages.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Reads a file; `None` if it does not exist, an error naming it for anything else.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| PkiError::Corrupt {
                path: path.to_path_buf(),
                reason: CorruptError::NotUtf8,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn load_cert(path: &Path) -> Result<Option<CertInfo>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    CertInfo::parse_pem(&text)
        .map(Some)
        .map_err(|e| PkiError::Corrupt {
            path: path.to_path_buf(),
            reason: e.into(),
        })
}

/// A private key read from disk, with its file text (embedded into kubeconfigs as is).
pub(crate) struct LoadedKey {
    pub pair: KeyPair,
    pub pem: Secret,
}

pub(crate) fn load_key(path: &Path) -> Result<Option<LoadedKey>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let pem = Secret::new(text);
    // rcgen's error text describes the failure, never the key bytes.
    let pair = KeyPair::from_pem(pem.expose()).map_err(|e| PkiError::Corrupt {
        path: path.to_path_buf(),
        reason: CorruptError::NotAKey(e),
    })?;
    Ok(Some(LoadedKey { pair, pem }))
}

pub(crate) fn write_key(name: &str, path: &Path, pem: &Secret) -> Result<()> {
    fsutil::write_atomic(path, pem.expose().as_bytes(), KEY_MODE).map_err(|source| {
        PkiError::Store {
            name: format!("{name} key"),
            source,
        }
    })
}

pub(crate) fn write_public(name: &str, path: &Path, pem: &str) -> Result<()> {
    fsutil::write_atomic(path, pem.as_bytes(), CERT_MODE).map_err(|source| PkiError::Store {
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_strings_become_ip_or_dns() {
        assert_eq!(San::parse("10.0.0.1"), San::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(San::parse("::1"), San::Ip("::1".parse().unwrap()));
        assert_eq!(
            San::parse("api.example.com"),
            San::Dns("api.example.com".into())
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertInfo::parse_pem("hello").is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let err = CertInfo::parse_pem(&key.serialize_pem()).unwrap_err();
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[test]
    fn unix_times_round_trip() {
        assert_eq!(from_unix(0), UNIX_EPOCH);
        assert_eq!(from_unix(-10), UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(rfc3339(from_unix(86400)), "1970-01-02T00:00:00Z");
    }
}
