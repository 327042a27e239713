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

use std::time::Duration;

use ipnet::IpNet;
use tracing::{info, warn};

use crate::components::cni;
use crate::config::Config;
use crate::fsutil;
use crate::kube::Kube;
use crate::model::Network;
use crate::retry::Backoff;

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
    let body = match cfg.network {
        Network::None => cni::bridge_conflist(cidr, &cfg.paths.cni_ipam_dir(), "kubesup0"),
        Network::Flannel => {
            cni::flannel_conflist(&cfg.paths.flannel_subnet_file(), &cfg.paths.cni_ipam_dir())
        }
    };
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
