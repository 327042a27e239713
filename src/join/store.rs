//! The cluster store of the join API: join tokens, and the key each joined node is known by.
//! On a master both live in etcd, so every master sees the same; tests and benchmarks use an
//! in-memory store with the same semantics. [`Backend`] is the one type the handlers use.
//!
//! Tokens: expiry is enforced by the store itself through a lease (the key disappears when the
//! lease ends), not by clocks on masters. Key `/kubesup/join-tokens/<id>`, value JSON
//! `{secret_sha256, role, description, created, expires}`. The secret itself is never stored.
//! The role is recorded here, on the cluster's side, never in the token: what a token may do
//! is what the cluster says, so no one can turn a worker token into a master token.
//!
//! Nodes: key `/kubesup/nodes/<name>`, value the hex SHA-256 of the node's kubelet client
//! public key. A name is claimed by one compare-and-set ([`Backend::claim_node`]): in etcd one
//! transaction, in memory one critical section. So of two joins racing for one name, one wins.
//!
//! Invariant: a read that fails is an error, never "no record". Treating an unreachable etcd as
//! "this node never joined" would let a token holder take over a joined node's name.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::token::Token;
use crate::model::Role;

pub const PREFIX: &str = "/kubesup/join-tokens/";
/// Where the key each joined node is known by is recorded.
pub const NODES: &str = "/kubesup/nodes/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd request {what} failed")]
    Etcd {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("no join token with id {0:?}; see `kubesup token list`")]
    NotFound(String),
    #[error("the record of token {0} in etcd is unreadable")]
    Corrupt(String),
    #[error("the record of node {0} in etcd is not a key pin (not UTF-8)")]
    CorruptNode(String),
    #[error("the in-memory store's lock is poisoned: a thread panicked holding it")]
    Poisoned,
    #[error("the in-memory store cannot {}: a failure injected by a test", .0.what())]
    Injected(StoreOp),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub secret_sha256: String,
    /// What the token may join: a worker token never joins a master and never gets a CA key.
    /// Records made before roles existed are worker tokens.
    #[serde(default = "worker_role")]
    pub role: Role,
    pub description: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; `None` for a token created with `--ttl 0`.
    pub expires: Option<String>,
}

fn worker_role() -> Role {
    Role::Worker
}

fn etcd(what: &'static str) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |source| StoreError::Etcd { what, source }
}

/// Stores a new token; a TTL of zero means it never expires (the CLI makes that explicit).
pub async fn create(
    client: &mut Client,
    token: &Token,
    role: Role,
    ttl: Duration,
    description: Option<String>,
) -> Result<TokenRecord, StoreError> {
    let now = SystemTime::now();
    let record = TokenRecord {
        id: token.id.clone(),
        secret_sha256: token.secret_hash(),
        role,
        description,
        created: humantime::format_rfc3339_seconds(now).to_string(),
        expires: (!ttl.is_zero()).then(|| humantime::format_rfc3339_seconds(now + ttl).to_string()),
    };
    let mut opts = PutOptions::new();
    if !ttl.is_zero() {
        let lease = client
            .lease_grant(ttl.as_secs().max(1) as i64, None)
            .await
            .map_err(etcd("lease grant"))?;
        opts = opts.with_lease(lease.id());
    }
    let value = serde_json::to_string(&record).unwrap_or_default();
    client
        .put(format!("{PREFIX}{}", token.id), value, Some(opts))
        .await
        .map_err(etcd("put token"))?;
    Ok(record)
}

pub async fn list(client: &mut Client) -> Result<Vec<TokenRecord>, StoreError> {
    let resp = client
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd("list tokens"))?;
    resp.kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().unwrap_or_default().to_string();
            serde_json::from_slice(kv.value()).map_err(|_| StoreError::Corrupt(key))
        })
        .collect()
}

pub async fn get(client: &mut Client, id: &str) -> Result<Option<TokenRecord>, StoreError> {
    let resp = client
        .get(format!("{PREFIX}{id}"), None)
        .await
        .map_err(etcd("get token"))?;
    match resp.kvs().first() {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(kv.value())
            .map(Some)
            .map_err(|_| StoreError::Corrupt(id.to_string())),
    }
}

