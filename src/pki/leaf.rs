//! Every leaf certificate kubesup makes for its own node: one table (`Leaf::profile`) says which
//! CA signs it, its subject, SANs and usages; `decide` says whether the copy on disk is still
//! good; `issue` signs a new one.
//!
//! Usage policy: server-only certs get serverAuth, clients clientAuth, and only etcd's server
//! and peer certs get both (etcd dials its peers with the peer cert, and its gRPC gateway dials
//! itself with the server cert). Leaves are CA:false with digitalSignature, plus
//! keyEncipherment for RSA keys (RSA key exchange in TLS 1.2 encrypts with the leaf key).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use serde::{Deserialize, Serialize};

use super::PkiSpec;
use super::ca::{self, CaKind, LoadedCa};
use super::error::{PkiError, Result, SanError};
use super::key::KeyAlgorithm;
use super::store::{CertInfo, San};
use crate::model::KeyType;
use crate::paths::{CertPair, KubeconfigUser, PkiPaths};

/// A leaf certificate of this node. The kebab-case name is stable: it is what `certs check`
/// prints and what `certs rotate NAME` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leaf {
    Apiserver,
    ApiserverKubeletClient,
    ApiserverEtcdClient,
    FrontProxyClient,
    EtcdServer,
    EtcdPeer,
    EtcdHealthcheckClient,
    FlannelEtcdClient,
    Admin,
    ControllerManager,
    Scheduler,
    KubeProxy,
    KubeletClient,
    KubeletServer,
    JoinServer,
}

