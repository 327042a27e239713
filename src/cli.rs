//! The command line (clap derive). Parsing only: each subcommand's work lives in its own file
//! under `src/cmd/`.
//!
//! Flags that also exist in the config file carry no clap default, so "not given" stays
//! distinguishable from "given the default" and the file's value can win over the built-in
//! default. The defaults shown in `--help` are the ones in [`crate::config::RawConfig`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_CONFIG_FILE, Overrides};
use crate::model::Role;

#[derive(Debug, Parser)]
#[command(
    name = "kubesup",
    version,
    about = "Fetch, certify and supervise a node's Kubernetes processes",
    long_about = "kubesup runs on every node as the supervisor of that node's Kubernetes \
processes, instead of systemd units or static pods. On a master it fetches the component \
binaries, makes the cluster's PKI and kubeconfigs, and starts etcd, kube-apiserver, \
kube-controller-manager and kube-scheduler in dependency order, restarting each on its own \
when it fails. On a worker it joins the cluster with one token and supervises containerd, \
kubelet, kube-proxy and flannel.",
    propagate_version = true
)]
pub struct Cli {
    /// Log format of kubesup's own output and of forwarded component output.
    #[arg(
        long,
        global = true,
        env = "KUBESUP_LOG_FORMAT",
        value_name = "text|json"
    )]
    pub log_format: Option<String>,

    /// Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`.
    #[arg(long, global = true, env = "KUBESUP_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a control-plane node: etcd, kube-apiserver, controller-manager, scheduler
    /// (and containerd, kubelet, kube-proxy with --schedulable).
    Master(MasterArgs),
    /// Join a cluster and run containerd, kubelet, kube-proxy and flannel.
    Worker(WorkerArgs),
    /// Create, list and delete join tokens (on a master).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List this cluster's etcd members, or remove one whose machine is gone (on a master).
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// Back up this master: etcd's snapshot, the cluster's CA and service-account keys and its
    /// settings, in one archive (0600); or list the scheduled backups.
    Backup(BackupArgs),
    /// Restore a backup into an empty data dir, as a new one-member cluster with the same CAs;
    /// then `kubesup master` on that data dir brings the cluster back.
    Restore(RestoreArgs),
    /// Show every supervised component: state, pid, uptime, restarts, readiness, memory, CPU.
    Status(StatusArgs),
    /// Generate, check and rotate the cluster's certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Download and verify every binary a node role needs, or make/load an air-gap bundle.
    Fetch(FetchArgs),
    /// Write the config file and service unit for a manual install, then enable it.
    #[command(subcommand)]
    Install(InstallCommand),
    /// Remove what `kubesup install` wrote (the unit and config; not the data dir).
    Uninstall(UninstallArgs),
    /// Stop kubesup and remove everything it created on this node: processes, mounts,
    /// interfaces, iptables chains, the data dir and the PKI.
    Reset(ResetArgs),
    /// Print the default config, or check a config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print kubesup's version and the default Kubernetes version.
    Version,
    /// Supervise the processes listed in a YAML file with kubesup's engine (restarts, backoff,
    /// process-group kills, status socket), without any Kubernetes component.
    Supervise(SuperviseArgs),
    /// Write the man page (used to refresh contrib/kubesup.1).
    #[command(hide = true)]
    Manpage {
        #[arg(long, default_value = "contrib")]
        out_dir: PathBuf,
    },
}

