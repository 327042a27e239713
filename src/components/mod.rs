//! One file per component: how to build its argv and config files for a Kubernetes version, and
//! how to tell that it is ready.
//!
//! Components are an enum, never strings: a typo in a component name is a compile error.
//! Builders are pure: they return a [`Plan`] (the child spec plus the files it reads), and
//! [`write_files`] writes those when the caller decides, so unit tests can check every flag
//! without touching disk.
//!
//! Invariants:
//! - no flag that the chosen version removed is ever emitted ([`flags`] holds the table);
//! - nothing listens on a non-loopback address unless other nodes must reach it (the API
//!   server, etcd's client and peer ports on the advertise address, the kubelet API);
//! - operator `extra-args` come last, so they win (Go's flag package keeps the last value).

pub mod cni;
pub mod flags;

mod apiserver;
mod containerd;
mod controller_manager;
mod etcd;
mod flannel;
mod kube_proxy;
mod kubelet;
mod scheduler;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::fsutil;
use crate::model::KubeVersion;
use crate::model::{Component, NodeRole};
use crate::retry::Backoff;
use crate::supervise::{ChildSpec, Exec, Policy, ProbeSpec};

pub use containerd::{CniBinDir, cni_bin_dir, lacks_cap_sys_resource, os_cni_plugin_dir};
pub use etcd::{EtcdCluster, flannel_uses_etcd_v2};

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("no binary for {0} was resolved")]
    NoBinary(Component),
    #[error("cannot render the config of {component}")]
    Render {
        component: Component,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error(transparent)]
    Write(#[from] fsutil::FsError),
}

/// A binary to run: `argv_prefix` goes first (`kube-apiserver` for a hyperkube binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRef {
    pub path: PathBuf,
    pub argv_prefix: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binaries(pub BTreeMap<Component, BinaryRef>);

/// What a builder needs to know about the node.
#[derive(Debug, Clone)]
pub struct NodeContext<'a> {
    pub cfg: &'a Config,
    pub role: NodeRole,
    /// This node's address (what other nodes reach it on, and the kubelet's node IP).
    pub advertise: IpAddr,
    /// API server URLs (on a master, its own).
    pub api_servers: Vec<String>,
    /// etcd client URLs (flanneld's backend).
    pub etcd_servers: Vec<String>,
    /// The etcd and flannel releases the manifest chose (`v3.4.23`, `v0.13.0`).
    pub etcd_version: String,
    pub flannel_version: String,
    /// How a master's etcd member takes part in its cluster.
    pub etcd_cluster: EtcdCluster,
}

/// A file a component reads, as it must be on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
}

/// One component, ready to supervise.
#[derive(Debug, Clone)]
pub struct Plan {
    pub component: Component,
    pub spec: ChildSpec,
    pub files: Vec<GeneratedFile>,
}

/// Plans every component of the node.
pub fn plan(ctx: &NodeContext<'_>, bins: &Binaries) -> Result<Vec<Plan>, ComponentError> {
    ctx.role
        .components(ctx.cfg.network)
        .into_iter()
        .map(|c| {
            let bin = bins.0.get(&c).ok_or(ComponentError::NoBinary(c))?;
            let (args, files, probe, deps) = match c {
                Component::Etcd => etcd::build(ctx),
                Component::KubeApiserver => apiserver::build(ctx),
                Component::KubeControllerManager => controller_manager::build(ctx),
                Component::KubeScheduler => scheduler::build(ctx)?,
                Component::Containerd => containerd::build(ctx),
                Component::Kubelet => kubelet::build(ctx)?,
                Component::KubeProxy => kube_proxy::build(ctx)?,
                Component::Flanneld => flannel::build(ctx),
            };
            Ok(assemble(ctx, c, bin, args, files, probe, deps))
        })
        .collect()
}

/// Writes every plan's files; a file whose contents are already right is left alone, so its
/// mtime (and a running component) is undisturbed.
pub fn write_files(files: &[GeneratedFile]) -> Result<(), ComponentError> {
    for f in files {
        if std::fs::read_to_string(&f.path).ok().as_deref() != Some(f.contents.as_str()) {
            fsutil::write_atomic(&f.path, f.contents.as_bytes(), f.mode)?;
        }
    }
    Ok(())
}

/// What a builder returns: argv (without the binary), files, probe, dependencies.
type Built = (
    Vec<String>,
    Vec<GeneratedFile>,
    Option<ProbeSpec>,
    Vec<Component>,
);

fn assemble(
    ctx: &NodeContext<'_>,
    c: Component,
    bin: &BinaryRef,
    mut args: Vec<String>,
    files: Vec<GeneratedFile>,
    probe: Option<ProbeSpec>,
    deps: Vec<Component>,
) -> Plan {
    let cfg = ctx.cfg;
    if let Some(extra) = cfg.extra_args.get(&c) {
        args.extend(extra.iter().cloned());
    }
    let mut argv: Vec<std::ffi::OsString> = bin.argv_prefix.iter().map(Into::into).collect();
    argv.extend(args.into_iter().map(Into::into));
    let exec = Exec {
        program: bin.path.clone(),
        args: argv,
        // An explicit environment: nothing of kubesup's own leaks into a component.
        env: vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )],
        cwd: Some(PathBuf::from("/")),
    };
    let s = &cfg.supervisor;
    let grace = match c {
        // Both write to disk on the way down: give them time to finish cleanly.
        Component::Etcd | Component::KubeApiserver | Component::Containerd => {
            s.grace_period.max(Duration::from_secs(30))
        }
        _ => s.grace_period,
    };
    let mut spec = ChildSpec::new(c.name(), exec);
    spec.depends_on = deps.iter().map(|d| d.name().to_string()).collect();
    let d = Policy::default();
    spec.policy = Policy {
        backoff: Backoff {
            max: s.backoff_max,
            ..d.backoff
        },
        stable_after: s.stable_after,
        grace_period: grace,
        unhealthy_grace: d.unhealthy_grace,
        liveness_failures: s.liveness_failures,
        startup_timeout: Duration::from_secs(180),
        has_probe: probe.is_some(),
    };
    spec.probe = probe;
    spec.config_files = files.iter().map(|f| f.path.clone()).collect();
    spec.log_file = Some(cfg.paths.component_log(c.name()));
    spec.log_max_bytes = s.log_max_bytes;
    spec.log_keep = s.log_keep;
    Plan {
        component: c,
        spec,
        files,
    }
}

/// `--name=value`.
fn flag(name: &str, value: impl fmt::Display) -> String {
    format!("--{name}={value}")
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// `https://host:port`, bracketing IPv6.
pub fn https_url(ip: IpAddr, port: u16) -> String {
    format!("https://{}", host_port(ip, port))
}

/// `host:port`, bracketing IPv6.
pub fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

fn version<'a>(ctx: &NodeContext<'a>) -> &'a KubeVersion {
    &ctx.cfg.kube_version
}

fn yaml(component: Component, value: &serde_json::Value) -> Result<String, ComponentError> {
    serde_yaml_ng::to_string(value).map_err(|source| ComponentError::Render { component, source })
}

#[cfg(test)]
mod tests;
