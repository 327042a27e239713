//! `fake-component`: a stand-in for a Kubernetes component, used only by tests. Never shipped.
//!
//! Flags choose its behaviour, so the supervisor's semantics (crash, ignored SIGTERM, slow stop,
//! grandchildren, failing health checks, restart counting) can be tested without real
//! Kubernetes binaries. `--help` prints the flag list; the run order is:
//!
//! 1. parse flags (exit 2 on any usage error, with one line on stderr);
//! 2. set up SIGTERM/SIGINT (ignored, or delivered to the main thread through signal-hook);
//! 3. write `--touch-on-start`, `--pidfile`, `--record`, allocate `--mem-mb`;
//! 4. fork the grandchild, while the process is still single-threaded;
//! 5. print `fake-component started pid=N` (stdout) and `fake-component stderr line` (stderr):
//!    once a test sees the first line, every file from steps 3–4 is complete;
//! 6. start the listener, then block until a signal or the `--exit-after`/`--crash-after` timer.
//!
//! Invariants: no busy loop (every thread blocks in accept, read, sleep or a channel); no large
//! allocation unless `--mem-mb` asks; no thread exists before the fork. Exit codes: the
//! `--exit-code` value, 0 after SIGTERM/SIGINT, 2 for usage errors, 1 if setup fails;
//! `--crash-after` dies of SIGABRT.

#![allow(
    unsafe_code,
    reason = "a stand-in for a component forks grandchildren, sets signal dispositions and \
              core-dump limits, as real components do; each block has its SAFETY comment"
)]

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

const HELP: &str = "\
usage: fake-component [FLAG]...   (values as `--flag VALUE` or `--flag=VALUE`)
  --listen PORT                 listen on 127.0.0.1:PORT (0 = any); prints `fake-component listening port=N`
  --healthz ok|fail|flap[:N]    with --listen: GET /healthz /readyz /livez /health -> 200 ok | 500 fail | N ok, N fail, ...
  --ready-after DURATION        with --healthz: answer 503 until then; without: do not listen until then
  --exit-after DURATION         exit (with --exit-code, default 0) after DURATION
  --exit-code N                 exit code 0..=255; alone: exit at once after start-up
  --crash-after DURATION        abort() (SIGABRT, no core file) after DURATION
  --ignore-sigterm              ignore SIGTERM and SIGINT (the grandchild too)
  --term-delay DURATION         on SIGTERM/SIGINT wait DURATION, then exit 0
  --spawn-grandchild            fork a child that sleeps forever
  --double-fork                 with --spawn-grandchild: orphan it (intermediate exits at once)
  --grandchild-pidfile FILE     with --spawn-grandchild: write the (final) grandchild's pid
  --record FILE                 append one JSON line: pid ppid pgid sid argv env time_ms
  --pidfile FILE                write own pid
  --touch-on-start FILE         append one line: unix time in ns
  --mem-mb N                    allocate and touch N MiB
  --sleep                       run until signalled (the default)
DURATION: Nms, Ns, Nm, or a plain N (milliseconds).";

/// Stack for helper threads: they only parse a request head and format a short reply.
const THREAD_STACK: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Ok,
    Fail,
    /// `N` healthy answers, then `N` failing ones, and so on.
    Flap(u64),
}

#[derive(Debug, Default)]
struct Opts {
    listen: Option<u16>,
    healthz: Option<Health>,
    ready_after: Duration,
    exit_after: Option<Duration>,
    exit_code: Option<u8>,
    crash_after: Option<Duration>,
    ignore_sigterm: bool,
    term_delay: Duration,
    spawn_grandchild: bool,
    double_fork: bool,
    grandchild_pidfile: Option<PathBuf>,
    record: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    touch_on_start: Option<PathBuf>,
    /// `--mem-mb` in bytes.
    mem_bytes: usize,
}

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return;
    }
    let opts = parse(&argv).unwrap_or_else(|e| {
        eprintln!("fake-component: {e} (try --help)");
        std::process::exit(2);
    });
    if let Err(e) = run(&opts) {
        eprintln!("fake-component: {e}");
        std::process::exit(1);
    }
}

