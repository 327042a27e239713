//! The node-local API load balancer: an L4 TCP proxy on `127.0.0.1:<api-lb-port>` (6444 by
//! default) through which kubelet and kube-proxy reach every live API server of the cluster,
//! with a fast path in the kernel ([`redirect`]): where it can, a connect to the balancer from
//! kubesup's cgroup is rewritten into a connect straight to a healthy API server, and the proxy
//! only serves what the fast path passes over. Health, the list and the closing of connections
//! to a dead backend stay here and drive both paths.
//!
//! Owns: the backend list ([`Backends`]: the cluster's list from a `watch` channel, its cache on
//! disk, the join address as the last resort), each backend's health (a bounded check every
//! period), the pick of a backend for each new connection, the closing of connections to a
//! backend that went down, and the status that `kubesup status` reads ([`LbStatus`]).
//!
//! Invariants:
//! - The list never shrinks to nothing: an empty list from the channel means "not known yet"
//!   (the caller's first value, an endpoints object caught while every API server restarts),
//!   not "no API server", and keeps the last known list. A cluster with no API server has
//!   nothing to balance to anyway; one with a stale address still has its live ones.
//! - The join address is used only when neither the cluster nor the cache has named a backend.
//!   It may be a name for one master (or a VIP) that says nothing about the others.
//! - A connection is held only by its backend's generation ([`Conns`]): marking a backend down
//!   (or dropping it from the list) cancels that generation, which ends every connection to it,
//!   and starts a new one for connections made later. Dropping the future of [`serve`] cancels
//!   every generation, so no proxied connection outlives the balancer.
//!
//! Must not: read or write a byte of a proxied stream beyond copying it (it is TLS between
//! kubelet and the API server, and the balancer holds no key); keep per-connection state on the
//! heap beyond tokio's task and `copy_bidirectional`'s buffers (kubesup's memory budget is a few
//! MB, and a node has a handful of long-lived connections, but a misbehaving client may open
//! thousands); block the runtime (the cache's fsync runs on the blocking pool).
//!
//! Why each choice:
//! - **The health check** is one plain-text line, `GET / HTTP/1.0`, sent to the API server's
//!   TLS port, and passes when the server answers anything (a byte, or a clean close). A TCP
//!   connect alone proves nothing: the kernel completes the handshake for a SIGSTOPped process,
//!   and for a hung one, from the listen backlog. An answer needs the process to run. The line
//!   is the cheapest thing a Go server answers: Go's net/http (kube-apiserver's server) sees a
//!   TLS record header that looks like HTTP and writes back a plain `400 Bad Request` at once,
//!   with no cryptography on either side. It does log that as a TLS handshake error, which
//!   kube-apiserver keeps at verbosity 5 and counts in `apiserver_tls_handshake_errors_total`:
//!   the same footprint as the TCP-connect check of any L4 balancer (HAProxy, a cloud NLB),
//!   which is why kube-apiserver hides those lines. Only a completed TLS handshake avoids it,
//!   and that costs the API server a signature per check per node: a thousand nodes at 1 Hz is
//!   a thousand signatures a second, a whole core with RSA-2048 keys. `GET /readyz` costs that
//!   plus a request. A server that is not Go closes the connection or sends a TLS alert
//!   instead: either is an answer from a running process, so the check does not depend on
//!   Go's courtesy. What it does not see: an API server that runs but cannot reach etcd.
//!   kubelet's and client-go's own retries cover that; `/readyz` is the step to take if
//!   draining an API server that shuts down gracefully ever matters.
//! - **Down after 2 failed checks, up after 1 success.** One lost SYN costs a 1 s retransmit,
//!   the whole default timeout: with 1, a single dropped packet would close every kubelet
//!   watch on the node. With 2, a dead or hung backend is found within about
//!   `2 × timeout + period` (3 s by default). A refused connect is the exception: it is an
//!   answer from the backend's kernel that nothing listens, so it marks the backend down at
//!   once (within a period of a crash). A backend wrongly marked up costs one connect that
//!   fails over to the next backend, so one answer is enough.
//! - **The pick** is least-connections among the healthy, ties going to the backend of the last
//!   pick (the first pick starts at a random backend). A node holds few, long-lived connections
//!   (kubelet's and kube-proxy's HTTP/2 ones): least-connections keeps them on different
//!   masters, and the random start spreads the first connection of every node over the masters
//!   instead of piling all of them on the first. A tie does not rotate: a client whose last
//!   connection has closed (kubesup's own feed every 30 s, a reconnect) reaches the same API
//!   server again, which holds its TLS session and can resume it. Every API server has its own
//!   session ticket keys, so rotating made every such connection a full handshake (a signature
//!   and a certificate check on each side; 2.3 ms on the HA test bed, where forwarding a
//!   request costs about 0.1 ms). A connection opened while the last one is still closing
//!   counts it and goes elsewhere, as concurrent ones must; Go clients (client-go) keep no
//!   session cache and never resume anyway.
//!   When no backend is marked healthy (a cold start before the first check, or every check
//!   failing), every backend is tried in turn, unknown before down, each with a short connect
//!   timeout: the health table is an optimisation, never a reason to refuse a connection.
//! - **Closing** a dead backend's connections is what makes clients move: a TCP connection to a
//!   frozen machine stays open for the kernel's full retransmission timeout (about 15 minutes),
//!   and client-go would wait on its watch that long. An EOF makes it reconnect at once, through
//!   the balancer, to a live backend.
//! - **Latency**: the data path is `tokio::io::copy_bidirectional` with TCP_NODELAY on both
//!   sockets, so a request is forwarded as soon as it is read, with no added buffering delay.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::fsutil::{self, FsError};

mod bpf;
pub mod redirect;
mod sockdiag;

use redirect::{Redirect, RedirectError};

/// The port the balancer listens on when the config does not say (`api-lb-port`).
pub const DEFAULT_PORT: u16 = 6444;

