//! A minimal client of the Kubernetes API for what kubesup itself must do after start:
//! server-side apply of its add-ons and RBAC, and reading Node objects. Authenticated with a
//! client certificate (the admin kubeconfig's), verified against the cluster CA.
//!
//! Server-side apply (`PATCH` with `application/apply-patch+yaml`, `force=true`) makes every
//! apply idempotent and lets kubesup own exactly the fields it sets; it is on by default from
//! v1.16 (beta) and GA from v1.22, so one code path serves every supported version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::http::{Client, HttpError, Response, Trust};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the API client")]
    Client(#[source] HttpError),
    #[error("{method} failed")]
    Request {
        method: &'static str,
        #[source]
        source: HttpError,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot apply an object without apiVersion, kind and metadata.name: {0}")]
    Object(String),
    #[error("kubesup does not know the API path of kind {0}")]
    UnknownKind(String),
}

/// Client credentials for the API server.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Kube {
    client: Client,
    server: String,
}

fn read(path: &Path) -> Result<Vec<u8>, KubeError> {
    std::fs::read(path).map_err(|source| KubeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl Kube {
    pub fn new(server: &str, creds: &Credentials) -> Result<Self, KubeError> {
        // No proxy: the API server is this cluster's own.
        let client = Client::builder()
            .trust(Trust::Ca(read(&creds.ca)?))
            .identity(read(&creds.cert)?, read(&creds.key)?)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(KubeError::Client)?;
        Ok(Self {
            client,
            server: server.trim_end_matches('/').to_string(),
        })
    }

    /// `GET path`, as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, KubeError> {
        let url = format!("{}{path}", self.server);
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|source| KubeError::Request {
                method: "GET",
                source,
            })?;
        Self::json("GET", url, resp).await
    }

    /// Server-side apply of one object.
    pub async fn apply(&self, obj: &Value) -> Result<(), KubeError> {
        let path = object_path(obj)?;
        let url = format!("{}{path}?fieldManager=kubesup&force=true", self.server);
        let resp = self
            .client
            .patch(&url)
            .body("application/apply-patch+yaml", obj.to_string())
            .send()
            .await
            .map_err(|source| KubeError::Request {
                method: "PATCH",
                source,
            })?;
        Self::json("PATCH", url, resp).await.map(|_| ())
    }

    async fn json(method: &'static str, url: String, resp: Response) -> Result<Value, KubeError> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|source| KubeError::Request { method, source })?;
        if !status.is_success() {
            let mut body = text;
            // At a character boundary: truncating inside one would panic.
            let mut end = body.len().min(300);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
            return Err(KubeError::Status {
                method,
                url,
                status: status.as_u16(),
                body,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The REST path of an object, for the kinds kubesup applies.
pub fn object_path(obj: &Value) -> Result<String, KubeError> {
    let bad = || KubeError::Object(obj.to_string().chars().take(120).collect());
    let api_version = obj["apiVersion"].as_str().ok_or_else(bad)?;
    let kind = obj["kind"].as_str().ok_or_else(bad)?;
    let name = obj["metadata"]["name"].as_str().ok_or_else(bad)?;
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "ConfigMap" => ("configmaps", true),
        "Service" => ("services", true),
        "Deployment" => ("deployments", true),
        "DaemonSet" => ("daemonsets", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        other => return Err(KubeError::UnknownKind(other.to_string())),
    };
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    Ok(if namespaced {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
        format!("{base}/namespaces/{ns}/{plural}/{name}")
    } else {
        format!("{base}/{plural}/{name}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_of_core_and_group_kinds() {
        let svc = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"kube-dns","namespace":"kube-system"}});
        assert_eq!(
            object_path(&svc).unwrap(),
            "/api/v1/namespaces/kube-system/services/kube-dns"
        );
        let crb = json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"x"}});
        assert_eq!(
            object_path(&crb).unwrap(),
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x"
        );
        assert!(object_path(&json!({"kind":"Pod"})).is_err());
    }
}
