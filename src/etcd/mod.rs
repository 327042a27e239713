//! Talking to the cluster's etcd: health, flannel's network config, and (for join tokens)
//! keys with leases. Always over mutual TLS, with a client certificate from the etcd CA.
//!
//! Flannel's network config (what the seed guides wrote by hand with
//! `etcdctl set /coreos.com/network/config '{"Network": ...}'`) lives at
//! `/coreos.com/network/config`. Which etcd API flannel reads it through depends on its version:
//! flannel before v0.17 used the etcd **v2** API (a separate keyspace that etcd 3.4 serves only
//! with `--enable-v2`, and etcd 3.6 no longer has); v0.17 and later read the **v3** key. kubesup
//! writes the key where the chosen flannel version looks, and always writes the v3 key too, so
//! `etcdctl get /coreos.com/network/config` shows it either way.

pub mod members;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use ipnet::IpNet;
use tracing::info;

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
}

/// Where the client certificate for etcd lives.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The flannel network config key.
pub const FLANNEL_KEY: &str = "/coreos.com/network/config";

/// Flannel's config document for a pod network, with the VXLAN backend.
pub fn flannel_config(pod_cidr: IpNet) -> String {
    serde_json::json!({ "Network": pod_cidr.to_string(), "Backend": { "Type": "vxlan" } })
        .to_string()
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

pub fn endpoint(ip: IpAddr, port: u16) -> String {
    crate::components::https_url(ip, port)
}

/// Asks etcd for its status (the readiness gate before anything is written to it).
pub async fn status(client: &mut Client) -> Result<String, EtcdError> {
    let s = client.status().await.map_err(|source| EtcdError::Request {
        what: "status",
        source,
    })?;
    Ok(s.version().to_string())
}

/// Writes flannel's network config where `v2` says flannel reads it, and the v3 key always.
pub async fn write_flannel_config(
    client: &mut Client,
    endpoint: &str,
    tls: &EtcdTls,
    pod_cidr: IpNet,
    v2: bool,
) -> Result<(), EtcdError> {
    let doc = flannel_config(pod_cidr);
    client
        .put(FLANNEL_KEY, doc.clone(), None)
        .await
        .map_err(|source| EtcdError::Request {
            what: "put flannel config",
            source,
        })?;
    if v2 {
        put_v2(endpoint, tls, FLANNEL_KEY, &doc).await?;
    }
    info!(key = FLANNEL_KEY, network = %pod_cidr, v2, "wrote flannel network config");
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
    fn flannel_config_is_what_the_guides_wrote() {
        let doc: serde_json::Value =
            serde_json::from_str(&flannel_config("10.2.0.0/16".parse().unwrap())).unwrap();
        assert_eq!(doc["Network"], "10.2.0.0/16");
        assert_eq!(doc["Backend"]["Type"], "vxlan");
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("::1".parse().unwrap(), 2379), "https://[::1]:2379");
    }
}
