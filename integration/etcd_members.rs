//! The etcd membership primitives (src/etcd/members.rs) against a real etcd (Debian's 3.4.23,
//! `/usr/bin/etcd`, installed by integration/setup-testbed.sh; 3.4 has learners): a learner is
//! added, started with `--initial-cluster-state existing` and promoted once caught up; a join run
//! again at any point resumes instead of adding a duplicate; a second joiner waits; a learner
//! that never starts is removed after a bound; and a removal that would cost quorum is refused.
//!
//! Each test starts its own members on 127.0.0.1 (plain HTTP, ports from the shared
//! `free_port`), each with its own temporary data dir and in its own process group, and kills
//! exactly those groups when it ends, even on panic. Every wait is bounded. Skips with a message
//! when etcd is absent; fails then if `KUBESUP_TESTBED_REQUIRED` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{DataDir, debian_etcd, free_port, kill_group, spawn_logged, wait_for};
use etcd_client::{Client, ConnectOptions};
use kubesup::etcd::members::{
    self, Health, JoinStep, LearnerPolicy, MembersError, Membership, Probe, QuorumError, Role,
    check_removal, initial_cluster, next_join_step,
};
use kubesup::retry::Backoff;
use tokio::runtime::Runtime;

/// One runtime per test, driven with `block_on`: the shared `wait_for` polls synchronously, and
/// each of its polls runs one bounded etcd request on it.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One etcd member on 127.0.0.1, not started until [`Etcd::start`]; its process group is
/// killed on drop, and its data dir removed.
struct Etcd {
    bin: PathBuf,
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: DataDir,
    child: Option<Child>,
}

impl Etcd {
    fn new(bin: &Path, name: &str) -> Self {
        Self {
            bin: bin.to_path_buf(),
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            dir: DataDir::new(),
            child: None,
        }
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path("etcd.log")
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} ---\n{}",
            self.name,
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// Starts the member with `--initial-cluster initial` and `--initial-cluster-state state`.
    /// Heartbeat and election timeouts twice etcd's defaults: this runs on a busy 2-core
    /// machine, and a spurious election mid-test would fail a promotion for the wrong reason.
    fn start(&mut self, initial: &str, state: &str) {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir.data)
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", initial])
            .args(["--initial-cluster-state", state])
            .args([
                "--initial-cluster-token",
                &format!("kubesup-it-{}", std::process::id()),
            ])
            .args(["--heartbeat-interval", "200", "--election-timeout", "2000"]);
        self.child = Some(spawn_logged(&mut cmd, &self.log_path()));
    }

    /// Starts a cluster of this member alone.
    fn start_alone(&mut self) {
        let initial = format!("{}={}", self.name, self.peer_url());
        self.start(&initial, "new");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn logs(members: &[&Etcd]) -> String {
    members
        .iter()
        .map(|m| m.log())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A client of `member` once a linearizable read through it succeeds (a leader is elected),
/// within 30 s.
fn client(rt: &Runtime, member: &Etcd) -> Client {
    let url = member.client_url();
    wait_for(Duration::from_secs(30), || {
        rt.block_on(async {
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(2));
            let mut c = Client::connect([url.as_str()], Some(opts)).await.ok()?;
            c.get("/kubesup/probe", None).await.ok()?;
            Some(c)
        })
    })
    .unwrap_or_else(|| panic!("etcd did not answer within 30 s:\n{}", member.log()))
}

/// The first snapshot that satisfies `ok`, within `timeout`; panics with the last one and the
/// members' logs otherwise.
fn membership_until(
    rt: &Runtime,
    c: &mut Client,
    timeout: Duration,
    etcds: &[&Etcd],
    mut ok: impl FnMut(&Membership) -> bool,
) -> Membership {
    let mut last = None;
    wait_for(timeout, || {
        let m = rt
            .block_on(members::membership(c, &Probe::default()))
            .ok()?;
        let done = ok(&m);
        last = Some(m.clone());
        done.then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "membership not as expected within {timeout:?}; last: {last:#?}\n{}",
            logs(etcds)
        )
    })
}

fn policy(max_stall: Duration) -> LearnerPolicy {
    LearnerPolicy::new(Probe::default())
        .with_max_stall(max_stall)
        .with_poll(Duration::from_millis(500))
}

