//! Signing CSRs from other nodes (the join API calls this on the master).
//!
//! Policy: only node identities are signed. The requested subject, SANs and usages are
//! *checked*, never copied: the certificate is built from kubesup's own profile, so an attribute
//! the checks did not anticipate cannot slip into a signed certificate. The subject is read
//! with x509-parser as well as rcgen, because rcgen keeps one value per attribute type and
//! would hide a second `O=system:masters`.
//!
//! The CA key never leaves the master: signing works on a [`LoadedCa`], which has no way to
//! hand out its key; the function returns the certificate only.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
    SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_ORGANIZATION_NAME};
use x509_parser::prelude::FromDer;

use super::ca::{self, CaKind, LoadedCa};
use super::error::SanError;
use super::leaf::Profile;
use super::store::San;

/// The kinds of certificate another node may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeCertKind {
    /// kubelet's client cert: CN `system:node:NAME`, O `system:nodes`, clientAuth, no SANs.
    KubeletClient,
    /// kubelet's serving cert: same subject, serverAuth, SANs limited to the node's own name
    /// and addresses.
    KubeletServing,
    /// kube-proxy's client cert: CN `system:kube-proxy`, no O, clientAuth, no SANs.
    KubeProxy,
    /// flanneld's etcd client cert (etcd backend): CN `flannel`, no O, clientAuth, no SANs,
    /// signed by the etcd CA.
    FlannelEtcdClient,
}

impl NodeCertKind {
    /// The CA that signs this kind.
    pub fn ca(self) -> CaKind {
        match self {
            Self::FlannelEtcdClient => CaKind::Etcd,
            _ => CaKind::Cluster,
        }
    }
}

impl fmt::Display for NodeCertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::KubeletClient => "kubelet client",
            Self::KubeletServing => "kubelet serving",
            Self::KubeProxy => "kube-proxy client",
            Self::FlannelEtcdClient => "flannel etcd client",
        })
    }
}

/// Who is asking, as established by the join API (token), not by the CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node name the requester is entitled to.
    pub name: String,
    /// The addresses its serving cert may carry.
    pub ips: Vec<IpAddr>,
}

/// Why a CSR was refused. Each rule has its own variant so that the join API can log and
/// count them, and the worker can show the operator what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    // The cause goes in the message: the join API answers with this error's text alone.
    #[error("CSR is not a PEM certificate request: {0}")]
    Malformed(CsrError),
    #[error("CSR signature does not verify against its own public key")]
    BadSignature,
    // The cause goes in the message: the join API answers with this error's text alone.
    #[error("CSR asks for a SAN no certificate can carry: {0}")]
    San(SanError),
    #[error(
        "CSR requests an extension kubesup does not sign (only SAN, key usage, EKU, basic constraints)"
    )]
    UnsupportedExtension,
    #[error("CSR asks for a CA certificate (basicConstraints CA:true)")]
    CaRequested,
    #[error("CSR asks for organization system:masters")]
    SystemMasters,
    #[error("requesting node name {node:?} is not a valid node name")]
    InvalidRequester { node: String },
    #[error("CSR is for node {requested:?}, but the requester is node {node:?}")]
    WrongNode { node: String, requested: String },
    #[error("CSR common name is {got:?}, must be {want:?}")]
    WrongCommonName { got: Vec<String>, want: String },
    #[error("CSR organization is {got:?}, must be {want:?}")]
    WrongOrganization { got: Vec<String>, want: Vec<String> },
    #[error("CSR subject carries {attr}; only CN and O are allowed")]
    UnexpectedSubjectAttribute { attr: String },
    #[error("CSR asks for SAN {san}, which is not a name or address of node {node:?}")]
    ForeignSan { san: String, node: String },
    #[error("a {kind} certificate has no SANs, but the CSR asks for {san}")]
    UnexpectedSan { kind: NodeCertKind, san: String },
    #[error("serving CSR names no SAN (node name or IP)")]
    NoSans,
    #[error("CSR asks for extended key usage {eku}; a {kind} certificate gets only {allowed}")]
    UnexpectedEku {
        eku: String,
        kind: NodeCertKind,
        allowed: &'static str,
    },
    #[error("CSR asks for key usage {usage}")]
    UnexpectedKeyUsage { usage: String },
    #[error("{kind} certificates are signed by the {want} CA, not by the {ca} CA")]
    WrongCa {
        kind: NodeCertKind,
        want: CaKind,
        ca: CaKind,
    },
    #[error("cannot sign the node certificate")]
    Sign {
        #[source]
        source: rcgen::Error,
    },
}

