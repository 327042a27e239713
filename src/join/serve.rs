//! The join API's start-up on a master: load the CAs and the join server's certificate,
//! connect to the master's etcd, bind the advertise address, and serve.
//!
//! Owns what a master's join API is made of (which CA signs what, which etcd, which address)
//! and nothing of how requests are answered ([`super::server`]). It never fails the master:
//! a join API that cannot start is logged as an error (workers cannot join until a person
//! fixes it) while the control plane runs on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::server::{self, JoinContext, ServerError};
use super::store::Backend;
use super::tls::{TlsError, tls_config_from_files};
use super::wire::ClusterInfo;
use crate::pki::{CaKind, LoadedCa, PkiError};
use crate::retry::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load the {kind} CA")]
    Ca {
        kind: CaKind,
        #[source]
        source: PkiError,
    },
    #[error("the join server's certificate is unusable")]
    Tls(#[from] TlsError),
    #[error("cannot listen for the join API")]
    Bind(#[from] ServerError),
    #[error("cannot reach the local etcd")]
    Etcd(#[from] crate::etcd::EtcdError),
}

/// What the join API serves with, read from the master's PKI.
struct Material {
    ca: LoadedCa,
    etcd_ca: Option<LoadedCa>,
    tls: rustls::ServerConfig,
}

fn load(cfg: &crate::config::Config) -> Result<Material, StartError> {
    let pki_paths = cfg.paths.pki();
    let pki = crate::pki::Pki::new(&cfg.paths);
    let load_ca = |kind| {
        pki.load_ca(kind)
            .map_err(|source| StartError::Ca { kind, source })
    };
    let ca = load_ca(CaKind::Cluster)?;
    let etcd_ca = match cfg.network {
        crate::model::Network::Flannel => Some(load_ca(CaKind::Etcd)?),
        crate::model::Network::None => None,
    };
    let pair = pki_paths.join_server();
    let tls = tls_config_from_files(&pair.cert, &pair.key, ca.cert_pem().as_bytes())?;
    Ok(Material { ca, etcd_ca, tls })
}

fn cannot_start(e: &StartError) {
    tracing::error!(
        error = %crate::errors::chain(e),
        "the join API cannot start; workers cannot join"
    );
}

/// Serves the join API on a master for as long as the task runs: the cluster CA signs node
/// certificates, tokens are read from the master's etcd, and the server listens on the
/// advertise address only.
pub async fn serve_on_master(
    cfg: crate::config::Config,
    advertise: IpAddr,
    manifest: crate::fetch::ReleaseManifest,
    force: bool,
) {
    let Material { ca, etcd_ca, tls } = match load(&cfg) {
        Ok(m) => m,
        Err(e) => return cannot_start(&e),
    };
    let pki_paths = cfg.paths.pki();
    let client_pair = pki_paths.apiserver_etcd_client();
    let etcd_tls = crate::etcd::EtcdTls {
        ca: pki_paths.etcd_ca().cert,
        cert: client_pair.cert,
        key: client_pair.key,
    };
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    // etcd was ready a moment ago; a restart of it in between is retried, boundedly per
    // attempt, for as long as kubesup runs.
    let connected = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5))
        .retry(
            "join API: connect to etcd",
            || crate::etcd::connect(&endpoint, &etcd_tls),
            |_| false,
        )
        .await;
    // The retry is unbounded and no error is final, so this returns only once connected.
    let etcd = match connected {
        Ok(c) => c,
        Err(e) => return cannot_start(&e.into()),
    };
    let cluster = ClusterInfo {
        api_servers: vec![crate::components::https_url(advertise, cfg.api_port)],
        etcd_servers: vec![crate::etcd::endpoint(advertise, cfg.ports.etcd_client)],
        cluster_dns: cfg.cluster_dns.to_string(),
        cluster_domain: cfg.cluster_domain.clone(),
        pod_cidr: cfg.pod_cidr.to_string(),
        service_cidr: cfg.service_cidr.to_string(),
        network: cfg.network.to_string(),
        kube_version: cfg.kube_version.to_string(),
        etcd_version: Some(manifest.etcd_version.clone()),
        mirror: cfg.mirror.clone(),
        flannel_backend: cfg.flannel.backend.to_string(),
    };
    let mut ctx = JoinContext::new(
        ca,
        cluster,
        Backend::Etcd(Box::new(etcd)),
        force,
        cfg.pki.leaf_validity,
    );
    ctx.etcd_ca = etcd_ca;
    // Every master answers control-plane joins: each holds the same keys and settings.
    ctx.masters = Some(server::MasterSource {
        pki: cfg.paths.pki(),
        settings: super::settings::ClusterSettings::of(&cfg),
    });
    // Nodes that set no mirror of their own fetch their binaries from their master, which
    // verifies them as it verifies its own.
    ctx.binaries = Some(super::binaries::NodeBinaries::new(
        crate::fetch::FetchOptions::from_config(&cfg),
        cfg.kube_version.clone(),
        cfg.network,
    ));
    let addr = SocketAddr::new(advertise, cfg.join_port);
    let listener = match server::bind(addr).await {
        Ok(l) => l,
        Err(e) => return cannot_start(&e.into()),
    };
    info!(%addr, force, "join API listening");
    server::serve(listener, tls, Arc::new(ctx)).await;
}
