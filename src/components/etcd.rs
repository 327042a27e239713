//! etcd: TLS on the client and peer ports, client-certificate auth on both, metrics on
//! loopback. The first master's member starts a new one-member cluster named after the node;
//! a joining master's starts as a member of the existing cluster ([`EtcdCluster`]).

use super::{Built, NodeContext, flag, https_url, path_str};
use crate::etcd::{FlannelApi, etcd_serves_v2};
use crate::supervise::{Probe, ProbeSpec, TlsProbe};

/// Flannel up to v0.17 reads its network config through the etcd v2 API ([`FlannelApi`]).
pub fn flannel_uses_etcd_v2(flannel_version: &str) -> bool {
    FlannelApi::of(flannel_version) == FlannelApi::V2
}

/// How this master's etcd member takes part in its cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdCluster {
    /// `--initial-cluster` of a member added to an existing cluster, which then starts with
    /// `--initial-cluster-state existing`; `None`: a new one-member cluster named after the
    /// node. etcd reads both only on the first start of an empty data dir; kubesup decides
    /// joined-or-not from that data dir, never from these flags.
    pub join_initial_cluster: Option<String>,
    /// The cluster has more than one member: etcd's default election timing.
    pub multi_member: bool,
    /// `kubesup master --cluster-reset`, on the one start it applies to
    /// ([`crate::backup::reset`]): `--force-new-cluster`, this member alone from its own data.
    pub force_new_cluster: bool,
}

pub(super) fn build(ctx: &NodeContext<'_>) -> Built {
    let cfg = ctx.cfg;
    let pki = cfg.paths.pki();
    let (server, peer, ca) = (pki.etcd_server(), pki.etcd_peer(), pki.etcd_ca());
    let p = &cfg.ports;
    let adv = ctx.advertise;
    let loopback = adv.is_loopback();
    let client_url = |ip| https_url(ip, p.etcd_client);
    let peer_url = https_url(adv, p.etcd_peer);
    let mut listen = vec![client_url(std::net::IpAddr::from([127, 0, 0, 1]))];
    if !loopback {
        listen.push(client_url(adv));
    }
    let mut args = vec![
        flag("name", &cfg.node_name),
        flag("data-dir", path_str(&cfg.paths.etcd_data_dir())),
        flag("listen-client-urls", listen.join(",")),
        flag("advertise-client-urls", client_url(adv)),
        flag("listen-peer-urls", &peer_url),
        flag("initial-advertise-peer-urls", &peer_url),
        match &ctx.etcd_cluster.join_initial_cluster {
            Some(members) => flag("initial-cluster", members),
            None => flag("initial-cluster", format!("{}={peer_url}", cfg.node_name)),
        },
        flag(
            "initial-cluster-state",
            match ctx.etcd_cluster.join_initial_cluster {
                Some(_) => "existing",
                None => "new",
            },
        ),
        flag("initial-cluster-token", "kubesup"),
        flag(
            "listen-metrics-urls",
            format!("http://127.0.0.1:{}", p.etcd_metrics),
        ),
        flag("cert-file", path_str(&server.cert)),
        flag("key-file", path_str(&server.key)),
        flag("client-cert-auth", true),
        flag("trusted-ca-file", path_str(&ca.cert)),
        flag("peer-cert-file", path_str(&peer.cert)),
        flag("peer-key-file", path_str(&peer.key)),
        flag("peer-client-cert-auth", true),
        flag("peer-trusted-ca-file", path_str(&ca.cert)),
        flag("snapshot-count", 10000),
    ];
    if !ctx.etcd_cluster.multi_member {
        // A member waits one randomized election timeout, between one and two of these, before
        // it campaigns. In a one-member cluster no leader can be lost, so that wait is only
        // downtime: with etcd's default of 1 s, a restarted etcd took 0.3 to 1.9 s to serve.
        // 500 ms is the least etcd allows with the default 100 ms heartbeat (5 heartbeats).
        // A cluster of several members keeps etcd's defaults: there the timeout is what tells
        // a lost leader from a slow one.
        args.push(flag("heartbeat-interval", 100));
        args.push(flag("election-timeout", 500));
    }
    if ctx.etcd_cluster.force_new_cluster {
        args.push(flag("force-new-cluster", true));
    }
    // etcd 3.6 removed the v2 API; 3.4 and 3.5 serve it only when asked. A master refuses an
    // old flannel with an etcd that has none before it gets here (crate::etcd::flannel_api).
    if cfg.network == crate::model::Network::Flannel
        && flannel_uses_etcd_v2(&ctx.flannel_version)
        && etcd_serves_v2(&ctx.etcd_version)
    {
        args.push(flag("enable-v2", true));
    }
    let client = pki.etcd_healthcheck_client();
    let probe = ProbeSpec::new(Probe::Http {
        url: format!("https://127.0.0.1:{}/health", p.etcd_client),
        tls: Some(TlsProbe {
            ca: Some(ca.cert),
            client: Some((client.cert, client.key)),
        }),
    });
    (args, Vec::new(), Some(probe), Vec::new())
}
