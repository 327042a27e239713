//! A node's local API load balancer ([`crate::apilb`]), as workers and schedulable masters run
//! it: where its backends come from and how the list follows the cluster.
//!
//! Owns: the balancer's listen address on this node, its start ([`start`]: bound before the
//! supervisor starts kubelet and kube-proxy), the initial list (the cache on disk, else the
//! API servers the node was told of), the fallback (a worker's join host, a master's own API
//! server), the feed that reads the cluster's list every [`PERIOD`] from the
//! `default/kubernetes` Endpoints, through the balancer itself, and the join APIs a worker may
//! renew through ([`other_join_apis`]).
//!
//! Why the feed reads with kube-proxy's credentials, as a list: the default RBAC binds
//! `system:kube-proxy` to `system:node-proxier`, which may list and watch endpoints on every
//! supported version. A node's own credentials may only `get` endpoints through a rule kept for
//! glusterfs volumes, which newer versions drop. A refusal (403) is logged once at debug and the
//! balancer keeps the list it has: the cache and the join answer still work, only masters that
//! join later go unseen.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::apilb::{ApiLbError, LbConfig, LbStatus};
use crate::config::Config;
use crate::daemon::Hook;
use crate::kube::{Credentials, Kube, KubeError};
use crate::retry::Backoff;
use crate::supervise::Supervisor;

/// How often the cluster's list is read. Masters join and leave rarely, and a dead one is
/// found by the balancer's own health checks in seconds: the list only has to catch up.
pub const PERIOD: Duration = Duration::from_secs(30);

/// The `kubernetes` Service's Endpoints, which the API servers themselves keep: every live one
/// with its advertise address. A list with a field selector, since kube-proxy may list
/// endpoints but not get one.
const ENDPOINTS: &str =
    "/api/v1/namespaces/default/endpoints?fieldSelector=metadata.name%3Dkubernetes";

/// Where the balancer listens: loopback only, since only this node's processes use it.
pub fn listen_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The URL that kubelet's and kube-proxy's kubeconfigs name. TLS still ends at the API server,
/// whose serving certificate names 127.0.0.1.
pub fn url(port: u16) -> String {
    crate::components::https_url(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The host and port of an `https://IP:PORT` URL; `None` for a name or no URL (the balancer
/// connects to addresses, and the join API answers addresses).
fn socket_addr(url: &str) -> Option<SocketAddr> {
    let uri = url.parse::<hyper::Uri>().ok()?;
    let host = uri.host()?.trim_matches(|c| c == '[' || c == ']');
    let ip = host.parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(
        ip,
        crate::http::port_or_known_default(&uri).unwrap_or(443),
    ))
}

/// The API servers the join answered, as addresses.
pub fn from_urls(urls: &[String]) -> Vec<SocketAddr> {
    urls.iter()
        .filter_map(|u| {
            let addr = socket_addr(u);
            if addr.is_none() {
                debug!(url = %u, "not an address; the load balancer skips it");
            }
            addr
        })
        .collect()
}

/// The last resort: the join URL's host, on the port of the first API server the join
/// answered (the join API and the API server share a machine, not a port). A host name is
/// resolved once, here.
pub async fn fallback(join_url: &str, api_servers: &[String]) -> Option<SocketAddr> {
    let port = api_servers.first().and_then(|u| socket_addr(u))?.port();
    let uri = join_url.parse::<hyper::Uri>().ok()?;
    let host = uri
        .host()?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            debug!(host, error = %e, "cannot resolve the join host; no fallback API server");
            None
        }
    }
}

