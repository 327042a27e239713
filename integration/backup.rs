//! `kubesup backup` and `kubesup restore` on the real test bed (etcd 3.4 from Debian, Kubernetes
//! v1.20.2): a round trip through a real etcd snapshot and API server, every refusal with
//! nothing written, and scheduled backups with their retention.
//!
//! One master, in a network namespace of its own, advertising 127.0.0.1 there. The restored
//! master runs on another data dir, under another node name, once the first is stopped (the
//! same ports in the same namespace: the machine the cluster is restored onto).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::ha::{kubesup_in, text};
use common::*;

fn admin(data: &Path) -> PathBuf {
    data.join("kubeconfig/admin.conf")
}

/// `kubectl ARGS` that must succeed.
fn kubectl_ok(tb: &Testbed, ns: &Netns, data: &Path, args: &[&str]) -> String {
    // The API server may still be settling (a freshly restored one lists every watch again):
    // retry briefly, bounded.
    let mut last = None;
    for _ in 0..20 {
        let out = kubectl(tb, ns, &admin(data), args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("kubectl {args:?}: {}", text(&last.unwrap()));
}

fn exists(tb: &Testbed, ns: &Netns, data: &Path, args: &[&str]) -> bool {
    let out = kubectl(tb, ns, &admin(data), args);
    let t = text(&out);
    assert!(
        out.status.success() || t.contains("NotFound") || t.contains("not found"),
        "kubectl {args:?}: {t}"
    );
    out.status.success()
}

/// Runs `kubesup ARGS` in the namespace (no --data-dir added: each call passes its own).
fn kubesup_ns(ns: &Netns, args: &[&str]) -> Output {
    let mut cmd = ns.command(&kubesup_bin());
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(300))
}

/// A refused restore: exit 2, one line naming `what`, and the target data dir not created.
fn assert_refused(
    ns: &Netns,
    archive: &Path,
    cfg: &Path,
    target: &Path,
    extra: &[&str],
    what: &str,
) {
    let mut args = vec![
        "restore",
        archive.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = kubesup_ns(ns, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line, got {stderr}");
    assert!(
        lines[0].contains(what),
        "expected {what:?} in the refusal: {stderr}"
    );
    assert!(!target.exists(), "{what}: {} was written", target.display());
}

/// A copy of the archive `from` without its member `name` (everything else as it was).
fn without_member(from: &Path, to: &Path, name: &str) {
    let mut src = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    for e in src.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            continue;
        }
        let h = e.header().clone();
        out.append(&h, &mut e).unwrap();
    }
    out.finish().unwrap();
}

fn write_key(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn backup_restore_round_trip_refusals_and_the_schedule() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("backup");
    let ns = Netns::new("bk");
    let mirror = Mirror::serve(&ns, &tb);
    let extra = "network: none\ndns: {enabled: false}\n";
    let (data, cfg) = master_config(
        &scratch.dir,
        "m1",
        "127.0.0.1",
        &mirror.url,
        &format!("{extra}backup: {{schedule: 10s, keep: 2}}\n"),
    );
    let cfg_s = cfg.to_string_lossy().into_owned();
    let ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg_s]);
    ks.wait_ready(Duration::from_secs(300));

    // The first set of objects: in the backup.
    kubectl_ok(&tb, &ns, &data, &["create", "namespace", "before"]);
    kubectl_ok(
        &tb,
        &ns,
        &data,
        &[
            "-n",
            "before",
            "create",
            "configmap",
            "kept",
            "--from-literal=a=1",
        ],
    );

    // A plain and an encrypted backup.
    let plain = scratch.dir.join("b.tar");
    let out = kubesup_ns(
        &ns,
        &[
            "backup",
            "--config",
            &cfg_s,
            "--output",
            plain.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "backup: {}", text(&out));
    assert_eq!(mode(&plain) & 0o777, 0o600);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("etcd revision"), "{stdout}");
    let key = scratch.dir.join("backup.key");
    write_key(&key, "q3R5l0sZk1m2n3b4v5c6x7z8a9s0d1f2g3h4\n");
    let sealed = scratch.dir.join("b.tar.enc");
    let out = kubesup_ns(
        &ns,
        &[
            "backup",
            "--config",
            &cfg_s,
            "--output",
            sealed.to_str().unwrap(),
            "--encrypt-key-file",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "encrypted backup: {}", text(&out));
    // Nothing secret on the terminal or in the log.
    let pem_marker = "PRIVATE KEY";
    assert!(!text(&out).contains(pem_marker));

    // The schedule: every 10 s on the leader (the one member), the newest two kept.
    let listed = wait_for(Duration::from_secs(90), || {
        let log = std::fs::read_to_string(&ks.log).unwrap_or_default();
        let made = log.matches("scheduled backup written").count();
        (made >= 3).then_some(made)
    });
    assert!(
        listed.is_some(),
        "no 3 scheduled backups\n{}",
        ks.log_tail(40)
    );
    let out = kubesup_in(
        &ns,
        &["backup", "list", "--json", "--config", &cfg_s],
        &data,
    );
    assert!(out.status.success(), "backup list: {}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = list.as_array().unwrap().len();
    // A prune runs right after each backup; between the two there may be one more.
    assert!((2..=3).contains(&n), "keep 2: {list}");
    assert!(
        !std::fs::read_to_string(&ks.log)
            .unwrap()
            .contains(pem_marker)
    );

    // The second set: after the backup, so not restored.
    kubectl_ok(&tb, &ns, &data, &["create", "namespace", "after"]);
    drop(ks);

    // Refusals, each into a data dir that must stay absent.
    let (target, cfg2) = master_config(&scratch.dir, "m2", "127.0.0.1", &mirror.url, extra);
    let good = std::fs::read(&plain).unwrap();
    let damaged = scratch.dir.join("damaged.tar");
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&damaged, &flipped).unwrap();
    assert_refused(
        &ns,
        &damaged,
        &cfg2,
        &target,
        &[],
        "does not match the SHA-256",
    );
    std::fs::write(&damaged, &good[..good.len() * 2 / 3]).unwrap();
    assert_refused(&ns, &damaged, &cfg2, &target, &[], "truncated");
    std::fs::write(&damaged, &good).unwrap();
    without_member(&plain, &damaged, "cluster-keys.json");
    assert_refused(
        &ns,
        &damaged,
        &cfg2,
        &target,
        &[],
        "member cluster-keys.json is missing",
    );
    let wrong = scratch.dir.join("wrong.key");
    write_key(&wrong, "another-key-of-at-least-thirty-two-bytes");
    assert_refused(
        &ns,
        &sealed,
        &cfg2,
        &target,
        &["--encrypt-key-file", wrong.to_str().unwrap()],
        "another key file",
    );
    assert_refused(&ns, &sealed, &cfg2, &target, &[], "is encrypted");
    // Onto the old master's data dir: refused, and it is left as it was.
    let before = files_under(&data.join("pki")).len();
    let out = kubesup_ns(
        &ns,
        &["restore", plain.to_str().unwrap(), "--config", &cfg_s],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(files_under(&data.join("pki")).len(), before);

    // The round trip: restore into a new data dir, start, the first set is there.
    let out = kubesup_ns(
        &ns,
        &[
            "restore",
            sealed.to_str().unwrap(),
            "--config",
            cfg2.to_str().unwrap(),
            "--encrypt-key-file",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    assert!(target.join("etcd/member").is_dir());
    assert!(!target.join("restore.partial").exists());
    assert_eq!(
        std::fs::read(data.join("pki/ca.crt")).unwrap(),
        std::fs::read(target.join("pki/ca.crt")).unwrap(),
        "the same cluster CA"
    );
    let ks2 = Kubesup::start(
        &ns,
        &target,
        &["master", "--config", cfg2.to_str().unwrap()],
    );
    ks2.wait_ready(Duration::from_secs(300));
    assert!(exists(&tb, &ns, &target, &["get", "namespace", "before"]));
    let v = kubectl_ok(
        &tb,
        &ns,
        &target,
        &[
            "-n",
            "before",
            "get",
            "configmap",
            "kept",
            "-o",
            "jsonpath={.data.a}",
        ],
    );
    assert_eq!(v.trim(), "1");
    assert!(!exists(&tb, &ns, &target, &["get", "namespace", "after"]));
    // A new cluster: one member, named after this node.
    let members = common::ha::members(&ns, &target);
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["name"], "it-m2", "{members:?}");
    // It works: a write goes through.
    kubectl_ok(&tb, &ns, &target, &["create", "namespace", "restored"]);
    drop(ks2);

    // --force onto the old data dir: its state moves aside, kept, and the path is printed.
    let out = kubesup_ns(
        &ns,
        &[
            "restore",
            plain.to_str().unwrap(),
            "--config",
            &cfg_s,
            "--force",
        ],
    );
    assert!(out.status.success(), "restore --force: {}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let aside = said
        .split_whitespace()
        .find(|w| w.contains("before-restore-"))
        .unwrap_or_else(|| panic!("no moved-aside path in {said}"));
    let aside = Path::new(aside.trim_end_matches(['.', ',', ';']));
    assert!(aside.join("etcd/member").is_dir(), "{said}");
    assert!(aside.join("pki/ca.key").is_file(), "{said}");
    assert!(data.join("etcd/member").is_dir());
}

const HA_IPS: [&str; 4] = ["10.83.0.1", "10.83.0.2", "10.83.0.3", "10.83.0.4"];

/// Lost quorum and `kubesup master --cluster-reset`: three masters, two killed for good (writes
/// fail), the survivor reset into a one-member cluster with every object, a new master joins
/// it, a second start with the flag left in does not reset again, and the killed masters' data
/// dirs are refused (reset and join again) instead of joining or resurrecting the old cluster.
#[test]
fn cluster_reset_after_lost_quorum_once_and_the_old_members_refused() {
    use common::ha::{Node, join_url, members, start, voters, write_token};
    use nix::sys::signal::Signal;

    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("reset");
    let mut lan = Lan::new("rs");
    let idx: Vec<usize> = (0..4)
        .map(|i| lan.add_node(&format!("rs{i}"), &format!("{}/24", HA_IPS[i])))
        .collect();
    let mirrors: Vec<Mirror> = lan.nodes.iter().map(|ns| Mirror::serve(ns, &tb)).collect();
    let ns = |i: usize| &lan.nodes[idx[i]];
    let nodes: Vec<Node> = (0..4)
        .map(|i| {
            let (data, cfg) = master_config(
                &scratch.dir,
                &format!("r{i}"),
                HA_IPS[i],
                &mirrors[idx[i]].url,
                "network: none\ndns: {enabled: false}\nbackup: {schedule: \"off\"}\n",
            );
            Node { data, cfg }
        })
        .collect();
    let master_token = |i: usize| {
        let out = kubesup_in(
            ns(i),
            &["token", "create", "--role", "master"],
            &nodes[i].data,
        );
        assert!(out.status.success(), "token create: {}", text(&out));
        write_token(
            &scratch.dir,
            &format!("token-{i}"),
            String::from_utf8_lossy(&out.stdout).trim(),
        )
    };

    // Three masters, joined one after the other.
    let mut m: Vec<Option<Kubesup>> =
        vec![Some(start(ns(0), &nodes[0], &nodes[0].master_args(None)))];
    m[0].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    let token = master_token(0);
    for i in 1..3 {
        m.push(Some(start(
            ns(i),
            &nodes[i],
            &nodes[i].master_args(Some((&join_url(HA_IPS[0]), &token))),
        )));
        m[i].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    }
    let three = wait_for(Duration::from_secs(90), || {
        (voters(ns(0), &nodes[0].data) == 3).then_some(())
    });
    assert!(three.is_some(), "{:?}", members(ns(0), &nodes[0].data));
    kubectl_ok(
        &tb,
        ns(0),
        &nodes[0].data,
        &["create", "namespace", "before-reset"],
    );
    // Each master's member record knows the others by now (it is refreshed every 5 s).
    let recorded = wait_for(Duration::from_secs(30), || {
        (1..3)
            .all(|i| {
                std::fs::read_to_string(nodes[i].data.join("etcd-member.json"))
                    .is_ok_and(|t| t.contains(HA_IPS[0]))
            })
            .then_some(())
    });
    assert!(recorded.is_some(), "member records not written");

    // Two killed for good: no quorum, writes fail.
    for slot in &mut m[1..3] {
        let mut k = slot.take().unwrap();
        k.signal(Signal::SIGKILL);
        let _ = k.wait_exit(Duration::from_secs(10));
    }
    let stuck = wait_for(Duration::from_secs(120), || {
        let out = kubectl(
            &tb,
            ns(0),
            &admin(&nodes[0].data),
            &["create", "namespace", "lost-quorum"],
        );
        (!out.status.success()).then_some(())
    });
    assert!(stuck.is_some(), "writes still succeed without quorum");

    // The survivor, reset: one member, every object, writes again.
    m[0] = None;
    let mut reset_args = nodes[0].master_args(None);
    reset_args.push("--cluster-reset".into());
    m[0] = Some(start(ns(0), &nodes[0], &reset_args));
    m[0].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    assert!(nodes[0].data.join("etcd-reset.json").is_file());
    let one = wait_for(Duration::from_secs(60), || {
        (members(ns(0), &nodes[0].data).len() == 1).then_some(())
    });
    assert!(one.is_some(), "{:?}", members(ns(0), &nodes[0].data));
    assert!(exists(
        &tb,
        ns(0),
        &nodes[0].data,
        &["get", "namespace", "before-reset"]
    ));
    kubectl_ok(
        &tb,
        ns(0),
        &nodes[0].data,
        &["create", "namespace", "after-reset"],
    );

    // A new master joins the reset cluster.
    let token = master_token(0);
    m.push(Some(start(
        ns(3),
        &nodes[3],
        &nodes[3].master_args(Some((&join_url(HA_IPS[0]), &token))),
    )));
    m[3].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    let two = wait_for(Duration::from_secs(90), || {
        (voters(ns(0), &nodes[0].data) == 2).then_some(())
    });
    assert!(two.is_some(), "{:?}", members(ns(0), &nodes[0].data));

    // The flag left in (a unit file): the next start does not reset again, the joiner stays.
    m[0] = None;
    m[0] = Some(start(ns(0), &nodes[0], &reset_args));
    m[0].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    let log = std::fs::read_to_string(&m[0].as_ref().unwrap().log).unwrap_or_default();
    assert!(
        log.contains("already reset"),
        "{}",
        m[0].as_ref().unwrap().log_tail(40)
    );
    let still = wait_for(Duration::from_secs(60), || {
        (voters(ns(0), &nodes[0].data) == 2).then_some(())
    });
    assert!(
        still.is_some(),
        "reset again: {:?}",
        members(ns(0), &nodes[0].data)
    );
    assert!(exists(
        &tb,
        ns(3),
        &nodes[3].data,
        &["get", "namespace", "after-reset"]
    ));

    // The killed masters come back with the old cluster's data: refused, with what to do.
    for (i, node) in nodes.iter().enumerate().take(3).skip(1) {
        eprintln!(
            "old master {i}'s member record: {}",
            std::fs::read_to_string(node.data.join("etcd-member.json")).unwrap_or_default()
        );
        let mut old = start(ns(i), node, &node.master_args(None));
        let status = old.wait_exit(Duration::from_secs(120));
        let log = std::fs::read_to_string(&old.log).unwrap_or_default();
        // The check is `membership::check_not_removed`: the recorded peers are asked for
        // the member list, and one that answers without this member refuses the start.
        assert!(
            status.is_some_and(|s| !s.success()),
            "old master {i} started ({status:?}); its check of the recorded peers let it \
             through (one of them is dead: a client balanced over all of them fails every \
             other request)\n{}",
            old.log_tail(60)
        );
        assert!(
            log.contains("kubesup reset") && log.contains("join again"),
            "{}",
            old.log_tail(30)
        );
    }
    assert_eq!(members(ns(0), &nodes[0].data).len(), 2);
}

const WORKER_IPS: [&str; 4] = ["10.84.0.1", "10.84.0.2", "10.84.0.3", "10.84.0.4"];

/// The round trip seen from a worker: a worker joined before the backup keeps running while
/// its master is gone and restored (onto the same address, another data dir and node name),
/// and is Ready again, its lease renewed, without joining again: the CAs are the same.
#[test]
fn a_worker_joined_before_the_backup_is_ready_again_after_the_restore() {
    use common::ha::{ThreeMasters, join_url, lease, start};

    let Some(tb) = Testbed::get() else { return };
    let fx = ThreeMasters::new(&tb, "bw", &WORKER_IPS);
    let master = start(fx.ns(0), &fx.nodes[0], &fx.nodes[0].master_args(None));
    master.wait_ready(Duration::from_secs(300));
    let wt = fx.token_file(0, "worker", "worker-token");
    let (wdata, wcfg) = fx.worker_config("it-bw");
    let worker = Kubesup::start_isolated(
        fx.ns(3),
        &wdata,
        &fx.scratch.dir.join("w-root"),
        &[
            "worker",
            "--config",
            &wcfg.to_string_lossy(),
            "--join",
            &join_url(WORKER_IPS[0]),
            "--token-file",
            &wt,
        ],
    );
    worker.wait_ready(Duration::from_secs(300));
    let data0 = &fx.nodes[0].data;
    let ready = wait_for(Duration::from_secs(120), || {
        node_ready(&tb, fx.ns(0), &admin(data0), "it-bw").then_some(())
    });
    assert!(ready.is_some(), "not Ready\n{}", worker.log_tail(40));
    kubectl_ok(&tb, fx.ns(0), data0, &["create", "namespace", "before"]);

    let archive = fx.scratch.dir.join("b.tar");
    let out = kubesup_ns(
        fx.ns(0),
        &[
            "backup",
            "--config",
            &fx.nodes[0].cfg.to_string_lossy(),
            "--output",
            archive.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "backup: {}", text(&out));
    kubectl_ok(&tb, fx.ns(0), data0, &["create", "namespace", "after"]);
    drop(master);

    // Restored on the same address, into a new data dir, under another node name.
    let (data, cfg) = master_config(
        &fx.scratch.dir,
        "m0-restored",
        WORKER_IPS[0],
        &fx.mirrors[0].url,
        "network: none\n",
    );
    let out = kubesup_ns(
        fx.ns(0),
        &[
            "restore",
            archive.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    let restored = Kubesup::start(
        fx.ns(0),
        &data,
        &["master", "--config", cfg.to_str().unwrap()],
    );
    restored.wait_ready(Duration::from_secs(300));
    assert!(exists(
        &tb,
        fx.ns(0),
        &data,
        &["get", "namespace", "before"]
    ));
    assert!(!exists(
        &tb,
        fx.ns(0),
        &data,
        &["get", "namespace", "after"]
    ));

    // The worker's kubelet renews its lease with the restored API server, and its node is
    // Ready: the lease restored from the snapshot is older than the backup, so a renewal
    // after the restore is the worker's own doing.
    let kc = admin(&data);
    let restored_renew = lease(&tb, fx.ns(0), &kc, "kube-node-lease", "it-bw", "renewTime");
    let renewed = wait_for(Duration::from_secs(180), || {
        let now = lease(&tb, fx.ns(0), &kc, "kube-node-lease", "it-bw", "renewTime");
        (!now.is_empty() && now != restored_renew && node_ready(&tb, fx.ns(0), &kc, "it-bw"))
            .then_some(now)
    });
    assert!(
        renewed.is_some(),
        "the worker did not come back (lease {restored_renew})\n{}",
        worker.log_tail(60)
    );
    worker.assert_running();
    drop(restored);
    drop(worker);
}
