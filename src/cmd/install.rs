//! `kubesup install master|worker` and `kubesup uninstall`: a manual install without a
//! package. It writes the config (and a worker's token, 0600), the systemd unit, and a record
//! of what it wrote; it then enables and starts the unit when systemd is running, and otherwise
//! says what to run. `uninstall` stops and disables the unit and removes exactly the files the
//! record lists, if they are still what install wrote; it never touches the data dir
//! (`kubesup reset` does that).
//!
//! Everything is checked before anything is written: a bad flag or token is exit 2 with
//! nothing on disk, and an existing config that differs is kept unless `--overwrite` is given
//! (and then saved as `config.yaml.bak`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::cli::{InstallCommand, UninstallArgs};
use crate::cmd::{Globals, SetupError};
use crate::config::{ConfigError, Problems, RawConfig};
use crate::fsutil;
use crate::model::Role;

const MASTER_UNIT: &str = include_str!("../../packaging/kubesup-master.service");
const WORKER_UNIT: &str = include_str!("../../packaging/kubesup-worker.service");
const CONFIG: &str = "etc/kubesup/config.yaml";
const TOKEN: &str = "etc/kubesup/token";
const RECORD: &str = "etc/kubesup/installed.json";
const UNIT_DIR: &str = "etc/systemd/system";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(
        "{path} exists and differs from what this install would write; pass --overwrite to replace it (the old file is kept as {path}.bak)"
    )]
    Exists { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] fsutil::FsError),
    #[error("cannot run `systemctl {args}`")]
    SystemctlRun {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`systemctl {args}` failed: {stderr}")]
    Systemctl { args: String, stderr: String },
    #[error("the install record {path} is unreadable ({reason}); remove the files by hand")]
    Record {
        path: PathBuf,
        // In the message, not chained: the advice reads best after the reason.
        reason: RecordError,
    },
}

/// Why the install record cannot be used ([`InstallError::Record`] prints it in its message).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Parse(serde_json::Error),
}

fn unit_name(role: Role) -> String {
    format!("kubesup-{}.service", role.name())
}

/// What install wrote, so uninstall removes exactly that.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    role: Role,
    /// Absolute paths (as seen below the install root) and the SHA-256 of what was written.
    files: Vec<(PathBuf, String)>,
}

crate::errors::exit_via!(InstallError: Config, Setup);

/// `kubesup install master|worker`.
pub fn run(cmd: InstallCommand, g: &Globals) -> Result<(), InstallError> {
    g.init_tracing(None)?;
    install(request(cmd, g)?)
}

/// `kubesup uninstall`.
pub fn run_uninstall(a: UninstallArgs, g: &Globals) -> Result<(), InstallError> {
    g.init_tracing(None)?;
    uninstall(&a.root)
}

/// The role's flags as an install request: config keys go to the config file, the rest to the
/// unit's command line.
fn request(cmd: InstallCommand, g: &Globals) -> Result<Request, InstallError> {
    let (role, common, ignore, force, join, token, token_file, opts) = match cmd {
        InstallCommand::Master { args, opts } => (
            Role::Master,
            args.common,
            args.ignore_preflight,
            args.force,
            None,
            None,
            None,
            opts,
        ),
        InstallCommand::Worker { args, opts } => (
            Role::Worker,
            args.common,
            args.ignore_preflight,
            false,
            args.join,
            args.token,
            args.token_file,
            opts,
        ),
    };
    let mut raw = g.raw_config(&common)?;
    if join.is_some() {
        raw.join.url = join;
    }
    let token = match (token, token_file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| invalid("token-file", format!("cannot read {}: {e}", f.display())))?,
        ),
        (None, None) => None,
    };
    let mut extra_args: Vec<String> = ignore
        .into_iter()
        .map(|n| format!("--ignore-preflight={n}"))
        .collect();
    if force {
        extra_args.push("--force".into());
    }
    Ok(Request {
        role,
        raw,
        extra_args,
        token,
        root: opts.root,
        overwrite: opts.overwrite,
    })
}

