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
//! 3. **The load balancer's cost**: `GET /version` with keep-alive, CONNS connections (4), each
//!    sending its next request when the last answer is in: through the worker's balancer,
//!    against direct to the API servers (connection i to master i mod 3, the spread the
//!    balancer makes), in alternating rounds. req/s, p50 and p99 of each, and the ratio of the
//!    totals. Target: at least 0.95x direct throughput, p99 at most 1 ms more. Then the worker's
//!    kubesup resident memory with the balancer on.
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
use std::path::Path;
use std::time::{Duration, Instant};

use common::ha::{ThreeMasters, join_url, start, voters};
use common::{Kubesup, Netns, Testbed, wait_for};
use kubesup::http::{Client, Trust};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

const IPS: [&str; 4] = ["10.82.0.1", "10.82.0.2", "10.82.0.3", "10.82.0.4"];
const LB: &str = "https://127.0.0.1:6444";
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
                    matches!(client.get(&format!("{LB}{QUORUM_READ}")).send().await,
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

    // 3. The balancer's cost.
    println!("GET /version, {requests} requests a round over {conns} keep-alive connections:");
    let mut totals = [(0usize, Duration::ZERO), (0usize, Duration::ZERO)];
    let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..=ROUNDS * 2 {
        let through = round % 2 == 1;
        let admin = admin.clone();
        let targets: Vec<String> = if through {
            vec![LB.to_string()]
        } else {
            // Each direct round starts on another master, so that the rounds together cover
            // the backends the balancer spreads over.
            IPS[..3]
                .iter()
                .cycle()
                .skip(round / 2)
                .take(3)
                .map(|ip| format!("https://{ip}:6443"))
                .collect()
        };
        let (elapsed, mut l) = in_netns(&ns_names[3], move || {
            load(&admin, &targets, requests, conns)
        })
        .join()
        .unwrap();
        // Round 0 warms both paths' connections and caches up: not counted.
        if round == 0 {
            continue;
        }
        l.sort();
        println!(
            "  {:<9} {:>7.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us",
            if through {
                "balanced".to_string()
            } else {
                format!("direct {}", (round / 2) % 3)
            },
            requests as f64 / elapsed.as_secs_f64(),
            percentile(&l, 0.5).as_secs_f64() * 1e6,
            percentile(&l, 0.99).as_secs_f64() * 1e6
        );
        let t = &mut totals[usize::from(through)];
        t.0 += requests;
        t.1 += elapsed;
        lat[usize::from(through)].extend(l);
    }
    for l in &mut lat {
        l.sort();
    }
    let rate = |t: (usize, Duration)| t.0 as f64 / t.1.as_secs_f64();
    println!(
        "  balanced/direct throughput {:.3}x; p99 {:+.0} us",
        rate(totals[1]) / rate(totals[0]),
        (percentile(&lat[1], 0.99).as_secs_f64() - percentile(&lat[0], 0.99).as_secs_f64()) * 1e6
    );
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

/// `requests` GETs of /version over `conns` keep-alive connections, connection i to
/// `targets[i % len]`, each sending its next request when the last answer is in. Returns the
/// wall time and every request's latency.
fn load(
    admin: &Path,
    targets: &[String],
    requests: usize,
    conns: usize,
) -> (Duration, Vec<Duration>) {
    let rt = runtime();
    let per = requests / conns;
    rt.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..conns {
            // A client each: its own keep-alive connection.
            let client = admin_client(admin, Duration::from_secs(10));
            let url = format!("{}/version", targets[i % targets.len()]);
            tasks.push(tokio::spawn(async move {
                let mut l = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let r = client.get(&url).send().await.unwrap();
                    assert!(r.status().is_success(), "{url}: {}", r.status());
                    let _ = r.bytes().await.unwrap();
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
