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
//!
//! With `--join` (an empty data dir), the master joins the control plane of an existing
//! cluster instead ([`join`]): the cluster's keys and settings first, then its own PKI, then
//! its etcd member as a learner, promoted by [`membership`] before its API server starts.

pub mod join;
pub mod membership;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::cli::MasterArgs;
use crate::cmd::{Globals, SetupError};
use crate::components;
use crate::config::{Config, ConfigError};
use crate::daemon::{Daemon, Hook, Reload, once_ready};
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
    #[error(transparent)]
    Join(Box<join::JoinError>),
    #[error(transparent)]
    Token(#[from] crate::cmd::jointoken::JoinTokenError),
    #[error(transparent)]
    ApiLb(#[from] crate::apilb::ApiLbError),
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The paired flannel and etcd cannot work together (an old flannel needs etcd's v2 API).
    #[error(transparent)]
    FlannelEtcd(crate::etcd::EtcdError),
    #[error(
        "this master's etcd member {id} was removed from the cluster, so its data in {} is of no \
         use and it must not start: run `kubesup reset`, then join again with `kubesup master \
         --join`",
        data_dir.display()
    )]
    Removed {
        id: String,
        data_dir: std::path::PathBuf,
    },
}

impl crate::errors::Exit for MasterError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Config(e) => e.exit_code(),
            Self::Setup(e) => e.exit_code(),
            Self::Join(e) => e.exit_code(),
            Self::Token(e) => e.exit_code(),
            Self::Backup(e) => e.exit_code(),
            // Found from the config and the release table alone, before anything is written.
            Self::FlannelEtcd(_) => crate::errors::EXIT_INVALID,
            _ => crate::errors::EXIT_FAILURE,
        }
    }

    fn render(&self) -> String {
        match self {
            Self::Config(e) => e.render(),
            Self::Setup(e) => e.render(),
            other => format!("error: {}", crate::errors::chain(other)),
        }
    }
}

/// `kubesup master`: the config is validated, and the advertise address required, before
/// anything else happens.
pub fn run(a: MasterArgs, g: &Globals) -> Result<(), MasterError> {
    let raw = g.raw_config(&a.common)?;
    let paths = crate::paths::Paths::new(&raw.data_dir);
    let recorded = join::read_joined(&paths)?;
    let start = join::decide(paths.etcd_has_data(), recorded, a.join.as_deref())?;
    // Validated with the recorded cluster settings, when there are any: a flag that conflicts
    // with them stops here.
    let cfg = join::config_with(raw.clone(), start.joined())?;
    cfg.require_advertise()?;
    g.init_tracing(Some(cfg.log_format))?;
    if a.token.is_some() {
        crate::cmd::jointoken::scrub_from_argv()?;
    }
    let token = match crate::cmd::jointoken::TokenSource::pick(a.token, a.token_file) {
        Some(source) => Some(crate::cmd::jointoken::read(source)?),
        None => None,
    };
    let (common, g2) = (a.common.clone(), g.clone());
    let reload_config = Box::new(move || {
        let raw = g2.raw_config(&common)?;
        let joined = join::read_joined(&crate::paths::Paths::new(&raw.data_dir)).map_err(|e| {
            ConfigError::Invalid(crate::config::Problems::one("data-dir", e.to_string()))
        })?;
        join::config_with(raw, joined.as_ref())
    });
    let opts = Options {
        ignore_preflight: a.ignore_preflight,
        force: a.force,
        token,
        cluster_reset: a.cluster_reset,
    };
    crate::cmd::runtime()?.block_on(serve(cfg, raw, start, opts, reload_config))
}

struct Options {
    ignore_preflight: Vec<String>,
    force: bool,
    token: Option<crate::join::token::Token>,
    /// `--cluster-reset` (see [`crate::backup::reset`]).
    cluster_reset: bool,
}

