//! The one copy of the generic test helpers: waiting on a condition with a deadline, process
//! liveness read from /proc, free ports on 127.0.0.1, temporary data dirs, running the kubesup
//! binary and capturing what it prints, and stopping the process groups a test started.
//!
//! Every test crate in `tests/` declares `mod common;`; the real-component tests in
//! `integration/` reach it through `integration/common`, which adds only what belongs to the
//! test bed (namespaces, the mirror, the `Kubesup` harness) on top.
//!
//! Rules these helpers keep, so that the tests using them keep them too:
//! - every wait is bounded by a deadline and polls with a fixed period, never a bare sleep;
//! - only processes a test started are signalled, by PID or by the process group it created,
//!   and a PID taken from a record on disk only while that PID is still the recorded process;
//! - network helpers use 127.0.0.1 only.

// Cargo compiles this file once into every test crate that declares it, and each crate uses
// only some of the helpers: without this, every crate would warn about the ones it skips.
#![allow(dead_code, reason = "each test crate uses only some of the helpers")]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use kubesup::join::ClusterInfo;
use kubesup::paths::Paths;
use kubesup::supervise::pidfile::ChildRecord;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// The kubesup binary Cargo built for this test run.
pub const KUBESUP: &str = env!("CARGO_BIN_EXE_kubesup");
/// The fake component (src/bin/fake-component.rs) Cargo built for this test run.
pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-component");

/// The period of [`wait_for`]: fine enough for a test, coarse enough not to load a machine that
/// also runs a control plane.
pub const WAIT_PERIOD: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// Waiting

/// Calls `f` every `period` until it returns `Some`, or `None` once `deadline` has passed. `f`
/// runs at least once, and once more at or after the deadline, so a condition that became true
/// during the last sleep is still seen.
pub fn poll_until<T>(
    period: Duration,
    deadline: Instant,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(period);
    }
}

/// [`poll_until`] with a timeout from now: for a wait whose period is itself part of what is
/// measured (a restart timed to within 20 ms), or that must react faster than [`wait_for`].
pub fn poll_every<T>(
    period: Duration,
    timeout: Duration,
    f: impl FnMut() -> Option<T>,
) -> Option<T> {
    poll_until(period, Instant::now() + timeout, f)
}

/// Polls `f` every [`WAIT_PERIOD`] until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(WAIT_PERIOD, timeout, f)
}

/// Waits for the child in `slot` to exit, polling every `period`; returns its exit status. Once
/// it is reaped the slot is emptied, so that nothing later signals its PID, which the kernel may
/// by then have given to another process. `None` if it is still running at the timeout, or if
/// the slot was empty.
pub fn wait_exit(
    slot: &mut Option<Child>,
    period: Duration,
    timeout: Duration,
) -> Option<ExitStatus> {
    let child = slot.as_mut()?;
    let status = poll_every(period, timeout, || child.try_wait().ok().flatten());
    if status.is_some() {
        *slot = None;
    }
    status
}

// ---------------------------------------------------------------------------------------------
// Processes, read from /proc

/// The fields of /proc/PID/stat after the command name (the first is the state, the second the
/// parent PID, the twentieth the start time), or `None` once the PID is gone. The name is in
/// parentheses and may itself hold spaces and parentheses, hence the split at the last `)`.
pub fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// Is `pid` alive (and not a zombie)? A child the test has not reaped yet stays a zombie after
/// it exits, and counts as gone.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z"))
}

/// Is `pid` a zombie: exited, and not yet reaped by its parent?
pub fn zombie(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z"))
}

/// A TCP port free on 127.0.0.1 a moment ago. Another process may take it before the test
/// binds it; the tests that use it start one listener each, right away.
/// Debian's etcd (`/usr/bin/etcd`, installed by integration/setup-testbed.sh), or `None` when it
/// is not installed: the test then skips with a message, or fails if `KUBESUP_TESTBED_REQUIRED`
/// is set (as in CI).
pub fn debian_etcd() -> Option<PathBuf> {
    const ETCD: &str = "/usr/bin/etcd";
    let bin = PathBuf::from(ETCD);
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!("{ETCD} is not installed (run integration/setup-testbed.sh as root)");
    if std::env::var_os("KUBESUP_TESTBED_REQUIRED").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Running commands

/// Runs `cmd` to its end and captures its output; panics (naming the command) if it cannot be
/// started at all.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout then stderr, as text: what a failed assertion shows of a command.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must finish on its own, killing it after `timeout` (and then failing the
/// test).
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("cannot wait for {cmd:?}: {e}")),
        Err(_) => {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    }
}

/// The kubesup binary, as a `PathBuf` (for `Command`s built around it, as `nsenter` does).
pub fn kubesup_bin() -> PathBuf {
    PathBuf::from(KUBESUP)
}

