//! The `fake-component` test helper, tested flag by flag against the real binary.
//!
//! Every test starts the binary through [`Fake`], in its own process group. Dropping a `Fake`
//! (also while a failed test unwinds) SIGKILLs the grandchildren it learned of and then the whole
//! group, so nothing outlives a test. Every wait is bounded by the `Fake`'s deadline, and waits
//! poll a condition rather than sleeping a fixed time; the one exception proves that a process
//! ignoring SIGTERM is still alive 300 ms later. Network traffic stays on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{FAKE as BIN, alive, kill_group, poll_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Upper bound for everything one test waits for.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// A running fake component, killed with its process group (and known grandchildren) on drop.
struct Fake {
    child: Child,
    pid: Pid,
    lines: Receiver<(Stream, String)>,
    deadline: Instant,
    grandchildren: Vec<Pid>,
}

impl Fake {
    fn spawn(args: &[&str]) -> Fake {
        Fake::spawn_cmd(command(args))
    }

    fn spawn_cmd(mut cmd: Command) -> Fake {
        // Own group: Drop can kill the fake and everything it forked with one killpg.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn fake-component");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        for (stream, pipe) in [
            (Stream::Out, Box::new(out) as Box<dyn Read + Send>),
            (Stream::Err, Box::new(err)),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Fake {
            child,
            pid,
            lines,
            deadline: Instant::now() + DEADLINE,
            grandchildren: Vec::new(),
        }
    }