fn parse(argv: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let takes_value = match flag {
            "--ignore-sigterm" | "--spawn-grandchild" | "--double-fork" | "--sleep" => false,
            "--listen"
            | "--healthz"
            | "--ready-after"
            | "--exit-after"
            | "--exit-code"
            | "--crash-after"
            | "--term-delay"
            | "--grandchild-pidfile"
            | "--record"
            | "--pidfile"
            | "--touch-on-start"
            | "--mem-mb" => true,
            _ => return Err(format!("unknown flag {arg:?}")),
        };
        let value = match (takes_value, inline) {
            (true, Some(v)) => v,
            (true, None) => args
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
            (false, Some(_)) => return Err(format!("{flag} takes no value")),
            (false, None) => String::new(),
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        let dur = |v: &str| parse_duration(v).map_err(|e| format!("{flag}: {e}"));
        match flag {
            "--listen" => {
                o.listen = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--listen: not a port: {value:?}"))?,
                )
            }
            "--healthz" => o.healthz = Some(parse_health(&value)?),
            "--ready-after" => o.ready_after = dur(&value)?,
            "--exit-after" => o.exit_after = Some(dur(&value)?),
            "--exit-code" => {
                o.exit_code = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--exit-code: not in 0..=255: {value:?}"))?,
                )
            }
            "--crash-after" => o.crash_after = Some(dur(&value)?),
            "--ignore-sigterm" => o.ignore_sigterm = true,
            "--term-delay" => o.term_delay = dur(&value)?,
            "--spawn-grandchild" => o.spawn_grandchild = true,
            "--double-fork" => o.double_fork = true,
            "--grandchild-pidfile" => o.grandchild_pidfile = Some(value.into()),
            "--record" => o.record = Some(value.into()),
            "--pidfile" => o.pidfile = Some(value.into()),
            "--touch-on-start" => o.touch_on_start = Some(value.into()),
            "--mem-mb" => {
                o.mem_bytes = num(&value)?
                    .checked_mul(1 << 20)
                    .and_then(|b| usize::try_from(b).ok())
                    .ok_or("--mem-mb: too large")?
            }
            "--sleep" => {}
            _ => return Err(format!("unhandled flag {arg:?}")),
        }
    }
    if o.healthz.is_some() && o.listen.is_none() {
        return Err("--healthz needs --listen".into());
    }
    if (o.double_fork || o.grandchild_pidfile.is_some()) && !o.spawn_grandchild {
        return Err("--double-fork and --grandchild-pidfile need --spawn-grandchild".into());
    }
    Ok(o)
}

/// `Nms`, `Ns`, `Nm`, or a plain `N` in milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit_ms) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1_000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else {
        (s, 1)
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a duration (Nms, Ns, Nm, N): {s:?}"))?;
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration too large: {s:?}"))
}

