//! Benchmark: `kubesup backup` and restore against etcdctl's own, on the same etcd member in
//! the same run.
//!
//! A real etcd (Debian's `/usr/bin/etcd`, 3.4 on the test bed) runs on loopback with kubesup's
//! PKI (client TLS, as on a master), loaded with N small objects (default 10,000 keys under
//! `/registry/configmaps/`, 600 bytes each, about a ConfigMap's size). Then, alternating, R
//! rounds (default 5) of:
//! - backup: [`kubesup::backup::create`] (what `kubesup backup` runs: snapshot streamed into
//!   the archive with the keys, settings and manifest; plain, then encrypted) vs
//!   `etcdctl snapshot save`;
//! - restore, to a serving etcd: the archive checked and extracted
//!   ([`kubesup::backup::archive::verify`] and `extract`), restored by etcdctl as kubesup
//!   does, and etcd started on it until it answers, vs `etcdctl snapshot restore` and the
//!   same start. The API server is left out of both sides: it costs them the same.
//!
//! Run as root or not: `cargo run --release --example bench_backup [N [R]]`. Prints medians.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on input it makes itself: a panic is a failed run, with \
              its message"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubesup::backup::{self, Dest, KeyFile, archive, restore::Tool};
use kubesup::config::{Config, RawConfig};
use kubesup::etcd::EtcdTls;
use kubesup::pki::Pki;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd, killed on drop.
struct Etcd {
    child: Child,
    port: u16,
}

