//! The one error type of the PKI module (CSR policy refusals have their own, see `csr.rs`),
//! and the typed reasons it carries: why a file is corrupt, why a certificate does not parse,
//! why a profile's SAN cannot go into a certificate.

use std::path::PathBuf;

use x509_parser::error::{PEMError, X509Error};
use x509_parser::nom;

use crate::fsutil::FsError;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid PKI input: {reason}")]
    InvalidSpec { reason: String },

    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file exists but is not what it should be. It is never overwritten: the operator decides
    /// whether to restore it or move it aside to have it re-created.
    #[error("{path} is corrupt ({reason}); refusing to overwrite it: restore it or move it aside")]
    Corrupt { path: PathBuf, reason: CorruptError },

    #[error("invalid PKI input for {name}")]
    Profile {
        name: String,
        #[source]
        source: SanError,
    },

    #[error(
        "{ca} certificate {cert} exists but its key {key} is missing; refusing to create a new CA \
         (restore the key, or remove both files to deliberately start a new CA)"
    )]
    CaKeyMissing {
        ca: &'static str,
        cert: PathBuf,
        key: PathBuf,
    },

    #[error("{ca} key {key} does not match the certificate {cert}; refusing to replace the CA")]
    CaKeyMismatch {
        ca: &'static str,
        cert: PathBuf,
        key: PathBuf,
    },

    #[error("{path} is not a CA certificate (basicConstraints CA:true is missing)")]
    NotACa { path: PathBuf },

    #[error("{ca} certificate {path} expired at {not_after}; a new CA must be set up by hand")]
    CaExpired {
        ca: &'static str,
        path: PathBuf,
        not_after: String,
    },

    #[error(
        "{path} exists and differs from the cluster's: this data dir belongs to another cluster; \
         use another --data-dir, or run `kubesup reset` on it first"
    )]
    ForeignMaterial { path: PathBuf },

    #[error("{ca} certificate {path} does not exist (run the master once to create the PKI)")]
    CaMissing { ca: &'static str, path: PathBuf },

    #[error("cannot generate the key for {name}")]
    KeyGen {
        name: String,
        #[source]
        source: rcgen::Error,
    },

    #[error("cannot sign the certificate {name}")]
    Sign {
        name: String,
        #[source]
        source: rcgen::Error,
    },

    #[error("cannot store {name}")]
    Store {
        name: String,
        #[source]
        source: FsError,
    },

    #[error("cannot render the kubeconfig for {user}")]
    RenderKubeconfig {
        user: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },

    #[error("cannot render the certificate table as JSON")]
    RenderJson {
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{public} exists but the service-account key {key} is missing; refusing to make a new \
         one (every issued token would stop working): restore it, or remove both files"
    )]
    ServiceAccountKeyMissing { key: PathBuf, public: PathBuf },

    #[error("name the certificates to rotate, or all of them; valid names: {valid}")]
    NothingToRotate { valid: String },

    #[error("unknown certificate {name:?}; valid names: {valid}")]
    UnknownLeaf { name: String, valid: String },

    #[error(
        "{name} is a CA; certs rotate re-issues leaf certificates only and never replaces a CA"
    )]
    RotateCa { name: String },
}

/// Why a file is not what it should be ([`PkiError::Corrupt`] prints it in its message, between
/// the path and the advice, so these put their own cause in their message too).
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("cannot use as issuer: {0}")]
    Issuer(rcgen::Error),
    #[error("not a private key PEM: {0}")]
    NotAKey(rcgen::Error),
    #[error("does not contain the public half of sa.key")]
    NoPublicHalf,
}

/// Why a PEM or DER certificate does not parse (`CertInfo::parse_pem`, `CertInfo::parse_der`).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not PEM: {0}")]
    NotPem(nom::Err<PEMError>),
    #[error("PEM block is {label:?}, not CERTIFICATE")]
    NotACertificate { label: String },
    #[error("not X.509: {0}")]
    NotX509(nom::Err<X509Error>),
    #[error("bad {extension}: {cause}")]
    Extension {
        extension: &'static str,
        cause: X509Error,
    },
}

/// Why a certificate profile's SAN cannot be put into a certificate (`Profile::params`).
#[derive(Debug, thiserror::Error)]
pub enum SanError {
    #[error("SAN {name:?} is not a valid DNS name")]
    InvalidDns { name: String },
    #[error("SAN {san:?} is not a DNS name or IP")]
    NotNameOrIp { san: String },
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;
