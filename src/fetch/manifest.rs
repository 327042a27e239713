//! Release manifests: which artifacts make up a Kubernetes release, where each lives in the
//! upstream path layout, and how its checksum is published.
//!
//! Owns: the built-in table (one row per Kubernetes minor version), the architecture names, and
//! the plan of downloads ([`Job`]) for a set of [`Artifact`]s.
//! Invariant: every path produced here is relative and built only from validated version
//! strings and fixed names, so nothing a user types can escape the mirror's layout.
//! Must not: do I/O.

use serde::{Deserialize, Serialize};

use super::FetchError;

use crate::model::{Component, KubeVersion, Network, NodeRole, Role};

/// What can be fetched. One artifact may yield several binaries (the etcd tarball yields `etcd`
/// and `etcdctl`), and several artifacts may share one download (`hyperkube`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Artifact {
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
    KubeProxy,
    Kubectl,
    Etcd,
    Flanneld,
    Containerd,
    Runc,
    CniPlugins,
    FlannelCni,
}

impl Artifact {
    pub const ALL: [Artifact; 12] = [
        Self::KubeApiserver,
        Self::KubeControllerManager,
        Self::KubeScheduler,
        Self::Kubelet,
        Self::KubeProxy,
        Self::Kubectl,
        Self::Etcd,
        Self::Flanneld,
        Self::Containerd,
        Self::Runc,
        Self::CniPlugins,
        Self::FlannelCni,
    ];

    /// The container runtime, fetched only when the caller asks (a worker may take them from
    /// the OS instead).
    pub const RUNTIME: [Artifact; 3] = [Self::Containerd, Self::Runc, Self::CniPlugins];

    /// Name used in logs, in pinned-checksum maps and in the fetch record.
    pub fn name(self) -> &'static str {
        match self {
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::Kubelet => "kubelet",
            Self::KubeProxy => "kube-proxy",
            Self::Kubectl => "kubectl",
            Self::Etcd => "etcd",
            Self::Flanneld => "flanneld",
            Self::Containerd => "containerd",
            Self::Runc => "runc",
            Self::CniPlugins => "cni-plugins",
            Self::FlannelCni => "flannel-cni",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The download that carries a component's binary. containerd is the runtime, which a
    /// node takes from the OS unless asked ([`Artifact::RUNTIME`]).
    fn of_component(c: Component) -> Option<Self> {
        match c {
            Component::Etcd => Some(Self::Etcd),
            Component::KubeApiserver => Some(Self::KubeApiserver),
            Component::KubeControllerManager => Some(Self::KubeControllerManager),
            Component::KubeScheduler => Some(Self::KubeScheduler),
            Component::Kubelet => Some(Self::Kubelet),
            Component::KubeProxy => Some(Self::KubeProxy),
            Component::Flanneld => Some(Self::Flanneld),
            Component::Containerd => None,
        }
    }

    /// Server binaries that hyperkube bundled (kubectl stayed a separate download).
    fn in_hyperkube(self) -> bool {
        matches!(
            self,
            Self::KubeApiserver
                | Self::KubeControllerManager
                | Self::KubeScheduler
                | Self::Kubelet
                | Self::KubeProxy
        )
    }
}

impl std::fmt::Display for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The artifacts a node needs, without the container runtime (append [`Artifact::RUNTIME`]
/// when the node does not take containerd, runc and CNI plugins from the OS): one per component
/// that [`NodeRole::components`] says the node runs, kubectl on a master, for its operator, and
/// flannel's CNI plugin where pods run on flannel's network: the CNI config names it, and no
/// runtime's plugin set carries it any more (containernetworking/plugins dropped it in v1.0.0;
/// Debian's `containernetworking-plugins` has none). The caller leaves it out when the operator
/// chose the CNI bin dir (`containerd.cni-bin-dir`): that dir is theirs to fill.
pub fn needed_artifacts(role: NodeRole, network: Network) -> Vec<Artifact> {
    let mut out: Vec<Artifact> = role
        .components(network)
        .into_iter()
        .filter_map(Artifact::of_component)
        .collect();
    if role.role() == Role::Master {
        out.push(Artifact::Kubectl);
    }
    if role.runs_pods() && network == Network::Flannel {
        out.push(Artifact::FlannelCni);
    }
    out.sort();
    out
}

/// The architecture name upstream uses for the machine kubesup runs on (`amd64`, `arm64`, ...).
pub fn host_arch() -> Result<String, FetchError> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => {
            return Err(FetchError::UnsupportedArch {
                arch: other.to_string(),
            });
        }
    };
    Ok(arch.to_string())
}

const ARCHES: [&str; 6] = ["amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"];

