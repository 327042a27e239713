//! Checks run before a node writes or starts anything. Each failure is one line naming the
//! check, what is wrong, and the fix; `--ignore-preflight NAME` (or `all`) skips a check.
//!
//! Checks: `root`, `ports`, `data-dir` (writable, not noexec: binaries are executed from it),
//! and for nodes that run kubelet: `iptables`, `cgroups`, `swap`, `kernel` (bridge netfilter and
//! IP forwarding, which kube-proxy and pod networking need), and `vxlan` where flanneld runs
//! with its vxlan backend (the kernel makes a vxlan device: [`vxlan`]).

mod vxlan;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::model::{FlannelBackend, Network};

pub use vxlan::VxlanError;

#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct PreflightError(pub Vec<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Root,
    Ports,
    DataDir,
    Iptables,
    Cgroups,
    Swap,
    Kernel,
    Vxlan,
}

impl Check {
    pub const ALL: [Check; 8] = [
        Self::Root,
        Self::Ports,
        Self::DataDir,
        Self::Iptables,
        Self::Cgroups,
        Self::Swap,
        Self::Kernel,
        Self::Vxlan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Ports => "ports",
            Self::DataDir => "data-dir",
            Self::Iptables => "iptables",
            Self::Cgroups => "cgroups",
            Self::Swap => "swap",
            Self::Kernel => "kernel",
            Self::Vxlan => "vxlan",
        }
    }
}

/// Runs the checks for a node; `ports` are the ones its components will listen on, with the
/// config key that sets each; `runs_kubelet` adds the node checks.
pub fn run(
    cfg: &Config,
    ports: &[(&str, u16)],
    runs_kubelet: bool,
    ignore: &[String],
) -> Result<(), PreflightError> {
    if let Some(bad) = ignore
        .iter()
        .find(|i| *i != "all" && !Check::ALL.iter().any(|c| c.name() == i.as_str()))
    {
        let names: Vec<_> = Check::ALL.iter().map(|c| c.name()).collect();
        return Err(PreflightError(vec![format!(
            "--ignore-preflight {bad:?}: unknown check; use one of {}, or all",
            names.join(", ")
        )]));
    }
    let skip = |c: Check| ignore.iter().any(|i| i == "all" || i == c.name());
    let mut problems = Vec::new();
    let mut fail = |c: Check, msg: String| {
        problems.push(format!(
            "preflight {}: {msg} (skip with --ignore-preflight {})",
            c.name(),
            c.name()
        ))
    };

    if !skip(Check::Root) && !nix::unistd::geteuid().is_root() {
        fail(Check::Root, "kubesup must run as root to start Kubernetes components; run it with sudo or as a root service".into());
    }
    if !skip(Check::Ports) {
        for (key, port) in ports {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port));
            if let Err(e) = TcpListener::bind(addr) {
                fail(
                    Check::Ports,
                    format!(
                        "port {port} ({key}) is not free ({e}); stop what listens on it or set another {key}"
                    ),
                );
            }
        }
    }
    if !skip(Check::DataDir)
        && let Err(e) = data_dir_ok(cfg.paths.data_dir())
    {
        // One line per problem in the report: the typed error, rendered with its cause.
        fail(Check::DataDir, crate::errors::chain(&e));
    }
    if runs_kubelet {
        if !skip(Check::Iptables) && which("iptables").is_none() {
            fail(
                Check::Iptables,
                "iptables is not installed; kube-proxy needs it (apt-get install iptables)".into(),
            );
        }
        if !skip(Check::Cgroups) && !cgroups_ok() {
            fail(
                Check::Cgroups,
                "no cpu and memory cgroup controllers under /sys/fs/cgroup; kubelet needs them"
                    .into(),
            );
        }
        if !skip(Check::Swap) && swap_on() {
            fail(Check::Swap, "swap is on; kubelet runs with failSwapOn=false, but memory limits are then unreliable: turn it off with swapoff -a".into());
        }
        if !skip(Check::Kernel) {
            if read_trim("/proc/sys/net/ipv4/ip_forward").as_deref() != Some("1") {
                fail(Check::Kernel, "net.ipv4.ip_forward is 0; pods cannot reach other nodes: sysctl -w net.ipv4.ip_forward=1".into());
            }
            if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
                fail(Check::Kernel, "bridge netfilter is not loaded; Services will not work for pods on a bridge: modprobe br_netfilter".into());
            }
        }
        if !skip(Check::Vxlan) && runs_vxlan(cfg) {
            let started = std::time::Instant::now();
            match vxlan::check() {
                Ok(()) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "preflight vxlan: the kernel makes a vxlan device")
                }
                Err(e) => fail(Check::Vxlan, vxlan_problem(&e)),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PreflightError(problems))
    }
}

/// Whether flanneld runs here with the vxlan backend, on a node that runs kubelet (the caller
/// knows that part): the only case that needs a vxlan device.
fn runs_vxlan(cfg: &Config) -> bool {
    cfg.network == Network::Flannel && cfg.flannel.backend == FlannelBackend::Vxlan
}

