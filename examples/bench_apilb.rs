//! Benchmark: the node-local API load balancer (src/apilb/) against a direct connection, over
//! loopback, to an in-process backend that answers every request of a keep-alive HTTP/1.1
//! connection with a small fixed response (the size of a `GET /healthz`, or of a small watch
//! event: what the balancer adds is a per-request cost, so the smallest request shows it best).
//!
//! Run: `cargo run --release --example bench_apilb [REQUESTS] [CONNECTIONS] [DELAY_MS]` (default
//! 20000 requests over 4 connections, each connection sending its next request when the answer
//! to the last one is in). DELAY_MS (default 0) makes the backend wait that long before each
//! answer, like an API server doing a request's work: with 0 the figures are the balancer's
//! pure cost against a backend that does nothing, which no API server is. Alternates direct and balanced rounds (3 of each, after a warm-up), and
//! prints req/s, p50 and p99 of each round and the ratio of the totals. Targets: throughput at
//! least 0.95x direct, p99 at most 1 ms more. Client, balancer and backend share one runtime and
//! the machine's cores, so the balanced path also pays for the balancer's CPU: that is the cost
//! it has on a node. This measures the user-space proxy (the fast path that sends a connect
//! straight to the API server is off in `LbConfig::default`; `cargo bench --bench ha` measures
//! it on the test bed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on input it makes itself: a panic is a failed run, with \
              its message"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kubesup::apilb::{self, LbConfig, LbStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
const ROUNDS: usize = 3;
const MAX_REQUESTS: usize = 1_000_000;
/// The whole run, warm-up included: a hang is a failed run.
const DEADLINE: Duration = Duration::from_secs(300);

/// Answers each request (a read that ends the request head) with [`RESPONSE`]. The client sends
/// one request at a time, so one read is one request.
async fn backend(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut have = 0;
                loop {
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    if buf[..have].ends_with(b"\r\n\r\n") {
                        have = 0;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        if s.write_all(RESPONSE).await.is_err() {
                            return;
                        }
                    } else if have == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `n` requests on one connection, one after another; the latency of each.
async fn client(to: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut lat = Vec::with_capacity(n);
    let mut buf = [0u8; RESPONSE.len()];
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(REQUEST).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        lat.push(t.elapsed());
    }
    assert_eq!(&buf[..], RESPONSE);
    lat
}

struct Round {
    rps: f64,
    p50: Duration,
    p99: Duration,
    wall: Duration,
    requests: usize,
}

async fn round(to: SocketAddr, requests: usize, conns: usize) -> Round {
    let per = requests / conns;
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns).map(|_| tokio::spawn(client(to, per))).collect();
    let mut lat = Vec::with_capacity(per * conns);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Round {
        rps: lat.len() as f64 / wall.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        wall,
        requests: lat.len(),
    }
}

fn show(name: &str, r: &Round) {
    println!(
        "{name:>8}: {:>9.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us",
        r.rps,
        r.p50.as_secs_f64() * 1e6,
        r.p99.as_secs_f64() * 1e6
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

async fn bench(requests: usize, conns: usize, delay: Duration) {
    let backend = backend(delay).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = listener.local_addr().unwrap();
    let (_list, list_rx) = watch::channel(vec![backend]);
    let (status_tx, mut status) = watch::channel(LbStatus::default());
    tokio::spawn(apilb::serve(
        listener,
        LbConfig::default(),
        list_rx,
        status_tx,
    ));
    status
        .wait_for(|s| s.healthy().count() == 1)
        .await
        .expect("the balancer stopped");

    // Warm-up: connections, the allocator, the CPU's caches and frequency.
    round(backend, requests / 10, conns).await;
    round(lb, requests / 10, conns).await;

    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let d = round(backend, requests, conns).await;
        show("direct", &d);
        let l = round(lb, requests, conns).await;
        show("via LB", &l);
        direct.push(d);
        through.push(l);
        if i + 1 < ROUNDS {
            println!();
        }
    }
    let total = |v: &[Round]| {
        let n: usize = v.iter().map(|r| r.requests).sum();
        let t: f64 = v.iter().map(|r| r.wall.as_secs_f64()).sum();
        n as f64 / t
    };
    let (dr, lr) = (total(&direct), total(&through));
    let dp99 = median(direct.iter().map(|r| r.p99).collect());
    let lp99 = median(through.iter().map(|r| r.p99).collect());
    let dp50 = median(direct.iter().map(|r| r.p50).collect());
    let lp50 = median(through.iter().map(|r| r.p50).collect());
    println!(
        "\n{requests} requests x {ROUNDS} rounds over {conns} connections each way, backend \
         delay {delay:?}\n\
         throughput: direct {dr:.0} req/s, via LB {lr:.0} req/s, ratio {:.3} (target >= 0.95)\n\
         p50 (median of rounds): direct {:.1} us, via LB {:.1} us, +{:.1} us\n\
         p99 (median of rounds): direct {:.1} us, via LB {:.1} us, +{:.1} us (target <= +1000 us)",
        lr / dr,
        dp50.as_secs_f64() * 1e6,
        lp50.as_secs_f64() * 1e6,
        (lp50.as_secs_f64() - dp50.as_secs_f64()) * 1e6,
        dp99.as_secs_f64() * 1e6,
        lp99.as_secs_f64() * 1e6,
        (lp99.as_secs_f64() - dp99.as_secs_f64()) * 1e6,
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000)
        .clamp(100, MAX_REQUESTS);
    let conns: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(4)
        .clamp(1, 64);
    let delay = Duration::from_millis(
        args.next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0u64)
            .min(100),
    );
    if cfg!(debug_assertions) {
        println!("(debug build: figures are not representative; use --release)");
    }
    tokio::time::timeout(DEADLINE, bench(requests, conns, delay))
        .await
        .expect("the benchmark took longer than its deadline");
}
