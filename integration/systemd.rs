//! The distro package's service under a real systemd (#16): a Debian bookworm root, made once
//! by integration/systemd-root.sh and cached, booted with `systemd-nspawn` for each test with a
//! loopback-only network of its own and the test bed's mirror and Kubernetes binaries
//! bind-mounted read-only. The root has no `ca-certificates`: kubesup must run from a local
//! mirror without a trust store.
//!
//! What an operator relies on, in order, on one booted root:
//! - `dpkg -i` of the .deb packaging/build.sh made starts and enables nothing, and the unit
//!   does not start without /etc/kubesup/config.yaml (its condition fails);
//! - `systemctl enable --now kubesup-master` returns only after READY=1, with every component
//!   ready; `StatusText` reads as `kubesup status` counts; the journal has kubesup's lines and
//!   each component's, named;
//! - a benchmark: `systemctl start` to active against `kubesup master` started by hand, on the
//!   same data, in the same container;
//! - the watchdog: with a short `WatchdogSec`, a SIGSTOPped kubesup is killed and started
//!   again; the same cluster answers, one of each component runs, no orphan is left;
//! - an upgrade to a higher version restarts the service once, and keeps the data;
//! - `dpkg -r` stops the service and keeps the data, purge removes /etc/kubesup;
//! - `kubesup install master` on the root with the binary but no package writes the config and
//!   the unit and starts it, `kubesup uninstall` removes exactly that;
//! - purge with `KUBESUP_PURGE_DATA=yes` removes the data.
//!
//! And on a second root, a schedulable master runs a pod whose processes keep their PIDs across
//! `systemctl restart kubesup-master` (what kubelet needs inside nspawn is listed at that test).
//!
//! Safety rules: the container has only its own loopback; every wait is bounded; the
//! container is powered off (then its init and nspawn, the processes this test started, are
//! killed by PID if it does not stop in time), and the tmpfs and the unpacked root are removed
//! on drop, even on panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The service under test.
const UNIT: &str = "kubesup-master.service";
/// The environment of every command run in the container: nothing of the test's own.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where the test bed's mirror and Kubernetes binaries appear in the container.
const MIRROR_IN: &str = "/srv/mirror";
const K8S_IN: &str = "/opt/testbed";
const KUBECONFIG: &str = "/var/lib/kubesup/kubeconfig/admin.conf";
/// The control plane of a master with `network: none` that runs no pods.
const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One container at a time: each stacks its own tmpfs on /run/systemd/nspawn, and the tests
/// share two cores with whatever else runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed holding it poisoned it; the next one still runs alone.
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command that must finish on its own (see [`run_bounded`]), failing the test with its
/// output when it exits non-zero.
fn run_ok(cmd: Command, timeout: Duration) -> String {
    let shown = format!("{cmd:?}");
    let out = run_bounded(cmd, timeout);
    assert!(out.status.success(), "{shown}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tools the test needs on the host, or `false` (skipped) when one is missing and
/// `KUBESUP_TESTBED_REQUIRED` is unset. systemd-nspawn itself is installed by
/// integration/systemd-root.sh.
fn tools_present() -> bool {
    for tool in ["debootstrap", "dpkg-deb", "nsenter", "apt-get"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let msg = format!("{tool} is missing (integration/setup-testbed.sh installs it)");
            assert!(
                std::env::var_os("KUBESUP_TESTBED_REQUIRED").is_none(),
                "{msg}"
            );
            eprintln!("skipping: {msg}");
            return false;
        }
    }
    true
}

/// The .deb packaging/build.sh makes (it builds the release binary first), or the one
/// `KUBESUP_TEST_DEB` names (a CI job that built the packages already).
/// Built once per test process.
fn build_deb() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_deb_once).clone()
}

fn build_deb_once() -> PathBuf {
    if let Some(deb) = std::env::var_os("KUBESUP_TEST_DEB") {
        return PathBuf::from(deb);
    }
    let mut cmd = Command::new(manifest_dir().join("packaging/build.sh"));
    cmd.env(
        "CARGO_TARGET_DIR",
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| "/var/cache/kubesup-build/target".into()),
    );
    let out = run_ok(cmd, Duration::from_secs(60 * 60));
    out.lines()
        .map(PathBuf::from)
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("packaging/build.sh printed no .deb: {out}"))
}

