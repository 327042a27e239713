//! The join API against its client, over real TLS on 127.0.0.1, with a PKI made by kubesup.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::DataDir;
use kubesup::http::{Client, Trust};
use kubesup::join::client::{self, ClientError};
use kubesup::join::server::{self, JoinContext};
use kubesup::join::store::TokenRecord;
use kubesup::join::store::{Backend, MemoryBackend};
use kubesup::join::tls;
use kubesup::join::token::{Token, ca_pin};
use kubesup::join::{JoinRequest, JoinResponse};
use kubesup::model::KeyType;
use kubesup::paths::Paths;
use kubesup::pki::{CaKind, KubeconfigServers, Pki, PkiSpec};
use x509_parser::prelude::*;

struct Master {
    url: String,
    token: Token,
    expired: Token,
    _dir: DataDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Master {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(t: &Token, expires: Option<SystemTime>) -> TokenRecord {
    TokenRecord {
        id: t.id.clone(),
        secret_sha256: t.secret_hash(),
        role: kubesup::model::Role::Worker,
        description: None,
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        expires: expires.map(|e| humantime::format_rfc3339_seconds(e).to_string()),
    }
}

async fn master(force: bool) -> Master {
    master_with(force, false).await
}

/// A master whose cluster runs flannel signs flanneld's etcd client CSR with the etcd CA.
async fn master_with(force: bool, flannel: bool) -> Master {
    let dir = DataDir::new();
    let paths = Paths::new(&dir.data);
    let pki = Pki::new(&paths);
    let spec = PkiSpec {
        node_name: "master".into(),
        hostname: "master".into(),
        advertise: "127.0.0.1".parse().unwrap(),
        api_service_ip: "10.3.0.1".parse().unwrap(),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec![],
        key_type: KeyType::EcdsaP256,
        ca_validity: Duration::from_secs(86400 * 3650),
        leaf_validity: Duration::from_secs(86400 * 365),
        kubeconfig_servers: KubeconfigServers::standard(
            "https://127.0.0.1:6443",
            "https://127.0.0.1:6443",
        ),
    };
    pki.generate(&spec).unwrap();
    let ca = pki.load_ca(CaKind::Cluster).unwrap();
    let pin = ca_pin(ca.cert_pem()).unwrap();
    let (token, expired) = (Token::generate(&pin), Token::generate(&pin));
    let mut mem = MemoryBackend::default();
    mem.tokens.insert(
        token.id.clone(),
        record(&token, Some(SystemTime::now() + Duration::from_secs(3600))),
    );
    mem.tokens.insert(
        expired.id.clone(),
        record(&expired, Some(SystemTime::now() - Duration::from_secs(1))),
    );
    let cluster = common::cluster_info("https://127.0.0.1:6443", "https://127.0.0.1:2379");
    let mut ctx = JoinContext::new(
        ca,
        cluster,
        Backend::Memory(Mutex::new(mem)),
        force,
        Duration::from_secs(86400),
    );
    if flannel {
        ctx.etcd_ca = Some(pki.load_ca(CaKind::Etcd).unwrap());
    }
    let ctx = Arc::new(ctx);
    let join = paths.pki().join_server();
    let tls = tls::tls_config(
        &std::fs::read(&join.cert).unwrap(),
        &std::fs::read(&join.key).unwrap(),
        &std::fs::read(paths.pki().ca().cert).unwrap(),
    )
    .unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(server::serve(listener, tls, ctx));
    Master {
        url,
        token,
        expired,
        _dir: dir,
        task,
    }
}

fn ips() -> Vec<IpAddr> {
    vec!["10.77.0.3".parse().unwrap()]
}

fn subject_cn(pem: &str) -> String {
    let (_, p) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_node_joins_with_one_token_and_its_keys_stay_local() {
    let m = master(false).await;
    let joined = client::join(&m.url, &m.token, "w1", &ips(), false)
        .await
        .unwrap();
    let r = &joined.response;
    assert_eq!(subject_cn(&r.kubelet_client_cert), "system:node:w1");
    assert_eq!(subject_cn(&r.kubelet_serving_cert), "system:node:w1");
    assert_eq!(subject_cn(&r.kube_proxy_cert), "system:kube-proxy");
    assert_eq!(r.cluster.cluster_dns, "10.3.0.10");
    assert_eq!(ca_pin(&r.ca).unwrap(), m.token.ca_pin);
    assert!(joined.keys.kubelet_client.expose().contains("PRIVATE KEY"));
}

fn issuer_cn(pem: &str) -> String {
    let (_, p) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    cert.issuer()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn flanneld_gets_an_etcd_client_cert_only_when_the_cluster_runs_flannel() {
    let m = master_with(false, true).await;
    let joined = client::join(&m.url, &m.token, "w1", &ips(), true)
        .await
        .unwrap();
    let r = &joined.response;
    let cert = r.flannel_etcd_cert.as_deref().expect("a flannel cert");
    let etcd_ca = r.etcd_ca.as_deref().expect("the etcd CA");
    assert_eq!(subject_cn(cert), "flannel");
    assert_eq!(issuer_cn(cert), subject_cn(etcd_ca));
    assert_ne!(issuer_cn(cert), issuer_cn(&r.kubelet_client_cert));
    assert!(joined.keys.flannel_etcd.is_some());

    // A cluster without flannel ignores the CSR: no etcd credentials leave the master.
    let plain = master(false).await;
    let joined = client::join(&plain.url, &plain.token, "w1", &ips(), true)
        .await
        .unwrap();
    assert!(joined.response.flannel_etcd_cert.is_none());
    assert!(joined.response.etcd_ca.is_none());
}

#[tokio::test]
async fn a_token_for_another_ca_stops_before_the_secret_is_sent() {
    let m = master(false).await;
    let wrong = Token::parse(
        &m.token
            .expose()
            .replacen(&m.token.ca_pin, &"0".repeat(64), 1),
    )
    .unwrap();
    match client::join(&m.url, &wrong, "w1", &ips(), false).await {
        Err(ClientError::PinMismatch { expected, .. }) => assert_eq!(expected, "0".repeat(64)),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("joined with a wrong pin"),
    }
}

async fn refused(m: &Master, t: &Token) -> (u16, String) {
    match client::join(&m.url, t, "w1", &ips(), false).await {
        Err(ClientError::Refused { status, message }) => (status, message),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("joined with {t:?}"),
    }
}

#[tokio::test]
async fn wrong_unknown_and_expired_tokens_are_refused_alike() {
    let m = master(false).await;
    let wrong_secret = Token::parse(&format!(
        "{}aaaaaaaaaaaaaaaa",
        &m.token.expose()[..m.token.expose().len() - 16]
    ))
    .unwrap();
    let unknown = Token::generate(&m.token.ca_pin);
    for t in [&wrong_secret, &unknown, &m.expired] {
        let (status, message) = refused(&m, t).await;
        assert_eq!(status, 401);
        assert_eq!(message, "invalid, expired or revoked join token");
    }
}

#[tokio::test]
async fn failed_attempts_are_rate_limited_per_source() {
    let m = master(false).await;
    let unknown = Token::generate(&m.token.ca_pin);
    for _ in 0..server::MAX_FAILURES {
        assert_eq!(refused(&m, &unknown).await.0, 401);
    }
    // Even the right token is turned away until the window passes.
    assert_eq!(refused(&m, &m.token).await.0, 429);
}

#[tokio::test]
async fn bodies_are_size_limited() {
    let m = master(false).await;
    let http = Client::builder().trust(Trust::AnyCert).build().unwrap();
    let bearer = m.token.expose();
    let bearer = bearer.split_once("::").unwrap().1;
    let resp = http
        .post(&format!("{}/v1/join", m.url))
        .bearer(bearer)
        .body("application/json", vec![b'x'; server::MAX_BODY + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
}

#[tokio::test]
async fn a_node_name_cannot_be_taken_over_unless_the_master_forces_it() {
    let m = master(false).await;
    client::join(&m.url, &m.token, "w1", &ips(), false)
        .await
        .unwrap();
    let (status, message) = refused(&m, &m.token).await;
    assert_eq!(status, 409);
    assert!(
        message.contains("already joined with another key"),
        "{message}"
    );
    let forced = master(true).await;
    client::join(&forced.url, &forced.token, "w1", &ips(), false)
        .await
        .unwrap();
    client::join(&forced.url, &forced.token, "w1", &ips(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_csr_for_another_node_is_refused() {
    let m = master(false).await;
    // A legitimate request for w1, sent as node w2.
    let (key, params) = node_w1();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let req = JoinRequest {
        node_name: "w2".into(),
        node_ips: ips(),
        kubelet_client_csr: csr.clone(),
        kubelet_serving_csr: csr.clone(),
        kube_proxy_csr: csr,
        flannel_etcd_csr: None,
    };
    let http = Client::builder().trust(Trust::AnyCert).build().unwrap();
    let bearer = m.token.expose();
    let resp = http
        .post(&format!("{}/v1/join", m.url))
        .bearer(bearer.split_once("::").unwrap().1)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().await.unwrap().contains("w2"));
}

/// A key and the subject a kubelet client certificate of node w1 has, made outside the join API.
fn node_w1() -> (rcgen::KeyPair, rcgen::CertificateParams) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:w1");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    (key, params)
}

fn as_creds(c: &(String, String, String)) -> client::NodeCredentials<'_> {
    client::NodeCredentials {
        ca: &c.0,
        cert: &c.1,
        key: &c.2,
    }
}

fn key_of(pem: &str) -> Vec<u8> {
    let (_, p) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    cert.public_key().raw.to_vec()
}

#[tokio::test]
async fn a_joined_node_renews_with_its_current_certificate_and_only_for_itself() {
    let m = master_with(false, true).await;
    let joined = client::join(&m.url, &m.token, "w1", &ips(), true)
        .await
        .unwrap();
    let r = &joined.response;
    let creds = |resp: &JoinResponse, keys: &client::NodeKeys| {
        (
            resp.ca.clone(),
            resp.kubelet_client_cert.clone(),
            keys.kubelet_client.expose().to_string(),
        )
    };
    let first = creds(r, &joined.keys);

    // Renewed: new certificates for new keys, the same identities, flanneld's included.
    let renewed = client::renew(&m.url, &as_creds(&first), "w1", &ips(), true)
        .await
        .unwrap();
    let n = &renewed.response;
    assert_eq!(subject_cn(&n.kubelet_client_cert), "system:node:w1");
    assert_eq!(subject_cn(&n.kubelet_serving_cert), "system:node:w1");
    assert_eq!(subject_cn(&n.kube_proxy_cert), "system:kube-proxy");
    assert_eq!(
        subject_cn(n.flannel_etcd_cert.as_deref().unwrap()),
        "flannel"
    );
    assert_ne!(
        key_of(&n.kubelet_client_cert),
        key_of(&r.kubelet_client_cert)
    );
    assert_ne!(n.kubelet_client_cert, r.kubelet_client_cert);

    // The replaced certificate no longer renews anything: its key is not the node's now.
    let stale = client::renew(&m.url, &as_creds(&first), "w1", &ips(), false).await;
    assert!(
        matches!(stale, Err(ClientError::Refused { status: 401, .. })),
        "{:?}",
        stale.err()
    );
    // The current one does, but only for its own node.
    let second = creds(n, &renewed.keys);
    let other = client::renew(&m.url, &as_creds(&second), "w2", &ips(), false).await;
    assert!(
        matches!(other, Err(ClientError::Refused { status: 403, .. })),
        "{:?}",
        other.err()
    );
    client::renew(&m.url, &as_creds(&second), "w1", &ips(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn renewal_needs_a_node_client_certificate() {
    let m = master(false).await;
    let joined = client::join(&m.url, &m.token, "w1", &ips(), false)
        .await
        .unwrap();
    let r = &joined.response;
    let req = JoinRequest {
        node_name: "w1".into(),
        node_ips: ips(),
        kubelet_client_csr: String::new(),
        kubelet_serving_csr: String::new(),
        kube_proxy_csr: String::new(),
        flannel_etcd_csr: None,
    };
    // No client certificate at all.
    let http = Client::builder()
        .trust(Trust::Ca(r.ca.as_bytes().to_vec()))
        .build()
        .unwrap();
    let resp = http
        .post(&format!("{}/v1/renew", m.url))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A client certificate from the cluster CA that is not a node's: kube-proxy's.
    let proxy = client::NodeCredentials {
        ca: &r.ca,
        cert: &r.kube_proxy_cert,
        key: joined.keys.kube_proxy.expose(),
    };
    let refused = client::renew(&m.url, &proxy, "w1", &ips(), false).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { status: 401, .. })),
        "{:?}",
        refused.err()
    );
    // A certificate the cluster CA did not issue fails the handshake.
    let (key, params) = node_w1();
    let forged = params.self_signed(&key).unwrap().pem();
    let forged_key = key.serialize_pem();
    let forged = client::NodeCredentials {
        ca: &r.ca,
        cert: &forged,
        key: &forged_key,
    };
    let refused = client::renew(&m.url, &forged, "w1", &ips(), false).await;
    assert!(
        matches!(refused, Err(ClientError::Unreachable { .. })),
        "{:?}",
        refused.err()
    );
}
