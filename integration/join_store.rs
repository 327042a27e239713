//! The join API's store against a real etcd (Debian's 3.4, `/usr/bin/etcd`, installed by
//! integration/setup-testbed.sh): claiming a node name is one transaction, so of concurrent
//! claims one wins; and an etcd that is down is an error, never "no record", so a join during
//! an outage is refused with 503 and records nothing.
//!
//! Each test starts its own etcd on 127.0.0.1 with free ports and a temporary data dir, in its
//! own process group, and kills that group (and removes the dir) when it ends, even on panic.
//! Skips with a message when etcd is absent; fails then if `KUBESUP_TESTBED_REQUIRED` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use kubesup::join::client::{self, ClientError};
use kubesup::join::server::{self, JoinContext, STORE_UNAVAILABLE};
use kubesup::join::store::{self, Backend};
use kubesup::join::token::{Token, ca_pin};
use kubesup::model::KeyType;
use kubesup::paths::Paths;
use kubesup::pki::{CaKind, KubeconfigServers, Pki, PkiSpec};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// One etcd member on 127.0.0.1, in its own process group; killed with that group on drop.
struct Etcd {
    bin: PathBuf,
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

impl Etcd {
    fn start(bin: PathBuf) -> Self {
        let mut etcd = Self {
            bin,
            child: None,
            client_port: common::free_port(),
            peer_port: common::free_port(),
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        etcd.spawn();
        etcd
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Starts (or starts again, on the same data and ports) the member.
    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("etcd's log file");
        let child = Command::new(&self.bin)
            .args(["--name", "join-store"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("join-store={peer}")])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd's log file"))
            .stderr(log)
            // Its own group, so that stopping it stops everything it started and nothing else.
            .process_group(0)
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
    }

    /// Kills the member's process group and reaps it; the data dir stays for a restart.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// A client that gives up on a request within seconds, so that a test of an outage
    /// cannot hang; once the member answers a read, bounded by 30 s.
    async fn client(&mut self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        // TODO(testkit): the shared wait_for, once it has an async form.
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "etcd exited ({status}):\n{}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(2));
            if let Ok(mut c) = Client::connect([self.url()], Some(opts)).await
                && c.get("/kubesup/probe", None).await.is_ok()
            {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within 30 s:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn claiming_a_node_name_is_one_transaction() {
    let Some(bin) = common::debian_etcd() else {
        return;
    };
    let mut etcd = Etcd::start(bin);
    let backend = Backend::Etcd(Box::new(etcd.client().await));

    // Two joins that both read the name as free: the first claim wins, the second writes
    // nothing.
    assert_eq!(backend.node_key("w1").await.unwrap(), None);
    assert!(backend.claim_node("w1", None, "pin-a").await.unwrap());
    assert!(!backend.claim_node("w1", None, "pin-b").await.unwrap());
    assert_eq!(
        backend.node_key("w1").await.unwrap().as_deref(),
        Some("pin-a")
    );

    // Over a record, the claim compares with the key read: a replacement made from a stale
    // read loses.
    assert!(
        backend
            .claim_node("w1", Some("pin-a"), "pin-c")
            .await
            .unwrap()
    );
    assert!(
        !backend
            .claim_node("w1", Some("pin-a"), "pin-d")
            .await
            .unwrap()
    );
    assert_eq!(
        backend.node_key("w1").await.unwrap().as_deref(),
        Some("pin-c")
    );

    // Concurrent claims of a free name, each on its own connection: exactly one wins.
    const CLAIMS: usize = 8;
    let mut tasks = Vec::new();
    for i in 0..CLAIMS {
        let b = Backend::Etcd(Box::new(etcd.client().await));
        tasks.push(tokio::spawn(async move {
            let pin = format!("pin-{i}");
            let won = b.claim_node("w2", None, &pin).await.unwrap();
            (won, pin)
        }));
    }
    let results = tokio::time::timeout(Duration::from_secs(30), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
    .await
    .expect("the claims finish within 30 s");
    let winners: Vec<_> = results.iter().filter(|(won, _)| *won).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        backend.node_key("w2").await.unwrap().as_ref(),
        Some(&winners[0].1)
    );
}

#[tokio::test]
async fn an_etcd_that_is_down_is_an_error_never_no_record() {
    let Some(bin) = common::debian_etcd() else {
        return;
    };
    let mut etcd = Etcd::start(bin);
    let backend = Backend::Etcd(Box::new(etcd.client().await));
    assert!(backend.claim_node("w1", None, "pin-a").await.unwrap());

    etcd.kill();
    let bounded = Duration::from_secs(20);
    let read = tokio::time::timeout(bounded, backend.node_key("w1"))
        .await
        .expect("a read of a dead etcd fails within 20 s");
    assert!(
        matches!(read, Err(store::StoreError::Etcd { .. })),
        "{read:?}"
    );
    let token = tokio::time::timeout(bounded, backend.token("abcdef"))
        .await
        .expect("a read of a dead etcd fails within 20 s");
    assert!(
        matches!(token, Err(store::StoreError::Etcd { .. })),
        "{token:?}"
    );
    let claim = tokio::time::timeout(bounded, backend.claim_node("w1", None, "pin-b"))
        .await
        .expect("a claim on a dead etcd fails within 20 s");
    assert!(
        matches!(claim, Err(store::StoreError::Etcd { .. })),
        "{claim:?}"
    );

    // Back on the same data: the record is the one made before the outage.
    etcd.spawn();
    let _ = etcd.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let key = loop {
        match backend.node_key("w1").await {
            Ok(k) => break k,
            Err(e) => assert!(Instant::now() < deadline, "etcd is back, the read: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(key.as_deref(), Some("pin-a"));
}

/// A join API on 127.0.0.1 whose store is `etcd`, and a token stored there.
struct Master {
    url: String,
    token: Token,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Master {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn master_on(etcd: &mut Etcd) -> Master {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    let pki = Pki::new(&paths);
    let advertise: IpAddr = "127.0.0.1".parse().unwrap();
    let local = "https://127.0.0.1:6443";
    pki.generate(&PkiSpec {
        node_name: "master".into(),
        hostname: "master".into(),
        advertise,
        api_service_ip: "10.3.0.1".parse().unwrap(),
        cluster_domain: "cluster.local".into(),
        extra_sans: vec![],
        key_type: KeyType::EcdsaP256,
        ca_validity: Duration::from_secs(86400 * 365),
        leaf_validity: Duration::from_secs(86400),
        kubeconfig_servers: KubeconfigServers::standard(local, local),
    })
    .unwrap();
    let ca = pki.load_ca(CaKind::Cluster).unwrap();
    let token = Token::generate(&ca_pin(ca.cert_pem()).unwrap());
    let mut c = etcd.client().await;
    store::create(
        &mut c,
        &token,
        kubesup::model::Role::Worker,
        Duration::from_secs(3600),
        None,
    )
    .await
    .unwrap();
    let cluster = common::cluster_info(local, &etcd.url());
    let ctx = JoinContext::new(
        ca,
        cluster,
        Backend::Etcd(Box::new(c)),
        false,
        Duration::from_secs(86400),
    );
    let pair = paths.pki().join_server();
    let tls = kubesup::join::tls::tls_config(
        &std::fs::read(&pair.cert).unwrap(),
        &std::fs::read(&pair.key).unwrap(),
        &std::fs::read(paths.pki().ca().cert).unwrap(),
    )
    .unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(server::serve(listener, tls, Arc::new(ctx)));
    Master {
        url,
        token,
        task,
        _dir: dir,
    }
}

fn ips() -> Vec<IpAddr> {
    vec!["10.77.0.3".parse().unwrap()]
}

#[tokio::test]
async fn a_join_during_an_etcd_outage_is_refused_with_503_and_records_nothing() {
    let Some(bin) = common::debian_etcd() else {
        return;
    };
    let mut etcd = Etcd::start(bin);
    let m = master_on(&mut etcd).await;
    client::join(&m.url, &m.token, "w1", &ips(), false)
        .await
        .expect("a join while etcd is up");
    let recorded = {
        let mut c = etcd.client().await;
        store::node_key(&mut c, "w1").await.unwrap()
    };
    assert!(recorded.is_some());

    etcd.kill();
    // Past the rate limit's count: a store outage is no failed attempt.
    for _ in 0..=server::MAX_FAILURES {
        let refused = tokio::time::timeout(
            Duration::from_secs(20),
            client::join(&m.url, &m.token, "w1", &ips(), false),
        )
        .await
        .expect("the join API answers within 20 s while etcd is down");
        match refused {
            Err(ClientError::Refused { status, message }) => {
                assert_eq!(status, 503);
                assert_eq!(message, STORE_UNAVAILABLE);
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("joined while etcd was down"),
        }
    }

    // etcd back: the node's record is untouched, and the name is refused as taken (not as
    // rate-limited).
    etcd.spawn();
    let mut c = etcd.client().await;
    assert_eq!(store::node_key(&mut c, "w1").await.unwrap(), recorded);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match client::join(&m.url, &m.token, "w1", &ips(), false).await {
            Err(ClientError::Refused { status: 503, .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "the join API still cannot reach etcd 30 s after it came back"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(ClientError::Refused { status, .. }) => break status,
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("took over a joined node's name"),
        }
    };
    assert_eq!(status, 409);
    assert_eq!(store::node_key(&mut c, "w1").await.unwrap(), recorded);
}
