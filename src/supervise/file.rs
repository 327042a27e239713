//! `kubesup supervise FILE`: supervise an arbitrary list of processes, described in YAML, with
//! the same engine that runs the Kubernetes components. Operators use it for extra node
//! daemons; the supervision tests and the benchmark use it with the fake component.
//!
//! ```yaml
//! children:
//!   - name: web
//!     command: [/usr/bin/python3, -m, http.server, "8080"]
//!     env: {PYTHONUNBUFFERED: "1"}
//!     depends-on: []
//!     probe: {tcp: "127.0.0.1:8080"}     # or {http: URL}, {unix: PATH}
//!     grace-period: 5s
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ChildSpec, Exec, Policy, Probe, ProbeSpec};
use crate::paths::Paths;
use crate::retry::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    children: Vec<Child>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Child {
    name: String,
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    depends_on: Vec<String>,
    probe: Option<ProbeDef>,
    #[serde(default)]
    config_files: Vec<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    grace_period: Option<Duration>,
    /// The grace period after failed liveness probes (the shorter of the two applies).
    #[serde(default, with = "humantime_serde")]
    unhealthy_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    backoff_max: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    stable_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    startup_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    probe_period: Option<Duration>,
    liveness_failures: Option<u32>,
}

/// Exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProbeDef {
    tcp: Option<SocketAddr>,
    unix: Option<PathBuf>,
    http: Option<String>,
}

/// Reads the file into child specs, logging each child under `paths.log_dir()`.
pub fn load(path: &Path, paths: &Paths) -> Result<Vec<ChildSpec>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| FileError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let file: File = serde_yaml_ng::from_str(&text).map_err(|source| FileError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let mut specs = Vec::new();
    for c in file.children {
        let Some((program, args)) = c.command.split_first() else {
            return Err(invalid(format!("child {}: command is empty", c.name)));
        };
        let exec = Exec {
            program: program.into(),
            args: args.iter().map(Into::into).collect(),
            env: c
                .env
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: c.cwd,
        };
        let mut spec = ChildSpec::new(c.name.clone(), exec);
        spec.depends_on = c.depends_on;
        spec.config_files = c.config_files;
        spec.log_file = Some(paths.component_log(&c.name));
        let d = Policy::default();
        spec.policy = Policy {
            grace_period: c.grace_period.unwrap_or(d.grace_period),
            unhealthy_grace: c.unhealthy_grace.unwrap_or(d.unhealthy_grace),
            backoff: Backoff {
                max: c.backoff_max.unwrap_or(d.backoff.max),
                ..d.backoff
            },
            stable_after: c.stable_after.unwrap_or(d.stable_after),
            startup_timeout: c.startup_timeout.unwrap_or(d.startup_timeout),
            liveness_failures: c.liveness_failures.unwrap_or(d.liveness_failures),
            has_probe: c.probe.is_some(),
        };
        spec.probe = match c.probe {
            None => None,
            Some(p) => {
                let probe = match (p.tcp, p.unix, p.http) {
                    (Some(a), None, None) => Probe::Tcp(a),
                    (None, Some(u), None) => Probe::Unix(u),
                    (None, None, Some(url)) => Probe::Http { url, tls: None },
                    _ => {
                        return Err(invalid(format!(
                            "child {}: probe needs exactly one of tcp, unix or http",
                            c.name
                        )));
                    }
                };
                let mut s = ProbeSpec::new(probe);
                if let Some(period) = c.probe_period {
                    s.period = period;
                }
                Some(s)
            }
        };
        specs.push(spec);
    }
    Ok(specs)
}
