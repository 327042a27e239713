//! The one configuration of a node: file, then `KUBESUP_*` environment, then flags.
//!
//! Owns: the YAML file format (`deny_unknown_fields` everywhere, so a typo is an error rather
//! than a silently ignored setting), the defaults, and [`RawConfig::validate`], which turns raw
//! strings into typed values and reports **every** problem at once, one per line, each naming
//! the field and the fix.
//!
//! Invariant: nothing in kubesup reads a raw value. Everything downstream takes a validated
//! [`Config`], so a bad config fails before anything is written or started.
//!
//! Why YAML: every file an operator of this tool already edits is YAML (kubeconfigs, the
//! KubeletConfiguration kubesup writes, k3s' and k0s' own configs), and `kubectl`-style tooling
//! reads it. The environment layer comes from clap's `env` support on each flag, which gives
//! flag > env; applying the flag layer over the file gives the rest of the order.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Component, DEFAULT_KUBE_VERSION, KeyType, KubeVersion, Network};
use crate::paths::Paths;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/kubesup";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kubesup/config.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(Problems),
}

impl crate::errors::Exit for ConfigError {
    fn exit_code(&self) -> u8 {
        crate::errors::EXIT_INVALID
    }

    /// Problems speak for themselves, one line each (`invalid config: FIELD: what to do`).
    fn render(&self) -> String {
        match self {
            Self::Invalid(p) => p.to_string(),
            other => format!("error: {}", crate::errors::chain(other)),
        }
    }
}

/// Every validation problem found, one per line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config key (`service-cidr`, `ports.etcd-client`), as written in the file.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "invalid config: {}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// A node's config: the file (the one named, or [`DEFAULT_CONFIG_FILE`] when it exists), then
/// `KUBESUP_*` environment and flags (`overrides`), validated as a whole.
pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
    load_raw(file, overrides)?.validate()
}

