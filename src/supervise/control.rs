//! The local control socket: a unix socket (mode 0600, in the data dir) that answers one
//! request per connection, one JSON line each way.
//!
//! Requests: `status` (every child, with RSS and CPU% from sysinfo) and `stop` (what
//! `kubesup reset` uses to stop a running kubesup before deleting its state).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Procs, State, StatusBoard};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on control socket {path}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no kubesup is running on this data dir (cannot connect to {path}: {cause}); start one with `kubesup master` or `kubesup worker`"
    )]
    Connect {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("control socket {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path} answered something unreadable")]
    Protocol {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComponentStatus {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    pub ready: bool,
    pub rss_bytes: Option<u64>,
    pub cpu_percent: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub pid: u32,
    pub role: String,
    pub rss_bytes: Option<u64>,
    pub cpu_percent: Option<f32>,
    pub strays_reaped: u64,
    pub components: Vec<ComponentStatus>,
    /// A worker's node-local API load balancer; absent where none runs (and from an older
    /// kubesup, hence the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_lb: Option<ApiLbReport>,
}

/// The node-local API load balancer as `kubesup status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiLbReport {
    pub listen: SocketAddr,
    /// The API servers that answered their last health check.
    pub backends: Vec<SocketAddr>,
    /// Whether connects from kubesup's cgroup go straight to one of them (an older kubesup
    /// does not say: false).
    #[serde(default)]
    pub redirect: bool,
}

/// What the control socket reads the balancer's report from: its address and its status feed.
pub type ApiLbFeed = (SocketAddr, watch::Receiver<crate::apilb::LbStatus>);

impl StatusReport {
    pub fn all_ready(&self) -> bool {
        self.components.iter().all(|c| c.ready)
    }

    /// The table `kubesup status` prints.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "COMPONENT".to_string(),
            "STATE".into(),
            "READY".into(),
            "PID".into(),
            "UPTIME".into(),
            "RESTARTS".into(),
            "LAST EXIT".into(),
            "RSS".into(),
            "CPU%".into(),
        ]];
        let dash = || "-".to_string();
        for c in &self.components {
            rows.push([
                c.name.clone(),
                c.state.to_string(),
                if c.ready { "yes" } else { "no" }.into(),
                c.pid.map(|p| p.to_string()).unwrap_or_else(dash),
                c.uptime_secs
                    .map(|s| humantime::format_duration(Duration::from_secs(s)).to_string())
                    .unwrap_or_else(dash),
                c.restarts.to_string(),
                c.last_exit.clone().unwrap_or_else(dash),
                c.rss_bytes.map(mib).unwrap_or_else(dash),
                c.cpu_percent
                    .map(|p| format!("{p:.1}"))
                    .unwrap_or_else(dash),
            ]);
        }
        let mut widths = [0usize; 9];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = format!(
            "kubesup {} pid {}  rss {}  cpu {}%\n",
            self.role,
            self.pid,
            self.rss_bytes.map(mib).unwrap_or_else(dash),
            self.cpu_percent
                .map(|p| format!("{p:.2}"))
                .unwrap_or_else(dash)
        );
        for r in rows {
            let line: Vec<String> = r
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        for c in &self.components {
            if let Some(e) = &c.last_error {
                out.push_str(&format!("{}: {e}\n", c.name));
            }
        }
        if let Some(lb) = &self.api_lb {
            let up: Vec<String> = lb.backends.iter().map(SocketAddr::to_string).collect();
            let up = if up.is_empty() {
                "none".to_string()
            } else {
                up.join(" ")
            };
            let how = if lb.redirect { "connect-time" } else { "proxy" };
            out.push_str(&format!("api-lb {} ({how})  healthy {up}\n", lb.listen));
        }
        out
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}M", b as f64 / (1024.0 * 1024.0))
}

/// A request that needs the main loop (`stop`).
#[derive(Debug)]
pub enum ControlRequest {
    Stop,
}