/// One row of the built-in table. Versions are what kubeadm paired with that minor (etcd) or
/// what was current when it was released (flannel, containerd, runc, CNI plugins).
///
/// `flannel_cni` is flannel's own CNI plugin (github.com/flannel-io/cni-plugin). Every minor
/// needs one with `network: flannel`: from v1.21 on the table's CNI plugins are v1.0.0 or
/// later, from which containernetworking/plugins removed `flannel`; before that a node may take
/// the runtime's plugins from the OS, and Debian's `containernetworking-plugins` has no
/// `flannel` either. So kubesup fetches it for every minor, and the CNI plugins' archive never
/// provides `flannel` (one source for one name). The plugin only reads the subnet file flanneld
/// writes (a format unchanged across flannel's releases) and delegates to `bridge` with
/// `host-local`, so a plugin newer than the row's flanneld is safe; the versions are ones whose
/// release assets were checked, since the archive's name changed across releases
/// ([`flannel_cni_file`]):
/// - v1.1.2 (which flannel v0.21 paired): for the rows up to flannel v0.21, including those from
///   before flannel released the plugin on its own (v1.0.0, late 2021);
/// - v1.5.1-flannel2 (flannel v0.25): for flannel v0.22 to v0.26;
/// - v1.9.1-flannel1 (flannel v0.28): for flannel v0.27, whose own pairing (v1.8.0-flannel1) has
///   an archive name that could not be confirmed.
struct Row {
    minor: u64,
    etcd: &'static str,
    flannel: &'static str,
    containerd: &'static str,
    runc: &'static str,
    cni: &'static str,
    flannel_cni: &'static str,
}

const fn row(
    minor: u64,
    etcd: &'static str,
    flannel: &'static str,
    containerd: &'static str,
    runc: &'static str,
    cni: &'static str,
    flannel_cni: &'static str,
) -> Row {
    Row {
        minor,
        etcd,
        flannel,
        containerd,
        runc,
        cni,
        flannel_cni,
    }
}

const FC_OLD: &str = "v1.1.2";
const FC_MID: &str = "v1.5.1-flannel2";
const FC_NEW: &str = "v1.9.1-flannel1";

/// Ordered by minor; [`ReleaseManifest::resolve`] relies on rows being contiguous.
const TABLE: &[Row] = &[
    row(
        17, "v3.4.3", "v0.11.0", "v1.4.13", "v1.0.3", "v0.9.1", FC_OLD,
    ),
    row(
        18, "v3.4.3", "v0.12.0", "v1.4.13", "v1.0.3", "v0.9.1", FC_OLD,
    ),
    row(
        19, "v3.4.13", "v0.13.0", "v1.4.13", "v1.0.3", "v0.9.1", FC_OLD,
    ),
    row(
        20, "v3.4.13", "v0.13.0", "v1.4.13", "v1.0.3", "v0.9.1", FC_OLD,
    ),
    row(
        21, "v3.4.13", "v0.14.0", "v1.5.18", "v1.1.4", "v1.1.1", FC_OLD,
    ),
    row(
        22, "v3.5.0", "v0.15.1", "v1.5.18", "v1.1.4", "v1.1.1", FC_OLD,
    ),
    row(
        23, "v3.5.1", "v0.16.3", "v1.6.20", "v1.1.5", "v1.1.1", FC_OLD,
    ),
    row(
        24, "v3.5.3", "v0.18.1", "v1.6.20", "v1.1.5", "v1.1.1", FC_OLD,
    ),
    row(
        25, "v3.5.4", "v0.20.2", "v1.6.20", "v1.1.5", "v1.1.1", FC_OLD,
    ),
    row(
        26, "v3.5.6", "v0.21.4", "v1.7.13", "v1.1.12", "v1.3.0", FC_OLD,
    ),
    row(
        27, "v3.5.7", "v0.22.3", "v1.7.13", "v1.1.12", "v1.3.0", FC_MID,
    ),
    row(
        28, "v3.5.9", "v0.23.0", "v1.7.13", "v1.1.12", "v1.3.0", FC_MID,
    ),
    row(
        29, "v3.5.10", "v0.24.4", "v1.7.20", "v1.1.13", "v1.4.1", FC_MID,
    ),
    row(
        30, "v3.5.12", "v0.25.7", "v1.7.20", "v1.1.13", "v1.4.1", FC_MID,
    ),
    row(
        31, "v3.5.15", "v0.26.7", "v2.0.5", "v1.2.6", "v1.6.2", FC_MID,
    ),
    row(
        32, "v3.5.16", "v0.26.7", "v2.0.5", "v1.2.6", "v1.6.2", FC_MID,
    ),
    row(
        33, "v3.5.21", "v0.27.4", "v2.1.4", "v1.3.0", "v1.7.1", FC_NEW,
    ),
    row(
        34, "v3.6.4", "v0.27.4", "v2.1.4", "v1.3.0", "v1.7.1", FC_NEW,
    ),
    row(
        35, "v3.6.5", "v0.27.4", "v2.1.4", "v1.3.0", "v1.7.1", FC_NEW,
    ),
    row(
        36, "v3.6.5", "v0.27.4", "v2.1.4", "v1.3.0", "v1.7.1", FC_NEW,
    ),
    row(
        37, "v3.6.5", "v0.27.4", "v2.1.4", "v1.3.0", "v1.7.1", FC_NEW,
    ),
];