/// What the health check sends. Its first five bytes are what Go's net/http recognises as HTTP
/// on a TLS port ("GET /"), which it answers with a plain-text 400 instead of a handshake.
const PROBE: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// The pick tracks the backends it has tried in a u64, so that no connection allocates: a
/// cluster has 3 to 7 API servers, and one with more than 64 uses its first 64.
const MAX_PICK: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ApiLbError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the API server cache {path}")]
    ReadCache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the API server cache {path} is not the expected JSON")]
    ParseCache {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the API server cache {path}")]
    EncodeCache {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the API server cache")]
    WriteCache {
        #[source]
        source: FsError,
    },
    #[error("cannot connect to API server {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connecting to API server {addr} took longer than {after:?}")]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    #[error("health check of API server {addr} failed")]
    Check {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("API server {addr} did not answer its health check within {after:?}")]
    CheckTimeout { addr: SocketAddr, after: Duration },
}

/// How the balancer checks and picks; [`LbConfig::default`] is what a node runs.
#[derive(Debug, Clone)]
pub struct LbConfig {
    /// How often every backend is checked.
    pub check_period: Duration,
    /// The limit on one check: connect, send and first byte of the answer together.
    pub check_timeout: Duration,
    /// The limit on connecting to a backend for a client; past it the next backend is tried.
    pub connect_timeout: Duration,
    /// Consecutive failed checks that mark a backend down (at least 1).
    pub fall: u32,
    /// Where the last list from the cluster is kept for the next start; `None` keeps none.
    pub cache: Option<PathBuf>,
    /// The join URL's address: used only while no other backend is known.
    pub fallback: Option<SocketAddr>,
    /// Whether to try the connect-time fast path ([`redirect`]). Off in the default, which the
    /// tests of the proxy use; a node takes it from `api-lb-redirect` (on unless set false).
    pub redirect: bool,
}

impl Default for LbConfig {
    fn default() -> Self {
        Self {
            check_period: Duration::from_secs(1),
            check_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            fall: 2,
            cache: None,
            fallback: None,
            redirect: false,
        }
    }
}

/// A backend's health as the checks last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not checked yet (just added, or the balancer just started).
    Unknown,
    Up,
    Down,
}

/// Where the backend list in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// No backend is known: every client connection is closed at once.
    #[default]
    None,
    /// The join URL's address, the last resort.
    Fallback,
    /// The cache on disk, from an earlier run.
    Cache,
    /// The cluster's own list, from the watch channel.
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    pub addr: SocketAddr,
    pub health: Health,
    /// Proxied connections open to it, as of the last check round or change.
    pub connections: usize,
}

/// What the balancer publishes on its status channel, after each change and check round.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LbStatus {
    pub source: Source,
    pub backends: Vec<BackendStatus>,
    /// Whether connects from kubesup's cgroup go straight to a healthy backend ([`redirect`]).
    pub redirect: bool,
}

impl LbStatus {
    /// The backends that answered their last check.
    pub fn healthy(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.backends
            .iter()
            .filter(|b| b.health == Health::Up)
            .map(|b| b.addr)
    }

    pub fn health_of(&self, addr: SocketAddr) -> Option<Health> {
        self.backends
            .iter()
            .find(|b| b.addr == addr)
            .map(|b| b.health)
    }
}

/// The cache file's contents. An object rather than a bare list, so that a field can be added
/// without breaking the next start of an older kubesup.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    backends: Vec<SocketAddr>,
}

/// Reads the cache: `None` when there is no file (a first start).
pub fn load_cache(path: &Path) -> Result<Option<Vec<SocketAddr>>, ApiLbError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ApiLbError::ReadCache {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let file: CacheFile =
        serde_json::from_slice(&bytes).map_err(|source| ApiLbError::ParseCache {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(file.backends))
}

/// Writes the cache atomically (temp file, fsync, rename, fsync of the directory), so that a
/// crash leaves the old list or the new one, never a torn file that would lose both.
pub fn write_cache(path: &Path, backends: &[SocketAddr]) -> Result<(), ApiLbError> {
    let file = CacheFile {
        backends: backends.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|source| ApiLbError::EncodeCache {
        path: path.to_path_buf(),
        source,
    })?;
    json.push(b'\n');
    // Addresses are not secret, but nothing other than kubesup reads the file.
    fsutil::write_atomic(path, &json, 0o600).map_err(|source| ApiLbError::WriteCache { source })
}

/// The backend list: the cluster's, else the cached one, else the join address.
#[derive(Debug)]
pub struct Backends {
    cache: Option<PathBuf>,
    fallback: Option<SocketAddr>,
    /// The last non-empty list from the cluster.
    cluster: Vec<SocketAddr>,
    /// The list read from the cache at start.
    cached: Vec<SocketAddr>,
    /// What the cache file holds now, so that an unchanged list is not written again.
    written: Vec<SocketAddr>,
}

impl Backends {
    /// Loads the cache, if any. A cache that cannot be read is ignored with a warning: the
    /// cluster's list replaces it, and until then the join address does the job.
    pub fn load(cache: Option<PathBuf>, fallback: Option<SocketAddr>) -> Self {
        let cached = match cache.as_deref().map(load_cache) {
            Some(Ok(Some(list))) => normalized(&list),
            Some(Ok(None)) | None => Vec::new(),
            Some(Err(e)) => {
                warn!(error = %crate::errors::chain(&e), "ignoring the API server cache; the cluster's list will replace it");
                Vec::new()
            }
        };
        Self {
            cache,
            fallback,
            cluster: Vec::new(),
            written: cached.clone(),
            cached,
        }
    }

    /// Takes a list from the cluster; true when the list in use changed. An empty list is
    /// ignored (the module header says why).
    pub fn update(&mut self, list: &[SocketAddr]) -> bool {
        let list = normalized(list);
        if list.is_empty() || list == self.cluster {
            return false;
        }
        // A new list from the cluster always changes what is in use: a different list, or
        // the same addresses with a new source (the cache's or the fallback's before).
        self.cluster = list;
        true
    }

    /// The list in use and where it came from.
    pub fn current(&self) -> (Source, &[SocketAddr]) {
        if !self.cluster.is_empty() {
            (Source::Cluster, &self.cluster)
        } else if !self.cached.is_empty() {
            (Source::Cache, &self.cached)
        } else if let Some(f) = &self.fallback {
            (Source::Fallback, std::slice::from_ref(f))
        } else {
            (Source::None, &[])
        }
    }

    /// The cache path and list to write, when the cluster's list differs from the file's.
    fn to_persist(&self) -> Option<(PathBuf, Vec<SocketAddr>)> {
        let path = self.cache.as_ref()?;
        (!self.cluster.is_empty() && self.cluster != self.written)
            .then(|| (path.clone(), self.cluster.clone()))
    }
}

/// Sorted and without duplicates: the endpoints object's order means nothing, and a reordered
/// list must not count as a change (nor rewrite the cache).
fn normalized(list: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut v = list.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// One generation of a backend's connections: how many are open, and the token that ends them
/// all. Replaced when the backend goes down, so that connections made later (in the
/// try-everything fallback) are not ended by a cancellation meant for the earlier ones.
#[derive(Debug)]
struct Conns {
    active: AtomicUsize,
    close: CancellationToken,
}

impl Conns {
    fn new(parent: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            close: parent.child_token(),
        })
    }

    /// Ends every connection of this generation; returns how many there were.
    fn close(&self) -> usize {
        self.close.cancel();
        self.active.load(Ordering::Relaxed)
    }
}

/// One open connection's place in its generation's count.
struct Active(Arc<Conns>);

