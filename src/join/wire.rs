//! The join API's messages, as JSON on the wire: what a node sends ([`JoinRequest`], to
//! `/v1/join` and `/v1/renew` alike) and what a master answers ([`JoinResponse`], with the
//! [`ClusterInfo`] a node needs to run).
//!
//! A master joining the control plane sends [`MasterJoinRequest`] to `/v1/join-master` and
//! gets [`MasterJoinResponse`]: the cluster-wide key material and [`ClusterSettings`].
//!
//! Owns the field names and their defaults, which masters and workers of different versions
//! must agree on: a field added later is `#[serde(default)]`, so an older peer's message still
//! reads. Holds no behaviour. A worker's messages never hold a private key (a node sends CSRs,
//! never keys); the one message that does is the answer to a master join, whose token only a
//! master can make, and which travels only inside TLS verified against the pinned CA.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::pki::ClusterMaterial;

/// What a node needs to run, besides its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub api_servers: Vec<String>,
    pub etcd_servers: Vec<String>,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub network: String,
    pub kube_version: String,
    pub etcd_version: Option<String>,
    pub mirror: Option<String>,
    /// flannel's backend (`flannel.backend`): a worker checks that it can run it. Absent from
    /// an older master's answer, which ran vxlan.
    #[serde(default = "vxlan")]
    pub flannel_backend: String,
}

/// What a master that predates `flannel.backend` ran: flannel's network config always said
/// vxlan.
fn vxlan() -> String {
    crate::model::FlannelBackend::Vxlan.name().to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    pub kubelet_client_csr: String,
    pub kubelet_serving_csr: String,
    pub kube_proxy_csr: String,
    /// flanneld's etcd client CSR, when the cluster's network is flannel.
    #[serde(default)]
    pub flannel_etcd_csr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub ca: String,
    pub kubelet_client_cert: String,
    pub kubelet_serving_cert: String,
    pub kube_proxy_cert: String,
    /// The etcd CA and flanneld's etcd client cert, when a flannel CSR was sent.
    #[serde(default)]
    pub etcd_ca: Option<String>,
    #[serde(default)]
    pub flannel_etcd_cert: Option<String>,
    pub cluster: ClusterInfo,
}

/// The settings that must be the same on every master of a cluster. A joining master takes
/// them from the cluster, never from its own flags, and keeps them in its data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub kube_version: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub api_service_ip: String,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub network: String,
    pub api_port: u16,
    /// `flannel.backend`. Absent from the records and backups of an older kubesup, whose
    /// clusters ran vxlan.
    #[serde(default = "vxlan")]
    pub flannel_backend: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterJoinRequest {
    pub node_name: String,
    pub advertise: IpAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterJoinResponse {
    pub material: ClusterMaterial,
    pub settings: ClusterSettings,
    /// Every etcd member's client URLs, where the joiner adds itself.
    pub etcd_client_urls: Vec<String>,
}
