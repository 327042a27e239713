//! Benchmark: join throughput of one master's join API on loopback.
//!
//! N joins (default 1000) are fired at once, each on its own TLS connection as separate workers
//! would, each carrying the bearer token and three CSRs (kubelet client and serving,
//! kube-proxy). The master checks the token, applies the node policy to every CSR, signs them
//! and answers. The server runs on a thread of its own with a current-thread runtime, exactly
//! as `kubesup master` runs it; the clients run on another thread. Worker-side key and CSR
//! generation happens before the clock starts (it costs the workers, not the master).
//!
//! Run: `cargo run --release --example bench_join [N]`. Prints joins/s and p50/p99 latency.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on input it makes itself: a panic is a failed run, with \
              its message"
)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kubesup::http::{Client, Trust};
use kubesup::join::server::{self, JoinContext};
use kubesup::join::store::{Backend, MemoryBackend, TokenRecord};
use kubesup::join::token::{Token, ca_pin};
use kubesup::join::{ClusterInfo, JoinRequest, JoinResponse};
use kubesup::model::KeyType;
use kubesup::paths::Paths;
use kubesup::pki::{CaKind, KubeconfigServers, Pki, PkiSpec};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

fn csr(cn: &str, org: Option<&str>, sans: Vec<SanType>) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .expect("csr")
}

fn request(i: usize, ip: IpAddr) -> JoinRequest {
    let name = format!("bench-{i:04}");
    let node_cn = format!("system:node:{name}");
    JoinRequest {
        node_ips: vec![ip],
        kubelet_client_csr: csr(&node_cn, Some("system:nodes"), vec![]),
        kubelet_serving_csr: csr(
            &node_cn,
            Some("system:nodes"),
            vec![
                SanType::DnsName(name.as_str().try_into().expect("dns name")),
                SanType::IpAddress(ip),
            ],
        ),
        kube_proxy_csr: csr("system:kube-proxy", None, vec![]),
        flannel_etcd_csr: None,
        node_name: name,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::new(dir.path().join("data"));
    let pki = Pki::new(&paths);
    pki.generate(&PkiSpec {
        node_name: "master".into(),
        hostname: "master".into(),
        advertise: "127.0.0.1".parse().expect("ip"),
        api_service_ip: "10.3.0.1".parse().expect("ip"),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec![],
        key_type: KeyType::EcdsaP256,
        ca_validity: Duration::from_secs(86400 * 3650),
        leaf_validity: Duration::from_secs(86400 * 365),
        kubeconfig_servers: KubeconfigServers::standard(
            "https://127.0.0.1:6443",
            "https://127.0.0.1:6443",
        ),
    })
    .expect("pki");
    let ca = pki.load_ca(CaKind::Cluster).expect("ca");
    let ca_pem = ca.cert_pem().to_string();
    let token = Token::generate(&ca_pin(&ca_pem).expect("pin"));
    let mut mem = MemoryBackend::default();
    mem.tokens.insert(
        token.id.clone(),
        TokenRecord {
            id: token.id.clone(),
            secret_sha256: token.secret_hash(),
            role: kubesup::model::Role::Worker,
            description: None,
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            expires: None,
        },
    );
    let ctx = Arc::new(JoinContext::new(
        ca,
        ClusterInfo {
            api_servers: vec!["https://127.0.0.1:6443".into()],
            etcd_servers: vec!["https://127.0.0.1:2379".into()],
            cluster_dns: "10.3.0.10".into(),
            cluster_domain: "cluster.local".into(),
            pod_cidr: "10.2.0.0/16".into(),
            service_cidr: "10.3.0.0/24".into(),
            network: "none".into(),
            kube_version: "v1.20.2".into(),
            etcd_version: None,
            mirror: None,
            flannel_backend: "vxlan".into(),
        },
        Backend::Memory(Mutex::new(mem)),
        false,
        Duration::from_secs(86400),
    ));
    let join = paths.pki().join_server();
    let tls = kubesup::join::tls::tls_config(
        &std::fs::read(&join.cert).expect("cert"),
        &std::fs::read(&join.key).expect("key"),
        &std::fs::read(paths.pki().ca().cert).expect("ca"),
    )
    .expect("tls");

    // The master: one thread, current-thread runtime, as in kubesup.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            server::serve(listener, tls, ctx).await;
        });
    });
    let addr = addr_rx.recv().expect("server address");
    let url = format!("https://{addr}/v1/join");

    eprintln!("making {n} workers' keys and CSRs (not timed)");
    let ip: IpAddr = "10.77.0.3".parse().expect("ip");
    let requests: Vec<String> = (0..n)
        .map(|i| serde_json::to_string(&request(i, ip)).expect("json"))
        .collect();
    let bearer = token.expose();
    let bearer = bearer
        .split_once("::")
        .map(|(_, b)| b.to_string())
        .expect("bearer");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (wall, mut latencies, failures) = rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|body| {
                // A client per join: a fresh TLS handshake each, as separate workers make.
                let client = Client::builder()
                    .trust(Trust::Ca(ca_pem.as_bytes().to_vec()))
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("client");
                let (url, bearer) = (url.clone(), bearer.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer(&bearer)
                        .body("application/json", body)
                        .send()
                        .await
                        .ok()?;
                    if !resp.status().is_success() {
                        return None;
                    }
                    let _: JoinResponse = resp.json().await.ok()?;
                    Some(t.elapsed())
                })
            })
            .collect();
        let mut lat = Vec::with_capacity(n);
        let mut failures = 0;
        for t in tasks {
            match t.await.ok().flatten() {
                Some(d) => lat.push(d),
                None => failures += 1,
            }
        }
        (start.elapsed(), lat, failures)
    });
    latencies.sort();
    let ok = latencies.len();
    println!("joins:       {ok} ok, {failures} failed, fired concurrently");
    println!("wall time:   {wall:.2?}");
    println!("throughput:  {:.0} joins/s", ok as f64 / wall.as_secs_f64());
    if ok > 0 {
        println!(
            "latency:     p50 {:.1?}  p99 {:.1?}  max {:.1?}",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies[ok - 1]
        );
    }
}
