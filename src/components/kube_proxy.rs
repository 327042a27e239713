//! kube-proxy in iptables mode, configured through KubeProxyConfiguration.

use serde_json::json;

use super::{
    Built, Component, ComponentError, GeneratedFile, NodeContext, NodeRole, flag, path_str, yaml,
};
use crate::paths::KubeconfigUser;
use crate::supervise::{Probe, ProbeSpec};

pub(super) fn build(ctx: &NodeContext<'_>) -> Result<Built, ComponentError> {
    let cfg = ctx.cfg;
    let p = &cfg.paths;
    let doc = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": path_str(&p.kubeconfig(KubeconfigUser::KubeProxy))},
        "mode": "iptables",
        "clusterCIDR": cfg.pod_cidr.to_string(),
        "hostnameOverride": cfg.node_name,
        "bindAddress": ctx.advertise.to_string(),
        "healthzBindAddress": format!("127.0.0.1:{}", cfg.ports.kube_proxy_healthz),
        "metricsBindAddress": format!("127.0.0.1:{}", cfg.ports.kube_proxy_metrics),
        // Leave the host's conntrack sysctls alone: they are global, often read-only in a
        // network namespace, and the distribution's defaults are fine.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    });
    let file = p.component_config(Component::KubeProxy);
    let args = vec![flag("config", path_str(&file))];
    let probe = ProbeSpec::new(Probe::Http {
        url: format!("http://127.0.0.1:{}/healthz", cfg.ports.kube_proxy_healthz),
        tls: None,
    });
    let deps = match ctx.role {
        NodeRole::Master { .. } => vec![Component::KubeApiserver],
        NodeRole::Worker => Vec::new(),
    };
    let files = vec![GeneratedFile {
        path: file,
        contents: yaml(Component::KubeProxy, &doc)?,
        mode: 0o644,
    }];
    Ok((args, files, Some(probe), deps))
}
