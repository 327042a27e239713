//! Every path kubesup reads or writes on disk, derived from one data dir.
//!
//! Invariant: no other module joins path strings onto the data dir by itself. Several nodes run
//! on one machine in tests, each with its own data dir, so a path built anywhere else is a
//! collision waiting to happen. This module does no I/O.

use std::path::{Path, PathBuf};

use crate::model::Component;

/// The on-disk layout below one data dir (default `/var/lib/kubesup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: data_dir.into(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// flock held for the whole life of a running kubesup: one instance per data dir.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("kubesup.lock")
    }

    /// Unix control socket (mode 0600) that serves `kubesup status` and `kubesup reset`.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("kubesup.sock")
    }

    /// Record of every live child (pid, start time, executable), swept after a crash.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("children.json")
    }

    /// The resolved configuration a running kubesup was started with (written for SIGHUP
    /// diffing and for `kubesup status`).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Size-rotated log file of one component's stdout and stderr.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn component_log(&self, component: &str) -> PathBuf {
        self.log_dir().join(format!("{component}.log"))
    }

    /// Content-addressed binary cache: `cache/sha256/<hex>`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Per-version directory of named links into the cache (`bin/v1.20.2/kube-apiserver`).
    pub fn bin_dir(&self, version: &str) -> PathBuf {
        self.bin_root().join(version)
    }

    /// Every version's bin dir lives here.
    pub fn bin_root(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Generated config files and argv of one component (`components/kubelet/...`).
    pub fn component_dir(&self, component: Component) -> PathBuf {
        self.root.join("components").join(component.name())
    }

    /// The versioned config file of a component that takes one (kubelet, kube-proxy,
    /// kube-scheduler).
    pub fn component_config(&self, component: Component) -> PathBuf {
        self.component_dir(component).join("config.yaml")
    }

    /// Where flanneld writes this node's subnet lease, which flannel's CNI plugin reads.
    pub fn flannel_subnet_file(&self) -> PathBuf {
        self.component_dir(Component::Flanneld).join("subnet.env")
    }

    pub fn etcd_data_dir(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// Whether this master's etcd member has data: etcd writes `member/` on its first start.
    /// This, and nothing else, says whether the master is (or was) a member of a cluster.
    pub fn etcd_has_data(&self) -> bool {
        self.etcd_data_dir().join("member").is_dir()
    }

    /// A joined master's record of its cluster: the join API it came through and the
    /// settings every master shares. Written before its etcd member is added.
    pub fn joined_cluster(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// What this master last saw of its etcd membership: its member ID, the other members'
    /// client URLs, and whether the cluster has more than one member.
    pub fn etcd_member_record(&self) -> PathBuf {
        self.root.join("etcd-member.json")
    }

    /// `kubesup master --cluster-reset`'s record that etcd was reset from this data dir once
    /// (so a flag left in a unit file does not reset it again).
    pub fn etcd_reset_record(&self) -> PathBuf {
        self.root.join("etcd-reset.json")
    }

    /// Where scheduled backups go unless `backup.dir` says otherwise.
    pub fn backup_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// A restore's staging dir: the extracted snapshot and the etcd data restored from it,
    /// before that data is renamed into [`Paths::etcd_data_dir`].
    pub fn restore_staging(&self) -> PathBuf {
        self.root.join("restore.partial")
    }

    /// The restored etcd data inside [`Paths::restore_staging`].
    pub fn restore_staging_etcd(&self) -> PathBuf {
        self.restore_staging().join("etcd")
    }

    /// The snapshot extracted from an archive inside [`Paths::restore_staging`].
    pub fn restore_staging_snapshot(&self) -> PathBuf {
        self.restore_staging().join("snapshot.db")
    }

    /// Where `kubesup restore --force` moves a data dir's old node state (never deleted).
    pub fn moved_aside(&self, stamp: &str) -> PathBuf {
        self.root.join(format!("before-restore-{stamp}"))
    }

    /// What in the data dir is a node's state, as opposed to the binary cache, logs, lock
    /// and backups, which a restore keeps: etcd's data, the PKI, kubeconfigs, component files,
    /// the join and membership records, a worker's join state and load-balancer cache, and a
    /// half-done restore.
    pub fn node_state(&self) -> Vec<PathBuf> {
        vec![
            self.etcd_data_dir(),
            self.pki().dir().to_path_buf(),
            self.kubeconfig_dir(),
            self.root.join("components"),
            self.joined_cluster(),
            self.etcd_member_record(),
            self.etcd_reset_record(),
            self.join_dir(),
            self.root.join("apilb"),
            self.addons_dir(),
            self.restore_staging(),
        ]
    }

    pub fn kubelet_root_dir(&self) -> PathBuf {
        self.root.join("kubelet")
    }

    pub fn containerd_dir(&self) -> PathBuf {
        self.root.join("containerd")
    }

    pub fn containerd_root(&self) -> PathBuf {
        self.containerd_dir().join("root")
    }

    pub fn containerd_state(&self) -> PathBuf {
        self.containerd_dir().join("state")
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_dir().join("containerd.sock")
    }

    /// CNI network configs (`--cni-conf-dir` / containerd's `conf_dir`).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni").join("net.d")
    }

    /// host-local IPAM state; the CNI default (/var/lib/cni/networks) would be shared by every
    /// node on one machine.
    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.root.join("cni").join("networks")
    }

    pub fn kubeconfig_dir(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    pub fn kubeconfig(&self, user: KubeconfigUser) -> PathBuf {
        self.kubeconfig_dir()
            .join(format!("{}.conf", user.file_stem()))
    }

    /// Manifests of add-ons applied after start (CoreDNS).
    pub fn addons_dir(&self) -> PathBuf {
        self.root.join("addons")
    }

    /// The node-local API load balancer's last list of API servers from the cluster, read at
    /// the next start so that a node restarted while its join master is down still finds the
    /// others.
    pub fn apilb_backends(&self) -> PathBuf {
        self.root.join("apilb").join("backends.json")
    }

    /// Join state on a worker (the node's identity and what the master told it).
    pub fn join_dir(&self) -> PathBuf {
        self.root.join("join")
    }

    pub fn pki(&self) -> PkiPaths {
        PkiPaths {
            dir: self.root.join("pki"),
        }
    }
}

/// Users that get a kubeconfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeconfigUser {
    Admin,
    ControllerManager,
    Scheduler,
    Kubelet,
    KubeProxy,
}