/// A copy of `deb` with version `version` and nothing else changed: the "second build" an
/// upgrade installs.
fn rebuild_with_version(deb: &Path, version: &str, dir: &Path) -> PathBuf {
    let tree = dir.join("deb-tree");
    let _ = std::fs::remove_dir_all(&tree);
    let mut raw = Command::new("dpkg-deb");
    raw.arg("-R").arg(deb).arg(&tree);
    run_ok(raw, Duration::from_secs(120));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("Version:") {
                format!("Version: {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&control, text).unwrap();
    let out = dir.join(format!("kubesup_{version}_amd64.deb"));
    let mut build = Command::new("dpkg-deb");
    build
        .args(["--root-owner-group", "-Zgzip", "-b"])
        .arg(&tree)
        .arg(&out);
    run_ok(build, Duration::from_secs(300));
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// A booted Debian root: `systemd-nspawn -b` on an unpacked copy of the cached root.
struct Machine {
    name: String,
    /// The scratch directory: `root/` (the container's /) and the console log.
    dir: PathBuf,
    root: PathBuf,
    nspawn: Option<Child>,
    /// The container's systemd (PID 1 inside), as a host PID.
    leader: i32,
    /// Whether this machine mounted the tmpfs on /run/systemd/nspawn (it unmounts it).
    tmpfs: bool,
    /// Whether it created /run/systemd/nspawn itself (it removes it).
    made_run_dir: bool,
}

const NSPAWN_RUN: &str = "/run/systemd/nspawn";

impl Machine {
    /// Unpacks the root and boots it; waits (bounded) for `systemctl is-system-running`.
    fn boot(tag: &str, binds: &[(&Path, &str)]) -> Self {
        Self::boot_with(tag, binds, &[], &[])
    }

    /// [`boot`](Self::boot), with more `systemd-nspawn` arguments and environment.
    fn boot_with(tag: &str, binds: &[(&Path, &str)], args: &[&str], env: &[(&str, &str)]) -> Self {
        let tarball = run_ok(
            Command::new(manifest_dir().join("integration/systemd-root.sh")),
            Duration::from_secs(20 * 60),
        );
        let tarball = tarball
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        let name = format!(
            "ks-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // On disk, not /tmp (the root is ~250 MB, and kubesup copies ~450 MB of binaries).
        let dir = PathBuf::from("/var/tmp").join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut m = Self {
            name,
            dir,
            root,
            nspawn: None,
            leader: -1,
            tmpfs: false,
            made_run_dir: !Path::new(NSPAWN_RUN).exists(),
        };
        let mut untar = Command::new("tar");
        untar
            .arg("-C")
            .arg(&m.root)
            .args(["--numeric-owner", "-xzf"])
            .arg(&tarball);
        run_ok(untar, Duration::from_secs(300));

        // /run is not a tmpfs here, and nspawn refuses to clean up its propagation directory
        // on a disk file system (TESTBED.md): a tmpfs of our own, stacked on whatever is there.
        std::fs::create_dir_all(NSPAWN_RUN).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            NSPAWN_RUN,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=0755"),
        )
        .expect("mount a tmpfs on /run/systemd/nspawn");
        m.tmpfs = true;

        let mut cmd = Command::new("systemd-nspawn");
        cmd.args(["--keep-unit", "--register=no", "--private-network"])
            .args(["--console=read-only", "-M", &m.name, "-b", "-D"])
            .arg(&m.root);
        for (host, inside) in binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        cmd.args(args).envs(env.iter().copied());
        m.nspawn = Some(spawn_logged(&mut cmd, &m.dir.join("console.log")));
        let nspawn = m.nspawn.as_ref().map(|c| c.id() as i32).unwrap();
        // The container's init is nspawn's child.
        m.leader = wait_for(Duration::from_secs(60), || {
            assert!(
                alive(nspawn),
                "systemd-nspawn exited:\n{}",
                m.console_tail()
            );
            children_of(nspawn).into_iter().next()
        })
        .unwrap_or_else(|| panic!("systemd-nspawn started no init\n{}", m.console_tail()));
        let state = wait_for(Duration::from_secs(90), || {
            let s = m.sh("systemctl is-system-running");
            let s = String::from_utf8_lossy(&s.stdout).trim().to_string();
            (s == "running" || s == "degraded").then_some(s)
        });
        assert_eq!(
            state.as_deref(),
            Some("running"),
            "the container did not boot cleanly: {}\n{}",
            m.sh_text("systemctl --failed --no-legend; systemctl is-system-running"),
            m.console_tail()
        );
        m
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The container path `p` as seen from the host.
    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// `nsenter` into every namespace of the container (mount, PID, network, ...), with an
    /// environment of the container's own, not the test's.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.leader.to_string())
            .args([
                "-a",
                "--",
                "env",
                "-i",
                PATH,
                "LANG=C.UTF-8",
                "SYSTEMD_PAGER=",
            ])
            .args(args);
        c
    }

    /// Runs `sh -c SCRIPT` in the container, bounded to two minutes.
    fn sh(&self, script: &str) -> Output {
        self.sh_timeout(script, Duration::from_secs(120))
    }

    fn sh_timeout(&self, script: &str, timeout: Duration) -> Output {
        run_bounded(self.command(&["sh", "-c", script]), timeout)
    }

    /// stdout and stderr of `sh -c SCRIPT`, whatever its exit code.
    fn sh_text(&self, script: &str) -> String {
        output_text(&self.sh(script))
    }

    /// stdout of `sh -c SCRIPT`, which must succeed.
    fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed in the container: {}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show -p NAME --value UNIT`.
    fn prop(&self, name: &str) -> String {
        self.sh_ok(&format!("systemctl show -p {name} --value {UNIT}"))
            .trim()
            .to_string()
    }

    fn main_pid(&self) -> i32 {
        self.prop("MainPID").parse().unwrap_or(0)
    }

    /// `kubesup status --json` in the container, if it answers.
    fn status(&self) -> Option<Value> {
        let out = self.sh("kubesup status --json");
        serde_json::from_slice(&out.stdout).ok()
    }

    fn kubectl(&self, args: &str) -> Output {
        self.sh(&format!(
            "{K8S_IN}/kubectl --kubeconfig={KUBECONFIG} --request-timeout=10s {args}"
        ))
    }

    /// The unit's journal (systemd's lines and the service's), after `cursor` if given.
    fn journal(&self, cursor: Option<&str>) -> String {
        let after = cursor
            .map(|c| format!("--after-cursor='{c}'"))
            .unwrap_or_default();
        self.sh_ok(&format!("journalctl -u {UNIT} -o cat --no-pager {after}"))
    }

    /// The journal's current end.
    fn cursor(&self) -> String {
        let out = self.sh_ok("journalctl -n 0 --show-cursor --no-pager");
        out.lines()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .unwrap_or_else(|| panic!("no cursor in {out:?}"))
            .trim()
            .to_string()
    }

    /// The container's processes: (pid, ppid, comm).
    fn processes(&self) -> Vec<(i32, i32, String)> {
        self.sh_ok("ps -e -o pid=,ppid=,comm=")
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.to_string(),
                ))
            })
            .collect()
    }

    fn count(&self, comm: &str) -> usize {
        // comm is cut at 15 characters (kube-controller-manager is kube-controller).
        let key: String = comm.chars().take(15).collect();
        self.processes().iter().filter(|p| p.2 == key).count()
    }

    /// Waits, bounded, for no process of kubesup or of any component to run.
    fn assert_nothing_runs(&self, timeout: Duration) {
        let quiet = wait_for(timeout, || {
            (self.count("kubesup") == 0 && COMPONENTS.iter().all(|c| self.count(c) == 0))
                .then_some(())
        });
        assert!(
            quiet.is_some(),
            "processes left: {}",
            self.sh_text("ps -e -o pid,ppid,stat,args")
        );
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut nspawn) = self.nspawn.take() {
            // A clean shutdown first: systemd stops the services (kubesup its components).
            if self.leader > 0
                && let Ok(mut c) = self
                    .command(&["systemctl", "--no-block", "poweroff"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                && wait_for(Duration::from_secs(30), || c.try_wait().ok().flatten()).is_none()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
            let exited = wait_for(Duration::from_secs(60), || nspawn.try_wait().ok().flatten());
            if exited.is_none() {
                // The container's init (still nspawn's child, so still the one this test
                // started): killing a PID namespace's init kills everything in it.
                if self.leader > 0 && children_of(nspawn.id() as i32).contains(&self.leader) {
                    let _ = kill(Pid::from_raw(self.leader), Signal::SIGKILL);
                }
                let _ = wait_for(Duration::from_secs(10), || nspawn.try_wait().ok().flatten());
                kill_group(&mut nspawn);
            }
        }
        if self.tmpfs {
            let _ = nix::mount::umount2(NSPAWN_RUN, nix::mount::MntFlags::MNT_DETACH);
        }
        if self.made_run_dir {
            let _ = std::fs::remove_dir(NSPAWN_RUN);
        }
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PIDs whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            proc_stat(*p).and_then(|f| f.get(1).and_then(|pp| pp.parse::<i32>().ok())) == Some(pid)
        })
        .collect()
}

/// Every file and symlink below the container's /etc (not directories).
fn etc_files(m: &Machine) -> std::collections::BTreeSet<String> {
    m.sh_ok("find /etc -not -type d")
        .lines()
        .map(String::from)
        .collect()
}

/// Whether every component in a `kubesup status --json` answer is ready.
fn all_ready(s: &Value) -> bool {
    s["components"]
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["ready"] == true))
}

/// `N/M components ready`, as kubesup's StatusText reads, counted from a status answer.
fn summary(s: &Value) -> String {
    let comps = s["components"].as_array().cloned().unwrap_or_default();
    let ready = comps.iter().filter(|c| c["ready"] == true).count();
    format!("{ready}/{} components ready", comps.len())
}

/// The config the package's service reads: this machine's loopback, the bind-mounted mirror
/// (a directory: no TLS, so no trust store), no pod network.
fn master_yaml() -> String {
    format!(
        "advertise: 127.0.0.1\nnode-name: it-systemd\nkube-version: {KUBE_VERSION}\n\
         mirror: {MIRROR_IN}\nfetch: {{etcd-version: {ETCD_VERSION}}}\nnetwork: none\n"
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `kubesup master` started by hand in the container (not by systemd), with NOTIFY_SOCKET
/// pointing at a socket of this test's: the time until it sends READY=1, as systemd would
/// see it. Stopped by SIGTERM (kubesup stops its components) before returning.
fn start_by_hand(m: &Machine) -> Duration {
    let sock_in = "/var/lib/ks-notify.sock";
    let sock = m.path(sock_in);
    let _ = std::fs::remove_file(&sock);
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut cmd = m.command(&[
        &format!("NOTIFY_SOCKET={sock_in}"),
        "/usr/bin/kubesup",
        "master",
        "--config",
        "/etc/kubesup/config.yaml",
    ]);
    let log = m.dir.join("by-hand.log");
    let t0 = Instant::now();
    let mut child = Some(spawn_logged(&mut cmd, &log));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut buf = [0u8; 4096];
    let mut ready = None;
    while Instant::now() < deadline {
        if let Ok(n) = rx.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        {
            ready = Some(t0.elapsed());
            break;
        }
        if child.as_mut().unwrap().try_wait().ok().flatten().is_some() {
            break;
        }
    }
    let status = m.status();
    // nsenter forks the kubesup it runs: the container's process named kubesup.
    let pids: Vec<i32> = m
        .processes()
        .iter()
        .filter(|p| p.2 == "kubesup")
        .map(|p| p.0)
        .collect();
    for p in &pids {
        m.sh(&format!("kill -TERM {p}"));
    }
    let stopped = wait_exit(&mut child, WAIT_PERIOD, Duration::from_secs(120));
    if stopped.is_none() {
        kill_group(child.as_mut().unwrap());
    }
    let _ = std::fs::remove_file(&sock);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let ready = ready.unwrap_or_else(|| panic!("kubesup by hand never sent READY=1:\n{log_text}"));
    assert!(
        status.as_ref().is_some_and(all_ready),
        "READY=1 before every component was ready: {status:?}"
    );
    assert!(stopped.is_some(), "kubesup by hand did not stop on SIGTERM");
    m.assert_nothing_runs(Duration::from_secs(30));
    ready
}

/// `systemctl start` until it returns (READY=1, or a failure), checked active and ready.
fn start_by_systemd(m: &Machine) -> Duration {
    let t0 = Instant::now();
    let out = m.sh_timeout(&format!("systemctl start {UNIT}"), Duration::from_secs(300));
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "systemctl start: {}\n{}",
        output_text(&out),
        m.journal(None)
    );
    assert_eq!(m.prop("ActiveState"), "active");
    let s = m.status().expect("kubesup status answers");
    assert!(
        all_ready(&s),
        "active before every component was ready: {s}"
    );
    took
}

#[test]
fn the_package_service_runs_under_a_real_systemd() {
    let _alone = one_at_a_time();
    let Some(tb) = Testbed::get() else {
        return;
    };
    if !tools_present() {
        return;
    }
    let deb = build_deb();
    let m = Machine::boot("pkg", &[(&tb.mirror, MIRROR_IN), (&tb.k8s_bin, K8S_IN)]);

    // The root has no trust store: a local mirror must not need one (#16).
    assert!(!m.sh("dpkg -s ca-certificates").status.success());
    assert!(!m.path("/etc/ssl/certs/ca-certificates.crt").exists());

    // Install: nothing enabled, nothing started, and no start without a config.
    std::fs::copy(&deb, m.path("/root/kubesup.deb")).unwrap();
    m.sh_ok("dpkg -i /root/kubesup.deb");
    assert_eq!(
        m.sh_text(&format!("systemctl is-enabled {UNIT}")).trim(),
        "disabled"
    );
    assert_eq!(m.prop("ActiveState"), "inactive");
    assert_eq!(m.count("kubesup"), 0);
    m.sh_ok(&format!("systemctl start {UNIT}"));
    assert_eq!(m.prop("ActiveState"), "inactive");
    assert_eq!(
        m.prop("ConditionResult"),
        "no",
        "the unit started without /etc/kubesup/config.yaml"
    );
    assert_eq!(m.count("kubesup"), 0);

    // Start: `enable --now` returns once READY=1 came, with every component ready.
    std::fs::write(m.path("/etc/kubesup/config.yaml"), master_yaml()).unwrap();
    let t0 = Instant::now();
    let out = m.sh_timeout(
        &format!("systemctl enable --now {UNIT}"),
        Duration::from_secs(600),
    );
    let first_start = t0.elapsed();
    assert!(
        out.status.success(),
        "enable --now: {}\n{}",
        output_text(&out),
        m.journal(None)
    );
    let s = m.status().expect("kubesup status answers");
    assert!(
        all_ready(&s),
        "enable --now returned before every component was ready: {s}"
    );
    let names: Vec<String> = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    for c in COMPONENTS {
        assert!(
            names.iter().any(|n| n == c),
            "{c} is not supervised: {names:?}"
        );
    }
    assert_eq!(m.prop("ActiveState"), "active");
    assert_eq!(m.prop("StatusText"), summary(&s));
    assert_eq!(s["pid"].as_i64(), Some(i64::from(m.main_pid())));
    assert_eq!(m.prop("WatchdogUSec"), "1min");
    let journal = m.journal(None);
    assert!(
        journal.contains("every component is ready"),
        "kubesup's own lines are not in the journal:\n{journal}"
    );
    for c in &names {
        assert!(
            journal
                .lines()
                .any(|l| l.contains(&format!("component={c} "))
                    || l.contains(&format!("component=\"{c}\""))),
            "no line of {c} with its name in the journal:\n{journal}"
        );
    }
    eprintln!("systemd: first `enable --now` (fetch, PKI, start) took {first_start:?}");

    // An object, to find again after the watchdog restart and the upgrade.
    let out = m.kubectl("create configmap ks-systemd --from-literal=k=v1");
    assert!(out.status.success(), "{}", output_text(&out));

    // Benchmark: `systemctl start` to active against `kubesup master` by hand, same data.
    m.sh_ok(&format!("systemctl stop {UNIT}"));
    m.assert_nothing_runs(Duration::from_secs(30));
    let (mut by_systemd, mut by_hand) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        by_systemd.push(start_by_systemd(&m));
        m.sh_ok(&format!("systemctl stop {UNIT}"));
        m.assert_nothing_runs(Duration::from_secs(30));
        by_hand.push(start_by_hand(&m));
    }
    let (sd, hand) = (median(by_systemd.clone()), median(by_hand.clone()));
    eprintln!(
        "benchmark: start to ready, systemd {by_systemd:?} (median {sd:?}), by hand {by_hand:?} \
         (median {hand:?}): ratio {:.3}",
        sd.as_secs_f64() / hand.as_secs_f64()
    );
    start_by_systemd(&m);

    // Watchdog: a hung kubesup is killed and started again.
    let dropin = m.path("/etc/systemd/system/kubesup-master.service.d/10-watchdog.conf");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(&dropin, "[Service]\nWatchdogSec=10s\n").unwrap();
    m.sh_ok("systemctl daemon-reload");
    m.sh_ok(&format!("systemctl restart {UNIT}"));
    assert_eq!(m.prop("WatchdogUSec"), "10s");
    let s = m.status().expect("kubesup status answers");
    assert!(all_ready(&s), "{s}");
    let hung = m.main_pid();
    let restarts: u32 = m.prop("NRestarts").parse().unwrap();
    let cursor = m.cursor();
    m.sh_ok(&format!("kill -STOP {hung}"));
    let t_stop = Instant::now();
    let replaced = wait_for(Duration::from_secs(120), || {
        let pid = m.main_pid();
        (pid != hung && pid != 0).then_some(t_stop.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "the watchdog did not replace the stopped kubesup\n{}",
            m.journal(Some(&cursor))
        )
    });
    let answered = wait_for(Duration::from_secs(180), || {
        (m.prop("ActiveState") == "active"
            && m.kubectl("get configmap ks-systemd -o jsonpath={.data.k}")
                .stdout
                == b"v1")
            .then_some(t_stop.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "the cluster did not answer after the watchdog restart\n{}",
            m.journal(Some(&cursor))
        )
    });
    let journal = m.journal(Some(&cursor));
    assert!(
        journal.contains("Watchdog timeout"),
        "systemd did not log a watchdog timeout:\n{journal}"
    );
    assert_eq!(m.prop("NRestarts"), (restarts + 1).to_string());
    let s = m.status().expect("kubesup status answers");
    assert!(all_ready(&s), "{s}");
    let main = m.main_pid();
    let procs = m.processes();
    assert!(
        procs.iter().all(|p| p.0 != hung && p.1 != hung),
        "the stopped kubesup or a child of it survived: {}",
        m.sh_text("ps -e -o pid,ppid,stat,args")
    );
    for c in COMPONENTS {
        let key: String = c.chars().take(15).collect();
        let mine: Vec<_> = procs.iter().filter(|p| p.2 == key).collect();
        assert_eq!(
            mine.len(),
            1,
            "{c}: {mine:?}\n{}",
            m.sh_text("ps -e -o pid,ppid,stat,args")
        );
        assert_eq!(mine[0].1, main, "{c} is not the new kubesup's child");
    }
    eprintln!(
        "watchdog (WatchdogSec=10s): SIGSTOP to a new kubesup {replaced:?}, to the cluster \
         answering {answered:?} (bounded by WatchdogSec, then RestartSec=2s, then a warm start)"
    );
    std::fs::remove_file(&dropin).unwrap();
    m.sh_ok("systemctl daemon-reload");

    // Upgrade: a higher version over the running one restarts the service once.
    let old_version = m.sh_ok("dpkg-query -W -f='${Version}' kubesup");
    let new_version = format!("{old_version}+systemdtest1");
    let scratch = m.dir.join("debs");
    std::fs::create_dir_all(&scratch).unwrap();
    let deb2 = rebuild_with_version(&deb, &new_version, &scratch);
    std::fs::copy(&deb2, m.path("/root/kubesup2.deb")).unwrap();
    let before = (m.main_pid(), m.prop("InvocationID"));
    let cursor = m.cursor();
    let t0 = Instant::now();
    let out = m.sh_timeout("dpkg -i /root/kubesup2.deb", Duration::from_secs(600));
    let upgrade = t0.elapsed();
    assert!(
        out.status.success(),
        "dpkg -i (upgrade): {}",
        output_text(&out)
    );
    assert_eq!(
        m.sh_ok("dpkg-query -W -f='${Version}' kubesup"),
        new_version
    );
    assert_eq!(m.prop("ActiveState"), "active");
    let s = m.status().expect("kubesup status answers");
    assert!(
        all_ready(&s),
        "the upgrade returned before the service was ready: {s}"
    );
    assert_ne!(
        m.main_pid(),
        before.0,
        "the upgrade did not restart kubesup"
    );
    assert_ne!(m.prop("InvocationID"), before.1);
    let journal = m.journal(Some(&cursor));
    let started = journal
        .lines()
        .filter(|l| l.starts_with("Started kubesup-master"))
        .count();
    let stopped = journal
        .lines()
        .filter(|l| l.starts_with("Stopped kubesup-master"))
        .count();
    assert_eq!((started, stopped), (1, 1), "not one restart:\n{journal}");
    let out = m.kubectl("get configmap ks-systemd -o jsonpath={.data.k}");
    assert_eq!(out.stdout, b"v1", "{}", output_text(&out));
    eprintln!("upgrade: dpkg -i of {new_version} over the running service took {upgrade:?}");

    // Remove: the service stops, the data stays.
    m.sh_ok("dpkg -r kubesup");
    assert_eq!(m.prop("ActiveState"), "inactive");
    m.assert_nothing_runs(Duration::from_secs(30));
    assert!(
        m.path("/var/lib/kubesup/pki").exists(),
        "dpkg -r removed the data"
    );
    assert!(!m.path("/usr/bin/kubesup").exists());
    assert!(
        !m.path("/etc/systemd/system/multi-user.target.wants/kubesup-master.service")
            .exists(),
        "dpkg -r left the unit enabled"
    );
    // Purge: /etc/kubesup goes, the data stays.
    m.sh_ok("dpkg --purge kubesup");
    assert!(!m.path("/etc/kubesup").exists(), "purge left /etc/kubesup");
    assert!(
        m.path("/var/lib/kubesup/pki").exists(),
        "purge removed the data"
    );

    // `kubesup install` with systemd running, on the root with the binary and no package.
    let unpacked = m.dir.join("unpacked");
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(&unpacked);
    run_ok(x, Duration::from_secs(120));
    std::fs::copy(
        unpacked.join("usr/bin/kubesup"),
        m.path("/usr/local/bin/kubesup"),
    )
    .unwrap();
    let etc_before = etc_files(&m);
    let out = m.sh_timeout(
        &format!(
            "kubesup install master --advertise 127.0.0.1 --node-name it-systemd \
             --kube-version {KUBE_VERSION} --mirror {MIRROR_IN} --etcd-version {ETCD_VERSION} \
             --network none"
        ),
        Duration::from_secs(600),
    );
    assert!(
        out.status.success(),
        "kubesup install: {}\n{}",
        output_text(&out),
        m.journal(None)
    );
    assert_eq!(m.prop("ActiveState"), "active");
    assert_eq!(
        m.sh_text(&format!("systemctl is-enabled {UNIT}")).trim(),
        "enabled"
    );
    let s = m.status().expect("kubesup status answers");
    assert!(
        all_ready(&s),
        "install returned before the service was ready: {s}"
    );
    let unit =
        std::fs::read_to_string(m.path("/etc/systemd/system/kubesup-master.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/kubesup master --config /etc/kubesup/config.yaml"),
        "{unit}"
    );
    let out = m.kubectl("get configmap ks-systemd -o jsonpath={.data.k}");
    assert_eq!(out.stdout, b"v1", "{}", output_text(&out));
    m.sh_ok("kubesup uninstall");
    assert_eq!(m.prop("ActiveState"), "inactive");
    m.assert_nothing_runs(Duration::from_secs(30));
    // Exactly the files install wrote are gone (the config, the unit, the record, and the
    // symlink enable made), and the directory /etc/kubesup that writing them created.
    let etc_after = etc_files(&m);
    let added: Vec<_> = etc_after.difference(&etc_before).collect();
    let removed: Vec<_> = etc_before.difference(&etc_after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "install + uninstall changed /etc: left {added:?}, removed {removed:?}"
    );
    assert!(
        !m.path("/etc/kubesup").exists(),
        "uninstall left the /etc/kubesup that install created"
    );
    assert!(
        m.path("/var/lib/kubesup/pki").exists(),
        "uninstall removed the data"
    );
    std::fs::remove_file(m.path("/usr/local/bin/kubesup")).unwrap();

    // Purge asked to remove the data.
    m.sh_ok("dpkg -i /root/kubesup.deb");
    m.sh_ok("KUBESUP_PURGE_DATA=yes dpkg --purge kubesup");
    assert!(!m.path("/var/lib/kubesup").exists(), "purge kept the data");
    assert!(!m.path("/etc/kubesup").exists());
    assert_eq!(m.count("kubesup"), 0);
}

/// The pod of the restart test: a shell that exits on SIGTERM (so that a shutdown of the
/// container does not wait out systemd's stop timeout for it), around one long sleep.
const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: keeper, namespace: default}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: keeper
    image: kubesup.local/busybox:1.35
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"#;

/// Whether node `it-systemd` is Ready.
fn node_ready(m: &Machine) -> bool {
    m.kubectl("get node it-systemd -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'")
        .stdout
        == b"True"
}

/// The PIDs (in the container) of the pod's processes: the sandbox's pause and the shell and
/// sleep of its container, found as the children of the containerd shims.
fn pod_pids(m: &Machine) -> Vec<(i32, String)> {
    let procs = m.processes();
    let shims: Vec<i32> = procs
        .iter()
        .filter(|p| p.2.starts_with("containerd-shim"))
        .map(|p| p.0)
        .collect();
    let mut out: Vec<(i32, String)> = Vec::new();
    let mut parents = shims;
    // Two levels: the shim's children (pause, sh), and theirs (sleep).
    for _ in 0..2 {
        let next: Vec<(i32, String)> = procs
            .iter()
            .filter(|p| parents.contains(&p.1))
            .map(|p| (p.0, p.2.clone()))
            .collect();
        parents = next.iter().map(|p| p.0).collect();
        out.extend(next);
    }
    out.sort();
    out
}

/// A schedulable master in the container runs a pod; `systemctl restart kubesup-master` leaves
/// its processes running (KillMode=process), and the node is Ready again afterwards.
///
/// kubelet runs inside systemd-nspawn (cgroup v1 here) with, and only with:
/// - `--capability=CAP_SYSLOG`: kubelet's OOM watcher opens /dev/kmsg ("failed to create
///   kubelet: open /dev/kmsg: operation not permitted" without it), and a /dev/kmsg node in
///   the container's /dev, which nspawn does not create;
/// - `--system-call-filter=add_key keyctl request_key`: runc gives each container a session
///   keyring, and nspawn's seccomp filter refuses the keyring calls ("unable to join session
///   keyring: unable to create session key: operation not permitted");
/// - the cgroup v1 controllers remounted read-write: nspawn mounts them read-only on a legacy
///   hierarchy (only name=systemd is writable), and kubelet creates its cgroup root in each;
/// - `SYSTEMD_NSPAWN_API_VFS_WRITABLE=1`, so /proc/sys is writable, and
///   `net.ipv4.ip_forward=1` in the container's network namespace (kubesup's preflight);
/// - no CAP_SYS_RESOURCE (nspawn drops it): kubesup sees that and sets containerd's
///   `restrict_oom_score_adj` itself.
///
/// The controllers' cgroups are the host's (no cgroup namespace on v1), so kubelet runs with a
/// cgroup root of this test's, removed after the container stops.
#[test]
fn pods_keep_running_across_a_restart_of_the_service() {
    let _alone = one_at_a_time();
    let Some(tb) = Testbed::get() else {
        return;
    };
    if !tools_present() {
        return;
    }
    let deb = build_deb();
    let images = Command::new("python3")
        .arg(manifest_dir().join("integration/build-images.py"))
        .output()
        .unwrap();
    assert!(images.status.success(), "build-images.py: {images:?}");
    let image_dir = PathBuf::from(String::from_utf8_lossy(&images.stdout).trim());
    let cgroup_root = format!("/kubesup-it-systemd-{}", std::process::id());
    // Declared before the machine, so it runs after the container stopped.
    let _cgroups = CgroupRoots(vec![cgroup_root.clone()]);
    let m = Machine::boot_with(
        "pods",
        &[(&tb.mirror, MIRROR_IN), (&tb.k8s_bin, K8S_IN)],
        &[
            "--capability=CAP_SYSLOG",
            "--system-call-filter=add_key keyctl request_key",
        ],
        &[("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1")],
    );
    m.sh_ok(
        "set -e; for c in /sys/fs/cgroup/*/; do \
           case $c in */systemd/|*/unified/) ;; *) mount -o remount,bind,rw $c;; esac; done; \
         sysctl -q -w net.ipv4.ip_forward=1; [ -e /dev/kmsg ] || mknod /dev/kmsg c 1 11",
    );
    std::fs::copy(&deb, m.path("/root/kubesup.deb")).unwrap();
    m.sh_ok("dpkg -i /root/kubesup.deb");
    std::fs::write(
        m.path("/etc/kubesup/config.yaml"),
        format!(
            "{}schedulable: true\ncontainerd: {{sandbox-image: kubesup.local/pause:3.2}}\n\
             kubelet: {{cgroup-root: {cgroup_root}}}\ndns: {{enabled: false}}\n",
            master_yaml()
        ),
    )
    .unwrap();
    let out = m.sh_timeout(
        &format!("systemctl enable --now {UNIT}"),
        Duration::from_secs(600),
    );
    assert!(
        out.status.success(),
        "enable --now: {}\n{}",
        output_text(&out),
        m.journal(None)
    );
    let s = m.status().expect("kubesup status answers");
    assert!(all_ready(&s), "{s}");
    for img in ["pause.tar", "busybox.tar"] {
        std::fs::copy(image_dir.join(img), m.path(&format!("/root/{img}"))).unwrap();
        m.sh_ok(&format!(
            "ctr -a /var/lib/kubesup/containerd/containerd.sock -n k8s.io images import /root/{img}"
        ));
    }
    std::fs::write(m.path("/root/pod.yaml"), POD).unwrap();
    // The namespace's default service account appears a moment after the controller-manager
    // starts; the pod is refused until then.
    let applied = wait_for(Duration::from_secs(90), || {
        m.kubectl("apply -f /root/pod.yaml")
            .status
            .success()
            .then_some(())
    });
    assert!(
        applied.is_some(),
        "{}",
        output_text(&m.kubectl("apply -f /root/pod.yaml"))
    );
    let running = wait_for(Duration::from_secs(180), || {
        (m.kubectl("get pod keeper -o jsonpath={.status.phase}")
            .stdout
            == b"Running")
            .then_some(())
    });
    assert!(
        running.is_some(),
        "the pod did not run: {}",
        output_text(&m.kubectl("describe pod keeper"))
    );
    assert!(node_ready(&m));
    let before = pod_pids(&m);
    assert!(
        before.iter().any(|p| p.1 == "pause") && before.iter().any(|p| p.1 == "sleep"),
        "the pod's processes are not where expected: {before:?}\n{}",
        m.sh_text("ps -e -o pid,ppid,args")
    );

    let t0 = Instant::now();
    let out = m.sh_timeout(
        &format!("systemctl restart {UNIT}"),
        Duration::from_secs(300),
    );
    let restart = t0.elapsed();
    assert!(out.status.success(), "restart: {}", output_text(&out));
    let s = m.status().expect("kubesup status answers");
    assert!(all_ready(&s), "{s}");
    assert_eq!(
        pod_pids(&m),
        before,
        "the pod's processes changed across the restart"
    );
    let ready = wait_for(Duration::from_secs(120), || {
        node_ready(&m).then_some(t0.elapsed())
    });
    assert!(
        ready.is_some(),
        "the node did not become Ready again: {}",
        output_text(&m.kubectl("describe node it-systemd"))
    );
    assert_eq!(
        m.kubectl("get pod keeper -o jsonpath={.status.containerStatuses[0].restartCount}")
            .stdout,
        b"0"
    );
    eprintln!(
        "restart with a pod: `systemctl restart` took {restart:?}, node Ready again after {:?}; \
         pod PIDs kept: {before:?}",
        ready.unwrap_or_default()
    );
    // Gone before the container's shutdown, which would otherwise wait for it.
    let _ = m.kubectl("delete pod keeper --grace-period=2 --wait=true --timeout=30s");
}
