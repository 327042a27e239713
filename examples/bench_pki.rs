//! Benchmark: the full PKI of one master node (3 CAs, 15 leaves, service-account key pair,
//! 5 kubeconfigs) made by kubesup with ECDSA P-256 and with RSA-2048, against the openssl
//! sequence of the "Kubernetes from scratch" guides for the same certificates
//! (`openssl genrsa 2048` + `openssl req -new` + `openssl x509 -req -CA ...` per certificate).
//!
//! Run: `cargo run --release --example bench_pki [RUNS]` (default 5 runs of each). Prints the
//! median wall time of each and the ratios. Every run starts from an empty temp dir.
//! kubesup's figure includes its fsync per file (crash safety); the openssl one does not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on input it makes itself: a panic is a failed run, with \
              its message"
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubesup::model::KeyType;
use kubesup::paths::Paths;
use kubesup::pki::{KubeconfigServers, Pki, PkiSpec};

fn spec(key_type: KeyType) -> PkiSpec {
    PkiSpec {
        node_name: "node-1".into(),
        hostname: "host-1".into(),
        advertise: "192.0.2.10".parse().expect("literal IP"),
        api_service_ip: "10.96.0.1".parse().expect("literal IP"),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec![],
        key_type,
        ca_validity: Duration::from_secs(3650 * 86400),
        leaf_validity: Duration::from_secs(365 * 86400),
        kubeconfig_servers: KubeconfigServers::standard(
            "https://192.0.2.10:6443",
            "https://127.0.0.1:6443",
        ),
    }
}

fn kubesup_once(key_type: KeyType) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(&Paths::new(dir.path()));
    let s = spec(key_type);
    let start = Instant::now();
    let report = pki.generate(&s).expect("generate");
    let took = start.elapsed();
    assert_eq!(report.issued.len(), 15);
    took
}

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

const NODE_SANS: &str = "DNS:localhost,DNS:host-1,IP:192.0.2.10,IP:127.0.0.1";

/// (file stem, signing CA, subject, extendedKeyUsage, subjectAltName)
const LEAVES: [(&str, &str, &str, &str, Option<&str>); 15] = [
    (
        "apiserver",
        "ca",
        "/CN=kube-apiserver",
        "serverAuth",
        Some(
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
             DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:host-1,\
             IP:10.96.0.1,IP:192.0.2.10,IP:127.0.0.1",
        ),
    ),
    (
        "apiserver-kubelet-client",
        "ca",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "clientAuth",
        None,
    ),
    (
        "apiserver-etcd-client",
        "etcd-ca",
        "/CN=kube-apiserver-etcd-client",
        "clientAuth",
        None,
    ),
    (
        "front-proxy-client",
        "front-proxy-ca",
        "/CN=front-proxy-client",
        "clientAuth",
        None,
    ),
    (
        "etcd-server",
        "etcd-ca",
        "/CN=node-1",
        "serverAuth,clientAuth",
        Some(NODE_SANS),
    ),
    (
        "etcd-peer",
        "etcd-ca",
        "/CN=node-1",
        "serverAuth,clientAuth",
        Some(NODE_SANS),
    ),
    (
        "etcd-healthcheck-client",
        "etcd-ca",
        "/CN=kube-etcd-healthcheck-client",
        "clientAuth",
        None,
    ),
    (
        "flannel-etcd-client",
        "etcd-ca",
        "/CN=flanneld",
        "clientAuth",
        None,
    ),
    (
        "admin",
        "ca",
        "/O=system:masters/CN=kubernetes-admin",
        "clientAuth",
        None,
    ),
    (
        "controller-manager",
        "ca",
        "/CN=system:kube-controller-manager",
        "clientAuth",
        None,
    ),
    (
        "scheduler",
        "ca",
        "/CN=system:kube-scheduler",
        "clientAuth",
        None,
    ),
    (
        "kube-proxy",
        "ca",
        "/CN=system:kube-proxy",
        "clientAuth",
        None,
    ),
    (
        "kubelet-client",
        "ca",
        "/O=system:nodes/CN=system:node:node-1",
        "clientAuth",
        None,
    ),
    (
        "kubelet-server",
        "ca",
        "/O=system:nodes/CN=system:node:node-1",
        "serverAuth",
        Some("DNS:node-1,DNS:host-1,IP:192.0.2.10,IP:127.0.0.1"),
    ),
    (
        "join-server",
        "ca",
        "/CN=kubesup-join",
        "serverAuth",
        Some(NODE_SANS),
    ),
];

fn openssl_once() -> Duration {
    let tmp = tempfile::tempdir().expect("temp dir");
    let d = tmp.path();
    let start = Instant::now();
    for (ca, cn) in [
        ("ca", "kubernetes"),
        ("etcd-ca", "etcd-ca"),
        ("front-proxy-ca", "front-proxy-ca"),
    ] {
        run(d, &["genrsa", "-out", &format!("{ca}.key"), "2048"]);
        run(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-key",
                &format!("{ca}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-out",
                &format!("{ca}.crt"),
            ],
        );
    }
    for (name, ca, subj, eku, sans) in LEAVES {
        let mut ext = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage={eku}\n"
        );
        if let Some(s) = sans {
            ext.push_str(&format!("subjectAltName={s}\n"));
        }
        fs::write(d.join(format!("{name}.ext")), ext).expect("write ext");
        run(d, &["genrsa", "-out", &format!("{name}.key"), "2048"]);
        run(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                subj,
                "-out",
                &format!("{name}.csr"),
            ],
        );
        run(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "365",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    run(d, &["genrsa", "-out", "sa.key", "2048"]);
    run(d, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(label: &str, runs: usize, f: impl Fn() -> Duration) -> Duration {
    let times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    let m = median(times.clone());
    let all: Vec<String> = times.iter().map(|t| format!("{:.1}", ms(*t))).collect();
    println!(
        "{label:<34} median {:>9.1} ms   runs [{}] ms",
        ms(m),
        all.join(", ")
    );
    m
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .clamp(1, 50);
    println!("full master PKI: 3 CAs + 15 leaves + sa key pair; {runs} runs each");
    let ec = measure("kubesup ECDSA P-256", runs, || {
        kubesup_once(KeyType::EcdsaP256)
    });
    let rsa = measure("kubesup RSA-2048", runs, || kubesup_once(KeyType::Rsa2048));
    let ossl = measure("openssl genrsa+req+x509 (RSA-2048)", runs, openssl_once);
    println!(
        "openssl / kubesup-ECDSA = {:.1}x   openssl / kubesup-RSA = {:.1}x",
        ossl.as_secs_f64() / ec.as_secs_f64(),
        ossl.as_secs_f64() / rsa.as_secs_f64()
    );
}