/// The backends an EndpointsList names: every ready address of each subset, on the subset's
/// `https` port (its only port, as the API servers write it).
pub fn from_endpoints(list: &Value) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for subset in items
        .iter()
        .flat_map(|i| i["subsets"].as_array().map(Vec::as_slice).unwrap_or(&[]))
    {
        let ports = subset["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let port = ports
            .iter()
            .find(|p| p["name"] == "https")
            .or_else(|| ports.first())
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        for addr in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = addr["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out
}

fn forbidden(e: &KubeError) -> bool {
    matches!(
        e,
        KubeError::Status {
            status: 401 | 403,
            ..
        }
    )
}

/// Reads the cluster's list every [`PERIOD`] and hands it to the balancer, for as long as the
/// task runs. Never fails: a read that fails is retried with a backoff, and the balancer keeps
/// the list it has meanwhile.
pub async fn follow(kube: Kube, tx: watch::Sender<Vec<SocketAddr>>) {
    // The first reads race kubelet's start and the balancer's first health checks: expected
    // failures, at debug until they persist.
    let retry = Backoff::exponential(Duration::from_secs(1), PERIOD)
        .with_jitter(0.2)
        .warn_from(6);
    let (mut told_forbidden, mut following) = (false, false);
    loop {
        match retry
            .retry(
                "reading the API server list",
                || kube.get(ENDPOINTS),
                forbidden,
            )
            .await
        {
            Ok(v) => {
                let list = from_endpoints(&v);
                // The balancer ignores an empty list (it keeps the last one), so it is sent as
                // is: the decision is the balancer's.
                let changed = tx.send_if_modified(|cur| {
                    let changed = *cur != list;
                    if changed {
                        cur.clone_from(&list);
                    }
                    changed
                });
                // The first read is logged too, unchanged or not: it says the feed works.
                if changed || !following {
                    info!(backends = ?list, "the cluster's API servers");
                    following = true;
                }
            }
            Err(e) if !told_forbidden => {
                told_forbidden = true;
                debug!(error = %crate::errors::chain(&e), "cannot read the cluster's API servers; the load balancer keeps its list");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Backoff::fixed(PERIOD).with_jitter(0.2).wait(1)).await;
    }
}

/// Binds the balancer now, before the supervisor starts kubelet and kube-proxy, whose
/// kubeconfigs name it: a connection made before the hook runs waits in the listen backlog
/// rather than being refused. `api_servers` is the list the node was told of (the join's
/// answer, or a master's own API server), used only when there is no cache; `fallback` the last
/// resort. Returns the hook that serves the balancer and feeds it the cluster's list (the daemon
/// aborts it at shutdown, after which no proxied connection remains), and its status for
/// `kubesup status`.
pub async fn start(
    cfg: &Config,
    api_servers: &[String],
    fallback: Option<SocketAddr>,
) -> Result<(Hook, watch::Receiver<LbStatus>), ApiLbError> {
    let addr = listen_addr(cfg.api_lb_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiLbError::Bind { addr, source })?;
    info!(listen = %addr, "API load balancer listening");
    let cache = cfg.paths.apilb_backends();
    // The cache is the cluster's last word, newer than what the node was told at its join: that
    // list goes in only when there is no cache, since anything on the channel overrides it.
    let cached = matches!(crate::apilb::load_cache(&cache), Ok(Some(l)) if !l.is_empty());
    let initial = if cached {
        Vec::new()
    } else {
        from_urls(api_servers)
    };
    let lb_cfg = LbConfig {
        cache: Some(cache),
        fallback,
        redirect: cfg.api_lb_redirect,
        ..Default::default()
    };
    let (list_tx, list_rx) = watch::channel(initial);
    let (status_tx, status_rx) = watch::channel(LbStatus::default());
    let pki = cfg.paths.pki();
    let creds = Credentials {
        ca: pki.ca().cert,
        cert: pki.kube_proxy().cert,
        key: pki.kube_proxy().key,
    };
    let kube = Kube::new(&url(cfg.api_lb_port), &creds);
    let hook: Hook = Box::new(move |_: &Supervisor| {
        Box::pin(async move {
            let feed = async move {
                match kube {
                    Ok(kube) => follow(kube, list_tx).await,
                    Err(e) => {
                        tracing::warn!(error = %crate::errors::chain(&e), "cannot build the API client; the load balancer keeps the list it has");
                        // Held, so that the balancer does not log its feed as ended.
                        let _keep = list_tx;
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                _ = crate::apilb::serve(listener, lb_cfg, list_rx, status_tx) => {}
                () = feed => {}
            }
        })
    });
    Ok((hook, status_rx))
}

/// The join APIs a worker may renew its certificates through when the one it joined through
/// does not answer: every other master the balancer last found healthy, on the join URL's port
/// (every master serves the join API, from one token store, on the cluster's join port). A
/// worker whose join master is gone for good still renews.
pub fn other_join_apis(
    join_url: &str,
    healthy: impl IntoIterator<Item = SocketAddr>,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(port) = join_url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| crate::http::port_or_known_default(&u))
    else {
        return out;
    };
    let joined_host = socket_addr(join_url).map(|a| a.ip());
    for backend in healthy {
        if Some(backend.ip()) == joined_host {
            continue;
        }
        let url = crate::components::https_url(backend.ip(), port);
        if url != join_url && !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn urls_give_addresses_and_names_are_skipped() {
        let urls = [
            "https://10.0.0.1:6443".to_string(),
            "https://[fd00::1]:6443".to_string(),
            "https://api.example:6443".to_string(),
            "https://10.0.0.2".to_string(),
        ];
        assert_eq!(
            from_urls(&urls),
            [a("10.0.0.1:6443"), a("[fd00::1]:6443"), a("10.0.0.2:443")]
        );
        assert_eq!(url(6444), "https://127.0.0.1:6444");
        assert_eq!(listen_addr(6444), a("127.0.0.1:6444"));
    }

    #[tokio::test]
    async fn the_fallback_is_the_join_host_on_the_api_port() {
        let api = ["https://10.0.0.1:7443".to_string()];
        assert_eq!(
            fallback("https://10.0.0.9:9443", &api).await,
            Some(a("10.0.0.9:7443"))
        );
        assert_eq!(
            fallback("https://localhost:9443", &api)
                .await
                .map(|s| s.port()),
            Some(7443)
        );
        assert_eq!(fallback("https://10.0.0.9:9443", &[]).await, None);
    }

    #[test]
    fn endpoints_give_ready_addresses_on_the_https_port() {
        let list = json!({"kind": "EndpointsList", "items": [{
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}],
                "ports": [{"name": "metrics", "port": 1}, {"name": "https", "port": 6443, "protocol": "TCP"}]
            }, {
                "addresses": [{"ip": "fd00::1"}],
                "ports": [{"port": 7443}]
            }, {
                "addresses": [{"ip": "10.0.0.4"}]
            }]
        }]});
        assert_eq!(
            from_endpoints(&list),
            [a("10.0.0.1:6443"), a("10.0.0.2:6443"), a("[fd00::1]:7443")]
        );
        assert!(from_endpoints(&json!({"items": []})).is_empty());
        assert!(from_endpoints(&Value::Null).is_empty());
    }

    #[test]
    fn renewal_falls_back_to_every_other_healthy_master() {
        let healthy = [a("10.0.0.2:6443"), a("10.0.0.1:6443"), a("[fd00::3]:6443")];
        assert_eq!(
            other_join_apis("https://10.0.0.1:9443", healthy),
            ["https://10.0.0.2:9443", "https://[fd00::3]:9443"]
        );
        // A join through a name (or a VIP): every healthy master is another way in.
        assert_eq!(
            other_join_apis("https://masters.example:9443", [a("10.0.0.2:6443")]),
            ["https://10.0.0.2:9443"]
        );
        assert!(other_join_apis("https://10.0.0.1:9443", []).is_empty());
    }
}
