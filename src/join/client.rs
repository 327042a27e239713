//! The joining side: a worker proves nothing until it has checked the master's CA.
//!
//! 1. `GET /v1/ca` over TLS *without* verification (the worker trusts nothing yet), then check
//!    the bundle's public key against the pin in the token. A mismatch stops here, before the
//!    secret is ever sent.
//! 2. Make the node's keys locally and CSRs for them.
//! 3. `POST /v1/join` over TLS verified against that CA, with the token's secret as bearer.
//!
//! Renewal (`renew`) makes new keys and CSRs the same way and posts them to `/v1/renew`,
//! authenticated by the node's current kubelet client certificate instead of a token.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use super::token::{Token, TokenError, ca_pin};
use super::wire::{JoinRequest, JoinResponse, MasterJoinRequest, MasterJoinResponse};
use crate::http::{HttpError, Trust};
use crate::pki::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the CA served by {url} does not match the token (pin {expected}, served {got}): the token is for another cluster, or something is intercepting the connection; nothing was sent"
    )]
    PinMismatch {
        url: String,
        expected: String,
        got: String,
    },
    #[error("cannot reach the join API")]
    Unreachable(#[source] HttpError),
    #[error("cannot use the cluster CA or this node's current credentials for TLS")]
    Tls(#[source] HttpError),
    #[error("the master refused this node's request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot make this node's keys or CSRs")]
    Csr(#[source] rcgen::Error),
    #[error("the master's answer is unreadable")]
    Answer(#[source] serde_json::Error),
    #[error("the CA certificate the master serves is unreadable")]
    Ca(#[source] TokenError),
    #[error("the master's answer names no API server")]
    NoApiServer,
    #[error("cannot make a kubeconfig from the master's answer")]
    Kubeconfig(#[source] serde_yaml_ng::Error),
}

/// This node's private keys, made here and never sent anywhere.
pub struct NodeKeys {
    pub kubelet_client: Secret,
    pub kubelet_serving: Secret,
    pub kube_proxy: Secret,
    /// flanneld's etcd client key, when the cluster runs flannel.
    pub flannel_etcd: Option<Secret>,
}

pub struct Joined {
    pub keys: NodeKeys,
    pub response: JoinResponse,
}

/// A client of the join API: never through a proxy (the master is this cluster's own), and
/// verified against `verify_with` only, or, without it, not at all: only for the CA bundle,
/// whose authenticity the pin establishes.
fn client(
    verify_with: Option<&str>,
    identity: Option<(&str, &str)>,
) -> Result<crate::http::Client, ClientError> {
    client_with_timeout(verify_with, identity, Duration::from_secs(15))
}

fn client_with_timeout(
    verify_with: Option<&str>,
    identity: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<crate::http::Client, ClientError> {
    let mut b = crate::http::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .trust(match verify_with {
            Some(ca) => Trust::Ca(ca.as_bytes().to_vec()),
            None => Trust::AnyCert,
        });
    if let Some((cert, key)) = identity {
        b = b.identity(cert.as_bytes().to_vec(), key.as_bytes().to_vec());
    }
    b.build().map_err(ClientError::Tls)
}

/// Fetches the CA bundle and checks it against the token's pin.
pub async fn fetch_ca(join_url: &str, token: &Token) -> Result<String, ClientError> {
    let url = format!("{}/v1/ca", join_url.trim_end_matches('/'));
    let ca = client(None, None)?
        .get(&url)
        .send()
        .await
        .map_err(ClientError::Unreachable)?
        .text()
        .await
        .map_err(ClientError::Unreachable)?;
    let got = ca_pin(&ca).map_err(ClientError::Ca)?;
    if got != token.ca_pin {
        return Err(ClientError::PinMismatch {
            url,
            expected: token.ca_pin.clone(),
            got,
        });
    }
    Ok(ca)
}

fn csr(
    key: &KeyPair,
    cn: &str,
    org: Option<&str>,
    sans: Vec<SanType>,
) -> Result<String, ClientError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params
        .serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(ClientError::Csr)
}

/// Makes this node's keys and the CSRs the master signs. With `flannel`, also a key and CSR
/// for flanneld's etcd client.
fn node_request(
    node_name: &str,
    node_ips: &[IpAddr],
    flannel: bool,
) -> Result<(NodeKeys, JoinRequest), ClientError> {
    let gen_key = || KeyPair::generate().map_err(ClientError::Csr);
    let (kc, ks, kp) = (gen_key()?, gen_key()?, gen_key()?);
    let kf = if flannel { Some(gen_key()?) } else { None };
    let mut serving_sans = vec![SanType::DnsName(
        node_name.try_into().map_err(ClientError::Csr)?,
    )];
    serving_sans.extend(node_ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let request = JoinRequest {
        node_name: node_name.to_string(),
        node_ips: node_ips.to_vec(),
        kubelet_client_csr: csr(
            &kc,
            &format!("system:node:{node_name}"),
            Some("system:nodes"),
            vec![],
        )?,
        kubelet_serving_csr: csr(
            &ks,
            &format!("system:node:{node_name}"),
            Some("system:nodes"),
            serving_sans,
        )?,
        kube_proxy_csr: csr(&kp, "system:kube-proxy", None, vec![])?,
        flannel_etcd_csr: kf
            .as_ref()
            .map(|k| csr(k, "flannel", None, vec![]))
            .transpose()?,
    };
    let keys = NodeKeys {
        kubelet_client: Secret::new(kc.serialize_pem()),
        kubelet_serving: Secret::new(ks.serialize_pem()),
        kube_proxy: Secret::new(kp.serialize_pem()),
        flannel_etcd: kf.map(|k| Secret::new(k.serialize_pem())),
    };
    Ok((keys, request))
}

/// Posts a request to `path` of the join API and reads the answer.
async fn post<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
    join_url: &str,
    path: &str,
    client: crate::http::Client,
    bearer: Option<&str>,
    request: &Q,
) -> Result<A, ClientError> {
    let url = format!("{}{path}", join_url.trim_end_matches('/'));
    let mut req = client.post(&url).json(request);
    if let Some(b) = bearer {
        req = req.bearer(b);
    }
    let resp = req.send().await.map_err(ClientError::Unreachable)?;
    let status = resp.status();
    let text = resp.text().await.map_err(ClientError::Unreachable)?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        return Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_str(&text).map_err(ClientError::Answer)
}

/// Makes this node's keys and CSRs and asks the master to sign them. With `flannel`, also a
/// key and CSR for flanneld's etcd client.
pub async fn join(
    join_url: &str,
    token: &Token,
    node_name: &str,
    node_ips: &[IpAddr],
    flannel: bool,
) -> Result<Joined, ClientError> {
    let ca = fetch_ca(join_url, token).await?;
    let (keys, request) = node_request(node_name, node_ips, flannel)?;
    let bearer = token.expose();
    let bearer = bearer.split_once("::").map(|(_, c)| c).unwrap_or_default();
    let response = post(
        join_url,
        "/v1/join",
        client(Some(&ca), None)?,
        Some(bearer),
        &request,
    )
    .await?;
    Ok(Joined { keys, response })
}

/// A master joining the control plane: the CA is checked against the token's pin first, then
/// the token buys the cluster's keys over TLS verified against that CA. Returns the CA PEM
/// (what was pinned) beside the answer.
pub async fn join_master(
    join_url: &str,
    token: &Token,
    request: &MasterJoinRequest,
) -> Result<MasterJoinResponse, ClientError> {
    let ca = fetch_ca(join_url, token).await?;
    let bearer = token.expose();
    let bearer = bearer.split_once("::").map(|(_, c)| c).unwrap_or_default();
    let answer: MasterJoinResponse = post(
        join_url,
        "/v1/join-master",
        client(Some(&ca), None)?,
        Some(bearer),
        request,
    )
    .await?;
    // The keys must be the cluster's the pin names, not merely served beside it.
    if answer.material.cluster_ca.cert.trim() != ca.trim() {
        return Err(ClientError::PinMismatch {
            url: join_url.to_string(),
            expected: token.ca_pin.clone(),
            got: ca_pin(&answer.material.cluster_ca.cert).unwrap_or_default(),
        });
    }
    Ok(answer)
}

/// What a node that joined proves itself with: the cluster CA it trusts, and its current
/// kubelet client certificate and key (PEM).
pub struct NodeCredentials<'a> {
    pub ca: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
}

/// Renews a joined node's certificates: new keys and CSRs, authenticated by its current
/// kubelet client certificate, over TLS verified with the cluster CA.
pub async fn renew(
    join_url: &str,
    creds: &NodeCredentials<'_>,
    node_name: &str,
    node_ips: &[IpAddr],
    flannel: bool,
) -> Result<Joined, ClientError> {
    let (keys, request) = node_request(node_name, node_ips, flannel)?;
    let response = post(
        join_url,
        "/v1/renew",
        client(Some(creds.ca), Some((creds.cert, creds.key)))?,
        None,
        &request,
    )
    .await?;
    Ok(Joined { keys, response })
}

/// How long a master may take to list a node's binaries: it may first have to download those
/// it does not run itself (a control-plane-only master has no kubelet), a few hundred MB.
const BINARIES_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Asks the master for the binaries this node runs, by SHA-256, authenticated by the node's
/// current kubelet client certificate, over TLS verified with the cluster CA.
pub async fn binaries(
    join_url: &str,
    creds: &NodeCredentials<'_>,
    request: &crate::join::binaries::BinariesRequest,
) -> Result<crate::fetch::BinaryList, ClientError> {
    post(
        join_url,
        "/v1/binaries",
        client_with_timeout(
            Some(creds.ca),
            Some((creds.cert, creds.key)),
            BINARIES_TIMEOUT,
        )?,
        None,
        request,
    )
    .await
}
