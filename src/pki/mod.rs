//! The cluster's PKI: the three CAs, every leaf certificate and key of this node, the
//! service-account key pair, the kubeconfigs, their expiry report and renewal, and the signing
//! of other nodes' CSRs. It replaces the openssl steps of the "Kubernetes from scratch" guides.
//!
//! Files live where [`crate::paths::PkiPaths`] and [`crate::paths::Paths::kubeconfig`] say
//! (kubeadm's layout). Input is a plain [`PkiSpec`]; this module does not read the config.
//!
//! Invariants:
//! - **Idempotent.** [`Pki::generate`] writes nothing when everything on disk is valid and
//!   matches the spec: a second run leaves every byte unchanged. A leaf is re-issued only when
//!   it is missing, no longer matches the spec (subject, SANs, usages, key type), was not signed
//!   by the current CA, or is in the last third of its lifetime.
//! - **CAs are never replaced silently.** An existing CA certificate is always used; a missing
//!   or mismatched CA key is an error ([`ca`]).
//! - **Nothing on disk is overwritten because it is unreadable.** A corrupt PEM is an error that
//!   names the file; the operator decides.
//! - **Crash-safe writes.** Every file goes through [`crate::fsutil::write_atomic`]; keys and
//!   kubeconfigs are 0600, certificates 0644. Renewal reuses the key on disk, so only the
//!   certificate changes and the pair is consistent at every instant.
//! - **Secrets stay secret.** Key material is held in [`Secret`] or rcgen's `KeyPair`, whose
//!   `Debug` hides it; nothing logs a PEM; the CA key never leaves a [`LoadedCa`].
//!
//! Must not: create or replace a CA outside first start, make network calls, know which
//! processes read which file (it reports what it wrote, in a [`Report`]; the planner,
//! `crate::plan`, maps that to the components to restart), or rotate the service-account key
//! (that would invalidate every token).

mod ca;
mod check;
mod csr;
mod error;
mod key;
mod kubeconfig;
mod leaf;
mod material;
mod renew;
mod store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tracing::{debug, info};

pub use ca::{CaKind, LoadedCa};
pub use check::{CertRow, CertStatus, needs_attention, render_json, render_table};
pub use csr::{CsrError, NodeCertKind, NodeIdentity, PolicyError, sign_node_csr};
pub use error::{CertError, CorruptError, PkiError, Result, SanError};
pub use key::Secret;
pub use kubeconfig::{CLUSTER_NAME, KubeconfigServers, render as render_kubeconfig};
pub use leaf::{Leaf, ReissueReason};
pub use material::{CaMaterial, ClusterMaterial};
pub use renew::{MIN_RENEWAL_INTERVAL, RENEW_JITTER, next_renewal_of, renewal_sleep};
pub use store::San;

use crate::model::KeyType;
use crate::paths::{KubeconfigUser, Paths, PkiPaths};
use key::KeyAlgorithm;
use leaf::Decision;

/// Default CA lifetime: 10 years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86400);
/// Default leaf lifetime: 1 year.
/// Shortest leaf lifetime: renewal at two thirds of it must leave components time to restart.
/// Lifetimes this short only make sense to exercise renewal; the config warns below a day.
pub const MIN_LEAF_VALIDITY: Duration = Duration::from_secs(120);
pub const MIN_CA_VALIDITY: Duration = Duration::from_secs(86400);
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86400);

/// Everything the PKI needs to know about this node and cluster. The architect maps the
/// config onto it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSpec {
    /// Kubernetes node name (kubelet CN `system:node:NAME`).
    pub node_name: String,
    /// The machine's hostname (a SAN of every serving cert of this node).
    pub hostname: String,
    /// The address other nodes reach this one at.
    pub advertise: IpAddr,
    /// The first IP of the service CIDR (the `kubernetes` Service's ClusterIP).
    pub api_service_ip: IpAddr,
    /// e.g. `cluster.local`.
    pub cluster_domain: String,
    /// Extra apiserver SANs: an IP if it parses as one, else a DNS name.
    pub extra_sans: Vec<String>,
    pub key_type: KeyType,
    /// Lifetime of a CA created by this run (an existing CA keeps its own).
    pub ca_validity: Duration,
    /// Lifetime of a leaf issued by this run (capped by its CA's expiry).
    pub leaf_validity: Duration,
    pub kubeconfig_servers: KubeconfigServers,
}

