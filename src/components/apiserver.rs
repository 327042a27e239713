//! kube-apiserver: secure port only, Node and RBAC authorization, service-account issuer and
//! keys, etcd over mutual TLS, and the front-proxy (aggregation) flags.

use super::{Built, Component, NodeContext, flag, flags, path_str, version};
use crate::supervise::{Probe, ProbeSpec, TlsProbe};

pub(super) fn build(ctx: &NodeContext<'_>) -> Built {
    let cfg = ctx.cfg;
    let pki = cfg.paths.pki();
    let v = version(ctx);
    let (ca, fp_ca) = (pki.ca(), pki.front_proxy_ca());
    let (serving, kubelet_client, etcd_client, fp_client) = (
        pki.apiserver(),
        pki.apiserver_kubelet_client(),
        pki.apiserver_etcd_client(),
        pki.front_proxy_client(),
    );
    let mut args = vec![
        flag("advertise-address", ctx.advertise),
        // Other nodes and pods (through the `kubernetes` Service) must reach it.
        flag("bind-address", "0.0.0.0"),
        flag("secure-port", cfg.api_port),
        flag(
            "etcd-servers",
            format!("https://127.0.0.1:{}", cfg.ports.etcd_client),
        ),
        flag("etcd-cafile", path_str(&pki.etcd_ca().cert)),
        flag("etcd-certfile", path_str(&etcd_client.cert)),
        flag("etcd-keyfile", path_str(&etcd_client.key)),
        flag("client-ca-file", path_str(&ca.cert)),
        flag("tls-cert-file", path_str(&serving.cert)),
        flag("tls-private-key-file", path_str(&serving.key)),
        flag("kubelet-client-certificate", path_str(&kubelet_client.cert)),
        flag("kubelet-client-key", path_str(&kubelet_client.key)),
        flag("kubelet-certificate-authority", path_str(&ca.cert)),
        flag("kubelet-preferred-address-types", "InternalIP,Hostname"),
        flag("service-cluster-ip-range", cfg.service_cidr),
        // Required from v1.20 (TESTBED.md): issuer plus the signing and verifying keys.
        flag(
            "service-account-issuer",
            format!("https://kubernetes.default.svc.{}", cfg.cluster_domain),
        ),
        flag("service-account-key-file", path_str(&pki.sa_pub())),
        flag("service-account-signing-key-file", path_str(&pki.sa_key())),
        flag("authorization-mode", "Node,RBAC"),
        flag("enable-admission-plugins", "NodeRestriction"),
        flag("allow-privileged", true),
        flag("requestheader-client-ca-file", path_str(&fp_ca.cert)),
        flag("requestheader-allowed-names", "front-proxy-client"),
        flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        flag("requestheader-group-headers", "X-Remote-Group"),
        flag("requestheader-username-headers", "X-Remote-User"),
        flag("proxy-client-cert-file", path_str(&fp_client.cert)),
        flag("proxy-client-key-file", path_str(&fp_client.key)),
    ];
    if flags::has(Component::KubeApiserver, "insecure-port", v) {
        // Before 1.24 the unauthenticated port 8080 is on by default: turn it off.
        args.push(flag("insecure-port", 0));
    }
    let admin = pki.admin();
    let probe = ProbeSpec::new(Probe::Http {
        url: format!("https://127.0.0.1:{}/readyz", cfg.api_port),
        tls: Some(TlsProbe {
            ca: Some(ca.cert),
            client: Some((admin.cert, admin.key)),
        }),
    });
    (args, Vec::new(), Some(probe), vec![Component::Etcd])
}