fn parse_health(s: &str) -> Result<Health, String> {
    match s {
        "ok" => Ok(Health::Ok),
        "fail" => Ok(Health::Fail),
        "flap" => Ok(Health::Flap(1)),
        _ => match s.strip_prefix("flap:").map(str::parse::<u64>) {
            Some(Ok(n)) if n > 0 => Ok(Health::Flap(n)),
            _ => Err(format!(
                "--healthz: expected ok, fail, flap or flap:N (N>0): {s:?}"
            )),
        },
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let start = Instant::now();

    // Signals first, so a SIGTERM during start-up is already handled the chosen way. SIG_IGN
    // (rather than a no-op handler) survives fork and execve, like a real component that
    // ignores SIGTERM; signal-hook's handler only writes to a self-pipe and spawns no thread.
    let signals = if o.ignore_sigterm {
        set_disposition(SigHandler::SigIgn)?;
        None
    } else {
        Some(Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signal setup: {e}"))?)
    };

    if let Some(path) = &o.touch_on_start {
        append_line(path, &unix_now().as_nanos().to_string())?;
    }
    if let Some(path) = &o.pidfile {
        write_atomic(path, &format!("{}\n", std::process::id()))?;
    }
    if let Some(path) = &o.record {
        append_line(path, &record_line())?;
    }
    // vec![1; n] writes every byte, so the pages are resident (vec![0; n] would map lazily).
    let ballast = vec![1u8; o.mem_bytes];

    if o.spawn_grandchild {
        spawn_grandchild(o)?;
    }

    println!("fake-component started pid={}", std::process::id());
    eprintln!("fake-component stderr line");
    flush();

    if o.exit_code.is_some() && o.exit_after.is_none() && o.crash_after.is_none() {
        std::process::exit(o.exit_code.unwrap_or(0).into());
    }

    if let Some(port) = o.listen {
        start_listener(port, o.healthz, start + o.ready_after, o.ready_after)?;
    }

    let (tx, rx) = mpsc::channel::<i32>();
    if let Some(mut signals) = signals {
        let tx = tx.clone();
        spawn_thread("signals", move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })?;
    }

    // Which timer fires first: `true` means crash.
    let timer = [
        o.exit_after.map(|d| (start + d, false)),
        o.crash_after.map(|d| (start + d, true)),
    ]
    .into_iter()
    .flatten()
    .min();
    // `tx` stays alive here, so `recv` blocks for ever when nothing can arrive.
    let got = match timer {
        Some((at, _)) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
    };
    drop(tx);
    std::hint::black_box(&ballast);
    match (got, timer) {
        (Ok(sig), _) => {
            println!("fake-component got signal {sig}, exiting");
            flush();
            thread::sleep(o.term_delay);
            std::process::exit(0);
        }
        (Err(_), Some((_, true))) => {
            println!("fake-component crashing");
            flush();
            no_core_dump();
            std::process::abort();
        }
        (Err(_), _) => {
            println!("fake-component exiting");
            flush();
            std::process::exit(o.exit_code.unwrap_or(0).into());
        }
    }
}

fn set_disposition(handler: SigHandler) -> Result<(), String> {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: SIG_IGN and SIG_DFL install no handler function, so no code can run in
        // signal context and nothing about the rest of the program's state matters.
        unsafe { signal::signal(sig, handler) }.map_err(|e| format!("signal({sig}): {e}"))?;
    }
    Ok(())
}

/// Forks the grandchild (with `--double-fork`, an orphan whose intermediate parent is reaped
/// here) and writes its pid to `--grandchild-pidfile` before returning. It returns only once the
/// child has dropped the inherited signal handler (a byte on a pipe says so), so a test that
/// inspects the grandchild after the "started" line never sees the parent's handler.
fn spawn_grandchild(o: &Opts) -> Result<(), String> {
    let (rx, tx) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: no thread has been spawned yet (see run), so the child inherits a consistent
    // single-threaded state and may allocate, write files and call non-async-signal-safe code.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(rx);
            grandchild(o, std::fs::File::from(tx))
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut byte = [0u8; 1];
            // EOF instead of a byte means the child died first; the checks below report it.
            let _ = std::io::Read::read(&mut std::fs::File::from(rx), &mut byte);
            if o.double_fork {
                // The intermediate writes the pidfile before it exits, so after this wait the
                // file is complete.
                return match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                    other => Err(format!(
                        "double-fork intermediate {child} failed: {other:?}"
                    )),
                };
            }
            match &o.grandchild_pidfile {
                Some(path) => write_atomic(path, &format!("{child}\n")),
                None => Ok(()),
            }
        }
    }
}

