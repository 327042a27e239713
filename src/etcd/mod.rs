//! Talking to the cluster's etcd: health, flannel's network config, and (for join tokens)
//! keys with leases. Always over mutual TLS, with a client certificate from the etcd CA.
//!
//! Flannel's network config (what the seed guides wrote by hand with
//! `etcdctl set /coreos.com/network/config '{"Network": ...}'`) lives at
//! `/coreos.com/network/config`: flanneld's `--etcd-prefix` (kubesup passes flannel's default,
//! `/coreos.com/network`) joined with `config`, and flanneld keeps each node's subnet lease under
//! the same prefix, at `subnets/<subnet>`. Which etcd API flannel reads them through depends on
//! its version ([`FlannelApi`]): up to v0.17 it used the etcd **v2** API (a separate keyspace
//! that etcd 3.4 and 3.5 serve only with `--enable-v2`, and etcd 3.6 no longer has); from
//! v0.18.0 on it reads the **v3** keys. kubesup writes the config where the chosen flannel looks,
//! and always writes the v3 key too, so `etcdctl get /coreos.com/network/config` shows it
//! either way. A flannel that needs v2 paired with an etcd that has none is refused before
//! anything starts ([`flannel_api`]).

pub mod members;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use ipnet::IpNet;
use tracing::info;

use crate::model::FlannelBackend;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to etcd at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd request {what} failed")]
    Request {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("cannot set up the client of etcd's v2 API")]
    V2Client(#[source] crate::http::HttpError),
    #[error("etcd v2 request failed")]
    V2(#[source] crate::http::HttpError),
    #[error("etcd v2 request PUT {url} answered {status}")]
    V2Status { url: String, status: u16 },
    #[error(
        "flannel {flannel} reads its network config through etcd's v2 API, which etcd {etcd} \
         does not have: set fetch.flannel-version to v0.18.0 or later (it reads the v3 API), or \
         fetch.etcd-version to a 3.5 or older release"
    )]
    NoV2 { flannel: String, etcd: String },
}

/// Where the client certificate for etcd lives.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// flanneld's `--etcd-prefix`: flannel's own default, under which it reads `config` and keeps
/// its subnet leases (`subnets/...`).
pub const FLANNEL_PREFIX: &str = "/coreos.com/network";

/// The flannel network config key: [`FLANNEL_PREFIX`] + `/config`, where flanneld looks.
pub const FLANNEL_KEY: &str = "/coreos.com/network/config";

/// Flannel's config document for a pod network. The backend is always written out: flannel
/// releases that find no `Backend` fall back to `udp` (and newer ones to `vxlan`), so leaving it
/// to flannel would make the data path depend on the flannel version.
pub fn flannel_config(pod_cidr: IpNet, backend: FlannelBackend) -> String {
    serde_json::json!({ "Network": pod_cidr.to_string(), "Backend": { "Type": backend.name() } })
        .to_string()
}

/// The etcd API a flanneld reads its network config and subnet leases through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlannelApi {
    /// `/v2/keys/...`: flannel up to v0.17.x (its `subnet/etcdv2` registry, on etcd's v2
    /// client). etcd must serve it (`--enable-v2`).
    V2,
    /// The gRPC keyspace: flannel v0.18.0 and later. flannel-io/flannel#1562 ("Upgrade etcd
    /// client to v3", May 2022) moved its registry to etcd's v3 client, after v0.17.0 (March
    /// 2022) and before v0.18.0; the key layout stayed the same.
    V3,
}

impl FlannelApi {
    /// The API of flannel `version` (`v0.13.0`). A version that does not parse counts as new:
    /// every version kubesup runs went through the release manifest's semver check, and any
    /// future flannel reads v3.
    pub fn of(flannel_version: &str) -> Self {
        match minor_of(flannel_version) {
            Some((0, minor)) if minor < 18 => Self::V2,
            _ => Self::V3,
        }
    }
}

