//! kube-scheduler, configured through its versioned KubeSchedulerConfiguration file.

use serde_json::json;

use super::{
    Built, Component, ComponentError, GeneratedFile, NodeContext, flag, flags, path_str, version,
    yaml,
};
use crate::paths::KubeconfigUser;
use crate::supervise::{Probe, ProbeSpec, TlsProbe};

pub(super) fn build(ctx: &NodeContext<'_>) -> Result<Built, ComponentError> {
    let cfg = ctx.cfg;
    let v = version(ctx);
    let kubeconfig = path_str(&cfg.paths.kubeconfig(KubeconfigUser::Scheduler));
    let legacy = flags::legacy_health_ports(v);
    let insecure = cfg.ports.scheduler_insecure;
    let mut doc = json!({
        "apiVersion": flags::scheduler_config_api(v),
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "leaderElection": {"leaderElect": true},
    });
    if legacy {
        // v1beta1 only: with --config, v1.20 ignores --port/--address and takes the insecure
        // health endpoint from here. Loopback only.
        doc["healthzBindAddress"] = json!(format!("127.0.0.1:{insecure}"));
        doc["metricsBindAddress"] = json!(format!("127.0.0.1:{insecure}"));
    }
    let file = cfg.paths.component_config(Component::KubeScheduler);
    let args = vec![
        flag("config", path_str(&file)),
        flag("authentication-kubeconfig", &kubeconfig),
        flag("authorization-kubeconfig", &kubeconfig),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", cfg.ports.scheduler),
    ];
    let probe = if legacy {
        Probe::Http {
            url: format!("http://127.0.0.1:{insecure}/healthz"),
            tls: None,
        }
    } else {
        // Self-signed loopback serving cert; see controller_manager.rs.
        Probe::Http {
            url: format!("https://127.0.0.1:{}/healthz", cfg.ports.scheduler),
            tls: Some(TlsProbe {
                ca: None,
                client: None,
            }),
        }
    };
    let files = vec![GeneratedFile {
        path: file,
        contents: yaml(Component::KubeScheduler, &doc)?,
        mode: 0o644,
    }];
    Ok((
        args,
        files,
        Some(ProbeSpec::new(probe)),
        vec![Component::KubeApiserver],
    ))
}
