//! `kubesup master`: bring up a control-plane node and keep it up.
//!
//! In order: validate (done by the caller), take the data-dir lock (sweeping survivors of a
//! crashed predecessor), preflight, fetch and verify binaries, make or complete the PKI, write
//! every component's config files, then supervise etcd → kube-apiserver → controller-manager
//! and scheduler (plus containerd, kubelet and kube-proxy with `--schedulable`), each gated on
//! the readiness of what it depends on. Beside the supervisor run the hooks: flannel's network
//! config once etcd answers, RBAC and the DNS add-on once the API server is ready, the node's
//! CNI config once it has a pod CIDR, and certificate renewal.
//!
//! Re-running on the same data dir reuses the PKI, the binaries and etcd's data.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::components::{self, Binaries, BinaryRef, Component, NodeContext, NodeRole};
use crate::config::{Config, Network};
use crate::fetch::{self, FetchOptions, FetchedSet, Fetcher};
use crate::kube::{Credentials, Kube};
use crate::node::{Hook, Node, Reload};
use crate::pki::{Leaf, Pki};
use crate::supervise::{ChildSpec, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Components(#[from] components::ComponentError),
    #[error("the binary for {0} was not fetched")]
    MissingBinary(&'static str),
}

/// Everything needed to (re)build the child specs of this node.
struct Build {
    cfg: Config,
    advertise: IpAddr,
    role: NodeRole,
    fetched: FetchedSet,
    manifest: fetch::ReleaseManifest,
}

impl Build {
    fn binaries(&self) -> Result<Binaries, MasterError> {
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
                .map_err(|_| MasterError::MissingBinary(c.name()))?;
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
    fn specs(&self) -> Result<Vec<ChildSpec>, MasterError> {
        let ctx = NodeContext {
            cfg: &self.cfg,
            role: self.role,
            advertise: self.advertise,
            api_servers: vec![components::https_url(self.advertise, self.cfg.api_port)],
            etcd_servers: vec![crate::etcd::local_endpoint(self.cfg.ports.etcd_client)],
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

fn containerd_binary(cfg: &Config, fetched: &FetchedSet) -> Result<BinaryRef, MasterError> {
    // The OS's containerd is preferred where present (Debian's is patched and kept up to date
    // by the distribution); a fetched one otherwise.
    let path = cfg
        .containerd
        .binary
        .clone()
        .or_else(|| crate::preflight::which("containerd"))
        .or_else(|| fetched.binary("containerd").map(|b| b.path.clone()))
        .ok_or(MasterError::MissingBinary("containerd"))?;
    Ok(BinaryRef {
        path,
        argv_prefix: Vec::new(),
    })
}

/// The ports this node's components listen on, with the config key that sets each.
fn ports(cfg: &Config, comps: &[Component]) -> Vec<(&'static str, u16)> {
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
) -> Result<(FetchedSet, fetch::ReleaseManifest), MasterError> {
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

/// `kubesup master`.
pub async fn run(
    cfg: Config,
    ignore_preflight: Vec<String>,
    reload_config: Box<dyn FnMut() -> Result<Config, String> + Send>,
) -> Result<(), MasterError> {
    let advertise = cfg.require_advertise()?;
    let role = NodeRole::Master {
        schedulable: cfg.schedulable,
    };
    let comps = components::components_for(role, cfg.network);
    // The lock first: it sweeps survivors of a killed kubesup, which would otherwise hold the
    // very ports preflight checks.
    let node = Node::acquire(cfg.paths.clone())?;
    crate::preflight::run(
        &cfg,
        &ports(&cfg, &comps),
        cfg.schedulable,
        &ignore_preflight,
    )?;

    let started = std::time::Instant::now();
    let (fetched, manifest) = fetch_binaries(&cfg, role).await?;
    info!(elapsed = ?started.elapsed(), "binaries ready");
    let pki_spec = crate::certs::pki_spec(&cfg, advertise);
    let report = Pki::new(&cfg.paths).generate(&pki_spec)?;
    if !report.is_empty() {
        info!(
            issued = report.issued.len(),
            cas = report.cas_created.len(),
            "PKI written"
        );
    }

    let build = Build {
        cfg: cfg.clone(),
        advertise,
        role,
        fetched,
        manifest,
    };
    let specs = build.specs()?;
    let hooks = hooks(&cfg, advertise, &build.manifest);

    let fetched = build.fetched.clone();
    let manifest = build.manifest.clone();
    let mut reload_config = reload_config;
    let reload: Reload = Box::new(move || {
        let cfg = reload_config()?;
        let advertise = cfg.require_advertise().map_err(|e| e.to_string())?;
        Pki::new(&cfg.paths)
            .generate(&crate::certs::pki_spec(&cfg, advertise))
            .map_err(|e| e.to_string())?;
        Build {
            cfg,
            advertise,
            role,
            fetched: fetched.clone(),
            manifest: manifest.clone(),
        }
        .specs()
        .map_err(|e| e.to_string())
    });
    node.supervise("master", specs, Some(reload), hooks).await?;
    Ok(())
}

fn admin_kube(cfg: &Config) -> Option<Kube> {
    let pki = cfg.paths.pki();
    let admin = pki.admin();
    let creds = Credentials {
        ca: pki.ca().cert,
        cert: admin.cert,
        key: admin.key,
    };
    match Kube::new(&format!("https://127.0.0.1:{}", cfg.api_port), &creds) {
        Ok(k) => Some(k),
        Err(e) => {
            warn!(error = %e, "cannot build the API client");
            None
        }
    }
}

fn hooks(cfg: &Config, advertise: IpAddr, manifest: &fetch::ReleaseManifest) -> Vec<Hook> {
    let mut hooks: Vec<Hook> = Vec::new();

    if cfg.network == Network::Flannel {
        let cfg = cfg.clone();
        let v2 = components::flannel_uses_etcd_v2(&manifest.flannel_version);
        hooks.push(Box::new(move |sup: &Supervisor| {
            let ready = sup.ready_watch(Component::Etcd.name());
            Box::pin(async move {
                if let Some(mut r) = ready {
                    let _ = r.wait_for(|v| *v).await;
                }
                write_flannel(&cfg, v2).await;
            })
        }));
    }

    {
        let cfg = cfg.clone();
        hooks.push(Box::new(move |sup: &Supervisor| {
            let ready = sup.ready_watch(Component::KubeApiserver.name());
            Box::pin(async move {
                if let Some(mut r) = ready {
                    let _ = r.wait_for(|v| *v).await;
                }
                apply_addons(&cfg).await;
            })
        }));
    }

    if cfg.schedulable {
        let cfg = cfg.clone();
        hooks.push(Box::new(move |_sup: &Supervisor| {
            Box::pin(async move {
                if let Some(kube) = admin_kube(&cfg) {
                    crate::network::ensure_cni_config(&cfg, &kube).await;
                }
            })
        }));
    }

    {
        let cfg = cfg.clone();
        hooks.push(Box::new(move |sup: &Supervisor| {
            let handle = sup.handle();
            Box::pin(async move { renew_certificates(cfg, advertise, handle).await })
        }));
    }
    hooks
}

async fn write_flannel(cfg: &Config, v2: bool) {
    let pki = cfg.paths.pki();
    let client = pki.etcd_healthcheck_client();
    let tls = crate::etcd::EtcdTls {
        ca: pki.etcd_ca().cert,
        cert: client.cert,
        key: client.key,
    };
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    // Bounded: a few attempts over about a minute, then give up loudly (the operator can
    // restart kubesup; nothing else depends on it).
    for attempt in 1..=12u32 {
        let result = async {
            let mut c = crate::etcd::connect(&endpoint, &tls).await?;
            let version = crate::etcd::status(&mut c).await?;
            info!(version, "etcd is healthy");
            crate::etcd::write_flannel_config(&mut c, &endpoint, &tls, cfg.pod_cidr, v2).await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                warn!(attempt, error = %e, "cannot write flannel's network config yet");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    tracing::error!(
        "gave up writing flannel's network config; pods on flannel will get no subnet until kubesup restarts"
    );
}

async fn apply_addons(cfg: &Config) {
    let Some(kube) = admin_kube(cfg) else { return };
    for attempt in 1..=30u32 {
        let mut failed = None;
        for obj in crate::addons::objects(cfg) {
            if let Err(e) = kube.apply(&obj).await {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => {
                let kubeconfig = cfg.paths.kubeconfig(crate::paths::KubeconfigUser::Admin);
                info!(kubeconfig = %kubeconfig.display(), "cluster objects and DNS add-on applied");
                println!(
                    "The control plane is up. Use it with: export KUBECONFIG={}; kubectl get nodes",
                    kubeconfig.display()
                );
                return;
            }
            Some(e) => {
                warn!(attempt, error = %e, "cannot apply cluster objects yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tracing::error!(
        "gave up applying the cluster objects and DNS add-on; restart kubesup to retry"
    );
}

/// Shortest time between two background renewals.
const MIN_RENEWAL_INTERVAL: Duration = Duration::from_secs(20);

/// Renews leaves at about two thirds of their lifetime (with jitter), then restarts only the
/// components that use them.
async fn renew_certificates(
    cfg: Config,
    advertise: IpAddr,
    sup: crate::supervise::SupervisorHandle,
) {
    let pki = Pki::new(&cfg.paths);
    let spec = crate::certs::pki_spec(&cfg, advertise);
    loop {
        let Some((at, leaves)) = pki.next_renewal(SystemTime::now()) else {
            return;
        };
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            // Wake at least daily: the clock may jump (suspend, NTP), and sleeping a whole
            // year on one timer is fragile.
            .min(Duration::from_secs(86_400))
            // And never spin: whatever the PKI answers, renewals (and the restarts they cause)
            // are at least this far apart.
            .max(MIN_RENEWAL_INTERVAL);
        info!(at = %humantime::format_rfc3339_seconds(at), leaves = ?leaves.iter().map(|l| l.name()).collect::<Vec<_>>(), "next certificate renewal");
        tokio::time::sleep(wait).await;
        match pki.renew_due(&spec, SystemTime::now()) {
            Ok(renewed) if !renewed.is_empty() => {
                let mut restart: Vec<Component> = renewed
                    .iter()
                    .flat_map(|l| l.restarts().iter().copied())
                    .collect();
                restart.sort();
                restart.dedup();
                info!(renewed = ?renewed.iter().map(|l| l.name()).collect::<Vec<_>>(), "renewed certificates");
                for c in restart {
                    sup.restart(c.name());
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "certificate renewal failed; retrying in an hour");
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    }
}