/// The same layers, not yet validated: a worker validates again once the master's cluster
/// settings are laid over them.
pub fn load_raw(file: Option<&Path>, overrides: Overrides) -> Result<RawConfig, ConfigError> {
    let default = Path::new(DEFAULT_CONFIG_FILE);
    let file = file.or_else(|| default.exists().then_some(default));
    let mut raw = match file {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    raw.apply(overrides);
    Ok(raw)
}

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
    pub schedulable: bool,
    pub network: String,
    pub log_format: String,
    pub ports: RawPorts,
    pub pki: RawPki,
    pub fetch: RawFetch,
    pub supervisor: RawSupervisor,
    pub containerd: RawContainerd,
    pub kubelet: RawKubelet,
    pub join: RawJoin,
    pub dns: RawDns,
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
            schedulable: false,
            network: "flannel".into(),
            log_format: "text".into(),
            ports: RawPorts::default(),
            pki: RawPki::default(),
            fetch: RawFetch::default(),
            supervisor: RawSupervisor::default(),
            containerd: RawContainerd::default(),
            kubelet: RawKubelet::default(),
            join: RawJoin::default(),
            dns: RawDns::default(),
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
        Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
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
        set(&mut self.log_format, o.log_format);
        set(&mut self.pki.key_type, o.key_type);
        self.pki.extra_sans.extend(o.extra_sans);
        set(&mut self.fetch.insecure_skip_verify, o.insecure_skip_verify);
        if o.etcd_version.is_some() {
            self.fetch.etcd_version = o.etcd_version;
        }
    }

    /// Checks everything and returns the typed config, or every problem at once.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();

        if !self.data_dir.is_absolute() {
            p.push(
                "data-dir",
                format!(
                    "{:?} is relative; use an absolute path such as {DEFAULT_DATA_DIR}",
                    self.data_dir
                ),
            );
        }

        let advertise = self
            .advertise
            .as_deref()
            .and_then(|s| match s.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                    p.push(
                        "advertise",
                        format!("{ip} cannot be advertised; give this node's own unicast address"),
                    );
                    None
                }
                Ok(ip) => Some(ip),
                Err(_) => {
                    p.push(
                        "advertise",
                        format!(
                            "{s:?} is not an IP address; give this node's address, e.g. 10.0.0.1"
                        ),
                    );
                    None
                }
            });

        let node_name = match &self.node_name {
            Some(n) => n.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default()
                .to_lowercase(),
        };
        if !is_dns_subdomain(&node_name) {
            p.push(
                "node-name",
                format!("{node_name:?} is not a lowercase DNS name (a-z, 0-9, '-', '.'; at most 253 characters); set --node-name"),
            );
        }

        let kube_version = match KubeVersion::parse(&self.kube_version) {
            Some(v) => Some(v),
            None => {
                p.push(
                    "kube-version",
                    format!(
                        "{:?} is not of the form vMAJOR.MINOR.PATCH, e.g. {DEFAULT_KUBE_VERSION}",
                        self.kube_version
                    ),
                );
                None
            }
        };

        if let Some(m) = &self.mirror
            && !(m.starts_with("http://")
                || m.starts_with("https://")
                || m.starts_with("file:///")
                || m.starts_with('/'))
        {
            p.push(
                "mirror",
                format!("{m:?} must be an http(s):// or file:// URL, or an absolute directory"),
            );
        }

        let pod_cidr = parse_cidr(&mut p, "pod-cidr", &self.pod_cidr);
        let service_cidr = parse_cidr(&mut p, "service-cidr", &self.service_cidr);
        let cluster_dns = parse_ip(&mut p, "cluster-dns", &self.cluster_dns);

        let mut api_service_ip = None;
        if let Some(svc) = service_cidr {
            match first_host(svc) {
                Some(first) => {
                    api_service_ip = Some(first);
                    if let Some(given) = &self.api_service_ip {
                        match given.parse::<IpAddr>() {
                            Ok(ip) if ip == first => {}
                            Ok(ip) => p.push(
                                "api-service-ip",
                                format!("{ip} is not the first address of service-cidr {svc}; kube-apiserver always takes {first}: remove the setting or set it to {first}"),
                            ),
                            Err(_) => p.push(
                                "api-service-ip",
                                format!("{given:?} is not an IP address; remove it (it is derived from service-cidr)"),
                            ),
                        }
                    }
                }
                None => p.push(
                    "service-cidr",
                    format!("{svc} is too small; use at most a /28 (IPv4) so it holds the API and DNS addresses"),
                ),
            }
            if let Some(dns) = cluster_dns {
                if !svc.contains(&dns) {
                    p.push(
                        "cluster-dns",
                        format!("{dns} is outside service-cidr {svc}; pick an address inside it, e.g. the 10th"),
                    );
                } else if Some(dns) == api_service_ip {
                    p.push(
                        "cluster-dns",
                        format!("{dns} is the API service address (first of {svc}); pick another, e.g. the 10th"),
                    );
                } else if dns == svc.network() || dns == svc.broadcast() {
                    p.push(
                        "cluster-dns",
                        format!("{dns} is the network or broadcast address of {svc}; pick a host address"),
                    );
                }
            }
        }
        if let (Some(pod), Some(svc)) = (pod_cidr, service_cidr)
            && (pod.contains(&svc.network()) || svc.contains(&pod.network()))
        {
            p.push(
                "pod-cidr",
                format!("{pod} overlaps service-cidr {svc}; choose disjoint ranges"),
            );
        }

        if !is_dns_subdomain(&self.cluster_domain) {
            p.push(
                "cluster-domain",
                format!(
                    "{:?} is not a DNS domain; use e.g. cluster.local",
                    self.cluster_domain
                ),
            );
        }

        let named_ports: [(&str, i64); 13] = [
            ("api-port", self.api_port),
            ("join-port", self.join_port),
            ("ports.etcd-client", self.ports.etcd_client),
            ("ports.etcd-peer", self.ports.etcd_peer),
            ("ports.etcd-metrics", self.ports.etcd_metrics),
            ("ports.kubelet", self.ports.kubelet),
            ("ports.kubelet-healthz", self.ports.kubelet_healthz),
            ("ports.kube-proxy-healthz", self.ports.kube_proxy_healthz),
            ("ports.kube-proxy-metrics", self.ports.kube_proxy_metrics),
            ("ports.controller-manager", self.ports.controller_manager),
            ("ports.scheduler", self.ports.scheduler),
            (
                "ports.controller-manager-insecure",
                self.ports.controller_manager_insecure,
            ),
            ("ports.scheduler-insecure", self.ports.scheduler_insecure),
        ];
        let mut seen: BTreeMap<i64, &str> = BTreeMap::new();
        for (name, port) in named_ports {
            if !(1..=65535).contains(&port) {
                p.push(name, format!("{port} is not a port; use 1-65535"));
            } else if let Some(other) = seen.insert(port, name) {
                p.push(
                    name,
                    format!("{port} is already used by {other}; every port must be distinct"),
                );
            }
        }

        let network = match self.network.as_str() {
            "flannel" => Some(Network::Flannel),
            "none" => Some(Network::None),
            other => {
                p.push(
                    "network",
                    format!("{other:?} is unknown; use flannel or none"),
                );
                None
            }
        };
        let log_format = match self.log_format.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                p.push(
                    "log-format",
                    format!("{other:?} is unknown; use text or json"),
                );
                None
            }
        };
        let key_type = match self.pki.key_type.as_str() {
            "ecdsa-p256" => Some(KeyType::EcdsaP256),
            "rsa-2048" => Some(KeyType::Rsa2048),
            other => {
                p.push(
                    "pki.key-type",
                    format!("{other:?} is unknown; use ecdsa-p256 or rsa-2048"),
                );
                None
            }
        };
        let ca_validity = parse_duration(&mut p, "pki.ca-validity", &self.pki.ca_validity);
        let leaf_validity = parse_duration(&mut p, "pki.leaf-validity", &self.pki.leaf_validity);
        if ca_validity.is_some_and(|v| v < crate::pki::MIN_CA_VALIDITY) {
            p.push(
                "pki.ca-validity",
                "must be at least a day (10years is the default)",
            );
        }
        if leaf_validity.is_some_and(|v| v < crate::pki::MIN_LEAF_VALIDITY) {
            p.push(
                "pki.leaf-validity",
                "must be at least 2m, so components have time to restart onto renewed certificates (1year is the default)",
            );
        }
        if let (Some(ca), Some(leaf)) = (ca_validity, leaf_validity)
            && leaf > ca
        {
            p.push(
                "pki.leaf-validity",
                "is longer than pki.ca-validity; a leaf cannot outlive its CA",
            );
        }
        for san in &self.pki.extra_sans {
            if san.parse::<IpAddr>().is_err() && !is_dns_subdomain(&san.to_lowercase()) {
                p.push(
                    "pki.extra-sans",
                    format!("{san:?} is neither an IP address nor a DNS name"),
                );
            }
        }

        for (name, sum) in &self.fetch.checksums {
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.push(
                    format!("fetch.checksums.{name}"),
                    "is not a SHA-256 (64 hex digits)",
                );
            }
        }
        for (field, v) in [
            ("fetch.etcd-version", &self.fetch.etcd_version),
            ("fetch.flannel-version", &self.fetch.flannel_version),
        ] {
            if let Some(v) = v
                && KubeVersion::parse(v).is_none()
            {
                p.push(
                    field,
                    format!("{v:?} is not of the form vMAJOR.MINOR.PATCH"),
                );
            }
        }
        if !(1..=64).contains(&self.fetch.concurrency) {
            p.push("fetch.concurrency", "must be 1-64");
        }

        let backoff_max = parse_duration(
            &mut p,
            "supervisor.backoff-max",
            &self.supervisor.backoff_max,
        );
        let stable_after = parse_duration(
            &mut p,
            "supervisor.stable-after",
            &self.supervisor.stable_after,
        );
        let grace_period = parse_duration(
            &mut p,
            "supervisor.grace-period",
            &self.supervisor.grace_period,
        );
        if !(1..=100).contains(&self.supervisor.liveness_failures) {
            p.push("supervisor.liveness-failures", "must be 1-100");
        }
        if self.supervisor.log_max_bytes < 4096 {
            p.push("supervisor.log-max-bytes", "must be at least 4096");
        }
        if !(0..=100).contains(&self.supervisor.log_keep) {
            p.push("supervisor.log-keep", "must be 0-100");
        }
        if !(0..=100).contains(&self.dns.replicas) {
            p.push("dns.replicas", "must be 0-100");
        }
        for name in self.extra_args.keys() {
            if Component::from_name(name).is_none() {
                let names: Vec<_> = Component::ALL.iter().map(|c| c.name()).collect();
                p.push(
                    format!("extra-args.{name}"),
                    format!("unknown component; use one of {}", names.join(", ")),
                );
            }
        }

        if let Some(url) = &self.join.url {
            let ok = url
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                p.push(
                    "join.url",
                    format!("{url:?} is not an https:// URL; use e.g. https://10.0.0.1:9443"),
                );
            }
        }
        if let Some(root) = &self.kubelet.cgroup_root {
            let clean = root.starts_with('/')
                && root.len() > 1
                && root[1..].split('/').all(|s| {
                    !s.is_empty()
                        && s != "."
                        && s != ".."
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                });
            if !clean {
                p.push(
                    "kubelet.cgroup-root",
                    format!("{root:?} is not a cgroup path; use an absolute path like /kubesup"),
                );
            }
        }

        if !p.0.is_empty() {
            return Err(ConfigError::Invalid(p));
        }
        // Every `None` below has pushed a problem above, so these cannot fail; the `ok_or` keeps
        // that reasoning local instead of an unwrap.
        let missing = || ConfigError::Invalid(Problems::default());
        Ok(Config {
            paths: Paths::new(&self.data_dir),
            data_dir: self.data_dir.clone(),
            advertise,
            node_name,
            kube_version: kube_version.ok_or_else(missing)?,
            mirror: self.mirror.clone(),
            pod_cidr: pod_cidr.ok_or_else(missing)?,
            service_cidr: service_cidr.ok_or_else(missing)?,
            api_service_ip: api_service_ip.ok_or_else(missing)?,
            cluster_dns: cluster_dns.ok_or_else(missing)?,
            cluster_domain: self.cluster_domain.clone(),
            api_port: self.api_port as u16,
            join_port: self.join_port as u16,
            schedulable: self.schedulable,
            network: network.ok_or_else(missing)?,
            log_format: log_format.ok_or_else(missing)?,
            ports: Ports {
                etcd_client: self.ports.etcd_client as u16,
                etcd_peer: self.ports.etcd_peer as u16,
                etcd_metrics: self.ports.etcd_metrics as u16,
                kubelet: self.ports.kubelet as u16,
                kubelet_healthz: self.ports.kubelet_healthz as u16,
                kube_proxy_healthz: self.ports.kube_proxy_healthz as u16,
                kube_proxy_metrics: self.ports.kube_proxy_metrics as u16,
                controller_manager: self.ports.controller_manager as u16,
                scheduler: self.ports.scheduler as u16,
                controller_manager_insecure: self.ports.controller_manager_insecure as u16,
                scheduler_insecure: self.ports.scheduler_insecure as u16,
            },
            pki: PkiSettings {
                key_type: key_type.ok_or_else(missing)?,
                ca_validity: ca_validity.ok_or_else(missing)?,
                leaf_validity: leaf_validity.ok_or_else(missing)?,
                extra_sans: self.pki.extra_sans.clone(),
            },
            fetch: FetchSettings {
                insecure_skip_verify: self.fetch.insecure_skip_verify,
                checksums: self.fetch.checksums.clone(),
                etcd_version: self.fetch.etcd_version.clone(),
                flannel_version: self.fetch.flannel_version.clone(),
                concurrency: self.fetch.concurrency as usize,
            },
            supervisor: SupervisorSettings {
                backoff_max: backoff_max.ok_or_else(missing)?,
                stable_after: stable_after.ok_or_else(missing)?,
                grace_period: grace_period.ok_or_else(missing)?,
                liveness_failures: self.supervisor.liveness_failures as u32,
                log_max_bytes: self.supervisor.log_max_bytes as u64,
                log_keep: self.supervisor.log_keep as u32,
            },
            containerd: ContainerdSettings {
                binary: self.containerd.binary.clone(),
                cni_bin_dir: self.containerd.cni_bin_dir.clone(),
                restrict_oom_score_adj: self.containerd.restrict_oom_score_adj,
                sandbox_image: self.containerd.sandbox_image.clone(),
            },
            kubelet: KubeletSettings {
                cgroup_root: self.kubelet.cgroup_root.clone(),
            },
            dns: DnsSettings {
                enabled: self.dns.enabled,
                image: self.dns.image.clone(),
                replicas: self.dns.replicas as u32,
            },
            extra_args: self
                .extra_args
                .iter()
                .filter_map(|(k, v)| Component::from_name(k).map(|c| (c, v.clone())))
                .collect(),
        })
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
    pub schedulable: bool,
    pub network: Network,
    pub log_format: LogFormat,
    pub ports: Ports,
    pub pki: PkiSettings,
    pub fetch: FetchSettings,
    pub supervisor: SupervisorSettings,
    pub containerd: ContainerdSettings,
    pub kubelet: KubeletSettings,
    pub dns: DnsSettings,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn parse_cidr(p: &mut Problems, field: &str, s: &str) -> Option<IpNet> {
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => {
            p.push(
                field,
                format!(
                    "{s} has host bits set; use the network address {}",
                    net.trunc()
                ),
            );
            None
        }
        Ok(net) => Some(net),
        Err(_) => {
            p.push(
                field,
                format!("{s:?} is not a CIDR; write it as e.g. 10.2.0.0/16"),
            );
            None
        }
    }
}