/// Flags every node role shares. Each can also come from the config file, or from the
/// `KUBESUP_*` variable named in its help.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Config file (YAML). Values in it are overridden by KUBESUP_* variables, then by flags.
    #[arg(long, env = "KUBESUP_CONFIG", value_name = "FILE", help = format!("Config file (YAML); overridden by KUBESUP_* variables, then flags [default: {DEFAULT_CONFIG_FILE} if it exists]"))]
    pub config: Option<PathBuf>,
    /// Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup].
    #[arg(long, env = "KUBESUP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address other nodes reach this node on.
    #[arg(long, env = "KUBESUP_ADVERTISE", value_name = "IP")]
    pub advertise: Option<String>,
    /// Node name [default: the hostname, lowercased].
    #[arg(long, env = "KUBESUP_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Kubernetes version to fetch and run [default: v1.37.1].
    #[arg(long, env = "KUBESUP_KUBE_VERSION", value_name = "vX.Y.Z")]
    pub kube_version: Option<String>,
    /// Release mirror: https://, http://, file:// or a directory, in the upstream path layout.
    #[arg(long, env = "KUBESUP_MIRROR", value_name = "URL")]
    pub mirror: Option<String>,
    /// Pod network [default: 10.2.0.0/16].
    #[arg(long, env = "KUBESUP_POD_CIDR", value_name = "CIDR")]
    pub pod_cidr: Option<String>,
    /// Service network; its first address is the API service IP [default: 10.3.0.0/24].
    #[arg(long, env = "KUBESUP_SERVICE_CIDR", value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// Cluster DNS service IP, inside the service network [default: 10.3.0.10].
    #[arg(long, env = "KUBESUP_CLUSTER_DNS", value_name = "IP")]
    pub cluster_dns: Option<String>,
    /// Cluster DNS domain [default: cluster.local].
    #[arg(long, env = "KUBESUP_CLUSTER_DOMAIN", value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,
    /// kube-apiserver secure port [default: 6443].
    #[arg(long, env = "KUBESUP_API_PORT", value_name = "PORT")]
    pub api_port: Option<i64>,
    /// Join API port [default: 9443].
    #[arg(long, env = "KUBESUP_JOIN_PORT", value_name = "PORT")]
    pub join_port: Option<i64>,
    /// Also run containerd, kubelet and kube-proxy on a master, so it takes pods.
    #[arg(long, env = "KUBESUP_SCHEDULABLE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub schedulable: Option<bool>,
    /// Pod network backend [default: flannel].
    #[arg(long, env = "KUBESUP_NETWORK", value_name = "flannel|none")]
    pub network: Option<String>,
    /// flannel's backend (config key flannel.backend), the same on every node of a cluster:
    /// vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly
    /// and needs every node on one L2 segment [default: vxlan].
    #[arg(long, env = "KUBESUP_FLANNEL_BACKEND", value_name = "vxlan|host-gw")]
    pub flannel_backend: Option<String>,
    /// Certificate key type [default: ecdsa-p256].
    #[arg(long, env = "KUBESUP_KEY_TYPE", value_name = "ecdsa-p256|rsa-2048")]
    pub key_type: Option<String>,
    /// Extra subject alternative names for the API server certificate (repeatable).
    #[arg(long = "extra-sans", value_name = "SAN", value_delimiter = ',')]
    pub extra_sans: Vec<String>,
    /// etcd version to fetch, overriding the release manifest's choice.
    #[arg(long, env = "KUBESUP_ETCD_VERSION", value_name = "vX.Y.Z")]
    pub etcd_version: Option<String>,
    /// Run binaries whose checksum could not be verified. Dangerous; logged loudly.
    #[arg(long, env = "KUBESUP_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,
}

impl CommonArgs {
    pub fn overrides(&self, log_format: Option<String>) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            advertise: self.advertise.clone(),
            node_name: self.node_name.clone(),
            kube_version: self.kube_version.clone(),
            mirror: self.mirror.clone(),
            pod_cidr: self.pod_cidr.clone(),
            service_cidr: self.service_cidr.clone(),
            cluster_dns: self.cluster_dns.clone(),
            cluster_domain: self.cluster_domain.clone(),
            api_port: self.api_port,
            join_port: self.join_port,
            schedulable: self.schedulable,
            network: self.network.clone(),
            flannel_backend: self.flannel_backend.clone(),
            log_format,
            key_type: self.key_type.clone(),
            extra_sans: self.extra_sans.clone(),
            insecure_skip_verify: self.insecure_skip_verify.then_some(true),
            etcd_version: self.etcd_version.clone(),
        }
    }
}