/// Brings the control plane up and keeps it up until told to stop.
async fn serve(
    cfg: Config,
    raw: crate::config::RawConfig,
    start: join::Start,
    opts: Options,
    reload_config: Box<dyn FnMut() -> Result<Config, ConfigError> + Send>,
) -> Result<(), MasterError> {
    let advertise = cfg.require_advertise()?;
    let role = NodeRole::Master {
        schedulable: cfg.schedulable,
    };
    let comps = role.components(cfg.network);
    // A new join asks the join API before anything touches the data dir: a refused token, or a
    // flag that conflicts with the cluster's settings, leaves nothing behind.
    let answer = match &start {
        join::Start::Join {
            url,
            recorded: None,
        } => Some(join::ask(url, opts.token.clone(), &raw, &cfg.node_name, advertise).await?),
        _ => None,
    };
    // The checks of a new join see the cluster's settings (its version, its flannel backend),
    // which only the answer carries so far; the config proper is made once it is installed.
    let checked = match &answer {
        Some(answer) => {
            let mut raw = raw.clone();
            answer.settings.apply(&mut raw)?;
            raw.validate()?
        }
        None => cfg.clone(),
    };
    check_flannel_etcd(&checked)?;
    // The lock first: it sweeps survivors of a killed kubesup, which would otherwise hold the
    // very ports preflight checks. Nothing is written to the data dir before it is held.
    let daemon = Daemon::acquire(cfg.paths.clone())?;
    let mut needed_ports = ports(&cfg, &comps);
    needed_ports.push(("join-port", cfg.join_port));
    if cfg.schedulable {
        needed_ports.push(("api-lb-port", cfg.api_lb_port));
    }
    crate::preflight::run(
        &checked,
        &needed_ports,
        cfg.schedulable,
        &opts.ignore_preflight,
    )?;

    // A joining master: the cluster's keys and settings, then its config with them.
    let cfg = match &start {
        join::Start::Join { url, recorded } => {
            let joined = match (answer, recorded) {
                (Some(answer), _) => join::install(&cfg.paths, url, answer)?,
                (None, Some(r)) => {
                    info!(join = %r.join_url, "resuming the control-plane join recorded in this data dir");
                    r.clone()
                }
                (None, None) => return Err(join::JoinError::NoToken.into()),
            };
            join::config_with(raw, Some(&joined))?
        }
        join::Start::Member { .. } => {
            membership::check_not_removed(&cfg).await?;
            cfg
        }
        join::Start::NewCluster => cfg,
    };

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

    let record = membership::read_record(&cfg.paths);
    // --cluster-reset: once per data dir, recorded before etcd starts (backup::reset).
    let force_new_cluster = crate::backup::reset::take(&cfg.paths, opts.cluster_reset)?;
    let etcd_cluster = match &start {
        join::Start::Join { .. } => {
            let joined =
                join::read_joined(&cfg.paths)?.ok_or_else(|| join::JoinError::Unfinished {
                    join_url: String::new(),
                })?;
            let peer_url = components::https_url(advertise, cfg.ports.etcd_peer);
            let initial = join::add_member(&cfg, &joined, &peer_url).await?;
            components::EtcdCluster {
                join_initial_cluster: Some(initial),
                multi_member: true,
                force_new_cluster: false,
            }
        }
        _ => components::EtcdCluster {
            join_initial_cluster: None,
            multi_member: record.multi_member,
            force_new_cluster,
        },
    };
    let planned_multi = etcd_cluster.multi_member;

    // The API server starts once this master's etcd member is a voter (membership::watch).
    let (voter_tx, voter_rx) = tokio::sync::watch::channel(false);
    let build = master_build(
        cfg.clone(),
        advertise,
        role,
        fetched,
        manifest,
        etcd_cluster,
    );
    let specs = gate_apiserver(build.plan()?.write()?, &voter_rx);
    let mut hooks = hooks(&cfg, advertise, &build.manifest, opts.force);
    {
        let cfg = cfg.clone();
        hooks.push(once_ready(Component::Etcd, move || {
            membership::watch(cfg, voter_tx, planned_multi)
        }));
    }
    // Scheduled backups (backup.schedule), made only where the etcd leader is.
    {
        let cfg = cfg.clone();
        hooks.push(once_ready(Component::Etcd, move || {
            let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
            crate::backup::schedule(cfg, tls)
        }));
    }

    // A schedulable master's kubelet and kube-proxy reach every API server through the
    // node-local balancer, as a worker's do; its own API server is where the list starts and
    // the last resort.
    let daemon = if cfg.schedulable {
        let own = components::https_url(advertise, cfg.api_port);
        let fallback = std::net::SocketAddr::new(advertise, cfg.api_port);
        let (balancer, status) = crate::cmd::nodelb::start(&cfg, &[own], Some(fallback)).await?;
        hooks.push(balancer);
        daemon.with_api_lb(crate::cmd::nodelb::listen_addr(cfg.api_lb_port), status)
    } else {
        daemon
    };

    let fetched = build.fetched.clone();
    let manifest = build.manifest.clone();
    let joining_initial = build.etcd_cluster.join_initial_cluster.clone();
    let mut reload_config = reload_config;
    let reload: Reload = Box::new(move || {
        let cfg = reload_config()?;
        let advertise = cfg.require_advertise()?;
        Pki::new(&cfg.paths).generate(&crate::plan::pki_spec(&cfg, advertise))?;
        let etcd_cluster = components::EtcdCluster {
            join_initial_cluster: joining_initial.clone(),
            multi_member: membership::read_record(&cfg.paths).multi_member,
            // A reload never resets: the reset was the first start's, once.
            force_new_cluster: false,
        };
        let specs = master_build(
            cfg,
            advertise,
            role,
            fetched.clone(),
            manifest.clone(),
            etcd_cluster,
        )
        .plan()?
        .write()?;
        Ok(gate_apiserver(specs, &voter_rx))
    });
    daemon
        .supervise("master", specs, Some(reload), hooks)
        .await?;
    Ok(())
}

