//! One file per component: how to build its argv and config files for a Kubernetes version, and
//! how to tell that it is ready.
//!
//! Components are an enum, never strings: a typo in a component name is a compile error.

use std::fmt;

/// Every process kubesup can supervise on a node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
