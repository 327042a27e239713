//! The driver of one child: feeds events (exits from the reaper, probe results, timers,
//! commands) to the pure state machine and carries out the actions it returns.
//!
//! It is driven by `select!` on those sources; nothing here sleeps in a loop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::logs::{self, RotatingFile, SharedLog};
use super::pidfile::{ChildRecord, PidFile};
use super::probe::{Prober, Verdict};
use super::process::{self, Procs};
use super::state::{self, Action, Event, Phase, UnitState};
use super::{ChildSpec, StatusBoard, UnitStatus};

pub(crate) enum UnitCmd {
    Stop(oneshot::Sender<()>),
    Kill,
    Shutdown,
    Restart,
    Replace(Box<ChildSpec>),
}

/// How soon a ready component's failed health check is repeated.
const FAILING_RECHECK: Duration = Duration::from_secs(1);

/// The timeout of a check that repeats one that got no answer.
const NO_ANSWER_RECHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Unit {
    pub spec: ChildSpec,
    pub state: UnitState,
    pub procs: &'static Procs,
    pub exits_tx: mpsc::UnboundedSender<(i32, state::ExitKind)>,
    pub exits_rx: mpsc::UnboundedReceiver<(i32, state::ExitKind)>,
    pub cmds: mpsc::UnboundedReceiver<UnitCmd>,
    pub ready_tx: watch::Sender<bool>,
    pub deps: Vec<watch::Receiver<bool>>,
    pub board: Arc<StatusBoard>,
    pub pidfile: Arc<Mutex<PidFile>>,
    pub timer: Option<Instant>,
    pub probe_tx: mpsc::UnboundedSender<(i32, bool)>,
    pub probe_rx: mpsc::UnboundedReceiver<(i32, bool)>,
    pub probe_task: Option<JoinHandle<()>>,
    pub stop_waiters: Vec<oneshot::Sender<()>>,
    pub started_at: Option<SystemTime>,
    pub log: Option<SharedLog>,
}

impl Unit {
    pub async fn run(mut self) {
        self.publish();
        let mut deps_done = false;
        loop {
            let waiting = matches!(self.state.phase, Phase::Waiting) && !deps_done;
            let deps = self.deps.clone();
            let timer = self.timer;
            tokio::select! {
                Some((pid, exit)) = self.exits_rx.recv() => {
                    self.handle(Event::Exited { pid, exit, at: Instant::now() }).await;
                }
                Some((pid, ok)) = self.probe_rx.recv() => {
                    self.handle(Event::Probe { pid, ok, at: Instant::now() }).await;
                }
                _ = sleep_until(timer), if timer.is_some() => {
                    self.timer = None;
                    self.handle(Event::Timer { at: Instant::now() }).await;
                }
                _ = wait_all(deps), if waiting => {
                    deps_done = true;
                    self.handle(Event::DepsReady).await;
                }
                cmd = self.cmds.recv() => match cmd {
                    Some(UnitCmd::Stop(done)) => {
                        self.stop_waiters.push(done);
                        self.handle(Event::Stop { at: Instant::now() }).await;
                    }
                    Some(UnitCmd::Kill) => self.handle(Event::Kill).await,
                    Some(UnitCmd::Shutdown) => self.handle(Event::Shutdown).await,
                    Some(UnitCmd::Restart) => self.handle(Event::Restart { at: Instant::now() }).await,
                    Some(UnitCmd::Replace(spec)) => self.spec = *spec,
                    None => break,
                },
            }
            // Stopped for good during shutdown: nothing can happen to this child any more, so
            // do not wait for every command sender (handles held by other tasks) to go away.
            if self.state.shutting_down && self.state.phase == Phase::Stopped {
                break;
            }
        }
    }

    async fn handle(&mut self, first: Event) {
        let mut queue = VecDeque::from([first]);
        while let Some(event) = queue.pop_front() {
            let before = self.state.clone();
            let jitter = rand::random::<f64>();
            let (next, actions) =
                state::next(before.clone(), event.clone(), &self.spec.policy, jitter);
            // Logged once the transition is known, so that a restart's line says how long the
            // backoff it chose is: an operator reads "restarting in 2s", not just "restarting".
            self.log_event(&before, &event, &next);
            self.state = next;
            for action in actions {
                match action {
                    Action::Spawn => queue.push_back(self.spawn().await),
                    Action::SignalGroup { pid, sig } => process::signal_group(pid, sig),
                    Action::SetTimer(at) => self.timer = Some(at),
                    Action::ClearTimer => self.timer = None,
                    Action::Ready(ready) => {
                        if ready {
                            info!(component = %self.spec.name, "ready");
                        }
                        self.ready_tx.send_replace(ready);
                    }
                    Action::Stopped => {
                        for w in self.stop_waiters.drain(..) {
                            let _ = w.send(());
                        }
                    }
                }
            }
            // `Starting` lasts only until the queued Spawned event: keep what spawn() set.
            if self.state.pid().is_none() && self.state.phase != Phase::Starting {
                self.started_at = None;
                if let Some(t) = self.probe_task.take() {
                    t.abort();
                }
            }
            self.publish();
        }
    }