impl KubeconfigUser {
    pub const ALL: [KubeconfigUser; 5] = [
        Self::Admin,
        Self::ControllerManager,
        Self::Scheduler,
        Self::Kubelet,
        Self::KubeProxy,
    ];

    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ControllerManager => "controller-manager",
            Self::Scheduler => "scheduler",
            Self::Kubelet => "kubelet",
            Self::KubeProxy => "kube-proxy",
        }
    }
}

/// One certificate and its key: `<dir>/<name>.crt` and `<dir>/<name>.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The PKI layout, modelled on kubeadm's so that operators find files where they expect them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    dir: PathBuf,
}

impl PkiPaths {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<pki>/<rel>.crt` + `<pki>/<rel>.key`; `rel` may contain a subdirectory (`etcd/ca`).
    pub fn pair(&self, rel: &str) -> CertPair {
        CertPair {
            cert: self.dir.join(format!("{rel}.crt")),
            key: self.dir.join(format!("{rel}.key")),
        }
    }

    pub fn ca(&self) -> CertPair {
        self.pair("ca")
    }
    pub fn etcd_ca(&self) -> CertPair {
        self.pair("etcd/ca")
    }
    pub fn front_proxy_ca(&self) -> CertPair {
        self.pair("front-proxy-ca")
    }
    pub fn apiserver(&self) -> CertPair {
        self.pair("apiserver")
    }
    pub fn apiserver_kubelet_client(&self) -> CertPair {
        self.pair("apiserver-kubelet-client")
    }
    pub fn apiserver_etcd_client(&self) -> CertPair {
        self.pair("apiserver-etcd-client")
    }
    pub fn front_proxy_client(&self) -> CertPair {
        self.pair("front-proxy-client")
    }
    pub fn etcd_server(&self) -> CertPair {
        self.pair("etcd/server")
    }
    pub fn etcd_peer(&self) -> CertPair {
        self.pair("etcd/peer")
    }
    pub fn etcd_healthcheck_client(&self) -> CertPair {
        self.pair("etcd/healthcheck-client")
    }
    pub fn flannel_etcd_client(&self) -> CertPair {
        self.pair("etcd/flannel-client")
    }
    pub fn admin(&self) -> CertPair {
        self.pair("admin")
    }
    pub fn controller_manager(&self) -> CertPair {
        self.pair("controller-manager")
    }
    pub fn scheduler(&self) -> CertPair {
        self.pair("scheduler")
    }
    pub fn kube_proxy(&self) -> CertPair {
        self.pair("kube-proxy")
    }
    /// The kubelet client cert of this node (CN system:node:NAME).
    pub fn kubelet_client(&self) -> CertPair {
        self.pair("kubelet-client")
    }
    /// The kubelet serving cert of this node.
    pub fn kubelet_server(&self) -> CertPair {
        self.pair("kubelet-server")
    }
    pub fn join_server(&self) -> CertPair {
        self.pair("join-server")
    }
    /// Service-account signing key (private) and its public half.
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_lives_under_the_data_dir() {
        let p = Paths::new("/srv/node1");
        assert!(p.pki().etcd_ca().key.starts_with("/srv/node1/pki/etcd"));
        assert_eq!(
            p.kubeconfig(KubeconfigUser::ControllerManager),
            PathBuf::from("/srv/node1/kubeconfig/controller-manager.conf")
        );
        assert_eq!(
            p.component_log("etcd"),
            PathBuf::from("/srv/node1/logs/etcd.log")
        );
    }
}
