//! The planner: from a validated config and the fetched binaries to what this node runs.
//!
//! Owns: the child specs of a node ([`Build`]), the ports they listen on ([`ports`]), the PKI a
//! master asks for ([`pki_spec`]), and **which certificates and kubeconfigs restart which
//! processes** ([`leaf_readers`], [`components_to_restart`]): the PKI knows certificates, the
//! planner knows processes.
//!
//! Must not: write files or start processes. [`Build::plan`] returns the files a node needs
//! beside its specs; the caller writes them ([`Planned::write_files`]).

use std::net::IpAddr;
use std::sync::Arc;

use tracing::debug;

use crate::components::{self, Binaries, BinaryRef, GeneratedFile, NodeContext};
use crate::config::Config;
use crate::fetch::{self, FetchOptions, FetchedSet, Fetcher};
use crate::model::{Component, NodeRole};
use crate::paths::KubeconfigUser;
use crate::pki::{KubeconfigServers, Leaf, PkiSpec, Report};
use crate::supervise::{ChildSpec, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Components(#[from] components::ComponentError),
    #[error("the binary for {0} was not fetched")]
    MissingBinary(&'static str),
    #[error(transparent)]
    Cni(#[from] crate::network::CniError),
}

/// A node's plan: the specs to supervise and the files they read, not yet written.
pub struct Planned {
    pub specs: Vec<ChildSpec>,
    pub files: Vec<GeneratedFile>,
}

impl Planned {
    /// Writes the files (a file whose contents are already right is left alone, so its mtime
    /// and a running component are undisturbed) and hands over the specs.
    pub fn write(self) -> Result<Vec<ChildSpec>, BuildError> {
        components::write_files(&self.files)?;
        Ok(self.specs)
    }
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
    /// A master's etcd membership (default on a worker, which runs no etcd).
    pub etcd_cluster: components::EtcdCluster,
    pub fetched: FetchedSet,
    pub manifest: fetch::ReleaseManifest,
}

impl Build {
    pub fn binaries(&self) -> Result<Binaries, BuildError> {
        let mut bins = Binaries::default();
        for c in self.role.components(self.cfg.network) {
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

    /// The specs, each verifying its binary before every exec and fingerprinting the
    /// certificates it uses (so `certs rotate` + SIGHUP restarts exactly the components
    /// concerned), and the config files they read.
    pub fn plan(&self) -> Result<Planned, BuildError> {
        let ctx = NodeContext {
            cfg: &self.cfg,
            role: self.role,
            advertise: self.advertise,
            api_servers: self.api_servers.clone(),
            etcd_servers: self.etcd_servers.clone(),
            etcd_version: self.manifest.etcd_version.clone(),
            flannel_version: self.manifest.flannel_version.clone(),
            etcd_cluster: self.etcd_cluster.clone(),
        };
        let bins = self.binaries()?;
        let plans = components::plan(&ctx, &bins)?;
        let pki = self.cfg.paths.pki();
        let mut out = Planned {
            specs: Vec::new(),
            files: Vec::new(),
        };
        for plan in plans {
            let mut spec = plan.spec;
            for leaf in Leaf::ALL {
                if leaf_readers(leaf).contains(&plan.component) {
                    spec.config_files.push(leaf.paths(&pki).cert);
                }
            }
            if let Ok(rb) = self.fetched.component(plan.component) {
                let rb = rb.clone();
                spec.verify = Some(Arc::new(move || {
                    fetch::verify_before_exec(&rb).map_err(VerifyError::new)
                }));
            }
            out.specs.push(spec);
            out.files.extend(plan.files);
        }
        Ok(out)
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

/// True when the node runs pods and has no containerd of its own (none configured, none on
/// the PATH): then containerd, runc and the CNI plugins are fetched like the rest.
pub fn needs_runtime(cfg: &Config, role: NodeRole) -> bool {
    role.runs_pods()
        && cfg.containerd.binary.is_none()
        && crate::preflight::which("containerd").is_none()
}

/// What a node fetches: [`fetch::needed_artifacts`], less flannel's CNI plugin when the
/// operator chose the CNI bin dir (`containerd.cni-bin-dir` is theirs to fill), plus the
/// runtime ([`fetch::Artifact::RUNTIME`]) when asked.
pub fn node_artifacts(cfg: &Config, role: NodeRole, with_runtime: bool) -> Vec<fetch::Artifact> {
    let mut artifacts = fetch::needed_artifacts(role, cfg.network);
    if cfg.containerd.cni_bin_dir.is_some() {
        artifacts.retain(|a| *a != fetch::Artifact::FlannelCni);
    }
    if with_runtime {
        artifacts.extend(fetch::Artifact::RUNTIME);
    }
    artifacts
}

/// Fetches (or finds in the cache) every binary this node needs, and the release manifest
/// that chose them. The CNI bin dir is readied and checked around the fetch
/// ([`check_cni_before_fetch`], [`ready_cni_after_fetch`]).
pub async fn fetch_binaries(
    cfg: &Config,
    role: NodeRole,
) -> Result<(FetchedSet, fetch::ReleaseManifest), BuildError> {
    check_cni_before_fetch(cfg, role)?;
    let fetcher = Fetcher::new(FetchOptions::from_config(cfg))?;
    let manifest = fetcher.manifest(&cfg.kube_version)?;
    let artifacts = node_artifacts(cfg, role, needs_runtime(cfg, role));
    let set = fetcher.fetch(&cfg.kube_version, &artifacts).await?;
    ready_cni_after_fetch(cfg, role, &set)?;
    Ok((set, manifest))
}

/// On a node that runs pods, checks the operator's CNI bin dir (`containerd.cni-bin-dir`)
/// before anything is fetched: nothing fetched goes there, and a fetch that fails for another
/// reason must not hide it ([`crate::network::check_cni_plugins`]).
pub fn check_cni_before_fetch(cfg: &Config, role: NodeRole) -> Result<(), BuildError> {
    if role.runs_pods()
        && let dir @ components::CniBinDir::Operator(_) = &components::cni_bin_dir(cfg)
    {
        crate::network::check_cni_plugins(cfg, dir)?;
    }
    Ok(())
}

/// On a node that runs pods with kubesup's own CNI bin dir, once the fetch has filled it
/// (however it fetched): links the OS's plugins in beside the fetched ones, unless the
/// runtime's plugins were fetched too, and checks that every plugin the node's CNI config
/// names is there, before anything starts.
pub fn ready_cni_after_fetch(
    cfg: &Config,
    role: NodeRole,
    set: &FetchedSet,
) -> Result<(), BuildError> {
    if !role.runs_pods() {
        return Ok(());
    }
    if let dir @ components::CniBinDir::Kubesup(_) = &components::cni_bin_dir(cfg) {
        if !set.sources.contains_key(fetch::Artifact::CniPlugins.name())
            && !set.binaries.contains_key("cni/bridge")
            && let Some(os) = components::os_cni_plugin_dir()
        {
            let linked = set.link_os_cni_plugins(&os)?;
            debug!(os = %os.display(), dir = %dir.path().display(), plugins = linked.len(), "linked the OS's CNI plugins");
        }
        crate::network::check_cni_plugins(cfg, dir)?;
    }
    Ok(())
}

/// Components that read this leaf only at start-up and must be restarted when it changes.
/// Empty for kubesup's own users (join API, etcd health probe: they reload per connection)
/// and for the admin kubeconfig (read by people, per command).
pub fn leaf_readers(leaf: Leaf) -> &'static [Component] {
    match leaf {
        Leaf::Apiserver
        | Leaf::ApiserverKubeletClient
        | Leaf::ApiserverEtcdClient
        | Leaf::FrontProxyClient => &[Component::KubeApiserver],
        Leaf::EtcdServer | Leaf::EtcdPeer => &[Component::Etcd],
        Leaf::FlannelEtcdClient => &[Component::Flanneld],
        Leaf::ControllerManager => &[Component::KubeControllerManager],
        Leaf::Scheduler => &[Component::KubeScheduler],
        Leaf::KubeProxy => &[Component::KubeProxy],
        Leaf::KubeletClient | Leaf::KubeletServer => &[Component::Kubelet],
        Leaf::EtcdHealthcheckClient | Leaf::Admin | Leaf::JoinServer => &[],
    }
}

/// Components that read a kubeconfig at start-up.
fn kubeconfig_readers(user: KubeconfigUser) -> &'static [Component] {
    match user {
        KubeconfigUser::Admin => &[],
        KubeconfigUser::ControllerManager => &[Component::KubeControllerManager],
        KubeconfigUser::Scheduler => &[Component::KubeScheduler],
        KubeconfigUser::Kubelet => &[Component::Kubelet],
        KubeconfigUser::KubeProxy => &[Component::KubeProxy],
    }
}

/// Components that must restart to pick up what a PKI run wrote, sorted, no duplicates.
pub fn components_to_restart(report: &Report) -> Vec<Component> {
    let mut out: Vec<Component> = report
        .issued
        .iter()
        .flat_map(|i| leaf_readers(i.leaf).iter().copied())
        .collect();
    for user in &report.kubeconfigs_written {
        out.extend(kubeconfig_readers(*user));
    }
    if report.service_account_key_created {
        out.extend([Component::KubeApiserver, Component::KubeControllerManager]);
    }
    out.sort();
    out.dedup();
    out
}

/// The PKI a master with this config needs.
pub fn pki_spec(cfg: &Config, advertise: IpAddr) -> PkiSpec {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| cfg.node_name.clone())
        .to_lowercase();
    PkiSpec {
        node_name: cfg.node_name.clone(),
        hostname,
        advertise,
        api_service_ip: cfg.api_service_ip,
        cluster_domain: cfg.cluster_domain.clone(),
        extra_sans: cfg.pki.extra_sans.clone(),
        key_type: cfg.pki.key_type,
        ca_validity: cfg.pki.ca_validity,
        leaf_validity: cfg.pki.leaf_validity,
        kubeconfig_servers: master_kubeconfig_servers(cfg, advertise),
    }
}

/// Where a master's kubeconfigs point. A schedulable master's kubelet and kube-proxy go through
/// the node-local API load balancer, as a worker's do, so that its node stays Ready while its
/// own API server restarts or hangs; controller-manager and scheduler stay on the local API
/// server (they follow their leader election, not one server).
fn master_kubeconfig_servers(cfg: &Config, advertise: IpAddr) -> KubeconfigServers {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut servers = KubeconfigServers::standard(
        &components::https_url(advertise, cfg.api_port),
        &components::https_url(loopback, cfg.api_port),
    );
    if cfg.schedulable {
        let lb = components::https_url(loopback, cfg.api_lb_port);
        servers.kubelet.clone_from(&lb);
        servers.kube_proxy = lb;
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Issued, ReissueReason};

    #[test]
    fn flannels_cni_plugin_is_fetched_unless_the_cni_dir_is_the_operators() {
        use fetch::Artifact;
        let cfg = |yaml: &str| {
            let mut raw = crate::config::RawConfig::from_yaml(yaml).unwrap();
            raw.data_dir = "/srv/ks".into();
            raw.node_name = Some("node1".into());
            raw.validate().unwrap()
        };
        let ours = cfg("network: flannel\n");
        let a = node_artifacts(&ours, NodeRole::Worker, false);
        assert!(a.contains(&Artifact::FlannelCni) && !a.contains(&Artifact::CniPlugins));
        let a = node_artifacts(&ours, NodeRole::Worker, true);
        assert!(a.contains(&Artifact::FlannelCni) && a.contains(&Artifact::CniPlugins));
        let theirs = cfg("network: flannel\ncontainerd: {cni-bin-dir: /usr/lib/cni}\n");
        let a = node_artifacts(&theirs, NodeRole::Worker, true);
        assert!(!a.contains(&Artifact::FlannelCni) && a.contains(&Artifact::Flanneld));
        let none = cfg("network: none\n");
        assert!(!node_artifacts(&none, NodeRole::Worker, false).contains(&Artifact::FlannelCni));
    }

    #[test]
    fn every_leaf_restarts_what_reads_it() {
        assert_eq!(leaf_readers(Leaf::Apiserver), &[Component::KubeApiserver]);
        assert_eq!(
            leaf_readers(Leaf::ApiserverEtcdClient),
            &[Component::KubeApiserver]
        );
        assert_eq!(leaf_readers(Leaf::EtcdPeer), &[Component::Etcd]);
        assert_eq!(
            leaf_readers(Leaf::ControllerManager),
            &[Component::KubeControllerManager]
        );
        assert_eq!(leaf_readers(Leaf::KubeletServer), &[Component::Kubelet]);
    }

    #[test]
    fn report_maps_changes_to_restarts() {
        let issued = |leaf| Issued {
            leaf,
            reason: ReissueReason::RenewalWindow,
        };
        let r = Report {
            issued: vec![
                issued(Leaf::EtcdServer),
                issued(Leaf::ApiserverEtcdClient),
                issued(Leaf::Apiserver),
            ],
            kubeconfigs_written: vec![KubeconfigUser::Scheduler, KubeconfigUser::Admin],
            ..Default::default()
        };
        assert_eq!(
            components_to_restart(&r),
            vec![
                Component::Etcd,
                Component::KubeApiserver,
                Component::KubeScheduler
            ]
        );
        assert!(components_to_restart(&Report::default()).is_empty());
    }
}