impl Active {
    fn new(conns: Arc<Conns>) -> Self {
        conns.active.fetch_add(1, Ordering::Relaxed);
        Self(conns)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Entry {
    addr: SocketAddr,
    health: Health,
    /// Consecutive failed checks.
    fails: u32,
    conns: Arc<Conns>,
}

impl Entry {
    /// Closes every connection of the current generation and starts a new one (under `root`)
    /// for the connections made from now on. Returns how many were closed.
    fn new_generation(&mut self, root: &CancellationToken) -> usize {
        std::mem::replace(&mut self.conns, Conns::new(root)).close()
    }
}

/// What a check round changed, for the log.
#[derive(Debug, PartialEq, Eq)]
enum Transition {
    Up(SocketAddr),
    /// The address, the connections closed, and why.
    Down(SocketAddr, usize, String),
}

/// The backends in use and their health. Written by the control task only; the accept path
/// takes the lock for one pick (a scan of a few entries), never across an await.
#[derive(Debug)]
struct Table {
    entries: Vec<Entry>,
    source: Source,
    /// Where the next pick starts its scan: the last pick, so that ties stay on it (the module
    /// header says why).
    next: usize,
    /// The parent of every generation: cancelled when [`serve`] is dropped.
    root: CancellationToken,
}

impl Table {
    fn new(root: CancellationToken, start: usize) -> Self {
        Self {
            entries: Vec::new(),
            source: Source::None,
            next: start,
            root,
        }
    }

    /// Uses `list`: entries already known keep their health and connections, new ones start
    /// unknown, and the connections of those that left are closed. Returns the removed ones
    /// with the number of connections closed.
    fn set(&mut self, source: Source, list: &[SocketAddr]) -> Vec<(SocketAddr, usize)> {
        self.source = source;
        let mut removed = Vec::new();
        self.entries.retain(|e| {
            let keep = list.contains(&e.addr);
            if !keep {
                removed.push((e.addr, e.conns.close()));
            }
            keep
        });
        for &addr in list {
            if !self.entries.iter().any(|e| e.addr == addr) {
                self.entries.push(Entry {
                    addr,
                    health: Health::Unknown,
                    fails: 0,
                    conns: Conns::new(&self.root),
                });
            }
        }
        self.entries.sort_by_key(|e| e.addr);
        removed
    }

    /// Takes one check's result. A backend goes down after `fall` consecutive failures (its
    /// connections are closed and a new generation starts) and up after one success.
    fn record(
        &mut self,
        addr: SocketAddr,
        result: &Result<(), ApiLbError>,
        fall: u32,
    ) -> Option<Transition> {
        let root = self.root.clone();
        let e = self.entries.iter_mut().find(|e| e.addr == addr)?;
        match result {
            Ok(()) => {
                e.fails = 0;
                (e.health != Health::Up).then(|| {
                    e.health = Health::Up;
                    Transition::Up(addr)
                })
            }
            Err(err) => {
                // A refused connect is certain: nothing listens there (the API server died, or
                // is restarting). Only a silence, which one lost SYN can cause, needs `fall`
                // checks. Found a period sooner, a dead backend leaves the connect-time
                // choice before many clients are sent to it.
                let refused = matches!(err, ApiLbError::Connect { source, .. }
                    if source.kind() == io::ErrorKind::ConnectionRefused);
                e.fails = if refused {
                    fall.max(1)
                } else {
                    e.fails.saturating_add(1)
                };
                if e.fails < fall.max(1) || e.health == Health::Down {
                    return None;
                }
                e.health = Health::Down;
                let closed = e.new_generation(&root);
                Some(Transition::Down(addr, closed, crate::errors::chain(err)))
            }
        }
    }

    /// Closes every proxied connection, each backend starting a new generation. Returns how
    /// many were closed.
    fn close_all(&mut self) -> usize {
        let root = self.root.clone();
        self.entries
            .iter_mut()
            .map(|e| e.new_generation(&root))
            .sum()
    }

    /// The backend for a new connection, among those not yet `tried` (a bit per index): the
    /// healthy one with the fewest connections, else an unknown one, else a down one; ties go
    /// to the last pick, else to the first after it. `None` when every backend has been tried.
    fn pick(&mut self, tried: &mut u64) -> Option<(SocketAddr, Active)> {
        let n = self.entries.len().min(MAX_PICK);
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        let mut best: Option<(usize, (u8, usize))> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if *tried & (1 << i) != 0 {
                continue;
            }
            let Some(e) = self.entries.get(i) else {
                continue;
            };
            let rank = match e.health {
                Health::Up => (0, e.conns.active.load(Ordering::Relaxed)),
                Health::Unknown => (1, 0),
                Health::Down => (2, 0),
            };
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((i, rank));
            }
        }
        let (i, _) = best?;
        let e = self.entries.get(i)?;
        *tried |= 1 << i;
        self.next = i;
        Some((e.addr, Active::new(e.conns.clone())))
    }

