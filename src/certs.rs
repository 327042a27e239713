//! `kubesup certs generate|check|rotate`, and the mapping from the node config to the PKI's
//! input. The PKI itself lives in [`crate::pki`]; this module only decides *what* to ask of it
//! for a node.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::config::Config;
use crate::pki::{KubeconfigServers, Pki, PkiError, PkiSpec, Report};

/// The PKI a master with this config needs.
pub fn pki_spec(cfg: &Config, advertise: IpAddr) -> PkiSpec {
    let url = |ip: IpAddr| crate::components::https_url(ip, cfg.api_port);
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| cfg.node_name.clone())
        .to_lowercase();
    PkiSpec {
        node_name: cfg.node_name.clone(),
        hostname,
        advertise,
        api_service_ip: cfg.api_service_ip,
        cluster_domain: cfg.cluster_domain.clone(),
        extra_sans: cfg.pki.extra_sans.clone(),
        key_type: cfg.pki.key_type,
        ca_validity: cfg.pki.ca_validity,
        leaf_validity: cfg.pki.leaf_validity,
        kubeconfig_servers: KubeconfigServers::standard(
            &url(advertise),
            &url(IpAddr::from([127, 0, 0, 1])),
        ),
    }
}

/// `certs generate`: creates what is missing, re-issues what drifted or is due.
pub fn generate(cfg: &Config) -> Result<Report, PkiError> {
    let advertise = cfg.advertise.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    Pki::new(&cfg.paths).generate(&pki_spec(cfg, advertise))
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

/// Rows for `certs check`, as of now.
pub fn check(cfg: &Config) -> Vec<crate::pki::CertRow> {
    Pki::new(&cfg.paths).check(SystemTime::now())
}
