//! The settings every master of one cluster must share ([`ClusterSettings`]): read from a
//! master's validated config when it answers a control-plane join, and laid over a joining
//! master's own config layers before they are validated, so that the cluster's CIDRs, DNS,
//! version, network and flannel backend win over whatever the joiner was given.
//!
//! Invariant: a joiner's setting that was given (it differs from kubesup's default) and differs
//! from the cluster's is refused, naming the key, never silently replaced: a master told to run
//! another pod CIDR than its cluster's is a mistake an operator must hear about.

use crate::config::{Config, ConfigError, Problems, RawConfig};

pub use super::wire::ClusterSettings;

impl ClusterSettings {
    /// The settings of the master whose config is `cfg`.
    pub fn of(cfg: &Config) -> Self {
        Self {
            kube_version: cfg.kube_version.to_string(),
            pod_cidr: cfg.pod_cidr.to_string(),
            service_cidr: cfg.service_cidr.to_string(),
            api_service_ip: cfg.api_service_ip.to_string(),
            cluster_dns: cfg.cluster_dns.to_string(),
            cluster_domain: cfg.cluster_domain.clone(),
            network: cfg.network.to_string(),
            api_port: cfg.api_port,
            flannel_backend: cfg.flannel.backend.to_string(),
        }
    }

    /// Lays the cluster's settings over `raw` (a joining or joined master's own layers). A key
    /// whose value in `raw` is not kubesup's default and not the cluster's is a conflict; all
    /// of them are reported at once, and `raw` is left as it was.
    pub fn apply(&self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        let default = RawConfig::default();
        let mut problems = Problems::default();
        let mut check = |key: &str, given: &str, default: &str, cluster: &str| {
            if given != default && !same(given, cluster) {
                problems.push(
                    key,
                    format!(
                        "is {given:?} here but {cluster:?} in the cluster this master joins; \
                         a joining master takes it from the cluster: drop it from the flags or \
                         the config"
                    ),
                );
            }
        };
        check(
            "kube-version",
            &raw.kube_version,
            &default.kube_version,
            &self.kube_version,
        );
        check("pod-cidr", &raw.pod_cidr, &default.pod_cidr, &self.pod_cidr);
        check(
            "service-cidr",
            &raw.service_cidr,
            &default.service_cidr,
            &self.service_cidr,
        );
        if let Some(ip) = &raw.api_service_ip {
            check("api-service-ip", ip, "", &self.api_service_ip);
        }
        check(
            "cluster-dns",
            &raw.cluster_dns,
            &default.cluster_dns,
            &self.cluster_dns,
        );
        check(
            "cluster-domain",
            &raw.cluster_domain,
            &default.cluster_domain,
            &self.cluster_domain,
        );
        check("network", &raw.network, &default.network, &self.network);
        check(
            "api-port",
            &raw.api_port.to_string(),
            &default.api_port.to_string(),
            &self.api_port.to_string(),
        );
        check(
            "flannel.backend",
            &raw.flannel.backend,
            &default.flannel.backend,
            &self.flannel_backend,
        );
        if !problems.0.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        raw.kube_version = self.kube_version.clone();
        raw.pod_cidr = self.pod_cidr.clone();
        raw.service_cidr = self.service_cidr.clone();
        raw.api_service_ip = Some(self.api_service_ip.clone());
        raw.cluster_dns = self.cluster_dns.clone();
        raw.cluster_domain = self.cluster_domain.clone();
        raw.network = self.network.clone();
        raw.api_port = i64::from(self.api_port);
        raw.flannel.backend = self.flannel_backend.clone();
        Ok(())
    }
}

/// Versions compare without their `v` (`1.20.2` is `v1.20.2`); the rest as written, since the
/// cluster's values come from a validated config and print canonically.
fn same(given: &str, cluster: &str) -> bool {
    given.trim_start_matches('v') == cluster.trim_start_matches('v')
}