/// Serves the control socket until the task is dropped.
pub async fn serve(
    path: PathBuf,
    role: String,
    board: Arc<StatusBoard>,
    requests: mpsc::UnboundedSender<ControlRequest>,
    api_lb: Option<ApiLbFeed>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    // A socket left by a kubesup that was killed is stale: the data-dir lock proves nobody
    // else is serving it.
    let _ = std::fs::remove_file(&path);
    let bind_err = |source| ControlError::Bind {
        path: path.clone(),
        source,
    };
    let listener = UnixListener::bind(&path).map_err(bind_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    let sys = Arc::new(Mutex::new(Usage::new()));
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %crate::errors::chain(&e), "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (board, sys, role, requests) =
                (board.clone(), sys.clone(), role.clone(), requests.clone());
            // A snapshot taken as the request arrives: the balancer's health as of its last
            // check round, which is at most a second old.
            let lb = api_lb.as_ref().map(|(listen, rx)| {
                let s = rx.borrow();
                ApiLbReport {
                    listen: *listen,
                    backends: s.healthy().collect(),
                    redirect: s.redirect,
                }
            });
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &role, &board, &sys, &requests, lb).await {
                    debug!(error = %crate::errors::chain(&e), "control request failed");
                }
            });
        }
    }))
}

async fn answer(
    stream: UnixStream,
    role: &str,
    board: &StatusBoard,
    sys: &Mutex<Usage>,
    requests: &mpsc::UnboundedSender<ControlRequest>,
    api_lb: Option<ApiLbReport>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(r, 1024));
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let reply = match line.trim() {
        "status" => serde_json::to_string(&status(role, board, sys, api_lb).await)?,
        "stop" => {
            let _ = requests.send(ControlRequest::Stop);
            "{\"ok\":true}".to_string()
        }
        other => serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string(),
    };
    w.write_all(reply.as_bytes()).await?;
    w.write_all(b"\n").await
}

/// Usage figures of kubesup and its children. sysinfo's CPU% is the difference between two
/// samples, so the last sample is kept: a status request then answers at once, with CPU% since
/// the previous request, instead of sleeping for a second sample every time (which made each
/// `kubesup status` take 200 ms and a script polling it see every change that much late).
struct Usage {
    /// `None` where /proc is unreadable; status then shows no usage figures.
    sys: Option<System>,
    /// When the processes in `pids` were last sampled.
    sampled: Option<(Instant, Vec<Pid>)>,
}

/// How a refresh got its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampling {
    /// No /proc: no figures.
    Unavailable,
    /// The last sample is recent enough to answer with.
    Reused,
    /// One new sample, compared with the last.
    Once,
    /// Two new samples, `MIN_WINDOW` apart.
    Twice,
}

impl Usage {
    /// The shortest interval a CPU% is computed over; sysinfo's own floor is lower, but a
    /// shorter window is mostly scheduling noise.
    const MIN_WINDOW: Duration = Duration::from_millis(200);
    /// A sample older than this says little about now; take two fresh ones instead.
    const MAX_WINDOW: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Self {
            sys: System::new().ok(),
            sampled: None,
        }
    }

    /// Brings the figures of `pids` up to date: not at all if they were sampled less than
    /// `MIN_WINDOW` ago, with one sample if an earlier one of the same processes is recent
    /// enough, else with two samples `MIN_WINDOW` apart (a child that restarted has no
    /// earlier sample, and a CPU% over its first instant means nothing).
    async fn refresh(&mut self, mut pids: Vec<Pid>) -> Sampling {
        let Some(sys) = self.sys.as_mut() else {
            return Sampling::Unavailable;
        };
        pids.sort_unstable();
        let age = match &self.sampled {
            Some((at, last)) if *last == pids => Some(at.elapsed()),
            _ => None,
        };
        let kind = ProcessRefreshKind::nothing().with_memory().with_cpu();
        let sampling = match age {
            Some(age) if age < Self::MIN_WINDOW => return Sampling::Reused,
            Some(age) if age <= Self::MAX_WINDOW => Sampling::Once,
            _ => {
                sys.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
                tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Self::MIN_WINDOW))
                    .await;
                Sampling::Twice
            }
        };
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        self.sampled = Some((Instant::now(), pids));
        sampling
    }

    /// RSS in bytes and CPU% of `pid`, as of the last refresh.
    fn of(&self, pid: u32) -> Option<(u64, f32)> {
        self.sys
            .as_ref()?
            .process(Pid::from_u32(pid))
            .map(|p| (p.memory(), p.cpu_usage()))
    }
}