    /// The next line on `stream` that starts with `prefix`, minus the prefix.
    fn line(&mut self, stream: Stream, prefix: &str) -> String {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((s, line)) if s == stream => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("no {stream:?} line starting with {prefix:?}: {e:?}"),
            }
        }
    }

    /// Waits for the start-up line, after which every start-up file is complete.
    fn started(&mut self) {
        let pid = self.line(Stream::Out, "fake-component started pid=");
        assert_eq!(pid, self.pid.to_string());
    }

    fn port(&mut self) -> u16 {
        let port = self.line(Stream::Out, "fake-component listening port=");
        port.parse().expect("port number")
    }

    fn signal(&self, sig: Signal) {
        kill(self.pid, sig).expect("signal the fake");
    }

    fn wait(&mut self) -> ExitStatus {
        let child = &mut self.child;
        poll_until(POLL, self.deadline, || child.try_wait().expect("try_wait"))
            .expect("fake did not exit in time")
    }

    /// Waits for exit, then returns every line of output (both pipes closed).
    fn finish(&mut self) -> (ExitStatus, Vec<(Stream, String)>) {
        let status = self.wait();
        let mut all = Vec::new();
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => all.push(l),
                Err(RecvTimeoutError::Disconnected) => return (status, all),
                Err(RecvTimeoutError::Timeout) => panic!("output pipes not closed: {all:?}"),
            }
        }
    }

    /// Reads the pid a fake wrote to `path` and kills that process on drop too.
    fn grandchild_from(&mut self, path: &Path) -> Pid {
        let text = std::fs::read_to_string(path).expect("grandchild pidfile");
        let pid = Pid::from_raw(text.trim().parse().expect("pid in pidfile"));
        self.grandchildren.push(pid);
        pid
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        for &pid in &self.grandchildren {
            let _ = kill(pid, Signal::SIGKILL);
        }
        kill_group(&mut self.child);
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

fn wait_until(what: &str, deadline: Instant, mut cond: impl FnMut() -> bool) {
    poll_until(POLL, deadline, || cond().then_some(()))
        .unwrap_or_else(|| panic!("timed out waiting for {what}"));
}

/// A field of /proc/PID/status, or None once the process is gone.
fn proc_status(pid: Pid, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Alive and not a zombie.
fn running(pid: Pid) -> bool {
    alive(pid.as_raw())
}

fn ignores(pid: Pid, sig: Signal) -> bool {
    let mask = proc_status(pid, "SigIgn").expect("SigIgn");
    let mask = u64::from_str_radix(&mask, 16).expect("hex SigIgn");
    mask & (1 << (sig as u32 - 1)) != 0
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// One HTTP/1.1 GET on 127.0.0.1: (status code, body). Checks Content-Length.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("head and body");
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head:?}"));
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length");
    assert_eq!(length, body.len().to_string());
    (code, body.to_owned())
}

#[test]
fn exit_code_alone_exits_at_once_after_writing_both_streams() {
    let mut fake = Fake::spawn(&["--exit-code", "7"]);
    let (status, lines) = fake.finish();
    assert_eq!(status.code(), Some(7));
    let started = format!("fake-component started pid={}", fake.pid);
    assert!(lines.contains(&(Stream::Out, started)), "{lines:?}");
    let stderr = "fake-component stderr line".to_owned();
    assert!(lines.contains(&(Stream::Err, stderr)), "{lines:?}");
}

#[test]
fn exit_after_waits_then_exits_with_the_code() {
    let t0 = Instant::now();
    let mut fake = Fake::spawn(&["--exit-after", "300ms", "--exit-code", "3"]);
    assert_eq!(fake.wait().code(), Some(3));
    assert!(t0.elapsed() >= Duration::from_millis(300));

    // `=` syntax, a plain number is milliseconds, and the code defaults to 0.
    let mut fake = Fake::spawn(&["--exit-after=100"]);
    assert_eq!(fake.wait().code(), Some(0));
}

#[test]
fn crash_after_dies_of_sigabrt() {
    let t0 = Instant::now();
    let mut fake = Fake::spawn(&["--crash-after", "200ms"]);
    let status = fake.wait();
    assert_eq!(status.signal(), Some(Signal::SIGABRT as i32), "{status:?}");
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut fake = Fake::spawn(&[]);
    fake.started();
    let t0 = Instant::now();
    fake.signal(Signal::SIGTERM);
    assert_eq!(fake.wait().code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn sigint_exits_zero_like_sigterm() {
    let mut fake = Fake::spawn(&["--sleep"]);
    fake.started();
    fake.signal(Signal::SIGINT);
    assert_eq!(fake.wait().code(), Some(0));
}

#[test]
fn term_delay_slows_the_graceful_stop() {
    let mut fake = Fake::spawn(&["--term-delay", "400ms"]);
    fake.started();
    let t0 = Instant::now();
    fake.signal(Signal::SIGTERM);
    fake.line(Stream::Out, "fake-component got signal 15");
    assert_eq!(fake.wait().code(), Some(0));
    assert!(t0.elapsed() >= Duration::from_millis(400));
}

#[test]
fn ignore_sigterm_survives_sigterm_and_sigint_until_sigkill() {
    let mut fake = Fake::spawn(&["--ignore-sigterm"]);
    fake.started();
    assert!(ignores(fake.pid, Signal::SIGTERM) && ignores(fake.pid, Signal::SIGINT));
    fake.signal(Signal::SIGTERM);
    fake.signal(Signal::SIGINT);
    // Proving a negative takes a fixed wait.
    thread::sleep(Duration::from_millis(300));
    assert!(
        fake.child.try_wait().unwrap().is_none(),
        "exited on SIGTERM"
    );
    fake.signal(Signal::SIGKILL);
    assert_eq!(fake.wait().signal(), Some(Signal::SIGKILL as i32));
}

#[test]
fn healthz_ok_answers_200_on_every_health_path() {
    let mut fake = Fake::spawn(&["--listen", "0", "--healthz", "ok"]);
    let port = fake.port();
    for path in [
        "/healthz",
        "/readyz",
        "/livez",
        "/health",
        "/healthz?verbose",
    ] {
        assert_eq!(http_get(port, path), (200, "ok".into()), "{path}");
    }
    assert_eq!(http_get(port, "/metrics").0, 404);
}

#[test]
fn healthz_fail_answers_500() {
    let mut fake = Fake::spawn(&["--listen=0", "--healthz=fail"]);
    let port = fake.port();
    for _ in 0..3 {
        assert_eq!(http_get(port, "/healthz"), (500, "fail".into()));
    }
}

#[test]
fn healthz_flap_alternates_every_n_requests() {
    let codes = |fake: &mut Fake, n| {
        let port = fake.port();
        (0..n)
            .map(|_| http_get(port, "/healthz").0)
            .collect::<Vec<_>>()
    };
    let mut fake = Fake::spawn(&["--listen", "0", "--healthz", "flap"]);
    assert_eq!(codes(&mut fake, 4), [200, 500, 200, 500]);
    let mut fake = Fake::spawn(&["--listen", "0", "--healthz", "flap:2"]);
    assert_eq!(codes(&mut fake, 6), [200, 200, 500, 500, 200, 200]);
}

#[test]
fn ready_after_with_healthz_answers_503_until_ready() {
    let t0 = Instant::now();
    let mut fake = Fake::spawn(&["--listen", "0", "--healthz", "ok", "--ready-after", "2s"]);
    let port = fake.port();
    assert_eq!(http_get(port, "/readyz"), (503, "not ready".into()));
    let deadline = fake.deadline;
    wait_until("ready", deadline, || http_get(port, "/readyz").0 == 200);
    assert!(t0.elapsed() >= Duration::from_secs(2));
}

#[test]
fn ready_after_without_healthz_delays_listening() {
    let t0 = Instant::now();
    let mut fake = Fake::spawn(&["--listen", "0", "--ready-after", "400ms"]);
    fake.started();
    let port = fake.port();
    assert!(t0.elapsed() >= Duration::from_millis(400));
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("plain TCP accept");
}

#[test]
fn usage_errors_exit_2_with_one_line_on_stderr() {
    let cases: &[&[&str]] = &[
        &["--bogus"],
        &["positional"],
        &["--listen"],
        &["--listen", "65536"],
        &["--exit-after", "2x"],
        &["--exit-code", "256"],
        &["--ignore-sigterm=yes"],
        &["--healthz", "ok"],
        &["--listen", "0", "--healthz", "flap:0"],
        &["--double-fork"],
    ];
    for args in cases {
        let mut fake = Fake::spawn(args);
        let (status, lines) = fake.finish();
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert!(
            matches!(&lines[..], [(Stream::Err, l)] if l.starts_with("fake-component: ")),
            "{args:?}: {lines:?}"
        );
    }
}

#[test]
fn record_appends_one_json_line_per_start() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let record_arg = record.to_str().unwrap();
    let tricky = "quote\" back\\slash\nnewline\ttab é";
    let args = ["--record", record_arg, "--exit-code", "0"];
    let mut pids = Vec::new();
    let before = unix_ms();
    for _ in 0..2 {
        let mut cmd = command(&args);
        cmd.env("FAKE_TRICKY", tricky);
        let mut fake = Fake::spawn_cmd(cmd);
        assert_eq!(fake.wait().code(), Some(0));
        pids.push(fake.pid.as_raw());
    }
    let after = unix_ms();

    let text = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, pid) in lines.iter().zip(pids) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["pid"], pid);
        assert_eq!(v["ppid"], std::process::id());
        assert_eq!(v["pgid"], pid, "process_group(0) makes it a group leader");
        assert_eq!(v["sid"], nix::unistd::getsid(None).unwrap().as_raw());
        assert_eq!(v["argv"][0], BIN);
        assert_eq!(
            v["argv"].as_array().unwrap()[1..],
            args.map(serde_json::Value::from)
        );
        assert_eq!(v["env"]["FAKE_TRICKY"], tricky);
        let t = u128::from(v["time_ms"].as_u64().unwrap());
        assert!((before..=after).contains(&t), "{before} <= {t} <= {after}");
    }
}