/// `kubesup ARGS`, with the `KUBESUP_*` variables of the test's own environment removed: every
/// flag also reads one, and a test must see only the input it gives.
pub fn kubesup(args: &[&str]) -> Command {
    let mut cmd = Command::new(KUBESUP);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KUBESUP_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `kubesup ARGS` (see [`kubesup`]) to its end and captures its output.
pub fn run_kubesup(args: &[&str]) -> Output {
    output(&mut kubesup(args))
}

/// `kubesup status --json --data-dir DIR`, if it answers with JSON.
pub fn status_json(data_dir: &Path) -> Option<Value> {
    let out = Command::new(KUBESUP)
        .args(["status", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The row of component `name` in a `kubesup status --json` answer.
pub fn component<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

// ---------------------------------------------------------------------------------------------
// Process groups a test started

/// Starts `cmd` as the leader of a process group of its own, stdin closed and both output
/// streams appended to `log`, so that [`kill_group`] reaches everything it forks.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let err = file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot duplicate the fd of {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// SIGKILLs the process group that `child` leads (it was started with `process_group(0)`), then
/// the child itself should it have left the group, and reaps it. Should the caller have reaped
/// the child already, its ID still names the group: POSIX does not reuse a process group ID
/// while the group has members, and Linux hands out PIDs in turn, so an ID freed a moment ago
/// is not given to a new process before the PID space wraps around.
pub fn kill_group(child: &mut Child) {
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops the process group that `child` leads as kubesup stops a component: SIGTERM to the
/// group, up to `grace` for the child to exit (polled every [`WAIT_PERIOD`]), then
/// [`kill_group`] for whatever is left.
pub fn stop_group(child: &mut Child, grace: Duration) {
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let _ = wait_for(grace, || child.try_wait().ok().flatten());
    kill_group(child);
}

/// The child record a kubesup keeps in `DATA_DIR/children.json` (the components it runs now);
/// empty if there is none or it cannot be read.
pub fn recorded_children(data_dir: &Path) -> Vec<ChildRecord> {
    let text = std::fs::read_to_string(data_dir.join("children.json")).unwrap_or_default();
    serde_json::from_str::<BTreeMap<String, ChildRecord>>(&text)
        .map(|m| m.into_values().collect())
        .unwrap_or_default()
}

/// SIGKILLs the group of every component a killed kubesup left recorded in `data_dir`, but only
/// while that group is still the component's (see [`group_still_recorded`]).
pub fn kill_recorded_groups(data_dir: &Path) {
    for rec in recorded_children(data_dir) {
        if group_still_recorded(&rec) {
            let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
        }
    }
}

/// Whether process group `rec.pid` is still the one the recorded component led. PIDs wrap
/// during a test run, and a recycled one may by now lead another test's process group:
/// - the PID is the recorded process (same start time and executable): yes;
/// - it is a zombie (killed with kubesup, not reaped yet) whose start time is the recorded
///   one: yes; a zombie has no executable left to compare;
/// - no process has the PID: yes. POSIX does not reuse a process group ID while the group has
///   members, so whatever is left in the group, a grandchild that outlived the component, is
///   the component's (and if nothing is, `killpg` finds no group);
/// - another process has it: no.
pub fn group_still_recorded(rec: &ChildRecord) -> bool {
    match proc_stat(rec.pid) {
        None => true,
        Some(f) if f.first().is_some_and(|s| s == "Z") => {
            f.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(rec.start_time)
        }
        Some(_) => ChildRecord::of(rec.pid).as_ref() == Some(rec),
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// A temporary directory, removed on drop, holding a data dir `data` that does not exist yet
/// (so a test can tell whether a command created it) and whatever else the test puts beside it.
pub struct DataDir {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
}

impl DataDir {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
        let data = root.path().join("data");
        Self { root, data }
    }

    /// `NAME` beside the data dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The data dir's layout, as kubesup derives it.
    pub fn paths(&self) -> Paths {
        Paths::new(&self.data)
    }
}

/// The permission bits of `p` (as `ls -l` shows them, without the file type).
pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file below `dir` (not following directories it cannot read), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The cluster a test's join server describes: the defaults of a fresh master, with the given
/// API server and etcd URLs.
pub fn cluster_info(api_server: &str, etcd_server: &str) -> ClusterInfo {
    ClusterInfo {
        api_servers: vec![api_server.into()],
        etcd_servers: vec![etcd_server.into()],
        cluster_dns: "10.3.0.10".into(),
        cluster_domain: "cluster.local".into(),
        pod_cidr: "10.2.0.0/16".into(),
        service_cidr: "10.3.0.0/24".into(),
        network: "none".into(),
        kube_version: "v1.20.2".into(),
        etcd_version: None,
        mirror: None,
        flannel_backend: "vxlan".into(),
    }
}
