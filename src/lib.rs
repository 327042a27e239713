//! kubesup: one binary that runs on every node as the supervisor of that node's Kubernetes
//! processes.
//!
//! A tour, from the command line down. Dependencies point down this list, never up:
//! - [`cli`] parses the command line; [`run`] dispatches to one file per subcommand in [`cmd`]
//!   (`master`, `worker`, `token`, `status`, `certs`, `fetch`, `install`, `reset`, ...); every
//!   error type maps itself to its exit code and text ([`errors`]).
//! - [`daemon`] is the long-running node loop: data-dir lock, signals, sd_notify, the control
//!   socket, hooks, reload.
//! - [`plan`] turns a config and fetched binaries into child specs, and owns which
//!   certificates restart which processes; [`components`] builds each component's argv,
//!   config files and readiness probe for a Kubernetes version.
//! - [`config`] layers file, `KUBESUP_*` environment and flags into one validated
//!   [`config::Config`] (reading, validation one section at a time, the typed result);
//!   [`paths`] derives every on-disk path from its data dir.
//! - [`renewal`] is the one certificate-renewal loop, for masters and workers; [`retry`] is the
//!   one backoff type that it and every other loop that retries use.
//! - [`fetch`] resolves a release manifest and downloads component binaries into a
//!   content-addressed cache, verifying SHA-256 while streaming.
//! - [`pki`] makes and renews every CA, certificate, key and kubeconfig (rcgen); it knows
//!   certificates, not processes.
//! - [`join`] is the join API on a master and the joining client on a worker; [`etcd`] talks to
//!   etcd; [`kube`] applies objects to the API server ([`addons`], [`network`]).
//! - [`backup`] makes and verifies backup archives (etcd snapshot, cluster keys, settings;
//!   optionally AES-256-GCM), schedules them on the etcd leader's master, restores one as a new
//!   one-member cluster, and records a `--cluster-reset` so it happens once.
//! - [`supervise`] spawns, reaps, probes, restarts and stops processes in dependency order.
//! - [`apilb`] is the node-local API load balancer on 127.0.0.1 that kubelet and kube-proxy
//!   reach the cluster's API servers through: health-checked backends, followed from the
//!   cluster and cached on disk.
//! - [`http`] is the one HTTP client stack (hyper): downloads, probes, the join and API
//!   clients; it reads the system's trust store only for public https.
//! - [`model`] is the vocabulary every module speaks (component, role, network, version, key
//!   type); it imports nothing from the crate. [`fsutil`], [`cgroup`] and [`preflight`] are
//!   small shared helpers.
//!
//! `tests/layering.rs` holds this order: `model` imports nothing from the crate, no two
//! top-level modules import each other in a cycle, and the module list below is the tree.

pub mod addons;
pub mod apilb;
pub mod backup;
pub mod cgroup;
pub mod cli;
pub mod cmd;
pub mod components;
pub mod config;
pub mod daemon;
pub mod errors;
pub mod etcd;
pub mod fetch;
pub mod fsutil;
pub mod http;
pub mod join;
pub mod kube;
pub mod model;
pub mod network;
pub mod paths;
pub mod pki;
pub mod plan;
pub mod preflight;
pub mod renewal;
pub mod retry;
pub mod run;
pub mod supervise;
