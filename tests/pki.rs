//! Integration tests of the PKI through its public API, checked by independent tools: the
//! `openssl` binary verifies every chain, x509-parser reads the extensions back, and a real
//! etcd accepts (and refuses) clients over mutual TLS.
//!
//! The expected profiles below are written out again on purpose rather than taken from
//! `src/pki/leaf.rs`: a test that asks the code what to expect cannot catch the code being wrong.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::{files_under, free_port, kill_group, mode, output, output_text, poll_every};
use kubesup::model::KeyType;
use kubesup::paths::{KubeconfigUser, Paths, PkiPaths};
use kubesup::pki::{
    CaKind, CertStatus, KubeconfigServers, Leaf, NodeCertKind, NodeIdentity, Pki, PkiError,
    PkiSpec, PolicyError, ReissueReason, needs_attention, sign_node_csr,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86400);
const ADVERTISE: &str = "192.0.2.10";

fn spec(key_type: KeyType) -> PkiSpec {
    PkiSpec {
        node_name: "node-1".into(),
        hostname: "host-1".into(),
        advertise: ADVERTISE.parse().unwrap(),
        api_service_ip: "10.96.0.1".parse().unwrap(),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec!["api.example.com".into(), "203.0.113.5".into()],
        key_type,
        ca_validity: 3650 * DAY,
        leaf_validity: 365 * DAY,
        kubeconfig_servers: KubeconfigServers::standard(
            &format!("https://{ADVERTISE}:6443"),
            "https://127.0.0.1:6443",
        ),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    paths: Paths,
    pki: Pki,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let pki = Pki::new(&paths);
        Self {
            _dir: dir,
            paths,
            pki,
        }
    }

    fn pp(&self) -> PkiPaths {
        self.paths.pki()
    }

    fn cert(&self, leaf: Leaf) -> PathBuf {
        leaf.paths(&self.pp()).cert
    }

    fn key(&self, leaf: Leaf) -> PathBuf {
        leaf.paths(&self.pp()).key
    }

    fn ca_cert(&self, ca: CaKind) -> PathBuf {
        ca.paths(&self.pp()).cert
    }

    /// Every file below the data dir with its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        files_under(self.paths.data_dir())
            .into_iter()
            .map(|p| {
                let bytes = fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect()
    }
}

/// Files whose bytes differ between two snapshots (added, removed or changed).
fn changed(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = output(Command::new("/usr/bin/openssl").args(args));
    (out.status.success(), output_text(&out))
}

/// `openssl verify -x509_strict -purpose P -CAfile ca leaf` must pass. `-x509_strict` makes
/// openssl insist on RFC 5280 details such as the authority key identifier.
fn assert_openssl_verifies(ca: &Path, leaf: &Path, purpose: &str) {
    assert_openssl_verifies_at(ca, leaf, purpose, unix_now());
}

/// Same, with openssl's clock set to `at` (Unix seconds), for certificates issued at a fake now.
fn assert_openssl_verifies_at(ca: &Path, leaf: &Path, purpose: &str, at: i64) {
    let at = at.to_string();
    let (ok, text) = openssl(&[
        "verify",
        "-attime",
        &at,
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        ca.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(
        ok,
        "openssl verify {} ({purpose}) failed: {text}",
        leaf.display()
    );
}

/// What a certificate says, read with x509-parser.
#[derive(Debug)]
struct Parsed {
    cn: String,
    orgs: Vec<String>,
    sans: Vec<String>,
    ca: Option<bool>,
    path_len: Option<u32>,
    digital_signature: bool,
    key_encipherment: bool,
    key_cert_sign: bool,
    crl_sign: bool,
    server_auth: bool,
    client_auth: bool,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    not_before: i64,
    not_after: i64,
    public_key_alg: String,
}

fn parse(path: &Path) -> Parsed {
    let text = fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
    let (_, x) = X509Certificate::from_der(&pem.contents).unwrap();
    let strs = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.map(|a| a.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let bc = x.basic_constraints().unwrap().map(|b| b.value.clone());
    let ku = x.key_usage().unwrap().map(|k| *k.value);
    let eku = x.extended_key_usage().unwrap().map(|e| e.value.clone());
    let mut sans = vec![];
    if let Some(s) = x.subject_alternative_name().unwrap() {
        for n in &s.value.general_names {
            sans.push(match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
                }
                other => panic!("unexpected SAN {other:?}"),
            });
        }
    }
    sans.sort();
    let mut ski = None;
    let mut aki = None;
    for e in x.extensions() {
        match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                ski = Some(k.0.to_vec())
            }
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => {}
        }
    }
    Parsed {
        cn: strs(&mut x.subject().iter_common_name()).join(","),
        orgs: strs(&mut x.subject().iter_organization()),
        sans,
        ca: bc.as_ref().map(|b| b.ca),
        path_len: bc.and_then(|b| b.path_len_constraint),
        digital_signature: ku.as_ref().is_some_and(|k| k.digital_signature()),
        key_encipherment: ku.as_ref().is_some_and(|k| k.key_encipherment()),
        key_cert_sign: ku.as_ref().is_some_and(|k| k.key_cert_sign()),
        crl_sign: ku.as_ref().is_some_and(|k| k.crl_sign()),
        server_auth: eku.as_ref().is_some_and(|e| e.server_auth),
        client_auth: eku.as_ref().is_some_and(|e| e.client_auth),
        ski,
        aki,
        not_before: x.validity().not_before.timestamp(),
        not_after: x.validity().not_after.timestamp(),
        public_key_alg: x.public_key().algorithm.algorithm.to_id_string(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The expected profile of every leaf, written out independently of the code.
/// (ca, cn, orgs, sans, serverAuth, clientAuth)
fn expected(leaf: Leaf) -> (CaKind, &'static str, Vec<String>, Vec<String>, bool, bool) {
    let node_sans = sorted(&[ADVERTISE, "127.0.0.1", "localhost", "host-1"]);
    let none = Vec::new;
    match leaf {
        Leaf::Apiserver => (
            CaKind::Cluster,
            "kube-apiserver",
            none(),
            sorted(&[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
                ADVERTISE,
                "127.0.0.1",
                "localhost",
                "host-1",
                "api.example.com",
                "203.0.113.5",
            ]),
            true,
            false,
        ),
        Leaf::ApiserverKubeletClient => (
            CaKind::Cluster,
            "kube-apiserver-kubelet-client",
            sorted(&["system:masters"]),
            none(),
            false,
            true,
        ),
        Leaf::ApiserverEtcdClient => (
            CaKind::Etcd,
            "kube-apiserver-etcd-client",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::FrontProxyClient => (
            CaKind::FrontProxy,
            "front-proxy-client",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::EtcdServer | Leaf::EtcdPeer => {
            (CaKind::Etcd, "node-1", none(), node_sans, true, true)
        }
        Leaf::EtcdHealthcheckClient => (
            CaKind::Etcd,
            "kube-etcd-healthcheck-client",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::FlannelEtcdClient => (CaKind::Etcd, "flanneld", none(), none(), false, true),
        Leaf::Admin => (
            CaKind::Cluster,
            "kubernetes-admin",
            sorted(&["system:masters"]),
            none(),
            false,
            true,
        ),
        Leaf::ControllerManager => (
            CaKind::Cluster,
            "system:kube-controller-manager",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::Scheduler => (
            CaKind::Cluster,
            "system:kube-scheduler",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::KubeProxy => (
            CaKind::Cluster,
            "system:kube-proxy",
            none(),
            none(),
            false,
            true,
        ),
        Leaf::KubeletClient => (
            CaKind::Cluster,
            "system:node:node-1",
            sorted(&["system:nodes"]),
            none(),
            false,
            true,
        ),
        Leaf::KubeletServer => (
            CaKind::Cluster,
            "system:node:node-1",
            sorted(&["system:nodes"]),
            sorted(&["node-1", "host-1", ADVERTISE, "127.0.0.1"]),
            true,
            false,
        ),
        Leaf::JoinServer => (
            CaKind::Cluster,
            "kubesup-join",
            none(),
            node_sans,
            true,
            false,
        ),
    }
}

fn check_full_pki(key_type: KeyType) {
    let f = Fixture::new();
    let s = spec(key_type);
    let report = f.pki.generate(&s).unwrap();
    assert_eq!(report.cas_created, CaKind::ALL.to_vec());
    assert_eq!(report.leaves(), Leaf::ALL.to_vec());
    assert!(report.service_account_key_created);
    assert_eq!(report.kubeconfigs_written.len(), 5);
    let now = unix_now();
    let rsa = key_type == KeyType::Rsa2048;
    let want_alg = if rsa {
        "1.2.840.113549.1.1.1"
    } else {
        "1.2.840.10045.2.1"
    };

    for ca in CaKind::ALL {
        let pair = ca.paths(&f.pp());
        let p = parse(&pair.cert);
        assert_eq!(p.ca, Some(true), "{ca}");
        assert_eq!(p.path_len, Some(0), "{ca}");
        assert!(p.key_cert_sign && p.crl_sign, "{ca}");
        assert!(p.ski.is_some(), "{ca}");
        assert_eq!(p.public_key_alg, want_alg);
        // not_before: a few minutes back, not 1975; not_after: ten years on.
        assert!(
            (now - 400..=now - 290).contains(&p.not_before),
            "{ca} {p:?}"
        );
        assert!((p.not_after - (now + 3650 * 86400)).abs() < 60, "{ca}");
        assert_eq!(mode(&pair.key), 0o600);
        assert_eq!(mode(&pair.cert), 0o644);
        // A self-signed CA verifies against itself.
        assert_openssl_verifies(&pair.cert, &pair.cert, "any");
    }

    for leaf in Leaf::ALL {
        let (ca, cn, orgs, sans, server, client) = expected(leaf);
        let p = parse(&f.cert(leaf));
        let ca_p = parse(&f.ca_cert(ca));
        assert_eq!(p.cn, cn, "{leaf}");
        assert_eq!(p.orgs, orgs, "{leaf}");
        assert_eq!(p.sans, sans, "{leaf}");
        assert_eq!((p.server_auth, p.client_auth), (server, client), "{leaf}");
        assert_eq!(p.ca, Some(false), "{leaf}");
        assert!(
            p.digital_signature && !p.key_cert_sign && !p.crl_sign,
            "{leaf}"
        );
        assert_eq!(p.key_encipherment, rsa, "{leaf}");
        assert_eq!(p.aki, ca_p.ski, "{leaf}: AKI must be the CA's SKI");
        assert!(p.aki.is_some() && p.ski.is_some(), "{leaf}");
        assert_eq!(p.public_key_alg, want_alg, "{leaf}");
        assert!((now - 400..=now - 290).contains(&p.not_before), "{leaf}");
        assert!((p.not_after - (now + 365 * 86400)).abs() < 60, "{leaf}");
        assert_eq!(mode(&f.key(leaf)), 0o600, "{leaf}");
        assert_eq!(mode(&f.cert(leaf)), 0o644, "{leaf}");
        let ca_file = f.ca_cert(ca);
        if server {
            assert_openssl_verifies(&ca_file, &f.cert(leaf), "sslserver");
        }
        if client {
            assert_openssl_verifies(&ca_file, &f.cert(leaf), "sslclient");
        }
        // And not by another CA.
        let wrong = if ca == CaKind::Cluster {
            CaKind::Etcd
        } else {
            CaKind::Cluster
        };
        let (ok, _) = openssl(&[
            "verify",
            "-CAfile",
            f.ca_cert(wrong).to_str().unwrap(),
            f.cert(leaf).to_str().unwrap(),
        ]);
        assert!(!ok, "{leaf} must not verify against {wrong}");
        // The key on disk is the certificate's key.
        let (_, cert_pub) = openssl(&[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            f.cert(leaf).to_str().unwrap(),
        ]);
        let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", f.key(leaf).to_str().unwrap()]);
        assert_eq!(cert_pub, key_pub, "{leaf}");
    }

    // Service-account key pair.
    let sa_pub = fs::read_to_string(f.pp().sa_pub()).unwrap();
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"), "{sa_pub}");
    assert_eq!(mode(&f.pp().sa_key()), 0o600);
    let (_, derived) = openssl(&["pkey", "-pubout", "-in", f.pp().sa_key().to_str().unwrap()]);
    assert_eq!(derived, sa_pub);

    // Kubeconfigs: embedded data equals the files, server per user, 0600.
    let b64 = |v: &serde_yaml_ng::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let ca_pem = fs::read(f.ca_cert(CaKind::Cluster)).unwrap();
    for (user, leaf, server) in [
        (
            KubeconfigUser::Admin,
            Leaf::Admin,
            format!("https://{ADVERTISE}:6443"),
        ),
        (
            KubeconfigUser::ControllerManager,
            Leaf::ControllerManager,
            "https://127.0.0.1:6443".into(),
        ),
        (
            KubeconfigUser::Scheduler,
            Leaf::Scheduler,
            "https://127.0.0.1:6443".into(),
        ),
        (
            KubeconfigUser::Kubelet,
            Leaf::KubeletClient,
            format!("https://{ADVERTISE}:6443"),
        ),
        (
            KubeconfigUser::KubeProxy,
            Leaf::KubeProxy,
            format!("https://{ADVERTISE}:6443"),
        ),
    ] {
        let path = f.paths.kubeconfig(user);
        assert_eq!(mode(&path), 0o600, "{path:?}");
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let cluster = &v["clusters"][0]["cluster"];
        assert_eq!(
            cluster["server"].as_str(),
            Some(server.as_str()),
            "{path:?}"
        );
        assert_eq!(b64(&cluster["certificate-authority-data"]), ca_pem);
        let u = &v["users"][0]["user"];
        assert_eq!(
            b64(&u["client-certificate-data"]),
            fs::read(f.cert(leaf)).unwrap()
        );
        assert_eq!(b64(&u["client-key-data"]), fs::read(f.key(leaf)).unwrap());
        assert_eq!(v["users"][0]["name"].as_str(), Some(expected(leaf).1));
    }

    // certs check: everything fine.
    let rows = f.pki.check(SystemTime::now());
    assert_eq!(rows.len(), 3 + Leaf::ALL.len());
    assert!(rows.iter().all(|r| r.status == CertStatus::Ok), "{rows:?}");
    assert!(!needs_attention(&rows));
}

#[test]
fn pki_full_ecdsa_verifies_and_has_the_right_extensions() {
    check_full_pki(KeyType::EcdsaP256);
}

#[test]
fn pki_full_rsa_verifies_and_has_the_right_extensions() {
    check_full_pki(KeyType::Rsa2048);
}

#[test]
fn pki_second_generate_changes_nothing() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let before = f.snapshot();
    let report = f.pki.generate(&s).unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert!(changed(&before, &f.snapshot()).is_empty());
}

#[test]
fn pki_advertise_change_reissues_only_the_certs_that_name_it() {
    let f = Fixture::new();
    let mut s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let before = f.snapshot();

    s.advertise = "192.0.2.77".parse().unwrap();
    s.kubeconfig_servers =
        KubeconfigServers::standard("https://192.0.2.77:6443", "https://127.0.0.1:6443");
    let report = f.pki.generate(&s).unwrap();
    let want = vec![
        Leaf::Apiserver,
        Leaf::EtcdServer,
        Leaf::EtcdPeer,
        Leaf::KubeletServer,
        Leaf::JoinServer,
    ];
    assert_eq!(report.leaves(), want);
    assert!(
        report.issued.iter().all(
            |i| matches!(&i.reason, ReissueReason::SpecChanged(d) if d.contains("192.0.2.77"))
        )
    );
    let mut want_files: Vec<PathBuf> = want.iter().map(|l| f.cert(*l)).collect();
    for u in [
        KubeconfigUser::Admin,
        KubeconfigUser::Kubelet,
        KubeconfigUser::KubeProxy,
    ] {
        want_files.push(f.paths.kubeconfig(u));
    }
    want_files.sort();
    // Keys are kept (renewed certificates reuse them), everything else is byte-identical.
    assert_eq!(changed(&before, &f.snapshot()), want_files);
    assert!(
        parse(&f.cert(Leaf::Apiserver))
            .sans
            .contains(&"192.0.2.77".to_string())
    );
    assert_openssl_verifies(
        &f.ca_cert(CaKind::Etcd),
        &f.cert(Leaf::EtcdPeer),
        "sslserver",
    );
    assert_eq!(
        kubesup::plan::components_to_restart(&report),
        vec![
            kubesup::model::Component::Etcd,
            kubesup::model::Component::KubeApiserver,
            kubesup::model::Component::Kubelet,
            kubesup::model::Component::KubeProxy,
        ]
    );
}

#[test]
fn pki_leaf_in_its_renewal_window_is_reissued_and_scheduled() {
    let f = Fixture::new();
    let mut s = spec(KeyType::EcdsaP256);
    let t0 = SystemTime::now();
    f.pki.generate_at(&s, t0).unwrap();
    // Give the apiserver alone a short life: 3 h, so its window opens 2 h in.
    s.leaf_validity = Duration::from_secs(3 * 3600);
    f.pki.rotate(&s, &[Leaf::Apiserver]).unwrap();
    s.leaf_validity = 365 * DAY;

    // The next renewal is the apiserver's, two hours (+ up to 4 % jitter) after issue.
    let (when, due) = f.pki.next_renewal(t0).unwrap();
    assert_eq!(due, vec![Leaf::Apiserver]);
    let p = parse(&f.cert(Leaf::Apiserver));
    let window = SystemTime::UNIX_EPOCH
        + Duration::from_secs((p.not_before + (p.not_after - p.not_before) * 2 / 3) as u64);
    let jitter_max = Duration::from_secs(((p.not_after - p.not_before) * 4 / 100 + 1) as u64);
    assert!(
        when >= window && when <= window + jitter_max,
        "{when:?} vs {window:?}"
    );

    // Before the window: nothing. Inside it: only the apiserver, with the old key.
    let before = f.snapshot();
    assert!(
        f.pki
            .renew_due(&s, window - Duration::from_secs(60))
            .unwrap()
            .is_empty()
    );
    assert!(changed(&before, &f.snapshot()).is_empty());
    let renewed = f.pki.renew_due(&s, when).unwrap();
    assert_eq!(renewed, vec![Leaf::Apiserver]);
    assert_eq!(
        changed(&before, &f.snapshot()),
        vec![f.cert(Leaf::Apiserver)]
    );
    let at = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_openssl_verifies_at(
        &f.ca_cert(CaKind::Cluster),
        &f.cert(Leaf::Apiserver),
        "sslserver",
        at,
    );
    assert_eq!(
        kubesup::plan::leaf_readers(Leaf::Apiserver),
        &[kubesup::model::Component::KubeApiserver]
    );

    // Eight months on, every one-year leaf is in its window; CAs are not touched.
    let before = f.snapshot();
    let report = f.pki.generate_at(&s, t0 + 250 * DAY).unwrap();
    assert_eq!(report.leaves().len(), Leaf::ALL.len());
    assert!(report.cas_created.is_empty());
    for ca in CaKind::ALL {
        let pair = ca.paths(&f.pp());
        assert!(!changed(&before, &f.snapshot()).contains(&pair.cert));
        assert!(!changed(&before, &f.snapshot()).contains(&pair.key));
    }
}

#[test]
fn pki_check_reports_expiry_and_missing_files() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let now = SystemTime::now();
    let rows = f.pki.check(now + 250 * DAY);
    let apiserver = rows.iter().find(|r| r.name == "apiserver").unwrap();
    assert_eq!(apiserver.status, CertStatus::RenewSoon);
    assert!(!needs_attention(&rows), "114 days left is not an alarm");
    let rows = f.pki.check(now + 340 * DAY);
    assert!(needs_attention(&rows));
    let rows = f.pki.check(now + 366 * DAY);
    let apiserver = rows.iter().find(|r| r.name == "apiserver").unwrap();
    assert_eq!(apiserver.status, CertStatus::Expired);
    assert!(apiserver.days_left.unwrap() < 0);
    let ca = rows.iter().find(|r| r.name == "ca").unwrap();
    assert_eq!(ca.status, CertStatus::Ok);

    fs::remove_file(f.cert(Leaf::Scheduler)).unwrap();
    let rows = f.pki.check(now);
    assert!(needs_attention(&rows));
    let table = kubesup::pki::render_table(&rows);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("scheduler ") && l.ends_with("missing")),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&kubesup::pki::render_json(&rows).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 18);
}

#[test]
fn pki_corrupted_file_is_an_error_naming_it_and_is_left_alone() {
    for (leaf, is_key) in [(Leaf::Apiserver, false), (Leaf::EtcdPeer, true)] {
        let f = Fixture::new();
        let s = spec(KeyType::EcdsaP256);
        f.pki.generate(&s).unwrap();
        let path = if is_key { f.key(leaf) } else { f.cert(leaf) };
        fs::write(&path, b"this is not a PEM file\n").unwrap();
        let before = f.snapshot();
        // With a moved advertise IP the run would re-issue the apiserver (ordered before
        // etcd-peer) too; a bad file anywhere must stop the run before its first write.
        let mut moved = s.clone();
        moved.advertise = "192.0.2.77".parse().unwrap();
        let err = f.pki.generate(&moved).unwrap_err();
        assert!(matches!(err, PkiError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        assert!(changed(&before, &f.snapshot()).is_empty());
        // rotate refuses too, and check reports it.
        assert!(f.pki.rotate(&s, &[leaf]).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"this is not a PEM file\n");
        if !is_key {
            let rows = f.pki.check(SystemTime::now());
            let r = rows.iter().find(|r| r.name == leaf.name()).unwrap();
            assert_eq!(r.status, CertStatus::Unreadable);
        }
    }
}

#[test]
fn pki_a_ca_is_never_replaced() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let ca = CaKind::Cluster.paths(&f.pp());

    // Key deleted: error, no new CA, no new key.
    let saved_key = fs::read(&ca.key).unwrap();
    fs::remove_file(&ca.key).unwrap();
    let before = f.snapshot();
    let err = f.pki.generate(&s).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(ca.key.to_str().unwrap()));
    assert!(changed(&before, &f.snapshot()).is_empty());
    assert!(!ca.key.exists());

    // Another key in its place: error.
    fs::copy(CaKind::Etcd.paths(&f.pp()).key, &ca.key).unwrap();
    let before = f.snapshot();
    let err = f.pki.generate(&s).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err:?}");
    assert!(changed(&before, &f.snapshot()).is_empty());

    // Back to normal once the key is restored.
    fs::write(&ca.key, saved_key).unwrap();
    assert!(f.pki.generate(&s).unwrap().is_empty());
}

#[test]
fn pki_the_service_account_key_is_never_replaced() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let (key, public) = (f.pp().sa_key(), f.pp().sa_pub());
    // sa.pub lost: re-derived from sa.key, identical bytes.
    let pub_bytes = fs::read(&public).unwrap();
    fs::remove_file(&public).unwrap();
    f.pki.generate(&s).unwrap();
    assert_eq!(fs::read(&public).unwrap(), pub_bytes);
    // sa.key lost: error, nothing written.
    fs::remove_file(&key).unwrap();
    let before = f.snapshot();
    let err = f.pki.generate(&s).unwrap_err();
    assert!(
        matches!(err, PkiError::ServiceAccountKeyMissing { .. }),
        "{err:?}"
    );
    assert!(changed(&before, &f.snapshot()).is_empty());
    assert!(!key.exists());
}

/// Captures everything the PKI logs at debug level and checks that no key material is in it.
#[test]
fn pki_nothing_logged_or_debug_printed_contains_key_material() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    let mut debug_prints = String::new();
    tracing::subscriber::with_default(subscriber, || {
        let r = f.pki.generate(&s).unwrap();
        debug_prints.push_str(&format!("{r:?}"));
        f.pki.generate(&s).unwrap();
        let r = f.pki.rotate(&s, &Leaf::ALL).unwrap();
        debug_prints.push_str(&format!("{r:?}"));
        let ca = f.pki.load_ca(CaKind::Cluster).unwrap();
        debug_prints.push_str(&format!("{ca:?}"));
    });
    let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("issued") && logged.contains("kept"),
        "{logged}"
    );
    let ca_key = fs::read_to_string(CaKind::Cluster.paths(&f.pp()).key).unwrap();
    let key_body = ca_key.lines().nth(1).unwrap();
    for text in [&logged, &debug_prints] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(key_body));
    }
}

