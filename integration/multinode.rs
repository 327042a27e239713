//! Multi-node clusters on one machine, on the real test bed: a master and two workers, each in
//! its own network namespace on a bridge in a namespace of the test's own, none with a default
//! route. Each worker also runs in its own mount namespace (kubelet's /var/log paths are fixed)
//! and with its own kubelet cgroup root.
//!
//! Test-bed stand-ins, said plainly: there is no flanneld in any reachable registry, so the
//! cluster runs `network: none` and the test adds routes between the nodes' pod CIDRs exactly
//! as flannel's host-gw backend would; and a route for the service CIDR, which a real node's
//! default route covers. Images come from integration/build-images.py (pause from the
//! Kubernetes source tree, busybox from Debian), imported with `ctr`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]
#![allow(
    unsafe_code,
    reason = "the worker that takes its join token from KUBESUP_TOKEN needs set_var (unsafe in \
              edition 2024)"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    CgroupRoots, Kubesup, Lan, Mirror, Netns, Scratch, Testbed, kubectl, kubesup_bin,
    master_config, node_ready, run_bounded, wait_for,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const MASTER_IP: &str = "10.78.0.1";
const WORKER_IPS: [&str; 2] = ["10.78.0.2", "10.78.0.3"];
const SERVICE_CIDR: &str = "10.3.0.0/24";

fn join_url() -> String {
    format!("https://{MASTER_IP}:9443")
}

fn worker_config(dir: &Path, name: &str, mirror: &str, cgroup_root: &str) -> (PathBuf, PathBuf) {
    let data = dir.join(name);
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "data-dir: {}\nnode-name: it-{name}\nmirror: {mirror}\n\
             fetch: {{etcd-version: {}}}\n\
             containerd: {{sandbox-image: kubesup.local/pause:3.2}}\n\
             kubelet: {{cgroup-root: {cgroup_root}}}\n",
            data.display(),
            common::ETCD_VERSION,
        ),
    )
    .unwrap();
    (data, cfg)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(String::from)
        .collect()
}

