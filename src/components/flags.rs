//! Flags that Kubernetes removed, by the minor version that removed them. Every builder asks
//! [`has`] before emitting one of these, and the tests check that no plan for a version carries
//! a flag that version no longer has (a removed flag makes the component refuse to start).
//!
//! Prefer versioned config files (KubeletConfiguration, KubeProxyConfiguration,
//! KubeSchedulerConfiguration) wherever a component has one: their fields move more slowly
//! than flags.

use super::Component;
use crate::model::KubeVersion;

/// `(component, flag, major, minor)`: the flag is gone from `major.minor` on.
pub const REMOVED: &[(Component, &str, u64, u64)] = &[
    // The insecure serving ports went in 1.24 (KEP-2591 for kube-apiserver; the
    // controller-manager and scheduler deprecated `--port`/`--address` in 1.19-1.20).
    (Component::KubeApiserver, "insecure-port", 1, 24),
    (Component::KubeApiserver, "insecure-bind-address", 1, 24),
    (Component::KubeControllerManager, "port", 1, 24),
    (Component::KubeControllerManager, "address", 1, 24),
    (Component::KubeScheduler, "port", 1, 24),
    (Component::KubeScheduler, "address", 1, 24),
    // dockershim's network flags went with it in 1.24. kubesup never passes them, even where
    // they exist: with `--container-runtime=remote` kubelet ignores them (v1.20's help: "This
    // docker-specific flag only works when container-runtime is set to docker"). The CNI bin
    // dir that matters is containerd's CRI `bin_dir` (components/containerd.rs).
    (Component::Kubelet, "network-plugin", 1, 24),
    (Component::Kubelet, "cni-bin-dir", 1, 24),
    (Component::Kubelet, "cni-conf-dir", 1, 24),
    (Component::Kubelet, "cni-cache-dir", 1, 24),
    // Only remote runtimes are left, so the selector went in 1.27.
    (Component::Kubelet, "container-runtime", 1, 27),
];

/// Whether `component` still has `--flag` in `version`.
pub fn has(component: Component, flag: &str, version: &KubeVersion) -> bool {
    !REMOVED.iter().any(|(c, f, major, minor)| {
        *c == component && *f == flag && version.at_least(*major, *minor)
    })
}

/// The KubeSchedulerConfiguration API version a release reads.
pub fn scheduler_config_api(version: &KubeVersion) -> &'static str {
    if version.at_least(1, 25) {
        "kubescheduler.config.k8s.io/v1"
    } else if version.at_least(1, 23) {
        "kubescheduler.config.k8s.io/v1beta3"
    } else if version.at_least(1, 22) {
        "kubescheduler.config.k8s.io/v1beta2"
    } else {
        "kubescheduler.config.k8s.io/v1beta1"
    }
}

/// The legacy insecure health ports exist (and `kubectl get componentstatuses` probes them).
pub fn legacy_health_ports(version: &KubeVersion) -> bool {
    !version.at_least(1, 24)
}

/// KubeletConfiguration carries `containerRuntimeEndpoint` from 1.27.
pub fn kubelet_runtime_endpoint_in_config(version: &KubeVersion) -> bool {
    version.at_least(1, 27)
}