#[test]
fn pki_leaves_follow_a_deliberately_replaced_ca() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    // The operator removes both etcd CA files on purpose: a new etcd CA is made, and every
    // leaf it signs is re-issued; the rest stay.
    let etcd = CaKind::Etcd.paths(&f.pp());
    fs::remove_file(&etcd.cert).unwrap();
    fs::remove_file(&etcd.key).unwrap();
    let report = f.pki.generate(&s).unwrap();
    assert_eq!(report.cas_created, vec![CaKind::Etcd]);
    let etcd_leaves: Vec<Leaf> = Leaf::ALL
        .into_iter()
        .filter(|l| l.ca() == CaKind::Etcd)
        .collect();
    assert_eq!(report.leaves(), etcd_leaves);
    assert!(
        report
            .issued
            .iter()
            .all(|i| i.reason == ReissueReason::IssuerChanged)
    );
    for l in etcd_leaves {
        assert_openssl_verifies(&etcd.cert, &f.cert(l), "sslclient");
    }
}

#[test]
fn pki_a_failed_write_keeps_the_old_key() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let key = f.key(Leaf::Apiserver);
    let cert = f.cert(Leaf::Apiserver);

    // A stale temp file from a crashed run (another pid) changes nothing.
    let stale = key.with_file_name("apiserver.key.tmp.999999");
    fs::write(&stale, b"-----BEGIN PRIVATE KEY-----\nhalf").unwrap();
    let before = f.snapshot();
    assert!(f.pki.generate(&s).unwrap().is_empty());
    assert!(changed(&before, &f.snapshot()).is_empty());
    fs::remove_file(&stale).unwrap();

    // The key write of a rotation fails (its temp file cannot be created): error, old pair
    // intact and consistent.
    let before = f.snapshot();
    let blocker = kubesup::fsutil::temp_path(&key);
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("x"), b"").unwrap();
    let err = f.pki.rotate(&s, &[Leaf::Apiserver]).unwrap_err();
    assert!(matches!(err, PkiError::Store { .. }), "{err:?}");
    fs::remove_dir_all(&blocker).unwrap();
    assert!(changed(&before, &f.snapshot()).is_empty());
    assert!(f.pki.generate(&s).unwrap().is_empty());

    // The certificate write fails after the new key landed (a crash between the two renames):
    // the next run certifies the key on disk instead of losing it.
    let blocker = kubesup::fsutil::temp_path(&cert);
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("x"), b"").unwrap();
    let old_cert = fs::read(&cert).unwrap();
    assert!(f.pki.rotate(&s, &[Leaf::Apiserver]).is_err());
    fs::remove_dir_all(&blocker).unwrap();
    assert_eq!(fs::read(&cert).unwrap(), old_cert);
    let new_key = fs::read(&key).unwrap();
    let report = f.pki.generate(&s).unwrap();
    assert_eq!(report.issued.len(), 1);
    assert_eq!(report.issued[0].reason, ReissueReason::KeyMismatch);
    assert_eq!(fs::read(&key).unwrap(), new_key);
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", key.to_str().unwrap()]);
    assert_eq!(cert_pub, key_pub);
}

