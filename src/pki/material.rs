//! The cluster-wide key material every master of one cluster shares: the three CAs (cluster,
//! etcd, front-proxy) with their keys, and the service-account key pair. Everything else in a
//! master's PKI is its own, made by [`super::Pki::generate`] with its own SANs.
//!
//! Owns the one way these keys leave a master ([`ClusterMaterial::read`], for a control-plane
//! join answered over the pinned TLS connection) and the one way they arrive
//! ([`ClusterMaterial::install`]). [`super::LoadedCa`] still never hands its key out: this
//! reads the files, for a process whose only job with them is to copy them to a peer master.
//!
//! Invariants: keys are [`Secret`]s (`Debug` prints `***`), written 0600 through
//! [`super::store::write_key`]; a data dir that already holds material of *another* cluster is
//! never overwritten (a join into the wrong data dir stops with the file named), while the same
//! material arriving again (a join run twice) is a no-op.

use serde::{Deserialize, Serialize};

use super::ca::CaKind;
use super::error::{PkiError, Result};
use super::key::Secret;
use super::store::{self, CertInfo};
use crate::paths::PkiPaths;

/// A CA certificate and its key, PEM.
#[derive(Clone, Serialize, Deserialize)]
pub struct CaMaterial {
    pub cert: String,
    #[serde(with = "secret_pem")]
    pub key: Secret,
}

/// What a joining master receives.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterMaterial {
    pub cluster_ca: CaMaterial,
    pub etcd_ca: CaMaterial,
    pub front_proxy_ca: CaMaterial,
    #[serde(with = "secret_pem")]
    pub sa_key: Secret,
    pub sa_pub: String,
}

impl std::fmt::Debug for ClusterMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterMaterial(***)")
    }
}

/// Serializes a [`Secret`] as its PEM text: the join answer is the one place it must cross the
/// wire, inside TLS verified against the pinned CA.
mod secret_pem {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
        String::deserialize(de).map(Secret::new)
    }
}

fn required(path: &std::path::Path, what: &'static str) -> Result<String> {
    store::read_optional(path)?.ok_or_else(|| PkiError::CaMissing {
        ca: what,
        path: path.to_path_buf(),
    })
}

impl ClusterMaterial {
    /// Reads the material of the master whose PKI is `pki`. Every file must exist.
    pub fn read(pki: &PkiPaths) -> Result<Self> {
        let ca = |kind: CaKind| -> Result<CaMaterial> {
            let pair = kind.paths(pki);
            Ok(CaMaterial {
                cert: required(&pair.cert, kind.name())?,
                key: Secret::new(required(&pair.key, kind.name())?),
            })
        };
        Ok(Self {
            cluster_ca: ca(CaKind::Cluster)?,
            etcd_ca: ca(CaKind::Etcd)?,
            front_proxy_ca: ca(CaKind::FrontProxy)?,
            sa_key: Secret::new(required(&pki.sa_key(), "sa")?),
            sa_pub: required(&pki.sa_pub(), "sa")?,
        })
    }

    fn ca(&self, kind: CaKind) -> &CaMaterial {
        match kind {
            CaKind::Cluster => &self.cluster_ca,
            CaKind::Etcd => &self.etcd_ca,
            CaKind::FrontProxy => &self.front_proxy_ca,
        }
    }

    /// Checks every file against what is on disk first, then writes what is missing: keys
    /// 0600, certificates 0644. A file that exists with other content stops the install before
    /// anything is written ([`PkiError::ForeignMaterial`]). Returns whether anything was new.
    pub fn install(&self, pki: &PkiPaths) -> Result<bool> {
        let mut files: Vec<(String, std::path::PathBuf, &str, bool)> = Vec::new();
        for kind in CaKind::ALL {
            let pair = kind.paths(pki);
            let m = self.ca(kind);
            // Parsed, so that a garbled answer is refused before it lands on disk.
            CertInfo::parse_pem(&m.cert).map_err(|e| PkiError::Corrupt {
                path: pair.cert.clone(),
                reason: e.into(),
            })?;
            files.push((kind.name().to_string(), pair.cert, &m.cert, false));
            files.push((kind.name().to_string(), pair.key, m.key.expose(), true));
        }
        files.push(("sa".into(), pki.sa_key(), self.sa_key.expose(), true));
        files.push(("sa.pub".into(), pki.sa_pub(), &self.sa_pub, false));

        let mut missing = Vec::new();
        for (name, path, content, secret) in &files {
            match store::read_optional(path)? {
                Some(existing) if existing.trim() == content.trim() => {}
                Some(_) => {
                    return Err(PkiError::ForeignMaterial { path: path.clone() });
                }
                None => missing.push((name, path, *content, *secret)),
            }
        }
        for (name, path, content, secret) in &missing {
            if *secret {
                store::write_key(name, path, &Secret::new((*content).to_string()))?;
            } else {
                store::write_public(name, path, content)?;
            }
        }
        Ok(!missing.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;

    fn master(dir: &std::path::Path) -> crate::paths::Paths {
        let paths = crate::paths::Paths::new(dir);
        let spec = crate::pki::test_spec();
        Pki::new(&paths).generate(&spec).unwrap();
        paths
    }

    #[test]
    fn material_moves_to_an_empty_data_dir_once_and_never_over_another_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let first = master(&tmp.path().join("a"));
        let m = ClusterMaterial::read(&first.pki()).unwrap();
        assert_eq!(format!("{m:?}"), "ClusterMaterial(***)");

        let joiner = crate::paths::Paths::new(tmp.path().join("b"));
        assert!(m.install(&joiner.pki()).unwrap());
        // The same material again (a join run twice): nothing to do.
        assert!(!m.install(&joiner.pki()).unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(joiner.pki().ca().key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(joiner.pki().sa_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A joiner's own leaves are made from the installed CAs.
        Pki::new(&joiner)
            .generate(&crate::pki::test_spec())
            .unwrap();
        assert_eq!(
            std::fs::read(first.pki().ca().cert).unwrap(),
            std::fs::read(joiner.pki().ca().cert).unwrap()
        );

        // Material of another cluster: refused, and nothing is changed.
        let other = master(&tmp.path().join("c"));
        let foreign = ClusterMaterial::read(&other.pki()).unwrap();
        let before = std::fs::read(joiner.pki().etcd_ca().key).unwrap();
        let e = foreign.install(&joiner.pki()).unwrap_err();
        assert!(matches!(e, PkiError::ForeignMaterial { .. }), "{e}");
        assert_eq!(std::fs::read(joiner.pki().etcd_ca().key).unwrap(), before);
    }

    #[test]
    fn a_master_without_its_pki_has_nothing_to_give() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = crate::paths::Paths::new(tmp.path());
        let e = ClusterMaterial::read(&paths.pki()).unwrap_err();
        assert!(matches!(e, PkiError::CaMissing { .. }), "{e}");
    }
}