#[test]
fn a_learner_is_promoted_once_it_has_caught_up() {
    let Some(bin) = debian_etcd() else { return };
    let rt = runtime();
    let mut a = Etcd::new(&bin, "a");
    a.start_alone();
    let mut c = client(&rt, &a);

    let mut b = Etcd::new(&bin, "b");
    let (learner, after_add) = rt
        .block_on(members::add_learner(&mut c, "b", &b.peer_url()))
        .unwrap();
    // etcd's MemberAdd has no name: the learner is nameless until its etcd starts.
    assert!(learner.is_learner, "{learner:?}");
    assert!(!learner.is_started(), "{learner:?}");
    assert_eq!(after_add.len(), 2, "{after_add:?}");

    let initial = initial_cluster(&after_add, "b", &b.peer_url()).unwrap();
    // Every member, the joiner under its name; etcd lists members in no particular order.
    let mut entries: Vec<&str> = initial.split(',').collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        [format!("a={}", a.peer_url()), format!("b={}", b.peer_url())]
    );
    b.start(&initial, "existing");

    // "Not in sync with the leader" until it has caught up: retried, within 30 s.
    let started = Instant::now();
    let backoff = Backoff::fixed(Duration::from_millis(500)).with_attempts(60);
    let promoted = rt
        .block_on(members::promote(&mut c, learner.id, &backoff))
        .unwrap_or_else(|e| panic!("{}\n{}", kubesup::errors::chain(&e), logs(&[&a, &b])));
    eprintln!("promoted after {:?}", started.elapsed());
    assert!(promoted.iter().all(|m| !m.is_learner), "{promoted:?}");
    assert_eq!(promoted.len(), 2);

    // Two voters, both answering as themselves; a leads (the only voter when b was added).
    let m = membership_until(&rt, &mut c, Duration::from_secs(20), &[&a, &b], |m| {
        m.healthy_ids().len() == 2 && m.by_name("b").is_some() && m.leader.is_some()
    });
    assert_eq!(m.voters().count(), 2, "{m:#?}");
    let a_id = m.by_name("a").unwrap().id;
    assert_eq!(m.role(a_id), Some(Role::Leader), "{m:#?}");
    assert_eq!(rt.block_on(members::local_id(&mut c)).unwrap(), a_id);
    assert_eq!(m.role(learner.id), Some(Role::Voter), "{m:#?}");
    assert_eq!(m.by_name("b").unwrap().client_urls, [b.client_url()]);
    for h in m.health.values() {
        assert!(
            matches!(h, Health::Up { db_size, .. } if *db_size > 0),
            "{m:#?}"
        );
    }
    // Promoting it again is done, not an error (a promotion whose reply was lost).
    let again = rt
        .block_on(members::promote(&mut c, learner.id, &backoff))
        .unwrap();
    assert!(again.iter().all(|m| !m.is_learner), "{again:?}");
}

#[test]
fn a_join_run_again_resumes_its_learner_and_a_second_joiner_waits() {
    let Some(bin) = debian_etcd() else { return };
    let rt = runtime();
    let mut a = Etcd::new(&bin, "a");
    a.start_alone();
    let mut c = client(&rt, &a);
    let mut b = Etcd::new(&bin, "b");
    let third = Etcd::new(&bin, "c");

    let m = rt
        .block_on(members::membership(&mut c, &Probe::default()))
        .unwrap();
    assert_eq!(next_join_step(&m, "b", &b.peer_url()), JoinStep::AddLearner);
    let (learner, _) = rt
        .block_on(members::add_learner(&mut c, "b", &b.peer_url()))
        .unwrap();

    // The join is killed here, after the add and before its etcd starts; run again, it finds
    // its own nameless member by peer URL and resumes it. No second add, no duplicate.
    let m = rt
        .block_on(members::membership(&mut c, &Probe::default()))
        .unwrap();
    assert_eq!(m.members.len(), 2, "{m:#?}");
    assert_eq!(m.health.get(&learner.id), Some(&Health::Unstarted));
    assert_eq!(
        next_join_step(&m, "b", &b.peer_url()),
        JoinStep::AlreadyLearner(learner.id)
    );
    // Another master joining meanwhile waits for the one learner...
    assert!(
        matches!(
            next_join_step(&m, "c", &third.peer_url()),
            JoinStep::WaitForOtherLearner { id, .. } if id == learner.id
        ),
        "{:?}",
        next_join_step(&m, "c", &third.peer_url())
    );
    // ... and had it raced past that check, etcd itself refuses a second learner.
    let refused = rt.block_on(members::add_learner(&mut c, "c", &third.peer_url()));
    assert!(
        matches!(refused, Err(MembersError::LearnerExists { .. })),
        "{refused:?}"
    );
    // Adding the resumed joiner again is refused too, never a duplicate.
    let dup = rt.block_on(members::add_learner(&mut c, "b", &b.peer_url()));
    assert!(
        matches!(dup, Err(MembersError::PeerUrlExists { .. })),
        "{dup:?}"
    );

    // Resume: start its etcd with the current members, and promote it (the joiner's job) while
    // the second joiner watches the learner; the watcher is done when the learner is promoted.
    b.start(
        &initial_cluster(&m.members, "b", &b.peer_url()).unwrap(),
        "existing",
    );
    let mut watcher = c.clone();
    let (promoter_policy, watcher_policy) = (
        policy(Duration::from_secs(30)),
        policy(Duration::from_secs(30)),
    );
    let (promoted, watched) = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(45), async {
            tokio::join!(
                members::promote_when_caught_up(&mut c, learner.id, &promoter_policy),
                members::reap_stuck_learner(&mut watcher, &watcher_policy),
            )
        })
        .await
        .unwrap_or_else(|_| panic!("no promotion within 45 s\n{}", logs(&[&a, &b])))
    });
    let promoted =
        promoted.unwrap_or_else(|e| panic!("{}\n{}", kubesup::errors::chain(&e), logs(&[&a, &b])));
    assert!(promoted.iter().all(|m| !m.is_learner), "{promoted:?}");
    assert_eq!(watched.unwrap(), None, "the watcher removed nothing");

    // Run once more: a voter now; the second joiner may add itself.
    let m = rt
        .block_on(members::membership(&mut c, &Probe::default()))
        .unwrap();
    assert_eq!(m.members.len(), 2, "{m:#?}");
    assert_eq!(
        next_join_step(&m, "b", &b.peer_url()),
        JoinStep::AlreadyVoter(learner.id)
    );
    assert_eq!(
        next_join_step(&m, "c", &third.peer_url()),
        JoinStep::AddLearner
    );
}