#[test]
fn pki_rotate_reissues_named_leaves_with_new_keys_and_never_cas() {
    let f = Fixture::new();
    let s = spec(KeyType::EcdsaP256);
    f.pki.generate(&s).unwrap();
    let before = f.snapshot();
    let report = f.pki.rotate(&s, &[Leaf::Admin, Leaf::EtcdServer]).unwrap();
    assert_eq!(report.leaves(), vec![Leaf::EtcdServer, Leaf::Admin]);
    let mut want = vec![
        f.cert(Leaf::Admin),
        f.key(Leaf::Admin),
        f.cert(Leaf::EtcdServer),
        f.key(Leaf::EtcdServer),
        f.paths.kubeconfig(KubeconfigUser::Admin),
    ];
    want.sort();
    assert_eq!(changed(&before, &f.snapshot()), want);

    let all = Pki::parse_rotate_args(&[], true).unwrap();
    let report = f.pki.rotate(&s, &all).unwrap();
    assert_eq!(report.leaves(), Leaf::ALL.to_vec());
    assert!(report.cas_created.is_empty());
    let after = f.snapshot();
    for ca in CaKind::ALL {
        assert_eq!(
            before[&ca.paths(&f.pp()).key],
            after[&ca.paths(&f.pp()).key]
        );
        assert_eq!(
            before[&ca.paths(&f.pp()).cert],
            after[&ca.paths(&f.pp()).cert]
        );
    }

    let err = Pki::parse_rotate_args(&["apiservr".into()], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("apiservr") && err.contains("front-proxy-client"),
        "{err}"
    );
    let err = Pki::parse_rotate_args(&["front-proxy-ca".into()], false).unwrap_err();
    assert!(matches!(err, PkiError::RotateCa { .. }));

    // Rotation never creates a CA.
    let empty = Fixture::new();
    assert!(matches!(
        empty.pki.rotate(&s, &[Leaf::Admin]),
        Err(PkiError::CaMissing { .. })
    ));
}