impl PkiSpec {
    /// Gathers every problem at once, so that one run shows them all.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if !is_dns_subdomain(&self.node_name) {
            problems.push(format!(
                "node name {:?} is not a lowercase DNS subdomain",
                self.node_name
            ));
        }
        for (what, v) in [
            ("hostname", &self.hostname),
            ("cluster domain", &self.cluster_domain),
        ] {
            if !is_dns_like(v) {
                problems.push(format!("{what} {v:?} is not a DNS name"));
            }
        }
        for s in &self.extra_sans {
            if s.parse::<IpAddr>().is_err() && !is_dns_like(s) {
                problems.push(format!("extra SAN {s:?} is neither an IP nor a DNS name"));
            }
        }
        if self.ca_validity < MIN_CA_VALIDITY {
            problems.push("CA validity must be at least a day".into());
        }
        if self.leaf_validity < MIN_LEAF_VALIDITY {
            problems.push("leaf validity must be at least two minutes".into());
        }
        for user in KubeconfigUser::ALL {
            let url = self.kubeconfig_servers.get(user);
            if !url.starts_with("https://") {
                problems.push(format!(
                    "{} kubeconfig server {url:?} is not an https:// URL",
                    user.file_stem()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PkiError::InvalidSpec {
                reason: problems.join("; "),
            })
        }
    }
}

fn is_dns_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
}

/// Kubernetes node names are RFC 1123 subdomains.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A leaf written by a run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub leaf: Leaf,
    pub reason: ReissueReason,
}

/// What a run changed on disk. Empty when everything was already in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub cas_created: Vec<CaKind>,
    pub issued: Vec<Issued>,
    pub kubeconfigs_written: Vec<KubeconfigUser>,
    pub service_account_key_created: bool,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.cas_created.is_empty()
            && self.issued.is_empty()
            && self.kubeconfigs_written.is_empty()
            && !self.service_account_key_created
    }

    pub fn leaves(&self) -> Vec<Leaf> {
        self.issued.iter().map(|i| i.leaf).collect()
    }
}

enum Mode<'a> {
    /// Create what is missing, re-issue what is stale.
    Generate,
    /// Re-issue exactly these leaves with fresh keys; CAs must exist.
    Rotate(&'a [Leaf]),
}

/// The PKI of one data dir. Not safe to run twice at once on the same dir: kubesup's
/// per-data-dir lock guarantees a single instance.
#[derive(Debug, Clone)]
pub struct Pki {
    paths: Paths,
}

impl Pki {
    pub fn new(paths: &Paths) -> Self {
        Self {
            paths: paths.clone(),
        }
    }

    pub fn pki_paths(&self) -> PkiPaths {
        self.paths.pki()
    }

    /// Makes or completes the PKI for `spec` (see the module invariants).
    pub fn generate(&self, spec: &PkiSpec) -> Result<Report> {
        self.generate_at(spec, SystemTime::now())
    }

    /// [`Pki::generate`] with an explicit clock, for tests and for the renewal loop.
    pub fn generate_at(&self, spec: &PkiSpec, now: SystemTime) -> Result<Report> {
        self.run(spec, now, Mode::Generate)
    }

    /// `certs rotate`: re-issues `leaves` with new keys (and rewrites their kubeconfigs).
    /// Never touches a CA; fails if a CA is missing.
    pub fn rotate(&self, spec: &PkiSpec, leaves: &[Leaf]) -> Result<Report> {
        self.run(spec, SystemTime::now(), Mode::Rotate(leaves))
    }

