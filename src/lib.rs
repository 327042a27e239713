//! kubesup: one binary that runs on every node as the supervisor of that node's Kubernetes
//! processes.
//!
//! A tour, in the order `kubesup master` uses the pieces:
//! - [`cli`] parses the command line; [`config`] layers file, `KUBESUP_*` environment and flags
//!   into one validated [`config::Config`]; [`paths`] derives every on-disk path from it.
//! - [`fetch`] resolves a release manifest and downloads component binaries into a
//!   content-addressed cache, verifying SHA-256 while streaming.
//! - [`pki`] makes and renews every CA, certificate, key and kubeconfig (rcgen).
//! - [`components`] turns the config into each component's argv, config files and readiness probe.
//! - [`supervise`] spawns, reaps, probes, restarts and stops the components in dependency order.
//! - [`etcd`] talks to etcd (health, flannel's network config, join tokens).
//! - [`join`] is the join API on a master and the joining client on a worker.
//! - [`install`] writes the service unit and config (and undoes them); [`reset`] takes a node
//!   down to nothing, its pods and the kubelet cgroup root ([`cgroup`]) included.

pub mod addons;
pub mod app;
pub mod certs;
pub mod cgroup;
pub mod cli;
pub mod components;
pub mod config;
pub mod etcd;
pub mod fetch;
pub mod fsutil;
pub mod http;
pub mod install;
pub mod join;
pub mod kube;
pub mod master;
pub mod network;
pub mod node;
pub mod paths;
pub mod pki;
pub mod preflight;
pub mod reset;
pub mod specs;
pub mod supervise;
pub mod worker;
