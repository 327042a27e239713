//! The vocabulary every other module speaks: which processes exist, what role a node has, which
//! pod network it runs, which Kubernetes version, which key algorithm.
//!
//! Owns: [`Component`], [`Role`] and [`NodeRole`], [`Network`], [`FlannelBackend`],
//! [`KubeVersion`], [`KeyType`], and the one table of what a node runs
//! ([`NodeRole::components`]).
//!
//! Invariant: this module imports nothing from the crate, so every module can depend on it and
//! no import cycle can run through it. It holds names and pure facts, never I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The Kubernetes release a new config gets.
pub const DEFAULT_KUBE_VERSION: &str = "v1.37.1";

/// Every process kubesup can supervise on a node. An enum, never strings: a typo in a component
/// name is a compile error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Containerd,
    Kubelet,
    KubeProxy,
    Flanneld,
}

impl Component {
    pub const ALL: [Component; 8] = [
        Self::Etcd,
        Self::KubeApiserver,
        Self::KubeControllerManager,
        Self::KubeScheduler,
        Self::Containerd,
        Self::Kubelet,
        Self::KubeProxy,
        Self::Flanneld,
    ];

    /// The name of the upstream binary, also used for log files and status rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::Containerd => "containerd",
            Self::Kubelet => "kubelet",
            Self::KubeProxy => "kube-proxy",
            Self::Flanneld => "flanneld",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an operator calls a node: the word on the command line, in the unit's name and in the
/// install record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a role means for planning: a master may also run pods (`schedulable`); a worker always
/// does. [`Role`] plus the one setting that changes what a master runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Master { schedulable: bool },
    Worker,
}

impl NodeRole {
    pub fn new(role: Role, schedulable: bool) -> Self {
        match role {
            Role::Master => Self::Master { schedulable },
            Role::Worker => Self::Worker,
        }
    }

    pub fn role(self) -> Role {
        match self {
            Self::Master { .. } => Role::Master,
            Self::Worker => Role::Worker,
        }
    }

    /// Whether kubelet (and so pods, and the pod network) runs on this node.
    pub fn runs_pods(self) -> bool {
        !matches!(self, Self::Master { schedulable: false })
    }

    /// The one table of what a node runs, in dependency order. Fetching, planning, port checks
    /// and status all derive from it.
    ///
    /// flanneld goes where pods run: it is what gives those pods their addresses. A master that
    /// runs no kubelet has no pods to connect.
    pub fn components(self, network: Network) -> Vec<Component> {
        let mut out = Vec::new();
        if let Self::Master { .. } = self {
            out.extend([
                Component::Etcd,
                Component::KubeApiserver,
                Component::KubeControllerManager,
                Component::KubeScheduler,
            ]);
        }
        if self.runs_pods() {
            if network == Network::Flannel {
                out.push(Component::Flanneld);
            }
            out.extend([
                Component::Containerd,
                Component::Kubelet,
                Component::KubeProxy,
            ]);
        }
        out
    }
}

/// The pod network a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    Flannel,
    None,
}

impl Network {
    pub fn name(self) -> &'static str {
        match self {
            Self::Flannel => "flannel",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How flanneld carries pod traffic between nodes (its network config's `Backend.Type`). One
/// setting for the whole cluster: every flanneld reads the same config from etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlannelBackend {
    /// Pod packets wrapped in UDP (a `flannel.1` vxlan device on each node): works across any
    /// IP network between nodes. What kubesup always wrote before the key existed, and what
    /// flannel's own manifests configure.
    #[default]
    Vxlan,
    /// Plain routes to each node's pod subnet via that node's address: no encapsulation and no
    /// vxlan module, but every node must reach every other on one L2 segment.
    HostGw,
}

impl FlannelBackend {
    pub const ALL: [FlannelBackend; 2] = [Self::Vxlan, Self::HostGw];

    /// The name in kubesup's config and in flannel's `Backend.Type` alike.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::HostGw => "host-gw",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for FlannelBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Kubernetes release version, `vMAJOR.MINOR.PATCH`. The one parser: the config, the release
/// table and bundles all go through [`KubeVersion::parse`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl KubeVersion {
    /// `v1.2.3`, as upstream tags its releases. Pre-releases and build metadata are refused:
    /// kubesup pairs every release with tested etcd and CNI versions, and has no row for a
    /// pre-release.
    pub fn parse(s: &str) -> Option<Self> {
        let v = semver::Version::parse(s.strip_prefix('v')?).ok()?;
        if !v.pre.is_empty() || !v.build.is_empty() {
            return None;
        }
        Some(Self {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        })
    }

    /// True when this version is at least `major.minor`.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The algorithm of every key kubesup generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: the default. Key generation takes microseconds instead of
    /// the tens of milliseconds an RSA key costs, and every Kubernetes component since 1.x
    /// accepts it (including the service-account signing key, as ES256).
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256 signatures, for sites whose tooling only understands RSA.
    Rsa2048,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_runs_what_the_table_says_in_dependency_order() {
        use Component::*;
        let master = NodeRole::Master { schedulable: false };
        assert_eq!(
            master.components(Network::Flannel),
            [Etcd, KubeApiserver, KubeControllerManager, KubeScheduler]
        );
        assert_eq!(
            NodeRole::Worker.components(Network::Flannel),
            [Flanneld, Containerd, Kubelet, KubeProxy]
        );
        assert_eq!(
            NodeRole::Worker.components(Network::None),
            [Containerd, Kubelet, KubeProxy]
        );
        let schedulable = NodeRole::Master { schedulable: true };
        assert_eq!(schedulable.components(Network::None).len(), 7);
        assert!(schedulable.runs_pods() && !master.runs_pods());
        assert_eq!(NodeRole::new(Role::Master, true), schedulable);
        assert_eq!(schedulable.role(), Role::Master);
    }

    #[test]
    fn one_version_parser_with_one_set_of_rules() {
        let v = KubeVersion::parse("v1.20.2").unwrap();
        assert_eq!(v.to_string(), "v1.20.2");
        assert!(v.at_least(1, 20) && !v.at_least(1, 21));
        for bad in [
            "1.20.2",
            "v1.20",
            "v1.20.2-rc.0",
            "v1.20.2+meta",
            "latest",
            "",
        ] {
            assert_eq!(KubeVersion::parse(bad), None, "{bad}");
        }
        assert!(KubeVersion::parse(DEFAULT_KUBE_VERSION).is_some());
    }

    #[test]
    fn names_round_trip() {
        for c in Component::ALL {
            assert_eq!(Component::from_name(c.name()), Some(c));
        }
        assert_eq!(KeyType::default().to_string(), "ecdsa-p256");
        assert_eq!(Network::Flannel.to_string(), "flannel");
        for b in FlannelBackend::ALL {
            assert_eq!(FlannelBackend::from_name(b.name()), Some(b));
            // The config file and flannel's Backend.Type spell it the same way.
            assert_eq!(serde_json::to_value(b).unwrap(), b.name());
        }
        assert_eq!(FlannelBackend::default(), FlannelBackend::Vxlan);
    }
}
