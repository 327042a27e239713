//! `kubesup reset`: undo everything kubesup created on this node, and nothing else.
//!
//! In order, each step bounded in time, each harmless when there is nothing to do (so running
//! it twice is fine):
//! 0. on a master of a cluster of several: check that its etcd member can leave (a quorum of
//!    healthy voters stays, or `--force`), and after step 1 remove it through the others;
//! 1. ask a running kubesup to stop through its control socket, and wait for its lock to free;
//! 2. kill leftover children recorded in the pid file (pid, start time and executable must
//!    all match, so a recycled PID is never touched);
//! 3. stop the node's pods: each container's init (from the `init.pid` containerd keeps under
//!    kubesup's own state dir, checked against the container's cgroup so a recycled PID is
//!    never touched) and the containerd-shims serving kubesup's containerd socket; pods
//!    outlive a kubesup restart by design, but not a reset; then remove the kubelet cgroup
//!    root kubesup created, if one was configured;
//! 4. unmount everything kubelet mounted below the data dir, deepest first;
//! 5. remove kube-proxy's iptables chains with kube-proxy's own `--cleanup` (it knows exactly
//!    which chains are its own), in the network namespace kubesup ran in;
//! 6. delete the network interfaces kubesup's CNI config and flannel create (`kubesup0`,
//!    `flannel.1`), if present;
//! 7. delete the data dir, PKI included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cli::ResetArgs;
use crate::cmd::{Globals, SetupError};
use crate::config::ConfigError;
use crate::model::Component;
use crate::paths::Paths;
use crate::retry::Backoff;
use crate::supervise::{Exec, Procs, control, lock::DataDirLock, pidfile};

/// Chains kubelet creates by name (kubelet_network_linux.go), and kube-proxy's canary, which
/// `kube-proxy --cleanup` leaves behind.
pub const KUBELET_CHAINS: [&str; 6] = [
    "KUBE-KUBELET-CANARY",
    "KUBE-PROXY-CANARY",
    "KUBE-MARK-DROP",
    "KUBE-MARK-MASQ",
    "KUBE-POSTROUTING",
    "KUBE-FIREWALL",
];

/// Interfaces kubesup's network setups create.
pub const INTERFACES: [&str; 2] = ["kubesup0", "flannel.1"];

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("not confirmed: rerun with --yes to reset without a prompt")]
    NotConfirmed,
    #[error("cannot ask for confirmation")]
    Prompt(#[source] std::io::Error),
    #[error("kubesup (pid file {0}) did not stop within 3 minutes; stop it and retry")]
    StillRunning(PathBuf),
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a kubesup data dir (no kubesup.lock, pki/ or bin/ in it); refusing to delete it"
    )]
    NotKubesup(PathBuf),
    #[error(transparent)]
    Leave(#[from] crate::cmd::master::membership::LeaveError),
}

crate::errors::exit_via!(ResetError: Config, Setup, Leave);

/// `kubesup reset [--yes]`: shows the plan and asks, unless told not to.
pub fn run(a: ResetArgs, g: &Globals) -> Result<(), ResetError> {
    let paths = g.node_config(&a.node)?.paths;
    g.init_tracing(None)?;
    if !a.yes && !confirmed(&plan(&paths))? {
        println!("nothing changed");
        return Ok(());
    }
    crate::cmd::runtime()?.block_on(async {
        // Checked while the master still runs, so a refusal changes nothing.
        let leaving = crate::cmd::master::membership::prepare_leave(&paths, a.force).await?;
        reset_then(&paths, leaving).await
    })?;
    println!("reset {}", paths.data_dir().display());
    Ok(())
}

