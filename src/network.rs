//! The node's pod network config for CNI, written once the node has a pod CIDR.
//!
//! - `network: flannel`: flanneld leases the node a subnet from etcd and writes it to its
//!   subnet file; the CNI config is the flannel plugin delegating to a bridge, pointed at that
//!   file.
//! - `network: none`: no overlay. The controller-manager allocates each node a `podCIDR` from
//!   the pod CIDR; kubesup waits for it and writes a bridge + host-local config for it. Routes
//!   between nodes are the operator's (the test bed adds them as flannel's host-gw backend
//!   would).
//!
//! containerd reads the config directory on every pod sandbox, and kubelet reports the node
//! `Ready` once a valid config exists, so writing the file is all that is needed.
//!
//! Before kubelet starts, [`check_cni_plugins`] makes sure that every plugin this config will
//! name is in the dir containerd runs them from; the list comes from the same function that
//! writes the config ([`conflist`]), so the check and the config cannot drift apart. Without
//! it a missing plugin shows only as pods stuck in `ContainerCreating`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use tracing::{debug, info, warn};

use crate::components::{CniBinDir, cni};
use crate::config::Config;
use crate::fsutil;
use crate::kube::Kube;
use crate::model::Network;
use crate::retry::Backoff;

/// The node's CNI config for its pod subnet `cidr` (`network: none`; flannel's plugin reads its
/// subnet from flanneld's file instead).
pub fn conflist(cfg: &Config, cidr: IpNet) -> String {
    match cfg.network {
        Network::None => cni::bridge_conflist(cidr, &cfg.paths.cni_ipam_dir(), "kubesup0"),
        Network::Flannel => {
            cni::flannel_conflist(&cfg.paths.flannel_subnet_file(), &cfg.paths.cni_ipam_dir())
        }
    }
}

/// The CNI plugins containerd will run for this node's pods: those its config names (with what
/// they delegate to) and loopback. The subnet does not change which plugins a config names, so
/// the cluster's pod CIDR stands in for the node's, not yet assigned.
pub fn required_cni_plugins(cfg: &Config) -> Vec<String> {
    cni::plugins_named(&conflist(cfg, cfg.pod_cidr))
}

/// A CNI plugin the node's config names that containerd would not find.
#[derive(Debug, thiserror::Error)]
#[error(
    "the CNI config names plugin {plugin:?}, which is not {problem} in {} ({owner}): it {origin}; {fix}",
    .dir.display()
)]
pub struct CniError {
    pub plugin: String,
    pub dir: PathBuf,
    /// "an executable file" or the like: what is wrong with it.
    pub problem: &'static str,
    /// Whose dir it is: `containerd.cni-bin-dir`, or kubesup's own.
    pub owner: &'static str,
    /// Which project releases the plugin.
    pub origin: &'static str,
    pub fix: &'static str,
}

/// Checks that every plugin in [`required_cni_plugins`] is an executable file in `dir` (a link
/// to one counts), the dir containerd will use. The first one missing is the error: one line,
/// naming the plugin, the dir and where the plugin comes from.
pub fn check_cni_plugins(cfg: &Config, dir: &CniBinDir) -> Result<(), CniError> {
    let path = dir.path();
    for plugin in required_cni_plugins(cfg) {
        if let Some(problem) = not_executable(&path.join(&plugin)) {
            return Err(missing(plugin, dir, problem));
        }
    }
    debug!(dir = %path.display(), "every CNI plugin the node's config names is there");
    Ok(())
}

/// Why `file` cannot be run as a plugin, if it cannot.
fn not_executable(file: &Path) -> Option<&'static str> {
    match std::fs::metadata(file) {
        Err(_) => Some("present"),
        Ok(m) if !m.is_file() => Some("a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("executable"),
        Ok(_) => None,
    }
}

fn missing(plugin: String, dir: &CniBinDir, problem: &'static str) -> CniError {
    let flannel = plugin == "flannel";
    let origin = if flannel {
        "is released by flannel-io/cni-plugin (containernetworking/plugins dropped it in v1.0.0)"
    } else {
        "is released by containernetworking/plugins (Debian: containernetworking-plugins)"
    };
    let (owner, fix) = match (dir, flannel) {
        (CniBinDir::Operator(_), true) => (
            "containerd.cni-bin-dir",
            "remove containerd.cni-bin-dir so kubesup fetches it, or install it there",
        ),
        (CniBinDir::Operator(_), false) => (
            "containerd.cni-bin-dir",
            "install the CNI plugins there, or remove containerd.cni-bin-dir",
        ),
        (CniBinDir::Kubesup(_), true) => (
            "kubesup's CNI bin dir",
            "kubesup fetches it with the node's binaries: run `kubesup fetch` again",
        ),
        (CniBinDir::Kubesup(_), false) => (
            "kubesup's CNI bin dir, which links the OS's plugins",
            "install them (apt-get install containernetworking-plugins puts them in /usr/lib/cni), or set containerd.cni-bin-dir to a dir that holds them",
        ),
    };
    CniError {
        plugin,
        dir: dir.path().to_path_buf(),
        problem,
        owner,
        origin,
        fix,
    }
}

pub const CONFLIST: &str = "10-kubesup.conflist";

