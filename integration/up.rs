//! `integration/up.sh`, the README's first command, on the real test bed: it must bring up a
//! cluster that runs pods (a schedulable master and a worker that joined it, each in its own
//! network namespace), and every check the seed guides end with must pass on it:
//! - `curl` etcd's `/version` with the healthcheck client certificate, and `etcdctl endpoint
//!   health` (the v3 form of the guides' `etcdctl cluster-health`);
//! - `curl` the API server's `/version`;
//! - `kubectl cluster-info`, `kubectl get nodes` (both nodes Ready), `kubectl get
//!   componentstatuses` (all Healthy);
//! - `etcdctl get /coreos.com/network/config`: the cluster runs kubesup's default `network:
//!   flannel` (host-gw), with the test bed's stand-ins for flanneld and flannel's CNI plugin.
//!
//! Beyond the guides: the two lines up.sh prints to show and to start a workload work as
//! printed, no pod sits Pending (the DNS add-on is left out where no CoreDNS image exists),
//! pods on the two nodes reach each other (over the flannel stand-ins' host-gw routes), the
//! worker (which has no mirror) took every binary from its master, a second `up` is
//! refused while the cluster runs, a failed `up` removes what it started, and `up.sh down`
//! leaves no process, pod, shim, cgroup, namespace, mount or file, twice in a row.
//!
//! The script runs with the binary Cargo built for this test (`KUBESUP_DEMO_BIN`), a state dir
//! in a scratch directory and namespace names of its own, so it cannot meet a user's cluster;
//! a guard runs `up.sh down` even when the test fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Netns, Scratch, Testbed, alive, kubectl, kubesup_bin, node_ready, output_text,
    recorded_children, run_bounded, wait_for,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const MASTER_IP: &str = "10.79.0.1";
const NODES: [&str; 2] = ["demo-master", "demo-worker"];

/// One up.sh cluster: its state dir and namespace prefix, and `up.sh down` when dropped.
struct Demo {
    state: PathBuf,
    name: String,
}

impl Demo {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/up.sh")
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(Self::script());
        cmd.args(args)
            .env("KUBESUP_DEMO_DIR", &self.state)
            .env("KUBESUP_DEMO_NAME", &self.name)
            .env("KUBESUP_DEMO_BIN", bin)
            .env_remove("KUBESUP_DEMO_KEEP");
        cmd
    }

    /// `up.sh ARGS` with `bin` as kubesup, to its end (bounded).
    fn run(&self, bin: &Path, args: &[&str], timeout: Duration) -> Output {
        run_bounded(self.command(bin, args), timeout)
    }

    fn down(&self) -> Output {
        self.run(&kubesup_bin(), &["down"], Duration::from_secs(600))
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    fn data(&self, role: &str) -> PathBuf {
        self.state.join(role)
    }

    /// What is left of the cluster on this machine, one line each; empty once it is gone.
    fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.state.exists() {
            out.push(format!("state dir {}", self.state.display()));
        }
        for role in ["master", "worker", "lan"] {
            if Path::new("/run/netns").join(self.ns(role)).exists() {
                out.push(format!("network namespace {}", self.ns(role)));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(4)) {
            if Path::new(m).starts_with(&self.state) || m.contains(&format!("/{}-", self.name)) {
                out.push(format!("mount {m}"));
            }
        }
        for role in ["master", "worker"] {
            for d in kubesup::cgroup::dirs(&format!("/{}", self.ns(role))) {
                if d.exists() {
                    out.push(format!("cgroup {}", d.display()));
                }
            }
        }
        out
    }
}