fn parse_ip(p: &mut Problems, field: &str, s: &str) -> Option<IpAddr> {
    match s.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            p.push(field, format!("{s:?} is not an IP address"));
            None
        }
    }
}

fn parse_duration(p: &mut Problems, field: &str, s: &str) -> Option<Duration> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            p.push(field, "must be longer than zero");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.push(
                field,
                format!("{s:?} is not a duration ({e}); write e.g. 30s, 10m, 1year"),
            );
            None
        }
    }
}

/// First usable address of a network: what kube-apiserver gives the `kubernetes` Service.
fn first_host(net: IpNet) -> Option<IpAddr> {
    // The range must hold at least the API address, the DNS address and more; refuse
    // ranges under 16 addresses (IPv4 /28, IPv6 /124).
    if net.max_prefix_len() - net.prefix_len() < 4 {
        return None;
    }
    net.hosts().next()
}

/// RFC 1123 subdomain, as Kubernetes checks node names.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let raw = match RawConfig::from_yaml(yaml) {
            Ok(r) => r,
            Err(e) => return vec![format!("parse: {e}")],
        };
        match raw.validate() {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(p)) => p.to_string().lines().map(String::from).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.api_service_ip, "10.3.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.cluster_dns, "10.3.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(c.api_port, 6443);
        assert_eq!(c.join_port, 9443);
        assert_eq!(c.network, Network::Flannel);
    }

    /// The table of bad configs: each must be refused with a message naming the field and the
    /// fix. This is the documentation of what `validate` checks.
    #[test]
    fn bad_configs_are_refused_with_a_named_field() {
        let table: &[(&str, &str)] = &[
            (
                "join: {url: http://10.0.0.1:9443}",
                "join.url: \"http://10.0.0.1:9443\" is not an https:// URL",
            ),
            (
                "kubelet: {cgroup-root: kubesup}",
                "kubelet.cgroup-root: \"kubesup\" is not a cgroup path",
            ),
            (
                "kubelet: {cgroup-root: /a/../b}",
                "kubelet.cgroup-root: \"/a/../b\" is not a cgroup path",
            ),
            (
                "service-cidr: 10.3.0.0/30",
                "service-cidr: 10.3.0.0/30 is too small",
            ),
            (
                "service-cidr: 10.3.0.5/24",
                "has host bits set; use the network address 10.3.0.0/24",
            ),
            (
                "service-cidr: banana",
                "service-cidr: \"banana\" is not a CIDR",
            ),
            (
                "pod-cidr: 10.0.0.0/8",
                "pod-cidr: 10.0.0.0/8 overlaps service-cidr 10.3.0.0/24",
            ),
            (
                "cluster-dns: 10.9.0.10",
                "cluster-dns: 10.9.0.10 is outside service-cidr",
            ),
            (
                "cluster-dns: 10.3.0.1",
                "cluster-dns: 10.3.0.1 is the API service address",
            ),
            (
                "cluster-dns: ten",
                "cluster-dns: \"ten\" is not an IP address",
            ),
            (
                "api-service-ip: 10.3.0.2",
                "api-service-ip: 10.3.0.2 is not the first address",
            ),
            (
                "advertise: 10.0.0.300",
                "advertise: \"10.0.0.300\" is not an IP address",
            ),
            (
                "advertise: 0.0.0.0",
                "advertise: 0.0.0.0 cannot be advertised",
            ),
            ("api-port: 0", "api-port: 0 is not a port; use 1-65535"),
            ("join-port: 70000", "join-port: 70000 is not a port"),
            (
                "join-port: 6443",
                "join-port: 6443 is already used by api-port",
            ),
            (
                "ports: {kubelet: 2379}",
                "ports.kubelet: 2379 is already used by ports.etcd-client",
            ),
            (
                "kube-version: 1.20.2",
                "kube-version: \"1.20.2\" is not of the form vMAJOR.MINOR.PATCH",
            ),
            (
                "kube-version: v1.20",
                "kube-version: \"v1.20\" is not of the form",
            ),
            (
                "data-dir: var/lib/kubesup",
                "data-dir: \"var/lib/kubesup\" is relative",
            ),
            (
                "network: calico",
                "network: \"calico\" is unknown; use flannel or none",
            ),
            ("log-format: xml", "log-format: \"xml\" is unknown"),
            ("pki: {key-type: dsa}", "pki.key-type: \"dsa\" is unknown"),
            (
                "pki: {leaf-validity: 20years}",
                "pki.leaf-validity: is longer than pki.ca-validity",
            ),
            (
                "pki: {ca-validity: forever}",
                "pki.ca-validity: \"forever\" is not a duration",
            ),
            (
                "pki: {leaf-validity: 30s}",
                "pki.leaf-validity: must be at least 2m",
            ),
            (
                "node-name: Node_1",
                "node-name: \"Node_1\" is not a lowercase DNS name",
            ),
            (
                "cluster-domain: \"-bad\"",
                "cluster-domain: \"-bad\" is not a DNS domain",
            ),
            (
                "mirror: ftp://x",
                "mirror: \"ftp://x\" must be an http(s)://",
            ),
            (
                "fetch: {checksums: {kubelet: abc}}",
                "fetch.checksums.kubelet: is not a SHA-256",
            ),
            (
                "extra-args: {kubelett: [--v=2]}",
                "extra-args.kubelett: unknown component",
            ),
            (
                "supervisor: {grace-period: 0s}",
                "supervisor.grace-period: must be longer than zero",
            ),
            ("bogus-key: 1", "unknown field `bogus-key`"),
            ("ports: {etcd-clinet: 1}", "unknown field `etcd-clinet`"),
        ];
        for (yaml, expected) in table {
            let got = problems(yaml);
            assert!(
                got.iter().any(|l| l.contains(expected)),
                "config {yaml:?}: expected a line containing {expected:?}, got {got:#?}"
            );
        }
        assert!(table.len() >= 15);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let got = problems("api-port: 0\nservice-cidr: nope\nkube-version: x\ndata-dir: rel\n");
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got.iter().all(|l| l.starts_with("invalid config: ")));
    }

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

    #[test]
    fn default_yaml_round_trips() {
        let raw = RawConfig::from_yaml(&RawConfig::default_yaml()).unwrap();
        assert_eq!(raw, RawConfig::default());
    }

    #[test]
    fn versions_compare() {
        let v = KubeVersion::parse("v1.20.2").unwrap();
        assert!(v.at_least(1, 20) && !v.at_least(1, 24));
        assert_eq!(v.to_string(), "v1.20.2");
        assert!(KubeVersion::parse("v1.20.2-rc.1").is_none());
    }
}
