//! flanneld with the etcd backend: it leases this node a subnet of the pod network from the
//! config kubesup wrote into etcd, and writes it to its subnet file for the CNI plugin.
//!
//! The flags are the same for every flannel kubesup runs, whichever etcd API it reads
//! (`crate::etcd::FlannelApi`): `--etcd-endpoints`, `--etcd-cafile`, `--etcd-certfile`,
//! `--etcd-keyfile`, `--etcd-prefix`, `--iface`, `--ip-masq` and `--subnet-file` have kept
//! their names and meaning from flannel's etcd-v2 releases through its etcd-v3 ones (v0.18.0
//! and later). The backend is not a flag: flanneld reads it from the network config in etcd.

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
        flag("etcd-prefix", crate::etcd::FLANNEL_PREFIX),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn args_of(flannel_version: &str, backend: &str, role: NodeRole) -> (Vec<String>, Built) {
        let mut raw = RawConfig::from_yaml(&format!("flannel: {{backend: {backend}}}")).unwrap();
        raw.data_dir = "/srv/ks".into();
        raw.node_name = Some("node1".into());
        let cfg = raw.validate().unwrap();
        let ctx = NodeContext {
            cfg: &cfg,
            role,
            advertise: "10.0.0.7".parse().unwrap(),
            api_servers: vec!["https://10.0.0.1:6443".into()],
            etcd_servers: vec![
                "https://10.0.0.1:2379".into(),
                "https://10.0.0.2:2379".into(),
            ],
            etcd_version: "v3.4.23".into(),
            flannel_version: flannel_version.into(),
            etcd_cluster: Default::default(),
        };
        let built = build(&ctx);
        (built.0.clone(), built)
    }

    /// The command line of an etcd-v2 flannel (v0.13.0) and of an etcd-v3 one (v0.27.4) is the
    /// same, and names what flannel's etcd registry reads: the endpoints, the client
    /// certificate signed by the etcd CA, and the prefix whose `config` kubesup writes.
    #[test]
    fn flanneld_gets_the_same_etcd_flags_whichever_api_it_reads() {
        let (old, _) = args_of("v0.13.0", "vxlan", NodeRole::Worker);
        let (new, _) = args_of("v0.27.4", "vxlan", NodeRole::Worker);
        assert_eq!(old, new);
        assert_eq!(
            new,
            [
                "--etcd-endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379",
                "--etcd-cafile=/srv/ks/pki/etcd/ca.crt",
                "--etcd-certfile=/srv/ks/pki/etcd/flannel-client.crt",
                "--etcd-keyfile=/srv/ks/pki/etcd/flannel-client.key",
                "--etcd-prefix=/coreos.com/network",
                "--iface=10.0.0.7",
                "--ip-masq=true",
                "--subnet-file=/srv/ks/components/flanneld/subnet.env",
            ]
        );
        assert_eq!(
            format!("{}/config", crate::etcd::FLANNEL_PREFIX),
            crate::etcd::FLANNEL_KEY
        );
    }

    /// The backend lives in etcd's network config, never on flanneld's command line: changing
    /// it does not change the argv.
    #[test]
    fn the_backend_is_not_a_flag() {
        let (vxlan, _) = args_of("v0.27.4", "vxlan", NodeRole::Worker);
        let (host_gw, _) = args_of("v0.27.4", "host-gw", NodeRole::Worker);
        assert_eq!(vxlan, host_gw);
    }

    #[test]
    fn on_a_master_flanneld_waits_for_its_etcd() {
        let master = NodeRole::Master { schedulable: true };
        assert_eq!(args_of("v0.27.4", "vxlan", master).1.3, [Component::Etcd]);
        assert!(args_of("v0.27.4", "vxlan", NodeRole::Worker).1.3.is_empty());
    }
}
