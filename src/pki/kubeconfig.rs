//! Kubeconfig files with the CA, client certificate and key embedded (`*-data`, base64), so a
//! kubeconfig is one self-contained 0600 file that needs no path on the reading side.
//!
//! A kubeconfig is derived data: kubesup owns it and rewrites it whenever its rendering (server,
//! certificate, key) differs from the file; an unchanged rendering is not written at all.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::error::{PkiError, Result};
use super::key::Secret;
use super::store::{self, KEY_MODE};
use crate::fsutil;
use crate::paths::KubeconfigUser;

/// The cluster name in every kubeconfig kubesup writes.
pub const CLUSTER_NAME: &str = "kubernetes";

/// The apiserver URL written into each kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigServers {
    pub admin: String,
    pub controller_manager: String,
    pub scheduler: String,
    pub kubelet: String,
    pub kube_proxy: String,
}

impl KubeconfigServers {
    /// The usual split: controller-manager and scheduler run next to the apiserver and talk to
    /// it over loopback (`local_url`, e.g. `https://127.0.0.1:6443`), so they survive a change
    /// of the advertise address; admin, kubelet and kube-proxy use `advertise_url`.
    pub fn standard(advertise_url: &str, local_url: &str) -> Self {
        Self {
            admin: advertise_url.into(),
            controller_manager: local_url.into(),
            scheduler: local_url.into(),
            kubelet: advertise_url.into(),
            kube_proxy: advertise_url.into(),
        }
    }

    pub fn get(&self, user: KubeconfigUser) -> &str {
        match user {
            KubeconfigUser::Admin => &self.admin,
            KubeconfigUser::ControllerManager => &self.controller_manager,
            KubeconfigUser::Scheduler => &self.scheduler,
            KubeconfigUser::Kubelet => &self.kubelet,
            KubeconfigUser::KubeProxy => &self.kube_proxy,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: [Named<'a, Cluster<'a>>; 1],
    contexts: [Named<'a, Context<'a>>; 1],
    current_context: &'a str,
    users: [NamedUser<'a>; 1],
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    inner: T,
}

#[derive(Serialize)]
struct Cluster<'a> {
    cluster: ClusterData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterData<'a> {
    certificate_authority_data: String,
    server: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    context: ContextData<'a>,
}

#[derive(Serialize)]
struct ContextData<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: UserData,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserData {
    client_certificate_data: String,
    client_key_data: String,
}

/// Renders a kubeconfig for `user_name` (by convention the certificate's CN). Public so that
/// the join client can write a worker's kubeconfig around a CSR-signed certificate.
pub fn render(
    server: &str,
    ca_pem: &str,
    user_name: &str,
    cert_pem: &str,
    key_pem: &Secret,
) -> std::result::Result<Secret, serde_yaml_ng::Error> {
    let context = format!("{user_name}@{CLUSTER_NAME}");
    let cfg = Config {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name: CLUSTER_NAME,
            inner: Cluster {
                cluster: ClusterData {
                    certificate_authority_data: STANDARD.encode(ca_pem),
                    server,
                },
            },
        }],
        contexts: [Named {
            name: &context,
            inner: Context {
                context: ContextData {
                    cluster: CLUSTER_NAME,
                    user: user_name,
                },
            },
        }],
        current_context: &context,
        users: [NamedUser {
            name: user_name,
            user: UserData {
                client_certificate_data: STANDARD.encode(cert_pem),
                client_key_data: STANDARD.encode(key_pem.expose()),
            },
        }],
    };
    serde_yaml_ng::to_string(&cfg).map(Secret::new)
}

/// Writes `content` to `path` (0600) unless the file already holds exactly that. Returns
/// whether it wrote.
pub(crate) fn write_if_changed(
    user: KubeconfigUser,
    path: &std::path::Path,
    content: &Secret,
) -> Result<bool> {
    let current = store::read_optional(path)?;
    if current.as_deref() == Some(content.expose()) {
        return Ok(false);
    }
    fsutil::write_atomic(path, content.expose().as_bytes(), KEY_MODE).map_err(|source| {
        PkiError::Store {
            name: format!("{} kubeconfig", user.file_stem()),
            source,
        }
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_kubeconfig_kubectl_understands() {
        let key = Secret::new("KEY".into());
        let out = render(
            "https://10.0.0.1:6443",
            "CA",
            "system:kube-scheduler",
            "CERT",
            &key,
        )
        .unwrap();
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(out.expose()).unwrap();
        assert_eq!(v["apiVersion"].as_str(), Some("v1"));
        assert_eq!(v["kind"].as_str(), Some("Config"));
        assert_eq!(
            v["current-context"].as_str(),
            Some("system:kube-scheduler@kubernetes")
        );
        let c = &v["clusters"][0];
        assert_eq!(c["name"].as_str(), Some("kubernetes"));
        assert_eq!(
            c["cluster"]["server"].as_str(),
            Some("https://10.0.0.1:6443")
        );
        assert_eq!(
            c["cluster"]["certificate-authority-data"].as_str(),
            Some("Q0E=")
        );
        let ctx = &v["contexts"][0];
        assert_eq!(
            ctx["context"]["user"].as_str(),
            Some("system:kube-scheduler")
        );
        assert_eq!(ctx["context"]["cluster"].as_str(), Some("kubernetes"));
        let u = &v["users"][0];
        assert_eq!(u["name"].as_str(), Some("system:kube-scheduler"));
        assert_eq!(
            u["user"]["client-certificate-data"].as_str(),
            Some("Q0VSVA==")
        );
        assert_eq!(u["user"]["client-key-data"].as_str(), Some("S0VZ"));
        assert_eq!(format!("{out:?}"), "***");
    }

    #[test]
    fn standard_servers_keep_controllers_on_loopback() {
        let s = KubeconfigServers::standard("https://192.0.2.1:6443", "https://127.0.0.1:6443");
        assert_eq!(
            s.get(KubeconfigUser::ControllerManager),
            "https://127.0.0.1:6443"
        );
        assert_eq!(s.get(KubeconfigUser::Scheduler), "https://127.0.0.1:6443");
        assert_eq!(s.get(KubeconfigUser::Kubelet), "https://192.0.2.1:6443");
        assert_eq!(s.get(KubeconfigUser::Admin), "https://192.0.2.1:6443");
        assert_eq!(s.get(KubeconfigUser::KubeProxy), "https://192.0.2.1:6443");
    }
}