#[test]
fn a_learner_that_never_starts_is_removed_after_the_bound() {
    let Some(bin) = debian_etcd() else { return };
    let rt = runtime();
    let mut a = Etcd::new(&bin, "a");
    a.start_alone();
    let mut c = client(&rt, &a);
    // Its etcd is never started: the joiner died right after the add.
    let b = Etcd::new(&bin, "b");
    let (learner, _) = rt
        .block_on(members::add_learner(&mut c, "b", &b.peer_url()))
        .unwrap();

    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let reaped = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                members::reap_stuck_learner(&mut c, &policy(bound)),
            )
            .await
        })
        .expect("the reaper acts within 30 s")
        .unwrap();
    let took = started.elapsed();
    eprintln!("reaped after {took:?}");
    assert_eq!(reaped.map(|m| m.id), Some(learner.id));
    assert!(
        took >= bound,
        "removed after {took:?}, before the bound of {bound:?}"
    );

    let m = rt
        .block_on(members::membership(&mut c, &Probe::default()))
        .unwrap();
    assert_eq!(m.members.len(), 1, "{m:#?}");
    assert!(m.get(learner.id).is_none());
    // The slot is free for the next joiner.
    assert_eq!(
        next_join_step(&m, "c", "http://127.0.0.1:1"),
        JoinStep::AddLearner
    );
    // Removing it again is done already, not an error.
    assert!(!rt.block_on(members::remove(&mut c, learner.id)).unwrap());
}

#[test]
fn a_removal_that_would_cost_quorum_is_refused() {
    let Some(bin) = debian_etcd() else { return };
    let rt = runtime();
    let mut etcds: Vec<Etcd> = ["a", "b", "c"]
        .into_iter()
        .map(|n| Etcd::new(&bin, n))
        .collect();
    let initial = etcds
        .iter()
        .map(|e| format!("{}={}", e.name, e.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for e in &mut etcds {
        e.start(&initial, "new");
    }
    let mut c = client(&rt, &etcds[0]);
    let all: Vec<&Etcd> = etcds.iter().collect();
    membership_until(&rt, &mut c, Duration::from_secs(30), &all, |m| {
        m.healthy_ids().len() == 3
    });

    // c dies. If it led, a and b elect a new leader first (a reconfiguration waits for one),
    // so wait for a leader other than c, too.
    etcds[2].kill();
    let all: Vec<&Etcd> = etcds.iter().collect();
    let m = membership_until(&rt, &mut c, Duration::from_secs(20), &all, |m| {
        m.by_name("c").is_some_and(|c| {
            matches!(m.health.get(&c.id), Some(Health::Down { .. }))
                && m.leader.is_some_and(|l| l != c.id)
        }) && m.healthy_ids().len() == 2
    });
    let id = |n: &str| m.by_name(n).unwrap().id;
    let healthy = m.healthy_ids();

    // Removing a healthy one would leave 1 healthy of 2: refused.
    let refused = check_removal(&m, &healthy, id("a"));
    assert!(
        matches!(
            refused,
            Err(QuorumError::NoQuorum {
                voters_left: 2,
                healthy_left: 1,
                needed: 2,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(check_removal(&m, &healthy, id("b")).is_err());
    // Removing the dead one leaves 2 healthy of 2.
    check_removal(&m, &healthy, id("c")).unwrap();
    assert!(rt.block_on(members::remove(&mut c, id("c"))).unwrap());

    let m = membership_until(&rt, &mut c, Duration::from_secs(20), &all, |m| {
        m.members.len() == 2 && m.healthy_ids().len() == 2
    });
    assert!(m.by_name("c").is_none(), "{m:#?}");
    assert_eq!(m.voters().count(), 2);
}