async fn status(
    role: &str,
    board: &StatusBoard,
    usage: &Mutex<Usage>,
    api_lb: Option<ApiLbReport>,
) -> StatusReport {
    let units = board.snapshot();
    let me = std::process::id();
    let mut pids: Vec<Pid> = units
        .iter()
        .filter_map(|u| u.pid)
        .map(|p| Pid::from_u32(p as u32))
        .collect();
    pids.push(Pid::from_u32(me));
    let mut usage = usage.lock().await;
    let sampling = usage.refresh(pids).await;
    debug!(?sampling, "usage figures for status");
    let probe = |pid: u32| usage.of(pid);
    let now = SystemTime::now();
    let components = units
        .into_iter()
        .map(|u| {
            let usage = u.pid.and_then(|p| probe(p as u32));
            ComponentStatus {
                uptime_secs: u
                    .started_at
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs()),
                rss_bytes: usage.map(|u| u.0),
                cpu_percent: usage.map(|u| u.1),
                name: u.name,
                state: u.state,
                pid: u.pid,
                restarts: u.restarts,
                last_exit: u.last_exit,
                last_error: u.last_error,
                ready: u.ready,
            }
        })
        .collect();
    let own = probe(me);
    StatusReport {
        pid: me,
        role: role.to_string(),
        rss_bytes: own.map(|u| u.0),
        cpu_percent: own.map(|u| u.1),
        strays_reaped: Procs::global().map(|p| p.strays_reaped()).unwrap_or(0),
        components,
        api_lb,
    }
}

/// Sends one request to a running kubesup and returns its JSON answer.
pub async fn request(path: &Path, what: &str) -> Result<String, ControlError> {
    let mut s = UnixStream::connect(path)
        .await
        .map_err(|cause| ControlError::Connect {
            path: path.to_path_buf(),
            cause,
        })?;
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    s.write_all(format!("{what}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(s).read_line(&mut line),
    )
    .await
    .map_err(|_| io(std::io::Error::other("timed out")))?
    .map_err(io)?;
    Ok(line)
}

pub async fn fetch_status(path: &Path) -> Result<StatusReport, ControlError> {
    let line = request(path, "status").await?;
    serde_json::from_str(&line).map_err(|source| ControlError::Protocol {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A paused clock: the test decides how much time passes between requests.
    #[tokio::test(start_paused = true)]
    async fn usage_answers_from_the_last_sample_and_samples_twice_only_without_one() {
        let mut u = Usage::new();
        if u.sys.is_none() {
            // No readable /proc here: nothing to sample.
            assert_eq!(u.refresh(vec![]).await, Sampling::Unavailable);
            return;
        }
        let me = Pid::from_u32(std::process::id());
        assert_eq!(u.refresh(vec![me]).await, Sampling::Twice);
        assert!(u.of(std::process::id()).is_some_and(|(rss, _)| rss > 0));
        // A poll right after: the same figures, no new sample and no wait.
        assert_eq!(u.refresh(vec![me]).await, Sampling::Reused);
        tokio::time::sleep(Usage::MIN_WINDOW).await;
        assert_eq!(u.refresh(vec![me]).await, Sampling::Once);
        // A new process (a restarted child) has no earlier sample to compare with.
        let other = Pid::from_u32(1);
        assert_eq!(u.refresh(vec![other, me]).await, Sampling::Twice);
        // Order does not make a different set.
        assert_eq!(u.refresh(vec![me, other]).await, Sampling::Reused);
    }
}
