//! Shared harness of the real-component tests: the test bed, network namespaces, the local
//! mirror, and a guard around each kubesup that leaves nothing behind. It is built on the
//! generic test helpers of `tests/common` (waiting, liveness, running and stopping processes),
//! which it re-exports, so an integration test needs only `mod common;`.
//!
//! Safety rules these helpers enforce:
//! - every node lives in a network namespace the test creates, with no default route; the
//!   host namespace never sends to its addresses, and all HTTP goes through `ip netns exec`;
//! - everything started is stopped by its PID or process group in `Drop`, even on panic, and
//!   namespaces, mounts and data dirs are removed;
//! - every wait is bounded.
// Each integration test compiles this module and uses only part of it.
#![allow(dead_code, reason = "each test crate uses only some of the helpers")]

// The generic helpers: one copy, in tests/common, compiled into each integration test too.
#[path = "../../tests/common/mod.rs"]
mod shared;
pub use shared::*;

pub mod ha;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kubesup::supervise::pidfile::ChildRecord;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub const KUBE_VERSION: &str = "v1.20.2";
pub const ETCD_VERSION: &str = "v3.4.23";

pub struct Testbed {
    pub root: PathBuf,
    pub k8s_bin: PathBuf,
    pub mirror: PathBuf,
}

impl Testbed {
    /// The test bed, or `None` (test skipped with a message) when it is not installed and
    /// `KUBESUP_TESTBED_REQUIRED` is unset. CI sets it, so there a missing test bed fails.
    pub fn get() -> Option<Self> {
        let root = PathBuf::from(
            std::env::var("KUBESUP_TESTBED_CACHE")
                .unwrap_or_else(|_| "/var/cache/kubesup-testbed".into()),
        );
        let k8s = root.join(format!("kubernetes-{KUBE_VERSION}"));
        let mirror = root.join("mirror");
        let ok = k8s.join(".built").exists()
            && mirror.join("release").exists()
            && nix::unistd::geteuid().is_root();
        if !ok {
            let msg = "the real-component test bed is not installed (run integration/setup-testbed.sh and integration/build-mirror.sh as root)";
            if std::env::var_os("KUBESUP_TESTBED_REQUIRED").is_some() {
                panic!("{msg}");
            }
            eprintln!("skipping: {msg}");
            return None;
        }
        Some(Self {
            k8s_bin: k8s.join("bin"),
            root,
            mirror,
        })
    }

    pub fn kubectl(&self) -> PathBuf {
        self.k8s_bin.join("kubectl")
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace with loopback up, IP forwarding on, and optionally an address on a
/// bridge inside it. No default route: nothing in it can reach the machine's real network.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "ks-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = output(Command::new("ip").args(["netns", "add", &name]));
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        ns
    }

    /// Gives the namespace an address on a bridge of its own (the `dummy` link type does not
    /// exist on this kernel).
    pub fn with_address(self, cidr: &str) -> Self {
        self.ip(&["link", "add", "ksbr0", "type", "bridge"]);
        self.ip(&["addr", "add", cidr, "dev", "ksbr0"]);
        self.ip(&["link", "set", "ksbr0", "up"]);
        self
    }