/// The archive flannel-io/cni-plugin publishes for release `tag` on `arch`. Its release
/// scripts (scripts/package.sh, the Dockerfile's `flannel-cni` stage) name it
/// `cni-plugin-flannel-linux-ARCH-TAG.tgz`, and releases up to v1.5.1-flannel3 carry the tag as
/// is; from v1.9.0-flannel1 on the archives drop the tag's `-flannelN` part
/// (`v1.9.1-flannel1/cni-plugin-flannel-linux-amd64-v1.9.1.tgz`). Inside is one file,
/// `flannel-ARCH` (archives before v1.2.0 hold every architecture's, as `./flannel-ARCH`).
fn flannel_cni_file(tag: &str, arch: &str) -> String {
    let version = match semver::Version::parse(tag.trim_start_matches('v')) {
        Ok(v) if (v.major, v.minor) >= (1, 9) => format!("v{}.{}.{}", v.major, v.minor, v.patch),
        _ => tag.to_string(),
    };
    format!("cni-plugin-flannel-linux-{arch}-{version}.tgz")
}

/// Upstream shipped the multi-call `hyperkube` binary up to v1.18; for those versions the
/// server components come from it (one download instead of five).
const LAST_HYPERKUBE_MINOR: u64 = 18;

/// Versions the caller may set instead of the table's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionOverrides {
    pub etcd: Option<String>,
    pub flannel: Option<String>,
    pub containerd: Option<String>,
    pub runc: Option<String>,
    pub cni_plugins: Option<String>,
    pub flannel_cni: Option<String>,
}

/// Everything fetched for one Kubernetes release on one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    /// `v1.20.2`
    pub kube_version: String,
    /// Upstream architecture name (`amd64`).
    pub arch: String,
    /// Server components come from `hyperkube` (versions before v1.19).
    pub hyperkube: bool,
    pub etcd_version: String,
    pub flannel_version: String,
    pub containerd_version: String,
    pub runc_version: String,
    pub cni_plugins_version: String,
    /// flannel's CNI plugin (flannel-io/cni-plugin); empty in a manifest written before kubesup
    /// fetched it.
    #[serde(default)]
    pub flannel_cni_version: String,
}

/// Parses the version of a release kubesup pairs with Kubernetes (etcd, flannel, containerd,
/// ...), `v1.2.3` or `1.2.3` as those projects are inconsistent about the `v`, and returns it
/// normalised with a leading `v`. Going through semver is what keeps a version from carrying
/// `/` or `..` into a URL or a path. Kubernetes' own version is a [`KubeVersion`].
pub(crate) fn normalize_version(
    what: &'static str,
    v: &str,
) -> Result<(String, semver::Version), FetchError> {
    let bad = || FetchError::BadVersion {
        what,
        version: v.to_string(),
    };
    let parsed = semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).map_err(|_| bad())?;
    if !parsed.build.is_empty() {
        return Err(bad());
    }
    Ok((format!("v{parsed}"), parsed))
}

