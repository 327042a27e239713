//! kube-controller-manager: leader election, the cluster-signing CA (so CSRs can be signed),
//! the service-account key, the root CA, and node CIDR allocation from the pod CIDR.

use super::{Built, Component, NodeContext, flag, flags, path_str, version};
use crate::paths::KubeconfigUser;
use crate::supervise::{Probe, ProbeSpec, TlsProbe};

pub(super) fn build(ctx: &NodeContext<'_>) -> Built {
    let cfg = ctx.cfg;
    let pki = cfg.paths.pki();
    let v = version(ctx);
    let kubeconfig = path_str(&cfg.paths.kubeconfig(KubeconfigUser::ControllerManager));
    let ca = pki.ca();
    // Give each node a /24 of an IPv4 pod network (a /64 of IPv6), or half the range when it is
    // smaller than that.
    let max = cfg.pod_cidr.max_prefix_len();
    let node_mask = if max == 32 { 24 } else { 64 }.max(cfg.pod_cidr.prefix_len() + 1);
    let mut args = vec![
        flag("kubeconfig", &kubeconfig),
        flag("authentication-kubeconfig", &kubeconfig),
        flag("authorization-kubeconfig", &kubeconfig),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", cfg.ports.controller_manager),
        flag("leader-elect", true),
        flag("cluster-signing-cert-file", path_str(&ca.cert)),
        flag("cluster-signing-key-file", path_str(&ca.key)),
        flag("service-account-private-key-file", path_str(&pki.sa_key())),
        flag("root-ca-file", path_str(&ca.cert)),
        flag("client-ca-file", path_str(&ca.cert)),
        flag(
            "requestheader-client-ca-file",
            path_str(&pki.front_proxy_ca().cert),
        ),
        flag("use-service-account-credentials", true),
        flag("allocate-node-cidrs", true),
        flag("cluster-cidr", cfg.pod_cidr),
        flag("node-cidr-mask-size", node_mask),
        flag("service-cluster-ip-range", cfg.service_cidr),
        flag("controllers", "*,bootstrapsigner,tokencleaner"),
    ];
    let probe = if flags::legacy_health_ports(v)
        && flags::has(Component::KubeControllerManager, "port", v)
    {
        // v1.20's `kubectl get componentstatuses` probes this port: keep it, on loopback only.
        let port = cfg.ports.controller_manager_insecure;
        args.push(flag("port", port));
        args.push(flag("address", "127.0.0.1"));
        Probe::Http {
            url: format!("http://127.0.0.1:{port}/healthz"),
            tls: None,
        }
    } else {
        Probe::Http {
            url: format!("https://127.0.0.1:{}/healthz", cfg.ports.controller_manager),
            // It serves a certificate it makes for itself on loopback; the probe only asks
            // "alive?", never sends credentials, so not verifying that cert loses nothing.
            tls: Some(TlsProbe {
                ca: None,
                client: None,
            }),
        }
    };
    (
        args,
        Vec::new(),
        Some(ProbeSpec::new(probe)),
        vec![Component::KubeApiserver],
    )
}
