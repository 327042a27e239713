//! flanneld with the etcd backend: it leases this node a subnet of the pod network from the
//! config kubesup wrote into etcd, and writes it to its subnet file for the CNI plugin.

use super::{Built, Component, NodeContext, NodeRole, flag, path_str};

pub(super) fn build(ctx: &NodeContext<'_>) -> Built {
    let cfg = ctx.cfg;
    let pki = cfg.paths.pki();
    let client = pki.flannel_etcd_client();
    let subnet_file = cfg.paths.flannel_subnet_file();
    let args = vec![
        flag("etcd-endpoints", ctx.etcd_servers.join(",")),
        flag("etcd-cafile", path_str(&pki.etcd_ca().cert)),
        flag("etcd-certfile", path_str(&client.cert)),
        flag("etcd-keyfile", path_str(&client.key)),
        flag("etcd-prefix", "/coreos.com/network"),
        flag("iface", ctx.advertise),
        flag("ip-masq", true),
        flag("subnet-file", path_str(&subnet_file)),
    ];
    let deps = match ctx.role {
        NodeRole::Master { .. } => vec![Component::Etcd],
        NodeRole::Worker => Vec::new(),
    };
    (args, Vec::new(), None, deps)
}