    pub fn ip(&self, args: &[&str]) {
        let out = output(Command::new("ip").arg("-n").arg(&self.name).args(args));
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {out:?}",
            self.name
        );
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        output(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nsenter --net` only: kubelet needs the host's mount namespace to see the cgroup
    /// mounts, which `ip netns exec` would hide (TESTBED.md).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        c
    }

    pub fn pids(&self) -> Vec<i32> {
        let out = output(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in it was started by this test.
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = wait_for(Duration::from_secs(10), || {
            self.pids().is_empty().then_some(())
        });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A LAN for multi-node tests: a bridge in a namespace of its own, and node namespaces
/// plugged into it by veth pairs. No namespace gets a default route.
pub struct Lan {
    /// Declared before `switch`, so nodes go first when a `Lan` is dropped.
    pub nodes: Vec<Netns>,
    pub switch: Netns,
}

impl Lan {
    pub fn new(tag: &str) -> Self {
        let switch = Netns::new(&format!("{tag}sw"));
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        switch.ip(&["link", "set", "br0", "up"]);
        Self {
            nodes: Vec::new(),
            switch,
        }
    }

    /// Adds a node namespace with `cidr` (e.g. `10.78.0.2/24`) on its `eth0`; returns its index.
    pub fn add_node(&mut self, tag: &str, cidr: &str) -> usize {
        let ns = Netns::new(tag);
        let port = format!("p{}", self.nodes.len());
        self.switch.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
        self.switch.ip(&["link", "set", &port, "up"]);
        ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        self.nodes.push(ns);
        self.nodes.len() - 1
    }
}

/// Kills every process in the cgroup `root` and removes its cgroups, as `kubesup reset` does:
/// the pods of a kubelet that ran with that cgroup root (their processes live in pod network
/// namespaces, outside the node's, and survive kubesup by design). Bounded.
pub fn remove_cgroup_tree(root: &str) {
    for _ in 0..50 {
        if kubesup::cgroup::remove_once(root) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the pods of the kubelets that ran with these cgroup roots and removes the cgroups,
/// when dropped: declare it before the `Kubesup`s, so it runs after they stopped (pods outlive
/// kubesup by design).
pub struct CgroupRoots(pub Vec<String>);

impl Drop for CgroupRoots {
    fn drop(&mut self) {
        for r in &self.0 {
            remove_cgroup_tree(r);
        }
    }
}

/// The test bed's mirror, served over HTTP on 127.0.0.1 inside a namespace.
pub struct Mirror {
    child: Child,
    pub url: String,
}

impl Mirror {
    pub fn serve(ns: &Netns, tb: &Testbed) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/serve-mirror.py");
        // Its own process group, so that drop reaches anything it forks.
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3"])
            .arg(script)
            .arg(&tb.mirror)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the mirror server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("mirror stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("mirror announces its url");
        let url = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("url="))
            .unwrap_or_else(|| panic!("mirror said {line:?}"))
            .to_string();
        Self { child, url }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Writes a master config for the test bed to `dir/NAME.yaml`, with data dir `dir/NAME` and node
/// name `it-NAME`; `extra` is YAML appended as is (network, schedulable, supervisor, pki...).
/// Returns the data dir and the config path.
pub fn master_config(
    dir: &Path,
    name: &str,
    advertise: &str,
    mirror: &str,
    extra: &str,
) -> (PathBuf, PathBuf) {
    let data = dir.join(name);
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "data-dir: {}\nadvertise: {advertise}\nnode-name: it-{name}\nkube-version: {KUBE_VERSION}\n\
             mirror: {mirror}\nfetch: {{etcd-version: {ETCD_VERSION}}}\n{extra}",
            data.display()
        ),
    )
    .expect("write the master config");
    (data, cfg)
}

/// One running kubesup (master or worker) inside a namespace.
pub struct Kubesup {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Kubesup {
    /// Starts `kubesup ARGS` in `ns`, in its own process group, logging to a file in the data
    /// dir's parent.
    pub fn start(ns: &Netns, data_dir: &Path, args: &[&str]) -> Self {
        Self::spawn(ns.command(&kubesup_bin()), data_dir, args)
    }

    /// Like [`start`](Self::start), but also in a mount namespace of its own, where node
    /// directories under `node_root` are bind-mounted over the machine-wide paths that two
    /// nodes on one machine would share: /var/log (kubelet's fixed /var/log/pods and
    /// /var/log/containers, which each kubelet garbage-collects), /run/netns (where containerd
    /// pins pod network namespaces) and /var/lib/cni (libcni's result cache). The mount
    /// namespace, and every mount kubelet and containerd make in it, ends with its last
    /// process; what they wrote stays under `node_root`, which the test removes.
    pub fn start_isolated(ns: &Netns, data_dir: &Path, node_root: &Path, args: &[&str]) -> Self {
        for d in ["var-log", "netns", "cni"] {
            std::fs::create_dir_all(node_root.join(d)).expect("node dir");
        }
        // Bind targets must exist: /var/lib/cni is created empty, where any CNI user would.
        std::fs::create_dir_all("/var/lib/cni").expect("/var/lib/cni");
        std::fs::create_dir_all("/run/netns").expect("/run/netns");
        let script = "set -e; r=$1; shift; \
            mount --bind \"$r/var-log\" /var/log; \
            mount --bind \"$r/netns\" /run/netns; \
            mount --bind \"$r/cni\" /var/lib/cni; \
            exec \"$@\"";
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", ns.name))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", script, "sh"])
            .arg(node_root)
            .arg(kubesup_bin());
        Self::spawn(cmd, data_dir, args)
    }

    fn spawn(mut cmd: Command, data_dir: &Path, args: &[&str]) -> Self {
        let log = data_dir.with_extension("log");
        let child = spawn_logged(cmd.args(args), &log);
        Self {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// `kubesup status --json`, if it answers.
    pub fn status(&self) -> Option<Value> {
        status_json(&self.data_dir)
    }

    /// The row of component `name` in a [`status`](Self::status) answer.
    pub fn component<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
        component(status, name)
    }

    /// Whether kubesup itself is still running (it is this test's unreaped child, so once it
    /// exits it stays a zombie until `wait_exit` or drop).
    pub fn running(&self) -> bool {
        self.child.is_some() && alive(self.pid())
    }

    /// Panics with the log tail if kubesup has exited: a poll for a state it can no longer
    /// reach would only time out, minutes later, without saying why.
    pub fn assert_running(&self) {
        assert!(
            self.running(),
            "kubesup (pid {}) exited ({})\n{}",
            self.pid(),
            zombie_status(self.pid()),
            self.log_tail(40)
        );
    }

    /// Waits until every component is ready; panics with the log tail otherwise.
    pub fn wait_ready(&self, timeout: Duration) -> Value {
        match wait_for(timeout, || {
            self.assert_running();
            self.status().filter(|s| {
                s["components"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["ready"] == true))
            })
        }) {
            Some(s) => s,
            None => panic!(
                "not every component became ready within {timeout:?}; status: {:?}\n{}",
                self.status(),
                self.log_tail(60)
            ),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends `sig` to kubesup itself.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), sig);
    }

    /// Waits for kubesup to exit; returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        shared::wait_exit(&mut self.child, WAIT_PERIOD, timeout)
    }

    /// The child record (the components kubesup runs now).
    pub fn recorded(&self) -> Vec<ChildRecord> {
        recorded_children(&self.data_dir)
    }

    /// PIDs recorded in the child record (the components kubesup runs now).
    pub fn recorded_pids(&self) -> Vec<i32> {
        self.recorded().iter().map(|r| r.pid).collect()
    }
}

impl Drop for Kubesup {
    fn drop(&mut self) {
        // A graceful stop first: kubesup stops its components in order within a minute.
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child, Duration::from_secs(60));
        }
        // Components a killed kubesup left recorded, while their PIDs still are theirs.
        kill_recorded_groups(&self.data_dir);
        unmount_below(&self.data_dir);
    }
}

/// Unmounts everything mounted below `dir`, deepest first (kubelet leaves mounts under its
/// root dir), so the directory can be deleted.
pub fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(String::from)
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A temporary directory for one test's data dirs, removed (after unmounting) on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kubesup-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs kubectl (the test bed's v1.20.2 build) in `ns` with a kubeconfig.
pub fn kubectl(tb: &Testbed, ns: &Netns, kubeconfig: &Path, args: &[&str]) -> Output {
    let mut full = vec![tb.kubectl().to_string_lossy().into_owned()];
    full.push(format!("--kubeconfig={}", kubeconfig.display()));
    full.push("--request-timeout=10s".into());
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.exec(&refs)
}

/// Whether node `node` is Ready, as the API server at `kubeconfig` says (asked from `ns`).
pub fn node_ready(tb: &Testbed, ns: &Netns, kc: &Path, node: &str) -> bool {
    let out = kubectl(
        tb,
        ns,
        kc,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

/// How an exited, not yet reaped child ended, from its zombie's `/proc/PID/stat` (the wait
/// status is field 52, `exit_code`, since Linux 3.5): a process killed by a signal prints no
/// last line of its own.
pub fn zombie_status(pid: i32) -> String {
    let Some(status) = proc_stat(pid)
        .and_then(|f| f.get(49).cloned())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return "exit status unknown".into();
    };
    match status & 0x7f {
        0 => format!("exit code {}", (status >> 8) & 0xff),
        sig => format!("killed by signal {sig}"),
    }
}