/// The settings the unit tests of the modules that carry them use (a joined master's record,
/// a backup's manifest).
#[cfg(test)]
impl ClusterSettings {
    pub fn sample() -> Self {
        Self {
            kube_version: "v1.20.2".into(),
            pod_cidr: "10.2.0.0/16".into(),
            service_cidr: "10.3.0.0/24".into(),
            api_service_ip: "10.3.0.1".into(),
            cluster_dns: "10.3.0.10".into(),
            cluster_domain: "cluster.local".into(),
            network: "none".into(),
            api_port: 6443,
            flannel_backend: "vxlan".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterSettings {
        ClusterSettings {
            kube_version: "v1.20.2".into(),
            pod_cidr: "10.50.0.0/16".into(),
            service_cidr: "10.51.0.0/24".into(),
            api_service_ip: "10.51.0.1".into(),
            cluster_dns: "10.51.0.10".into(),
            cluster_domain: "cluster.local".into(),
            network: "none".into(),
            api_port: 6443,
            flannel_backend: "host-gw".into(),
        }
    }

    #[test]
    fn defaults_take_the_cluster_settings() {
        let mut raw = RawConfig::default();
        cluster().apply(&mut raw).unwrap();
        assert_eq!(raw.pod_cidr, "10.50.0.0/16");
        assert_eq!(raw.network, "none");
        assert_eq!(raw.api_service_ip.as_deref(), Some("10.51.0.1"));
        assert_eq!(raw.kube_version, "v1.20.2");
        assert_eq!(raw.flannel.backend, "host-gw");
    }

    #[test]
    fn a_given_setting_that_agrees_is_fine_and_one_that_conflicts_is_named() {
        let mut raw = RawConfig {
            pod_cidr: "10.50.0.0/16".into(),
            kube_version: "1.20.2".into(),
            ..RawConfig::default()
        };
        cluster().apply(&mut raw).unwrap();

        let mut raw = RawConfig {
            pod_cidr: "10.9.0.0/16".into(),
            cluster_domain: "corp.local".into(),
            ..RawConfig::default()
        };
        let before = raw.clone();
        let e = cluster().apply(&mut raw).unwrap_err().to_string();
        assert!(e.contains("pod-cidr"), "{e}");
        assert!(e.contains("cluster-domain"), "{e}");
        assert!(!e.contains("network"), "{e}");
        assert_eq!(raw, before, "nothing applied when a key conflicts");
    }

    /// The flannel backend is a cluster setting like the others: the same value given on the
    /// joiner is fine, another one is refused by its key, and the default takes the cluster's.
    #[test]
    fn a_joiner_takes_the_clusters_flannel_backend_or_is_refused() {
        let mut raw = RawConfig::default();
        raw.flannel.backend = "host-gw".into();
        cluster().apply(&mut raw).unwrap();
        assert_eq!(raw.validate().unwrap().flannel.backend.name(), "host-gw");

        let mut raw = RawConfig::default();
        let mut vxlan_cluster = cluster();
        vxlan_cluster.flannel_backend = "vxlan".into();
        raw.flannel.backend = "host-gw".into();
        let before = raw.clone();
        let e = vxlan_cluster.apply(&mut raw).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid config: flannel.backend: is \"host-gw\" here but \"vxlan\" in the cluster \
             this master joins; a joining master takes it from the cluster: drop it from the \
             flags or the config"
        );
        assert_eq!(raw, before);
    }

    /// A record (cluster.json, a backup's manifest) or a join answer from a kubesup that
    /// predates the key reads as vxlan, what that kubesup wrote into etcd.
    #[test]
    fn settings_without_a_flannel_backend_read_as_vxlan() {
        let mut v = serde_json::to_value(ClusterSettings::sample()).unwrap();
        v.as_object_mut().unwrap().remove("flannel_backend");
        let old: ClusterSettings = serde_json::from_value(v).unwrap();
        assert_eq!(old.flannel_backend, "vxlan");
    }
}
