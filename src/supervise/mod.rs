//! The supervisor: spawns, reaps, probes, restarts and stops a node's processes.
//!
//! Owns: the process tree below kubesup. Each child runs in its own session and process group,
//! with an explicit environment, a parent-death signal, and its output forwarded to tracing and
//! to a rotated log file ([`process`], [`logs`]). Each child's lifecycle is the pure state
//! machine of [`state`], driven by one task per child ([`unit`]).
//!
//! Invariants:
//! - start order follows `depends_on`, and a child starts only once everything it depends on
//!   is ready (its probe passed);
//! - a failing child is restarted on its own; nothing else is touched (unlike k3s, which
//!   restarts everything);
//! - stop order is the reverse start order: SIGTERM to the group, the child's grace period,
//!   SIGKILL to the group, reap; once shutdown begins, nothing restarts;
//! - every live child is recorded ([`pidfile`]) so a kubesup started after a `kill -9` of the
//!   previous one sweeps exactly the survivors, and nothing else.
//!
//! Must not: wait for children anywhere but the reaper, or use tokio's process module.

pub mod control;
pub mod file;
pub mod lock;
pub mod logs;
pub mod pidfile;
pub mod probe;
pub mod process;
pub mod state;
mod unit;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

pub use probe::{Probe, ProbeSpec, TlsProbe};
pub use process::{Exec, Procs, default_sigpipe, limit_malloc_arenas};
pub use state::{Policy, State};

use pidfile::PidFile;
use unit::{Unit, UnitCmd};

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{child} depends on {dependency}, which is not supervised")]
    UnknownDependency { child: String, dependency: String },
    #[error("dependency cycle among {0}")]
    Cycle(String),
    #[error("two children are named {0}")]
    Duplicate(String),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
}

/// A check run right before every exec (e.g. re-verifying a fetched binary's hash). An error
/// counts as a failure to exec: the binary is not executed.
pub type Verify = Arc<dyn Fn() -> Result<(), VerifyError> + Send + Sync>;

/// Why a check refused to let a binary run. The supervisor sits below the modules that own the
/// checks (fetch verifies hashes), so it keeps their error whole, boxed, with its causes.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct VerifyError(Box<dyn std::error::Error + Send + Sync>);

impl VerifyError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

/// Everything the supervisor needs to run one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub exec: Exec,
    pub depends_on: Vec<String>,
    /// Conditions outside the supervisor that must hold before the child first starts, besides
    /// its dependencies being ready (a master's API server waits for its etcd member to be a
    /// voter: a learner serves no reads). Each is waited for until it reads `true`.
    pub gates: Vec<watch::Receiver<bool>>,
    pub probe: Option<ProbeSpec>,
    pub policy: Policy,
    /// Files the child reads its configuration from; a change restarts it on SIGHUP.
    pub config_files: Vec<PathBuf>,
    pub verify: Option<Verify>,
    pub log_file: Option<PathBuf>,
    pub log_max_bytes: u64,
    pub log_keep: u32,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("exec", &self.exec)
            .field("depends_on", &self.depends_on)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    pub fn new(name: impl Into<String>, exec: Exec) -> Self {
        Self {
            name: name.into(),
            exec,
            depends_on: Vec::new(),
            gates: Vec::new(),
            probe: None,
            policy: Policy::default(),
            config_files: Vec::new(),
            verify: None,
            log_file: None,
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 3,
        }
    }

    /// Hash of what the child would run with: program, argv, environment and the contents of
    /// its config files. A different fingerprint on SIGHUP means "restart it".
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("{:?}", self.exec).as_bytes());
        for f in &self.config_files {
            h.update(f.as_os_str().as_encoded_bytes());
            match std::fs::read(f) {
                Ok(bytes) => h.update(&bytes),
                Err(_) => h.update(b"<missing>"),
            }
        }
        hex::encode(h.finalize())
    }
}

/// What `kubesup status` shows of one child.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitStatus {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    #[serde(skip)]
    pub started_at: Option<SystemTime>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    pub ready: bool,
}

/// The live state of every child, in start order.
#[derive(Default)]
pub struct StatusBoard {
    inner: Mutex<BTreeMap<String, UnitStatus>>,
    order: Mutex<Vec<String>>,
    changed: tokio::sync::Notify,
}

