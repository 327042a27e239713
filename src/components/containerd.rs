//! containerd with a config, root, state and socket of its own under the data dir, so it
//! never collides with an OS containerd or another node's on the same machine.

use std::path::{Path, PathBuf};

use super::{Built, GeneratedFile, NodeContext, path_str};
use crate::config::Config;
use crate::supervise::{Probe, ProbeSpec};

/// True when this process lacks CAP_SYS_RESOURCE. containerd then must not ask runc for a
/// negative `oom_score_adj` for pod sandboxes: the kernel refuses it and runc fails with
/// "can't get final child's PID from pipe: EOF" (TESTBED.md).
pub fn lacks_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) == 0)
}

/// The dir containerd looks in for CNI plugins (its CRI `bin_dir`), and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniBinDir {
    /// `containerd.cni-bin-dir`: the operator's. kubesup fetches nothing into it and links
    /// nothing there; it only checks that the plugins the CNI config names are in it.
    Operator(PathBuf),
    /// kubesup's own, `bin/VERSION/cni/`: the fetched plugins (flannel's always, the runtime's
    /// with the runtime) and links to the OS's.
    Kubesup(PathBuf),
}

impl CniBinDir {
    pub fn path(&self) -> &Path {
        match self {
            Self::Operator(p) | Self::Kubesup(p) => p,
        }
    }
}

/// Which CNI bin dir this node's containerd uses. kubesup's own unless the operator chose one:
/// one dir holding every plugin the CNI config names, whichever of them the OS provides.
pub fn cni_bin_dir(cfg: &Config) -> CniBinDir {
    match &cfg.containerd.cni_bin_dir {
        Some(dir) => CniBinDir::Operator(dir.clone()),
        None => CniBinDir::Kubesup(crate::fetch::kubesup_cni_bin_dir(
            &cfg.paths,
            &cfg.kube_version,
        )),
    }
}

/// Where the OS keeps the runtime's CNI plugins, if anywhere: Debian installs them in
/// /usr/lib/cni, upstream's convention is /opt/cni/bin.
pub fn os_cni_plugin_dir() -> Option<PathBuf> {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .into_iter()
        .map(Path::new)
        .find(|d| d.join("bridge").is_file())
        .map(Path::to_path_buf)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub(super) fn build(ctx: &NodeContext<'_>) -> Built {
    let cfg = ctx.cfg;
    let p = &cfg.paths;
    let sock = p.containerd_socket();
    let restrict = cfg
        .containerd
        .restrict_oom_score_adj
        .unwrap_or_else(lacks_cap_sys_resource);
    let file = p.containerd_dir().join("config.toml");
    let contents = format!(
        r#"# Written by kubesup; edit the kubesup config instead.
version = 2
root = {root}
state = {state}

[grpc]
  address = {sock}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  restrict_oom_score_adj = {restrict}

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
"#,
        root = toml_str(&path_str(&p.containerd_root())),
        state = toml_str(&path_str(&p.containerd_state())),
        sock = toml_str(&path_str(&sock)),
        ttrpc = toml_str(&format!("{}.ttrpc", sock.display())),
        opt = toml_str(&path_str(&p.containerd_dir().join("opt"))),
        sandbox = toml_str(&cfg.containerd.sandbox_image),
        cni_bin = toml_str(&path_str(cni_bin_dir(cfg).path())),
        cni_conf = toml_str(&path_str(&p.cni_conf_dir())),
    );
    let args = vec!["--config".to_string(), path_str(&file)];
    let probe = ProbeSpec::new(Probe::Unix(sock));
    let files = vec![GeneratedFile {
        path: file,
        contents,
        mode: 0o644,
    }];
    (args, files, Some(probe), Vec::new())
}