pub async fn delete(client: &mut Client, id: &str) -> Result<(), StoreError> {
    let resp = client
        .delete(format!("{PREFIX}{id}"), Some(DeleteOptions::new()))
        .await
        .map_err(etcd("delete token"))?;
    if resp.deleted() == 0 {
        return Err(StoreError::NotFound(id.to_string()));
    }
    Ok(())
}

/// The key node `name` is recorded with, if it joined.
pub async fn node_key(client: &mut Client, name: &str) -> Result<Option<String>, StoreError> {
    let resp = client
        .get(format!("{NODES}{name}"), None)
        .await
        .map_err(etcd("get node"))?;
    match resp.kvs().first() {
        None => Ok(None),
        Some(kv) => kv
            .value_str()
            .map(|v| Some(v.to_string()))
            .map_err(|_| StoreError::CorruptNode(name.to_string())),
    }
}

/// Records `key_pin` for node `name` if the record is still `expected` (`None`: no record), in
/// one transaction. `Ok(false)`: it is not, so someone else claimed the name since `expected`
/// was read, and nothing was written.
pub async fn claim_node(
    client: &mut Client,
    name: &str,
    expected: Option<&str>,
    key_pin: &str,
) -> Result<bool, StoreError> {
    let key = format!("{NODES}{name}");
    let unchanged = match expected {
        // A key never created, or deleted since, has create_revision 0.
        None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        Some(old) => Compare::value(key.clone(), CompareOp::Equal, old),
    };
    let txn = Txn::new()
        .when([unchanged])
        .and_then([TxnOp::put(key, key_pin, None)]);
    let resp = client.txn(txn).await.map_err(etcd("claim node"))?;
    Ok(resp.succeeded())
}

/// One operation of the store, to name which one an injected failure hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    ReadToken,
    ReadNode,
    ClaimNode,
}

impl StoreOp {
    fn what(self) -> &'static str {
        match self {
            Self::ReadToken => "read a join token",
            Self::ReadNode => "read a node's record",
            Self::ClaimNode => "claim a node name",
        }
    }
}

/// Where tokens and joined nodes are kept: etcd on a master, memory in tests and benchmarks.
pub enum Backend {
    Etcd(Box<Client>),
    Memory(Mutex<MemoryBackend>),
}

/// The store in memory, with etcd's semantics: a claim is checked and made under one lock.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    pub tokens: HashMap<String, TokenRecord>,
    pub nodes: HashMap<String, String>,
    /// Operations that fail, as they do in etcd while it is unreachable: how a test sees that
    /// the join API fails closed wherever an outage starts.
    pub failing: HashSet<StoreOp>,
    /// When set, each claim waits here until as many claims as the barrier counts have come:
    /// how a test makes joins overlap between reading a name and claiming it, as they can
    /// when etcd is remote, instead of hoping a scheduler interleaves them.
    pub claims_meet: Option<Arc<tokio::sync::Barrier>>,
}

impl MemoryBackend {
    fn check(&self, op: StoreOp) -> Result<(), StoreError> {
        if self.failing.contains(&op) {
            return Err(StoreError::Injected(op));
        }
        Ok(())
    }
}