impl Etcd {
    fn start(cfg: &Config, data: &Path, name: &str, port: u16, peer_url: &str, new: bool) -> Self {
        let pki = cfg.paths.pki();
        let client = format!("https://127.0.0.1:{port}");
        let mut c = Command::new(ETCD);
        c.arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={name}={peer_url}"))
            .arg(format!("--cert-file={}", pki.etcd_server().cert.display()))
            .arg(format!("--key-file={}", pki.etcd_server().key.display()))
            .arg("--client-cert-auth=true")
            .arg(format!(
                "--trusted-ca-file={}",
                pki.etcd_ca().cert.display()
            ))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=500")
            .arg("--listen-metrics-urls=http://127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if new {
            c.arg("--initial-cluster-state=new");
        }
        Self {
            child: c.spawn().expect("start etcd"),
            port,
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls(cfg: &Config) -> EtcdTls {
    let pki = cfg.paths.pki();
    let c = pki.etcd_healthcheck_client();
    EtcdTls {
        ca: pki.etcd_ca().cert,
        cert: c.cert,
        key: c.key,
    }
}

/// Until etcd answers a status over TLS (bounded: 60 s).
async fn wait_serving(endpoint: &str, tls: &EtcdTls) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(mut c) = kubesup::etcd::connect(endpoint, tls).await
            && kubesup::etcd::status(&mut c).await.is_ok()
        {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("etcd at {endpoint} did not answer within 60 s");
}

fn etcdctl(tls: &EtcdTls, endpoint: &str) -> Command {
    let mut c = Command::new(ETCDCTL);
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--cacert={}", tls.ca.display()))
        .arg(format!("--cert={}", tls.cert.display()))
        .arg(format!("--key={}", tls.key.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    assert!(
        Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
        "needs Debian's etcd and etcdctl (apt-get install etcd-server etcd-client)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let raw = RawConfig {
        data_dir: tmp.path().join("data"),
        advertise: Some("127.0.0.1".into()),
        node_name: Some("bench".into()),
        kube_version: "v1.20.2".into(),
        network: "none".into(),
        ports: kubesup::config::RawPorts {
            etcd_client: i64::from(port),
            ..Default::default()
        },
        ..RawConfig::default()
    };
    let cfg = raw.validate().expect("config");
    let advertise = cfg.require_advertise().unwrap();
    Pki::new(&cfg.paths)
        .generate(&kubesup::plan::pki_spec(&cfg, advertise))
        .expect("pki");
    let tls = tls(&cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let first_peer = format!("http://127.0.0.1:{}", free_port());
    let etcd = Etcd::start(
        &cfg,
        &cfg.paths.etcd_data_dir(),
        "bench",
        port,
        &first_peer,
        true,
    );
    rt.block_on(wait_serving(&etcd.endpoint(), &tls));
    let t = Instant::now();
    rt.block_on(async {
        let mut c = kubesup::etcd::connect(&etcd.endpoint(), &tls)
            .await
            .unwrap();
        let value = "x".repeat(600);
        // 100 puts per transaction (etcd allows 128 operations in one).
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let ops: Vec<etcd_client::TxnOp> = chunk
                .iter()
                .map(|i| {
                    etcd_client::TxnOp::put(
                        format!("/registry/configmaps/bench/cm-{i:05}"),
                        value.clone(),
                        None,
                    )
                })
                .collect();
            c.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    });
    eprintln!("loaded {n} objects in {:.1} s", t.elapsed().as_secs_f64());

    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let key_path = tmp.path().join("key");
    std::fs::write(
        &key_path,
        "0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let key = Arc::new(KeyFile::from_bytes(&key_path, &std::fs::read(&key_path).unwrap()).unwrap());

    let (mut ours, mut ours_enc, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let (ours_file, enc_file, theirs_file) = (
        out.join("kubesup.tar"),
        out.join("kubesup.tar.enc"),
        out.join("etcdctl.db"),
    );
    for _ in 0..rounds {
        let t = Instant::now();
        rt.block_on(backup::create(
            &cfg,
            &tls,
            Dest::File(ours_file.clone()),
            None,
        ))
        .expect("kubesup backup");
        ours.push(t.elapsed());

        let _ = std::fs::remove_file(&theirs_file);
        let t = Instant::now();
        let st = etcdctl(&tls, &etcd.endpoint())
            .arg("snapshot")
            .arg("save")
            .arg(&theirs_file)
            .status()
            .unwrap();
        theirs.push(t.elapsed());
        assert!(st.success(), "etcdctl snapshot save");

        let t = Instant::now();
        rt.block_on(backup::create(
            &cfg,
            &tls,
            Dest::File(enc_file.clone()),
            Some(key.clone()),
        ))
        .expect("kubesup backup, encrypted");
        ours_enc.push(t.elapsed());
    }
    drop(etcd);

    // Restore to a serving etcd, each side from its own file.
    let (mut r_ours, mut r_theirs) = (Vec::new(), Vec::new());
    let tool = Tool::Etcdctl(PathBuf::from(ETCDCTL));
    for round in 0..rounds {
        let dir = tmp.path().join(format!("r{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let peer = format!("http://127.0.0.1:{}", free_port());

        let t = Instant::now();
        archive::verify(&ours_file, None).expect("verify");
        let snap = dir.join("ours.db");
        archive::extract(&ours_file, None, &snap).expect("extract");
        tool.run(
            &snap,
            "bench",
            &peer,
            &backup::restore::new_token(),
            &dir.join("ours"),
        )
        .expect("restore");
        let e = Etcd::start(&cfg, &dir.join("ours"), "bench", port, &peer, false);
        rt.block_on(wait_serving(&e.endpoint(), &tls));
        r_ours.push(t.elapsed());
        drop(e);

        let port = free_port();
        let t = Instant::now();
        let st = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg("snapshot")
            .arg("restore")
            .arg(&theirs_file)
            .arg("--name=bench")
            .arg(format!("--initial-cluster=bench={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--data-dir={}", dir.join("theirs").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "etcdctl snapshot restore");
        let e = Etcd::start(&cfg, &dir.join("theirs"), "bench", port, &peer, false);
        rt.block_on(wait_serving(&e.endpoint(), &tls));
        r_theirs.push(t.elapsed());
        drop(e);
    }

    let (o, oe, th) = (median(ours), median(ours_enc), median(theirs));
    let (ro, rt_) = (median(r_ours), median(r_theirs));
    println!("{n} objects, {rounds} rounds, medians:");
    println!(
        "backup   kubesup          {:8.1} ms  {:>10} bytes  ({:.2}x etcdctl)",
        ms(o),
        size(&ours_file),
        o.as_secs_f64() / th.as_secs_f64()
    );
    println!(
        "backup   kubesup, AES-GCM {:8.1} ms  {:>10} bytes  ({:.2}x etcdctl)",
        ms(oe),
        size(&enc_file),
        oe.as_secs_f64() / th.as_secs_f64()
    );
    println!(
        "backup   etcdctl save     {:8.1} ms  {:>10} bytes",
        ms(th),
        size(&theirs_file)
    );
    println!(
        "restore  kubesup (verify, extract, etcdctl restore, etcd serving) {:8.1} ms  ({:.2}x)",
        ms(ro),
        ro.as_secs_f64() / rt_.as_secs_f64()
    );
    println!(
        "restore  etcdctl restore, etcd serving                          {:8.1} ms",
        ms(rt_)
    );
}