/// With flannel, whether the flannel and etcd this master will run can work together: a
/// flannel that reads etcd's v2 API needs an etcd that still has it ([`crate::etcd::flannel_api`]).
/// Decided from the release table and the config alone, before anything is fetched or written.
fn check_flannel_etcd(cfg: &Config) -> Result<(), MasterError> {
    if cfg.network != Network::Flannel {
        return Ok(());
    }
    let manifest = fetch::Fetcher::new(fetch::FetchOptions::from_config(cfg))
        .and_then(|f| f.manifest(&cfg.kube_version))
        .map_err(crate::plan::BuildError::from)?;
    crate::etcd::flannel_api(&manifest.flannel_version, &manifest.etcd_version)
        .map_err(MasterError::FlannelEtcd)?;
    Ok(())
}

fn gate_apiserver(
    mut specs: Vec<crate::supervise::ChildSpec>,
    voter: &tokio::sync::watch::Receiver<bool>,
) -> Vec<crate::supervise::ChildSpec> {
    for s in &mut specs {
        if s.name == Component::KubeApiserver.name() {
            s.gates.push(voter.clone());
        }
    }
    specs
}

/// A master's components talk to its own API server and etcd.
fn master_build(
    cfg: Config,
    advertise: IpAddr,
    role: NodeRole,
    fetched: FetchedSet,
    manifest: fetch::ReleaseManifest,
    etcd_cluster: components::EtcdCluster,
) -> Build {
    Build {
        api_servers: vec![components::https_url(advertise, cfg.api_port)],
        etcd_servers: vec![crate::etcd::local_endpoint(cfg.ports.etcd_client)],
        etcd_cluster,
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
        hooks.push(once_ready(Component::Etcd, move || {
            crate::join::serve_on_master(cfg, advertise, manifest, force)
        }));
    }

    if cfg.network == Network::Flannel {
        let cfg = cfg.clone();
        let api = crate::etcd::FlannelApi::of(&manifest.flannel_version);
        hooks.push(once_ready(Component::Etcd, move || async move {
            write_flannel(&cfg, api).await
        }));
    }

    {
        let cfg = cfg.clone();
        hooks.push(once_ready(Component::KubeApiserver, move || async move {
            apply_addons(&cfg).await
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

async fn write_flannel(cfg: &Config, api: crate::etcd::FlannelApi) {
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
                crate::etcd::write_flannel_config(
                    &mut c,
                    &endpoint,
                    &tls,
                    cfg.pod_cidr,
                    cfg.flannel.backend,
                    api,
                )
                .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let mut raw = crate::config::RawConfig::from_yaml(yaml).unwrap();
        raw.data_dir = "/srv/ks".into();
        raw.validate().unwrap()
    }

    /// An old flannel (etcd v2) with an etcd that has no v2 API is refused before anything is
    /// written, exit code 2, one line naming both keys; the pairings of the release table, and
    /// a cluster without flannel, pass.
    #[test]
    fn an_old_flannel_with_etcd_3_6_is_refused_up_front() {
        let e = check_flannel_etcd(&config(
            "kube-version: v1.35.0\nfetch: {flannel-version: v0.16.3}\n",
        ))
        .unwrap_err();
        assert_eq!(
            crate::errors::Exit::exit_code(&e),
            crate::errors::EXIT_INVALID
        );
        let line = crate::errors::Exit::render(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("error: flannel v0.16.3 reads"), "{line}");
        assert!(line.contains("etcd v3.6.5"), "{line}");
        check_flannel_etcd(&config(
            "kube-version: v1.35.0\nfetch: {flannel-version: v0.16.3}\nnetwork: none\n",
        ))
        .unwrap();
        for version in [
            "v1.20.2",
            "v1.23.0",
            "v1.24.0",
            crate::model::DEFAULT_KUBE_VERSION,
        ] {
            check_flannel_etcd(&config(&format!("kube-version: {version}\n"))).unwrap();
        }
        check_flannel_etcd(&config(
            "kube-version: v1.20.2\nfetch: {etcd-version: v3.6.5, flannel-version: v0.18.0}\n",
        ))
        .unwrap();
    }
}
