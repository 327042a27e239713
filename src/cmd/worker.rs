//! `kubesup worker`: join a cluster once with one token, then supervise this node's
//! containerd, kubelet, kube-proxy (and flanneld when the network is flannel).
//!
//! Joining writes nothing until the master has accepted the node: the token is parsed, the
//! master's CA checked against its pin, keys made here and the CSRs signed there, all before
//! the data dir is even created. Then the credentials are written, and the identity record
//! (`join/node.json`) last, so that a crash part-way leaves a node that simply joins again.
//!
//! A restarted worker finds its identity and needs no token. Cluster-wide settings (pod and
//! service CIDRs, DNS, domain, network, Kubernetes version) come from the master's answer and
//! override the local config, so a worker cannot disagree with its cluster. Its binaries come
//! from its master over the join API, unless it set a `mirror` of its own: how a node reaches
//! its binaries is local.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::cli::WorkerArgs;
use crate::cmd::jointoken::{self, JoinTokenError, TokenSource};
use crate::cmd::{Globals, SetupError};
use crate::config::{Config, ConfigError, Problems, RawConfig};
use crate::daemon::{Daemon, Hook, Reload, once_ready};
use crate::fetch::{FetchOptions, FetchedSet, Fetcher, MasterFiles, ReleaseManifest};
use crate::fsutil;
use crate::join::ClusterInfo;
use crate::join::binaries::BinariesRequest;
use crate::join::client::{self, ClientError, Joined};
use crate::kube::{Credentials, Kube};
use crate::model::{Component, NodeRole};
use crate::paths::{KubeconfigUser, Paths};
use crate::pki::{Leaf, next_renewal_of};
use crate::plan::{
    Build, BuildError, check_cni_before_fetch, fetch_binaries, needs_runtime, ports,
    ready_cni_after_fetch,
};
use crate::supervise::{Supervisor, SupervisorHandle};

