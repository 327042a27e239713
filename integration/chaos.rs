//! Chaos on the real control plane: over at least three minutes, `kill -9` a random component
//! 100 times at random intervals. Afterwards the API answers, every kill was followed by a
//! restart, there is no zombie and no duplicate instance, and the restart counts in
//! `kubesup status` match what kubesup logged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
const KILLS: usize = 100;

/// xorshift64*: a seeded, printable source of randomness for a reproducible run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn argv0(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = raw.split(|b| *b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

#[test]
fn a_hundred_random_kills_over_three_minutes() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("chaos");
    let ns = Netns::new("chaos");
    let mirror = Mirror::serve(&ns, &tb);
    // A shorter backoff cap and stable period keep the cluster converging between kills.
    let (data, cfg) = master_config(
        &scratch.dir,
        "chaos",
        "127.0.0.1",
        &mirror.url,
        "network: none\nsupervisor: {backoff-max: 5s, stable-after: 5s}\n",
    );
    let ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    ks.wait_ready(Duration::from_secs(240));

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("chaos seed {seed}");
    let mut rng = Rng(seed);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(8 * 60);
    let mut kills: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    let mut total = 0;
    while total < KILLS && Instant::now() < deadline {
        // 1.8 to 2.6 s apart: 100 kills take at least three minutes.
        std::thread::sleep(Duration::from_millis(1800 + rng.below(800)));
        let Some(status) = ks.status() else { continue };
        let first = rng.below(COMPONENTS.len() as u64) as usize;
        // The chosen component, or the next one that has a process right now.
        let target = (0..COMPONENTS.len())
            .map(|i| COMPONENTS[(first + i) % COMPONENTS.len()])
            .find_map(|name| {
                let pid = Kubesup::component(&status, name)?["pid"].as_i64()? as i32;
                alive(pid).then_some((name, pid))
            });
        let Some((name, pid)) = target else { continue };
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        kills.entry(name).or_default().push(pid);
        total += 1;
    }
    let took = start.elapsed();
    assert_eq!(total, KILLS, "only {total} kills before the deadline");
    assert!(took >= Duration::from_secs(180), "{took:?}");

    // Wait for the state asserted below, not just "all ready": right after the last kill the
    // status may still show the killed process as ready, before kubesup has seen its exit.
    let converged = wait_for(Duration::from_secs(300), || {
        let s = ks.status()?;
        COMPONENTS
            .iter()
            .all(|name| {
                Kubesup::component(&s, name).is_some_and(|c| {
                    c["ready"] == true
                        && c["restarts"].as_u64().unwrap_or(0) as usize
                            >= kills.get(name).map(Vec::len).unwrap_or(0)
                })
            })
            .then_some(s)
    });
    let status = converged.unwrap_or_else(|| {
        panic!(
            "not every kill was followed by a restart within 300 s: {:?}\n{}",
            ks.status(),
            ks.log_tail(40)
        )
    });
    let kc = data.join("kubeconfig/admin.conf");
    let readyz = wait_for(Duration::from_secs(60), || {
        let out = kubectl(&tb, &ns, &kc, &["get", "--raw", "/readyz"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "ok").then_some(())
    });
    assert!(readyz.is_some(), "the API does not answer after the chaos");

    // Every kill was followed by a restart: each killed pid is gone, and each component
    // restarted at least as often as it was killed. The status and the log must agree on the
    // count; a component may still exit by itself meanwhile (the controller-manager does when
    // it loses its lease while the API server restarts), so the log is read right before and
    // right after the status it is compared with: the count lies between the two.
    let read_log = || std::fs::read_to_string(&ks.log).unwrap_or_default();
    let exits = |log: &str, name: &str| {
        log.lines()
            .filter(|l| {
                l.contains("exited unexpectedly") && l.contains(&format!("component={name} "))
            })
            .count()
    };
    let before = read_log();
    let status = ks.status().unwrap_or(status);
    let after = read_log();
    let mut summary = Vec::new();
    let mut restarts_total = 0;
    for name in COMPONENTS {
        let c = Kubesup::component(&status, name).unwrap();
        let restarts = c["restarts"].as_u64().unwrap_or(0) as usize;
        let killed = kills.get(name).map(Vec::len).unwrap_or(0);
        for pid in kills.get(name).into_iter().flatten() {
            assert!(!alive(*pid), "{name} pid {pid} survived its kill -9");
        }
        assert!(
            restarts >= killed,
            "{name}: {killed} kills but {restarts} restarts"
        );
        let (logged_before, logged_after) = (exits(&before, name), exits(&after, name));
        assert!(
            logged_before <= restarts && restarts <= logged_after,
            "{name}: status says {restarts} restarts, the log {logged_before} before it and {logged_after} after"
        );
        restarts_total += restarts;
        summary.push(format!("{name}: {killed} kills, {restarts} restarts"));
    }
    eprintln!(
        "chaos: {total} kills in {took:.0?}; {}; {restarts_total} restarts in all",
        summary.join("; ")
    );

    // No zombie, and exactly one instance of each component in the namespace.
    let pids = ns.pids();
    assert!(
        pids.iter().all(|p| !zombie(*p)),
        "zombies: {:?}",
        pids.iter().filter(|p| zombie(**p)).collect::<Vec<_>>()
    );
    for name in COMPONENTS {
        let n = pids
            .iter()
            .filter(|p| argv0(**p).is_some_and(|a| a.ends_with(&format!("/{name}"))))
            .count();
        assert_eq!(n, 1, "{n} instances of {name}");
    }
}