/// Whether etcd `version` can serve the v2 API (with `--enable-v2`): 3.4 and 3.5 can; 3.6
/// removed the v2 API (only its store remains, for membership).
pub fn etcd_serves_v2(etcd_version: &str) -> bool {
    minor_of(etcd_version).is_some_and(|v| v < (3, 6))
}

/// The API flannel `flannel_version` needs from etcd `etcd_version`, or the refusal when it
/// needs v2 and that etcd has none: checked before anything is written or started, since
/// flanneld would otherwise wait forever for a config it cannot read.
pub fn flannel_api(flannel_version: &str, etcd_version: &str) -> Result<FlannelApi, EtcdError> {
    let api = FlannelApi::of(flannel_version);
    if api == FlannelApi::V2 && !etcd_serves_v2(etcd_version) {
        return Err(EtcdError::NoV2 {
            flannel: flannel_version.to_string(),
            etcd: etcd_version.to_string(),
        });
    }
    Ok(api)
}

/// `(major, minor)` of `v1.2.3` or `1.2.3`, pre-releases included (`v0.18.0-rc1` is a 0.18).
fn minor_of(version: &str) -> Option<(u64, u64)> {
    let v = semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()?;
    Some((v.major, v.minor))
}

fn read(path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Client options for mutual TLS with `tls`'s certificate, no timeouts set: one place that
/// reads the PEM files, for [`connect`] and for the health probes of
/// [`members::membership`], which set their own (shorter) bounds.
pub fn tls_options(tls: &EtcdTls) -> Result<ConnectOptions, EtcdError> {
    let options = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    Ok(ConnectOptions::new().with_tls(options))
}

pub async fn connect(endpoint: &str, tls: &EtcdTls) -> Result<Client, EtcdError> {
    let opts = tls_options(tls)?
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    connect_with(endpoint, opts).await
}

/// [`connect`] with the caller's options (from [`tls_options`]), for a caller that needs a
/// shorter bound than the default 5 s/10 s, such as `kubesup status`.
pub async fn connect_with(endpoint: &str, opts: ConnectOptions) -> Result<Client, EtcdError> {
    Client::connect([endpoint], Some(opts))
        .await
        .map_err(|source| EtcdError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })
}

/// A client of several members at once (etcd-client balances over them and skips a dead
/// one), with the same bounds as [`connect`]: a joining master's view of its cluster.
pub async fn connect_many(endpoints: &[String], opts: ConnectOptions) -> Result<Client, EtcdError> {
    let opts = opts
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(|source| EtcdError::Connect {
            endpoint: endpoints.join(","),
            source,
        })
}

/// The client endpoint on this node.
pub fn local_endpoint(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// `https://ip:port` (IPv6 bracketed, as `SocketAddr` prints it).
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    format!("https://{}", SocketAddr::new(ip, port))
}

/// Asks etcd for its status (the readiness gate before anything is written to it).
pub async fn status(client: &mut Client) -> Result<String, EtcdError> {
    let s = client.status().await.map_err(|source| EtcdError::Request {
        what: "status",
        source,
    })?;
    Ok(s.version().to_string())
}

/// Writes flannel's network config where `api` says flannel reads it, and the v3 key always.
pub async fn write_flannel_config(
    client: &mut Client,
    endpoint: &str,
    tls: &EtcdTls,
    pod_cidr: IpNet,
    backend: FlannelBackend,
    api: FlannelApi,
) -> Result<(), EtcdError> {
    let doc = flannel_config(pod_cidr, backend);
    client
        .put(FLANNEL_KEY, doc.clone(), None)
        .await
        .map_err(|source| EtcdError::Request {
            what: "put flannel config",
            source,
        })?;
    let v2 = api == FlannelApi::V2;
    if v2 {
        put_v2(endpoint, tls, FLANNEL_KEY, &doc).await?;
    }
    info!(key = FLANNEL_KEY, network = %pod_cidr, %backend, v2, "wrote flannel network config");
    Ok(())
}

