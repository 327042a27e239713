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

use super::{Kubesup, Netns, Testbed, kubectl, kubesup_bin, run_bounded};

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
