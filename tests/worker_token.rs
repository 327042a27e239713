//! A worker given `--token T` does not keep the secret on its command line (k0s#413): once it
//! has read the token it executes itself again without the flag, so `ps` and
//! `/proc/PID/cmdline`, which every user can read, never show it while the worker runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KUBESUP: &str = env!("CARGO_BIN_EXE_kubesup");

#[test]
fn a_running_worker_keeps_no_token_on_its_command_line() {
    // A join API that accepts and never answers holds the worker in its first request, so it
    // is running (and has read its token) while the test looks at it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        // Bounded: a worker that never connects leaves after 20 s.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    let _ = accepted_tx.send(());
                    // Keep it open, silent, until the worker is gone (or 30 s).
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut buf = [0u8; 4096];
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });

    let secret = "abcdefghijklmnop";
    let token = format!("K10{}::abcdef.{secret}", "ab".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(KUBESUP)
        .args(["worker", "--data-dir", data.to_str().unwrap()])
        .args(["--join", &format!("https://127.0.0.1:{port}")])
        .args(["--token", &token])
        .env_remove("KUBESUP_CONFIG")
        .env_remove("KUBESUP_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();

    // Once the worker talks to the join API it has read its token and is running for real.
    let connected = accepted.recv_timeout(Duration::from_secs(15)).is_ok();
    let seen = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let alive = child.try_wait().unwrap().is_none();
    let text = String::from_utf8_lossy(&seen).replace('\0', " ");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let _ = holder.join();

    assert!(connected, "the worker never reached the join API");
    assert!(
        alive,
        "the worker exited: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("worker --data-dir"), "cmdline: {text}");
    assert!(
        !text.contains(secret),
        "the secret is in the cmdline: {text}"
    );
    assert!(!text.contains("--token"), "cmdline: {text}");
    // The same process (same PID) still has the token, where only its own user can read it.
    assert!(
        String::from_utf8_lossy(&environ).contains(&format!("KUBESUP_TOKEN={token}")),
        "the token did not reach the re-executed worker"
    );
    assert!(
        !data.exists(),
        "nothing is written before the master answers"
    );
}