/// `PUT /v2/keys/KEY` with `value=...`, the etcd v2 HTTP API (etcd-client speaks only v3).
async fn put_v2(endpoint: &str, tls: &EtcdTls, key: &str, value: &str) -> Result<(), EtcdError> {
    let url = format!("{endpoint}/v2/keys{key}");
    // No proxy: etcd is this cluster's own.
    let client = crate::http::Client::builder()
        .trust(crate::http::Trust::Ca(read(&tls.ca)?))
        .identity(read(&tls.cert)?, read(&tls.key)?)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(EtcdError::V2Client)?;
    let resp = client
        .put(&url)
        .form(&[("value", value)])
        .send()
        .await
        .map_err(EtcdError::V2)?;
    if !resp.status().is_success() {
        return Err(EtcdError::V2Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flannel_config_is_what_the_guides_wrote_with_the_chosen_backend() {
        let doc = |backend| -> serde_json::Value {
            serde_json::from_str(&flannel_config("10.2.0.0/16".parse().unwrap(), backend)).unwrap()
        };
        let vxlan = doc(FlannelBackend::Vxlan);
        assert_eq!(vxlan["Network"], "10.2.0.0/16");
        assert_eq!(vxlan["Backend"]["Type"], "vxlan");
        assert_eq!(doc(FlannelBackend::HostGw)["Backend"]["Type"], "host-gw");
        assert_eq!(vxlan.as_object().unwrap().len(), 2, "nothing else: {vxlan}");
        // The key is where flanneld looks: path.Join(--etcd-prefix, "config").
        assert_eq!(FLANNEL_KEY, format!("{FLANNEL_PREFIX}/config"));
    }

    /// flannel-io/flannel#1562 moved flannel to etcd's v3 client between v0.17.0 and v0.18.0:
    /// the boundary is 0.18, pre-releases of 0.18 included.
    #[test]
    fn flannel_reads_v2_up_to_0_17_and_v3_from_0_18() {
        for (version, api) in [
            ("v0.11.0", FlannelApi::V2),
            ("v0.13.0", FlannelApi::V2),
            ("v0.16.3", FlannelApi::V2),
            ("v0.17.0", FlannelApi::V2),
            ("0.17.9", FlannelApi::V2),
            ("v0.18.0-rc1", FlannelApi::V3),
            ("v0.18.0", FlannelApi::V3),
            ("v0.18.1", FlannelApi::V3),
            ("v0.27.4", FlannelApi::V3),
            ("v1.0.0", FlannelApi::V3),
            ("latest", FlannelApi::V3),
        ] {
            assert_eq!(FlannelApi::of(version), api, "{version}");
        }
    }

    #[test]
    fn etcd_serves_v2_before_3_6_only() {
        for (version, v2) in [
            ("v3.4.13", true),
            ("3.4.23", true),
            ("v3.5.21", true),
            ("v3.6.0-rc.0", false),
            ("v3.6.5", false),
            ("v4.0.0", false),
        ] {
            assert_eq!(etcd_serves_v2(version), v2, "{version}");
        }
    }

    /// An old flannel on an etcd without v2 is refused with one line naming both versions and
    /// both ways out; every other pairing is fine.
    #[test]
    fn an_old_flannel_on_an_etcd_without_v2_is_refused() {
        assert_eq!(flannel_api("v0.13.0", "v3.4.23").unwrap(), FlannelApi::V2);
        assert_eq!(flannel_api("v0.27.4", "v3.6.5").unwrap(), FlannelApi::V3);
        assert_eq!(flannel_api("v0.27.4", "v3.4.23").unwrap(), FlannelApi::V3);
        let e = flannel_api("v0.16.3", "v3.6.5").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        for part in [
            "flannel v0.16.3",
            "etcd v3.6.5",
            "fetch.flannel-version",
            "v0.18.0",
            "fetch.etcd-version",
        ] {
            assert!(e.contains(part), "{part:?} not in {e:?}");
        }
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("::1".parse().unwrap(), 2379), "https://[::1]:2379");
    }
}
