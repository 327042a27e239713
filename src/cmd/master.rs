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
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::cli::MasterArgs;
use crate::cmd::{Globals, SetupError};
use crate::components;
use crate::config::{Config, ConfigError};
use crate::daemon::{Daemon, Hook, Reload};
use crate::fetch::{self, FetchedSet};
use crate::kube::{Credentials, Kube};
use crate::model::{Component, Network, NodeRole};
use crate::pki::Pki;
use crate::plan::{Build, fetch_binaries, ports};
use crate::retry::Backoff;
use crate::supervise::Supervisor;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error(transparent)]
    Build(#[from] crate::plan::BuildError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("cannot create the kubelet cgroup root {path}")]
    Cgroup {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

crate::errors::exit_via!(MasterError: Config, Setup);

/// `kubesup master`: the config is validated, and the advertise address required, before
/// anything else happens.
pub fn run(a: MasterArgs, g: &Globals) -> Result<(), MasterError> {
    let cfg = g.config(&a.common)?;
    cfg.require_advertise()?;
    g.init_tracing(Some(cfg.log_format))?;
    let (common, g2) = (a.common.clone(), g.clone());
    let reload_config = Box::new(move || g2.config(&common));
    crate::cmd::runtime()?.block_on(serve(cfg, a.ignore_preflight, a.force, reload_config))
}

/// Brings the control plane up and keeps it up until told to stop.
async fn serve(
    cfg: Config,
    ignore_preflight: Vec<String>,
    force: bool,
    reload_config: Box<dyn FnMut() -> Result<Config, ConfigError> + Send>,
) -> Result<(), MasterError> {
    let advertise = cfg.require_advertise()?;
    let role = NodeRole::Master {
        schedulable: cfg.schedulable,
    };
    let comps = role.components(cfg.network);
    // The lock first: it sweeps survivors of a killed kubesup, which would otherwise hold the
    // very ports preflight checks.
    let daemon = Daemon::acquire(cfg.paths.clone())?;
    let mut needed_ports = ports(&cfg, &comps);
    needed_ports.push(("join-port", cfg.join_port));
    crate::preflight::run(&cfg, &needed_ports, cfg.schedulable, &ignore_preflight)?;

    if let (true, Some(root)) = (cfg.schedulable, &cfg.kubelet.cgroup_root) {
        crate::cgroup::ensure(root)
            .map_err(|(path, source)| MasterError::Cgroup { path, source })?;
    }

    let started = std::time::Instant::now();
    let (fetched, manifest) = fetch_binaries(&cfg, role).await?;
    info!(elapsed = ?started.elapsed(), "binaries ready");
    let pki_spec = crate::plan::pki_spec(&cfg, advertise);
    let report = Pki::new(&cfg.paths).generate(&pki_spec)?;
    if !report.is_empty() {
        info!(
            issued = report.issued.len(),
            cas = report.cas_created.len(),
            "PKI written"
        );
    }

    let build = master_build(cfg.clone(), advertise, role, fetched, manifest);
    let specs = build.plan()?.write()?;
    let hooks = hooks(&cfg, advertise, &build.manifest, force);

    let fetched = build.fetched.clone();
    let manifest = build.manifest.clone();
    let mut reload_config = reload_config;
    let reload: Reload = Box::new(move || {
        let cfg = reload_config()?;
        let advertise = cfg.require_advertise()?;
        Pki::new(&cfg.paths).generate(&crate::plan::pki_spec(&cfg, advertise))?;
        Ok(
            master_build(cfg, advertise, role, fetched.clone(), manifest.clone())
                .plan()?
                .write()?,
        )
    });
    daemon
        .supervise("master", specs, Some(reload), hooks)
        .await?;
    Ok(())
}

/// A master's components talk to its own API server and etcd.
fn master_build(
    cfg: Config,
    advertise: IpAddr,
    role: NodeRole,
    fetched: FetchedSet,
    manifest: fetch::ReleaseManifest,
) -> Build {
    Build {
        api_servers: vec![components::https_url(advertise, cfg.api_port)],
        etcd_servers: vec![crate::etcd::local_endpoint(cfg.ports.etcd_client)],
        cfg,
        advertise,
        role,
        fetched,
        manifest,
    }
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
            warn!(error = %crate::errors::chain(&e), "cannot build the API client");
            None
        }
    }
}

