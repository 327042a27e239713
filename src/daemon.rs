//! The daemon: the life of a running kubesup on one node, shared by `master`, `worker` and
//! `supervise`:
//! hold the data-dir lock, sweep survivors of a crashed predecessor, serve the control socket,
//! supervise the children, and turn signals into shutdown (TERM/INT), immediate kill (a second
//! TERM/INT) and reload (HUP). It also speaks sd_notify: READY=1 only once every child is
//! ready, STATUS= as that changes, and watchdog pings from this loop.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::ConfigError;
use crate::model::Component;
use crate::paths::Paths;
use crate::pki::PkiError;
use crate::plan::BuildError;
use crate::supervise::control::{self, ControlRequest};
use crate::supervise::file::FileError;
use crate::supervise::lock::{DataDirLock, LockError};
use crate::supervise::{ChildSpec, SuperviseError, Supervisor, pidfile};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot prepare data dir {path}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// A data dir this process owns exclusively.
pub struct Daemon {
    pub paths: Paths,
    _lock: DataDirLock,
    /// Shown by `kubesup status` when set ([`Daemon::with_api_lb`]).
    api_lb: Option<control::ApiLbFeed>,
}

/// A task that runs beside the supervisor once it has started (e.g. applying add-ons when
/// the API server is ready). It gets the supervisor's readiness watches.
pub type Hook = Box<dyn FnOnce(&Supervisor) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A hook that runs `task` once `component` is first ready (at once if kubesup does not
/// supervise it): most of a node's side work waits for etcd, the API server or kubelet.
pub fn once_ready<Fut>(component: Component, task: impl FnOnce() -> Fut + Send + 'static) -> Hook
where
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |sup: &Supervisor| {
        let ready = sup.ready_watch(component.name());
        Box::pin(async move {
            if let Some(mut r) = ready {
                let _ = r.wait_for(|v| *v).await;
            }
            task().await;
        })
    })
}

/// Rebuilds the child specs from the (re-read) configuration on SIGHUP.
pub type Reload = Box<dyn FnMut() -> Result<Vec<ChildSpec>, ReloadError> + Send>;

/// Why a reload (SIGHUP) kept the running specs. Each variant is one of the things a reload
/// re-reads or re-makes; nothing changes unless all of them succeed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Plan(#[from] BuildError),
    #[error(transparent)]
    SpecFile(#[from] FileError),
}

impl Daemon {
    /// Creates the data dir (0700), takes its lock and kills survivors of a previous kubesup
    /// recorded in its pid file. Nothing is written before the lock is held.
    pub fn acquire(paths: Paths) -> Result<Self, DaemonError> {
        let dir = paths.data_dir();
        let err = |source| DaemonError::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        let fresh = !dir.exists();
        std::fs::create_dir_all(dir).map_err(err)?;
        if fresh {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        let lock = DataDirLock::acquire(&paths.lock_file())?;
        pidfile::sweep(&paths.pid_file(), Duration::from_secs(10));
        Ok(Self {
            paths,
            _lock: lock,
            api_lb: None,
        })
    }

    /// Reports the node-local API load balancer listening on `listen` in `kubesup status`,
    /// with the healthy backends its status feed names.
    pub fn with_api_lb(
        mut self,
        listen: std::net::SocketAddr,
        status: tokio::sync::watch::Receiver<crate::apilb::LbStatus>,
    ) -> Self {
        self.api_lb = Some((listen, status));
        self
    }

    /// Supervises `specs` until SIGTERM/SIGINT or a `stop` request, then stops everything in
    /// reverse order.
    pub async fn supervise(
        self,
        role: &str,
        specs: Vec<ChildSpec>,
        mut reload: Option<Reload>,
        hooks: Vec<Hook>,
    ) -> Result<(), DaemonError> {
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

        let mut sup = Supervisor::start(specs, self.paths.pid_file())?;
        let (req_tx, mut req_rx) = mpsc::unbounded_channel();
        let server = control::serve(
            self.paths.control_socket(),
            role.to_string(),
            sup.board(),
            req_tx,
            self.api_lb.clone(),
        )
        .await?;
        let mut hook_tasks: Vec<_> = hooks.into_iter().map(|h| tokio::spawn(h(&sup))).collect();

        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
        // Only ticks when systemd asked for a watchdog.
        let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(86_400)));
        let mut announced_ready = false;
        let mut last_status = String::new();
        let board = sup.board();

        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                Some(ControlRequest::Stop) = req_rx.recv() => { info!("stop requested on the control socket"); break; }
                _ = hup.recv() => match reload.as_mut().map(|r| r()) {
                    Some(Ok(specs)) => {
                        let changed = sup.reload(specs);
                        info!(restarted = ?changed, "SIGHUP: configuration reloaded");
                    }
                    Some(Err(e)) => warn!(error = %crate::errors::chain(&e), "SIGHUP: configuration not reloaded; nothing changed"),
                    None => info!("SIGHUP: nothing to reload"),
                },
                _ = ticker.tick(), if watchdog.is_some() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                _ = board.changed() => {
                    let units = board.snapshot();
                    let ready = units.iter().filter(|u| u.ready).count();
                    let status = format!("{ready}/{} components ready", units.len());
                    if status != last_status {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
                        last_status = status;
                        crate::supervise::process::release_free_heap();
                    }
                    if !announced_ready && ready == units.len() {
                        announced_ready = true;
                        info!(components = units.len(), "every component is ready");
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                    }
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        for t in hook_tasks.drain(..) {
            t.abort();
        }
        let kill_now = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        sup.shutdown(kill_now).await;
        server.abort();
        let _ = std::fs::remove_file(self.paths.control_socket());
        info!("every component stopped");
        Ok(())
    }
}
