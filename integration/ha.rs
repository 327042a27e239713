//! A highly available control plane on the real test bed: three masters and a worker, each in
//! its own network namespace on a bridge (as in `integration/multinode.rs`), joined with
//! `kubesup master --join` and real etcd 3.4 membership.
//!
//! One cluster goes through every case in turn, so that the three control planes are started
//! once (they are what costs time on 2 cores): two masters joining at once, a worker token
//! refused for a master join, a pod on the worker, a hung master (every process SIGSTOPped,
//! then continued), a whole master killed and started again, a
//! reset refused for quorum, a removed member refused at start, a join killed right after its
//! member add and run again, and a reset that leaves two working members.
//!
//! Test-bed stand-in, said plainly: the cluster runs `network: none` (no flanneld in any
//! reachable registry), and the worker's pod needs no route to anywhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ha::{
    Frozen, ThreeMasters, assert_lease_renewed, etcdctl_members, join_url, kubesup_in, lease,
    members, start, text, voters,
};
use common::{Kubesup, Testbed, kubectl, kubesup_bin, node_ready, run_bounded, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;

const IPS: [&str; 4] = ["10.81.0.1", "10.81.0.2", "10.81.0.3", "10.81.0.4"];

#[test]
fn three_masters_join_fail_over_and_leave_without_losing_quorum() {
    let Some(tb) = Testbed::get() else { return };
    let fx = ThreeMasters::new(&tb, "ha", &IPS);
    let (nodes, scratch) = (&fx.nodes, &fx.scratch);
    let ns = |i: usize| fx.ns(i);

    // The first master, as ever.
    let t0 = Instant::now();
    let mut m: Vec<Option<Kubesup>> =
        vec![Some(start(ns(0), &nodes[0], &nodes[0].master_args(None)))];
    m[0].as_ref().unwrap().wait_ready(Duration::from_secs(240));
    let cold_start = t0.elapsed();

    let wt = fx.token_file(0, "worker", "worker-token");
    let master_token = fx.token_file(0, "master", "master-token");

    // A worker token cannot join a master: one error line, and nothing written.
    let mut cmd = ns(1).command(&kubesup_bin());
    cmd.args(nodes[1].master_args(Some((&join_url(IPS[0]), &wt))));
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "a worker token joined a master");
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(String::from)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("worker token"), "{}", errors[0]);
    assert!(
        !nodes[1].data.exists(),
        "the refused join wrote {:?}",
        nodes[1].data
    );

    // Two masters join at once, through different masters' join APIs... the second has only
    // the first to ask. Both end up voters, one after the other.
    let t_join = Instant::now();
    m.push(Some(start(
        ns(1),
        &nodes[1],
        &nodes[1].master_args(Some((&join_url(IPS[0]), &master_token))),
    )));
    m.push(Some(start(
        ns(2),
        &nodes[2],
        &nodes[2].master_args(Some((&join_url(IPS[0]), &master_token))),
    )));
    m[1].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    let join_to_ready = t_join.elapsed();
    m[2].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    eprintln!(
        "cold start of the first master {cold_start:?}; a joining master ready after {join_to_ready:?}; both joiners ready after {:?}",
        t_join.elapsed()
    );
    let ok = wait_for(Duration::from_secs(60), || {
        (voters(ns(0), &nodes[0].data) == 3).then_some(())
    });
    assert!(
        ok.is_some(),
        "not three voters: {:?}",
        members(ns(0), &nodes[0].data)
    );
    // One of them waited for the other's learner, and said so.
    let waited = (1..3).any(|i| {
        m[i].as_ref()
            .unwrap()
            .log_tail(usize::MAX)
            .contains("another master is joining")
    });
    eprintln!("a joiner waited for the other's learner: {waited}");

    // kubesup's list agrees with etcdctl's.
    let ours: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = members(ns(0), &nodes[0].data)
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ours, etcdctl_members(ns(0), &nodes[0].data, IPS[0]));
    let ids_before = ours.clone();
    assert_eq!(ids_before.len(), 3);

    // Every master's API answers, and knows the objects written through another.
    for i in 0..3 {
        let kc = nodes[i].data.join("kubeconfig/admin.conf");
        let out = kubectl(&tb, ns(i), &kc, &["get", "--raw", "/readyz"]);
        assert!(out.status.success(), "master {i}: {}", text(&out));
        // A joined master's keys are 0600 and its CA is the cluster's.
        let key = nodes[i].data.join("pki/ca.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read(nodes[i].data.join("pki/ca.crt")).unwrap(),
            std::fs::read(nodes[0].data.join("pki/ca.crt")).unwrap()
        );
    }
    let kc1 = nodes[1].data.join("kubeconfig/admin.conf");
    let out = kubectl(&tb, ns(1), &kc1, &["create", "configmap", "ha-one"]);
    assert!(out.status.success(), "{}", text(&out));
    let kc2 = nodes[2].data.join("kubeconfig/admin.conf");
    let out = kubectl(&tb, ns(2), &kc2, &["get", "configmap", "ha-one"]);
    assert!(out.status.success(), "{}", text(&out));

    // The worker joins through the second master's join API; its load balancer learns all
    // three API servers.
    let (wdata, wcfg) = fx.worker_config("it-hw");
    let url1 = join_url(IPS[1]);
    let worker = Kubesup::start_isolated(
        ns(3),
        &wdata,
        &scratch.dir.join("w-root"),
        &[
            "worker",
            "--config",
            &wcfg.to_string_lossy(),
            "--join",
            &url1,
            "--token-file",
            &wt,
        ],
    );
    worker.wait_ready(Duration::from_secs(240));
    let kc0 = nodes[0].data.join("kubeconfig/admin.conf");
    let ready = wait_for(Duration::from_secs(120), || {
        node_ready(&tb, ns(0), &kc0, "it-hw").then_some(())
    });
    assert!(
        ready.is_some(),
        "the worker never went Ready\n{}",
        worker.log_tail(60)
    );
    let all_three = wait_for(Duration::from_secs(60), || {
        let st = worker.status()?;
        let b = st["api_lb"]["backends"].as_array()?.len();
        (b == 3).then_some(())
    });
    assert!(
        all_three.is_some(),
        "the worker's load balancer: {:?}",
        worker.status()
    );
    // The balancer's fast path is on, and kubelet's and kube-proxy's connections go straight
    // to the API servers: no process in between (`ss` shows the peer a socket really has).
    assert_eq!(
        worker.status().map(|s| s["api_lb"]["redirect"].clone()),
        Some(Value::Bool(true)),
        "the fast path is off\n{}",
        worker.log_tail(40)
    );
    let straight = wait_for(Duration::from_secs(60), || {
        let ss = ns(3).exec_ok(&["ss", "-Htnp", "state", "established"]);
        ["kubelet", "kube-proxy"]
            .iter()
            .all(|c| {
                ss.lines().any(|l| {
                    l.contains(&format!("((\"{c}\""))
                        && l.contains(":6443 ")
                        && !l.contains(":6444 ")
                })
            })
            .then_some(())
    });
    assert!(
        straight.is_some(),
        "kubelet and kube-proxy are not connected straight to an API server:\n{}",
        ns(3).exec_ok(&["ss", "-Htnp", "state", "established"])
    );

    // A pod on the worker.
    let images = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/build-images.py"))
        .output()
        .unwrap();
    assert!(images.status.success(), "{images:?}");
    let image_dir = PathBuf::from(String::from_utf8_lossy(&images.stdout).trim());
    for img in ["pause.tar", "busybox.tar"] {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(wdata.join("containerd/containerd.sock"))
            .args(["-n", "k8s.io", "images", "import"])
            .arg(image_dir.join(img))
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr import {img}: {out:?}");
    }
    let pod = scratch.dir.join("pod.yaml");
    std::fs::write(&pod, POD).unwrap();
    let out = kubectl(&tb, ns(0), &kc0, &["apply", "-f", &pod.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    let phase = |kc: &Path, i: usize| {
        let out = kubectl(
            &tb,
            ns(i),
            kc,
            &["get", "pod", "ha-sleep", "-o", "jsonpath={.status.phase}"],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let running = wait_for(Duration::from_secs(180), || {
        (phase(&kc0, 0) == "Running").then_some(())
    });
    assert!(running.is_some(), "the pod never ran: {}", phase(&kc0, 0));

    // A hung master: every process of the third one stopped (SIGSTOP), as a frozen machine
    // would be. Writes go on through the other two, and the worker's node stays Ready and
    // keeps renewing its lease through its load balancer.
    let hung: Vec<i32> = std::iter::once(m[2].as_ref().unwrap().pid())
        .chain(m[2].as_ref().unwrap().recorded_pids())
        .collect();
    let frozen = Frozen::stop(hung.clone());
    let t_hang = Instant::now();
    let written = wait_for(Duration::from_secs(60), || {
        kubectl(&tb, ns(0), &kc0, &["create", "configmap", "ha-hung"])
            .status
            .success()
            .then_some(())
    });
    assert!(written.is_some(), "no write with one master hung");
    eprintln!(
        "with a master hung, a write succeeded after {:?}",
        t_hang.elapsed()
    );
    assert_lease_renewed(
        &tb,
        ns(0),
        &kc0,
        "it-hw",
        "with a master hung",
        &worker.log_tail(40),
    );
    assert!(node_ready(&tb, ns(0), &kc0, "it-hw"));
    // SIGCONT: the master is back in service, nothing lost, and nothing restarted in a panic
    // (its kubesup is the same process).
    drop(frozen);
    let back = wait_for(Duration::from_secs(120), || {
        let out = kubectl(&tb, ns(2), &kc2, &["get", "configmap", "ha-hung"]);
        out.status.success().then_some(())
    });
    assert!(
        back.is_some(),
        "the thawed master never served the write made while it hung\n{}",
        m[2].as_ref().unwrap().log_tail(40)
    );
    m[2].as_ref().unwrap().wait_ready(Duration::from_secs(120));
    assert_eq!(m[2].as_ref().unwrap().pid(), hung[0]);
    assert_eq!(etcdctl_members(ns(2), &nodes[2].data, IPS[2]), ids_before);

    // Kill a whole master (the first, whose etcd member led the cluster at its start).
    let cm_holder = lease(
        &tb,
        ns(1),
        &kc1,
        "kube-system",
        "kube-controller-manager",
        "holderIdentity",
    );
    let first_pids = m[0].as_ref().unwrap().recorded_pids();
    m[0].as_ref().unwrap().signal(Signal::SIGKILL);
    let _ = m[0].as_mut().unwrap().wait_exit(Duration::from_secs(10));
    let gone = wait_for(Duration::from_secs(30), || {
        first_pids
            .iter()
            .all(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), None).is_err())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the killed master's components outlived it: {first_pids:?}"
    );
    let t_kill = Instant::now();
    // A new object through the remaining masters.
    let created = wait_for(Duration::from_secs(60), || {
        kubectl(&tb, ns(1), &kc1, &["create", "configmap", "ha-two"])
            .status
            .success()
            .then_some(())
    });
    assert!(created.is_some(), "no write through the remaining masters");
    eprintln!("a write succeeded {:?} after the kill", t_kill.elapsed());
    // The worker keeps renewing its lease, through its load balancer, and stays Ready.
    assert_lease_renewed(
        &tb,
        ns(1),
        &kc1,
        "it-hw",
        "after the kill",
        &worker.log_tail(40),
    );
    assert!(node_ready(&tb, ns(1), &kc1, "it-hw"));
    assert_eq!(phase(&kc1, 1), "Running");
    // Controller-manager leadership moves off the dead master (or stays, if it was elsewhere).
    let moved = wait_for(Duration::from_secs(90), || {
        let h = lease(
            &tb,
            ns(1),
            &kc1,
            "kube-system",
            "kube-controller-manager",
            "holderIdentity",
        );
        let renew = lease(
            &tb,
            ns(1),
            &kc1,
            "kube-system",
            "kube-controller-manager",
            "renewTime",
        );
        (!h.is_empty() && (h != cm_holder || !renew.is_empty())).then_some(h)
    });
    assert!(
        moved.is_some(),
        "no controller-manager leader after the kill"
    );

    // Started again on the same data dir (same command): the same member, none added.
    m[0] = Some(start(ns(0), &nodes[0], &nodes[0].master_args(None)));
    m[0].as_ref().unwrap().wait_ready(Duration::from_secs(240));
    let after: Vec<(String, String)> = etcdctl_members(ns(1), &nodes[1].data, IPS[1]);
    assert_eq!(
        after, ids_before,
        "the restarted master changed the membership"
    );

    // With one of three dead, a reset of a healthy master would leave one healthy of two
    // voters: refused, and nothing changed.
    m[1].as_ref().unwrap().signal(Signal::SIGKILL);
    let _ = m[1].as_mut().unwrap().wait_exit(Duration::from_secs(10));
    let out = kubesup_in(ns(2), &["reset", "--yes"], &nodes[2].data);
    assert!(!out.status.success(), "a reset without quorum went through");
    assert!(text(&out).contains("quorum"), "{}", text(&out));
    assert!(nodes[2].data.join("etcd/member").exists());
    m[2].as_ref().unwrap().assert_running();
    m[1] = Some(start(ns(1), &nodes[1], &nodes[1].master_args(None)));
    m[1].as_ref().unwrap().wait_ready(Duration::from_secs(240));

    // A member removed while its master is down is refused when it starts again, and no
    // second cluster appears.
    m[2].as_ref().unwrap().signal(Signal::SIGKILL);
    let _ = m[2].as_mut().unwrap().wait_exit(Duration::from_secs(10));
    m[2] = None;
    let out = kubesup_in(ns(0), &["etcd", "remove", "it-m2"], &nodes[0].data);
    assert!(out.status.success(), "etcd remove: {}", text(&out));
    let mut cmd = ns(2).command(&kubesup_bin());
    cmd.args(nodes[2].master_args(None));
    let out = run_bounded(cmd, Duration::from_secs(90));
    assert!(!out.status.success(), "a removed member started");
    assert!(
        text(&out).contains("was removed from the cluster"),
        "{}",
        text(&out)
    );
    assert_eq!(etcdctl_members(ns(0), &nodes[0].data, IPS[0]).len(), 2);

    // Reset it, and join again; the join is killed right after its member add, and the same
    // command run again completes it: three members, one cluster.
    let out = kubesup_in(ns(2), &["reset", "--yes"], &nodes[2].data);
    assert!(
        out.status.success(),
        "reset of the removed master: {}",
        text(&out)
    );
    let master_token = fx.token_file(1, "master", "master-token-2");
    let args = nodes[2].master_args(Some((&join_url(IPS[1]), &master_token)));
    let killed = start(ns(2), &nodes[2], &args);
    let added = wait_for(Duration::from_secs(180), || {
        killed
            .log_tail(usize::MAX)
            .contains("added etcd learner")
            .then_some(())
    });
    assert!(
        added.is_some(),
        "the join never added its member\n{}",
        killed.log_tail(40)
    );
    killed.signal(Signal::SIGKILL);
    drop(killed);
    m[2] = Some(start(ns(2), &nodes[2], &args));
    m[2].as_ref().unwrap().wait_ready(Duration::from_secs(300));
    let ok = wait_for(Duration::from_secs(60), || {
        (voters(ns(0), &nodes[0].data) == 3).then_some(())
    });
    assert!(ok.is_some(), "{:?}", members(ns(0), &nodes[0].data));
    assert_eq!(etcdctl_members(ns(0), &nodes[0].data, IPS[0]).len(), 3);
    let cluster_ids: std::collections::BTreeSet<String> = (0..3)
        .map(|i| {
            let st = kubesup_in(ns(i), &["etcd", "members", "--json"], &nodes[i].data);
            assert!(st.status.success());
            let pki = nodes[i].data.join("pki/etcd");
            let out = ns(i).exec(&[
                "env",
                "ETCDCTL_API=3",
                "etcdctl",
                &format!("--endpoints=https://{}:2379", IPS[i]),
                &format!("--cacert={}", pki.join("ca.crt").display()),
                &format!("--cert={}", pki.join("healthcheck-client.crt").display()),
                &format!("--key={}", pki.join("healthcheck-client.key").display()),
                "endpoint",
                "status",
                "-w",
                "json",
            ]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            v[0]["Status"]["header"]["cluster_id"].to_string()
        })
        .collect();
    assert_eq!(
        cluster_ids.len(),
        1,
        "more than one cluster: {cluster_ids:?}"
    );

    // A reset of a healthy master: two members remain, and the cluster works.
    let out = kubesup_in(ns(2), &["reset", "--yes"], &nodes[2].data);
    assert!(out.status.success(), "reset: {}", text(&out));
    m[2] = None;
    assert_eq!(etcdctl_members(ns(0), &nodes[0].data, IPS[0]).len(), 2);
    let out = kubectl(&tb, ns(0), &kc0, &["create", "configmap", "ha-three"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(node_ready(&tb, ns(0), &kc0, "it-hw"));

    drop(worker);
    drop(m);
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ha-sleep
spec:
  nodeName: it-hw
  containers:
  - name: sleep
    image: kubesup.local/busybox:1.35
    imagePullPolicy: Never
    command: [sleep, '3600']
";