impl Leaf {
    pub const ALL: [Leaf; 15] = [
        Self::Apiserver,
        Self::ApiserverKubeletClient,
        Self::ApiserverEtcdClient,
        Self::FrontProxyClient,
        Self::EtcdServer,
        Self::EtcdPeer,
        Self::EtcdHealthcheckClient,
        Self::FlannelEtcdClient,
        Self::Admin,
        Self::ControllerManager,
        Self::Scheduler,
        Self::KubeProxy,
        Self::KubeletClient,
        Self::KubeletServer,
        Self::JoinServer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Apiserver => "apiserver",
            Self::ApiserverKubeletClient => "apiserver-kubelet-client",
            Self::ApiserverEtcdClient => "apiserver-etcd-client",
            Self::FrontProxyClient => "front-proxy-client",
            Self::EtcdServer => "etcd-server",
            Self::EtcdPeer => "etcd-peer",
            Self::EtcdHealthcheckClient => "etcd-healthcheck-client",
            Self::FlannelEtcdClient => "flannel-etcd-client",
            Self::Admin => "admin",
            Self::ControllerManager => "controller-manager",
            Self::Scheduler => "scheduler",
            Self::KubeProxy => "kube-proxy",
            Self::KubeletClient => "kubelet-client",
            Self::KubeletServer => "kubelet-server",
            Self::JoinServer => "join-server",
        }
    }

    /// Parses a CLI name. A CA name gets its own error (CAs are never rotated); anything else
    /// unknown lists the valid names.
    pub fn from_name(name: &str) -> Result<Leaf> {
        if let Some(l) = Self::ALL.into_iter().find(|l| l.name() == name) {
            return Ok(l);
        }
        if CaKind::from_name(name).is_some() {
            return Err(PkiError::RotateCa { name: name.into() });
        }
        Err(PkiError::UnknownLeaf {
            name: name.into(),
            valid: Self::ALL.map(Leaf::name).join(", "),
        })
    }

    pub fn ca(self) -> CaKind {
        match self {
            Self::ApiserverEtcdClient
            | Self::EtcdServer
            | Self::EtcdPeer
            | Self::EtcdHealthcheckClient
            | Self::FlannelEtcdClient => CaKind::Etcd,
            Self::FrontProxyClient => CaKind::FrontProxy,
            _ => CaKind::Cluster,
        }
    }

    pub fn paths(self, pki: &PkiPaths) -> CertPair {
        match self {
            Self::Apiserver => pki.apiserver(),
            Self::ApiserverKubeletClient => pki.apiserver_kubelet_client(),
            Self::ApiserverEtcdClient => pki.apiserver_etcd_client(),
            Self::FrontProxyClient => pki.front_proxy_client(),
            Self::EtcdServer => pki.etcd_server(),
            Self::EtcdPeer => pki.etcd_peer(),
            Self::EtcdHealthcheckClient => pki.etcd_healthcheck_client(),
            Self::FlannelEtcdClient => pki.flannel_etcd_client(),
            Self::Admin => pki.admin(),
            Self::ControllerManager => pki.controller_manager(),
            Self::Scheduler => pki.scheduler(),
            Self::KubeProxy => pki.kube_proxy(),
            Self::KubeletClient => pki.kubelet_client(),
            Self::KubeletServer => pki.kubelet_server(),
            Self::JoinServer => pki.join_server(),
        }
    }

    /// The kubeconfig that embeds this leaf, if any.
    pub fn kubeconfig_user(self) -> Option<KubeconfigUser> {
        KubeconfigUser::ALL
            .into_iter()
            .find(|u| leaf_of_user(*u) == self)
    }

    /// The profile table: subject, SANs and EKUs of every leaf for this node's spec.
    pub(crate) fn profile(self, spec: &PkiSpec) -> Profile {
        let node_cn = format!("system:node:{}", spec.node_name);
        let localhost = || San::Dns("localhost".into());
        let loopback = || San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        // etcd, join API: reachable by the node's address, its hostname and over loopback.
        let node_server_sans = || {
            vec![
                localhost(),
                San::Dns(spec.hostname.clone()),
                San::Ip(spec.advertise),
                loopback(),
            ]
        };
        let (cn, org, sans, server, client): (String, Option<&str>, Vec<San>, bool, bool) =
            match self {
                Self::Apiserver => {
                    let mut sans: Vec<San> = [
                        "kubernetes".to_string(),
                        "kubernetes.default".into(),
                        "kubernetes.default.svc".into(),
                        format!("kubernetes.default.svc.{}", spec.cluster_domain),
                        "localhost".into(),
                        spec.hostname.clone(),
                    ]
                    .into_iter()
                    .map(San::Dns)
                    .collect();
                    sans.extend([
                        San::Ip(spec.api_service_ip),
                        San::Ip(spec.advertise),
                        loopback(),
                    ]);
                    sans.extend(spec.extra_sans.iter().map(|s| San::parse(s)));
                    ("kube-apiserver".into(), None, sans, true, false)
                }
                Self::ApiserverKubeletClient => (
                    "kube-apiserver-kubelet-client".into(),
                    Some("system:masters"),
                    vec![],
                    false,
                    true,
                ),
                Self::ApiserverEtcdClient => (
                    "kube-apiserver-etcd-client".into(),
                    None,
                    vec![],
                    false,
                    true,
                ),
                Self::FrontProxyClient => ("front-proxy-client".into(), None, vec![], false, true),
                Self::EtcdServer | Self::EtcdPeer => {
                    (spec.node_name.clone(), None, node_server_sans(), true, true)
                }
                Self::EtcdHealthcheckClient => (
                    "kube-etcd-healthcheck-client".into(),
                    None,
                    vec![],
                    false,
                    true,
                ),
                Self::FlannelEtcdClient => ("flanneld".into(), None, vec![], false, true),
                Self::Admin => (
                    "kubernetes-admin".into(),
                    Some("system:masters"),
                    vec![],
                    false,
                    true,
                ),
                Self::ControllerManager => (
                    "system:kube-controller-manager".into(),
                    None,
                    vec![],
                    false,
                    true,
                ),
                Self::Scheduler => ("system:kube-scheduler".into(), None, vec![], false, true),
                Self::KubeProxy => ("system:kube-proxy".into(), None, vec![], false, true),
                Self::KubeletClient => (node_cn, Some("system:nodes"), vec![], false, true),
                // Same identity as a kubelet serving cert signed from a CSR (see csr.rs).
                Self::KubeletServer => (
                    node_cn,
                    Some("system:nodes"),
                    vec![
                        San::Dns(spec.node_name.clone()),
                        San::Dns(spec.hostname.clone()),
                        San::Ip(spec.advertise),
                        loopback(),
                    ],
                    true,
                    false,
                ),
                Self::JoinServer => ("kubesup-join".into(), None, node_server_sans(), true, false),
            };
        Profile {
            common_name: cn,
            organization: org.map(str::to_string),
            sans: dedup(sans),
            server_auth: server,
            client_auth: client,
        }
    }
}

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The leaf embedded in each kubeconfig.
pub(crate) fn leaf_of_user(user: KubeconfigUser) -> Leaf {
    match user {
        KubeconfigUser::Admin => Leaf::Admin,
        KubeconfigUser::ControllerManager => Leaf::ControllerManager,
        KubeconfigUser::Scheduler => Leaf::Scheduler,
        KubeconfigUser::Kubelet => Leaf::KubeletClient,
        KubeconfigUser::KubeProxy => Leaf::KubeProxy,
    }
}