impl ReleaseManifest {
    /// The manifest for `kube` on `arch`, with the caller's overrides. The version is already
    /// typed ([`KubeVersion::parse`] is the one parser), which is also what keeps it from
    /// carrying `/` or `..` into a URL or a path.
    pub fn resolve(
        kube: &KubeVersion,
        arch: &str,
        overrides: &VersionOverrides,
    ) -> Result<Self, FetchError> {
        if !ARCHES.contains(&arch) {
            return Err(FetchError::UnsupportedArch {
                arch: arch.to_string(),
            });
        }
        let (first, last) = match (TABLE.first(), TABLE.last()) {
            (Some(f), Some(l)) => (f.minor, l.minor),
            _ => (0, 0),
        };
        let row = TABLE
            .iter()
            .find(|r| kube.major == 1 && r.minor == kube.minor)
            .ok_or_else(|| FetchError::NoManifest {
                version: kube.to_string(),
                first,
                last,
            })?;
        let pick = |what: &'static str, o: &Option<String>, default: &str| match o {
            Some(v) => normalize_version(what, v).map(|(s, _)| s),
            None => Ok(default.to_string()),
        };
        Ok(Self {
            kube_version: kube.to_string(),
            arch: arch.to_string(),
            hyperkube: kube.minor <= LAST_HYPERKUBE_MINOR,
            etcd_version: pick("etcd", &overrides.etcd, row.etcd)?,
            flannel_version: pick("flannel", &overrides.flannel, row.flannel)?,
            containerd_version: pick("containerd", &overrides.containerd, row.containerd)?,
            runc_version: pick("runc", &overrides.runc, row.runc)?,
            cni_plugins_version: pick("CNI plugins", &overrides.cni_plugins, row.cni)?,
            flannel_cni_version: pick(
                "flannel CNI plugin",
                &overrides.flannel_cni,
                row.flannel_cni,
            )?,
        })
    }

    /// The downloads that produce `artifacts`, deduplicated (five components share one
    /// hyperkube), in a stable order.
    pub(crate) fn jobs(&self, artifacts: &[Artifact]) -> Vec<Job> {
        let mut wanted: Vec<Artifact> = artifacts.to_vec();
        wanted.sort();
        wanted.dedup();
        let mut jobs: Vec<Job> = Vec::new();
        for a in wanted {
            if self.hyperkube && a.in_hyperkube() {
                let provide = Provide {
                    binary: a.name().to_string(),
                    argv_prefix: vec![a.name().to_string()],
                };
                match jobs.iter_mut().find(|j| j.name == "hyperkube") {
                    Some(j) => j.provides.push(provide),
                    None => {
                        let mut j = self.kube_binary("hyperkube");
                        j.provides = vec![provide];
                        jobs.push(j);
                    }
                }
                continue;
            }
            jobs.push(self.job(a));
        }
        jobs
    }

    fn kube_binary(&self, name: &str) -> Job {
        let rel = format!(
            "release/{}/bin/linux/{}/{name}",
            self.kube_version, self.arch
        );
        Job {
            name: name.to_string(),
            file_name: name.to_string(),
            checksum: vec![Checksum::Sidecar {
                rel: format!("{rel}.sha256"),
            }],
            rel,
            upstream: Upstream::DlK8s,
            content: Content::Executable {
                link: name.to_string(),
            },
            provides: vec![Provide {
                binary: name.to_string(),
                argv_prefix: Vec::new(),
            }],
        }
    }

    fn job(&self, a: Artifact) -> Job {
        let arch = self.arch.as_str();
        match a {
            Artifact::KubeApiserver
            | Artifact::KubeControllerManager
            | Artifact::KubeScheduler
            | Artifact::Kubelet
            | Artifact::KubeProxy
            | Artifact::Kubectl => self.kube_binary(a.name()),
            Artifact::Etcd => {
                let v = &self.etcd_version;
                let top = format!("etcd-{v}-linux-{arch}");
                let file = format!("{top}.tar.gz");
                let dir = format!("etcd-io/etcd/releases/download/{v}");
                Job {
                    name: a.name().to_string(),
                    rel: format!("{dir}/{file}"),
                    checksum: vec![Checksum::Sidecar {
                        rel: format!("{dir}/SHA256SUMS"),
                    }],
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Archive {
                        select: Select::Named {
                            dir: top,
                            required: &["etcd", "etcdctl"],
                            // etcdutl exists from v3.5 on.
                            optional: &["etcdutl"],
                        },
                        link_prefix: "",
                    },
                    provides: Vec::new(),
                }
            }
            Artifact::Flanneld => {
                let v = &self.flannel_version;
                let file = format!("flanneld-{arch}");
                Job {
                    name: a.name().to_string(),
                    rel: format!("flannel-io/flannel/releases/download/{v}/{file}"),
                    // flannel's releases publish no checksum file for flanneld: the digest
                    // GitHub's release API shows for the asset is the published checksum.
                    checksum: vec![Checksum::ReleaseDigest {
                        rel: release_api_rel("flannel-io/flannel", v),
                        asset: file.clone(),
                    }],
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Executable {
                        link: "flanneld".to_string(),
                    },
                    provides: vec![Provide {
                        binary: "flanneld".to_string(),
                        argv_prefix: Vec::new(),
                    }],
                }
            }
            Artifact::Containerd => {
                let v = &self.containerd_version;
                let bare = v.trim_start_matches('v');
                let file = format!("containerd-{bare}-linux-{arch}.tar.gz");
                let rel = format!("containerd/containerd/releases/download/{v}/{file}");
                Job {
                    name: a.name().to_string(),
                    checksum: vec![Checksum::Sidecar {
                        rel: format!("{rel}.sha256sum"),
                    }],
                    rel,
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Archive {
                        select: Select::AllIn {
                            dir: "bin",
                            required: &["containerd", "containerd-shim-runc-v2", "ctr"],
                            except: &[],
                        },
                        link_prefix: "",
                    },
                    provides: Vec::new(),
                }
            }
            Artifact::Runc => {
                // runc names its 32-bit ARM build armhf.
                let runc_arch = if arch == "arm" { "armhf" } else { arch };
                let file = format!("runc.{runc_arch}");
                let dir = format!(
                    "opencontainers/runc/releases/download/{}",
                    self.runc_version
                );
                Job {
                    name: a.name().to_string(),
                    rel: format!("{dir}/{file}"),
                    checksum: vec![Checksum::Sidecar {
                        rel: format!("{dir}/runc.sha256sum"),
                    }],
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Executable {
                        link: "runc".to_string(),
                    },
                    provides: vec![Provide {
                        binary: "runc".to_string(),
                        argv_prefix: Vec::new(),
                    }],
                }
            }
            Artifact::CniPlugins => {
                let v = &self.cni_plugins_version;
                let file = format!("cni-plugins-linux-{arch}-{v}.tgz");
                let rel = format!("containernetworking/plugins/releases/download/{v}/{file}");
                Job {
                    name: a.name().to_string(),
                    checksum: vec![Checksum::Sidecar {
                        rel: format!("{rel}.sha256"),
                    }],
                    rel,
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Archive {
                        select: Select::AllIn {
                            dir: "",
                            required: &["bridge", "host-local", "loopback"],
                            // Up to v0.9.1 the set carried a `flannel` of its own; flannel's
                            // own release is the one source of that name (the table's doc).
                            except: &["flannel"],
                        },
                        link_prefix: "cni/",
                    },
                    provides: Vec::new(),
                }
            }
            Artifact::FlannelCni => {
                let tag = &self.flannel_cni_version;
                let file = flannel_cni_file(tag, arch);
                let rel = format!("flannel-io/cni-plugin/releases/download/{tag}/{file}");
                Job {
                    name: a.name().to_string(),
                    // Its release scripts publish `ARCHIVE.sha256` (sha256sum's format); the
                    // release API's digest, from the same origin, stands in where one is
                    // missing.
                    checksum: vec![
                        Checksum::Sidecar {
                            rel: format!("{rel}.sha256"),
                        },
                        Checksum::ReleaseDigest {
                            rel: release_api_rel("flannel-io/cni-plugin", tag),
                            asset: file.clone(),
                        },
                    ],
                    rel,
                    file_name: file,
                    upstream: Upstream::GitHub,
                    content: Content::Archive {
                        select: Select::Renamed {
                            member: format!("flannel-{arch}"),
                            binary: "flannel",
                        },
                        // Beside the other plugins: containerd looks in one dir.
                        link_prefix: "cni/",
                    },
                    provides: Vec::new(),
                }
            }
        }
    }
}