use crate::cmd::nodelb as lb;

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot join the cluster")]
    Join(#[from] ClientError),
    #[error("cannot get this node's binaries from its master {master}")]
    Binaries {
        master: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "this node's identity in {path} is incomplete or unreadable ({reason}); run `kubesup reset` and join again with a new token"
    )]
    Identity {
        path: PathBuf,
        // In the message, not chained: the advice reads best after the reason.
        reason: IdentityError,
    },
    #[error("cannot render this node's identity record")]
    SaveIdentity(#[source] serde_json::Error),
    #[error("cannot write this node's credentials")]
    Write(#[from] fsutil::FsError),
    #[error("cannot find this node's address toward {target} (pass --advertise IP)")]
    Route {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the kubelet cgroup root {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] JoinTokenError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot read this node's certificates")]
    Certificates(#[from] crate::pki::PkiError),
    #[error("cannot start the node-local API load balancer")]
    ApiLb(#[from] crate::apilb::ApiLbError),
}

crate::errors::exit_via!(WorkerError: Config, Setup, Token);

/// Why this node's identity (the record of its join, and the credentials it names) is unusable.
/// [`WorkerError::Identity`] prints it inside its own message, so each variant prints its cause.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Parse(serde_json::Error),
    #[error("{} is missing", .0.display())]
    Missing(PathBuf),
}

/// `kubesup worker`: the node's own config layers, then the join (or the identity on disk).
pub fn run(a: WorkerArgs, g: &Globals) -> Result<(), WorkerError> {
    let raw = g.raw_config(&a.common)?;
    // The config's log format applies only once it is known to be valid; until then, text.
    let format = match raw.log_format.as_str() {
        "json" => crate::config::LogFormat::Json,
        _ => crate::config::LogFormat::Text,
    };
    g.init_tracing(Some(format))?;
    if a.token.is_some() {
        jointoken::scrub_from_argv()?;
    }
    let token = TokenSource::pick(a.token, a.token_file.or(raw.join.token_file.clone()));
    let join = a.join.or(raw.join.url.clone());
    crate::cmd::runtime()?.block_on(serve(raw, join, token, a.ignore_preflight))
}

/// What a worker needs to come back after a restart, kept in `join/node.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub join_url: String,
    pub node_name: String,
    pub advertise: IpAddr,
    pub cluster: ClusterInfo,
    /// RFC 3339.
    pub joined: String,
}

fn identity_file(paths: &Paths) -> PathBuf {
    paths.join_dir().join("node.json")
}

/// Every file the node's identity consists of; all must exist for it to be reused.
fn credential_files(paths: &Paths, flannel: bool) -> Vec<PathBuf> {
    let pki = paths.pki();
    let mut files = vec![
        pki.ca().cert,
        pki.kubelet_client().cert,
        pki.kubelet_client().key,
        pki.kubelet_server().cert,
        pki.kubelet_server().key,
        pki.kube_proxy().cert,
        pki.kube_proxy().key,
        paths.kubeconfig(KubeconfigUser::Kubelet),
        paths.kubeconfig(KubeconfigUser::KubeProxy),
    ];
    if flannel {
        files.extend([
            pki.etcd_ca().cert,
            pki.flannel_etcd_client().cert,
            pki.flannel_etcd_client().key,
        ]);
    }
    files
}

impl Identity {
    /// `Ok(None)` when this node never joined.
    pub fn load(paths: &Paths) -> Result<Option<Self>, WorkerError> {
        let path = identity_file(paths);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(WorkerError::Identity {
                    path,
                    reason: IdentityError::Read(e),
                });
            }
        };
        let id: Identity = serde_json::from_str(&text).map_err(|e| WorkerError::Identity {
            path: path.clone(),
            reason: IdentityError::Parse(e),
        })?;
        let flannel = id.cluster.network == "flannel";
        if let Some(missing) = credential_files(paths, flannel)
            .into_iter()
            .find(|f| !f.exists())
        {
            return Err(WorkerError::Identity {
                path,
                reason: IdentityError::Missing(missing),
            });
        }
        Ok(Some(id))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> WorkerError {
    let mut p = Problems::default();
    p.push(field, message);
    WorkerError::Config(ConfigError::Invalid(p))
}

/// The address this machine would use to reach `join_url`'s host: the node's address when
/// none is configured. Connecting a UDP socket sends nothing; it only asks the routing table.
async fn route_source(join_url: &str) -> Result<IpAddr, WorkerError> {
    let route_err = |source| WorkerError::Route {
        target: join_url.to_string(),
        source,
    };
    let url = join_url.parse::<hyper::Uri>().map_err(|e| {
        invalid(
            "join",
            format!("{join_url:?} is not a URL ({e}); use e.g. https://10.0.0.1:9443"),
        )
    })?;
    let host = url
        .host()
        .ok_or_else(|| invalid("join", format!("{join_url:?} names no host")))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = crate::http::port_or_known_default(&url).unwrap_or(9443);
    let target: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(route_err)?
        .next()
        .ok_or_else(|| {
            route_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host resolves to no address",
            ))
        })?;
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| route_err(std::io::Error::other("bad bind address")))?;
    let sock = std::net::UdpSocket::bind(bind).map_err(route_err)?;
    sock.connect(target).map_err(route_err)?;
    Ok(sock.local_addr().map_err(route_err)?.ip())
}

/// The node's certificates, all signed by its master, with the leaf each one is.
fn node_certs(paths: &Paths) -> [(Leaf, PathBuf); 4] {
    let pki = paths.pki();
    [
        (Leaf::KubeletClient, pki.kubelet_client().cert),
        (Leaf::KubeletServer, pki.kubelet_server().cert),
        (Leaf::KubeProxy, pki.kube_proxy().cert),
        (Leaf::FlannelEtcdClient, pki.flannel_etcd_client().cert),
    ]
}

/// Renews the node's certificates through the join API, authenticated by its current kubelet
/// client certificate, and writes the new ones as a join does. The join master is asked first,
/// then `other_masters` in turn: the first answer wins, and the last failure is returned.
async fn renew_once(
    paths: &Paths,
    id: &Identity,
    lb_port: u16,
    other_masters: &[String],
) -> Result<(), WorkerError> {
    let pki = paths.pki();
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| WorkerError::Identity {
            reason: IdentityError::Read(e),
            path: p,
        })
    };
    let ca = read(pki.ca().cert)?;
    let cert = read(pki.kubelet_client().cert)?;
    let key = read(pki.kubelet_client().key)?;
    let creds = client::NodeCredentials {
        ca: &ca,
        cert: &cert,
        key: &key,
    };
    let flannel = pki.flannel_etcd_client().cert.exists();
    let sans = [id.advertise];
    let mut result = client::renew(&id.join_url, &creds, &id.node_name, &sans, flannel).await;
    for url in other_masters {
        let Err(e) = &result else { break };
        warn!(error = %crate::errors::chain(e), next = %url, "cannot renew through the join master; trying another");
        result = client::renew(url, &creds, &id.node_name, &sans, flannel).await;
    }
    write_credentials(paths, &result?, id, lb_port)
}

