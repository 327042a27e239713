//! From a validated config and the fetched binaries to the child specs a node supervises:
//! shared by `kubesup master` and `kubesup worker`, which differ only in the role and in where
//! the API server and etcd endpoints come from.

use std::net::IpAddr;
use std::sync::Arc;

use crate::components::{self, Binaries, BinaryRef, Component, NodeContext, NodeRole};
use crate::config::{Config, Network};
use crate::fetch::{self, FetchOptions, FetchedSet, Fetcher};
use crate::pki::Leaf;
use crate::supervise::ChildSpec;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Components(#[from] components::ComponentError),
    #[error("the binary for {0} was not fetched")]
    MissingBinary(&'static str),
}

/// Everything needed to (re)build the child specs of this node.
pub struct Build {
    pub cfg: Config,
    pub advertise: IpAddr,
    pub role: NodeRole,
    /// The API servers and etcd endpoints this node's components talk to: its own on a
    /// master, what the join API answered on a worker.
    pub api_servers: Vec<String>,
    pub etcd_servers: Vec<String>,
    pub fetched: FetchedSet,
    pub manifest: fetch::ReleaseManifest,
}

impl Build {
    pub fn binaries(&self) -> Result<Binaries, BuildError> {
        let mut bins = Binaries::default();
        for c in components::components_for(self.role, self.cfg.network) {
            if c == Component::Containerd {
                bins.0
                    .insert(c, containerd_binary(&self.cfg, &self.fetched)?);
                continue;
            }
            let rb = self
                .fetched
                .component(c)
                .map_err(|_| BuildError::MissingBinary(c.name()))?;
            bins.0.insert(
                c,
                BinaryRef {
                    path: rb.path.clone(),
                    argv_prefix: rb.argv_prefix.clone(),
                },
            );
        }
        Ok(bins)
    }

    /// Writes config files and returns the specs, each verifying its binary before every exec
    /// and fingerprinting the certificates it uses (so `certs rotate` + SIGHUP restarts exactly
    /// the components concerned).
    pub fn specs(&self) -> Result<Vec<ChildSpec>, BuildError> {
        let ctx = NodeContext {
            cfg: &self.cfg,
            role: self.role,
            advertise: self.advertise,
            api_servers: self.api_servers.clone(),
            etcd_servers: self.etcd_servers.clone(),
            etcd_version: self.manifest.etcd_version.clone(),
            flannel_version: self.manifest.flannel_version.clone(),
        };
        let bins = self.binaries()?;
        let plans = components::plan(&ctx, &bins)?;
        components::write_files(&plans)?;
        let pki = self.cfg.paths.pki();
        let mut specs = Vec::new();
        for plan in plans {
            let mut spec = plan.spec;
            for leaf in Leaf::ALL {
                if leaf.restarts().contains(&plan.component) {
                    spec.config_files.push(leaf.paths(&pki).cert);
                }
            }
            if let Ok(rb) = self.fetched.component(plan.component) {
                let rb = rb.clone();
                spec.verify = Some(Arc::new(move || {
                    fetch::verify_before_exec(&rb).map_err(|e| e.to_string())
                }));
            }
            specs.push(spec);
        }
        Ok(specs)
    }
}

fn containerd_binary(cfg: &Config, fetched: &FetchedSet) -> Result<BinaryRef, BuildError> {
    // The OS's containerd is preferred where present (Debian's is patched and kept up to date
    // by the distribution); a fetched one otherwise.
    let path = cfg
        .containerd
        .binary
        .clone()
        .or_else(|| crate::preflight::which("containerd"))
        .or_else(|| fetched.binary("containerd").map(|b| b.path.clone()))
        .ok_or(BuildError::MissingBinary("containerd"))?;
    Ok(BinaryRef {
        path,
        argv_prefix: Vec::new(),
    })
}

/// The ports this node's components listen on, with the config key that sets each.
pub fn ports(cfg: &Config, comps: &[Component]) -> Vec<(&'static str, u16)> {
    let p = &cfg.ports;
    let legacy = !cfg.kube_version.at_least(1, 24);
    let mut out = Vec::new();
    for c in comps {
        match c {
            Component::Etcd => out.extend([
                ("ports.etcd-client", p.etcd_client),
                ("ports.etcd-peer", p.etcd_peer),
                ("ports.etcd-metrics", p.etcd_metrics),
            ]),
            Component::KubeApiserver => out.push(("api-port", cfg.api_port)),
            Component::KubeControllerManager => {
                out.push(("ports.controller-manager", p.controller_manager));
                if legacy {
                    out.push((
                        "ports.controller-manager-insecure",
                        p.controller_manager_insecure,
                    ));
                }
            }
            Component::KubeScheduler => {
                out.push(("ports.scheduler", p.scheduler));
                if legacy {
                    out.push(("ports.scheduler-insecure", p.scheduler_insecure));
                }
            }
            Component::Kubelet => out.extend([
                ("ports.kubelet", p.kubelet),
                ("ports.kubelet-healthz", p.kubelet_healthz),
            ]),
            Component::KubeProxy => out.extend([
                ("ports.kube-proxy-healthz", p.kube_proxy_healthz),
                ("ports.kube-proxy-metrics", p.kube_proxy_metrics),
            ]),
            Component::Containerd | Component::Flanneld => {}
        }
    }
    out
}

fn fetch_role(role: NodeRole) -> fetch::Role {
    match role {
        NodeRole::Master { schedulable } => fetch::Role::Master { schedulable },
        NodeRole::Worker => fetch::Role::Worker,
    }
}

fn fetch_network(n: Network) -> fetch::Network {
    match n {
        Network::Flannel => fetch::Network::Flannel,
        Network::None => fetch::Network::None,
    }
}

/// Fetches (or finds in the cache) every binary this node needs, and the release manifest
/// that chose them.
pub async fn fetch_binaries(
    cfg: &Config,
    role: NodeRole,
) -> Result<(FetchedSet, fetch::ReleaseManifest), BuildError> {
    let fetcher = Fetcher::new(FetchOptions::from_config(cfg))?;
    let manifest = fetcher.manifest(&cfg.kube_version.to_string())?;
    let mut artifacts = fetch::needed_artifacts(fetch_role(role), fetch_network(cfg.network));
    let runs_pods = !matches!(role, NodeRole::Master { schedulable: false });
    if runs_pods
        && cfg.containerd.binary.is_none()
        && crate::preflight::which("containerd").is_none()
    {
        artifacts.extend(fetch::Artifact::RUNTIME);
    }
    let set = fetcher
        .fetch(&cfg.kube_version.to_string(), &artifacts)
        .await?;
    Ok((set, manifest))
}