/// GitHub's release API answer for `repo`'s release `tag`, relative to its host: the same path
/// under a mirror (`repos/flannel-io/flannel/releases/tags/v0.27.4`).
fn release_api_rel(repo: &str, tag: &str) -> String {
    format!("repos/{repo}/releases/tags/{tag}")
}

/// Which upstream host serves a path when no mirror is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    DlK8s,
    GitHub,
    /// GitHub's REST API (api.github.com): release answers, for the digests of assets whose
    /// project publishes no checksum file.
    GitHubApi,
}

/// Where the published checksum of a download lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checksum {
    /// A file beside it: either the bare hex, or `<hex>  <file name>` lines.
    Sidecar { rel: String },
    /// The `digest` (`sha256:<hex>`) GitHub's release API shows for the asset named `asset`
    /// in the answer at `rel` ([`Upstream::GitHubApi`]). GitHub computes it when the asset is
    /// uploaded and serves it over TLS from the release's own origin: the same trust as a
    /// checksum file the project uploads beside the asset, no more.
    ReleaseDigest { rel: String, asset: String },
}

/// Which members of an archive are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Select {
    /// Files with these names directly inside `dir`.
    Named {
        dir: String,
        required: &'static [&'static str],
        optional: &'static [&'static str],
    },
    /// Every regular file directly inside `dir` (`""` = the top) but those named in `except`;
    /// `required` must be there.
    AllIn {
        dir: &'static str,
        required: &'static [&'static str],
        except: &'static [&'static str],
    },
    /// The one file `member` at the top of the archive, kept as `binary` (flannel's
    /// `flannel-amd64`, which CNI configs name `flannel`). Required.
    Renamed {
        member: String,
        binary: &'static str,
    },
}