impl Drop for Demo {
    /// Bounded and without a panic (a panic while unwinding would abort before the rest of the
    /// cleanup): `up.sh down` by its PID, killed if it hangs.
    fn drop(&mut self) {
        let Ok(mut child) = self
            .command(&kubesup_bin(), &["down"])
            .stdin(Stdio::null())
            .spawn()
        else {
            return;
        };
        let done = wait_for(Duration::from_secs(600), || child.try_wait().ok().flatten());
        if done.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `s` without its ANSI colour sequences (`ESC [ ... m`; kubectl cluster-info colours its
/// output even when it is not a terminal).
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = match rest.find('m') {
            Some(end) => &rest[end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// A line up.sh printed for the user, run as printed.
fn run_line(line: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line);
    run_bounded(cmd, Duration::from_secs(60))
}

/// The PIDs of the containerd-shims serving the containerd at `socket`.
fn shims(socket: &Path) -> Vec<i32> {
    let socket = socket.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_shim = args.first()?.contains("containerd-shim");
            let ours = args
                .windows(2)
                .any(|w| w[0] == "-address" && w[1] == socket);
            (is_shim && ours).then_some(pid)
        })
        .collect()
}

/// The init PIDs of the containers of the containerd whose data dir is `data`.
fn container_inits(data: &Path) -> Vec<i32> {
    let tasks = data.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
    std::fs::read_dir(tasks)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("init.pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

#[test]
fn up_sh_runs_a_two_node_cluster_that_passes_the_guides_checks_and_down_removes_it() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("up");
    let name = format!("ksit{}", std::process::id());
    // Handles on up.sh's namespaces, for running commands in them; should anything be left
    // when the test ends, their drop kills what runs in them and deletes them (after the
    // guard's `down`, declared below them).
    let master_ns = Netns {
        name: format!("{name}-master"),
    };
    let _worker_ns = Netns {
        name: format!("{name}-worker"),
    };
    let demo = Demo {
        state: scratch.dir.join("state"),
        name,
    };

    // A failed `up` (a kubesup that exits at once) removes what it started, and `down` after
    // it is harmless.
    let failed = demo.run(Path::new("/bin/false"), &[], Duration::from_secs(600));
    assert!(!failed.status.success(), "{}", output_text(&failed));
    assert!(
        output_text(&failed).contains("the master's kubesup exited"),
        "{}",
        output_text(&failed)
    );
    assert_eq!(demo.leftovers(), Vec::<String>::new(), "after a failed up");
    let out = demo.down();
    assert!(out.status.success(), "down after a failed up: {out:?}");
    assert!(text(&out).contains("nothing to remove"), "{}", text(&out));

    // `up`.
    let t0 = Instant::now();
    let up = demo.run(&kubesup_bin(), &[], Duration::from_secs(900));
    let took = t0.elapsed();
    assert!(up.status.success(), "up.sh failed:\n{}", output_text(&up));
    eprintln!("up.sh took {took:?}:\n{}", text(&up));
    let printed = text(&up);
    // The stand-ins are said, one line each.
    assert_eq!(
        printed
            .lines()
            .filter(|l| l.starts_with("up.sh: network: flannel (host-gw), with stand-ins"))
            .count(),
        1,
        "{printed}"
    );
    assert_eq!(
        printed
            .lines()
            .filter(|l| l.starts_with("up.sh: DNS: left out"))
            .count(),
        1,
        "{printed}"
    );

    // A second `up` is refused while the cluster runs, and changes nothing.
    let pid = |role: &str| -> i32 {
        std::fs::read_to_string(demo.state.join(format!("{role}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let kubesups = [pid("master"), pid("worker")];
    let again = demo.run(&kubesup_bin(), &[], Duration::from_secs(60));
    assert!(!again.status.success(), "a second up.sh succeeded");
    assert!(
        output_text(&again).contains("already running"),
        "{}",
        output_text(&again)
    );
    assert!(
        kubesups.iter().all(|p| alive(*p)),
        "the refused up.sh stopped the cluster"
    );

    // The lines up.sh printed work as printed: the workload is Running, and one more pod runs.
    let kc_wrapper = format!("{}/kubectl ", demo.state.display());
    let lines: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&kc_wrapper))
        .collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let shown = run_line(lines[0]);
    assert!(shown.status.success(), "{}", output_text(&shown));
    let running = text(&shown)
        .lines()
        .filter(|l| l.starts_with("hello-") && l.split_whitespace().nth(2) == Some("Running"))
        .count();
    assert_eq!(running, 2, "{}", text(&shown));
    let another = run_line(lines[1]);
    assert!(another.status.success(), "{}", output_text(&another));
    let kc = demo.data("master").join("kubeconfig/admin.conf");
    let pod_running = |pod: &str| {
        let out = kubectl(
            &tb,
            &master_ns,
            &kc,
            &["get", "pod", pod, "-o", "jsonpath={.status.phase}"],
        );
        text(&out) == "Running"
    };
    assert!(
        wait_for(Duration::from_secs(120), || pod_running("hi").then_some(())).is_some(),
        "the pod of the printed `kubectl run` line is not Running"
    );

    // ---- the seed guides' checks ----
    let pki = demo.data("master").join("pki");
    let p = |f: &str| pki.join(f).to_string_lossy().into_owned();
    // etcd's /version, with the healthcheck client certificate.
    let etcd = master_ns.exec_ok(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        &p("etcd/ca.crt"),
        "--cert",
        &p("etcd/healthcheck-client.crt"),
        "--key",
        &p("etcd/healthcheck-client.key"),
        "https://127.0.0.1:2379/version",
    ]);
    let etcd: Value = serde_json::from_str(&etcd).unwrap_or(Value::Null);
    assert_eq!(etcd["etcdserver"], "3.4.23", "etcd /version: {etcd}");
    // etcdctl cluster-health, in etcd v3's words.
    let etcdctl = |args: &[&str]| {
        let mut full = vec![
            "env",
            "ETCDCTL_API=3",
            "/usr/bin/etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--command-timeout=10s",
        ];
        let (ca, cert, key) = (
            format!("--cacert={}", p("etcd/ca.crt")),
            format!("--cert={}", p("etcd/healthcheck-client.crt")),
            format!("--key={}", p("etcd/healthcheck-client.key")),
        );
        full.extend([ca.as_str(), cert.as_str(), key.as_str()]);
        full.extend(args);
        master_ns.exec(&full)
    };
    let health = etcdctl(&["endpoint", "health"]);
    assert!(
        health.status.success() && output_text(&health).contains("is healthy"),
        "etcdctl endpoint health: {}",
        output_text(&health)
    );
    // The API server's /version (anonymous, as the guides' curl).
    let api = master_ns.exec_ok(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        &p("ca.crt"),
        &format!("https://{MASTER_IP}:6443/version"),
    ]);
    let api: Value = serde_json::from_str(&api).unwrap_or(Value::Null);
    assert_eq!(
        api["gitVersion"],
        common::KUBE_VERSION,
        "API server /version: {api}"
    );
    // kubectl cluster-info.
    let info = kubectl(&tb, &master_ns, &kc, &["cluster-info"]);
    assert!(
        info.status.success()
            && plain(&text(&info)).contains(&format!(
                "Kubernetes control plane is running at https://{MASTER_IP}:6443"
            )),
        "kubectl cluster-info: {}",
        output_text(&info)
    );
    // kubectl get nodes: the master is schedulable, so both nodes are nodes, and Ready.
    let nodes = json(&kubectl(
        &tb,
        &master_ns,
        &kc,
        &["get", "nodes", "-o", "json"],
    ));
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, NODES, "kubectl get nodes");
    for node in NODES {
        assert!(
            node_ready(&tb, &master_ns, &kc, node),
            "{node} is not Ready"
        );
    }
    // kubectl get componentstatuses: every one Healthy.
    let cs = json(&kubectl(
        &tb,
        &master_ns,
        &kc,
        &["get", "componentstatuses", "-o", "json"],
    ));
    let statuses: Vec<(String, bool)> = cs["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let healthy = c["conditions"].as_array().is_some_and(|conds| {
                conds
                    .iter()
                    .any(|k| k["type"] == "Healthy" && k["status"] == "True")
            });
            (
                c["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                healthy,
            )
        })
        .collect();
    assert!(
        statuses.len() == 3 && statuses.iter().all(|(_, h)| *h),
        "kubectl get componentstatuses: {statuses:?}"
    );
    // flannel's network config, which kubesup wrote into etcd as the guides did by hand.
    let config = etcdctl(&["get", "--print-value-only", "/coreos.com/network/config"]);
    let config_text = text(&config);
    assert!(
        config.status.success()
            && config_text.contains("\"Network\"")
            && config_text.contains("host-gw"),
        "etcdctl get /coreos.com/network/config: {}",
        output_text(&config)
    );
    // The worker has no mirror: every binary it runs came from its master, by hash.
    let record: Value = serde_json::from_slice(
        &std::fs::read(demo.state.join("worker/bin/v1.20.2/fetched.json")).unwrap(),
    )
    .unwrap();
    for name in ["kubelet", "kube-proxy", "flanneld", "cni/flannel"] {
        let rel = record["sources"][name]["rel"].as_str().unwrap_or_default();
        assert!(
            rel.starts_with("v1/blobs/"),
            "the worker's {name} did not come from its master: {rel:?}"
        );
    }

