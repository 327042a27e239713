//! Join tokens in etcd: every master sees the same tokens, and expiry is enforced by the store
//! itself through a lease (the key disappears when the lease ends), not by clocks on masters.
//!
//! Key `/kubesup/join-tokens/<id>`, value JSON `{secret_sha256, description, created, expires}`.
//! The secret itself is never stored.

use std::time::{Duration, SystemTime};

use etcd_client::{Client, DeleteOptions, GetOptions, PutOptions};
use serde::{Deserialize, Serialize};

use super::token::Token;

pub const PREFIX: &str = "/kubesup/join-tokens/";

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub secret_sha256: String,
    pub description: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; `None` for a token created with `--ttl 0`.
    pub expires: Option<String>,
}

fn etcd(what: &'static str) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |source| StoreError::Etcd { what, source }
}

/// Stores a new token; a TTL of zero means it never expires (the CLI makes that explicit).
pub async fn create(
    client: &mut Client,
    token: &Token,
    ttl: Duration,
    description: Option<String>,
) -> Result<TokenRecord, StoreError> {
    let now = SystemTime::now();
    let record = TokenRecord {
        id: token.id.clone(),
        secret_sha256: token.secret_hash(),
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
