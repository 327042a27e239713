//! `kubesup master` on the real test bed (etcd 3.4 from Debian, Kubernetes v1.20.2 built from
//! Debian's source package, served by the local mirror): the control plane answers, the checks
//! of the seed guides pass, and every component comes back on its own after `kill -9`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

fn admin(data: &Path) -> PathBuf {
    data.join("kubeconfig/admin.conf")
}

/// Kills the running `name` with SIGKILL; returns how long until a new instance, counted as
/// one more restart, was ready.
fn kill_and_time_restart(ks: &Kubesup, name: &str) -> Duration {
    let s = ks.status().expect("status");
    let c = Kubesup::component(&s, name).expect("component row");
    let pid = c["pid"].as_i64().expect("pid");
    let restarts = c["restarts"].as_u64().unwrap_or(0);
    let killed = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
    poll_every(Duration::from_millis(20), Duration::from_secs(120), || {
        let s = ks.status()?;
        let c = Kubesup::component(&s, name)?;
        (c["ready"] == true
            && c["pid"].as_i64() != Some(pid)
            && c["restarts"].as_u64() == Some(restarts + 1))
        .then(|| killed.elapsed())
    })
    .unwrap_or_else(|| panic!("{name} did not come back\n{}", ks.log_tail(60)))
}