/// A join that must fail: non-zero exit, one error line containing `expect`, nothing written.
fn join_fails(ns: &Netns, scratch: &Path, tag: &str, token: &str, expect: &str) {
    let data = scratch.join(format!("bad-{tag}"));
    let mut cmd = ns.command(&kubesup_bin());
    cmd.args(["worker", "--node-name", "it-bad", "--join", &join_url()])
        .arg("--data-dir")
        .arg(&data)
        .env("KUBESUP_TOKEN", token);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let errors = error_lines(&out);
    assert!(
        !out.status.success(),
        "{tag}: the join succeeded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(errors.len(), 1, "{tag}: not one error line: {errors:?}");
    assert!(errors[0].contains(expect), "{tag}: {:?}", errors[0]);
    assert!(
        !errors[0].contains(&token[token.len() - 16..]),
        "{tag}: the error shows the secret"
    );
    assert!(!data.exists(), "{tag}: the failed join wrote {data:?}");
}

#[test]
fn workers_join_with_one_token_run_pods_across_nodes_and_survive_restarts() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("mn");
    let mut lan = Lan::new("mn");
    let m = lan.add_node("mnm", &format!("{MASTER_IP}/24"));
    let w: Vec<usize> = WORKER_IPS
        .iter()
        .enumerate()
        .map(|(i, ip)| lan.add_node(&format!("mnw{}", i + 1), &format!("{ip}/24")))
        .collect();
    let mirrors: Vec<Mirror> = lan.nodes.iter().map(|ns| Mirror::serve(ns, &tb)).collect();
    let roots: Vec<String> = (1..=2)
        .map(|i| format!("/kubesup-it-w{i}-{}", std::process::id()))
        .collect();
    let _cgroups = CgroupRoots(roots.clone());

    // The master: control plane only (no kubelet), network none.
    let (mdata, mcfg) = master_config(
        &scratch.dir,
        "m",
        MASTER_IP,
        &mirrors[m].url,
        "network: none\n",
    );
    let master = Kubesup::start(
        &lan.nodes[m],
        &mdata,
        &["master", "--config", &mcfg.to_string_lossy()],
    );
    master.wait_ready(Duration::from_secs(240));
    let kc = mdata.join("kubeconfig/admin.conf");
    let mns = &lan.nodes[m];
    let token_cmd = |args: &[&str]| {
        let out = mns
            .command(&kubesup_bin())
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&mdata)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let token = token_cmd(&["create", "--ttl", "1h"]);
    let short = token_cmd(&["create", "--ttl", "2s"]);
    let t0 = Instant::now();

    // Wrong secret, wrong CA pin, expired: each a one-line error, a non-zero exit, and no
    // data dir.
    let parsed = kubesup::join::token::Token::parse(&token).unwrap();
    let wrong_secret = format!("K10{}::{}.{}", parsed.ca_pin, parsed.id, "0".repeat(16));
    join_fails(
        &lan.nodes[w[0]],
        &scratch.dir,
        "wrong-secret",
        &wrong_secret,
        "invalid, expired or revoked join token",
    );
    let wrong_pin = format!(
        "K10{}::{}",
        "ab".repeat(32),
        token.split_once("::").unwrap().1
    );
    join_fails(
        &lan.nodes[w[0]],
        &scratch.dir,
        "wrong-pin",
        &wrong_pin,
        "does not match the token",
    );
    std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
    join_fails(
        &lan.nodes[w[0]],
        &scratch.dir,
        "expired",
        &short,
        "invalid, expired or revoked join token",
    );

    // Both workers join with the one token: w1 from a 0600 file, w2 from the environment.
    let token_file = scratch.dir.join("token");
    std::fs::write(&token_file, &token).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut workers = Vec::new();
    let mut wdata = Vec::new();
    for (i, &wi) in w.iter().enumerate() {
        let name = format!("w{}", i + 1);
        let (data, cfg) = worker_config(&scratch.dir, &name, &mirrors[wi].url, &roots[i]);
        let node_root = scratch.dir.join(format!("{name}-root"));
        let cfg = cfg.to_string_lossy().into_owned();
        let url = join_url();
        let token_path = token_file.to_string_lossy().into_owned();
        let mut args = vec!["worker", "--config", &cfg, "--join", &url];
        if i == 0 {
            args.extend(["--token-file", &token_path]);
        }
        // The second worker takes its token from the environment, as an operator's would.
        let ks = if i == 1 {
            // SAFETY: the suite runs one test at a time (--test-threads=1), and no other thread of
            // this test reads the environment while it changes; the child gets its copy at spawn.
            unsafe { std::env::set_var("KUBESUP_TOKEN", &token) };
            let ks = Kubesup::start_isolated(&lan.nodes[wi], &data, &node_root, &args);
            // SAFETY: as for set_var above.
            unsafe { std::env::remove_var("KUBESUP_TOKEN") };
            ks
        } else {
            Kubesup::start_isolated(&lan.nodes[wi], &data, &node_root, &args)
        };
        workers.push(ks);
        wdata.push(data);
    }
    for ks in &workers {
        ks.wait_ready(Duration::from_secs(240));
    }
    for (i, data) in wdata.iter().enumerate() {
        let name = format!("it-w{}", i + 1);
        let ready = wait_for(Duration::from_secs(120), || {
            node_ready(&tb, mns, &kc, &name).then_some(())
        });
        assert!(
            ready.is_some(),
            "{name} never went Ready\n{}",
            workers[i].log_tail(60)
        );
        // The node's private keys were made on it and never left it.
        let key = data.join("pki/kubelet/kubelet-client.key");
        let key = if key.exists() {
            key
        } else {
            std::fs::read_dir(data.join("pki"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".key"))
                .unwrap()
        };
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            !data.join("pki/ca.key").exists(),
            "a worker holds the CA key"
        );
        // The node is Ready through its own API load balancer: kubelet and kube-proxy name
        // it, kubesup listens on it (loopback only), and it kept the cluster's list.
        for conf in ["kubelet", "kube-proxy"] {
            let text =
                std::fs::read_to_string(data.join(format!("kubeconfig/{conf}.conf"))).unwrap();
            assert!(
                text.contains("server: https://127.0.0.1:6444\n"),
                "{name}'s {conf} kubeconfig does not name its load balancer:\n{text}"
            );
        }
        let ss = lan.nodes[w[i]]
            .command(Path::new("ss"))
            .arg("-Hltn")
            .output()
            .unwrap();
        let ss = String::from_utf8_lossy(&ss.stdout);
        assert!(
            ss.split_whitespace().any(|f| f == "127.0.0.1:6444"),
            "{name}: nothing listens on 127.0.0.1:6444:\n{ss}"
        );
        let cache = wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(data.join("apilb/backends.json")).ok()
        })
        .unwrap_or_default();
        assert!(
            cache.contains(&format!("{MASTER_IP}:6443")),
            "{name}'s load balancer cache: {cache:?}"
        );
        // The list follows the cluster: kube-proxy's credentials may read the Endpoints.
        let fed = wait_for(Duration::from_secs(30), || {
            let log = workers[i].log_tail(usize::MAX);
            log.lines()
                .any(|l| l.contains("the cluster's API servers") && l.contains(MASTER_IP))
                .then_some(())
        });
        assert!(
            fed.is_some(),
            "{name}'s load balancer never read the cluster's list\n{}",
            workers[i].log_tail(60)
        );
        // `kubesup status` shows the balancer and its healthy backend.
        let lb = wait_for(Duration::from_secs(30), || {
            let st = workers[i].status()?;
            let lb = st["api_lb"].clone();
            (lb["backends"] == serde_json::json!([format!("{MASTER_IP}:6443")])).then_some(lb)
        });
        assert!(
            lb.as_ref()
                .is_some_and(|lb| lb["listen"] == "127.0.0.1:6444"),
            "{name}'s status shows no healthy load balancer: {:?}",
            workers[i].status()
        );
    }
    eprintln!("both workers Ready {:?} after the join", t0.elapsed());

    // Images, imported into each worker's containerd (k8s.io namespace).
    let images = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/build-images.py"))
        .output()
        .unwrap();
    assert!(images.status.success(), "{images:?}");
    let image_dir = PathBuf::from(String::from_utf8_lossy(&images.stdout).trim());
    for data in &wdata {
        for img in ["pause.tar", "busybox.tar"] {
            let out = Command::new("ctr")
                .arg("-a")
                .arg(data.join("containerd/containerd.sock"))
                .args(["-n", "k8s.io", "images", "import"])
                .arg(image_dir.join(img))
                .output()
                .unwrap();
            assert!(out.status.success(), "ctr import {img}: {out:?}");
        }
    }

    // host-gw stand-in: routes between the nodes' pod CIDRs, and to the service CIDR.
    let cidr = |node: &str| {
        let out = kubectl(
            &tb,
            mns,
            &kc,
            &["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cidrs = [cidr("it-w1"), cidr("it-w2")];
    assert!(cidrs.iter().all(|c| !c.is_empty()), "podCIDRs: {cidrs:?}");
    for (i, &wi) in w.iter().enumerate() {
        let other = 1 - i;
        lan.nodes[wi].ip(&["route", "add", &cidrs[other], "via", WORKER_IPS[other]]);
        lan.nodes[wi].ip(&["route", "add", SERVICE_CIDR, "dev", "eth0"]);
    }

    // A 2-replica busybox Deployment, one pod per worker, and a ClusterIP Service.
    let manifest = scratch.dir.join("web.yaml");
    std::fs::write(&manifest, WEB).unwrap();
    let out = kubectl(&tb, mns, &kc, &["apply", "-f", &manifest.to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    let pods = wait_for(Duration::from_secs(180), || {
        let out = kubectl(
            &tb,
            mns,
            &kc,
            &["get", "pods", "-l", "app=web", "-o", "json"],
        );
        let v = json(&out);
        let items = v["items"].as_array()?.clone();
        let running: Vec<(String, String, String)> = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["status"]["podIP"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        (running.len() == 2 && running[0].1 != running[1].1).then_some(running)
    })
    .unwrap_or_else(|| {
        let out = kubectl(&tb, mns, &kc, &["describe", "pods", "-l", "app=web"]);
        panic!(
            "the Deployment never ran on both workers:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            workers[0].log_tail(40)
        )
    });
    eprintln!("pods: {pods:?}");

    // Pod to pod across nodes.
    let (a, b) = (&pods[0], &pods[1]);
    let mut last = String::new();
    let answer = wait_for(Duration::from_secs(60), || {
        let out = kubectl(
            &tb,
            mns,
            &kc,
            &[
                "exec",
                &a.0,
                "--",
                "sh",
                "-c",
                // Debian's static busybox wget crashes without glibc's NSS modules; nc does not
                // resolve anything.
                &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080", b.2),
            ],
        );
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        last = format!("{s} {}", String::from_utf8_lossy(&out.stderr));
        s.lines().any(|l| l.trim() == b.0).then_some(())
    });
    if answer.is_none() {
        let diag: Vec<String> = w
            .iter()
            .flat_map(|&wi| {
                let ns = &lan.nodes[wi];
                [
                    ns.exec_ok(&["ip", "route"]),
                    ns.exec_ok(&["ip", "-br", "addr"]),
                    ns.exec_ok(&["iptables", "-S", "FORWARD"]),
                    ns.exec_ok(&["iptables", "-t", "nat", "-S", "POSTROUTING"]),
                ]
            })
            .collect();
        panic!(
            "pod {} on {} cannot reach pod {} on {}: {last}\n{}",
            a.0,
            a.1,
            b.0,
            b.1,
            diag.join("\n")
        );
    }

    // The Service's ClusterIP answers from a worker, through kube-proxy's rules there.
    let out = kubectl(
        &tb,
        mns,
        &kc,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    );
    let cluster_ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let names: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
    let via_service = wait_for(Duration::from_secs(60), || {
        let out = lan.nodes[w[0]].exec(&[
            "curl",
            "-s",
            "--max-time",
            "3",
            &format!("http://{cluster_ip}/"),
        ]);
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        names.contains(&s.as_str()).then_some(s)
    });
    assert!(
        via_service.is_some(),
        "ClusterIP {cluster_ip} did not answer"
    );

    // kill -9 a worker's kubelet: restarted, node still Ready.
    let status = workers[0].status().unwrap();
    let kubelet = Kubesup::component(&status, "kubelet").unwrap().clone();
    let (old_pid, restarts) = (
        kubelet["pid"].as_i64().unwrap() as i32,
        kubelet["restarts"].as_u64().unwrap(),
    );
    kill(Pid::from_raw(old_pid), Signal::SIGKILL).unwrap();
    let back = wait_for(Duration::from_secs(120), || {
        let s = workers[0].status()?;
        let k = Kubesup::component(&s, "kubelet")?;
        (k["ready"] == true && k["restarts"].as_u64()? > restarts && k["pid"] != old_pid)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "kubelet not restarted\n{}",
        workers[0].log_tail(40)
    );
    assert!(
        wait_for(Duration::from_secs(60), || node_ready(
            &tb, mns, &kc, "it-w1"
        )
        .then_some(()))
        .is_some(),
        "it-w1 not Ready after its kubelet was killed"
    );

    // Restarting a worker's kubesup rejoins without a token.
    let w1 = &mut workers[0];
    w1.signal(Signal::SIGTERM);
    let exit = w1
        .wait_exit(Duration::from_secs(120))
        .expect("worker stops");
    assert!(exit.success(), "{}", w1.log_tail(30));
    let (_, cfg) = worker_config(&scratch.dir, "w1", &mirrors[w[0]].url, &roots[0]);
    let again = Kubesup::start_isolated(
        &lan.nodes[w[0]],
        &wdata[0],
        &scratch.dir.join("w1-root"),
        &["worker", "--config", &cfg.to_string_lossy()],
    );
    again.wait_ready(Duration::from_secs(180));
    assert!(
        wait_for(Duration::from_secs(120), || node_ready(
            &tb, mns, &kc, "it-w1"
        )
        .then_some(()))
        .is_some(),
        "it-w1 not Ready after kubesup restarted\n{}",
        again.log_tail(40)
    );
    workers[0] = again;

    // `kubesup reset` on a worker whose pod is running: kubesup stops, the pod's processes and
    // shims go, and so do the kubelet cgroup root and the data dir.
    let w2 = wdata[1].clone();
    let tasks = w2.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
    let pod_pids: Vec<i32> = std::fs::read_dir(&tasks)
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("init.pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert!(!pod_pids.is_empty(), "no running container on it-w2");
    let mut cmd = lan.nodes[w[1]].command(&kubesup_bin());
    cmd.args(["reset", "--yes", "--data-dir"]).arg(&w2);
    let out = run_bounded(cmd, Duration::from_secs(240));
    assert!(out.status.success(), "reset: {out:?}");
    assert!(
        workers[1].wait_exit(Duration::from_secs(120)).is_some(),
        "the worker's kubesup did not stop"
    );
    let gone = wait_for(Duration::from_secs(20), || {
        pod_pids.iter().all(|p| !common::alive(*p)).then_some(())
    });
    assert!(gone.is_some(), "pod processes survived reset: {pod_pids:?}");
    assert!(!w2.exists(), "the data dir survived reset");
    let leftover: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(roots[1].trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect();
    assert!(
        leftover.is_empty(),
        "cgroups left after reset: {leftover:?}"
    );
    drop(workers);
    drop(master);
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
      terminationGracePeriodSeconds: 1
      enableServiceLinks: false
      automountServiceAccountToken: false
      containers:
      - name: web
        image: kubesup.local/busybox:1.35
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

/// Test-bed stand-in for flanneld, which is in no reachable registry: it proves the etcd
/// credentials a joined worker was given by reading flannel's network config from the master's
/// etcd with them, records what it read next to its subnet file, then idles like a daemon.
const FLANNELD_STAND_IN: &str = r#"#!/bin/sh
for a in "$@"; do
  case "$a" in
    --etcd-endpoints=*) ep=${a#*=} ;;
    --etcd-cafile=*) ca=${a#*=} ;;
    --etcd-certfile=*) cert=${a#*=} ;;
    --etcd-keyfile=*) key=${a#*=} ;;
    --subnet-file=*) subnet=${a#*=} ;;
  esac
done
mkdir -p "$(dirname "$subnet")"
ETCDCTL_API=3 /usr/bin/etcdctl --endpoints="$ep" --cacert="$ca" --cert="$cert" --key="$key" \
  --command-timeout=5s get --print-value-only /coreos.com/network/config > "$subnet.etcd-check.tmp" \
  && mv "$subnet.etcd-check.tmp" "$subnet.etcd-check"
exec sleep 100000
"#;

#[test]
fn a_flannel_worker_gets_etcd_credentials_for_flanneld_stand_in_for_flanneld() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("mnf");
    // A mirror with the test bed's releases, plus the stand-in published as flanneld v0.13.0
    // (the flannel release kubesup pairs with v1.20), pinned by checksum as flanneld needs.
    let mirror_dir = scratch.dir.join("mirror");
    let flannel_dir = mirror_dir.join("flannel-io/flannel/releases/download/v0.13.0");
    std::fs::create_dir_all(&flannel_dir).unwrap();
    for top in ["release", "etcd-io", "flannel-io/cni-plugin"] {
        std::os::unix::fs::symlink(tb.mirror.join(top), mirror_dir.join(top)).unwrap();
    }
    let stand_in = flannel_dir.join("flanneld-amd64");
    std::fs::write(&stand_in, FLANNELD_STAND_IN).unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(FLANNELD_STAND_IN.as_bytes()))
    };
    let tb_local = Testbed {
        root: tb.root.clone(),
        k8s_bin: tb.k8s_bin.clone(),
        mirror: mirror_dir.clone(),
    };

    let mut lan = Lan::new("mnf");
    let m = lan.add_node("mnfm", "10.80.0.1/24");
    let w = lan.add_node("mnfw", "10.80.0.2/24");
    let mirrors: Vec<Mirror> = lan
        .nodes
        .iter()
        .map(|ns| Mirror::serve(ns, &tb_local))
        .collect();
    let root = format!("/kubesup-it-fw-{}", std::process::id());
    let _cgroups = CgroupRoots(vec![root.clone()]);

    // network: flannel (the default): the master writes flannel's config into etcd. Leaves
    // live two minutes (the shortest allowed), so the worker renews its certificates in the
    // background during the test, through a join API whose own certificate the master renews.
    let (mdata, mcfg) = master_config(
        &scratch.dir,
        "fm",
        "10.80.0.1",
        &mirrors[m].url,
        "pki: {leaf-validity: 2m}\n",
    );
    let master = Kubesup::start(
        &lan.nodes[m],
        &mdata,
        &["master", "--config", &mcfg.to_string_lossy()],
    );
    master.wait_ready(Duration::from_secs(240));
    let token = lan.nodes[m]
        .command(&kubesup_bin())
        .args(["token", "create", "--data-dir"])
        .arg(&mdata)
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();

    let (wdata, wcfg) = worker_config(&scratch.dir, "fw", &mirrors[w].url, &root);
    let mut text = std::fs::read_to_string(&wcfg).unwrap();
    text = text.replace(
        &format!("fetch: {{etcd-version: {}}}", common::ETCD_VERSION),
        &format!(
            "fetch: {{etcd-version: {}, checksums: {{flanneld: {sha}}}}}",
            common::ETCD_VERSION
        ),
    );
    std::fs::write(&wcfg, text).unwrap();
    let worker = Kubesup::start_isolated(
        &lan.nodes[w],
        &wdata,
        &scratch.dir.join("fw-root"),
        &[
            "worker",
            "--config",
            &wcfg.to_string_lossy(),
            "--join",
            "https://10.80.0.1:9443",
            "--token",
            &token,
        ],
    );
    let status = worker.wait_ready(Duration::from_secs(240));
    assert!(
        Kubesup::component(&status, "flanneld").is_some(),
        "flanneld is not supervised: {status}"
    );
    // The stand-in read the network config from the master's etcd with the worker's own
    // flannel client certificate, signed by the etcd CA at join time.
    let seen = wdata.join("components/flanneld/subnet.env.etcd-check");
    let config = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&seen).ok()
    })
    .unwrap_or_else(|| panic!("the stand-in could not read etcd\n{}", worker.log_tail(40)));
    assert!(config.contains("\"Network\""), "{config}");
    assert!(config.contains("10.2.0.0/16"), "{config}");
    assert!(wdata.join("pki/etcd/ca.crt").exists());
    assert!(
        !wdata.join("pki/etcd/ca.key").exists(),
        "a worker holds the etcd CA key"
    );

    // Background renewal, two thirds into the certificates' life: new certificates for new
    // keys, and kubelet restarted to use them; the node stays Ready.
    let client_cert = wdata.join("pki/kubelet-client.crt");
    let first = std::fs::read_to_string(&client_cert).unwrap();
    let kubelet_pid = Kubesup::component(&status, "kubelet").unwrap()["pid"].clone();
    let renewed = wait_for(Duration::from_secs(180), || {
        worker.assert_running();
        std::fs::read_to_string(&client_cert)
            .ok()
            .filter(|c| *c != first)
    })
    .unwrap_or_else(|| {
        panic!(
            "the worker did not renew its certificates\n{}",
            worker.log_tail(40)
        )
    });
    assert!(renewed.contains("BEGIN CERTIFICATE"));
    let after = worker.wait_ready(Duration::from_secs(120));
    assert_ne!(
        Kubesup::component(&after, "kubelet").unwrap()["pid"],
        kubelet_pid,
        "kubelet was not restarted with its renewed certificate"
    );
    // The restarted kubelet talks to the API server with its new certificate: it renews its
    // node lease (every 10 s).
    let kc = mdata.join("kubeconfig/admin.conf");
    let lease = || {
        let out = kubectl(
            &tb,
            &lan.nodes[m],
            &kc,
            &[
                "get",
                "lease",
                "-n",
                "kube-node-lease",
                "it-fw",
                "-o",
                "jsonpath={.spec.renewTime}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let seen = lease();
    let renewed_lease = wait_for(Duration::from_secs(120), || {
        let now = lease();
        (!now.is_empty() && now != seen).then_some(now)
    });
    assert!(
        renewed_lease.is_some(),
        "the kubelet did not renew its node lease after its certificate renewal\n{}",
        worker.log_tail(40)
    );
    drop(worker);
    drop(master);
}