/// Just the flags needed to find a node's data dir (for commands that talk to a running node).
#[derive(Debug, Args, Clone, Default)]
pub struct NodeArgs {
    #[arg(long, env = "KUBESUP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "KUBESUP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl NodeArgs {
    pub fn common(&self) -> CommonArgs {
        CommonArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct MasterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Skip a preflight check by name (repeatable; `all` skips every check).
    #[arg(long = "ignore-preflight", value_name = "NAME")]
    pub ignore_preflight: Vec<String>,
    /// Let a node name that already joined rejoin with a new key (after `kubectl delete node`
    /// and `kubesup reset` on a reinstalled machine).
    #[arg(long)]
    pub force: bool,
    /// Join the control plane of an existing cluster through the join API of any of its
    /// masters, e.g. https://10.0.0.1:9443, with a token from `kubesup token create --role
    /// master`. Only read while this data dir holds no etcd data: once it does, this master
    /// is a member, and running it again resumes or restarts that member.
    #[arg(long, env = "KUBESUP_JOIN", value_name = "URL")]
    pub join: Option<String>,
    /// Control-plane join token (prefer --token-file or KUBESUP_TOKEN: flags are visible in
    /// the process list).
    #[arg(
        long,
        env = "KUBESUP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        requires = "join"
    )]
    pub token: Option<String>,
    /// File holding the control-plane join token.
    #[arg(long, value_name = "FILE", conflicts_with = "token", requires = "join")]
    pub token_file: Option<PathBuf>,
    /// Lost quorum: start this master's etcd once as a one-member cluster from its own data
    /// (etcd's --force-new-cluster). Recorded in the data dir, so a later start with the flag
    /// still given does not reset again. The other masters then `kubesup reset` and join again.
    #[arg(long, conflicts_with = "join")]
    pub cluster_reset: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Join API of a master, e.g. https://10.0.0.1:9443.
    #[arg(long, env = "KUBESUP_JOIN", value_name = "URL")]
    pub join: Option<String>,
    /// Join token from `kubesup token create` (prefer --token-file or KUBESUP_TOKEN: flags are
    /// visible in the process list).
    #[arg(
        long,
        env = "KUBESUP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    #[arg(long = "ignore-preflight", value_name = "NAME")]
    pub ignore_preflight: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a join token and print it (only ever shown once).
    Create {
        #[command(flatten)]
        node: NodeArgs,
        /// What the token joins: `worker` nodes, or `master`s of the control plane (a master
        /// token is handed the cluster's CA keys; create one only on a master, and only when
        /// you are about to use it).
        #[arg(long, value_enum, default_value_t = Role::Worker)]
        role: Role,
        /// Lifetime; `0` means never expires and must be asked for explicitly. Default: 24h
        /// for a worker token, 1h for a master token.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List tokens (id, expiry, description; never the secret).
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Delete a token by id.
    Delete {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Table of the etcd members: name, ID, peer and client URLs, voter or learner, leader,
    /// health and db size, each member asked on its own client URLs.
    Members {
        #[command(flatten)]
        node: NodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove the member of a machine that is gone for good. Refused if the voters left would
    /// not have a healthy quorum, and for this machine's own member (use `kubesup reset` there).
    Remove {
        #[command(flatten)]
        node: NodeArgs,
        /// Member name, as `kubesup etcd members` lists it (or the hex ID of an unstarted one).
        name: String,
        /// Remove even if the voters left would lack a healthy quorum.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Write the archive here [default: the backup dir, named by time and etcd revision].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Encrypt the archive (AES-256-GCM) with the key in this file (at least 32 random bytes,
    /// e.g. `head -c 32 /dev/urandom | base64`). Keep it apart from the backups: restore needs it.
    #[arg(long, value_name = "FILE")]
    pub encrypt_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The backups in this master's backup dir: time, size, etcd revision.
    List {
        #[command(flatten)]
        node: NodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive from `kubesup backup`.
    pub file: PathBuf,
    /// This node's flags, as `kubesup master` will get them (--data-dir, --advertise,
    /// --node-name, --mirror, ...); the cluster settings come from the archive.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Restore over a data dir that holds a node: its old state is moved aside (kept, and
    /// its path printed), never deleted.
    #[arg(long)]
    pub force: bool,
    /// The key file the archive was encrypted with.
    #[arg(long, value_name = "FILE")]
    pub encrypt_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names
    /// changed or that are due for renewal. Never replaces a CA.
    Generate {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Print a table of every certificate; exit 1 if any expired or expires within 30 days.
    Check {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Re-issue leaf certificates (never CAs).
    Rotate {
        #[command(flatten)]
        common: CommonArgs,
        /// Leaf to re-issue, e.g. apiserver.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Re-issue every leaf.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Node role to fetch for.
    #[arg(long, value_enum, default_value = "master")]
    pub role: Role,
    /// Also fetch containerd, runc and the CNI plugins.
    #[arg(long)]
    pub with_runtime: bool,
    /// Write everything fetched into one tar, with its manifest and hashes, for air-gapped nodes.
    #[arg(long, value_name = "FILE", conflicts_with = "from_bundle")]
    pub bundle: Option<PathBuf>,
    /// Load binaries from a bundle made by `--bundle` instead of the network.
    #[arg(long, value_name = "FILE")]
    pub from_bundle: Option<PathBuf>,
    /// Print each download (name, URL, where its checksum comes from, what it provides)
    /// without fetching anything.
    #[arg(long, conflicts_with_all = ["bundle", "from_bundle"])]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum InstallCommand {
    /// Install the master service: /etc/kubesup/config.yaml from these flags, the systemd unit,
    /// then enable and start it (or say what to run without systemd).
    Master {
        #[command(flatten)]
        args: MasterArgs,
        #[command(flatten)]
        opts: InstallOpts,
    },
    /// Install the worker service, with its join URL and token (kept in /etc/kubesup/token,
    /// 0600).
    Worker {
        #[command(flatten)]
        args: WorkerArgs,
        #[command(flatten)]
        opts: InstallOpts,
    },
}

#[derive(Debug, Args)]
pub struct InstallOpts {
    /// Install below this directory instead of / (building an image); nothing is started.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Replace an existing, different config or unit (the old file is kept as FILE.bak).
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The root `kubesup install --root` used.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// On a master of several: reset even when taking its etcd member out would leave the
    /// others without a quorum, or when they cannot be reached.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default config file, with comments.
    Default,
    /// Validate a config file; print every problem, one per line, and exit 1 if any.
    Check {
        file: PathBuf,
        #[command(flatten)]
        common: Box<CommonArgs>,
    },
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The children file (see `kubesup supervise --help` for its format).
    pub file: PathBuf,
    /// Data dir for the lock, control socket, pid record and logs.
    #[arg(long, env = "KUBESUP_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_flags_have_the_documented_names() {
        let cli = Cli::try_parse_from([
            "kubesup",
            "master",
            "--config",
            "/etc/k.yaml",
            "--data-dir",
            "/d",
            "--advertise",
            "10.0.0.1",
            "--node-name",
            "n1",
            "--kube-version",
            "v1.20.2",
            "--mirror",
            "/m",
            "--pod-cidr",
            "10.2.0.0/16",
            "--service-cidr",
            "10.3.0.0/24",
            "--cluster-dns",
            "10.3.0.10",
            "--cluster-domain",
            "cluster.local",
            "--api-port",
            "6443",
            "--join-port",
            "9443",
            "--schedulable",
            "--network",
            "none",
            "--flannel-backend",
            "host-gw",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Master(m) = cli.command else {
            panic!("not master")
        };
        assert_eq!(m.common.schedulable, Some(true));
        assert_eq!(
            m.common.overrides(None).flannel_backend.as_deref(),
            Some("host-gw")
        );
        assert_eq!(m.common.api_port, Some(6443));
        assert_eq!(cli.log_format.as_deref(), Some("json"));
    }

    #[test]
    fn backup_restore_and_cluster_reset_parse() {
        let cli = Cli::try_parse_from(["kubesup", "backup", "--output", "/b.tar"]).unwrap();
        let Command::Backup(b) = cli.command else {
            panic!("not backup")
        };
        assert!(b.command.is_none());
        assert_eq!(b.output.as_deref(), Some(std::path::Path::new("/b.tar")));
        let cli = Cli::try_parse_from(["kubesup", "backup", "list", "--json"]).unwrap();
        let Command::Backup(b) = cli.command else {
            panic!("not backup")
        };
        assert!(matches!(
            b.command,
            Some(BackupCommand::List { json: true, .. })
        ));
        let cli = Cli::try_parse_from([
            "kubesup",
            "restore",
            "/b.tar",
            "--data-dir",
            "/d",
            "--force",
        ])
        .unwrap();
        let Command::Restore(r) = cli.command else {
            panic!("not restore")
        };
        assert!(r.force);
        assert_eq!(
            r.common.data_dir.as_deref(),
            Some(std::path::Path::new("/d"))
        );
        let e = Cli::try_parse_from(["kubesup", "restore"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = Cli::try_parse_from(["kubesup", "master", "--cluster-reset"]).unwrap();
        let Command::Master(m) = cli.command else {
            panic!("not master")
        };
        assert!(m.cluster_reset);
    }

    #[test]
    fn etcd_subcommands_parse_and_remove_needs_a_name() {
        let cli = Cli::try_parse_from(["kubesup", "etcd", "members", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Etcd(EtcdCommand::Members { json: true, .. })
        ));
        let cli = Cli::try_parse_from(["kubesup", "etcd", "remove", "m2", "--force"]).unwrap();
        let Command::Etcd(EtcdCommand::Remove { name, force, .. }) = cli.command else {
            panic!("not etcd remove")
        };
        assert_eq!((name.as_str(), force), ("m2", true));
        let e = Cli::try_parse_from(["kubesup", "etcd", "remove"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("<NAME>"), "{e}");
        let e = Cli::try_parse_from(["kubesup", "etcd", "remove", "a", "b"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let e = Cli::try_parse_from(["kubesup", "etcd"]).unwrap_err();
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }
}
