//! Benchmark: the highly available control plane on the real test bed (etcd 3.4, Kubernetes
//! v1.20.2): three masters and a worker, each in its own network namespace on a bridge, as in
//! `integration/ha.rs`. Prints figures; asserts nothing about speed.
//!
//! 1. **Join to ready**: the first master's cold start, then each `kubesup master --join` until
//!    every component of the new master is ready (its API server answers), one after the other,
//!    in the same run. Target: a join at most 1.5x the cold start.
//! 2. **Failover**: `kill -9` of a master's kubesup (its components die with it) until the first
//!    successful API request through the worker's load balancer, for KILLS kills (default 5),
//!    every other one of the master whose etcd member leads. The request is a read that needs
//!    etcd (`GET /api/v1/namespaces/kube-system`, a quorum read), on a new connection each
//!    time, from inside the worker's namespace. Beside it, in the same kill, etcd's own time to
//!    elect a new leader, as a surviving member reports it. After each kill the master is
//!    started again on its data dir and the cluster waits for three healthy voters. Target:
//!    median at most 1 s, and never more than etcd's election time plus 1 s.
//! 3. **The load balancer's cost**: `GET /version` from CONNS clients (4), each sending its next
//!    request when the last answer is in: through the worker's balancer, against direct to the
//!    API servers (client i to master i mod 3, the spread the balancer makes), in alternating
//!    rounds, from the same namespace with the same client code and TLS settings on both legs.
//!    Twice: over keep-alive connections opened before the round (what kubelet and kube-proxy
//!    do: the balancer's cost per request), then with a new connection and a full TLS
//!    handshake per request, as a Go client makes one (the cost per connection; [`Mode`] says
//!    why resumption stays off on both legs).
//!    The balanced leg is what kubelet gets: with the connect-time program on (the run says
//!    whether it is), each connection goes straight to the API server it chose. A "proxied"
//!    leg binds its sockets to 127.0.0.1 first, which the program leaves to the user-space
//!    proxy: what every connection costs where the program cannot run.
//!    Over keep-alive connections, socat in the worker's namespace (client i's relaying to
//!    master i mod 3) is a last leg, for reference: what any userspace proxy costs here.
//!    req/s, p50 and p99 of each round, and the totals' ratio and differences. Target: at least
//!    0.95x direct throughput, p99 at most 1 ms more. Then the worker's kubesup resident memory
//!    with the balancer on.
//!
//! Run (root, test bed installed): `cargo bench --bench ha [-- KILLS [REQUESTS [CONNS]]]`.
//! On this test bed the masters and the worker share the machine's cores: with CONNS
//! connections in a closed loop the API servers saturate them, and every request through the
//! balancer also waits for the balancer's process to be scheduled. CONNS=1 keeps the cores
//! partly idle, which is closer to a worker on a machine of its own.
//! Every wait is bounded; everything started is stopped on the way out, also on a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on a cluster it makes itself: a panic is a failed run, \
              with its message"
)]

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use common::ha::{ThreeMasters, join_url, start, voters};
use common::{Kubesup, Netns, Testbed, wait_for};
use kubesup::http::{Client, Trust};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

const IPS: [&str; 4] = ["10.82.0.1", "10.82.0.2", "10.82.0.3", "10.82.0.4"];
const LB: &str = "127.0.0.1:6444";
const QUORUM_READ: &str = "/api/v1/namespaces/kube-system";
const ROUNDS: usize = 3;