    fn status(&self) -> LbStatus {
        LbStatus {
            redirect: false,
            source: self.source,
            backends: self
                .entries
                .iter()
                .map(|e| BackendStatus {
                    addr: e.addr,
                    health: e.health,
                    connections: e.conns.active.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

struct Shared {
    table: Mutex<Table>,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while the lock is held leaves the table as consistent as any point of a
        // scan (no step of a pick or a record can tear it): keep serving rather than stop.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Binds `listen` and serves on it until the future is dropped; see [`serve`].
pub async fn run(
    listen: SocketAddr,
    cfg: LbConfig,
    backends: watch::Receiver<Vec<SocketAddr>>,
    status: watch::Sender<LbStatus>,
) -> Result<Infallible, ApiLbError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ApiLbError::Bind {
            addr: listen,
            source,
        })?;
    info!(%listen, "API load balancer listening");
    Ok(serve(listener, cfg, backends, status).await)
}

/// Serves client connections on `listener`, balanced over the backends that `backends` names
/// (with the cache and fallback of `cfg`), and publishes each change of health on `status`.
/// Never returns; dropping the future stops the balancer and closes every proxied connection.
pub async fn serve(
    listener: TcpListener,
    cfg: LbConfig,
    backends: watch::Receiver<Vec<SocketAddr>>,
    status: watch::Sender<LbStatus>,
) -> Infallible {
    let root = CancellationToken::new();
    // Closes every proxied connection when this future is dropped: they run in tasks of their
    // own, which would otherwise outlive it.
    let _closes_all = root.clone().drop_guard();
    let set = Backends::load(cfg.cache.clone(), cfg.fallback);
    let shared = Arc::new(Shared {
        table: Mutex::new(Table::new(root, rand::random::<u32>() as usize)),
    });
    let connect_timeout = cfg.connect_timeout;
    let redirect = if cfg.redirect {
        attach_redirect(&listener)
    } else {
        None
    };
    tokio::select! {
        never = accept_loop(listener, shared.clone(), connect_timeout) => never,
        never = control_loop(shared, cfg, set, backends, status, redirect) => never,
    }
}

/// The connect-time fast path for `listener`, or `None` (said once) where the kernel or the
/// host does not allow it: the proxy then serves every connection.
fn attach_redirect(listener: &TcpListener) -> Option<Redirect> {
    let attached = listener
        .local_addr()
        .map_err(RedirectError::LocalAddr)
        .and_then(|addr| Redirect::attach(addr, listener));
    match attached {
        Ok(r) => {
            info!(cgroup = %r.cgroup().display(), "connect-time balancing on: connects to the balancer from this cgroup go straight to a healthy API server");
            Some(r)
        }
        Err(e) => {
            warn!(error = %crate::errors::chain(&e), "connect-time balancing off; the balancer proxies every connection (set api-lb-redirect: false to skip the attempt)");
            None
        }
    }
}

/// Hands the healthy backends to the fast path, and closes the connections it made to those
/// that left. A failure to update it turns it off (dropping it detaches the program), so that
/// no connect is ever sent to a backend the checks no longer vouch for.
async fn sync_redirect(
    redirect: &mut Option<Redirect>,
    shared: &Shared,
    healthy: impl IntoIterator<Item = SocketAddr>,
) {
    let Some(r) = redirect.as_mut() else {
        return;
    };
    let passed_all = r.passes_all();
    let synced = r.sync(healthy);
    if passed_all && !r.passes_all() {
        // The connections the proxy took while no backend was known healthy (a cold start,
        // every master unreachable for a while) would stay on it for as long as they live:
        // closed once, their clients reconnect straight to an API server.
        let closed = shared.table().close_all();
        if closed > 0 {
            info!(
                closed,
                "a backend is healthy again; closed the proxied connections, so that their clients reconnect straight to it"
            );
        }
    }
    let closer = match synced {
        Ok(Some(closer)) => closer,
        Ok(None) => return,
        Err(e) => {
            error!(error = %crate::errors::chain(&e), "connect-time balancing off; the balancer proxies every connection");
            *redirect = None;
            return;
        }
    };
    match tokio::task::spawn_blocking(move || closer.close()).await {
        Ok(results) => {
            for (addr, result) in results {
                match result {
                    Ok(0) => {}
                    Ok(closed) => warn!(
                        backend = %addr, closed,
                        "closed the connections made straight to it, so that clients reconnect to a live one"
                    ),
                    Err(e) => error!(
                        backend = %addr, error = %e,
                        "cannot close the connections made straight to a backend that is down or gone; they end when their clients or the kernel give up"
                    ),
                }
            }
        }
        Err(e) => error!(error = %e, "closing the connections made straight to a backend failed"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    connect_timeout: Duration,
) -> Infallible {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(proxy(shared.clone(), client, peer, connect_timeout));
            }
            Err(e) => {
                // Out of file descriptors, or a connection reset before accept: the loop goes
                // on, after a pause so that a persistent EMFILE does not spin a core.
                warn!(error = %e, "cannot accept a connection; accepting again in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Connects `client` to a backend and copies both ways until either side closes or the
/// backend's generation is cancelled.
async fn proxy(shared: Arc<Shared>, mut client: TcpStream, peer: SocketAddr, limit: Duration) {
    // Without it, a small request would wait for Nagle's algorithm on each hop.
    if let Err(e) = client.set_nodelay(true) {
        debug!(client = %peer, error = %e, "cannot set TCP_NODELAY");
    }
    let mut tried = 0u64;
    loop {
        let picked = shared.table().pick(&mut tried);
        let Some((addr, active)) = picked else {
            debug!(client = %peer, "no API server accepted the connection; closing it");
            return;
        };
        let mut backend = match connect(addr, limit).await {
            Ok(s) => s,
            Err(e) => {
                debug!(client = %peer, backend = %addr, error = %crate::errors::chain(&e), "trying the next API server");
                continue;
            }
        };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
                Ok((up, down)) => debug!(client = %peer, backend = %addr, up, down, "connection closed"),
                Err(e) => debug!(client = %peer, backend = %addr, error = %e, "connection ended"),
            },
            () = active.0.close.cancelled() => {
                debug!(client = %peer, backend = %addr, "closed the connection to a backend that is down or gone");
            }
        }
        return;
    }
}

async fn connect(addr: SocketAddr, limit: Duration) -> Result<TcpStream, ApiLbError> {
    let s = timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| ApiLbError::ConnectTimeout { addr, after: limit })?
        .map_err(|source| ApiLbError::Connect { addr, source })?;
    if let Err(e) = s.set_nodelay(true) {
        debug!(backend = %addr, error = %e, "cannot set TCP_NODELAY");
    }
    Ok(s)
}

/// The health check (the module header says why this one): send [`PROBE`], wait for any
/// answer, all within `limit`.
async fn check(addr: SocketAddr, limit: Duration) -> Result<(), ApiLbError> {
    let answer = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|source| ApiLbError::Connect { addr, source })?;
        s.write_all(PROBE)
            .await
            .map_err(|source| ApiLbError::Check { addr, source })?;
        // Go's answer is under 100 bytes: read it whole, so that closing our end sends a FIN
        // rather than the RST that unread data would cause. Ok(0), a clean close, passes too:
        // only a running process closes a connection it accepted.
        let mut buf = [0u8; 128];
        s.read(&mut buf)
            .await
            .map_err(|source| ApiLbError::Check { addr, source })?;
        Ok(())
    };
    timeout(limit, answer)
        .await
        .map_err(|_| ApiLbError::CheckTimeout { addr, after: limit })?
}

/// Follows the backend list, checks every backend each period, writes the cache, publishes the
/// status.
async fn control_loop(
    shared: Arc<Shared>,
    cfg: LbConfig,
    mut set: Backends,
    mut rx: watch::Receiver<Vec<SocketAddr>>,
    status: watch::Sender<LbStatus>,
    mut redirect: Option<Redirect>,
) -> Infallible {
    let first = rx.borrow_and_update().clone();
    set.update(&first);
    apply(&shared, &set);
    persist(&mut set).await;
    publish(&status, shared.table().status(), redirect.is_some());

    let mut tick = tokio::time::interval(cfg.check_period);
    // A round that took longer than the period (a hung backend's full timeout) is followed by
    // a full period, not by a burst of rounds to catch up.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watching = true;
    let mut any_up = false;
    loop {
        tokio::select! {
            changed = rx.changed(), if watching => {
                if changed.is_err() {
                    // The caller's feed ended (it is shutting down, or failed): the last list
                    // stays in use, still checked.
                    info!("the API server list is no longer updated; keeping the last one");
                    watching = false;
                    continue;
                }
                let list = rx.borrow_and_update().clone();
                if set.update(&list) {
                    apply(&shared, &set);
                    // New backends are checked now, not a period later.
                    tick.reset_immediately();
                }
                persist(&mut set).await;
            }
            _ = tick.tick() => {
                let addrs: Vec<SocketAddr> =
                    shared.table().entries.iter().map(|e| e.addr).collect();
                let results =
                    join_all(addrs.iter().map(|&a| check(a, cfg.check_timeout))).await;
                let mut table = shared.table();
                let mut changes = Vec::new();
                for (addr, result) in addrs.iter().zip(&results) {
                    if let Err(e) = result {
                        debug!(backend = %addr, error = %crate::errors::chain(e), "health check failed");
                    }
                    changes.extend(table.record(*addr, result, cfg.fall));
                }
                let up_now = table.entries.iter().any(|e| e.health == Health::Up);
                drop(table);
                for change in changes {
                    match change {
                        Transition::Up(addr) => info!(backend = %addr, "backend up"),
                        Transition::Down(addr, 0, why) => {
                            info!(backend = %addr, error = %why, "backend down");
                        }
                        Transition::Down(addr, closed, why) => warn!(
                            backend = %addr, closed, error = %why,
                            "backend down; closed its connections, so that clients reconnect to a live one"
                        ),
                    }
                }
                if any_up && !up_now {
                    error!("no API server answers its health check; new connections try each in turn");
                } else if !any_up && up_now {
                    debug!("an API server answers its health check");
                }
                any_up = up_now;
            }
        }
        // One snapshot per round, for both: the fast path's list and the published status.
        // Connections the sync closes show in the counts of the next round.
        let now = shared.table().status();
        sync_redirect(&mut redirect, &shared, now.healthy()).await;
        publish(&status, now, redirect.is_some());
    }
}

/// Puts the list in use into the table, closing the connections of backends that left it.
fn apply(shared: &Shared, set: &Backends) {
    let (source, list) = set.current();
    let removed = shared.table().set(source, list);
    info!(source = ?source, backends = ?list, "API server list");
    for (addr, closed) in removed {
        info!(backend = %addr, closed, "backend left the list; closed its connections");
    }
}

/// Writes the cluster's list to the cache when it changed. A failure is logged and retried at
/// the next change: the balancer works without the cache, only the next start loses it.
async fn persist(set: &mut Backends) {
    let Some((path, list)) = set.to_persist() else {
        return;
    };
    let written = list.clone();
    let p = path.clone();
    match tokio::task::spawn_blocking(move || write_cache(&p, &list)).await {
        Ok(Ok(())) => {
            debug!(path = %path.display(), "wrote the API server cache");
            set.written = written;
        }
        Ok(Err(e)) => {
            error!(error = %crate::errors::chain(&e), "cannot keep the API server list for the next start")
        }
        Err(e) => {
            error!(path = %path.display(), error = %e, "cannot keep the API server list for the next start")
        }
    }
}

fn publish(status: &watch::Sender<LbStatus>, now: LbStatus, redirect: bool) {
    let now = LbStatus { redirect, ..now };
    status.send_if_modified(|s| {
        let changed = *s != now;
        if changed {
            *s = now;
        }
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    use tokio::task::JoinHandle;

    /// Every wait in these tests: a hang is a failure, not a stuck test run.
    async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
        within(Duration::from_secs(10), what, f).await
    }

    async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
        match timeout(limit, f).await {
            Ok(v) => v,
            Err(_) => panic!("not within {limit:?}: {what}"),
        }
    }

    /// How soon a dead or hung backend must be found with [`cfg`]: two failed checks take
    /// about 2 × 300 ms + 50 ms. The slack is for a loaded machine, and stays well under the
    /// ~6 s it takes probes to fill a never-accepting listener's backlog (128), after which
    /// even a connect-only check would fail, and the test would prove nothing.
    const DETECT: Duration = Duration::from_secs(3);

    /// Fast enough for tests, slow enough for a loaded 2-core machine.
    fn cfg() -> LbConfig {
        LbConfig {
            check_period: Duration::from_millis(50),
            check_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            fall: 2,
            cache: None,
            fallback: None,
            redirect: false,
        }
    }

    /// Aborts its task when dropped, so that a failed assertion leaves nothing running.
    struct Task(JoinHandle<()>);

    impl Drop for Task {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// A stand-in API server: on each connection it writes its name and a newline (which the
    /// health check sees as an answer), then echoes. Frozen, it acts like a SIGSTOPped process:
    /// the listener stays open (the kernel still accepts into its backlog) but nothing is
    /// accepted, read or written.
    struct Backend {
        addr: SocketAddr,
        freeze: watch::Sender<bool>,
        _task: Task,
    }

    async fn backend(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (freeze, frozen) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut gate = frozen.clone();
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => Some(r.unwrap()),
                    _ = gate.wait_for(|f| *f) => None,
                };
                let Some((mut s, _)) = accepted else {
                    // Frozen: hold the listener, accept nothing.
                    return std::future::pending().await;
                };
                let mut frozen = frozen.clone();
                tokio::spawn(async move {
                    if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    loop {
                        let read = tokio::select! {
                            r = s.read(&mut buf) => Some(r),
                            _ = frozen.wait_for(|f| *f) => None,
                        };
                        let n = match read {
                            Some(Ok(0) | Err(_)) => return,
                            Some(Ok(n)) => n,
                            // Frozen: hold the socket, answer nothing.
                            None => return std::future::pending().await,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            freeze,
            _task: Task(task),
        }
    }

    /// An address whose port refuses connections (bound, then released).
    fn refusing() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    struct Lb {
        addr: SocketAddr,
        list: watch::Sender<Vec<SocketAddr>>,
        status: watch::Receiver<LbStatus>,
        _task: Task,
    }

    async fn lb(cfg: LbConfig, list: Vec<SocketAddr>) -> Lb {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (list_tx, list_rx) = watch::channel(list);
        let (status_tx, status) = watch::channel(LbStatus::default());
        let task = tokio::spawn(async move {
            serve(listener, cfg, list_rx, status_tx).await;
        });
        Lb {
            addr,
            list: list_tx,
            status,
            _task: Task(task),
        }
    }

    impl Lb {
        async fn wait(&mut self, what: &str, f: impl FnMut(&LbStatus) -> bool) {
            bounded(what, self.status.wait_for(f)).await.unwrap();
        }

        async fn wait_within(
            &mut self,
            limit: Duration,
            what: &str,
            f: impl FnMut(&LbStatus) -> bool,
        ) {
            within(limit, what, self.status.wait_for(f)).await.unwrap();
        }
    }

    /// Connects through the balancer and returns the name of the backend it reached.
    async fn hello(lb: SocketAddr) -> (String, TcpStream) {
        bounded("hello through the balancer", async {
            let mut s = TcpStream::connect(lb).await.unwrap();
            let mut name = Vec::new();
            loop {
                let mut b = [0u8; 1];
                assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before the name");
                if b[0] == b'\n' {
                    break;
                }
                name.push(b[0]);
            }
            (String::from_utf8(name).unwrap(), s)
        })
        .await
    }

    /// The client sees the connection end: EOF or a reset, within the bound.
    async fn expect_closed(s: &mut TcpStream, what: &str) {
        let mut buf = [0u8; 16];
        let r = bounded(what, s.read(&mut buf)).await;
        assert!(matches!(r, Ok(0) | Err(_)), "{what}: read {r:?}");
    }

    #[tokio::test]
    async fn proxies_bytes_both_ways() {
        let a = backend("a").await;
        let lb = lb(cfg(), vec![a.addr]).await;
        let (name, s) = hello(lb.addr).await;
        assert_eq!(name, "a");
        // More than one socket buffer each way, written while it is read back.
        let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w
        });
        let mut back = vec![0u8; data.len()];
        bounded("echo through the balancer", r.read_exact(&mut back))
            .await
            .unwrap();
        assert!(back == data, "the echo differs from what was sent");
        let mut w = bounded("writer", writer).await.unwrap();
        // A half-close travels through: the backend sees EOF and closes, and so do we.
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        bounded("EOF after half-close", r.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
    }

    /// A stand-in TLS API server, with a session store of its own (as every API server has its
    /// own ticket keys): it answers the health check's plain-text line as Go's net/http does,
    /// and each TLS client with its name and a newline, then reads until the client closes.
    async fn tls_backend(name: &'static str, tls: Arc<rustls::ServerConfig>) -> (SocketAddr, Task) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 4];
                    // The probe is one write of a few bytes: one peek sees its start.
                    if s.peek(&mut head)
                        .await
                        .is_ok_and(|n| head[..n].starts_with(b"GET "))
                    {
                        let _ = s.read(&mut [0u8; 128]).await;
                        let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(s).await else {
                        return;
                    };
                    if tls.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 256];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        (addr, Task(task))
    }

    #[tokio::test]
    async fn a_client_that_reconnects_resumes_its_tls_session() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let server = |key: rustls::pki_types::PrivateKeyDer<'static>| {
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(vec![cert.cert.der().clone()], key)
                    .unwrap(),
            )
        };
        let (a, _a) = tls_backend("a", server(key.clone_key())).await;
        let (b, _b) = tls_backend("b", server(key)).await;
        let mut lb = lb(cfg(), vec![a, b]).await;
        lb.wait("both backends up", |s| s.healthy().count() == 2)
            .await;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        // rustls' default: an in-memory session cache, so that a new connection offers the
        // ticket of the last one.
        let client = tokio_rustls::TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut seen = Vec::new();
        // One connection at a time, each closed before the next, as a client that makes one
        // request per connection does.
        for _ in 0..6 {
            let tcp = bounded("connect", TcpStream::connect(lb.addr))
                .await
                .unwrap();
            let mut tls = bounded(
                "TLS handshake through the balancer",
                client.connect(name.clone(), tcp),
            )
            .await
            .unwrap();
            let mut line = Vec::new();
            loop {
                let mut c = [0u8; 1];
                bounded("the backend's name", tls.read_exact(&mut c))
                    .await
                    .unwrap();
                if c[0] == b'\n' {
                    break;
                }
                line.push(c[0]);
            }
            let kind = tls.get_ref().1.handshake_kind();
            seen.push((String::from_utf8(line).unwrap(), kind));
            // Closed, and the balancer's side of it gone, before the next one: a read sees
            // EOF only after the proxy task ended (one task on this one-thread runtime).
            let (mut tcp, _) = tls.into_inner();
            tcp.shutdown().await.unwrap();
            let _ = bounded("the close", tcp.read_to_end(&mut Vec::new())).await;
        }
        use rustls::HandshakeKind::{Full, Resumed};
        assert_eq!(seen[0].1, Some(Full), "{seen:?}");
        assert!(
            seen[1..]
                .iter()
                .all(|(n, k)| n == &seen[0].0 && *k == Some(Resumed)),
            "every reconnect reaches the same backend and resumes there: {seen:?}"
        );
    }

    #[tokio::test]
    async fn skips_a_backend_that_refuses_connections() {
        let good = backend("good").await;
        let bad = refusing();
        let mut lb = lb(cfg(), vec![bad, good.addr]).await;
        // A cold start, before any check: each connection tries the backends in turn.
        for _ in 0..6 {
            assert_eq!(hello(lb.addr).await.0, "good");
        }
        lb.wait("the refusing backend marked down", |s| {
            s.health_of(bad) == Some(Health::Down) && s.health_of(good.addr) == Some(Health::Up)
        })
        .await;
        for _ in 0..6 {
            assert_eq!(hello(lb.addr).await.0, "good");
        }
    }

    #[tokio::test]
    async fn detects_a_backend_that_accepts_but_never_answers() {
        let good = backend("good").await;
        // Listening, never accepting: the kernel completes every handshake from the backlog,
        // as it does for a SIGSTOPped API server. A TCP connect would call it healthy.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung_addr = hung.local_addr().unwrap();
        let mut lb = lb(cfg(), vec![hung_addr, good.addr]).await;
        lb.wait_within(DETECT, "the hung backend marked down", |s| {
            s.health_of(hung_addr) == Some(Health::Down)
                && s.health_of(good.addr) == Some(Health::Up)
        })
        .await;
        for _ in 0..10 {
            assert_eq!(hello(lb.addr).await.0, "good");
        }
        drop(hung);
    }

    /// The fast path under the control loop, in a network namespace of the test's own
    /// (`redirect::tests` says why that is safe): a connect reaches a backend itself, and when
    /// that backend hangs, the connection is closed and new ones go to the other.
    #[test]
    fn with_the_fast_path_connects_go_straight_to_a_live_backend() {
        in_new_netns(async {
            let a = backend("a").await;
            let b = backend("b").await;
            let cfg = LbConfig {
                redirect: true,
                ..cfg()
            };
            let mut lb = lb(cfg, vec![a.addr, b.addr]).await;
            lb.wait("both backends up, connect-time on", |s| {
                s.redirect && s.healthy().count() == 2
            })
            .await;
            let (name, mut s) = hello(lb.addr).await;
            let (victim, other) = if name == "a" { (&a, "b") } else { (&b, "a") };
            assert_eq!(s.peer_addr().unwrap(), victim.addr, "not straight to it");
            victim.freeze.send(true).unwrap();
            let mut buf = [0u8; 16];
            let r = within(
                DETECT,
                "the connection to the frozen backend closed",
                async { s.read(&mut buf).await },
            )
            .await;
            assert!(matches!(r, Ok(0) | Err(_)), "read {r:?}");
            for _ in 0..4 {
                let (name, s) = hello(lb.addr).await;
                assert_eq!(name, other);
                assert_ne!(s.peer_addr().unwrap(), lb.addr);
            }
        });
    }

    /// A connection the proxy took while no backend was healthy is closed once one is, so that
    /// its client reconnects straight to it rather than staying on the proxy for good.
    #[test]
    fn with_the_fast_path_proxied_connections_move_to_it_once_a_backend_is_healthy() {
        in_new_netns(async {
            let hung = backend("hung").await;
            hung.freeze.send(true).unwrap();
            let a = backend("a").await;
            let cfg = LbConfig {
                redirect: true,
                ..cfg()
            };
            let mut lb = lb(cfg, vec![hung.addr]).await;
            lb.wait("the hung backend down", |s| {
                s.health_of(hung.addr) == Some(Health::Down)
            })
            .await;
            // Nothing healthy: the program passes the connect to the proxy, which tries
            // the hung backend anyway (its kernel accepts).
            let mut c = TcpStream::connect(lb.addr).await.unwrap();
            assert_eq!(c.peer_addr().unwrap(), lb.addr, "not proxied");
            lb.wait("the proxied connection counted", |s| {
                s.backends.iter().any(|b| b.connections == 1)
            })
            .await;
            lb.list.send(vec![hung.addr, a.addr]).unwrap();
            lb.wait("a healthy, connect-time on", |s| {
                s.redirect && s.healthy().count() == 1
            })
            .await;
            let mut buf = [0u8; 16];
            within(DETECT, "the proxied connection closed", async {
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            let (name, s) = hello(lb.addr).await;
            assert_eq!(name, "a");
            assert_eq!(s.peer_addr().unwrap(), a.addr, "not straight to a");
        });
    }

    /// Runs `test` on a runtime of its own, on a thread in a network namespace of its own
    /// (`redirect::tests::in_new_netns`), where the fast path may be attached safely.
    fn in_new_netns(test: impl Future<Output = ()> + Send + 'static) {
        redirect::tests::in_new_netns(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test);
        });
    }

    #[tokio::test]
    async fn closes_connections_to_a_backend_marked_down() {
        let a = backend("a").await;
        let b = backend("b").await;
        let mut lb = lb(cfg(), vec![a.addr, b.addr]).await;
        lb.wait("both backends up", |s| s.healthy().count() == 2)
            .await;
        let (name, mut s) = hello(lb.addr).await;
        let (victim, other) = if name == "a" { (&a, "b") } else { (&b, "a") };
        victim.freeze.send(true).unwrap();
        let mut buf = [0u8; 16];
        let r = within(
            DETECT,
            "the connection to the frozen backend closed",
            s.read(&mut buf),
        )
        .await;
        assert!(matches!(r, Ok(0) | Err(_)), "read {r:?}");
        lb.wait("the frozen backend marked down", |s| {
            s.health_of(victim.addr) == Some(Health::Down)
        })
        .await;
        for _ in 0..4 {
            assert_eq!(hello(lb.addr).await.0, other);
        }
    }

    #[tokio::test]
    async fn follows_the_list_without_restart() {
        let a = backend("a").await;
        let b = backend("b").await;
        let mut lb = lb(cfg(), vec![a.addr]).await;
        let (name, mut to_a) = hello(lb.addr).await;
        assert_eq!(name, "a");

        lb.list.send(vec![b.addr]).unwrap();
        lb.wait("b replaces a", |s| {
            s.source == Source::Cluster
                && s.backends.len() == 1
                && s.health_of(b.addr) == Some(Health::Up)
        })
        .await;
        expect_closed(&mut to_a, "the connection to a backend that left the list").await;
        assert_eq!(hello(lb.addr).await.0, "b");

        // An empty list is "not known", not "no API server": b stays.
        lb.list.send(vec![]).unwrap();
        lb.list.send(vec![a.addr, b.addr]).unwrap();
        lb.wait("a joins again", |s| s.healthy().count() == 2).await;
        let mut seen = std::collections::BTreeSet::new();
        // Held open, so that least-connections sends the next one to the other backend.
        let mut held = Vec::new();
        for _ in 0..4 {
            let (name, s) = hello(lb.addr).await;
            seen.insert(name);
            held.push(s);
        }
        assert_eq!(seen.len(), 2, "both backends get connections: {seen:?}");
    }

    #[tokio::test]
    async fn writes_the_cache_and_loads_it_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apilb/backends.json");
        let a = backend("a").await;
        let fallback = backend("fallback").await;
        let cfg = LbConfig {
            cache: Some(path.clone()),
            fallback: Some(fallback.addr),
            ..cfg()
        };
        {
            let lb = lb(cfg.clone(), vec![a.addr]).await;
            bounded("the cache is written", async {
                while load_cache(&path).unwrap() != Some(vec![a.addr]) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            drop(lb);
        }
        // The next start: nothing from the cluster yet. The cache wins over the fallback.
        let mut lb = lb(cfg, vec![]).await;
        lb.wait("the cached list in use", |s| {
            s.source == Source::Cache && s.health_of(a.addr) == Some(Health::Up)
        })
        .await;
        assert_eq!(lb.status.borrow().backends.len(), 1);
        assert_eq!(hello(lb.addr).await.0, "a");
    }

    #[tokio::test]
    async fn uses_the_fallback_only_while_no_list_is_known() {
        let a = backend("a").await;
        let fallback = backend("fallback").await;
        let cfg = LbConfig {
            fallback: Some(fallback.addr),
            ..cfg()
        };
        let mut lb = lb(cfg, vec![]).await;
        lb.wait("the fallback in use", |s| s.source == Source::Fallback)
            .await;
        assert_eq!(hello(lb.addr).await.0, "fallback");
        lb.list.send(vec![a.addr]).unwrap();
        lb.wait("the cluster's list replaces the fallback", |s| {
            s.source == Source::Cluster && s.backends.len() == 1
        })
        .await;
        for _ in 0..4 {
            assert_eq!(hello(lb.addr).await.0, "a");
        }
    }

    /// A listener that treats each connection with `answer` (after reading the probe).
    async fn one_shot(answer: Option<&'static [u8]>) -> (SocketAddr, Task) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                match answer {
                    Some(bytes) => {
                        let _ = s.write_all(bytes).await;
                    }
                    // Accepted, read, and never answered: kept open.
                    None => held.push(s),
                }
            }
        });
        (addr, Task(task))
    }

    #[tokio::test]
    async fn the_check_needs_an_answer_not_a_connection() {
        let limit = Duration::from_millis(300);
        // What Go's net/http writes (then closes) on a TLS port for a request in plain text.
        let (go, _g) = one_shot(Some(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        ))
        .await;
        bounded("check of a Go-like server", check(go, limit))
            .await
            .unwrap();
        // A server that closes without a word: a running process did that.
        let (closes, _c) = one_shot(Some(b"")).await;
        bounded("check of a closing server", check(closes, limit))
            .await
            .unwrap();
        let (silent, _s) = one_shot(None).await;
        let r = bounded("check of a silent server", check(silent, limit)).await;
        assert!(matches!(r, Err(ApiLbError::CheckTimeout { .. })), "{r:?}");
        let r = bounded("check of a refusing port", check(refusing(), limit)).await;
        assert!(matches!(r, Err(ApiLbError::Connect { .. })), "{r:?}");
    }

    #[test]
    fn backends_prefer_cluster_then_cache_then_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backends.json");
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:6443".parse().unwrap();
        let f: SocketAddr = "192.0.2.9:6443".parse().unwrap();

        let mut set = Backends::load(Some(path.clone()), Some(f));
        assert_eq!(set.current(), (Source::Fallback, &[f][..]));
        assert!(!set.update(&[]), "an empty list changes nothing");
        assert!(set.update(&[b, a, b]));
        assert_eq!(set.current(), (Source::Cluster, &[a, b][..]));
        assert!(!set.update(&[b, a]), "reordered is unchanged");
        assert!(!set.update(&[]));
        assert_eq!(set.current().1, &[a, b][..]);
        assert_eq!(set.to_persist(), Some((path.clone(), vec![a, b])));

        write_cache(&path, &[b]).unwrap();
        let set = Backends::load(Some(path.clone()), Some(f));
        assert_eq!(set.current(), (Source::Cache, &[b][..]));
        assert_eq!(set.to_persist(), None, "nothing new to write");

        std::fs::write(&path, b"not json").unwrap();
        let set = Backends::load(Some(path), None);
        assert_eq!(set.current(), (Source::None, &[][..]));
    }

    fn table(addrs: &[SocketAddr]) -> Table {
        let mut t = Table::new(CancellationToken::new(), 0);
        t.set(Source::Cluster, addrs);
        t
    }

    fn fail(addr: SocketAddr) -> Result<(), ApiLbError> {
        Err(ApiLbError::CheckTimeout {
            addr,
            after: Duration::from_secs(1),
        })
    }

    #[test]
    fn a_refused_connect_is_down_at_once() {
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let mut t = table(&[a]);
        assert_eq!(t.record(a, &Ok(()), 2), Some(Transition::Up(a)));
        let refused = Err(ApiLbError::Connect {
            addr: a,
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        });
        assert!(matches!(
            t.record(a, &refused, 2),
            Some(Transition::Down(_, 0, _))
        ));
        // Any other connect error is a silence like a timeout: it takes two.
        assert_eq!(t.record(a, &Ok(()), 2), Some(Transition::Up(a)));
        let unreachable = Err(ApiLbError::Connect {
            addr: a,
            source: io::Error::from(io::ErrorKind::HostUnreachable),
        });
        assert_eq!(t.record(a, &unreachable, 2), None);
        assert!(t.record(a, &unreachable, 2).is_some());
    }

    #[test]
    fn down_after_two_failures_up_after_one_success() {
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let mut t = table(&[a]);
        assert_eq!(t.record(a, &Ok(()), 2), Some(Transition::Up(a)));
        let mut tried = 0;
        let (_, conn) = t.pick(&mut tried).unwrap();
        let token = conn.0.close.clone();
        assert_eq!(t.record(a, &fail(a), 2), None, "one failure is not enough");
        assert_eq!(t.record(a, &Ok(()), 2), None, "a success resets the count");
        assert_eq!(t.record(a, &fail(a), 2), None);
        assert!(!token.is_cancelled());
        let Some(Transition::Down(_, 1, why)) = t.record(a, &fail(a), 2) else {
            panic!("not down after two failures");
        };
        assert!(why.contains("did not answer"), "{why}");
        assert!(token.is_cancelled(), "its connections are closed");
        assert_eq!(t.record(a, &fail(a), 2), None, "down once");
        assert_eq!(t.status().backends[0].connections, 0, "a new generation");
        assert_eq!(t.record(a, &Ok(()), 2), Some(Transition::Up(a)));
    }

    #[test]
    fn a_tie_stays_on_the_last_pick_and_load_still_spreads() {
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:6443".parse().unwrap();
        let c: SocketAddr = "192.0.2.3:6443".parse().unwrap();
        let mut t = table(&[a, b, c]);
        for addr in [a, b, c] {
            t.record(addr, &Ok(()), 2);
        }
        // One connection at a time (each closed before the next): the same backend each time,
        // so that a client that reconnects can resume its TLS session there.
        let first = t.pick(&mut 0).unwrap().0;
        for _ in 0..5 {
            assert_eq!(
                t.pick(&mut 0).unwrap().0,
                first,
                "a tie moved to another backend"
            );
        }
        // Held connections count: three at once go to three backends, and the next ones
        // after those are closed stay where the last one went.
        let held: Vec<_> = (0..3).map(|_| t.pick(&mut 0).unwrap()).collect();
        let mut spread: Vec<_> = held.iter().map(|h| h.0).collect();
        spread.sort();
        assert_eq!(spread, [a, b, c]);
        let last = held[2].0;
        drop(held);
        assert_eq!(t.pick(&mut 0).unwrap().0, last);
    }

    #[test]
    fn picks_the_least_loaded_healthy_then_the_rest_in_turn() {
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:6443".parse().unwrap();
        let c: SocketAddr = "192.0.2.3:6443".parse().unwrap();
        let mut t = table(&[a, b, c]);

        // Nothing checked yet: every backend in turn for one connection (each refused it).
        let mut tried = 0;
        let order: Vec<_> = std::iter::from_fn(|| t.pick(&mut tried).map(|p| p.0)).collect();
        assert_eq!(order, [a, b, c]);
        let mut tried = 0;
        assert_eq!(
            t.pick(&mut tried).unwrap().0,
            c,
            "the next connection starts at the one tried last"
        );

        t.record(a, &Ok(()), 2);
        t.record(c, &Ok(()), 2);
        for _ in 0..2 {
            t.record(b, &fail(b), 2);
        }
        let mut held = Vec::new();
        let mut picks = Vec::new();
        for _ in 0..4 {
            let (addr, conn) = t.pick(&mut 0).unwrap();
            picks.push(addr);
            held.push(conn);
        }
        assert_eq!(picks.iter().filter(|&&p| p == a).count(), 2);
        assert_eq!(picks.iter().filter(|&&p| p == c).count(), 2);
        assert!(
            !picks.contains(&b),
            "a down backend is not picked while others are up"
        );

        // Both healthy ones refused this connection: the down one is the last resort.
        let mut tried = 0;
        let first = t.pick(&mut tried).unwrap().0;
        let second = t.pick(&mut tried).unwrap().0;
        assert_eq!([first, second].into_iter().filter(|&p| p != b).count(), 2);
        assert_eq!(t.pick(&mut tried).unwrap().0, b);
        assert!(t.pick(&mut tried).is_none());

        let removed = t.set(Source::Cluster, &[c]);
        assert_eq!(removed.len(), 2);
        assert_eq!(removed.iter().find(|r| r.0 == a).unwrap().1, 2);
        assert_eq!(t.status().backends.len(), 1);
        assert_eq!(
            t.status().backends[0].health,
            Health::Up,
            "c keeps its health"
        );
    }
}