    /// Parses `certs rotate` arguments: names, or every leaf when `all`.
    pub fn parse_rotate_args(names: &[String], all: bool) -> Result<Vec<Leaf>> {
        if all {
            return Ok(Leaf::ALL.to_vec());
        }
        if names.is_empty() {
            return Err(PkiError::NothingToRotate {
                valid: Leaf::ALL.map(Leaf::name).join(", "),
            });
        }
        let mut out = Vec::new();
        for n in names {
            let l = Leaf::from_name(n)?;
            if !out.contains(&l) {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Loads an existing CA with its key for signing (never creates one).
    pub fn load_ca(&self, kind: CaKind) -> Result<LoadedCa> {
        ca::load_ca(&self.paths.pki(), kind, SystemTime::now())
    }

    fn run(&self, spec: &PkiSpec, now: SystemTime, mode: Mode<'_>) -> Result<Report> {
        spec.validate()?;
        let pki = self.paths.pki();
        // Read every leaf first: a corrupt or unreadable file stops the run before it has
        // written anything, so a failed run never leaves half of its changes unreported.
        let mut on_disk = Vec::new();
        for leaf in Leaf::ALL {
            let force = match mode {
                Mode::Generate => false,
                Mode::Rotate(list) if list.contains(&leaf) => true,
                Mode::Rotate(_) => continue,
            };
            let pair = leaf.paths(&pki);
            let cert = store::load_cert(&pair.cert)?;
            let key = store::load_key(&pair.key)?;
            on_disk.push((leaf, force, cert, key));
        }

        let mut report = Report::default();
        let mut cas = HashMap::new();
        for kind in CaKind::ALL {
            let loaded = match mode {
                Mode::Generate => {
                    let (ca, created) =
                        ca::ensure_ca(&pki, kind, spec.key_type, spec.ca_validity, now)?;
                    if created {
                        report.cas_created.push(kind);
                    }
                    ca
                }
                Mode::Rotate(_) => ca::load_ca(&pki, kind, now)?,
            };
            cas.insert(kind, loaded);
        }
        if matches!(mode, Mode::Generate) {
            report.service_account_key_created = ensure_service_account_key(&pki, spec.key_type)?;
        }

        let mut material: HashMap<Leaf, (String, Secret)> = HashMap::new();
        for (leaf, force, cert, key) in on_disk {
            let ca = &cas[&leaf.ca()];
            let (cert, key, reason) = ensure_leaf(&pki, leaf, spec, ca, (cert, key), force, now)?;
            if let Some(reason) = reason {
                report.issued.push(Issued { leaf, reason });
            }
            material.insert(leaf, (cert, key));
        }

        let cluster_ca = &cas[&CaKind::Cluster];
        for user in KubeconfigUser::ALL {
            let leaf = leaf::leaf_of_user(user);
            let Some((cert, key)) = material.get(&leaf) else {
                continue;
            };
            let user_name = leaf.profile(spec).common_name;
            let content = kubeconfig::render(
                spec.kubeconfig_servers.get(user),
                cluster_ca.cert_pem(),
                &user_name,
                cert,
                key,
            )
            .map_err(|source| PkiError::RenderKubeconfig {
                user: user.file_stem(),
                source,
            })?;
            let path = self.paths.kubeconfig(user);
            if kubeconfig::write_if_changed(user, &path, &content)? {
                info!(kubeconfig = user.file_stem(), "written");
                report.kubeconfigs_written.push(user);
            } else {
                debug!(kubeconfig = user.file_stem(), "kept: up to date");
            }
        }
        Ok(report)
    }
}

/// Brings one leaf up to date from what was read of it (`on_disk`); returns its certificate
/// PEM, key PEM and, if it was written, why. The files are read even when forced: a corrupt
/// file is reported, not silently replaced.
fn ensure_leaf(
    pki: &PkiPaths,
    leaf: Leaf,
    spec: &PkiSpec,
    ca: &LoadedCa,
    on_disk: (Option<store::CertInfo>, Option<store::LoadedKey>),
    force: bool,
    now: SystemTime,
) -> Result<(String, Secret, Option<ReissueReason>)> {
    let pair = leaf.paths(pki);
    let (cert, key) = on_disk;
    let profile = leaf.profile(spec);
    let decision = if force {
        Decision::Reissue {
            reason: ReissueReason::Rotated,
            reuse_key: false,
        }
    } else {
        leaf::decide(
            cert.as_ref(),
            key.as_ref().map(|k| &k.pair),
            &profile,
            ca.info(),
            spec.key_type,
            now,
        )
    };
    let (reason, reuse_key, key) = match (decision, cert, key) {
        (
            Decision::Keep {
                not_after,
                renew_at,
            },
            Some(cert),
            Some(key),
        ) => {
            debug!(
                cert = %leaf,
                not_after = %store::rfc3339(not_after),
                renew_at = %store::rfc3339(renew_at),
                "kept: valid and matches the spec"
            );
            return Ok((cert.pem, key.pem, None));
        }
        // `decide` keeps only a present pair; anything else is re-issued.
        (Decision::Keep { .. }, _, key) => (ReissueReason::Missing, false, key),
        (Decision::Reissue { reason, reuse_key }, _, key) => (reason, reuse_key, key),
    };
    let key = match key {
        Some(k) if reuse_key => k,
        _ => {
            let pair_new = spec
                .key_type
                .generate()
                .map_err(|source| PkiError::KeyGen {
                    name: leaf.name().into(),
                    source,
                })?;
            let pem = Secret::new(pair_new.serialize_pem());
            // Key first: a crash before the certificate is written leaves a mismatched pair,
            // which the next run heals by certifying this key (KeyMismatch, reuse).
            store::write_key(leaf.name(), &pair.key, &pem)?;
            store::LoadedKey {
                pair: pair_new,
                pem,
            }
        }
    };
    let rsa = KeyType::of(&key.pair) == Some(KeyType::Rsa2048);
    let cert_pem = leaf::issue(
        leaf.name(),
        &profile,
        &key.pair,
        rsa,
        ca,
        spec.leaf_validity,
        now,
    )?;
    store::write_public(leaf.name(), &pair.cert, &cert_pem)?;
    info!(cert = %leaf, reason = %reason, "issued");
    Ok((cert_pem, key.pem, Some(reason)))
}

/// The service-account token signing key (`sa.key`) and its public half (`sa.pub`, PEM
/// "PUBLIC KEY"). Created once, never rotated: the apiserver would reject every token signed
/// with the old key.
fn ensure_service_account_key(pki: &PkiPaths, key_type: KeyType) -> Result<bool> {
    let key_path = pki.sa_key();
    let pub_path = pki.sa_pub();
    match (
        store::load_key(&key_path)?,
        store::read_optional(&pub_path)?,
    ) {
        (Some(key), Some(text)) => {
            // sa.pub may list several keys (the apiserver accepts all of them); it only has to
            // contain the current one.
            if text.contains(key.pair.public_key_pem().trim()) {
                debug!(key = "sa", "kept service-account key");
                Ok(false)
            } else {
                Err(PkiError::Corrupt {
                    path: pub_path,
                    reason: CorruptError::NoPublicHalf,
                })
            }
        }
        (Some(key), None) => {
            store::write_public("sa.pub", &pub_path, &key.pair.public_key_pem())?;
            Ok(false)
        }
        (None, Some(_)) => Err(PkiError::ServiceAccountKeyMissing {
            key: key_path,
            public: pub_path,
        }),
        (None, None) => {
            let k = key_type.generate().map_err(|source| PkiError::KeyGen {
                name: "sa".into(),
                source,
            })?;
            store::write_key("sa", &key_path, &Secret::new(k.serialize_pem()))?;
            store::write_public("sa.pub", &pub_path, &k.public_key_pem())?;
            info!(key = "sa", "created service-account key");
            Ok(true)
        }
    }
}

#[cfg(test)]
pub(crate) fn test_spec() -> PkiSpec {
    PkiSpec {
        node_name: "node-1".into(),
        hostname: "host-1".into(),
        advertise: "192.0.2.10".parse().unwrap(),
        api_service_ip: "10.96.0.1".parse().unwrap(),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec![],
        key_type: KeyType::EcdsaP256,
        ca_validity: DEFAULT_CA_VALIDITY,
        leaf_validity: DEFAULT_LEAF_VALIDITY,
        kubeconfig_servers: KubeconfigServers::standard(
            "https://192.0.2.10:6443",
            "https://127.0.0.1:6443",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation_gathers_every_problem() {
        let mut s = test_spec();
        s.node_name = "Node_1".into();
        s.hostname = "bad host".into();
        s.extra_sans = vec!["ok.example".into(), "no way".into()];
        s.leaf_validity = Duration::from_secs(1);
        s.kubeconfig_servers.admin = "http://x".into();
        let e = s.validate().unwrap_err().to_string();
        for part in [
            "Node_1",
            "bad host",
            "no way",
            "leaf validity",
            "admin kubeconfig",
        ] {
            assert!(e.contains(part), "{part} missing in {e}");
        }
        assert!(!e.contains("ok.example"));
        test_spec().validate().unwrap();
    }

    #[test]
    fn an_empty_report_is_empty() {
        assert!(Report::default().is_empty());
    }

    #[test]
    fn rotate_args() {
        assert_eq!(
            Pki::parse_rotate_args(&[], true).unwrap().len(),
            Leaf::ALL.len()
        );
        let names = vec![
            "apiserver".to_string(),
            "etcd-peer".into(),
            "apiserver".into(),
        ];
        assert_eq!(
            Pki::parse_rotate_args(&names, false).unwrap(),
            vec![Leaf::Apiserver, Leaf::EtcdPeer]
        );
        assert!(Pki::parse_rotate_args(&["nope".into()], false).is_err());
        assert!(matches!(
            Pki::parse_rotate_args(&["ca".into()], false),
            Err(PkiError::RotateCa { .. })
        ));
    }
}
