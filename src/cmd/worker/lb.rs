//! A worker's node-local API load balancer ([`crate::apilb`]): where its backends come from and
//! how the list follows the cluster.
//!
//! Owns: the balancer's listen address on this node, the initial list (the cache on disk, else
//! the API servers the join answered), the fallback (the join URL's host on the API port), and
//! the feed that reads the cluster's list every [`PERIOD`] from the `default/kubernetes`
//! Endpoints, through the balancer itself.
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

use crate::kube::{Kube, KubeError};
use crate::retry::Backoff;

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
}