/// A CSR made by openssl, as a worker that is not kubesup would.
fn openssl_csr(dir: &Path, subj: &str, sans: Option<&str>) -> String {
    let key = dir.join("csr.key");
    let csr = dir.join("csr.pem");
    let (ok, t) = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{t}");
    let mut args = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ];
    let ext;
    if let Some(s) = sans {
        ext = format!("subjectAltName={s}");
        args.extend(["-addext", &ext]);
    }
    let (ok, t) = openssl(&args);
    assert!(ok, "{t}");
    fs::read_to_string(csr).unwrap()
}

#[test]
fn pki_node_csrs_are_signed_only_for_the_requesting_node() {
    let f = Fixture::new();
    f.pki.generate(&spec(KeyType::EcdsaP256)).unwrap();
    let ca = f.pki.load_ca(CaKind::Cluster).unwrap();
    assert!(format!("{ca:?}").contains("***"));
    let node = NodeIdentity {
        name: "worker-1".into(),
        ips: vec!["192.0.2.21".parse().unwrap()],
    };
    let tmp = tempfile::tempdir().unwrap();
    let sign = |csr: &str, kind| sign_node_csr(&ca, csr, &node, kind, 365 * DAY);

    // Good requests are signed and verify with openssl.
    for (subj, sans, kind, purpose) in [
        (
            "/CN=system:node:worker-1/O=system:nodes",
            None,
            NodeCertKind::KubeletClient,
            "sslclient",
        ),
        (
            "/CN=system:node:worker-1/O=system:nodes",
            Some("DNS:worker-1,IP:192.0.2.21"),
            NodeCertKind::KubeletServing,
            "sslserver",
        ),
        (
            "/CN=system:kube-proxy",
            None,
            NodeCertKind::KubeProxy,
            "sslclient",
        ),
    ] {
        let pem = sign(&openssl_csr(tmp.path(), subj, sans), kind).unwrap();
        let out = tmp.path().join("signed.crt");
        fs::write(&out, pem).unwrap();
        assert_openssl_verifies(&f.ca_cert(CaKind::Cluster), &out, purpose);
        let p = parse(&out);
        assert_eq!(p.ca, Some(false));
        assert!(p.aki.is_some());
    }

    // Forbidden requests, each with its own error.
    let refused = |subj: &str, sans: Option<&str>, kind| {
        sign(&openssl_csr(tmp.path(), subj, sans), kind).unwrap_err()
    };
    // system:masters hidden as a second O (rcgen alone would only see one of them).
    assert!(matches!(
        refused(
            "/CN=system:node:worker-1/O=system:nodes/O=system:masters",
            None,
            NodeCertKind::KubeletClient
        ),
        PolicyError::SystemMasters
    ));
    assert!(matches!(
        refused(
            "/CN=system:node:worker-2/O=system:nodes",
            None,
            NodeCertKind::KubeletClient
        ),
        PolicyError::WrongNode { .. }
    ));
    assert!(matches!(
        refused(
            "/CN=system:node:worker-1/O=system:authenticated",
            None,
            NodeCertKind::KubeletClient
        ),
        PolicyError::WrongOrganization { .. }
    ));
    assert!(matches!(
        refused(
            "/CN=system:node:worker-1/O=system:nodes",
            Some("DNS:worker-1,IP:192.0.2.22"),
            NodeCertKind::KubeletServing
        ),
        PolicyError::ForeignSan { .. }
    ));
    assert!(matches!(
        refused(
            "/CN=system:node:worker-1/O=system:nodes",
            Some("DNS:kubernetes"),
            NodeCertKind::KubeletServing
        ),
        PolicyError::ForeignSan { .. }
    ));
    // CA:true through openssl's own extension syntax.
    let key = tmp.path().join("ca-req.key");
    let csr = tmp.path().join("ca-req.csr");
    assert!(
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key.to_str().unwrap()
        ])
        .0
    );
    let (ok, t) = openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=system:node:worker-1/O=system:nodes",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(ok, "{t}");
    assert!(matches!(
        sign(
            &fs::read_to_string(&csr).unwrap(),
            NodeCertKind::KubeletClient
        ),
        Err(PolicyError::CaRequested)
    ));
}