    // ---- beyond the guides ----
    // No pod sits Pending (no DNS add-on without an image), none in kube-system at all.
    let pods = json(&kubectl(
        &tb,
        &master_ns,
        &kc,
        &["get", "pods", "-A", "-o", "json"],
    ));
    let pods = pods["items"].as_array().cloned().unwrap_or_default();
    let not_running: Vec<String> = pods
        .iter()
        .filter(|p| p["status"]["phase"] != "Running")
        .map(|p| format!("{} {}", p["metadata"]["name"], p["status"]["phase"]))
        .collect();
    assert!(not_running.is_empty(), "pods not Running: {not_running:?}");
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["namespace"] != "kube-system"),
        "a pod in kube-system (the DNS add-on?)"
    );
    // The workload's pods, one per node, reach each other across nodes (the stand-in routes).
    let hello: Vec<(String, String, String)> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "hello")
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["spec"]["nodeName"]),
                s(&p["status"]["podIP"]),
            )
        })
        .collect();
    assert!(
        hello.len() == 2 && hello[0].1 != hello[1].1,
        "the workload is not on both nodes: {hello:?}"
    );
    for (from, to) in [(&hello[0], &hello[1]), (&hello[1], &hello[0])] {
        let out = kubectl(
            &tb,
            &master_ns,
            &kc,
            &[
                "exec",
                &from.0,
                "--",
                "sh",
                "-c",
                &format!(
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080",
                    to.2
                ),
            ],
        );
        assert!(
            text(&out).lines().any(|l| l.trim() == to.0),
            "pod {} on {} cannot reach pod {} on {}: {}",
            from.0,
            from.1,
            to.0,
            to.1,
            output_text(&out)
        );
    }

    // ---- `up.sh down`: nothing it started remains ----
    let mut started: Vec<(String, i32)> = kubesups
        .iter()
        .map(|p| ("kubesup".to_string(), *p))
        .collect();
    for role in ["master", "worker"] {
        let data = demo.data(role);
        for rec in recorded_children(&data) {
            started.push((format!("{role} component"), rec.pid));
        }
        for p in container_inits(&data) {
            started.push((format!("{role} container"), p));
        }
        for p in shims(&data.join("containerd/containerd.sock")) {
            started.push((format!("{role} shim"), p));
        }
    }
    for kind in ["component", "container", "shim"] {
        assert!(
            started.iter().any(|(k, _)| k.ends_with(kind)),
            "found no {kind} to watch: {started:?}"
        );
    }
    let t1 = Instant::now();
    let out = demo.down();
    assert!(out.status.success(), "up.sh down: {}", output_text(&out));
    eprintln!("up.sh down took {:?}", t1.elapsed());
    let survivors: Vec<&(String, i32)> = started.iter().filter(|(_, p)| alive(*p)).collect();
    for (_, p) in &survivors {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    assert!(survivors.is_empty(), "left running by down: {survivors:?}");
    assert_eq!(demo.leftovers(), Vec::<String>::new(), "after down");
    // Twice is harmless.
    let out = demo.down();
    assert!(out.status.success(), "a second down: {}", output_text(&out));
    assert!(text(&out).contains("nothing to remove"), "{}", text(&out));
}