impl Backend {
    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        match self {
            // A clone shares the connection; it is only a handle.
            Self::Etcd(c) => get(&mut c.as_ref().clone(), id).await,
            Self::Memory(m) => {
                let m = lock(m)?;
                m.check(StoreOp::ReadToken)?;
                Ok(m.tokens.get(id).cloned())
            }
        }
    }

    /// The key node `name` is recorded with, if it joined.
    pub async fn node_key(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Etcd(c) => node_key(&mut c.as_ref().clone(), name).await,
            Self::Memory(m) => {
                let m = lock(m)?;
                m.check(StoreOp::ReadNode)?;
                Ok(m.nodes.get(name).cloned())
            }
        }
    }

    /// See [`claim_node`]: records `key_pin` for `name` only if the record is still
    /// `expected`; `Ok(false)` when another claim came first.
    pub async fn claim_node(
        &self,
        name: &str,
        expected: Option<&str>,
        key_pin: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Etcd(c) => claim_node(&mut c.as_ref().clone(), name, expected, key_pin).await,
            Self::Memory(m) => {
                let meet = lock(m)?.claims_meet.clone();
                if let Some(barrier) = meet {
                    barrier.wait().await;
                }
                // The check and the write under one lock: etcd's transaction, in memory.
                let mut m = lock(m)?;
                m.check(StoreOp::ClaimNode)?;
                if m.nodes.get(name).map(String::as_str) != expected {
                    return Ok(false);
                }
                m.nodes.insert(name.to_string(), key_pin.to_string());
                Ok(true)
            }
        }
    }
}

impl Backend {
    /// The client URLs of every etcd member, for a joining master's first contact with etcd
    /// and for flanneld on workers: the whole list, so that losing one member loses no client.
    /// The memory store has no etcd: empty.
    pub async fn etcd_client_urls(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Etcd(c) => {
                let resp = c
                    .as_ref()
                    .clone()
                    .member_list()
                    .await
                    .map_err(etcd("member list"))?;
                Ok(resp
                    .members()
                    .iter()
                    .flat_map(|m| m.client_urls().iter().cloned())
                    .collect())
            }
            Self::Memory(_) => Ok(Vec::new()),
        }
    }
}

fn lock(m: &Mutex<MemoryBackend>) -> Result<MutexGuard<'_, MemoryBackend>, StoreError> {
    m.lock().map_err(|_| StoreError::Poisoned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Backend {
        Backend::Memory(Mutex::new(MemoryBackend::default()))
    }

    fn set_failing(b: &Backend, ops: &[StoreOp]) {
        let Backend::Memory(m) = b else {
            panic!("not the memory store")
        };
        m.lock().unwrap().failing = ops.iter().copied().collect();
    }

    #[tokio::test]
    async fn a_name_goes_to_the_first_of_two_claims_that_read_it_free() {
        let b = memory();
        // Both joins read the name as free before either claims it.
        assert_eq!(b.node_key("w1").await.unwrap(), None);
        assert_eq!(b.node_key("w1").await.unwrap(), None);
        assert!(b.claim_node("w1", None, "pin-a").await.unwrap());
        assert!(!b.claim_node("w1", None, "pin-b").await.unwrap());
        assert_eq!(b.node_key("w1").await.unwrap().as_deref(), Some("pin-a"));
    }

    #[tokio::test]
    async fn a_claim_over_a_record_compares_with_the_key_read() {
        let b = memory();
        assert!(b.claim_node("w1", None, "pin-a").await.unwrap());
        // A renewal (or a forced rejoin) that read pin-a replaces it; a second one that read
        // the same pin-a finds it gone.
        assert!(b.claim_node("w1", Some("pin-a"), "pin-b").await.unwrap());
        assert!(!b.claim_node("w1", Some("pin-a"), "pin-c").await.unwrap());
        assert_eq!(b.node_key("w1").await.unwrap().as_deref(), Some("pin-b"));
        // Other names are untouched.
        assert_eq!(b.node_key("w2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_injected_failure_is_an_error_never_no_record() {
        let b = memory();
        assert!(b.claim_node("w1", None, "pin-a").await.unwrap());
        set_failing(
            &b,
            &[StoreOp::ReadToken, StoreOp::ReadNode, StoreOp::ClaimNode],
        );
        assert!(matches!(
            b.token("abcdef").await,
            Err(StoreError::Injected(StoreOp::ReadToken))
        ));
        assert!(matches!(
            b.node_key("w1").await,
            Err(StoreError::Injected(StoreOp::ReadNode))
        ));
        let e = b
            .claim_node("w1", Some("pin-a"), "pin-b")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the in-memory store cannot claim a node name: a failure injected by a test"
        );
        set_failing(&b, &[]);
        assert_eq!(b.node_key("w1").await.unwrap().as_deref(), Some("pin-a"));
    }
}
