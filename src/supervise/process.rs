//! Spawning children and reaping them, handing freed heap back to the kernel, and SIGPIPE for
//! the short-lived commands: the only file of kubesup with `unsafe`.
//!
//! **One reaper.** A dedicated thread waits for SIGCHLD (signal-hook) and then calls
//! `waitpid(-1, WNOHANG)` until nothing is left, routing each exit status to the task that owns
//! the PID and reaping strays (double-forked grandchildren reparented to us as subreaper, or
//! as PID 1 in a container). Nothing else in kubesup may wait for a child: tokio's `Child`, or
//! `std::process::Command::output`, would race this thread for exit statuses. Helper commands
//! go through [`Procs::output`] instead.
//!
//! **One spawner.** `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process (prctl(2)), so every child is forked from one thread that lives as long as
//! kubesup. Tokio's blocking pool retires idle threads and would kill children at random.
//!
//! The registry mutex is held across fork+exec and across the reaper's `waitpid` loop. That
//! closes two races: a child that exits before its PID is registered (the reaper cannot look it
//! up until the spawner has inserted it), and std's own `waitpid` on a child whose exec failed
//! (the reaper cannot steal that status while `Command::spawn` is still running).

#![allow(
    unsafe_code,
    reason = "fork/exec hooks, signal dispositions and glibc's malloc tunables have no safe \
              API; this file is where kubesup's unsafe lives, each block with its SAFETY comment"
)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::{mpsc as tmpsc, oneshot};
use tracing::{debug, warn};

use super::state::{ExitKind, Sig};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "cannot execute {program}: {cause} (check that the binary exists, is executable, and that its filesystem is not mounted noexec)"
    )]
    Exec { program: PathBuf, cause: io::Error },
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, io::Error),
    #[error("cannot install the SIGCHLD handler: {0}")]
    Signals(io::Error),
    #[error("the spawner thread is gone")]
    SpawnerGone,
    #[error("reading output of {program}")]
    Output { program: PathBuf, source: io::Error },
    /// The process-wide spawner and reaper failed to start (on first use); every later use
    /// reports that first failure.
    #[error("cannot start the process spawner and reaper")]
    Start(#[source] &'static ProcessError),
}

/// What to run. The environment is explicit: a child never inherits kubesup's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Exec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
}

/// A freshly spawned child: its PID (which is also its process group and session id) and the
/// read ends of its stdout and stderr.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Where the reaper sends the exit status of a PID.
pub type ExitSender = tmpsc::UnboundedSender<(i32, ExitKind)>;

enum Owner {
    Unit(ExitSender),
    Once(oneshot::Sender<ExitKind>),
}

struct SpawnJob {
    exec: Exec,
    owner: Owner,
    reply: oneshot::Sender<Result<Spawned, ProcessError>>,
}

/// Handle to the process-wide spawner and reaper.
pub struct Procs {
    jobs: Mutex<mpsc::Sender<SpawnJob>>,
    strays: Arc<AtomicU64>,
}

static PROCS: OnceLock<Result<Procs, ProcessError>> = OnceLock::new();

impl Procs {
    /// The process-wide instance, started on first use. There is exactly one reaper per
    /// process, whatever the number of supervisors.
    pub fn global() -> Result<&'static Procs, ProcessError> {
        PROCS
            .get_or_init(Procs::start)
            .as_ref()
            .map_err(ProcessError::Start)
    }

    fn start() -> Result<Procs, ProcessError> {
        if std::process::id() != 1 {
            // As PID 1 we already inherit every orphan; otherwise ask the kernel for them, so a
            // component that double-forks cannot escape supervision.
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                warn!(error = %crate::errors::chain(&e), "cannot become child subreaper; double-forked grandchildren will escape to init");
            }
        }
        let registry: Arc<Mutex<HashMap<i32, Owner>>> = Arc::default();
        let strays = Arc::new(AtomicU64::new(0));

        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGCHLD])
            .map_err(ProcessError::Signals)?;
        let reg = registry.clone();
        let st = strays.clone();
        thread::Builder::new()
            .name("kubesup-reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Reap once first: a child may have exited before the handler existed.
                reap_all(&reg, &st);
                for _ in signals.forever() {
                    reap_all(&reg, &st);
                }
            })
            .map_err(|e| ProcessError::Thread("reaper", e))?;

        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let reg = registry.clone();
        thread::Builder::new()
            .name("kubesup-spawner".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for job in rx {
                    let result = spawn_locked(&reg, job.exec, job.owner);
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| ProcessError::Thread("spawner", e))?;

        Ok(Procs {
            jobs: Mutex::new(tx),
            strays,
        })
    }

    /// Spawns `exec` in its own session and process group; its exit status goes to `owner`.
    pub async fn spawn(&self, exec: Exec, owner: ExitSender) -> Result<Spawned, ProcessError> {
        self.submit(exec, Owner::Unit(owner)).await
    }

    async fn submit(&self, exec: Exec, owner: Owner) -> Result<Spawned, ProcessError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| ProcessError::SpawnerGone)?
            .send(SpawnJob { exec, owner, reply })
            .map_err(|_| ProcessError::SpawnerGone)?;
        rx.await.map_err(|_| ProcessError::SpawnerGone)?
    }

    /// Runs a helper command to completion (iptables, umount, ...) and returns its exit and
    /// output, without racing the reaper.
    pub async fn output(&self, exec: Exec) -> Result<(ExitKind, String, String), ProcessError> {
        let program = exec.program.clone();
        let (tx, rx) = oneshot::channel();
        let spawned = self.submit(exec, Owner::Once(tx)).await?;
        let read = |fd: OwnedFd| {
            let program = program.clone();
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut s = String::new();
                std::fs::File::from(fd)
                    .read_to_string(&mut s)
                    .map(|_| s)
                    .map_err(|source| ProcessError::Output { program, source })
            })
        };
        let (out, err) = (read(spawned.stdout), read(spawned.stderr));
        let out = out.await.map_err(|e| ProcessError::Output {
            program: program.clone(),
            source: io::Error::other(e),
        })??;
        let err = err.await.map_err(|e| ProcessError::Output {
            program: program.clone(),
            source: io::Error::other(e),
        })??;
        let exit = rx.await.map_err(|_| ProcessError::SpawnerGone)?;
        Ok((exit, out, err))
    }

    /// Strays reaped so far: processes nobody registered (reparented orphans).
    pub fn strays_reaped(&self) -> u64 {
        self.strays.load(Ordering::Relaxed)
    }
}