fn confirmed(plan: &[String]) -> Result<bool, ResetError> {
    use std::io::{IsTerminal, Write};
    println!("kubesup reset will:");
    for step in plan {
        println!("  - {step}");
    }
    if !std::io::stdin().is_terminal() {
        return Err(ResetError::NotConfirmed);
    }
    print!("Proceed? [y/N] ");
    std::io::stdout().flush().map_err(ResetError::Prompt)?;
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(ResetError::Prompt)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// What reset would remove, for the confirmation prompt.
pub fn plan(paths: &Paths) -> Vec<String> {
    let dir = paths.data_dir();
    let mut out = Vec::new();
    if paths.control_socket().exists() {
        out.push(format!("stop the kubesup running on {}", dir.display()));
    }
    if paths.pid_file().exists() {
        out.push("kill leftover components recorded in children.json".into());
    }
    if paths.containerd_state().exists() {
        out.push("stop the node's pods (containerd's containers and shims)".into());
    }
    if let Some(root) = kubelet_cgroup_root(paths) {
        out.push(format!("remove the kubelet cgroup root {root}"));
    }
    let mounts = mounts_below(dir);
    if !mounts.is_empty() {
        out.push(format!(
            "unmount {} mounts below {}",
            mounts.len(),
            dir.display()
        ));
    }
    out.push(
        "remove kube-proxy's iptables chains (kube-proxy --cleanup), if kube-proxy was fetched"
            .into(),
    );
    for i in INTERFACES {
        if Path::new("/sys/class/net").join(i).exists() {
            out.push(format!("delete network interface {i}"));
        }
    }
    if dir.exists() {
        out.push(format!(
            "delete {} (binaries, PKI, etcd data, logs)",
            dir.display()
        ));
    }
    out
}

/// Whether `dir` looks like a kubesup data dir (so a typo in `--data-dir` cannot delete an
/// unrelated directory).
fn is_kubesup_dir(paths: &Paths) -> bool {
    paths.lock_file().exists() || paths.pki().dir().exists() || paths.bin_root().exists()
}

pub async fn reset(paths: &Paths) -> Result<(), ResetError> {
    reset_then(paths, None).await
}

/// [`reset`], with a master's etcd member taken out of its cluster once the master is stopped
/// and before its data is deleted (a failed removal deletes nothing).
async fn reset_then(
    paths: &Paths,
    leaving: Option<crate::cmd::master::membership::Leaving>,
) -> Result<(), ResetError> {
    let dir = paths.data_dir();
    if dir.exists() && !is_kubesup_dir(paths) {
        return Err(ResetError::NotKubesup(dir.to_path_buf()));
    }
    // 1. A running kubesup stops its components in order; wait until its lock is free.
    if paths.control_socket().exists() {
        match control::request(&paths.control_socket(), "stop").await {
            Ok(_) => info!("asked the running kubesup to stop"),
            Err(e) => info!(error = %crate::errors::chain(&e), "no running kubesup answered"),
        }
    }
    if dir.exists() {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match DataDirLock::acquire(&paths.lock_file()) {
                Ok(lock) => {
                    drop(lock);
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => return Err(ResetError::StillRunning(paths.lock_file())),
            }
        }
    }
    // 2. Survivors of a kubesup that was killed.
    let swept = pidfile::sweep(&paths.pid_file(), Duration::from_secs(10));
    if swept > 0 {
        info!(count = swept, "killed leftover components");
    }
    // The member leaves the cluster through the others, now that its own etcd is stopped.
    if let Some(l) = leaving {
        l.remove().await?;
    }
    // 3. The pods.
    let killed = stop_pods(paths).await;
    if killed > 0 {
        info!(count = killed, "stopped pod processes and shims");
    }
    // 4. kubelet's mounts (volumes, its bind-mounted root dir), deepest first.
    for m in mounts_below(dir) {
        match nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => info!(mount = %m.display(), "unmounted"),
            Err(e) => {
                warn!(mount = %m.display(), error = %crate::errors::chain(&e), "cannot unmount")
            }
        }
    }
    // 5. kube-proxy's chains, by kube-proxy itself.
    if let Some(proxy) = fetched_binary(paths, "kube-proxy") {
        run_bounded(&proxy, &["--cleanup"]).await;
        remove_kubelet_chains().await;
    }
    // 6. Interfaces.
    for i in INTERFACES {
        if Path::new("/sys/class/net").join(i).exists()
            && let Some(ip) = crate::preflight::which("ip")
        {
            run_bounded(&ip, &["link", "delete", i]).await;
        }
    }
    // 7. The data dir.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| ResetError::Remove {
            path: dir.to_path_buf(),
            source,
        })?;
        info!(dir = %dir.display(), "deleted");
    }
    Ok(())
}

/// Kills the containers of kubesup's containerd (their init processes; the rest of each
/// container dies with its PID namespace) and that containerd's shims, waits (bounded) for them
/// to go, then removes the kubelet cgroup root if the config named one. Returns how many
/// processes were signalled.
async fn stop_pods(paths: &Paths) -> usize {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut pids = Vec::new();
    let tasks = paths
        .containerd_state()
        .join("io.containerd.runtime.v2.task");
    for ns in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
        for task in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let id = task.file_name().to_string_lossy().into_owned();
            let Some(pid) = std::fs::read_to_string(task.path().join("init.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            else {
                continue;
            };
            // Only if that PID still is this container: its cgroup path names the id.
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cgroup.contains(&id) {
                pids.push(pid);
            }
        }
    }
    let socket = paths.containerd_socket().display().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"));
        // `-address SOCKET`: this shim serves kubesup's containerd, nobody else's.
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"-address" && w[1] == socket.as_bytes());
        if is_shim && ours {
            pids.push(pid);
        }
    }
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(root) = kubelet_cgroup_root(paths) {
        remove_cgroup_root(&root).await;
    }
    pids.len()
}

/// The `cgroupRoot` of the KubeletConfiguration kubesup wrote, when it is not `/`.
fn kubelet_cgroup_root(paths: &Paths) -> Option<String> {
    let text = std::fs::read_to_string(paths.component_config(Component::Kubelet)).ok()?;
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).ok()?;
    let root = doc["cgroupRoot"].as_str()?.trim_end_matches('/');
    (!root.is_empty() && root != "/").then(|| root.to_string())
}