/// A worker's side of renewal: new certificates from its master, over the join API.
struct WorkerRenewal {
    paths: Paths,
    id: Identity,
    lb_port: u16,
    /// The balancer's view: which masters answer, to renew through when the join master does
    /// not.
    lb_status: tokio::sync::watch::Receiver<crate::apilb::LbStatus>,
}

impl crate::renewal::Renewal for WorkerRenewal {
    type Error = WorkerError;

    fn next_due(&self, now: SystemTime) -> Result<Option<SystemTime>, WorkerError> {
        let certs: Vec<PathBuf> = node_certs(&self.paths)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        Ok(next_renewal_of(&certs, now)?)
    }

    async fn renew(&mut self, _now: SystemTime) -> Result<Vec<Component>, WorkerError> {
        let others = lb::other_join_apis(&self.id.join_url, self.lb_status.borrow().healthy());
        renew_once(&self.paths, &self.id, self.lb_port, &others).await?;
        info!(node = %self.id.node_name, "renewed the node's certificates");
        // All of the node's certificates are renewed together.
        Ok(node_certs(&self.paths)
            .into_iter()
            .flat_map(|(leaf, _)| crate::plan::leaf_readers(leaf).iter().copied())
            .collect())
    }
}

/// Renews the node's certificates in the background for as long as kubesup runs, then restarts
/// only the components that use them.
async fn renew_node_certificates(side: WorkerRenewal, sup: SupervisorHandle) {
    crate::renewal::run("node", side, SystemTime::now, |c| sup.restart(c.name())).await;
}

/// Writes the node's credentials from the master's answer, and the identity record last.
fn write_credentials(
    paths: &Paths,
    joined: &Joined,
    id: &Identity,
    lb_port: u16,
) -> Result<(), WorkerError> {
    let pki = paths.pki();
    let r = &joined.response;
    let k = &joined.keys;
    let write = |p: &Path, s: &str, mode| fsutil::write_atomic(p, s.as_bytes(), mode);
    write(&pki.ca().cert, &r.ca, CERT_MODE)?;
    for (pair, cert, key) in [
        (
            pki.kubelet_client(),
            &r.kubelet_client_cert,
            &k.kubelet_client,
        ),
        (
            pki.kubelet_server(),
            &r.kubelet_serving_cert,
            &k.kubelet_serving,
        ),
        (pki.kube_proxy(), &r.kube_proxy_cert, &k.kube_proxy),
    ] {
        write(&pair.key, key.expose(), KEY_MODE)?;
        write(&pair.cert, cert, CERT_MODE)?;
    }
    if let (Some(etcd_ca), Some(cert), Some(key)) =
        (&r.etcd_ca, &r.flannel_etcd_cert, &k.flannel_etcd)
    {
        let pair = pki.flannel_etcd_client();
        write(&pki.etcd_ca().cert, etcd_ca, CERT_MODE)?;
        write(&pair.key, key.expose(), KEY_MODE)?;
        write(&pair.cert, cert, CERT_MODE)?;
    }
    // A join that names no API server leaves the balancer nothing to balance to.
    r.cluster
        .api_servers
        .first()
        .ok_or(ClientError::NoApiServer)?;
    write_kubeconfigs(paths, &id.node_name, &lb::url(lb_port))?;
    let json = serde_json::to_string_pretty(id).map_err(WorkerError::SaveIdentity)?;
    write(&identity_file(paths), &json, KEY_MODE)?;
    Ok(())
}

/// Writes kubelet's and kube-proxy's kubeconfigs around the certificates on disk, naming
/// `server`, where their rendering differs from the file. Run at every start too, so that a
/// node that joined before the load balancer (its kubeconfigs naming its master) moves to it.
fn write_kubeconfigs(paths: &Paths, node_name: &str, server: &str) -> Result<(), WorkerError> {
    let pki = paths.pki();
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| WorkerError::Identity {
            reason: IdentityError::Read(e),
            path: p,
        })
    };
    let ca = read(pki.ca().cert)?;
    for (user, name, pair) in [
        (
            KubeconfigUser::Kubelet,
            format!("system:node:{node_name}"),
            pki.kubelet_client(),
        ),
        (
            KubeconfigUser::KubeProxy,
            "system:kube-proxy".to_string(),
            pki.kube_proxy(),
        ),
    ] {
        let cert = read(pair.cert)?;
        let key = crate::pki::Secret::new(read(pair.key)?);
        let text = crate::pki::render_kubeconfig(server, &ca, &name, &cert, &key)
            .map_err(ClientError::Kubeconfig)?;
        let path = paths.kubeconfig(user);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.expose()) {
            fsutil::write_atomic(&path, text.expose().as_bytes(), KEY_MODE)?;
        }
    }
    Ok(())
}