/// Why a CSR does not parse ([`PolicyError::Malformed`] prints it in its message, so these put
/// their own cause in their message too).
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("{0}")]
    Request(rcgen::Error),
    #[error("{0}")]
    Pem(x509_parser::nom::Err<x509_parser::error::PEMError>),
    #[error("{0}")]
    Der(x509_parser::nom::Err<x509_parser::error::X509Error>),
    #[error("subject attribute is not a string: {0}")]
    Attribute(x509_parser::error::X509Error),
}

/// Checks `csr_pem` against the node policy and, if it passes, signs it with `ca` for
/// `validity` (capped by the CA's expiry). Returns the certificate PEM.
pub fn sign_node_csr(
    ca: &LoadedCa,
    csr_pem: &str,
    requesting_node: &NodeIdentity,
    kind: NodeCertKind,
    validity: Duration,
) -> Result<String, PolicyError> {
    if ca.kind() != kind.ca() {
        return Err(PolicyError::WrongCa {
            kind,
            want: kind.ca(),
            ca: ca.kind(),
        });
    }
    let node = &requesting_node.name;
    if !super::is_dns_subdomain(node) {
        return Err(PolicyError::InvalidRequester { node: node.clone() });
    }
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => PolicyError::BadSignature,
        rcgen::Error::UnsupportedExtension => PolicyError::UnsupportedExtension,
        other => PolicyError::Malformed(CsrError::Request(other)),
    })?;
    let subject = full_subject(csr_pem)?;
    let req = &csr.params;

    if matches!(req.is_ca, IsCa::Ca(_)) {
        return Err(PolicyError::CaRequested);
    }
    if subject.organizations.iter().any(|o| o == "system:masters") {
        return Err(PolicyError::SystemMasters);
    }
    if let Some(attr) = subject.others.first() {
        return Err(PolicyError::UnexpectedSubjectAttribute { attr: attr.clone() });
    }

    let node_cn = format!("system:node:{node}");
    let (want_cn, want_org) = match kind {
        NodeCertKind::KubeletClient | NodeCertKind::KubeletServing => {
            (node_cn.as_str(), Some("system:nodes"))
        }
        NodeCertKind::KubeProxy => ("system:kube-proxy", None),
        NodeCertKind::FlannelEtcdClient => ("flannel", None),
    };
    if subject.common_names != [want_cn] {
        if let [cn] = subject.common_names.as_slice()
            && let Some(other) = cn.strip_prefix("system:node:")
            && want_org.is_some()
        {
            return Err(PolicyError::WrongNode {
                node: node.clone(),
                requested: other.to_string(),
            });
        }
        return Err(PolicyError::WrongCommonName {
            got: subject.common_names,
            want: want_cn.to_string(),
        });
    }
    let want_orgs: Vec<String> = want_org.iter().map(|o| o.to_string()).collect();
    if subject.organizations != want_orgs {
        return Err(PolicyError::WrongOrganization {
            got: subject.organizations,
            want: want_orgs,
        });
    }

    let mut sans = Vec::new();
    for san in &req.subject_alt_names {
        let s = match san {
            SanType::DnsName(d) => San::Dns(d.as_str().to_string()),
            SanType::IpAddress(ip) => San::Ip(*ip),
            other => San::Other(format!("{other:?}")),
        };
        if kind != NodeCertKind::KubeletServing {
            return Err(PolicyError::UnexpectedSan {
                kind,
                san: s.to_string(),
            });
        }
        let allowed = match &s {
            San::Dns(d) => d == node,
            San::Ip(ip) => requesting_node.ips.contains(ip),
            San::Other(_) => false,
        };
        if !allowed {
            return Err(PolicyError::ForeignSan {
                san: s.to_string(),
                node: node.clone(),
            });
        }
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    if kind == NodeCertKind::KubeletServing && sans.is_empty() {
        return Err(PolicyError::NoSans);
    }

    let (want_eku, allowed) = match kind {
        NodeCertKind::KubeletServing => (ExtendedKeyUsagePurpose::ServerAuth, "serverAuth"),
        _ => (ExtendedKeyUsagePurpose::ClientAuth, "clientAuth"),
    };
    if let Some(eku) = req.extended_key_usages.iter().find(|e| **e != want_eku) {
        return Err(PolicyError::UnexpectedEku {
            eku: format!("{eku:?}"),
            kind,
            allowed,
        });
    }
    if let Some(ku) = req.key_usages.iter().find(|k| {
        !matches!(
            k,
            KeyUsagePurpose::DigitalSignature | KeyUsagePurpose::KeyEncipherment
        )
    }) {
        return Err(PolicyError::UnexpectedKeyUsage {
            usage: format!("{ku:?}"),
        });
    }

    let profile = Profile {
        common_name: want_cn.to_string(),
        organization: want_org.map(str::to_string),
        sans,
        server_auth: kind == NodeCertKind::KubeletServing,
        client_auth: kind != NodeCertKind::KubeletServing,
    };
    let (nb, na) = ca::validity(SystemTime::now(), validity, Some(ca.not_after()));
    let params = profile
        .params(is_rsa(csr.public_key.algorithm()), nb, na)
        .map_err(PolicyError::San)?;
    let cert = params
        .signed_by(&csr.public_key, ca.issuer())
        .map_err(|source| PolicyError::Sign { source })?;
    tracing::info!(node = %node, kind = %kind, "signed node certificate");
    Ok(cert.pem())
}