/// Runs in the forked child; never returns.
fn grandchild(o: &Opts, mut ready: std::fs::File) -> ! {
    // Drop signal-hook's inherited handler: SIGTERM must kill (or be ignored by) this process
    // itself, not be forwarded into the parent's self-pipe.
    let disposition = if o.ignore_sigterm {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    if set_disposition(disposition).is_err() {
        exit_now(1);
    }
    let _ = std::io::Write::write_all(&mut ready, &[1]);
    drop(ready);
    if o.double_fork {
        // SAFETY: this process is single-threaded (a fork of a single-threaded process).
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { child }) => {
                let written = o
                    .grandchild_pidfile
                    .as_deref()
                    .is_none_or(|p| write_atomic(p, &format!("{child}\n")).is_ok());
                exit_now(if written { 0 } else { 1 });
            }
            Ok(ForkResult::Child) => {}
            Err(_) => exit_now(1),
        }
    }
    loop {
        nix::unistd::pause();
    }
}

/// `_exit(2)`: skip atexit handlers and stdio flushing that belong to the parent's image.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// abort() must not litter the test machine with core files.
fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that outlives the call. Failure only means a core file.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// Binds at once (printing the port), or, with a delay and no healthz, after the delay from a
/// thread. Connections are served on their own small threads.
fn start_listener(
    port: u16,
    health: Option<Health>,
    ready_at: Instant,
    delay: Duration,
) -> Result<(), String> {
    let bind = move || {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("listen on 127.0.0.1:{port}: {e}"))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?.port();
        println!("fake-component listening port={bound}");
        flush();
        Ok::<_, String>(l)
    };
    let counter = Arc::new(AtomicU64::new(0));
    let serve = move |l: TcpListener| {
        for conn in l.incoming().flatten() {
            let Some(health) = health else {
                continue; // plain TCP: accept and close
            };
            let counter = Arc::clone(&counter);
            let _ = spawn_thread("conn", move || {
                let _ = handle_http(conn, health, ready_at, &counter);
            });
        }
    };
    if health.is_some() || delay.is_zero() {
        let l = bind()?;
        spawn_thread("listen", move || serve(l))
    } else {
        spawn_thread("listen", move || {
            thread::sleep(delay);
            match bind() {
                Ok(l) => serve(l),
                Err(e) => {
                    eprintln!("fake-component: {e}");
                    std::process::exit(1);
                }
            }
        })
    }
}

/// Minimal HTTP/1.1: read the request head, answer once with Content-Length, close.
fn handle_http(
    mut conn: TcpStream,
    health: Health,
    ready_at: Instant,
    counter: &AtomicU64,
) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = if !matches!(path, "/healthz" | "/readyz" | "/livez" | "/health") {
        ("404 Not Found", "not found")
    } else if method != "GET" {
        ("405 Method Not Allowed", "method not allowed")
    } else if Instant::now() < ready_at {
        ("503 Service Unavailable", "not ready")
    } else {
        let ok = match health {
            Health::Ok => true,
            Health::Fail => false,
            Health::Flap(n) => (counter.fetch_add(1, Ordering::Relaxed) / n).is_multiple_of(2),
        };
        if ok {
            ("200 OK", "ok")
        } else {
            ("500 Internal Server Error", "fail")
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new()
        .name(name.into())
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("spawn {name} thread: {e}"))
}

fn record_line() -> String {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned().into(),
            )
        })
        .collect();
    let sid = nix::unistd::getsid(None).map_or(-1, Pid::as_raw);
    serde_json::json!({
        "pid": std::process::id(),
        "ppid": nix::unistd::getppid().as_raw(),
        "pgid": nix::unistd::getpgrp().as_raw(),
        "sid": sid,
        "argv": argv,
        "env": env,
        "time_ms": u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX),
    })
    .to_string()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One `write(2)` with O_APPEND, so lines from concurrent instances do not interleave.
fn append_line(path: &Path, line: &str) -> Result<(), String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
        .map_err(|e| format!("append to {}: {e}", path.display()))
}

/// Temp file and rename: a polling reader sees no file or the whole pid, never an empty file.
fn write_atomic(path: &Path, contents: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    fs::write(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

fn flush() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
}
