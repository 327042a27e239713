//! `kubesup certs generate|check|rotate`. The PKI itself lives in [`crate::pki`], and what a
//! node asks of it in [`crate::plan::pki_spec`]; this file only runs the command and prints.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::cli::CertsCommand;
use crate::cmd::Globals;
use crate::config::{Config, ConfigError};
use crate::errors::EXIT_CHECK;
use crate::paths::Paths;
use crate::pki::{self, Pki, PkiError, Report};
use crate::plan;

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

crate::errors::exit_via!(CertsError: Config);

pub fn run(cmd: CertsCommand, g: &Globals) -> Result<ExitCode, CertsError> {
    match cmd {
        CertsCommand::Generate { common } => {
            let cfg = g.config(&common)?;
            let report = Pki::new(&cfg.paths).generate(&plan::pki_spec(&cfg, advertise(&cfg)))?;
            print!("{}", describe(&report));
            remind_running(&cfg.paths, &report);
        }
        CertsCommand::Check { node, json } => {
            let cfg = g.node_config(&node)?;
            let rows = Pki::new(&cfg.paths).check(SystemTime::now());
            if json {
                println!("{}", pki::render_json(&rows)?);
            } else {
                print!("{}", pki::render_table(&rows));
            }
            if pki::needs_attention(&rows) {
                return Ok(ExitCode::from(EXIT_CHECK));
            }
        }
        CertsCommand::Rotate { common, name, all } => {
            let cfg = g.config(&common)?;
            let names: Vec<String> = name.into_iter().collect();
            let leaves = Pki::parse_rotate_args(&names, all)?;
            let report =
                Pki::new(&cfg.paths).rotate(&plan::pki_spec(&cfg, advertise(&cfg)), &leaves)?;
            print!("{}", describe(&report));
            remind_running(&cfg.paths, &report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Certificates name the advertise address; without one (a workstation making a PKI to look
/// at), loopback.
fn advertise(cfg: &Config) -> IpAddr {
    cfg.advertise.unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// One line per change, for the operator.
pub fn describe(report: &Report) -> String {
    if report.is_empty() {
        return "every certificate is present and valid; nothing changed\n".to_string();
    }
    let mut out = String::new();
    for ca in &report.cas_created {
        out.push_str(&format!("created CA {}\n", ca.name()));
    }
    for i in &report.issued {
        out.push_str(&format!("issued {} ({:?})\n", i.leaf.name(), i.reason));
    }
    for k in &report.kubeconfigs_written {
        out.push_str(&format!("wrote kubeconfig {}\n", k.file_stem()));
    }
    if report.service_account_key_created {
        out.push_str("created the service-account key pair\n");
    }
    out
}

/// A running kubesup restarts the components whose certificates changed on SIGHUP (certificate
/// files are part of each component's fingerprint).
fn remind_running(paths: &Paths, report: &Report) {
    if report.is_empty() || !paths.control_socket().exists() {
        return;
    }
    let pid = std::fs::read_to_string(paths.lock_file()).unwrap_or_default();
    let restart: Vec<_> = plan::components_to_restart(report)
        .iter()
        .map(|c| c.name())
        .collect();
    if !restart.is_empty() {
        println!(
            "kubesup is running on this data dir: run `kill -HUP {}` to restart {}",
            pid.trim(),
            restart.join(", ")
        );
    }
}
