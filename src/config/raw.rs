//! Reading a config: the file format, its defaults, and the layering file < `KUBESUP_*`
//! environment < flags.
//!
//! Values stay raw here (strings, wide integers): a raw config is whatever the operator wrote,
//! so that `validate` can report every bad value instead of serde stopping at the first one
//! that does not fit a narrow type. Only the YAML's shape is checked while reading: unknown
//! keys and wrong types are parse errors ([`YamlError`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, DEFAULT_DATA_DIR};
use crate::model::DEFAULT_KUBE_VERSION;

/// The text is not a config file: bad YAML, a wrong type, or an unknown key. Transparent: the
/// message is serde's own (it names the unknown key, the line and the column), and it is the
/// cause of [`ConfigError::Parse`], so it prints once, after the file's name.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct YamlError(#[from] serde_yaml_ng::Error);

/// The file format, and also the merge target of env and flags. Values stay raw (strings,
/// wide integers) so that `validate` can report every bad one instead of the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawConfig {
    pub data_dir: PathBuf,
    pub advertise: Option<String>,
    pub node_name: Option<String>,
    pub kube_version: String,
    pub mirror: Option<String>,
    pub pod_cidr: String,
    pub service_cidr: String,
    /// Must be the first address of `service-cidr` if set; derived when absent.
    pub api_service_ip: Option<String>,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub api_port: i64,
    pub join_port: i64,
    /// The node-local API load balancer's port on 127.0.0.1 (workers).
    pub api_lb_port: i64,
    /// Whether the balancer's connect-time fast path (a BPF program) may be used.
    pub api_lb_redirect: bool,
    pub schedulable: bool,
    pub network: String,
    /// flannel's settings, read with `network: flannel`.
    pub flannel: RawFlannel,
    pub log_format: String,
    pub ports: RawPorts,
    pub pki: RawPki,
    pub fetch: RawFetch,
    pub supervisor: RawSupervisor,
    pub containerd: RawContainerd,
    pub kubelet: RawKubelet,
    pub join: RawJoin,
    pub dns: RawDns,
    pub backup: RawBackup,
    /// Extra flags appended to a component's command line, keyed by component name.
    pub extra_args: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawPorts {
    pub etcd_client: i64,
    pub etcd_peer: i64,
    pub etcd_metrics: i64,
    pub kubelet: i64,
    pub kubelet_healthz: i64,
    pub kube_proxy_healthz: i64,
    pub kube_proxy_metrics: i64,
    pub controller_manager: i64,
    pub scheduler: i64,
    /// v1.20's insecure health ports, kept on 127.0.0.1 so `kubectl get componentstatuses`
    /// works; ignored on versions that removed them.
    pub controller_manager_insecure: i64,
    pub scheduler_insecure: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawPki {
    pub key_type: String,
    pub ca_validity: String,
    pub leaf_validity: String,
    pub extra_sans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawFetch {
    pub insecure_skip_verify: bool,
    /// Pinned SHA-256 per artifact name; wins over the published checksum.
    pub checksums: BTreeMap<String, String>,
    pub etcd_version: Option<String>,
    pub flannel_version: Option<String>,
    pub concurrency: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawSupervisor {
    pub backoff_max: String,
    pub stable_after: String,
    pub grace_period: String,
    /// Consecutive failed liveness probes before a restart.
    pub liveness_failures: i64,
    pub log_max_bytes: i64,
    pub log_keep: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawContainerd {
    /// Path of an OS-provided containerd; empty means fetch it.
    pub binary: Option<PathBuf>,
    pub cni_bin_dir: Option<PathBuf>,
    /// `None`: detect (true when root lacks CAP_SYS_RESOURCE).
    pub restrict_oom_score_adj: Option<bool>,
    pub sandbox_image: String,
}

/// flannel, the pod network of `network: flannel`. Cluster-wide: a joining node takes it from
/// the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawFlannel {
    /// How pod traffic crosses between nodes: `vxlan` (encapsulated, any network) or `host-gw`
    /// (plain routes, nodes on one L2 segment).
    pub backend: String,
}

impl Default for RawFlannel {
    fn default() -> Self {
        Self {
            backend: crate::model::FlannelBackend::default().name().into(),
        }
    }
}

/// How a worker joins (flags `--join`, `--token-file` override these). Only read by a worker
/// that has not joined yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawJoin {
    /// The join API of a master, e.g. `https://10.0.0.1:9443`.
    pub url: Option<String>,
    /// A file (0600) holding the join token.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawKubelet {
    /// The cgroup (below every controller's root) that holds the node's pods, e.g.
    /// `/kubesup`. kubesup creates it before kubelet starts. Unset: kubelet's default, `/`.
    /// Several kubelets on one machine (test beds) each need their own.
    pub cgroup_root: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawDns {
    pub enabled: bool,
    pub image: String,
    pub replicas: i64,
}

/// Scheduled backups of a master (made on the etcd leader's master only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawBackup {
    /// How often, e.g. `6h`; `off` makes none.
    pub schedule: String,
    /// How many scheduled backups to keep; older ones are removed.
    pub keep: i64,
    /// Where they go. Unset: `<data-dir>/backups`.
    pub dir: Option<PathBuf>,
}

impl Default for RawBackup {
    fn default() -> Self {
        Self {
            schedule: "6h".into(),
            keep: 14,
            dir: None,
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            advertise: None,
            node_name: None,
            kube_version: DEFAULT_KUBE_VERSION.into(),
            mirror: None,
            pod_cidr: "10.2.0.0/16".into(),
            service_cidr: "10.3.0.0/24".into(),
            api_service_ip: None,
            cluster_dns: "10.3.0.10".into(),
            cluster_domain: "cluster.local".into(),
            api_port: 6443,
            join_port: 9443,
            api_lb_port: i64::from(crate::apilb::DEFAULT_PORT),
            api_lb_redirect: true,
            schedulable: false,
            network: "flannel".into(),
            flannel: RawFlannel::default(),
            log_format: "text".into(),
            ports: RawPorts::default(),
            pki: RawPki::default(),
            fetch: RawFetch::default(),
            supervisor: RawSupervisor::default(),
            containerd: RawContainerd::default(),
            kubelet: RawKubelet::default(),
            join: RawJoin::default(),
            dns: RawDns::default(),
            backup: RawBackup::default(),
            extra_args: BTreeMap::new(),
        }
    }
}

impl Default for RawPorts {
    fn default() -> Self {
        Self {
            etcd_client: 2379,
            etcd_peer: 2380,
            etcd_metrics: 2381,
            kubelet: 10250,
            kubelet_healthz: 10248,
            kube_proxy_healthz: 10256,
            kube_proxy_metrics: 10249,
            controller_manager: 10257,
            scheduler: 10259,
            controller_manager_insecure: 10252,
            scheduler_insecure: 10251,
        }
    }
}

impl Default for RawPki {
    fn default() -> Self {
        Self {
            key_type: "ecdsa-p256".into(),
            ca_validity: "10years".into(),
            leaf_validity: "1year".into(),
            extra_sans: Vec::new(),
        }
    }
}

impl Default for RawFetch {
    fn default() -> Self {
        Self {
            insecure_skip_verify: false,
            checksums: BTreeMap::new(),
            etcd_version: None,
            flannel_version: None,
            concurrency: 4,
        }
    }
}

impl Default for RawSupervisor {
    fn default() -> Self {
        Self {
            backoff_max: "30s".into(),
            stable_after: "10s".into(),
            grace_period: "10s".into(),
            liveness_failures: 3,
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 3,
        }
    }
}

impl Default for RawContainerd {
    fn default() -> Self {
        Self {
            binary: None,
            cni_bin_dir: None,
            restrict_oom_score_adj: None,
            sandbox_image: "registry.k8s.io/pause:3.2".into(),
        }
    }
}

impl Default for RawDns {
    fn default() -> Self {
        Self {
            enabled: true,
            image: "registry.k8s.io/coredns/coredns:v1.11.3".into(),
            replicas: 1,
        }
    }
}

/// The values given on the command line or in `KUBESUP_*` variables; `None` means "not
/// given", so the file's value (or the default) stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub advertise: Option<String>,
    pub node_name: Option<String>,
    pub kube_version: Option<String>,
    pub mirror: Option<String>,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub cluster_dns: Option<String>,
    pub cluster_domain: Option<String>,
    pub api_port: Option<i64>,
    pub join_port: Option<i64>,
    pub schedulable: Option<bool>,
    pub network: Option<String>,
    /// `flannel.backend` (`--flannel-backend`, `KUBESUP_FLANNEL_BACKEND`).
    pub flannel_backend: Option<String>,
    pub log_format: Option<String>,
    pub key_type: Option<String>,
    pub extra_sans: Vec<String>,
    pub insecure_skip_verify: Option<bool>,
    pub etcd_version: Option<String>,
}

impl RawConfig {
    /// Parses a config file. Unknown keys are errors (serde `deny_unknown_fields`).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses config text. An empty file is the defaults (serde would call it a missing map).
    pub fn from_yaml(text: &str) -> Result<Self, YamlError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        Ok(serde_yaml_ng::from_str(text)?)
    }

    /// Applies env/flag overrides on top of the file.
    pub fn apply(&mut self, o: Overrides) {
        fn set<T>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut self.data_dir, o.data_dir);
        if o.advertise.is_some() {
            self.advertise = o.advertise;
        }
        if o.node_name.is_some() {
            self.node_name = o.node_name;
        }
        set(&mut self.kube_version, o.kube_version);
        if o.mirror.is_some() {
            self.mirror = o.mirror;
        }
        set(&mut self.pod_cidr, o.pod_cidr);
        set(&mut self.service_cidr, o.service_cidr);
        set(&mut self.cluster_dns, o.cluster_dns);
        set(&mut self.cluster_domain, o.cluster_domain);
        set(&mut self.api_port, o.api_port);
        set(&mut self.join_port, o.join_port);
        set(&mut self.schedulable, o.schedulable);
        set(&mut self.network, o.network);
        set(&mut self.flannel.backend, o.flannel_backend);
        set(&mut self.log_format, o.log_format);
        set(&mut self.pki.key_type, o.key_type);
        self.pki.extra_sans.extend(o.extra_sans);
        set(&mut self.fetch.insecure_skip_verify, o.insecure_skip_verify);
        if o.etcd_version.is_some() {
            self.fetch.etcd_version = o.etcd_version;
        }
    }

    /// The commented default config that `kubesup config default` prints and the packages ship.
    pub fn default_yaml() -> String {
        let body = serde_yaml_ng::to_string(&RawConfig::default()).unwrap_or_default();
        format!(
            "# kubesup configuration. Every key is optional; flags override it, and KUBESUP_*\n\
             # environment variables sit between this file and the flags.\n\
             # Check a file with: kubesup config check FILE\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let mut raw = RawConfig::from_yaml("api-port: 7443\npod-cidr: 10.50.0.0/16\n").unwrap();
        raw.apply(Overrides {
            api_port: Some(8443),
            ..Default::default()
        });
        let c = raw.validate().unwrap();
        assert_eq!(c.api_port, 8443, "flag wins over file");
        assert_eq!(
            c.pod_cidr.to_string(),
            "10.50.0.0/16",
            "file wins over default"
        );
    }

    /// A nested key layers like a top-level one: the flag (or `KUBESUP_*` variable, which clap
    /// folds into the same field) wins over the file, the file over the default.
    #[test]
    fn the_flannel_backend_layers_file_then_flag() {
        assert_eq!(RawConfig::default().flannel.backend, "vxlan");
        let mut raw = RawConfig::from_yaml("flannel: {backend: host-gw}\n").unwrap();
        assert_eq!(raw.flannel.backend, "host-gw", "file over default");
        raw.apply(Overrides::default());
        assert_eq!(raw.flannel.backend, "host-gw", "no flag: the file stays");
        raw.apply(Overrides {
            flannel_backend: Some("vxlan".into()),
            ..Default::default()
        });
        assert_eq!(raw.flannel.backend, "vxlan", "flag over file");
        let e = RawConfig::from_yaml("flannel: {backnd: vxlan}\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `backnd`"), "{e}");
    }

    #[test]
    fn default_yaml_round_trips() {
        let raw = RawConfig::from_yaml(&RawConfig::default_yaml()).unwrap();
        assert_eq!(raw, RawConfig::default());
    }
}