impl Select {
    /// The binary name a member path maps to, if it is kept. Only the base name is ever used
    /// for output, so a hostile `../../x` member cannot write outside the cache.
    pub(crate) fn pick(&self, member: &str) -> Option<String> {
        let member = member.trim_start_matches("./");
        let (dir, base) = match member.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", member),
        };
        if base.is_empty() || base.starts_with('.') {
            return None;
        }
        match self {
            Select::Named {
                dir: want,
                required,
                optional,
            } => (dir == want && (required.contains(&base) || optional.contains(&base)))
                .then(|| base.to_string()),
            Select::AllIn {
                dir: want, except, ..
            } => (dir == *want && !except.contains(&base)).then(|| base.to_string()),
            Select::Renamed { member, binary } => {
                (dir.is_empty() && base == member).then(|| binary.to_string())
            }
        }
    }

    /// What must be in the archive: (the member, for an error, and the name it is kept as).
    pub(crate) fn required(&self) -> Vec<(String, String)> {
        match self {
            Select::Named { required, .. } | Select::AllIn { required, .. } => required
                .iter()
                .map(|r| (r.to_string(), r.to_string()))
                .collect(),
            Select::Renamed { member, binary } => vec![(member.clone(), binary.to_string())],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// The download is the executable; it is linked as `link` in the version's bin dir.
    Executable { link: String },
    /// A tarball (gzip); the selected members become executables linked as
    /// `link_prefix + name`.
    Archive {
        select: Select,
        link_prefix: &'static str,
    },
}

/// A binary an executable download provides, and the leading argv that selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Provide {
    pub binary: String,
    pub argv_prefix: Vec<String>,
}

