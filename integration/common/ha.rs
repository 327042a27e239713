//! The HA tests' and benchmark's share of the harness: a master's commands run in its
//! namespace, the etcd membership as kubesup and etcdctl list it, node and lease reads through
//! kubectl, and processes frozen for a while.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a panic is a failed test, with its message"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{
    CgroupRoots, Kubesup, Lan, Mirror, Netns, Scratch, Testbed, kubectl, kubesup_bin,
    master_config, run_bounded,
};

/// A master's join API.
pub fn join_url(ip: &str) -> String {
    format!("https://{ip}:9443")
}

pub fn kubesup_in(ns: &Netns, args: &[&str], data: &Path) -> Output {
    let mut cmd = ns.command(&kubesup_bin());
    cmd.args(args).arg("--data-dir").arg(data);
    run_bounded(cmd, Duration::from_secs(90))
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The etcd members as `kubesup etcd members --json` lists them.
pub fn members(ns: &Netns, data: &Path) -> Vec<Value> {
    let out = kubesup_in(ns, &["etcd", "members", "--json"], data);
    assert!(out.status.success(), "etcd members: {}", text(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn voters(ns: &Netns, data: &Path) -> usize {
    members(ns, data)
        .iter()
        .filter(|m| m["learner"] == false)
        .count()
}

/// `etcdctl member list` with the master's healthcheck client cert: (hex id, name) pairs.
pub fn etcdctl_members(ns: &Netns, data: &Path, ip: &str) -> Vec<(String, String)> {
    let pki = data.join("pki/etcd");
    let out = ns.exec(&[
        "env",
        "ETCDCTL_API=3",
        "etcdctl",
        &format!("--endpoints=https://{ip}:2379"),
        &format!("--cacert={}", pki.join("ca.crt").display()),
        &format!("--cert={}", pki.join("healthcheck-client.crt").display()),
        &format!("--key={}", pki.join("healthcheck-client.key").display()),
        "member",
        "list",
        "-w",
        "json",
    ]);
    assert!(out.status.success(), "etcdctl: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows: Vec<(String, String)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!("{:x}", m["ID"].as_u64().unwrap()),
                m["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

pub fn lease(
    tb: &Testbed,
    ns: &Netns,
    kc: &Path,
    namespace: &str,
    name: &str,
    field: &str,
) -> String {
    let out = kubectl(
        tb,
        ns,
        kc,
        &[
            "get",
            "lease",
            "-n",
            namespace,
            name,
            "-o",
            &format!("jsonpath={{.spec.{field}}}"),
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub struct Node {
    pub data: PathBuf,
    pub cfg: PathBuf,
}

impl Node {
    pub fn master_args<'a>(&'a self, join: Option<(&'a str, &'a str)>) -> Vec<String> {
        let mut a = vec![
            "master".to_string(),
            "--config".into(),
            self.cfg.to_string_lossy().into_owned(),
        ];
        if let Some((url, token_file)) = join {
            a.extend([
                "--join".into(),
                url.into(),
                "--token-file".into(),
                token_file.into(),
            ]);
        }
        a
    }
}

pub fn start(ns: &Netns, node: &Node, args: &[String]) -> Kubesup {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Kubesup::start(ns, &node.data, &args)
}

pub fn write_token(dir: &Path, name: &str, token: &str) -> String {
    let f = dir.join(name);
    std::fs::write(&f, token).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f.to_string_lossy().into_owned()
}

/// Waits (60 s at most) until node `node`'s lease has been renewed since this call, as the API
/// server at `kc` (asked from `ns`) reports it; panics with `context` and `log` otherwise.
pub fn assert_lease_renewed(
    tb: &Testbed,
    ns: &Netns,
    kc: &Path,
    node: &str,
    context: &str,
    log: &str,
) {
    let seen = lease(tb, ns, kc, "kube-node-lease", node, "renewTime");
    let renewed = super::wait_for(Duration::from_secs(60), || {
        let now = lease(tb, ns, kc, "kube-node-lease", node, "renewTime");
        (!now.is_empty() && now != seen).then_some(())
    });
    assert!(
        renewed.is_some(),
        "the lease of {node} was not renewed {context}\n{log}"
    );
}

/// Processes stopped with SIGSTOP, continued (SIGCONT) on drop: also when the test fails
/// while they are stopped, so that the cleanup's SIGTERM can reach them.
pub struct Frozen(Vec<i32>);

impl Frozen {
    pub fn stop(pids: Vec<i32>) -> Self {
        // kubesup first, so that it does not see its components stop and act on it.
        for p in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGSTOP);
        }
        Self(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // The components first, so that kubesup, continued last, finds them running.
        for p in self.0.iter().rev() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGCONT);
        }
    }
}

/// Three masters' configs and a worker's namespace on one bridge: namespace `i` has address
/// `ips[i]`, masters 0..3 have a config each (`network: none`, the test bed's stand-in, as
/// flanneld is in no reachable registry), and every namespace serves the test bed's mirror.
/// Dropped after the kubesups it hosts (declare it first): the pods' cgroups, then the mirrors,
/// the namespaces and the data dirs go, in that order (the fields' order).
pub struct ThreeMasters {
    pub nodes: Vec<Node>,
    /// The kubelet cgroup root of the worker's pods.
    pub cgroup_root: String,
    _cgroups: CgroupRoots,
    pub mirrors: Vec<Mirror>,
    pub lan: Lan,
    pub scratch: Scratch,
}

impl ThreeMasters {
    pub fn new(tb: &Testbed, tag: &str, ips: &[&str; 4]) -> Self {
        let scratch = Scratch::new(tag);
        let mut lan = Lan::new(tag);
        for (i, ip) in ips.iter().enumerate() {
            lan.add_node(&format!("{tag}{i}"), &format!("{ip}/24"));
        }
        let mirrors: Vec<Mirror> = lan.nodes.iter().map(|ns| Mirror::serve(ns, tb)).collect();
        let cgroup_root = format!("/kubesup-it-{tag}-{}", std::process::id());
        let nodes = (0..3)
            .map(|i| {
                let (data, cfg) = master_config(
                    &scratch.dir,
                    &format!("m{i}"),
                    ips[i],
                    &mirrors[i].url,
                    "network: none\n",
                );
                Node { data, cfg }
            })
            .collect();
        Self {
            nodes,
            _cgroups: CgroupRoots(vec![cgroup_root.clone()]),
            cgroup_root,
            mirrors,
            lan,
            scratch,
        }
    }

    /// Namespace `i` (3 is the worker's).
    pub fn ns(&self, i: usize) -> &Netns {
        &self.lan.nodes[i]
    }

    /// The worker's config (node name `name`, namespace 3's mirror, the pods' cgroup root and
    /// the test bed's pause image): its data dir and config path.
    pub fn worker_config(&self, name: &str) -> (PathBuf, PathBuf) {
        let data = self.scratch.dir.join("w");
        let cfg = self.scratch.dir.join("w.yaml");
        std::fs::write(
            &cfg,
            format!(
                "data-dir: {}\nnode-name: {name}\nmirror: {}\nfetch: {{etcd-version: {}}}\n\
                 containerd: {{sandbox-image: kubesup.local/pause:3.2}}\n\
                 kubelet: {{cgroup-root: {}}}\n",
                data.display(),
                self.mirrors[3].url,
                super::ETCD_VERSION,
                self.cgroup_root
            ),
        )
        .unwrap();
        (data, cfg)
    }

    /// `kubesup token create --role ROLE` on master `i`, written to a 0600 file in the
    /// scratch dir; returns the file's path.
    pub fn token_file(&self, i: usize, role: &str, file: &str) -> String {
        let out = kubesup_in(
            self.ns(i),
            &["token", "create", "--role", role],
            &self.nodes[i].data,
        );
        assert!(out.status.success(), "token create: {}", text(&out));
        write_token(
            &self.scratch.dir,
            file,
            String::from_utf8_lossy(&out.stdout).trim(),
        )
    }
}