#[test]
fn pidfile_and_touch_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let (pidfile, touch) = (dir.path().join("pid"), dir.path().join("starts"));
    let args = [
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--touch-on-start",
        touch.to_str().unwrap(),
    ];
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut first = Fake::spawn(&args);
    first.started();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", first.pid)
    );
    let mut second = Fake::spawn(&args);
    second.started();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", second.pid)
    );
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();

    let starts: Vec<u128> = std::fs::read_to_string(&touch)
        .unwrap()
        .lines()
        .map(|l| l.parse().expect("ns timestamp"))
        .collect();
    assert_eq!(starts.len(), 2);
    assert!(before.as_nanos() <= starts[0] && starts[0] <= starts[1]);
    assert!(starts[1] <= after.as_nanos());
}

#[test]
fn grandchild_outlives_sigterm_of_its_parent_but_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let gpidfile = dir.path().join("grandchild.pid");
    let mut fake = Fake::spawn(&[
        "--spawn-grandchild",
        "--grandchild-pidfile",
        gpidfile.to_str().unwrap(),
    ]);
    fake.started();
    let gpid = fake.grandchild_from(&gpidfile);
    assert!(running(gpid));
    assert_eq!(proc_status(gpid, "PPid"), Some(fake.pid.to_string()));
    assert!(!ignores(gpid, Signal::SIGTERM));
    // signal-hook's handler must not be inherited: SigCgt has no SIGTERM bit.
    let caught = proc_status(gpid, "SigCgt").unwrap();
    assert_eq!(u64::from_str_radix(&caught, 16).unwrap() & (1 << 14), 0);

    fake.signal(Signal::SIGTERM);
    assert_eq!(fake.wait().code(), Some(0));
    assert!(running(gpid), "grandchild died with its parent");
    assert_ne!(proc_status(gpid, "PPid"), Some(fake.pid.to_string()));

    kill(gpid, Signal::SIGTERM).unwrap();
    wait_until("grandchild exits on SIGTERM", fake.deadline, || {
        !running(gpid)
    });
}