fn is_rsa(alg: &SignatureAlgorithm) -> bool {
    [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .contains(&alg)
}

struct Subject {
    common_names: Vec<String>,
    organizations: Vec<String>,
    /// Dotted OIDs of any other attribute.
    others: Vec<String>,
}

/// Every attribute of the CSR subject, repeated ones included.
fn full_subject(csr_pem: &str) -> Result<Subject, PolicyError> {
    let malformed = PolicyError::Malformed;
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
        .map_err(|e| malformed(CsrError::Pem(e)))?;
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| malformed(CsrError::Der(e)))?;
    let mut s = Subject {
        common_names: vec![],
        organizations: vec![],
        others: vec![],
    };
    for attr in csr.certification_request_info.subject.iter_attributes() {
        let value = || {
            attr.as_str()
                .map(str::to_string)
                .map_err(|e| malformed(CsrError::Attribute(e)))
        };
        if attr.attr_type() == &OID_X509_COMMON_NAME {
            s.common_names.push(value()?);
        } else if attr.attr_type() == &OID_X509_ORGANIZATION_NAME {
            s.organizations.push(value()?);
        } else {
            s.others.push(attr.attr_type().to_id_string());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;
    use crate::model::KeyType;
    use crate::pki::store::CertInfo;

    const YEAR: Duration = Duration::from_secs(365 * 86400);

    fn cluster_ca(dir: &std::path::Path) -> LoadedCa {
        let pki = crate::paths::Paths::new(dir).pki();
        ca::ensure_ca(
            &pki,
            CaKind::Cluster,
            KeyType::EcdsaP256,
            YEAR,
            SystemTime::now(),
        )
        .unwrap()
        .0
    }

    fn node() -> NodeIdentity {
        NodeIdentity {
            name: "worker-1".into(),
            ips: vec!["192.0.2.21".parse().unwrap()],
        }
    }

    fn csr(cn: &str, org: Option<&str>, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let Some(o) = org {
            dn.push(DnType::OrganizationName, o);
        }
        p.distinguished_name = dn;
        edit(&mut p);
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn sign(ca: &LoadedCa, pem: &str, kind: NodeCertKind) -> Result<String, PolicyError> {
        sign_node_csr(ca, pem, &node(), kind, YEAR)
    }

    #[test]
    fn signs_a_good_kubelet_client_csr_with_its_own_profile() {
        let dir = tempfile::tempdir().unwrap();
        let ca = cluster_ca(dir.path());
        let pem = csr("system:node:worker-1", Some("system:nodes"), |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        });
        let cert = sign(&ca, &pem, NodeCertKind::KubeletClient).unwrap();
        let info = CertInfo::parse_pem(&cert).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("system:node:worker-1"));
        assert_eq!(info.organizations, vec!["system:nodes"]);
        assert!(info.client_auth && !info.server_auth && !info.is_ca);
        assert!(info.sans.is_empty());
        assert!(info.issued_by(ca.info()));
        assert_eq!(info.authority_key_id, ca.info().subject_key_id);
        assert!(info.not_after <= ca.not_after());
    }

    #[test]
    fn signs_a_serving_csr_for_its_own_names() {
        let dir = tempfile::tempdir().unwrap();
        let ca = cluster_ca(dir.path());
        let pem = csr("system:node:worker-1", Some("system:nodes"), |p| {
            p.subject_alt_names = vec![
                SanType::DnsName("worker-1".try_into().unwrap()),
                SanType::IpAddress("192.0.2.21".parse().unwrap()),
            ];
        });
        let info =
            CertInfo::parse_pem(&sign(&ca, &pem, NodeCertKind::KubeletServing).unwrap()).unwrap();
        assert!(info.server_auth && !info.client_auth);
        assert_eq!(info.sans.len(), 2);
    }

    #[test]
    fn refuses_each_forbidden_request() {
        let dir = tempfile::tempdir().unwrap();
        let ca = cluster_ca(dir.path());
        let good_subject = ("system:node:worker-1", Some("system:nodes"));
        use NodeCertKind::*;
        let cases: Vec<(&str, String, NodeCertKind)> = vec![
            (
                "ca",
                csr(good_subject.0, good_subject.1, |p| {
                    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
                }),
                KubeletClient,
            ),
            (
                "masters",
                csr(good_subject.0, Some("system:masters"), |_| {}),
                KubeletClient,
            ),
            (
                "node",
                csr("system:node:worker-2", Some("system:nodes"), |_| {}),
                KubeletClient,
            ),
            (
                "cn",
                csr("admin", Some("system:nodes"), |_| {}),
                KubeletClient,
            ),
            (
                "org",
                csr(good_subject.0, Some("system:node"), |_| {}),
                KubeletClient,
            ),
            ("org", csr(good_subject.0, None, |_| {}), KubeletClient),
            (
                "foreign",
                csr(good_subject.0, good_subject.1, |p| {
                    p.subject_alt_names = vec![SanType::DnsName("worker-2".try_into().unwrap())]
                }),
                KubeletServing,
            ),
            (
                "foreign",
                csr(good_subject.0, good_subject.1, |p| {
                    p.subject_alt_names = vec![SanType::IpAddress("192.0.2.22".parse().unwrap())]
                }),
                KubeletServing,
            ),
            (
                "nosans",
                csr(good_subject.0, good_subject.1, |_| {}),
                KubeletServing,
            ),
            (
                "san",
                csr(good_subject.0, good_subject.1, |p| {
                    p.subject_alt_names = vec![SanType::DnsName("worker-1".try_into().unwrap())]
                }),
                KubeletClient,
            ),
            (
                "eku",
                csr(good_subject.0, good_subject.1, |p| {
                    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
                }),
                KubeletClient,
            ),
            (
                "eku",
                csr(good_subject.0, good_subject.1, |p| {
                    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning]
                }),
                KubeletClient,
            ),
            (
                "ku",
                csr(good_subject.0, good_subject.1, |p| {
                    p.key_usages = vec![KeyUsagePurpose::KeyCertSign]
                }),
                KubeletClient,
            ),
            (
                "attr",
                csr(good_subject.0, good_subject.1, |p| {
                    p.distinguished_name
                        .push(DnType::OrganizationalUnitName, "x")
                }),
                KubeletClient,
            ),
            ("cn", csr(good_subject.0, None, |_| {}), KubeProxy),
            (
                "org",
                csr("system:kube-proxy", Some("system:nodes"), |_| {}),
                KubeProxy,
            ),
            (
                "malformed",
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                    .into(),
                KubeletClient,
            ),
        ];
        for (want, pem, kind) in cases {
            let err = sign(&ca, &pem, kind).expect_err(want);
            let ok = matches!(
                (want, &err),
                ("ca", PolicyError::CaRequested)
                    | ("masters", PolicyError::SystemMasters)
                    | ("node", PolicyError::WrongNode { .. })
                    | ("cn", PolicyError::WrongCommonName { .. })
                    | ("org", PolicyError::WrongOrganization { .. })
                    | ("foreign", PolicyError::ForeignSan { .. })
                    | ("nosans", PolicyError::NoSans)
                    | ("san", PolicyError::UnexpectedSan { .. })
                    | ("eku", PolicyError::UnexpectedEku { .. })
                    | ("ku", PolicyError::UnexpectedKeyUsage { .. })
                    | ("attr", PolicyError::UnexpectedSubjectAttribute { .. })
                    | ("malformed", PolicyError::Malformed(_))
            );
            assert!(ok, "case {want}: got {err:?} ({err})");
        }
        // A good kube-proxy CSR passes.
        sign(&ca, &csr("system:kube-proxy", None, |_| {}), KubeProxy).unwrap();
    }

    #[test]
    fn refuses_to_sign_with_another_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::paths::Paths::new(dir.path()).pki();
        let etcd = ca::ensure_ca(
            &pki,
            CaKind::Etcd,
            KeyType::EcdsaP256,
            YEAR,
            SystemTime::now(),
        )
        .unwrap()
        .0;
        let pem = csr("system:node:worker-1", Some("system:nodes"), |_| {});
        assert!(matches!(
            sign(&etcd, &pem, NodeCertKind::KubeletClient),
            Err(PolicyError::WrongCa { .. })
        ));
    }
}