/// One download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// `kube-apiserver`, `hyperkube`, `etcd`: the key for pinned checksums and the record.
    pub name: String,
    /// Upstream file name (`etcd-v3.4.23-linux-amd64.tar.gz`), also accepted as a pin key.
    pub file_name: String,
    /// Path in the upstream layout, relative to the host.
    pub rel: String,
    pub upstream: Upstream,
    /// Where the published checksum may be, tried in order until one is found; empty when
    /// nothing is published.
    pub checksum: Vec<Checksum>,
    pub content: Content,
    /// For executables; archives provide what they contain.
    pub provides: Vec<Provide>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DEFAULT_KUBE_VERSION;

    fn kv(v: &str) -> KubeVersion {
        KubeVersion::parse(v).unwrap()
    }

    fn m(v: &str) -> ReleaseManifest {
        ReleaseManifest::resolve(&kv(v), "amd64", &VersionOverrides::default()).unwrap()
    }

    #[test]
    fn v1_20_pairs_with_etcd_3_4_13_and_flannel_0_13() {
        let r = m("v1.20.2");
        assert_eq!(r.etcd_version, "v3.4.13");
        assert_eq!(r.flannel_version, "v0.13.0");
        assert!(!r.hyperkube);
    }

    #[test]
    fn default_version_has_a_manifest_with_etcd_3_6() {
        let r = m(DEFAULT_KUBE_VERSION);
        assert!(r.etcd_version.starts_with("v3.6."), "{}", r.etcd_version);
        assert!(r.flannel_version.starts_with("v0.27."));
    }

    #[test]
    fn unknown_minor_and_garbage_are_refused() {
        let none = VersionOverrides::default();
        assert!(matches!(
            ReleaseManifest::resolve(&kv("v1.99.0"), "amd64", &none),
            Err(FetchError::NoManifest { .. })
        ));
        // A version that could name a path never becomes a KubeVersion.
        assert_eq!(KubeVersion::parse("v1.20/../x"), None);
        assert!(matches!(
            ReleaseManifest::resolve(&kv("v1.20.2"), "mips", &none),
            Err(FetchError::UnsupportedArch { .. })
        ));
        let evil = VersionOverrides {
            etcd: Some("3.4.23/../../x".into()),
            ..Default::default()
        };
        assert!(ReleaseManifest::resolve(&kv("v1.20.2"), "amd64", &evil).is_err());
    }

    #[test]
    fn overrides_are_normalised_with_a_v() {
        let o = VersionOverrides {
            etcd: Some("3.4.23".into()),
            ..Default::default()
        };
        let r = ReleaseManifest::resolve(&kv("v1.20.2"), "amd64", &o).unwrap();
        assert_eq!(r.kube_version, "v1.20.2");
        assert_eq!(r.etcd_version, "v3.4.23");
        let jobs = r.jobs(&[Artifact::Etcd]);
        assert_eq!(
            jobs[0].rel,
            "etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz"
        );
        assert_eq!(
            jobs[0].checksum,
            vec![Checksum::Sidecar {
                rel: "etcd-io/etcd/releases/download/v3.4.23/SHA256SUMS".into()
            }]
        );
    }

    #[test]
    fn old_versions_share_one_hyperkube_download() {
        let r = m("v1.18.20");
        assert!(r.hyperkube);
        let jobs = r.jobs(&[
            Artifact::KubeApiserver,
            Artifact::Kubelet,
            Artifact::Kubectl,
            Artifact::KubeApiserver,
        ]);
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        let hk = jobs.iter().find(|j| j.name == "hyperkube").unwrap();
        assert_eq!(hk.rel, "release/v1.18.20/bin/linux/amd64/hyperkube");
        let names: Vec<_> = hk.provides.iter().map(|p| p.argv_prefix.clone()).collect();
        assert_eq!(
            names,
            vec![
                vec!["kube-apiserver".to_string()],
                vec!["kubelet".to_string()]
            ]
        );
        assert!(jobs.iter().any(|j| j.name == "kubectl"));
    }

    #[test]
    fn upstream_layouts() {
        let r = m("v1.37.1");
        let jobs = r.jobs(&Artifact::ALL);
        let rel = |n: &str| jobs.iter().find(|j| j.name == n).unwrap().rel.clone();
        assert_eq!(rel("kubelet"), "release/v1.37.1/bin/linux/amd64/kubelet");
        assert_eq!(
            rel("containerd"),
            "containerd/containerd/releases/download/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz"
        );
        assert_eq!(
            rel("runc"),
            "opencontainers/runc/releases/download/v1.3.0/runc.amd64"
        );
        assert_eq!(
            rel("cni-plugins"),
            "containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-amd64-v1.7.1.tgz"
        );
        assert_eq!(
            rel("flanneld"),
            "flannel-io/flannel/releases/download/v0.27.4/flanneld-amd64"
        );
        assert_eq!(
            rel("flannel-cni"),
            "flannel-io/cni-plugin/releases/download/v1.9.1-flannel1/cni-plugin-flannel-linux-amd64-v1.9.1.tgz"
        );
        let job = |n: &str| jobs.iter().find(|j| j.name == n).unwrap().clone();
        // flannel publishes no checksum file for flanneld: GitHub's release answer it is.
        assert_eq!(
            job("flanneld").checksum,
            vec![Checksum::ReleaseDigest {
                rel: "repos/flannel-io/flannel/releases/tags/v0.27.4".into(),
                asset: "flanneld-amd64".into()
            }]
        );
        // flannel's CNI plugin: its sidecar first, the release answer where it is missing.
        assert_eq!(
            job("flannel-cni").checksum,
            vec![
                Checksum::Sidecar {
                    rel: format!("{}.sha256", rel("flannel-cni"))
                },
                Checksum::ReleaseDigest {
                    rel: "repos/flannel-io/cni-plugin/releases/tags/v1.9.1-flannel1".into(),
                    asset: "cni-plugin-flannel-linux-amd64-v1.9.1.tgz".into()
                }
            ]
        );
    }

    /// The archive names checked against flannel-io/cni-plugin's releases: the tag as is up to
    /// v1.5.1-flannelN, without its `-flannelN` part from v1.9.0-flannel1 on.
    #[test]
    fn flannel_cni_archive_names_follow_its_releases() {
        for (tag, arch, file) in [
            (
                "v1.1.2",
                "amd64",
                "cni-plugin-flannel-linux-amd64-v1.1.2.tgz",
            ),
            (
                "v1.1.2",
                "arm64",
                "cni-plugin-flannel-linux-arm64-v1.1.2.tgz",
            ),
            (
                "v1.1.0",
                "amd64",
                "cni-plugin-flannel-linux-amd64-v1.1.0.tgz",
            ),
            (
                "v1.5.1-flannel2",
                "amd64",
                "cni-plugin-flannel-linux-amd64-v1.5.1-flannel2.tgz",
            ),
            (
                "v1.5.1-flannel3",
                "amd64",
                "cni-plugin-flannel-linux-amd64-v1.5.1-flannel3.tgz",
            ),
            (
                "v1.9.0-flannel1",
                "amd64",
                "cni-plugin-flannel-linux-amd64-v1.9.0.tgz",
            ),
            (
                "v1.9.1-flannel3",
                "arm64",
                "cni-plugin-flannel-linux-arm64-v1.9.1.tgz",
            ),
        ] {
            assert_eq!(flannel_cni_file(tag, arch), file);
        }
    }

    /// Every minor of the table: a pod-running flannel node gets flannel's CNI plugin from
    /// flannel's releases, linked as `cni/flannel` from the archive's `flannel-ARCH`, and the
    /// runtime's plugin set (which carried a `flannel` of its own up to v0.9.1) never
    /// provides that name.
    #[test]
    fn every_minor_fetches_flannels_cni_plugin_from_flannel() {
        for r in TABLE {
            let kube = kv(&format!("v1.{}.0", r.minor));
            let m = ReleaseManifest::resolve(&kube, "arm64", &VersionOverrides::default()).unwrap();
            assert!(
                [FC_OLD, FC_MID, FC_NEW].contains(&m.flannel_cni_version.as_str()),
                "{kube}: {}",
                m.flannel_cni_version
            );
            let w = needed_artifacts(NodeRole::Worker, Network::Flannel);
            let jobs = m.jobs(&[w.as_slice(), &Artifact::RUNTIME].concat());
            let fc = jobs.iter().find(|j| j.name == "flannel-cni").unwrap();
            assert!(
                fc.rel.starts_with(&format!(
                    "flannel-io/cni-plugin/releases/download/{}/cni-plugin-flannel-linux-arm64-v",
                    m.flannel_cni_version
                )),
                "{}",
                fc.rel
            );
            let Content::Archive {
                select,
                link_prefix,
            } = &fc.content
            else {
                panic!("{kube}: flannel's CNI plugin is a tarball")
            };
            assert_eq!(*link_prefix, "cni/");
            assert_eq!(select.pick("flannel-arm64").as_deref(), Some("flannel"));
            assert_eq!(select.pick("./flannel-arm64").as_deref(), Some("flannel"));
            assert_eq!(select.pick("flannel-amd64"), None);
            let cni = jobs.iter().find(|j| j.name == "cni-plugins").unwrap();
            let Content::Archive { select, .. } = &cni.content else {
                panic!("{kube}: the CNI plugins are a tarball")
            };
            assert_eq!(select.pick("./flannel"), None, "{kube}");
            assert_eq!(select.pick("./bridge").as_deref(), Some("bridge"));
        }
        // A master without pods, or a node without flannel, has no use for it.
        let m = needed_artifacts(NodeRole::Master { schedulable: false }, Network::Flannel);
        assert!(!m.contains(&Artifact::FlannelCni));
        let n = needed_artifacts(NodeRole::Master { schedulable: true }, Network::None);
        assert!(!n.contains(&Artifact::FlannelCni));
        let o = VersionOverrides {
            flannel_cni: Some("1.1.0".into()),
            ..Default::default()
        };
        let r = ReleaseManifest::resolve(&kv("v1.37.1"), "amd64", &o).unwrap();
        assert_eq!(r.flannel_cni_version, "v1.1.0");
    }

    #[test]
    fn needed_artifacts_by_role() {
        let w = needed_artifacts(NodeRole::Worker, Network::Flannel);
        assert_eq!(
            w,
            vec![
                Artifact::Kubelet,
                Artifact::KubeProxy,
                Artifact::Flanneld,
                Artifact::FlannelCni
            ]
        );
        let m = needed_artifacts(NodeRole::Master { schedulable: false }, Network::Flannel);
        assert!(m.contains(&Artifact::Etcd) && !m.contains(&Artifact::Kubelet));
        assert!(!m.contains(&Artifact::Flanneld));
        let ms = needed_artifacts(NodeRole::Master { schedulable: true }, Network::None);
        assert!(ms.contains(&Artifact::Kubelet) && !ms.contains(&Artifact::Flanneld));
    }

    #[test]
    fn archive_member_selection_uses_base_names_only() {
        let s = Select::Named {
            dir: "etcd-v3.4.23-linux-amd64".into(),
            required: &["etcd", "etcdctl"],
            optional: &[],
        };
        assert_eq!(
            s.pick("etcd-v3.4.23-linux-amd64/etcd").as_deref(),
            Some("etcd")
        );
        assert_eq!(s.pick("etcd-v3.4.23-linux-amd64/README.md"), None);
        assert_eq!(s.pick("other/etcd"), None);
        let cni = Select::AllIn {
            dir: "",
            required: &[],
            except: &[],
        };
        assert_eq!(cni.pick("./bridge").as_deref(), Some("bridge"));
        assert_eq!(cni.pick("./sub/bridge"), None);
        assert_eq!(cni.pick("../.."), None);
        let bin = Select::AllIn {
            dir: "bin",
            required: &[],
            except: &[],
        };
        assert_eq!(bin.pick("bin/ctr").as_deref(), Some("ctr"));
    }
}