/// Sends `sig` to the whole process group led by `pid`. A group that is already gone is fine.
pub fn signal_group(pid: i32, sig: Sig) {
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Cont => Signal::SIGCONT,
        Sig::Kill => Signal::SIGKILL,
    };
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            warn!(pid, signal = %signal, error = %crate::errors::chain(&e), "cannot signal process group")
        }
    }
}

fn spawn_locked(
    registry: &Mutex<HashMap<i32, Owner>>,
    exec: Exec,
    owner: Owner,
) -> Result<Spawned, ProcessError> {
    let mut cmd = std::process::Command::new(&exec.program);
    cmd.args(&exec.args)
        .env_clear()
        .envs(exec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &exec.cwd {
        cmd.current_dir(cwd);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // functions may be called (signal-safety(7)). setsid(2), prctl(2), getppid(2) and
    // kill(2) are raw system calls that allocate nothing and take no locks.
    unsafe {
        cmd.pre_exec(move || {
            // Own session, hence own process group: the whole tree can be signalled with
            // killpg, and a terminal's SIGINT never reaches it.
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // kubesup may have died between fork and prctl; then no signal would ever come.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }

    let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = cmd.spawn().map_err(|cause| ProcessError::Exec {
        program: exec.program.clone(),
        cause,
    })?;
    let pid = child.id() as i32;
    reg.insert(pid, owner);
    drop(reg);
    // Dropping std's Child neither waits nor kills: the reaper owns the exit status.
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Spawned {
            pid,
            stdout,
            stderr,
        }),
        _ => Err(ProcessError::Exec {
            program: exec.program,
            cause: io::Error::other("stdio pipes missing"),
        }),
    }
}

fn reap_all(registry: &Mutex<HashMap<i32, Owner>>, strays: &AtomicU64) {
    let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (pid, exit) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), ExitKind::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), ExitKind::Signal(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                warn!(error = %crate::errors::chain(&e), "waitpid failed");
                return;
            }
        };
        match reg.remove(&pid) {
            Some(Owner::Unit(tx)) => {
                let _ = tx.send((pid, exit));
            }
            Some(Owner::Once(tx)) => {
                let _ = tx.send(exit);
            }
            None => {
                strays.fetch_add(1, Ordering::Relaxed);
                debug!(pid, %exit, "reaped a stray process");
            }
        }
    }
}

/// Returns the free memory at the top and in the middle of the heap to the kernel.
///
/// Bring-up (fetching and hashing hundreds of MB, making the PKI, rendering configs) frees far
/// more than a steady-state supervisor uses, and glibc keeps freed pages resident. Called when
/// the set of component states changes (rare), this took a running master's anonymous memory
/// from 4.1 to 2.3 MB.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes the allocator's own locks and only releases free pages; it
    // touches no memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caps glibc's malloc arenas at one, for the daemons. glibc gives each thread that allocates
/// under contention an arena of its own, and an arena keeps its pages resident once touched; a
/// supervisor's threads (the async runtime, its blocking pool, the reaper and the spawner)
/// allocate rarely and never in parallel enough to matter, so the extra arenas were only
/// resident memory (0.5 to 1.2 MB of a running master's). Called before those threads start.
pub fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable inside the allocator, under its own lock; it reads and
    // writes no memory the program owns. A refused setting (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives SIGPIPE back its default action, for a command that prints and exits
/// (`kubesup status | head`). Rust starts with SIGPIPE ignored, so a write to a closed pipe
/// fails with EPIPE and `println!` panics with a backtrace where a command-line tool should
/// end quietly, as `cat` does. The daemons keep it ignored: a log reader that goes away must
/// not take the supervisor down with it. Children get the default back either way: std resets
/// SIGPIPE in a spawned child.
pub fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler, so no code of ours ever runs in signal context.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        debug!(error = %crate::errors::chain(&e), "cannot restore the default SIGPIPE action");
    }
}