fn hooks(
    cfg: &Config,
    advertise: IpAddr,
    manifest: &fetch::ReleaseManifest,
    force: bool,
) -> Vec<Hook> {
    let mut hooks: Vec<Hook> = Vec::new();

    {
        let cfg = cfg.clone();
        let manifest = manifest.clone();
        hooks.push(Box::new(move |sup: &Supervisor| {
            let ready = sup.ready_watch(Component::Etcd.name());
            Box::pin(async move {
                if let Some(mut r) = ready {
                    let _ = r.wait_for(|v| *v).await;
                }
                crate::join::serve_on_master(cfg, advertise, manifest, force).await;
            })
        }));
    }

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
    let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    // Bounded: a few attempts over about a minute, then give up loudly (the operator can
    // restart kubesup; nothing else depends on it).
    let written = Backoff::fixed(Duration::from_secs(5))
        .with_attempts(12)
        .retry(
            "write flannel's network config",
            || async {
                let mut c = crate::etcd::connect(&endpoint, &tls).await?;
                let version = crate::etcd::status(&mut c).await?;
                info!(version, "etcd is healthy");
                crate::etcd::write_flannel_config(&mut c, &endpoint, &tls, cfg.pod_cidr, v2).await
            },
            |_| false,
        )
        .await;
    if let Err(e) = written {
        tracing::error!(
            error = %crate::errors::chain(&e),
            "gave up writing flannel's network config; pods on flannel will get no subnet until kubesup restarts"
        );
    }
}

async fn apply_addons(cfg: &Config) {
    let Some(kube) = admin_kube(cfg) else { return };
    let applied = Backoff::fixed(Duration::from_secs(2))
        .with_attempts(30)
        .retry(
            "apply the cluster objects",
            || async {
                for obj in crate::addons::objects(cfg) {
                    kube.apply(&obj).await?;
                }
                Ok::<_, crate::kube::KubeError>(())
            },
            |_| false,
        )
        .await;
    match applied {
        Ok(()) => {
            let kubeconfig = cfg.paths.kubeconfig(crate::paths::KubeconfigUser::Admin);
            info!(kubeconfig = %kubeconfig.display(), "cluster objects and DNS add-on applied");
            println!(
                "The control plane is up. Use it with: export KUBECONFIG={}; kubectl get nodes",
                kubeconfig.display()
            );
        }
        Err(e) => tracing::error!(
            error = %crate::errors::chain(&e),
            "gave up applying the cluster objects and DNS add-on; restart kubesup to retry"
        ),
    }
}

/// A master's side of renewal: its own leaves, signed by its own CA.
struct MasterRenewal {
    pki: Pki,
    spec: crate::pki::PkiSpec,
}

impl crate::renewal::Renewal for MasterRenewal {
    type Error = crate::pki::PkiError;

    fn next_due(&self, now: SystemTime) -> Result<Option<SystemTime>, Self::Error> {
        Ok(self.pki.next_renewal(now).map(|(at, _)| at))
    }

    async fn renew(&mut self, now: SystemTime) -> Result<Vec<Component>, Self::Error> {
        let renewed = self.pki.renew_due(&self.spec, now)?;
        info!(renewed = ?renewed.iter().map(|l| l.name()).collect::<Vec<_>>(), "renewed the master's certificates");
        Ok(renewed
            .into_iter()
            .flat_map(|l| crate::plan::leaf_readers(l).iter().copied())
            .collect())
    }
}

/// Renews leaves at about two thirds of their lifetime (with jitter), then restarts only the
/// components that use them.
async fn renew_certificates(
    cfg: Config,
    advertise: IpAddr,
    sup: crate::supervise::SupervisorHandle,
) {
    let side = MasterRenewal {
        pki: Pki::new(&cfg.paths),
        spec: crate::plan::pki_spec(&cfg, advertise),
    };
    crate::renewal::run("master", side, SystemTime::now, |c| sup.restart(c.name())).await;
}