/// Spawn-to-ready time of each component, watched from the status socket.
fn watch_cold_start(ks: &Kubesup, timeout: Duration) -> BTreeMap<String, Duration> {
    let mut spawned: BTreeMap<String, (i64, Instant)> = BTreeMap::new();
    let mut ready: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    while ready.len() < COMPONENTS.len() && Instant::now() < deadline {
        ks.assert_running();
        if let Some(s) = ks.status() {
            for c in s["components"].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                if let Some(pid) = c["pid"].as_i64() {
                    if spawned.get(&name).is_none_or(|(p, _)| *p != pid) {
                        spawned.insert(name.clone(), (pid, Instant::now()));
                    }
                    if c["ready"] == true && !ready.contains_key(&name) {
                        ready.insert(name.clone(), spawned[&name].1.elapsed());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ready.len(),
        COMPONENTS.len(),
        "not all ready: {ready:?}\n{}",
        ks.log_tail(80)
    );
    ready
}

#[test]
fn master_brings_up_a_working_control_plane_and_keeps_it_up() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("cp");
    let ns = Netns::new("cp");
    let mirror = Mirror::serve(&ns, &tb);
    let (data, cfg) = master_config(
        &scratch.dir,
        "master",
        "127.0.0.1",
        &mirror.url,
        // host-gw rather than the default: the config in etcd must follow the setting.
        "network: flannel\nflannel: {backend: host-gw}\n",
    );
    let cfg_arg = cfg.to_string_lossy().into_owned();

    let t0 = Instant::now();
    let mut ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg_arg]);
    let first = watch_cold_start(&ks, Duration::from_secs(240));
    eprintln!(
        "fresh control plane ready in {:?}; spawn-to-ready: {first:?}",
        t0.elapsed()
    );
    ks.wait_ready(Duration::from_secs(30));
    let kc = admin(&data);

    // The checks the seed guides end with.
    let readyz = kubectl(&tb, &ns, &kc, &["get", "--raw", "/readyz"]);
    assert_eq!(
        String::from_utf8_lossy(&readyz.stdout).trim(),
        "ok",
        "{readyz:?}"
    );
    let version = kubectl(&tb, &ns, &kc, &["get", "--raw", "/version"]);
    let version: Value = serde_json::from_slice(&version.stdout).expect("version json");
    assert_eq!(version["gitVersion"], KUBE_VERSION);
    let namespaces = kubectl(&tb, &ns, &kc, &["get", "namespaces", "-o", "name"]);
    assert!(String::from_utf8_lossy(&namespaces.stdout).contains("namespace/kube-system"));
    let cs = wait_for(Duration::from_secs(60), || {
        let out = kubectl(&tb, &ns, &kc, &["get", "componentstatuses", "--no-headers"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows: Vec<&str> = text.lines().collect();
        (rows.len() >= 3
            && rows
                .iter()
                .all(|r| r.contains("Healthy") && !r.contains("Unhealthy")))
        .then_some(text)
    });
    assert!(
        cs.is_some(),
        "componentstatuses not all Healthy: {:?}",
        String::from_utf8_lossy(&kubectl(&tb, &ns, &kc, &["get", "componentstatuses"]).stdout)
    );

    // A CRD and a custom resource with nested maps, in metadata and spec. The test bed's
    // kube-apiserver built with reflect2 1.0.1 on Go >= 1.18 died with SIGSEGV encoding such
    // maps (json-iterator -> reflect2 UnsafeMapType.UnsafeIterate); setup-testbed.sh builds
    // with 1.0.2. The API server must answer and must not have restarted.
    let crd = data.join("widgets-crd.yaml");
    std::fs::write(
        &crd,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata: {name: widgets.test.kubesup.io}\n\
         spec:\n  group: test.kubesup.io\n  scope: Namespaced\n\
         \x20 names: {plural: widgets, singular: widget, kind: Widget}\n\
         \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n\
         \x20   schema:\n      openAPIV3Schema:\n        type: object\n\
         \x20       x-kubernetes-preserve-unknown-fields: true\n",
    )
    .expect("write the CRD");
    let out = kubectl(&tb, &ns, &kc, &["apply", "-f", &crd.to_string_lossy()]);
    assert!(out.status.success(), "CRD apply: {out:?}");
    let cr = data.join("widget.yaml");
    std::fs::write(
        &cr,
        "apiVersion: test.kubesup.io/v1\nkind: Widget\n\
         metadata:\n  name: w1\n  namespace: default\n\
         \x20 labels: {tier: one, app: kubesup}\n  annotations: {note: nested}\n\
         spec:\n  settings:\n    inner: {a: \"1\", b: {c: deep}}\n    list: [{k: v}]\n",
    )
    .expect("write the custom resource");
    // The CRD takes a moment to be established.
    let created = wait_for(Duration::from_secs(60), || {
        let out = kubectl(&tb, &ns, &kc, &["apply", "-f", &cr.to_string_lossy()]);
        out.status.success().then_some(())
    });
    assert!(created.is_some(), "the custom resource was never created");
    let got = kubectl(
        &tb,
        &ns,
        &kc,
        &[
            "-n",
            "default",
            "get",
            "widgets.test.kubesup.io",
            "w1",
            "-o",
            "json",
        ],
    );
    let got: Value = serde_json::from_slice(&got.stdout).expect("custom resource json");
    assert_eq!(got["spec"]["settings"]["inner"]["b"]["c"], "deep");
    assert_eq!(got["metadata"]["labels"]["tier"], "one");
    let s = ks.status().expect("status");
    let apiserver = Kubesup::component(&s, "kube-apiserver").expect("kube-apiserver in status");
    assert_eq!(
        apiserver["restarts"],
        0,
        "kube-apiserver restarted while serving custom resources: {}",
        ks.log_tail(40)
    );

    // flannel's network config, read with etcdctl and the generated client certificate: the v3
    // key always, and the v2 key too since v1.20.2 pairs with flannel v0.13.0, which reads
    // etcd's v2 API (etcd started with --enable-v2).
    let pki = data.join("pki");
    let etcdctl_bin = data.join(format!("bin/{KUBE_VERSION}/etcdctl"));
    let etcdctl = |args: &[&str]| {
        let mut argv: Vec<String> = vec![
            etcdctl_bin.to_string_lossy().into_owned(),
            "--endpoints=https://127.0.0.1:2379".into(),
            format!("--cacert={}", pki.join("etcd/ca.crt").display()),
            format!(
                "--cert={}",
                pki.join("etcd/healthcheck-client.crt").display()
            ),
            format!(
                "--key={}",
                pki.join("etcd/healthcheck-client.key").display()
            ),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        ns.exec(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let flannel = wait_for(Duration::from_secs(30), || {
        let out = etcdctl(&["get", "/coreos.com/network/config", "--print-value-only"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v)
    })
    .expect("flannel network config in etcd");
    assert_eq!(flannel["Network"], "10.2.0.0/16");
    assert_eq!(flannel["Backend"]["Type"], "host-gw");
    let v2 = ns.exec(&[
        "env",
        "ETCDCTL_API=2",
        &etcdctl_bin.to_string_lossy(),
        "--endpoints=https://127.0.0.1:2379",
        &format!("--ca-file={}", pki.join("etcd/ca.crt").display()),
        &format!(
            "--cert-file={}",
            pki.join("etcd/healthcheck-client.crt").display()
        ),
        &format!(
            "--key-file={}",
            pki.join("etcd/healthcheck-client.key").display()
        ),
        "get",
        "/coreos.com/network/config",
    ]);
    let v2: Value = serde_json::from_slice(&v2.stdout)
        .unwrap_or_else(|e| panic!("the v2 key is not JSON ({e}): {}", output_text(&v2)));
    assert_eq!(v2, flannel, "the v2 and v3 keys hold the same config");

    // The DNS add-on, with the Service on --cluster-dns.
    let ip = wait_for(Duration::from_secs(60), || {
        let out = kubectl(
            &tb,
            &ns,
            &kc,
            &[
                "-n",
                "kube-system",
                "get",
                "service",
                "kube-dns",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(ip.as_deref(), Some("10.3.0.10"));
    let dep = kubectl(
        &tb,
        &ns,
        &kc,
        &[
            "-n",
            "kube-system",
            "get",
            "deployment",
            "coredns",
            "-o",
            "name",
        ],
    );
    assert!(dep.status.success(), "coredns deployment: {dep:?}");

    // `kubesup status` says every component is ready (exit 0).
    let status = std::process::Command::new(kubesup_bin())
        .args(["status", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Join tokens live in etcd: the token pins the CA's public key, the list never shows a
    // secret, a TTL is enforced by an etcd lease, and delete removes it.
    let token_cmd = |args: &[&str]| {
        ns.command(&kubesup_bin())
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = token_cmd(&["create", "--ttl", "1h", "--description", "e2e"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parsed = kubesup::join::token::Token::parse(&token).expect("a well-formed token");
    let ca = std::fs::read_to_string(data.join("pki/ca.crt")).unwrap();
    assert_eq!(parsed.ca_pin, kubesup::join::token::ca_pin(&ca).unwrap());
    let short = token_cmd(&["create", "--ttl", "2s"]);
    let short =
        kubesup::join::token::Token::parse(String::from_utf8_lossy(&short.stdout).trim()).unwrap();
    let list = String::from_utf8_lossy(&token_cmd(&["list"]).stdout).into_owned();
    assert!(
        list.contains(&parsed.id) && list.contains("e2e") && list.contains(&short.id),
        "{list}"
    );
    assert!(
        !list.contains(&token[token.len() - 16..]),
        "token list shows a secret"
    );
    let expired = wait_for(Duration::from_secs(15), || {
        let list = String::from_utf8_lossy(&token_cmd(&["list"]).stdout).into_owned();
        (!list.contains(&short.id)).then_some(())
    });
    assert!(expired.is_some(), "the 2 s token outlived its lease");
    assert!(token_cmd(&["delete", &parsed.id]).status.success());
    let again = token_cmd(&["delete", &parsed.id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no join token with id"));

    // Data that must survive restarts.
    let created = kubectl(
        &tb,
        &ns,
        &kc,
        &["create", "namespace", "kept-across-restarts"],
    );
    assert!(created.status.success(), "{created:?}");

    // kill -9 kubesup itself: no component survives; a new kubesup brings the same cluster
    // back with its data.
    let pids = ks.recorded_pids();
    assert_eq!(pids.len(), COMPONENTS.len(), "{pids:?}");
    ks.signal(Signal::SIGKILL);
    ks.wait_exit(Duration::from_secs(10)).expect("kubesup died");
    let gone = wait_for(Duration::from_secs(10), || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
    assert!(
        gone.is_some(),
        "components survived kill -9 of kubesup: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    drop(ks);
    let mut ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg_arg]);
    // The cold start that matters for a restart is the one with existing data: a restarted
    // etcd must win an election, which a brand-new single-member cluster skips.
    let cold = watch_cold_start(&ks, Duration::from_secs(240));
    eprintln!("restart on existing data: spawn-to-ready {cold:?}");
    ks.wait_ready(Duration::from_secs(60));
    let kept = wait_for(Duration::from_secs(60), || {
        let out = kubectl(
            &tb,
            &ns,
            &kc,
            &["get", "namespace", "kept-across-restarts", "-o", "name"],
        );
        out.status.success().then_some(())
    });
    assert!(
        kept.is_some(),
        "the namespace created before the restart is gone"
    );

    // kill -9 each component: back and ready within its own cold start plus one second. One
    // kill against one cold start compares two single samples on a shared machine (three
    // clusters run at once in CI), so a miss is measured again, up to three kills in all: a
    // supervisor that waits before restarting (k0s: a fixed 5 s) misses every time.
    for name in COMPONENTS {
        let limit = cold[name] + Duration::from_millis(1000) + Duration::from_millis(200);
        let mut tries = Vec::new();
        for attempt in 1..=3 {
            let back = kill_and_time_restart(&ks, name);
            eprintln!(
                "{name}: killed, ready again in {back:?} (cold start {:?}, kill {attempt})",
                cold[name]
            );
            tries.push(back);
            ks.wait_ready(Duration::from_secs(120));
            if back <= limit {
                break;
            }
            // The next kill must again be the first crash of a stable run, which restarts at
            // once; a second crash within 10 s of the start would back off by design.
            wait_for(Duration::from_secs(60), || {
                let s = ks.status()?;
                let c = Kubesup::component(&s, name)?;
                (c["uptime_secs"].as_u64()? > 11).then_some(())
            })
            .unwrap_or_else(|| panic!("{name} did not stay up for 11 s\n{}", ks.log_tail(60)));
        }
        assert!(
            tries.iter().any(|t| *t <= limit),
            "{name} took {tries:?} to come back in 3 kills; cold start was {:?}",
            cold[name]
        );
    }

    // `kubesup etcd`: the one member is a healthy voter and the leader, as etcdctl lists it,
    // and removing it (the local member, the last voter) is refused.
    let etcd_cmd = |args: &[&str]| {
        let out = ns
            .command(&kubesup_bin())
            .arg("etcd")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = etcd_cmd(&["members", "--json"]);
    assert!(ok.success(), "{stderr}");
    let rows: Vec<Value> = serde_json::from_str(&stdout).expect("etcd members json");
    assert_eq!(rows.len(), 1, "{stdout}");
    let me = &rows[0];
    assert!(
        me["learner"] == false && me["leader"] == true && me["healthy"] == true,
        "{stdout}"
    );
    let listed = etcdctl(&["member", "list", "-w", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("etcdctl member list json");
    let theirs = &listed["members"][0];
    assert_eq!(
        listed["members"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(
        theirs["ID"].as_u64(),
        u64::from_str_radix(me["id"].as_str().unwrap(), 16).ok()
    );
    assert_eq!(theirs["name"], me["name"]);
    assert_eq!(theirs["peerURLs"], me["peer_urls"]);
    assert_eq!(theirs["clientURLs"], me["client_urls"]);
    let name = me["name"].as_str().unwrap();
    let (ok, _, stderr) = etcd_cmd(&["remove", name, "--force"]);
    assert!(
        !ok.success() && stderr.contains("kubesup reset"),
        "{stderr}"
    );

    // SIGTERM: everything stops, in order, and nothing is left.
    let pids = ks.recorded_pids();
    ks.signal(Signal::SIGTERM);
    let exit = ks
        .wait_exit(Duration::from_secs(120))
        .expect("kubesup exits on SIGTERM");
    assert!(
        exit.success(),
        "kubesup exit status {exit:?}\n{}",
        ks.log_tail(40)
    );
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes left after SIGTERM"
    );
    let log = std::fs::read_to_string(&ks.log).unwrap_or_default();
    let stop_order: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" stopped ") || l.contains("stopped component="))
        .filter_map(|l| {
            COMPONENTS
                .iter()
                .find(|c| l.contains(&format!("component={c} ")))
                .copied()
        })
        .collect();
    let expected: Vec<&str> = vec![
        "kube-scheduler",
        "kube-controller-manager",
        "kube-apiserver",
        "etcd",
    ];
    let tail: Vec<&str> = stop_order.iter().rev().take(4).rev().copied().collect();
    let mut sorted_tail = tail.clone();
    sorted_tail.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(sorted_tail, sorted_expected, "stop lines: {stop_order:?}");
    assert_eq!(
        tail.last(),
        Some(&"etcd"),
        "etcd must stop last: {stop_order:?}"
    );
    assert_eq!(
        tail[2], "kube-apiserver",
        "apiserver stops after its clients: {stop_order:?}"
    );
}

fn host_kube_chains() -> usize {
    ["filter", "nat"]
        .iter()
        .map(|t| {
            let out = std::process::Command::new("iptables")
                .args(["-t", t, "-S"])
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).matches("KUBE-").count())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn schedulable_master_in_a_network_namespace_goes_ready() {
    let Some(tb) = Testbed::get() else { return };
    let host_chains = host_kube_chains();
    let scratch = Scratch::new("sched");
    let ns = Netns::new("sched").with_address("10.77.0.2/24");
    let mirror = Mirror::serve(&ns, &tb);
    let cgroup_root = format!("/kubesup-it-sched-{}", std::process::id());
    let _cgroups = CgroupRoots(vec![cgroup_root.clone()]);
    let (data, cfg) = master_config(
        &scratch.dir,
        "sched",
        "10.77.0.2",
        &mirror.url,
        &format!("network: none\nschedulable: true\nkubelet: {{cgroup-root: {cgroup_root}}}\n"),
    );
    let t0 = Instant::now();
    let mut ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    ks.wait_ready(Duration::from_secs(240));
    let names: Vec<String> = ks.status().unwrap()["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for c in ["containerd", "kubelet", "kube-proxy"] {
        assert!(
            names.iter().any(|n| n == c),
            "{c} is not supervised: {names:?}"
        );
    }
    let kc = admin(&data);
    let ready = wait_for(Duration::from_secs(180), || {
        let out = kubectl(
            &tb,
            &ns,
            &kc,
            &[
                "get",
                "node",
                "it-sched",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        (String::from_utf8_lossy(&out.stdout).trim() == "True").then(|| t0.elapsed())
    });
    assert!(
        ready.is_some(),
        "node never went Ready\n{}",
        ks.log_tail(60)
    );
    eprintln!("node Ready {:?} after kubesup started", ready.unwrap());
    // Its kubelet and kube-proxy go through the node-local API load balancer, which knows
    // this master's API server from the cluster's own list.
    for kubeconfig in ["kubelet.conf", "kube-proxy.conf"] {
        let text = std::fs::read_to_string(data.join("kubeconfig").join(kubeconfig)).unwrap();
        assert!(
            text.contains("server: https://127.0.0.1:6444"),
            "{kubeconfig}: {text}"
        );
    }
    let fed = wait_for(Duration::from_secs(60), || {
        let st = ks.status()?;
        let backends = st["api_lb"]["backends"].as_array()?.clone();
        (backends.len() == 1 && backends[0].as_str()? == "10.77.0.2:6443").then_some(())
    });
    assert!(fed.is_some(), "the master's balancer: {:?}", ks.status());
    // kube-proxy's chains live in the test namespace only.
    let in_ns = ns.exec_ok(&["iptables", "-t", "nat", "-S"]);
    assert!(
        in_ns.contains("KUBE-SERVICES"),
        "no kube-proxy chains in the namespace"
    );
    assert_eq!(
        host_kube_chains(),
        host_chains,
        "the host's iptables were touched"
    );

    // `kubesup reset` on the running node: it stops kubesup through the control socket, and
    // leaves no process, mount, kube-proxy chain or file behind.
    let pids = ks.recorded_pids();
    let reset = ns
        .command(&kubesup_bin())
        .args(["reset", "--yes", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        reset.status.success(),
        "reset failed: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let exit = ks
        .wait_exit(Duration::from_secs(120))
        .expect("kubesup stopped by reset");
    assert!(exit.success(), "{}", ks.log_tail(40));
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes left after reset"
    );
    assert!(!data.exists(), "the data dir survived reset");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&data.display().to_string()),
        "mounts left after reset"
    );
    let chains = ns.exec_ok(&["iptables", "-t", "nat", "-S"]);
    assert!(
        !chains.contains("KUBE-"),
        "kube-proxy chains left after reset:\n{chains}"
    );
    let links = ns.exec_ok(&["ip", "-o", "link"]);
    assert!(
        !links.contains("kubesup0") && !links.contains("flannel.1"),
        "{links}"
    );
    let again = ns
        .command(&kubesup_bin())
        .args(["reset", "--yes", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(again.status.success(), "a second reset must be harmless");
    assert_eq!(
        host_kube_chains(),
        host_chains,
        "the host's iptables were touched"
    );

    // And a new master starts clean on the same data dir.
    drop(ks);
    let ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    ks.wait_ready(Duration::from_secs(240));
}

fn not_before(pem_path: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-startdate", "-in"])
        .arg(pem_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_running_master_renews_its_certificates_and_restarts_only_their_users() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("renew");
    let ns = Netns::new("renew");
    let mirror = Mirror::serve(&ns, &tb);
    // Leaves live 2 minutes (the shortest allowed), so renewal, at about two thirds of that,
    // comes after about 80 s.
    let (data, cfg) = master_config(
        &scratch.dir,
        "renew",
        "127.0.0.1",
        &mirror.url,
        "network: none\npki: {leaf-validity: 2m}\n",
    );
    let ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    ks.wait_ready(Duration::from_secs(240));
    let apiserver_cert = data.join("pki/apiserver.crt");
    let before = not_before(&apiserver_cert);
    let renewed = wait_for(Duration::from_secs(150), || {
        (not_before(&apiserver_cert) != before).then_some(())
    });
    assert!(
        renewed.is_some(),
        "the apiserver certificate was not renewed\n{}",
        ks.log_tail(40)
    );
    let restarted = wait_for(Duration::from_secs(60), || {
        let s = ks.status()?;
        let c = Kubesup::component(&s, "kube-apiserver")?;
        (c["restarts"].as_u64()? >= 1 && c["ready"] == true).then_some(())
    });
    assert!(
        restarted.is_some(),
        "the apiserver was not restarted onto its new certificate\n{}",
        ks.log_tail(40)
    );
    let log = std::fs::read_to_string(&ks.log).unwrap_or_default();
    assert!(log.contains("renewed certificates"));
    // Renewal is a restart per lifetime, never a storm.
    let s = ks.status().unwrap();
    for c in s["components"].as_array().unwrap() {
        assert!(
            c["restarts"].as_u64().unwrap_or(0) <= 4,
            "restart storm: {c}"
        );
    }
    ks.wait_ready(Duration::from_secs(120));
    let kc = admin(&data);
    let readyz = kubectl(&tb, &ns, &kc, &["get", "--raw", "/readyz"]);
    assert_eq!(
        String::from_utf8_lossy(&readyz.stdout).trim(),
        "ok",
        "{readyz:?}"
    );
}