/// Keeps the first occurrence (hostname "localhost" or advertise 127.0.0.1 would repeat).
fn dedup(sans: Vec<San>) -> Vec<San> {
    let mut out: Vec<San> = Vec::with_capacity(sans.len());
    for s in sans {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// What a leaf (or a CSR-signed node cert) must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub common_name: String,
    pub organization: Option<String>,
    pub sans: Vec<San>,
    pub server_auth: bool,
    pub client_auth: bool,
}

impl Profile {
    /// Certificate parameters for a key of the given kind (RSA adds keyEncipherment).
    pub fn params(
        &self,
        rsa: bool,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> std::result::Result<CertificateParams, SanError> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        p.distinguished_name = dn;
        for san in &self.sans {
            p.subject_alt_names.push(match san {
                San::Ip(ip) => SanType::IpAddress(*ip),
                San::Dns(d) => SanType::DnsName(
                    Ia5String::try_from(d.as_str())
                        .map_err(|_| SanError::InvalidDns { name: d.clone() })?,
                ),
                San::Other(o) => return Err(SanError::NotNameOrIp { san: o.clone() }),
            });
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if rsa {
            p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        if self.server_auth {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client_auth {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.not_before = not_before;
        p.not_after = not_after;
        p.serial_number = Some(ca::random_serial());
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }

    /// The first way `info` differs from this profile, or `None` if it matches. SANs compare
    /// as sets: order carries no meaning.
    pub fn mismatch(&self, info: &CertInfo, rsa: bool) -> Option<String> {
        if info.common_name.as_deref() != Some(self.common_name.as_str()) {
            return Some(format!(
                "subject CN is {:?}, want {:?}",
                info.common_name.as_deref().unwrap_or(""),
                self.common_name
            ));
        }
        let want_orgs: Vec<String> = self.organization.iter().cloned().collect();
        if info.organizations != want_orgs {
            return Some(format!(
                "subject O is {:?}, want {:?}",
                info.organizations, want_orgs
            ));
        }
        let mut have = info.sans.clone();
        have.sort();
        have.dedup();
        let mut want = self.sans.clone();
        want.sort();
        if have != want {
            let show = |v: &[San]| v.iter().map(San::to_string).collect::<Vec<_>>().join(",");
            return Some(format!(
                "SANs are [{}], want [{}]",
                show(&have),
                show(&want)
            ));
        }
        if info.is_ca {
            return Some("is a CA certificate".into());
        }
        if info.server_auth != self.server_auth
            || info.client_auth != self.client_auth
            || info.other_ekus
        {
            return Some("extended key usages differ".into());
        }
        let ku = info.key_usage;
        if !ku.digital_signature
            || ku.key_encipherment != rsa
            || ku.key_cert_sign
            || ku.crl_sign
            || ku.other
        {
            return Some("key usages differ".into());
        }
        None
    }
}

/// Why a leaf is (re-)issued; shown in logs, the generate report and `certs rotate` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum ReissueReason {
    /// Neither certificate nor key exists.
    Missing,
    CertMissing,
    KeyMissing,
    /// The key is not of the configured `KeyType`.
    KeyTypeChanged,
    /// The certificate's public key is not the key on disk (e.g. a crash between the two
    /// writes of a rotation).
    KeyMismatch,
    /// The certificate was not signed by the current CA.
    IssuerChanged,
    /// Subject, SANs or usages no longer match the spec.
    SpecChanged(String),
    Expired,
    /// `not_before` is in the future (the clock went back since it was issued).
    NotYetValid,
    /// Inside the last third of its lifetime.
    RenewalWindow,
    /// Asked for by `certs rotate`.
    Rotated,
}

impl fmt::Display for ReissueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::CertMissing => f.write_str("certificate missing"),
            Self::KeyMissing => f.write_str("key missing"),
            Self::KeyTypeChanged => f.write_str("key type changed"),
            Self::KeyMismatch => f.write_str("key does not match certificate"),
            Self::IssuerChanged => f.write_str("not signed by the current CA"),
            Self::SpecChanged(d) => write!(f, "spec changed: {d}"),
            Self::Expired => f.write_str("expired"),
            Self::NotYetValid => f.write_str("not yet valid"),
            Self::RenewalWindow => f.write_str("in renewal window"),
            Self::Rotated => f.write_str("rotation requested"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep {
        not_after: SystemTime,
        renew_at: SystemTime,
    },
    /// `reuse_key`: sign a new certificate for the key on disk. Only the certificate file then
    /// changes, and that single atomic rename keeps the pair consistent at every instant.
    Reissue {
        reason: ReissueReason,
        reuse_key: bool,
    },
}

/// Whether the leaf on disk can stay. Pure: everything it needs is passed in.
pub(crate) fn decide(
    cert: Option<&CertInfo>,
    key: Option<&KeyPair>,
    profile: &Profile,
    ca: &CertInfo,
    key_type: KeyType,
    now: SystemTime,
) -> Decision {
    let reissue = |reason, reuse_key| Decision::Reissue { reason, reuse_key };
    let Some(key) = key else {
        return reissue(
            if cert.is_some() {
                ReissueReason::KeyMissing
            } else {
                ReissueReason::Missing
            },
            false,
        );
    };
    if KeyType::of(key) != Some(key_type) {
        return reissue(ReissueReason::KeyTypeChanged, false);
    }
    let Some(cert) = cert else {
        return reissue(ReissueReason::CertMissing, true);
    };
    if !cert.matches_key(key) {
        return reissue(ReissueReason::KeyMismatch, true);
    }
    if !cert.issued_by(ca) {
        return reissue(ReissueReason::IssuerChanged, true);
    }
    if let Some(d) = profile.mismatch(cert, key_type == KeyType::Rsa2048) {
        return reissue(ReissueReason::SpecChanged(d), true);
    }
    if now >= cert.not_after {
        return reissue(ReissueReason::Expired, true);
    }
    // Issued under a clock that was ahead (then corrected): unusable until then.
    if now < cert.not_before {
        return reissue(ReissueReason::NotYetValid, true);
    }
    if now >= cert.renew_at() {
        return reissue(ReissueReason::RenewalWindow, true);
    }
    Decision::Keep {
        not_after: cert.not_after,
        renew_at: cert.renew_at(),
    }
}

/// Signs `profile` for `public_key` with `ca`; returns the certificate PEM.
pub(crate) fn issue(
    name: &str,
    profile: &Profile,
    public_key: &impl PublicKeyData,
    rsa: bool,
    ca: &LoadedCa,
    lifetime: Duration,
    now: SystemTime,
) -> Result<String> {
    let (nb, na) = ca::validity(now, lifetime, Some(ca.not_after()));
    let params = profile
        .params(rsa, nb, na)
        .map_err(|source| PkiError::Profile {
            name: name.into(),
            source,
        })?;
    let cert = params
        .signed_by(public_key, ca.issuer())
        .map_err(|source| PkiError::Sign {
            name: name.into(),
            source,
        })?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_spec;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut names: Vec<_> = Leaf::ALL.iter().map(|l| l.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Leaf::ALL.len());
        for l in Leaf::ALL {
            assert_eq!(Leaf::from_name(l.name()).unwrap(), l);
            // serde name == CLI name
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.name())
            );
        }
    }

    #[test]
    fn unknown_and_ca_names_are_refused_clearly() {
        let e = Leaf::from_name("apiservr").unwrap_err().to_string();
        assert!(e.contains("apiservr") && e.contains("etcd-peer"), "{e}");
        let e = Leaf::from_name("etcd-ca").unwrap_err();
        assert!(matches!(e, PkiError::RotateCa { .. }), "{e}");
    }

    #[test]
    fn every_leaf_has_a_distinct_file_and_only_etcd_certs_have_both_ekus() {
        let pki = crate::paths::Paths::new("/x").pki();
        let spec = test_spec();
        let mut files: Vec<_> = Leaf::ALL.iter().map(|l| l.paths(&pki).cert).collect();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), Leaf::ALL.len());
        for l in Leaf::ALL {
            let p = l.profile(&spec);
            assert!(p.server_auth || p.client_auth, "{l}");
            let both = p.server_auth && p.client_auth;
            assert_eq!(both, matches!(l, Leaf::EtcdServer | Leaf::EtcdPeer), "{l}");
            // servers have SANs, clients do not
            assert_eq!(p.server_auth, !p.sans.is_empty(), "{l}");
        }
    }

    #[test]
    fn apiserver_sans_follow_the_spec_and_are_deduplicated() {
        let mut spec = test_spec();
        spec.hostname = "localhost".into();
        spec.extra_sans = vec![
            "api.example.com".into(),
            "192.0.2.7".into(),
            "127.0.0.1".into(),
        ];
        let sans = Leaf::Apiserver.profile(&spec).sans;
        for want in [
            San::Dns("kubernetes.default.svc.cluster.local".into()),
            San::Dns("api.example.com".into()),
            San::Ip("192.0.2.7".parse().unwrap()),
            San::Ip(spec.api_service_ip),
            San::Ip(spec.advertise),
        ] {
            assert!(sans.contains(&want), "{want} missing from {sans:?}");
        }
        let n = sans.len();
        assert_eq!(dedup(sans).len(), n);
        assert_eq!(n, 10);
    }

    /// Walks one leaf through every reason `decide` knows.
    #[test]
    fn decide_covers_every_reason() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::paths::Paths::new(dir.path()).pki();
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86400);
        let (ca, _) =
            ca::ensure_ca(&pki, CaKind::Cluster, KeyType::EcdsaP256, year * 10, now).unwrap();
        let (other_ca, _) =
            ca::ensure_ca(&pki, CaKind::FrontProxy, KeyType::EcdsaP256, year * 10, now).unwrap();
        let spec = test_spec();
        let profile = Leaf::Apiserver.profile(&spec);
        let key = KeyType::EcdsaP256.generate().unwrap();
        let pem = issue("t", &profile, &key, false, &ca, year, now).unwrap();
        let cert = CertInfo::parse_pem(&pem).unwrap();
        let ec = KeyType::EcdsaP256;
        let d =
            |cert: Option<&CertInfo>, key: Option<&KeyPair>, p: &Profile, ca: &LoadedCa, kt, at| {
                match decide(cert, key, p, ca.info(), kt, at) {
                    Decision::Keep { .. } => None,
                    Decision::Reissue { reason, reuse_key } => Some((reason, reuse_key)),
                }
            };
        assert_eq!(d(Some(&cert), Some(&key), &profile, &ca, ec, now), None);
        // Just before and at the two-thirds point.
        let window = cert.renew_at();
        assert_eq!(
            d(
                Some(&cert),
                Some(&key),
                &profile,
                &ca,
                ec,
                window - Duration::from_secs(1)
            ),
            None
        );
        assert_eq!(
            d(Some(&cert), Some(&key), &profile, &ca, ec, window),
            Some((ReissueReason::RenewalWindow, true))
        );
        assert_eq!(
            d(Some(&cert), Some(&key), &profile, &ca, ec, cert.not_after),
            Some((ReissueReason::Expired, true))
        );
        assert_eq!(
            d(
                Some(&cert),
                Some(&key),
                &profile,
                &ca,
                ec,
                cert.not_before - Duration::from_secs(1)
            ),
            Some((ReissueReason::NotYetValid, true))
        );
        let mut moved = spec.clone();
        moved.advertise = "192.0.2.99".parse().unwrap();
        assert!(matches!(
            d(Some(&cert), Some(&key), &Leaf::Apiserver.profile(&moved), &ca, ec, now),
            Some((ReissueReason::SpecChanged(s), true)) if s.contains("192.0.2.99")
        ));
        let other_key = KeyType::EcdsaP256.generate().unwrap();
        assert_eq!(
            d(Some(&cert), Some(&other_key), &profile, &ca, ec, now),
            Some((ReissueReason::KeyMismatch, true))
        );
        assert_eq!(
            d(Some(&cert), Some(&key), &profile, &other_ca, ec, now),
            Some((ReissueReason::IssuerChanged, true))
        );
        assert_eq!(
            d(
                Some(&cert),
                Some(&key),
                &profile,
                &ca,
                KeyType::Rsa2048,
                now
            ),
            Some((ReissueReason::KeyTypeChanged, false))
        );
        assert_eq!(
            d(Some(&cert), None, &profile, &ca, ec, now),
            Some((ReissueReason::KeyMissing, false))
        );
        assert_eq!(
            d(None, Some(&key), &profile, &ca, ec, now),
            Some((ReissueReason::CertMissing, true))
        );
        assert_eq!(
            d(None, None, &profile, &ca, ec, now),
            Some((ReissueReason::Missing, false))
        );
    }

    #[test]
    fn a_leaf_knows_its_kubeconfig() {
        assert_eq!(
            Leaf::KubeletClient.kubeconfig_user(),
            Some(KubeconfigUser::Kubelet)
        );
        assert_eq!(Leaf::Apiserver.kubeconfig_user(), None);
    }
}