impl StatusBoard {
    fn set(&self, s: UnitStatus) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(&s.name) != Some(&s) {
            m.insert(s.name.clone(), s);
            // notify_one keeps a permit when nobody is waiting, so a change is never missed.
            self.changed.notify_one();
        }
    }

    /// Resolves after the next change (or at once if one happened since the last call), so
    /// watchers wake on events instead of polling: an idle supervisor stays asleep.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    pub fn snapshot(&self) -> Vec<UnitStatus> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.iter().filter_map(|n| m.get(n).cloned()).collect()
    }
}

struct Handle {
    name: String,
    cmds: mpsc::UnboundedSender<UnitCmd>,
    task: tokio::task::JoinHandle<()>,
    fingerprint: String,
}

/// Restarts children of a running supervisor from another task.
#[derive(Clone)]
pub struct SupervisorHandle {
    cmds: HashMap<String, mpsc::UnboundedSender<UnitCmd>>,
}

impl SupervisorHandle {
    pub fn restart(&self, name: &str) {
        if let Some(tx) = self.cmds.get(name) {
            info!(component = name, "restarting on request");
            let _ = tx.send(UnitCmd::Restart);
        }
    }
}

/// A running set of children.
pub struct Supervisor {
    units: Vec<Handle>,
    ready: HashMap<String, watch::Receiver<bool>>,
    board: Arc<StatusBoard>,
}

impl Supervisor {
    /// Checks the dependency graph and starts every child as soon as its dependencies are
    /// ready. `pid_file` records live children (see [`pidfile`]).
    pub fn start(specs: Vec<ChildSpec>, pid_file: PathBuf) -> Result<Self, SuperviseError> {
        let specs = topo_sort(specs)?;
        let procs = Procs::global()?;
        let board = Arc::new(StatusBoard::default());
        *board.order.lock().unwrap_or_else(|p| p.into_inner()) =
            specs.iter().map(|s| s.name.clone()).collect();
        let pidfile = Arc::new(Mutex::new(PidFile::new(&pid_file)));
        let mut ready = HashMap::new();
        let mut units = Vec::new();
        for spec in specs {
            let (ready_tx, ready_rx) = watch::channel(false);
            let deps = spec
                .depends_on
                .iter()
                .filter_map(|d| ready.get(d).cloned())
                .chain(spec.gates.iter().cloned())
                .collect();
            ready.insert(spec.name.clone(), ready_rx);
            let (exits_tx, exits_rx) = mpsc::unbounded_channel();
            let (probe_tx, probe_rx) = mpsc::unbounded_channel();
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
            let name = spec.name.clone();
            let fingerprint = spec.fingerprint();
            let unit = Unit {
                spec,
                state: state::UnitState::default(),
                procs,
                exits_tx,
                exits_rx,
                cmds: cmd_rx,
                ready_tx,
                deps,
                board: board.clone(),
                pidfile: pidfile.clone(),
                timer: None,
                probe_tx,
                probe_rx,
                probe_task: None,
                stop_waiters: Vec::new(),
                started_at: None,
                log: None,
            };
            units.push(Handle {
                name,
                cmds: cmd_tx,
                task: tokio::spawn(unit.run()),
                fingerprint,
            });
        }
        Ok(Self {
            units,
            ready,
            board,
        })
    }

    pub fn board(&self) -> Arc<StatusBoard> {
        self.board.clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.units.iter().map(|u| u.name.clone()).collect()
    }

    /// Readiness of one child, as a watch (true while its probe passes).
    pub fn ready_watch(&self, name: &str) -> Option<watch::Receiver<bool>> {
        self.ready.get(name).cloned()
    }

    /// Waits until every child is ready, or `timeout`; returns whether they all are.
    pub async fn wait_all_ready(&self, timeout: Duration) -> bool {
        let all = self.ready.values().cloned().map(|mut r| async move {
            let _ = r.wait_for(|v| *v).await;
        });
        tokio::time::timeout(timeout, futures_util::future::join_all(all))
            .await
            .is_ok()
    }

    /// Restarts one child (e.g. its certificate was renewed).
    pub fn restart(&self, name: &str) {
        self.handle().restart(name)
    }