    fn log_event(&self, before: &UnitState, event: &Event, after: &UnitState) {
        let name = &self.spec.name;
        match (event, &before.phase) {
            (Event::Exited { pid, exit, at }, Phase::Running { pid: p, .. }) if pid == p => {
                if before.shutting_down {
                    info!(component = %name, pid, %exit, "exited during shutdown");
                } else {
                    let retry_in = match after.phase {
                        Phase::Backoff { until } => until.saturating_duration_since(*at),
                        _ => Duration::ZERO,
                    };
                    warn!(component = %name, pid, %exit, restarts = after.restarts, retry_in = ?retry_in, "exited unexpectedly; restarting");
                }
            }
            (Event::Exited { pid, exit, .. }, Phase::Stopping { pid: p, .. }) if pid == p => {
                info!(component = %name, pid, %exit, "stopped");
            }
            (Event::SpawnFailed { error, .. }, _) => {
                error!(component = %name, error = %error, retry_in = ?self.spec.policy.backoff.max, "cannot start");
            }
            (
                Event::Probe { ok: false, .. },
                Phase::Running {
                    ready: true,
                    failures,
                    ..
                },
            ) => {
                warn!(component = %name, failures = failures + 1, "health check failed");
            }
            _ => {}
        }
    }

    /// Spawns the child and returns the event that describes the outcome.
    async fn spawn(&mut self) -> Event {
        let at = Instant::now();
        if let Some(verify) = &self.spec.verify
            && let Err(error) = verify()
        {
            return Event::SpawnFailed {
                at,
                error: crate::errors::chain(&error),
            };
        }
        match self
            .procs
            .spawn(self.spec.exec.clone(), self.exits_tx.clone())
            .await
        {
            Ok(child) => {
                let pid = child.pid;
                info!(component = %self.spec.name, pid, "started");
                self.started_at = Some(SystemTime::now());
                if let Ok(mut f) = self.pidfile.lock() {
                    f.set(&self.spec.name, ChildRecord::of(pid));
                }
                if self.log.is_none()
                    && let Some(path) = &self.spec.log_file
                {
                    match RotatingFile::open(path, self.spec.log_max_bytes, self.spec.log_keep) {
                        Ok(f) => self.log = Some(Arc::new(Mutex::new(f))),
                        Err(e) => {
                            warn!(component = %self.spec.name, path = %path.display(), error = %crate::errors::chain(&e), "cannot open log file")
                        }
                    }
                }
                let name: Arc<str> = Arc::from(self.spec.name.as_str());
                tokio::spawn(logs::forward(
                    child.stdout,
                    name.clone(),
                    "stdout",
                    self.log.clone(),
                ));
                tokio::spawn(logs::forward(
                    child.stderr,
                    name,
                    "stderr",
                    self.log.clone(),
                ));
                self.start_probe(pid);
                Event::Spawned { pid, at }
            }
            Err(e) => Event::SpawnFailed {
                at,
                error: crate::errors::chain(&e),
            },
        }
    }

    fn start_probe(&mut self, pid: i32) {
        if let Some(t) = self.probe_task.take() {
            t.abort();
        }
        let Some(spec) = self.spec.probe.clone() else {
            return;
        };
        let tx = self.probe_tx.clone();
        let name = self.spec.name.clone();
        self.probe_task = Some(tokio::spawn(async move {
            let prober = match Prober::build(&spec) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(component = %name, error = %crate::errors::chain(&e), "cannot build health check; counting it as failing");
                    None
                }
            };
            let mut ready = false;
            let mut last = Verdict::Ok;
            loop {
                // Once ready, a failed check is confirmed quickly rather than a whole period
                // later: a hung component is then declared broken in about one period, not
                // `liveness_failures` periods (kubeadm's static pods take 3 x 10 s). A check
                // that got no answer at all has already waited out its timeout, so the next
                // one follows at once: a SIGSTOPped API server is found in about
                // `period + timeout + (liveness_failures - 1) x 1 s`.
                let period = match (ready, last) {
                    (false, _) => spec.startup_period,
                    (true, Verdict::Ok) => spec.period,
                    (true, Verdict::Failed) => spec.period.min(FAILING_RECHECK),
                    (true, Verdict::NoAnswer) => Duration::ZERO,
                };
                tokio::time::sleep(period).await;
                // Confirming a check that got no answer needs no full timeout again: the
                // component has been silent for one already (kubelet's own liveness probes
                // give 1 s by default).
                let limit = match last {
                    Verdict::NoAnswer => spec.timeout.min(NO_ANSWER_RECHECK_TIMEOUT),
                    _ => spec.timeout,
                };
                last = match &prober {
                    Some(p) => tokio::time::timeout(limit, p.check())
                        .await
                        .unwrap_or(Verdict::NoAnswer),
                    None => Verdict::Failed,
                };
                let ok = last.ok();
                ready |= ok;
                if tx.send((pid, ok)).is_err() {
                    return;
                }
            }
        }));
    }

    fn publish(&self) {
        let s = &self.state;
        self.board.set(UnitStatus {
            name: self.spec.name.clone(),
            state: s.label(),
            pid: s.pid(),
            started_at: self.started_at,
            restarts: s.restarts,
            last_exit: s.last_exit.map(|e| e.to_string()),
            last_error: s.last_error.clone(),
            ready: s.ready(),
        });
        if matches!(s.phase, Phase::Stopped)
            && let Ok(mut f) = self.pidfile.lock()
        {
            f.set(&self.spec.name, None);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

async fn wait_all(deps: Vec<watch::Receiver<bool>>) {
    for mut d in deps {
        if d.wait_for(|ready| *ready).await.is_err() {
            // The dependency's unit is gone; never start.
            std::future::pending::<()>().await;
        }
    }
}