/// Kills what is left in a kubesup-created cgroup root and removes its cgroups (bounded).
async fn remove_cgroup_root(root: &str) {
    // Its last processes take a moment to leave once killed: a few seconds of attempts.
    let removed = Backoff::fixed(Duration::from_millis(100))
        .with_attempts(50)
        .warn_from(u32::MAX)
        .retry(
            "remove the kubelet cgroup root",
            || async {
                crate::cgroup::remove_once(root)
                    .then_some(())
                    .ok_or(CgroupBusy)
            },
            |_| false,
        )
        .await;
    match removed {
        Ok(()) => info!(root, "removed the kubelet cgroup root"),
        Err(_) => warn!(root, "cannot remove the kubelet cgroup root"),
    }
}

/// A cgroup under the kubelet root still holds a process or a child cgroup.
#[derive(Debug, thiserror::Error)]
#[error("the cgroup is still in use")]
struct CgroupBusy;

/// Deletes the rules that jump to kubelet's chains, then the chains, in every table.
async fn remove_kubelet_chains() {
    let Some(iptables) = crate::preflight::which("iptables") else {
        return;
    };
    for table in ["filter", "nat", "mangle"] {
        let Some(rules) = capture(&iptables, &["-t", table, "-S"]).await else {
            continue;
        };
        let ours = |chain: &str| KUBELET_CHAINS.contains(&chain);
        for rule in rules.lines() {
            let words: Vec<&str> = rule.split_whitespace().collect();
            let jumps_to_ours = words
                .windows(2)
                .any(|w| (w[0] == "-j" || w[0] == "-g") && ours(w[1]));
            // Rules inside our chains go with the chains; rules elsewhere that jump into
            // them must go first, or the chains cannot be deleted.
            if words.first() == Some(&"-A")
                && jumps_to_ours
                && !words.get(1).is_some_and(|c| ours(c))
            {
                let mut args = vec!["-t", table, "-D"];
                args.extend(&words[1..]);
                run_bounded(&iptables, &args).await;
            }
        }
        for chain in KUBELET_CHAINS {
            if rules.lines().any(|l| l == format!("-N {chain}")) {
                run_bounded(&iptables, &["-t", table, "-F", chain]).await;
                run_bounded(&iptables, &["-t", table, "-X", chain]).await;
            }
        }
    }
}

async fn capture(program: &Path, args: &[&str]) -> Option<String> {
    let exec = Exec {
        program: program.to_path_buf(),
        args: args.iter().map(Into::into).collect(),
        env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
        cwd: None,
    };
    let procs = Procs::global().ok()?;
    match tokio::time::timeout(Duration::from_secs(30), procs.output(exec)).await {
        Ok(Ok((_, out, _))) => Some(out),
        _ => None,
    }
}

/// Any version's fetched copy of a binary.
fn fetched_binary(paths: &Paths, name: &str) -> Option<PathBuf> {
    let bin = paths.bin_root();
    std::fs::read_dir(bin)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(name))
        .find(|p| p.exists())
}

async fn run_bounded(program: &Path, args: &[&str]) {
    if !program.exists() {
        return;
    }
    let exec = Exec {
        program: program.to_path_buf(),
        args: args.iter().map(Into::into).collect(),
        env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
        cwd: None,
    };
    let Ok(procs) = Procs::global() else { return };
    match tokio::time::timeout(Duration::from_secs(60), procs.output(exec)).await {
        Ok(Ok((exit, _, err))) => {
            info!(program = %program.display(), ?args, %exit, stderr = %err.trim(), "ran")
        }
        Ok(Err(e)) => {
            warn!(program = %program.display(), error = %crate::errors::chain(&e), "cannot run")
        }
        Err(_) => warn!(program = %program.display(), "timed out"),
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(unescape_mount)
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Bytes, not a str slice: a backslash before a multi-byte character must not panic.
        if b[i] == b'\\'
            && let Some(v) = b
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mount("/plain"), PathBuf::from("/plain"));
        // Not an escape: kept as it is, and no panic on a multi-byte character after the `\`.
        assert_eq!(unescape_mount("/a\\xy€"), PathBuf::from("/a\\xy€"));
        assert_eq!(unescape_mount("/a\\99"), PathBuf::from("/a\\99"));
    }

    #[tokio::test]
    async fn refuses_a_directory_that_is_not_a_kubesup_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        let err = reset(&Paths::new(dir.path())).await.unwrap_err();
        assert!(matches!(err, ResetError::NotKubesup(_)));
        assert!(dir.path().join("precious").exists());
    }

    #[tokio::test]
    async fn twice_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("pki")).unwrap();
        let p = Paths::new(&data);
        reset(&p).await.unwrap();
        assert!(!data.exists());
        reset(&p).await.unwrap();
    }
}