/// The `vxlan` check's line: what failed, with its cause, then the fix.
fn vxlan_problem(e: &VxlanError) -> String {
    format!("{}; {}", crate::errors::chain(e), e.fix())
}

/// Why the data dir cannot hold kubesup's state and binaries (the `data-dir` check).
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "{dir} is on a filesystem mounted noexec; kubesup runs its binaries from the data dir: choose another --data-dir"
    )]
    NoExec { dir: PathBuf },
    #[error("{dir} is on a read-only filesystem; choose another --data-dir")]
    ReadOnly { dir: PathBuf },
    #[error("cannot inspect {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{path} is not writable; choose another --data-dir or fix its permissions")]
    NotWritable { path: PathBuf },
}

fn data_dir_ok(dir: &Path) -> Result<(), DataDirError> {
    // The dir may not exist yet: check the nearest existing ancestor.
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(existing) {
        Ok(s) if s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) => {
            return Err(DataDirError::NoExec {
                dir: dir.to_path_buf(),
            });
        }
        Ok(s) if s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => {
            return Err(DataDirError::ReadOnly {
                dir: dir.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(source) => {
            return Err(DataDirError::Inspect {
                path: existing.to_path_buf(),
                source,
            });
        }
    }
    if nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(DataDirError::NotWritable {
            path: existing.to_path_buf(),
        });
    }
    Ok(())
}

fn cgroups_ok() -> bool {
    let v1 =
        Path::new("/sys/fs/cgroup/cpu").exists() && Path::new("/sys/fs/cgroup/memory").exists();
    let v2 = read_trim("/sys/fs/cgroup/cgroup.controllers")
        .map(|c| c.contains("cpu") && c.contains("memory"))
        .unwrap_or(false);
    v1 || v2
}

fn swap_on() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false)
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Finds a program on the standard sbin/bin path (kubesup's own PATH may be minimal under a
/// service manager).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn config(yaml: &str) -> Config {
        RawConfig::from_yaml(yaml).unwrap().validate().unwrap()
    }

    /// Only flannel with the vxlan backend needs a vxlan device; host-gw and `network: none`
    /// run without one.
    #[test]
    fn the_vxlan_check_applies_to_flannel_with_vxlan_only() {
        assert!(runs_vxlan(&config("")), "the default is flannel with vxlan");
        assert!(!runs_vxlan(&config("flannel: {backend: host-gw}")));
        assert!(!runs_vxlan(&config("network: none")));
    }

    /// A failed vxlan check is one line: what failed, the kernel's reason, and both fixes.
    #[test]
    fn a_failed_vxlan_check_is_one_line_with_the_fix() {
        let e = VxlanError::Create(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        let line = vxlan_problem(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("the kernel cannot make a vxlan device: Operation not supported"),
            "{line}"
        );
        assert!(line.contains("modprobe vxlan"), "{line}");
        assert!(line.contains("flannel.backend: host-gw"), "{line}");
    }

    /// Through `run`: the check runs for a node with kubelet and flannel's vxlan, passes on
    /// this kernel (as root), and `--ignore-preflight vxlan` is a known name.
    #[test]
    fn run_includes_the_vxlan_check_where_flanneld_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RawConfig {
            data_dir: dir.path().join("d"),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let others: Vec<String> = ["root", "iptables", "cgroups", "swap", "kernel"]
            .map(String::from)
            .to_vec();
        let got = run(&cfg, &[], true, &others);
        if nix::unistd::geteuid().is_root() {
            got.unwrap();
        } else {
            let e = got.unwrap_err();
            assert_eq!(e.0.len(), 1, "{e}");
            assert!(
                e.0[0].starts_with("preflight vxlan: cannot create a throwaway network namespace"),
                "{e}"
            );
            assert!(
                e.0[0].ends_with("(skip with --ignore-preflight vxlan)"),
                "{e}"
            );
        }
        let mut skip = others;
        skip.push("vxlan".into());
        run(&cfg, &[], true, &skip).unwrap();
    }

    #[test]
    fn a_busy_port_is_one_line_naming_the_key_and_can_be_skipped() {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut raw = RawConfig::default();
        let dir = tempfile::tempdir().unwrap();
        raw.data_dir = dir.path().join("d");
        let cfg = raw.validate().unwrap();
        let err = run(&cfg, &[("api-port", port)], false, &["root".into()]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with(&format!(
            "preflight ports: port {port} (api-port) is not free"
        )));
        assert!(err.0[0].ends_with("(skip with --ignore-preflight ports)"));
        run(
            &cfg,
            &[("api-port", port)],
            false,
            &["ports".into(), "root".into()],
        )
        .unwrap();
        assert!(
            run(&cfg, &[], false, &["bogus".into()]).unwrap_err().0[0].contains("unknown check")
        );
    }
}