/// Runs `f` on a thread of its own inside network namespace `ns` (setns(2) moves only the
/// calling thread), with a current-thread runtime: sockets it opens live in that namespace.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).unwrap();
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTPS client with the admin's credentials, trusting the cluster CA.
fn admin_client(data: &Path, timeout: Duration) -> Client {
    let pki = data.join("pki");
    Client::builder()
        .trust(Trust::Ca(std::fs::read(pki.join("ca.crt")).unwrap()))
        .identity(
            std::fs::read(pki.join("admin.crt")).unwrap(),
            std::fs::read(pki.join("admin.key")).unwrap(),
        )
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The member ID of the etcd leader, as the member at `ip` reports it (0: none).
fn etcd_leader(rt: &tokio::runtime::Runtime, data: &Path, ip: &str) -> Option<u64> {
    let pki = data.join("pki/etcd");
    let tls = kubesup::etcd::EtcdTls {
        ca: pki.join("ca.crt"),
        cert: pki.join("healthcheck-client.crt"),
        key: pki.join("healthcheck-client.key"),
    };
    rt.block_on(async {
        let opts = kubesup::etcd::tls_options(&tls)
            .ok()?
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500));
        let endpoint = format!("https://{ip}:2379");
        let mut c = kubesup::etcd::connect_with(&endpoint, opts).await.ok()?;
        let st = c.status().await.ok()?;
        Some(st.leader())
    })
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let kills: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4).max(1);
    let Some(tb) = Testbed::get() else { return };
    let fx = ThreeMasters::new(&tb, "bha", &IPS);
    let nodes = &fx.nodes;
    let ns_names: Vec<String> = fx.lan.nodes.iter().map(|n| n.name.clone()).collect();
    let ns = |i: usize| -> &Netns { fx.ns(i) };
    let mut masters: Vec<Option<Kubesup>> = Vec::new();

    // 1. Join to ready, against the cold start.
    let t0 = Instant::now();
    masters.push(Some(start(ns(0), &nodes[0], &nodes[0].master_args(None))));
    masters[0]
        .as_ref()
        .unwrap()
        .wait_ready(Duration::from_secs(240));
    let cold = t0.elapsed();
    let master_token = fx.token_file(0, "master", "master-token");
    let worker_token = fx.token_file(0, "worker", "worker-token");
    let mut joins = Vec::new();
    for i in 1..3 {
        let t = Instant::now();
        let url = join_url(IPS[i - 1]);
        masters.push(Some(start(
            ns(i),
            &nodes[i],
            &nodes[i].master_args(Some((&url, &master_token))),
        )));
        masters[i]
            .as_ref()
            .unwrap()
            .wait_ready(Duration::from_secs(300));
        joins.push(t.elapsed());
    }
    let ok = wait_for(Duration::from_secs(60), || {
        (voters(ns(0), &nodes[0].data) == 3).then_some(())
    });
    assert!(ok.is_some(), "not three voters");
    println!(
        "join to ready (API answers on the new master), against the first master's cold start:"
    );
    println!("  cold start {:.1} s", cold.as_secs_f64());
    for (i, j) in joins.iter().enumerate() {
        println!(
            "  join of master {} {:.1} s = {:.2}x the cold start",
            i + 1,
            j.as_secs_f64(),
            j.as_secs_f64() / cold.as_secs_f64()
        );
    }

    // The worker, through the first master's join API.
    let (wdata, wcfg) = fx.worker_config("bench-hw");
    let url0 = join_url(IPS[0]);
    let worker = Kubesup::start_isolated(
        ns(3),
        &wdata,
        &fx.scratch.dir.join("w-root"),
        &[
            "worker",
            "--config",
            &wcfg.to_string_lossy(),
            "--join",
            &url0,
            "--token-file",
            &worker_token,
        ],
    );
    worker.wait_ready(Duration::from_secs(240));
    let all_healthy = |worker: &Kubesup| {
        wait_for(Duration::from_secs(120), || {
            let st = worker.status()?;
            let b = st["api_lb"]["backends"].as_array()?.len();
            (b == 3).then_some(())
        })
    };
    assert!(all_healthy(&worker).is_some(), "{:?}", worker.status());

    // 2. Failover.
    let admin = nodes[0].data.clone();
    let mut rows = Vec::new();
    for k in 0..kills {
        // Kills 2, 4, ... take the leader's master; the others a follower's.
        let leader_id = (0..3)
            .find_map(|i| {
                let data = nodes[i].data.clone();
                let ip = IPS[i];
                in_netns(&ns_names[i], move || etcd_leader(&runtime(), &data, ip))
                    .join()
                    .unwrap()
            })
            .unwrap_or(0);
        let member_ids: Vec<Option<u64>> = (0..3)
            .map(|i| {
                kubesup::cmd::master::membership::read_record(&kubesup::paths::Paths::new(
                    &nodes[i].data,
                ))
                .member_id
                .and_then(|h| u64::from_str_radix(&h, 16).ok())
            })
            .collect();
        let leader = (0..3).find(|&i| member_ids[i] == Some(leader_id));
        let want_leader = k % 2 == 1;
        let victim = match (want_leader, leader) {
            (true, Some(l)) => l,
            (_, Some(l)) => (l + 1 + k % 2) % 3,
            (_, None) => k % 3,
        };
        let survivor = (victim + 1) % 3;
        let (sdata, sip) = (nodes[survivor].data.clone(), IPS[survivor]);
        let admin_lb = admin.clone();
        let t_kill = Instant::now();
        masters[victim].as_ref().unwrap().signal(Signal::SIGKILL);
        // The first successful quorum read through the worker's balancer, each on a new
        // connection; and, beside it, the first new leader a survivor reports.
        let through_lb = in_netns(&ns_names[3], move || {
            let rt = runtime();
            for _ in 0..600 {
                let ok = rt.block_on(async {
                    let client = admin_client(&admin_lb, Duration::from_secs(5));
                    matches!(client.get(&format!("https://{LB}{QUORUM_READ}")).send().await,
                             Ok(r) if r.status().is_success())
                });
                if ok {
                    return Some(t_kill.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        });
        let victim_id = member_ids[victim].unwrap_or(0);
        let election = in_netns(&ns_names[survivor], move || {
            let rt = runtime();
            for _ in 0..1500 {
                match etcd_leader(&rt, &sdata, sip) {
                    Some(l) if l != 0 && l != victim_id => return Some(t_kill.elapsed()),
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            None
        });
        let lb_time = through_lb
            .join()
            .unwrap()
            .expect("no request succeeded in time");
        let election = election.join().unwrap().expect("no new leader in time");
        let was_leader = Some(victim) == leader;
        println!(
            "  kill {} of master {victim} ({}): first request through the balancer {:.0} ms, etcd leader {:.0} ms",
            k + 1,
            if was_leader {
                "the leader's"
            } else {
                "a follower's"
            },
            lb_time.as_secs_f64() * 1000.0,
            election.as_secs_f64() * 1000.0
        );
        rows.push((lb_time, election, was_leader));
        // Back to three: the same master on its data dir, then three healthy voters.
        let _ = masters[victim]
            .as_mut()
            .unwrap()
            .wait_exit(Duration::from_secs(10));
        let n = &nodes[victim];
        masters[victim] = Some(start(ns(victim), n, &n.master_args(None)));
        masters[victim]
            .as_ref()
            .unwrap()
            .wait_ready(Duration::from_secs(240));
        let ok = wait_for(Duration::from_secs(60), || {
            (voters(ns(0), &nodes[0].data) == 3).then_some(())
        });
        assert!(ok.is_some(), "not three voters after the restart");
        assert!(all_healthy(&worker).is_some(), "{:?}", worker.status());
    }
    if !rows.is_empty() {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut all: Vec<Duration> = rows.iter().map(|r| r.0).collect();
        let max = *all.iter().max().unwrap();
        let worst_margin = rows
            .iter()
            .map(|(l, e, _)| ms(*l) - ms(*e))
            .fold(f64::MIN, f64::max);
        println!(
            "failover over {} kills: median {:.0} ms, max {:.0} ms; worst (first request - etcd's \
             new leader) {worst_margin:+.0} ms",
            rows.len(),
            ms(median(&mut all)),
            ms(max)
        );
        for leader in [true, false] {
            let mut kind: Vec<Duration> =
                rows.iter().filter(|r| r.2 == leader).map(|r| r.0).collect();
            let mut elect: Vec<Duration> =
                rows.iter().filter(|r| r.2 == leader).map(|r| r.1).collect();
            if !kind.is_empty() {
                println!(
                    "  {} kills of {}: median {:.0} ms (etcd's new leader: median {:.0} ms)",
                    kind.len(),
                    if leader {
                        "the leader's master"
                    } else {
                        "a follower's master"
                    },
                    ms(median(&mut kind)),
                    ms(median(&mut elect))
                );
            }
        }
    }

    // 3. The balancer's cost, each way a client may use it, the same way on both legs.
    let how = worker
        .status()
        .map(|s| s["api_lb"]["redirect"] == true)
        .map(|on| {
            if on {
                "connect-time (BPF) on"
            } else {
                "proxy only"
            }
        });
    println!("the worker's balancer: {}", how.unwrap_or("status unknown"));
    for mode in [Mode::KeepAlive, Mode::NewConnection] {
        balancer_cost(&admin, ns(3), mode, requests, conns);
    }
    let rss = std::fs::read_to_string(format!("/proc/{}/status", worker.pid()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map(str::to_string)
        .unwrap_or_default();
    println!("worker kubesup with the balancer on: {rss}");

    drop(worker);
    drop(masters);
    drop(fx);
}

/// How the load's clients use their connections.
#[derive(Clone, Copy)]
enum Mode {
    /// One connection per client, opened before the round and kept for all its requests: what
    /// kubelet and kube-proxy, the balancer's clients, do. Measures what the balancer adds to a
    /// request.
    KeepAlive,
    /// A new TCP connection and a full TLS handshake per request, on both legs: what a Go
    /// client (kubectl, client-go) does on a new connection, since Go resumes a TLS session only
    /// with a session cache, which client-go does not set. Measures what the balancer adds to a
    /// connection. Resumption stays off on both legs: a direct client reaches one API server
    /// and resumes every time, while the balancer spreads back-to-back connections over API
    /// servers with different ticket keys, so with it on the legs would compare a resumed
    /// handshake with a full one, a cost of TLS and not of the balancer.
    NewConnection,
}

/// Where a round's requests go.
#[derive(Clone, Copy, PartialEq)]
enum Leg {
    /// To the API servers, client i to master i mod 3.
    Direct,
    /// Through the worker's balancer: on a kernel that allows it, straight to the API server
    /// its connect-time program chose (`kubesup::apilb::redirect`).
    Balanced,
    /// Through the worker's balancer's user-space proxy: the client binds its socket to
    /// 127.0.0.1 first, which the connect-time program leaves alone. What every connection
    /// costs where the program cannot run.
    Proxied,
    /// Through socat in the worker's namespace, client i's to master i mod 3: the floor of any
    /// userspace proxy on this test bed (two more process wake-ups per request), as a reference.
    Socat,
}

/// Where the reference socats listen, in the worker's namespace: the first port relays to the
/// round's first master, the next ones to the next masters, as the direct leg spreads.
const SOCAT_PORT: u16 = 6445;

/// socat relaying `127.0.0.1:listen` to `to`, killed (with the children it forks) on drop.
struct Socat(std::process::Child);

impl Socat {
    fn start(ns: &Netns, listen: u16, to: &str) -> Self {
        let mut cmd = ns.command(Path::new("socat"));
        cmd.arg(format!(
            "TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork,nodelay"
        ))
        .arg(format!("TCP:{to},nodelay"))
        .process_group(0);
        let s = Self(cmd.spawn().expect("start socat"));
        let listening = in_netns(&ns.name, move || {
            wait_for(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", listen))
                    .ok()
                    .map(drop)
            })
        });
        assert!(listening.join().unwrap().is_some(), "socat does not listen");
        s
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        common::kill_group(&mut self.0);
    }
}

/// Rounds direct to the API servers, through the worker's balancer and (keep-alive only, if
/// socat is installed) through socat, in turn, from inside the worker's namespace `ns`: req/s,
/// p50 and p99 of each round, then the totals against direct.
fn balancer_cost(admin: &Path, ns: &Netns, mode: Mode, requests: usize, conns: usize) {
    let how = match mode {
        Mode::KeepAlive => "keep-alive connections (opened before the round)",
        Mode::NewConnection => "clients, a new connection and full TLS handshake per request",
    };
    println!("GET /version, {requests} requests a round over {conns} {how}:");
    // socat forks a process per connection: a cost of socat, not of proxying, so it is left
    // out where every request is a connection.
    let socat = matches!(mode, Mode::KeepAlive)
        && std::process::Command::new("socat")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    let legs: &[Leg] = if socat {
        &[Leg::Direct, Leg::Balanced, Leg::Proxied, Leg::Socat]
    } else {
        &[Leg::Direct, Leg::Balanced, Leg::Proxied]
    };
    let mut totals = vec![(0usize, Duration::ZERO); legs.len()];
    let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); legs.len()];
    // Cycle 0 warms every path's connections and caches up: not counted.
    for cycle in 0..=ROUNDS {
        // Each cycle starts on another master, so that the rounds together cover the backends
        // the balancer spreads over.
        let first = cycle % 3;
        for (k, &leg) in legs.iter().enumerate() {
            // The masters in this cycle's order, and the socats in front of them.
            let masters = (0..3).map(|j| IPS[(first + j) % 3]);
            let mut relays = Vec::new();
            let targets: Vec<String> = match leg {
                Leg::Direct => masters.map(|ip| format!("{ip}:6443")).collect(),
                Leg::Balanced | Leg::Proxied => vec![LB.to_string()],
                Leg::Socat => (SOCAT_PORT..)
                    .zip(masters)
                    .map(|(port, ip)| {
                        relays.push(Socat::start(ns, port, &format!("{ip}:6443")));
                        format!("127.0.0.1:{port}")
                    })
                    .collect(),
            };
            let admin = admin.to_path_buf();
            let bound = leg == Leg::Proxied;
            let (elapsed, mut l) = in_netns(&ns.name, move || {
                load(&admin, &targets, requests, conns, mode, bound)
            })
            .join()
            .unwrap();
            if cycle == 0 {
                continue;
            }
            l.sort();
            let name = match leg {
                Leg::Direct => format!("direct {first}"),
                Leg::Balanced => "balanced".to_string(),
                Leg::Proxied => "proxied".to_string(),
                Leg::Socat => format!("socat {first}"),
            };
            println!(
                "  {name:<9} {:>7.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us",
                requests as f64 / elapsed.as_secs_f64(),
                percentile(&l, 0.5).as_secs_f64() * 1e6,
                percentile(&l, 0.99).as_secs_f64() * 1e6
            );
            totals[k].0 += requests;
            totals[k].1 += elapsed;
            lat[k].extend(l);
        }
    }
    for l in &mut lat {
        l.sort();
    }
    let rate = |t: (usize, Duration)| t.0 as f64 / t.1.as_secs_f64();
    let us = |l: &[Duration], p| percentile(l, p).as_secs_f64() * 1e6;
    for (k, leg) in legs.iter().enumerate().skip(1) {
        println!(
            "  {}/direct throughput {:.3}x; p50 {:+.0} us, p99 {:+.0} us",
            match leg {
                Leg::Balanced => "balanced",
                Leg::Proxied => "proxied",
                Leg::Direct | Leg::Socat => "socat",
            },
            rate(totals[k]) / rate(totals[0]),
            us(&lat[k], 0.5) - us(&lat[0], 0.5),
            us(&lat[k], 0.99) - us(&lat[0], 0.99)
        );
    }
}

/// The TLS settings of the load, the same on both legs: the admin's identity, the cluster CA,
/// HTTP/1.1 by ALPN, the provider and defaults of kubesup's own client (`kubesup::http`), with
/// resumption off for [`Mode::NewConnection`].
fn admin_tls(data: &Path, mode: Mode) -> Arc<rustls::ClientConfig> {
    let pki = data.join("pki");
    let pem = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem("ca.crt")[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let certs = rustls_pemfile::certs(&mut &pem("admin.crt")[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &pem("admin.key")[..])
        .unwrap()
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if matches!(mode, Mode::NewConnection) {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// An HTTP/1.1 connection over TLS to `authority` (`IP:PORT`), with TCP_NODELAY as kubesup's
/// client and Go's net package set it.
/// A TLS and HTTP/1.1 connection to `authority`; `bound`: from a socket bound to 127.0.0.1
/// first (the [`Leg::Proxied`] leg).
async fn connect(tls: Arc<rustls::ClientConfig>, authority: &str, bound: bool) -> Sender {
    let addr: SocketAddr = authority.parse().unwrap();
    let tcp = if bound {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.connect(addr).await.unwrap()
    } else {
        TcpStream::connect(addr).await.unwrap()
    };
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = TlsConnector::from(tls).connect(name, tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get_version(sender: &mut Sender, authority: &str) {
    sender.ready().await.unwrap();
    let req = hyper::Request::get("/version")
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert!(r.status().is_success(), "{authority}: {}", r.status());
    let _ = r.into_body().collect().await.unwrap();
}

/// `requests` GETs of /version over `conns` clients, client i to `targets[i % len]` (each
/// `IP:PORT`), each sending its next request when the last answer is in. Returns the wall time
/// and every request's latency.
fn load(
    admin: &Path,
    targets: &[String],
    requests: usize,
    conns: usize,
    mode: Mode,
    bound: bool,
) -> (Duration, Vec<Duration>) {
    let rt = runtime();
    let per = requests / conns;
    rt.block_on(async {
        let tls = admin_tls(admin, mode);
        let mut clients = Vec::new();
        for i in 0..conns {
            let authority = targets[i % targets.len()].clone();
            let kept = match mode {
                Mode::KeepAlive => Some(connect(tls.clone(), &authority, bound).await),
                Mode::NewConnection => None,
            };
            clients.push((authority, kept));
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (authority, mut kept) in clients {
            let tls = tls.clone();
            tasks.push(tokio::spawn(async move {
                let mut l = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    match &mut kept {
                        Some(sender) => get_version(sender, &authority).await,
                        // Dropped after the answer: hyper closes the connection.
                        None => {
                            get_version(
                                &mut connect(tls.clone(), &authority, bound).await,
                                &authority,
                            )
                            .await
                        }
                    }
                    l.push(t.elapsed());
                }
                l
            }));
        }
        let mut all = Vec::with_capacity(requests);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (started.elapsed(), all)
    })
}
