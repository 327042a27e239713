//! Joining workers to a cluster. The rooms:
//!
//! - [`token`]: the join token's format, its CA pin, and the constant-time secret check;
//! - [`wire`]: the JSON messages of the join API ([`JoinRequest`], [`JoinResponse`],
//!   [`ClusterInfo`]), shared by both sides;
//! - [`store`]: the cluster store, etcd on a master (memory in tests): tokens with leases,
//!   and the key each joined node is known by, claimed by one compare-and-set;
//! - [`tls`]: the join server's rustls configuration, which serves a renewed certificate
//!   without a restart;
//! - [`settings`]: the settings every master shares, laid over a joining master's config;
//! - [`server`]: the join API itself, its routing, handlers and rate limit, failing closed
//!   when the store fails;
//! - `serve`: the master's start-up of it ([`serve_on_master`]);
//! - [`binaries`]: the binaries a master fetches, verifies and serves to its nodes;
//! - [`client`]: the joining side, run by a worker.
//!
//! Invariants: a token's secret is never logged or stored (only its SHA-256), and is compared
//! in constant time; a node's private keys never leave it; a store that cannot answer refuses,
//! never lets a request through.

pub mod binaries;
pub mod client;
mod serve;
pub mod server;
pub mod settings;
pub mod store;
pub mod tls;
pub mod token;
pub mod wire;

pub use serve::{StartError, serve_on_master};
pub use wire::{ClusterInfo, ClusterSettings, JoinRequest, JoinResponse};