/// An install request, as the CLI gathered it.
pub struct Request {
    pub role: Role,
    /// The node's configuration from flags, environment and `--config`.
    pub raw: RawConfig,
    /// Flags that are not config keys, appended to the unit's command line.
    pub extra_args: Vec<String>,
    /// A worker's join token (written to /etc/kubesup/token, 0600).
    pub token: Option<String>,
    /// `/` normally; a staging directory for image builds (nothing is started then).
    pub root: PathBuf,
    pub overwrite: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> InstallError {
    let mut p = Problems::default();
    p.push(field, message);
    InstallError::Config(ConfigError::Invalid(p))
}

fn sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn systemd_running(root: &Path) -> bool {
    root == Path::new("/") && Path::new("/run/systemd/system").exists()
}

fn systemctl(args: &[&str]) -> Result<(), InstallError> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|source| InstallError::SystemctlRun {
            args: args.join(" "),
            source,
        })?;
    if !out.status.success() {
        return Err(InstallError::Systemctl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The packaged unit, with this binary's path and the non-config flags on its command line.
fn unit_text(role: Role, exe: &Path, extra_args: &[String]) -> String {
    let template = match role {
        Role::Master => MASTER_UNIT,
        Role::Worker => WORKER_UNIT,
    };
    template
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=/usr/bin/kubesup") {
            Some(rest) => {
                let mut line = format!("ExecStart={}{rest}", exe.display());
                for a in extra_args {
                    line.push(' ');
                    line.push_str(a);
                }
                line
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `kubesup install ROLE`.
pub fn install(req: Request) -> Result<(), InstallError> {
    let Request {
        role,
        mut raw,
        extra_args,
        token,
        root,
        overwrite,
    } = req;
    // Check everything first.
    let token_path = Path::new("/").join(TOKEN);
    if role == Role::Worker {
        if raw.join.url.is_none() {
            return Err(invalid(
                "join",
                "a worker needs the master's join API: pass --join https://MASTER:9443",
            ));
        }
        if let Some(t) = &token {
            crate::join::token::Token::parse(t).map_err(|e| invalid("token", e.to_string()))?;
            raw.join.token_file = Some(token_path.clone());
        } else if raw.join.token_file.is_none() {
            return Err(invalid(
                "token",
                "a worker needs a join token: pass --token, --token-file or KUBESUP_TOKEN",
            ));
        }
    }
    let cfg = raw.validate()?;
    if role == Role::Master {
        cfg.require_advertise()?;
    }
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|source| InstallError::Write {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?;
    let body = serde_yaml_ng::to_string(&raw).map_err(|e| invalid("config", e.to_string()))?;
    let config_text = format!(
        "# Written by `kubesup install {}`; check changes with `kubesup config check FILE`.\n{body}",
        role.name()
    );
    let unit_path = Path::new("/").join(UNIT_DIR).join(unit_name(role));
    let mut files: Vec<(PathBuf, String, u32)> = vec![
        (Path::new("/").join(CONFIG), config_text, 0o600),
        (unit_path.clone(), unit_text(role, &exe, &extra_args), 0o644),
    ];
    if let Some(t) = &token {
        files.push((token_path, format!("{}\n", t.trim()), 0o600));
    }
    let below = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    for (path, text, _) in &files {
        let target = below(path);
        if let Ok(existing) = std::fs::read_to_string(&target)
            && existing != *text
            && !overwrite
        {
            return Err(InstallError::Exists { path: target });
        }
    }

    // Then write: every file atomically, the record last.
    for (path, text, mode) in &files {
        let target = below(path);
        if let Ok(existing) = std::fs::read(&target)
            && existing != text.as_bytes()
        {
            let bak = PathBuf::from(format!("{}.bak", target.display()));
            fsutil::write_atomic(&bak, &existing, 0o600)?;
        }
        fsutil::write_atomic(&target, text.as_bytes(), *mode)?;
        println!("wrote {}", target.display());
    }
    let record = Record {
        role,
        files: files.iter().map(|(p, t, _)| (p.clone(), sha(t))).collect(),
    };
    let json =
        serde_json::to_string_pretty(&record).map_err(|e| invalid("record", e.to_string()))?;
    fsutil::write_atomic(
        &below(Path::new("/").join(RECORD).as_path()),
        json.as_bytes(),
        0o600,
    )?;

    let unit = unit_name(role);
    if systemd_running(&root) {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &unit])?;
        info!(unit, "enabled and started");
        println!(
            "started {unit}: follow it with `journalctl -u {unit} -f`, check it with `kubesup status`"
        );
    } else if root != Path::new("/") {
        println!("installed below {}; nothing was started", root.display());
    } else {
        println!(
            "systemd is not running here: start kubesup with `{} {} --config /etc/kubesup/config.yaml`, or use contrib/openrc/kubesup-{} on OpenRC",
            exe.display(),
            role.name(),
            role.name()
        );
    }
    Ok(())
}

/// `kubesup uninstall`: stops and disables the unit, removes what install wrote (if
/// unchanged since), and leaves the data dir alone.
pub fn uninstall(root: &Path) -> Result<(), InstallError> {
    let record_path = root.join(RECORD);
    let text = match std::fs::read_to_string(&record_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing was installed by `kubesup install`; nothing to do");
            return Ok(());
        }
        Err(e) => {
            return Err(InstallError::Record {
                path: record_path,
                reason: RecordError::Read(e),
            });
        }
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| InstallError::Record {
        path: record_path.clone(),
        reason: RecordError::Parse(e),
    })?;
    let unit = unit_name(record.role);
    if systemd_running(root) {
        // Stopping a unit that is not running is fine; a missing unit is not an error here.
        let _ = systemctl(&["disable", "--now", &unit]);
    }
    for (path, digest) in &record.files {
        let target = root.join(path.strip_prefix("/").unwrap_or(path));
        match std::fs::read_to_string(&target) {
            Ok(t) if sha(&t) == *digest => {
                std::fs::remove_file(&target).map_err(|source| InstallError::Write {
                    path: target.clone(),
                    source,
                })?;
                println!("removed {}", target.display());
            }
            Ok(_) => println!("kept {} (changed since install)", target.display()),
            Err(_) => {}
        }
    }
    std::fs::remove_file(&record_path).map_err(|source| InstallError::Write {
        path: record_path.clone(),
        source,
    })?;
    // /etc/kubesup, which install made to hold the config and the record, goes too once empty
    // (remove_dir refuses a directory that is not): an operator's own files there keep it.
    if let Some(dir) = record_path.parent()
        && std::fs::remove_dir(dir).is_ok()
    {
        println!("removed {}", dir.display());
    }
    if systemd_running(root) {
        let _ = systemctl(&["daemon-reload"]);
    }
    println!("uninstalled {unit}; the data dir is kept: `kubesup reset` removes it");
    Ok(())
}
