//! Joining workers to a cluster.
//!
//! Owns: the join token format and its CA pin ([`token`]), and token storage in etcd with
//! leases ([`store`]). The join API server and the joining client build on these.
//!
//! Invariants: a token's secret is never logged or stored (only its SHA-256), and is compared
//! in constant time.

pub mod client;
pub mod server;
pub mod store;
pub mod token;

pub use server::serve_on_master;