// ---------------------------------------------------------------------------------------------
// etcd over mutual TLS

/// Kills the etcd it owns (its own process group) when dropped, so a failing assertion does
/// not leak it.
struct EtcdGuard {
    child: Child,
}

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Waits for a binary another job is still installing; checks every 5 s, which is plenty for
/// an install that takes minutes.
fn wait_for_binary(path: &Path, deadline: Duration) -> bool {
    poll_every(Duration::from_secs(5), deadline, || {
        path.exists().then_some(())
    })
    .is_some()
}

fn etcdctl_health(endpoint: &str, ca: &Path, cert: &Path, key: &Path) -> (bool, String) {
    let out = output(
        Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                endpoint,
                "--cacert",
                ca.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--dial-timeout",
                "3s",
                "--command-timeout",
                "5s",
                "endpoint",
                "health",
            ]),
    );
    (out.status.success(), output_text(&out))
}

#[test]
fn pki_etcd_accepts_our_client_cert_and_refuses_another_cas() {
    let etcd = Path::new("/usr/bin/etcd");
    let etcdctl = Path::new("/usr/bin/etcdctl");
    assert!(
        wait_for_binary(etcd, Duration::from_secs(600))
            && wait_for_binary(etcdctl, Duration::from_secs(60)),
        "etcd/etcdctl not installed (Debian etcd-server, etcd-client)"
    );
    let f = Fixture::new();
    f.pki.generate(&spec(KeyType::EcdsaP256)).unwrap();
    let other = Fixture::new();
    other.pki.generate(&spec(KeyType::EcdsaP256)).unwrap();

    let pp = f.pp();
    let (client_port, peer_port) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("https://127.0.0.1:{peer_port}");
    let data = tempfile::tempdir().unwrap();
    let log = fs::File::create(data.path().join("etcd.log")).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let child = Command::new(etcd)
        .args([
            "--name",
            "default",
            "--data-dir",
            &s(&data.path().join("data")),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--cert-file",
            &s(&pp.etcd_server().cert),
            "--key-file",
            &s(&pp.etcd_server().key),
            "--client-cert-auth",
            "--trusted-ca-file",
            &s(&pp.etcd_ca().cert),
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("default={peer_url}"),
            "--peer-cert-file",
            &s(&pp.etcd_peer().cert),
            "--peer-key-file",
            &s(&pp.etcd_peer().key),
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            &s(&pp.etcd_ca().cert),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let _guard = EtcdGuard { child };

    let hc = pp.etcd_healthcheck_client();
    let mut last = String::new();
    let healthy = poll_every(Duration::from_millis(250), Duration::from_secs(60), || {
        let (ok, out) = etcdctl_health(&client_url, &pp.etcd_ca().cert, &hc.cert, &hc.key);
        last = out;
        ok.then(|| last.clone())
    });
    let Some(out) = healthy else {
        panic!(
            "etcd never became healthy: {last}\netcd log:\n{}",
            fs::read_to_string(data.path().join("etcd.log")).unwrap_or_default()
        );
    };
    assert!(out.contains("is healthy"), "{out}");
    // apiserver-etcd-client works too.
    let api = pp.apiserver_etcd_client();
    assert!(etcdctl_health(&client_url, &pp.etcd_ca().cert, &api.cert, &api.key).0);

    // A client cert from another etcd CA is refused by etcd's client-cert-auth.
    let foreign = other.pp().etcd_healthcheck_client();
    let (ok, out) = etcdctl_health(&client_url, &pp.etcd_ca().cert, &foreign.cert, &foreign.key);
    assert!(!ok, "a foreign client cert was accepted: {out}");
    // And a cluster-CA client cert of our own PKI is refused as well: etcd trusts its own CA only.
    let admin = pp.admin();
    let (ok, out) = etcdctl_health(&client_url, &pp.etcd_ca().cert, &admin.cert, &admin.key);
    assert!(!ok, "a cluster-CA client cert was accepted by etcd: {out}");
}