    /// A cheap handle for tasks that outlive a borrow of the supervisor (certificate renewal).
    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle {
            cmds: self
                .units
                .iter()
                .map(|u| (u.name.clone(), u.cmds.clone()))
                .collect(),
        }
    }

    /// Applies a new set of specs: children whose fingerprint changed are restarted with the
    /// new spec; the others are left alone. Returns the names restarted.
    pub fn reload(&mut self, specs: Vec<ChildSpec>) -> Vec<String> {
        let mut restarted = Vec::new();
        for spec in specs {
            let Some(u) = self.units.iter_mut().find(|u| u.name == spec.name) else {
                warn!(component = %spec.name, "new component in config; restart kubesup to add it");
                continue;
            };
            let fp = spec.fingerprint();
            if fp != u.fingerprint {
                info!(component = %u.name, "configuration changed; restarting");
                u.fingerprint = fp;
                let _ = u.cmds.send(UnitCmd::Replace(Box::new(spec)));
                let _ = u.cmds.send(UnitCmd::Restart);
                restarted.push(u.name.clone());
            }
        }
        restarted
    }

    /// Stops everything in reverse start order. If `kill_now` resolves first (a second
    /// signal), every remaining child's group gets SIGKILL at once.
    pub async fn shutdown(self, kill_now: impl std::future::Future<Output = ()>) {
        for u in &self.units {
            let _ = u.cmds.send(UnitCmd::Shutdown);
        }
        {
            let units = &self.units;
            let ordered = async move {
                for u in units.iter().rev() {
                    let (tx, rx) = oneshot::channel();
                    if u.cmds.send(UnitCmd::Stop(tx)).is_ok() {
                        let _ = rx.await;
                    }
                }
            };
            tokio::pin!(ordered);
            tokio::select! {
                _ = &mut ordered => {}
                _ = kill_now => {
                    warn!("second signal: killing every component now");
                    for u in units {
                        let _ = u.cmds.send(UnitCmd::Kill);
                    }
                    ordered.await;
                }
            }
        }
        for u in self.units {
            drop(u.cmds);
            let _ = u.task.await;
        }
    }
}

/// Orders specs so that every child comes after its dependencies (Kahn's algorithm, stable
/// with respect to the given order).
fn topo_sort(specs: Vec<ChildSpec>) -> Result<Vec<ChildSpec>, SuperviseError> {
    let mut names = HashMap::new();
    for (i, s) in specs.iter().enumerate() {
        if names.insert(s.name.clone(), i).is_some() {
            return Err(SuperviseError::Duplicate(s.name.clone()));
        }
    }
    for s in &specs {
        for d in &s.depends_on {
            if !names.contains_key(d) {
                return Err(SuperviseError::UnknownDependency {
                    child: s.name.clone(),
                    dependency: d.clone(),
                });
            }
        }
    }
    let mut placed = vec![false; specs.len()];
    let mut order = Vec::with_capacity(specs.len());
    while order.len() < specs.len() {
        let before = order.len();
        for (i, s) in specs.iter().enumerate() {
            if !placed[i] && s.depends_on.iter().all(|d| placed[names[d]]) {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            let stuck: Vec<_> = specs
                .iter()
                .enumerate()
                .filter(|(i, _)| !placed[*i])
                .map(|(_, s)| s.name.clone())
                .collect();
            return Err(SuperviseError::Cycle(stuck.join(", ")));
        }
    }
    let mut slots: Vec<Option<ChildSpec>> = specs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, deps: &[&str]) -> ChildSpec {
        let mut s = ChildSpec::new(
            name,
            Exec {
                program: "/bin/true".into(),
                args: vec![],
                env: vec![],
                cwd: None,
            },
        );
        s.depends_on = deps.iter().map(|d| d.to_string()).collect();
        s
    }

    #[test]
    fn sorts_by_dependency() {
        let sorted = topo_sort(vec![
            spec("scheduler", &["apiserver"]),
            spec("apiserver", &["etcd"]),
            spec("etcd", &[]),
        ])
        .unwrap();
        let names: Vec<_> = sorted.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["etcd", "apiserver", "scheduler"]);
    }

    #[test]
    fn refuses_cycles_and_unknown_dependencies() {
        let e = topo_sort(vec![spec("a", &["b"]), spec("b", &["a"])]).unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle among a, b");
        let e = topo_sort(vec![spec("a", &["zz"])]).unwrap_err();
        assert_eq!(e.to_string(), "a depends on zz, which is not supervised");
    }

    #[test]
    fn fingerprint_follows_config_file_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "a: 1").unwrap();
        let mut s = spec("x", &[]);
        s.config_files.push(f.clone());
        let one = s.fingerprint();
        assert_eq!(one, s.fingerprint());
        std::fs::write(&f, "a: 2").unwrap();
        assert_ne!(one, s.fingerprint());
    }
}