/// The worker's config: its own, with the cluster-wide settings the master sent on top.
fn with_cluster(mut raw: RawConfig, id: &Identity) -> Result<Config, ConfigError> {
    let c = &id.cluster;
    raw.pod_cidr = c.pod_cidr.clone();
    raw.service_cidr = c.service_cidr.clone();
    raw.api_service_ip = None;
    raw.cluster_dns = c.cluster_dns.clone();
    raw.cluster_domain = c.cluster_domain.clone();
    raw.network = c.network.clone();
    raw.flannel.backend = c.flannel_backend.clone();
    raw.kube_version = c.kube_version.clone();
    raw.node_name = Some(id.node_name.clone());
    raw.advertise = Some(id.advertise.to_string());
    raw.schedulable = false;
    // The master's mirror is not copied: a node with none of its own fetches from its master.
    raw.validate()
}

/// This node's binaries: from its own mirror when it set one, fetched and verified as a master
/// fetches; otherwise from its master, which lists them by SHA-256 over the join API (TLS
/// pinned to the cluster CA, asked with this node's certificate) and serves them, so the node
/// needs a route to nothing else. Each file is checked against the list before it is linked.
/// A restart while the master does not answer runs what the last fetch recorded.
async fn node_binaries(
    cfg: &Config,
    role: NodeRole,
    id: &Identity,
) -> Result<(FetchedSet, ReleaseManifest), WorkerError> {
    if cfg.mirror.is_some() {
        return Ok(fetch_binaries(cfg, role).await?);
    }
    check_cni_before_fetch(cfg, role)?;
    let fetcher = Fetcher::new(FetchOptions::from_config(cfg)).map_err(BuildError::from)?;
    let manifest = fetcher
        .manifest(&cfg.kube_version)
        .map_err(BuildError::from)?;
    let pki = cfg.paths.pki();
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| WorkerError::Identity {
            reason: IdentityError::Read(e),
            path: p,
        })
    };
    let (ca, cert, key) = (
        read(pki.ca().cert)?,
        read(pki.kubelet_client().cert)?,
        read(pki.kubelet_client().key)?,
    );
    let creds = client::NodeCredentials {
        ca: &ca,
        cert: &cert,
        key: &key,
    };
    let request = BinariesRequest {
        arch: manifest.arch.clone(),
        runtime: needs_runtime(cfg, role),
    };
    let list = match client::binaries(&id.join_url, &creds, &request).await {
        Ok(list) => list,
        Err(e @ ClientError::Unreachable(_)) => {
            let offline = fetcher
                .resolve_offline(&cfg.kube_version)
                .ok()
                .filter(|set| runs_from(set, role, cfg));
            let Some(set) = offline else {
                return Err(WorkerError::Binaries {
                    master: id.join_url.clone(),
                    source: e,
                });
            };
            warn!(master = %id.join_url, error = %crate::errors::chain(&e),
                "the master does not answer; running the binaries fetched before");
            ready_cni_after_fetch(cfg, role, &set)?;
            return Ok((set, manifest));
        }
        Err(source) => {
            return Err(WorkerError::Binaries {
                master: id.join_url.clone(),
                source,
            });
        }
    };
    let master = MasterFiles {
        join_url: id.join_url.clone(),
        ca_pem: ca.into_bytes(),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
    };
    let set = fetcher
        .fetch_listed(&cfg.kube_version, &list, &master)
        .await
        .map_err(BuildError::from)?;
    ready_cni_after_fetch(cfg, role, &set)?;
    Ok((set, manifest))
}

/// True when `set` holds every component binary this node runs (containerd only when it is
/// not the OS's).
fn runs_from(set: &FetchedSet, role: NodeRole, cfg: &Config) -> bool {
    let runtime = needs_runtime(cfg, role);
    role.components(cfg.network)
        .into_iter()
        .filter(|c| runtime || *c != Component::Containerd)
        .all(|c| set.component(c).is_ok())
}