#[test]
fn grandchild_ignores_sigterm_with_ignore_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let gpidfile = dir.path().join("grandchild.pid");
    let mut fake = Fake::spawn(&[
        "--ignore-sigterm",
        "--spawn-grandchild",
        "--grandchild-pidfile",
        gpidfile.to_str().unwrap(),
    ]);
    fake.started();
    let gpid = fake.grandchild_from(&gpidfile);
    assert!(ignores(gpid, Signal::SIGTERM) && ignores(gpid, Signal::SIGINT));
    kill(gpid, Signal::SIGTERM).unwrap();
    fake.signal(Signal::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    assert!(running(gpid));
    assert!(fake.child.try_wait().unwrap().is_none());
}

#[test]
fn double_fork_orphans_the_grandchild_in_the_same_group() {
    let dir = tempfile::tempdir().unwrap();
    let gpidfile = dir.path().join("grandchild.pid");
    let mut fake = Fake::spawn(&[
        "--spawn-grandchild",
        "--double-fork",
        "--grandchild-pidfile",
        gpidfile.to_str().unwrap(),
    ]);
    fake.started();
    let gpid = fake.grandchild_from(&gpidfile);
    assert!(running(gpid));
    // Reparented away from the intermediate (which the fake reaped) to init or a subreaper.
    let ppid: i32 = proc_status(gpid, "PPid").unwrap().parse().unwrap();
    assert_ne!(ppid, fake.pid.as_raw());
    assert_eq!(nix::unistd::getpgid(Some(gpid)).unwrap(), fake.pid);
    let children = format!("/proc/{0}/task/{0}/children", fake.pid);
    if let Ok(children) = std::fs::read_to_string(children) {
        assert_eq!(children.trim(), "", "the intermediate was not reaped");
    }
}

#[test]
fn mem_mb_is_resident_and_idle_footprint_is_small() {
    let rss_kib = |pid| -> u64 {
        let v = proc_status(pid, "VmRSS").expect("VmRSS");
        v.trim_end_matches(" kB").trim().parse().unwrap()
    };
    let mut idle = Fake::spawn(&["--listen", "0", "--healthz", "ok"]);
    idle.port();
    assert!(
        rss_kib(idle.pid) < 10 * 1024,
        "idle RSS {} KiB",
        rss_kib(idle.pid)
    );

    let mut big = Fake::spawn(&["--mem-mb", "32"]);
    big.started();
    assert!(
        rss_kib(big.pid) >= 32 * 1024,
        "RSS {} KiB",
        rss_kib(big.pid)
    );
}
