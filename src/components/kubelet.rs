//! kubelet, configured through KubeletConfiguration, talking to kubesup's own containerd.

use serde_json::json;

use super::{
    Built, Component, ComponentError, GeneratedFile, NodeContext, NodeRole, flag, flags, path_str,
    version, yaml,
};
use crate::paths::KubeconfigUser;
use crate::supervise::{Probe, ProbeSpec};

pub(super) fn build(ctx: &NodeContext<'_>) -> Result<Built, ComponentError> {
    let cfg = ctx.cfg;
    let p = &cfg.paths;
    let pki = p.pki();
    let v = version(ctx);
    let serving = pki.kubelet_server();
    let endpoint = format!("unix://{}", p.containerd_socket().display());
    let resolv = if std::path::Path::new("/run/systemd/resolve/resolv.conf").exists() {
        // systemd-resolved's stub (127.0.0.53) is unreachable from pods.
        "/run/systemd/resolve/resolv.conf"
    } else {
        "/etc/resolv.conf"
    };
    let mut doc = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": ctx.advertise.to_string(),
        "port": cfg.ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": cfg.ports.kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": path_str(&pki.ca().cert)}
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "clusterDNS": [cfg.cluster_dns.to_string()],
        "clusterDomain": cfg.cluster_domain,
        "tlsCertFile": path_str(&serving.cert),
        "tlsPrivateKeyFile": path_str(&serving.key),
        "rotateCertificates": false,
        "failSwapOn": false,
        "resolvConf": resolv,
        // Small disks (and test machines) must not evict everything at once.
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "50Mi"},
    });
    if let Some(root) = &cfg.kubelet.cgroup_root {
        doc["cgroupRoot"] = json!(root);
    }
    if flags::kubelet_runtime_endpoint_in_config(v) {
        doc["containerRuntimeEndpoint"] = json!(endpoint);
    }
    let file = p.component_config(Component::Kubelet);
    let mut args = vec![
        flag("config", path_str(&file)),
        flag(
            "kubeconfig",
            path_str(&p.kubeconfig(KubeconfigUser::Kubelet)),
        ),
        flag("root-dir", path_str(&p.kubelet_root_dir())),
        flag("cert-dir", path_str(&pki.dir().join("kubelet"))),
        flag("node-ip", ctx.advertise),
        flag("hostname-override", &cfg.node_name),
    ];
    if flags::has(Component::Kubelet, "container-runtime", v) {
        args.push(flag("container-runtime", "remote"));
    }
    if !flags::kubelet_runtime_endpoint_in_config(v) {
        args.push(flag("container-runtime-endpoint", &endpoint));
    }
    let probe = ProbeSpec::new(Probe::Http {
        url: format!("http://127.0.0.1:{}/healthz", cfg.ports.kubelet_healthz),
        tls: None,
    });
    let mut deps = vec![Component::Containerd];
    if cfg.network == crate::model::Network::Flannel {
        // The CNI config points at flanneld's subnet file.
        deps.push(Component::Flanneld);
    }
    if matches!(ctx.role, NodeRole::Master { .. }) {
        deps.push(Component::KubeApiserver);
    }
    let files = vec![GeneratedFile {
        path: file,
        contents: yaml(Component::Kubelet, &doc)?,
        mode: 0o644,
    }];
    Ok((args, files, Some(probe), deps))
}