/// Joins (once) and supervises this node until told to stop. `raw` is the node's own
/// configuration (file, environment, flags).
async fn serve(
    raw: RawConfig,
    join_url: Option<String>,
    token: Option<TokenSource>,
    ignore_preflight: Vec<String>,
) -> Result<(), WorkerError> {
    let local = raw.validate()?;
    let paths = local.paths.clone();

    let (id, joined) = match Identity::load(&paths)? {
        Some(id) => {
            if token.is_some() {
                info!(node = %id.node_name, "this node already joined; the token is not needed and was not used");
            }
            (id, None)
        }
        None => {
            let (Some(join_url), Some(token)) = (join_url, token) else {
                return Err(invalid(
                    "join",
                    "this node has not joined a cluster yet: pass --join https://MASTER:9443 and --token (or --token-file, or KUBESUP_TOKEN)",
                ));
            };
            let token = jointoken::read(token)?;
            let advertise = match local.advertise {
                Some(a) => a,
                None => route_source(&join_url).await?,
            };
            info!(join = %join_url, node = %local.node_name, %advertise, "joining the cluster");
            let joined = client::join(
                &join_url,
                &token,
                &local.node_name,
                &[advertise],
                // Whether the cluster runs flannel is the master's setting, known only from
                // its answer: always send flanneld's CSR, which it signs only if so.
                true,
            )
            .await?;
            let id = Identity {
                join_url,
                node_name: local.node_name.clone(),
                advertise,
                cluster: joined.response.cluster.clone(),
                joined: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            };
            (id, Some(joined))
        }
    };

    // Only now, with the master's answer in hand (or an identity already on disk), is the data
    // dir created.
    let daemon = Daemon::acquire(paths.clone())?;
    let lb_port = local.api_lb_port;
    if let Some(joined) = &joined {
        write_credentials(&paths, joined, &id, lb_port)?;
        info!(node = %id.node_name, "joined; credentials written");
    } else {
        write_kubeconfigs(&paths, &id.node_name, &lb::url(lb_port))?;
    }
    let cfg = with_cluster(raw.clone(), &id)?;
    let role = NodeRole::Worker;
    let comps = role.components(cfg.network);
    let mut listen = ports(&cfg, &comps);
    listen.push(("api-lb-port", cfg.api_lb_port));
    crate::preflight::run(&cfg, &listen, true, &ignore_preflight)?;
    if let Some(root) = &cfg.kubelet.cgroup_root {
        crate::cgroup::ensure(root)
            .map_err(|(path, source)| WorkerError::Cgroup { path, source })?;
    }

    let (fetched, manifest) = node_binaries(&cfg, role, &id).await?;
    let build = Build {
        cfg: cfg.clone(),
        advertise: id.advertise,
        role,
        api_servers: id.cluster.api_servers.clone(),
        etcd_servers: id.cluster.etcd_servers.clone(),
        etcd_cluster: Default::default(),
        fetched,
        manifest,
    };
    let specs = build.plan()?.write()?;

    let fallback = lb::fallback(&id.join_url, &id.cluster.api_servers).await;
    let (balancer, lb_status) = lb::start(&cfg, &id.cluster.api_servers, fallback).await?;
    let daemon = daemon.with_api_lb(lb::listen_addr(cfg.api_lb_port), lb_status.clone());
    let renewal: Hook = {
        let side = WorkerRenewal {
            paths: paths.clone(),
            id: id.clone(),
            lb_port,
            lb_status,
        };
        Box::new(move |sup: &Supervisor| {
            let handle = sup.handle();
            Box::pin(async move { renew_node_certificates(side, handle).await })
        })
    };
    let hooks: Vec<Hook> = vec![balancer, renewal, {
        let cfg = cfg.clone();
        let server = lb::url(lb_port);
        once_ready(Component::Kubelet, move || async move {
            let pki = cfg.paths.pki();
            let creds = Credentials {
                ca: pki.ca().cert,
                cert: pki.kubelet_client().cert,
                key: pki.kubelet_client().key,
            };
            match Kube::new(&server, &creds) {
                Ok(kube) => crate::network::ensure_cni_config(&cfg, &kube).await,
                Err(e) => {
                    warn!(error = %crate::errors::chain(&e), "cannot build the API client; no CNI config")
                }
            }
        })
    }];

    let reload: Reload = {
        let (raw, id, build) = (raw, id.clone(), build);
        Box::new(move || {
            let cfg = with_cluster(raw.clone(), &id)?;
            let planned = Build {
                cfg,
                advertise: build.advertise,
                role: build.role,
                api_servers: build.api_servers.clone(),
                etcd_servers: build.etcd_servers.clone(),
                etcd_cluster: Default::default(),
                fetched: build.fetched.clone(),
                manifest: build.manifest.clone(),
            }
            .plan()?;
            Ok(planned.write()?)
        })
    };
    daemon
        .supervise("worker", specs, Some(reload), hooks)
        .await?;
    Ok(())
}