/// Waits (for as long as kubesup runs) until the node has a pod CIDR, then writes the CNI
/// config if it is missing or different.
pub async fn ensure_cni_config(cfg: &Config, kube: &Kube) {
    let path = cfg.paths.cni_conf_dir().join(CONFLIST);
    // A fresh node registers and gets its pod CIDR within seconds, and it is not Ready until
    // this file exists: keep polling fast (one small GET a second) instead of backing off past
    // that moment. Until the node registers, "not yet" is expected and logged at debug.
    let poll =
        Backoff::exponential(Duration::from_millis(500), Duration::from_secs(1)).warn_from(60);
    let cidr = poll
        .retry(
            "read the node's pod CIDR",
            || async {
                node_pod_cidr(kube, &cfg.node_name)
                    .await?
                    .ok_or(PodCidrError::NotAssigned)
            },
            |_| false,
        )
        .await;
    let Ok(cidr) = cidr else { return };
    let body = conflist(cfg, cidr);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(body.as_str()) {
        match fsutil::write_atomic(&path, body.as_bytes(), 0o644) {
            Ok(()) => {
                info!(pod_cidr = %cidr, path = %path.display(), "wrote the node's CNI config")
            }
            Err(e) => warn!(error = %crate::errors::chain(&e), "cannot write the CNI config"),
        }
    }
}

/// Why the node's pod CIDR cannot be had yet.
#[derive(Debug, thiserror::Error)]
enum PodCidrError {
    #[error("cannot read the node")]
    Read(#[from] crate::kube::KubeError),
    #[error("the node has no pod CIDR yet")]
    NotAssigned,
}

async fn node_pod_cidr(kube: &Kube, node: &str) -> Result<Option<IpNet>, crate::kube::KubeError> {
    let n = kube.get(&format!("/api/v1/nodes/{node}")).await?;
    Ok(n["spec"]["podCIDR"].as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::RawConfig;

    fn cfg(yaml: &str, data_dir: &Path) -> Config {
        let mut raw = RawConfig::from_yaml(yaml).unwrap();
        raw.kube_version = "v1.37.1".into();
        raw.data_dir = data_dir.display().to_string().into();
        raw.node_name = Some("node1".into());
        raw.validate().unwrap()
    }

    fn plugins(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for n in names {
            let p = dir.join(n);
            fs::write(&p, b"#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    use std::fs;

    #[test]
    fn the_plugins_required_are_those_the_written_config_names() {
        let d = tempfile::tempdir().unwrap();
        let flannel = cfg("network: flannel\n", d.path());
        assert_eq!(
            required_cni_plugins(&flannel),
            ["bridge", "flannel", "host-local", "loopback", "portmap"]
        );
        let none = cfg("network: none\n", d.path());
        assert_eq!(
            required_cni_plugins(&none),
            ["bridge", "host-local", "loopback", "portmap"]
        );
        // The same text the node writes, for its own subnet.
        let written = conflist(&none, "10.2.7.0/24".parse().unwrap());
        assert_eq!(cni::plugins_named(&written), required_cni_plugins(&none));
    }

    #[test]
    fn a_plugin_missing_from_the_operators_dir_is_one_line_naming_it_the_dir_and_its_source() {
        let d = tempfile::tempdir().unwrap();
        let os = d.path().join("usr-lib-cni");
        // Debian's set: everything but flannel.
        plugins(&os, &["bridge", "host-local", "loopback", "portmap"]);
        let c = cfg(
            &format!(
                "network: flannel\ncontainerd: {{cni-bin-dir: {}}}\n",
                os.display()
            ),
            d.path(),
        );
        let dir = crate::components::cni_bin_dir(&c);
        assert_eq!(dir, CniBinDir::Operator(os.clone()));
        let err = check_cni_plugins(&c, &dir).unwrap_err();
        let msg = crate::errors::chain(&err);
        assert_eq!(
            msg,
            format!(
                "the CNI config names plugin \"flannel\", which is not present in {} \
                 (containerd.cni-bin-dir): it is released by flannel-io/cni-plugin \
                 (containernetworking/plugins dropped it in v1.0.0); remove \
                 containerd.cni-bin-dir so kubesup fetches it, or install it there",
                os.display()
            )
        );
        assert!(!msg.contains('\n'));

        // Present but not executable is named as such.
        fs::write(os.join("flannel"), b"").unwrap();
        let err = check_cni_plugins(&c, &dir).unwrap_err();
        assert!(
            err.to_string().contains("which is not executable in"),
            "{err}"
        );
        plugins(&os, &["flannel"]);
        check_cni_plugins(&c, &dir).unwrap();

        // network: none needs no flannel, but loopback for every pod.
        let none = cfg(
            &format!(
                "network: none\ncontainerd: {{cni-bin-dir: {}}}\n",
                os.display()
            ),
            d.path(),
        );
        fs::remove_file(os.join("flannel")).unwrap();
        check_cni_plugins(&none, &dir).unwrap();
        fs::remove_file(os.join("loopback")).unwrap();
        let err = check_cni_plugins(&none, &dir).unwrap_err();
        assert_eq!(err.plugin, "loopback");
        assert!(
            err.to_string().contains("containernetworking/plugins"),
            "{err}"
        );
    }

    #[test]
    fn kubesups_own_dir_is_the_default_and_its_errors_say_so() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg("network: flannel\n", d.path());
        let dir = crate::components::cni_bin_dir(&c);
        let own = d.path().join("bin/v1.37.1/cni");
        assert_eq!(dir, CniBinDir::Kubesup(own.clone()));
        plugins(&own, &["flannel", "host-local", "loopback", "portmap"]);
        let err = check_cni_plugins(&c, &dir).unwrap_err();
        assert_eq!(err.plugin, "bridge");
        let msg = err.to_string();
        assert!(msg.contains("kubesup's CNI bin dir"), "{msg}");
        assert!(
            msg.contains("apt-get install containernetworking-plugins"),
            "{msg}"
        );
        // A link to a plugin counts (the OS's are linked in).
        std::os::unix::fs::symlink(own.join("portmap"), own.join("bridge")).unwrap();
        check_cni_plugins(&c, &dir).unwrap();
    }
}
