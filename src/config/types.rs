//! The typed result of validation: [`Config`] and its sections.
//!
//! Every field here has already been checked (a port is a `u16` that is neither zero nor shared,
//! a CIDR has no host bits, a duration is longer than zero), so code downstream uses these
//! values without checking them again. `RawConfig::validate` builds them, and the checks live
//! there; nothing here parses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, Problems};
use crate::model::{Component, FlannelBackend, KeyType, KubeVersion, Network};
use crate::paths::Paths;

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub paths: Paths,
    pub data_dir: PathBuf,
    pub advertise: Option<IpAddr>,
    pub node_name: String,
    pub kube_version: KubeVersion,
    pub mirror: Option<String>,
    pub pod_cidr: IpNet,
    pub service_cidr: IpNet,
    /// First address of the service CIDR: the `kubernetes` Service's ClusterIP.
    pub api_service_ip: IpAddr,
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    pub api_port: u16,
    pub join_port: u16,
    /// The node-local API load balancer listens on `127.0.0.1:<api_lb_port>`.
    pub api_lb_port: u16,
    /// Kubelet's, kube-proxy's and kubesup's connects to the balancer go straight to a healthy
    /// API server, chosen at connect by a BPF program (`crate::apilb::redirect`).
    pub api_lb_redirect: bool,
    pub schedulable: bool,
    pub network: Network,
    /// Read only with `network: flannel`; cluster-wide.
    pub flannel: FlannelSettings,
    pub log_format: LogFormat,
    pub ports: Ports,
    pub pki: PkiSettings,
    pub fetch: FetchSettings,
    pub supervisor: SupervisorSettings,
    pub containerd: ContainerdSettings,
    pub kubelet: KubeletSettings,
    pub dns: DnsSettings,
    pub backup: BackupSettings,
    pub extra_args: BTreeMap<Component, Vec<String>>,
}

impl Config {
    /// The advertise address, which a master cannot do without.
    pub fn require_advertise(&self) -> Result<IpAddr, ConfigError> {
        self.advertise.ok_or_else(|| {
            let mut p = Problems::default();
            p.push(
                "advertise",
                "is required on a master; pass --advertise IP (the address other nodes reach it on)",
            );
            ConfigError::Invalid(p)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlannelSettings {
    pub backend: FlannelBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub etcd_metrics: u16,
    pub kubelet: u16,
    pub kubelet_healthz: u16,
    pub kube_proxy_healthz: u16,
    pub kube_proxy_metrics: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub controller_manager_insecure: u16,
    pub scheduler_insecure: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PkiSettings {
    pub key_type: KeyType,
    pub ca_validity: Duration,
    pub leaf_validity: Duration,
    pub extra_sans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FetchSettings {
    pub insecure_skip_verify: bool,
    pub checksums: BTreeMap<String, String>,
    pub etcd_version: Option<String>,
    pub flannel_version: Option<String>,
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSettings {
    pub backoff_max: Duration,
    pub stable_after: Duration,
    pub grace_period: Duration,
    pub liveness_failures: u32,
    pub log_max_bytes: u64,
    pub log_keep: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerdSettings {
    pub binary: Option<PathBuf>,
    pub cni_bin_dir: Option<PathBuf>,
    pub restrict_oom_score_adj: Option<bool>,
    pub sandbox_image: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubeletSettings {
    pub cgroup_root: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    pub enabled: bool,
    pub image: String,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackupSettings {
    /// `None`: scheduled backups are off.
    pub schedule: Option<Duration>,
    /// At least 1.
    pub keep: usize,
    /// Absolute.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
