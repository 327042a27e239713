//! A master's watch over its own etcd member, beside the supervisor once etcd answers:
//!
//! - a learner (a master that joined, or resumed a join) is promoted here, by the master that
//!   added it and by no one else, and the API server's start gate opens only once the member is
//!   a voter: a learner serves no linearizable reads, so an API server on it could not work;
//! - the member record (`etcd-member.json`: this member's ID, the other members' client URLs,
//!   and whether the cluster has more than one member) is kept current, for the check a later
//!   start makes ([`check_not_removed`]);
//! - when the member count crosses one, etcd is restarted with the election timing that fits,
//!   through the reload path (SIGHUP), which rebuilds every spec from the data dir.
//!
//! Must not: open the gate before the promotion; restart etcd more than once per change of
//! the member count; give up on a transient error (each step is bounded and retried).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::MasterError;
use super::join::{read_json, write_json};
use crate::config::Config;
use crate::etcd::members::{self, LearnerPolicy, MembersError};
use crate::paths::Paths;
use crate::retry::Backoff;

/// `etcd-member.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// This master's etcd member ID, hex as etcdctl prints it.
    pub member_id: Option<String>,
    /// The other members' client URLs.
    pub peers: Vec<String>,
    pub multi_member: bool,
}

pub fn read_record(paths: &Paths) -> MemberRecord {
    match read_json::<MemberRecord>(&paths.etcd_member_record()) {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            // Only a hint: the watch rewrites it as soon as etcd answers.
            warn!(error = %crate::errors::chain(&e), "ignoring the etcd member record");
            MemberRecord::default()
        }
    }
}

/// What one look at the membership says of this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub record: MemberRecord,
    pub is_learner: bool,
}

/// The record a member list implies for member `me` (pure, for the tests).
pub fn observe(me: u64, list: &[members::Member]) -> Option<Observed> {
    let mine = list.iter().find(|m| m.id == me)?;
    let peers = list
        .iter()
        .filter(|m| m.id != me)
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    Some(Observed {
        record: MemberRecord {
            member_id: Some(members::hex(me)),
            peers,
            multi_member: list.len() > 1,
        },
        is_learner: mine.is_learner,
    })
}

/// The watch itself (a daemon hook; runs until kubesup stops). `voter` is the API server's
/// start gate; `planned_multi` is the election timing the running etcd was started with.
pub async fn watch(cfg: Config, voter: watch::Sender<bool>, mut planned_multi: bool) {
    let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    let options = match crate::etcd::tls_options(&tls) {
        Ok(o) => o,
        Err(e) => {
            error!(error = %crate::errors::chain(&e), "cannot read the etcd client certificate; the API server will not start");
            return;
        }
    };
    let policy = LearnerPolicy::new(members::Probe::new(options.clone(), Duration::from_secs(3)));
    let mut last = read_record(&cfg.paths);
    let reconnect = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let look = async {
            let mut local = crate::etcd::connect(&endpoint, &tls)
                .await
                .map_err(Failure::Etcd)?;
            let (me, learner) = members::local_status(&mut local).await?;
            // A learner answers no membership question (etcd 3.4 refuses it a member list and
            // a promotion): while this member is one, the others are asked.
            let mut c = if learner {
                let peers = peer_urls(&cfg.paths, &last);
                if peers.is_empty() {
                    return Err(MembersError::NoPeers.into());
                }
                crate::etcd::connect_many(&peers, options.clone())
                    .await
                    .map_err(Failure::Etcd)?
            } else {
                local
            };
            let list = members::list(&mut c).await?;
            let Some(seen) = observe(me, &list) else {
                return Err(Failure::NotListed(me));
            };
            if seen.is_learner && !*voter.borrow() {
                info!(id = %members::hex(me), "this master's etcd member is a learner; promoting it once it has caught up");
                members::promote_when_caught_up(&mut c, me, &policy).await?;
                info!(id = %members::hex(me), "this master's etcd member is a voter; starting the API server");
                return Ok(None);
            }
            Ok(Some(seen))
        };
        let delay = match look.await {
            Ok(None) => {
                let _ = voter.send(true);
                Duration::ZERO
            }
            Ok(Some(seen)) => {
                if !seen.is_learner {
                    voter.send_if_modified(|v| !std::mem::replace(v, true));
                }
                if seen.record != last {
                    if let Err(e) = write_json(&cfg.paths.etcd_member_record(), &seen.record) {
                        warn!(error = %crate::errors::chain(&e), "cannot keep the etcd member record");
                    }
                    last = seen.record.clone();
                }
                if seen.record.multi_member != planned_multi {
                    planned_multi = seen.record.multi_member;
                    info!(
                        members = seen.record.peers.len() + 1,
                        multi_member = planned_multi,
                        "the etcd member count crossed one: restarting etcd with the election timing that fits"
                    );
                    // The reload path rebuilds the specs from the data dir, where the record
                    // now says how many members there are.
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP);
                }
                Duration::from_secs(5)
            }
            Err(Failure::Members(MembersError::StuckLearnerRemoved { .. })) => {
                error!(
                    "this master's etcd learner made no progress and was removed from the cluster; \
                     stop kubesup, run `kubesup reset`, and join again"
                );
                return;
            }
            Err(Failure::NotListed(id)) => {
                error!(
                    id = %members::hex(id),
                    "this master's etcd member is not in the cluster's member list (removed?); \
                     stop kubesup, run `kubesup reset`, and join again"
                );
                return;
            }
            Err(e) => {
                debug!(error = %crate::errors::chain(&e), "etcd membership: not now");
                reconnect.first
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Etcd(crate::etcd::EtcdError),
    #[error(transparent)]
    Members(#[from] MembersError),
    #[error("member {} is not in the member list", members::hex(*.0))]
    NotListed(u64),
}

/// The other members' client URLs: from the last look at the membership, else (a join whose
/// member has not been seen yet) the ones the join recorded.
fn peer_urls(paths: &Paths, last: &MemberRecord) -> Vec<String> {
    if !last.peers.is_empty() {
        return last.peers.clone();
    }
    match super::join::read_joined(paths) {
        Ok(Some(j)) => j.etcd_client_urls,
        _ => Vec::new(),
    }
}

/// Before a member's etcd starts again: if the other members (from the record) answer and no
/// longer list this member, it was removed (`kubesup etcd remove`), and starting it would only
/// crash-loop etcd, or worse, tempt someone into a new cluster on this data. Refused instead.
/// Peers that do not answer prove nothing: then etcd decides, as it must after an outage.
pub async fn check_not_removed(cfg: &Config) -> Result<(), MasterError> {
    let record = read_record(&cfg.paths);
    let (Some(id), false) = (record.member_id.clone(), record.peers.is_empty()) else {
        return Ok(());
    };
    let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
    let Ok(options) = crate::etcd::tls_options(&tls) else {
        return Ok(());
    };
    let options = options
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(3));
    // Each peer on its own: with one of them dead, a client balanced over all of them fails
    // every other request, and a failed ask here would start a member that must be refused.
    // The first peer that answers decides.
    for url in &record.peers {
        let ask = async {
            let mut c = crate::etcd::connect_with(url, options.clone()).await.ok()?;
            c.member_list().await.ok()
        };
        let Ok(Some(list)) = tokio::time::timeout(Duration::from_secs(6), ask).await else {
            continue;
        };
        if list.members().iter().any(|m| members::hex(m.id()) == id) {
            return Ok(());
        }
        return Err(MasterError::Removed {
            id,
            data_dir: cfg.paths.data_dir().to_path_buf(),
        });
    }
    info!("no other etcd member answered; starting this member as it is");
    Ok(())
}

/// Why `kubesup reset` of a master will not take its member out of the cluster.
#[derive(Debug, thiserror::Error)]
pub enum LeaveError {
    #[error("{0}; `kubesup reset --force` resets this master anyway")]
    Quorum(members::QuorumError),
    #[error(
        "cannot reach this cluster's etcd to take this master's member out of it; start the \
         master (or its peers) first, or `kubesup reset --force` to reset without leaving"
    )]
    Unreachable(#[source] MembersError),
    #[error("cannot remove this master's etcd member {}", members::hex(*id))]
    Remove {
        id: u64,
        #[source]
        source: MembersError,
    },
}

impl crate::errors::Exit for LeaveError {
    fn exit_code(&self) -> u8 {
        match self {
            // Refused before anything changed: the operator decides (`--force`).
            Self::Quorum(_) => crate::errors::EXIT_INVALID,
            _ => crate::errors::EXIT_FAILURE,
        }
    }
}

/// A master about to be reset, and its member with it.
pub struct Leaving {
    /// The other members' client URLs, each asked on its own: with one of them dead, a client
    /// balanced over all of them would fail every other request.
    peers: Vec<String>,
    options: etcd_client::ConnectOptions,
    id: u64,
}

/// Before `kubesup reset` of a master that is one member of several: the member this data dir
/// holds, and the other members to remove it through once the master is stopped. Refused when
/// removing it would leave no quorum of healthy voters, unless `force`.
/// `Ok(None)`: there is nothing to leave (no etcd data, or a one-member cluster, or removed
/// already).
pub async fn prepare_leave(paths: &Paths, force: bool) -> Result<Option<Leaving>, LeaveError> {
    let record = read_record(paths);
    let Some(id) = record
        .member_id
        .as_deref()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    else {
        return Ok(None);
    };
    if record.peers.is_empty() {
        return Ok(None);
    }
    let tls = crate::cmd::healthcheck_tls(&paths.pki());
    let options = crate::etcd::tls_options(&tls)
        .map_err(|e| LeaveError::Unreachable(MembersError::Connect(e)))?;
    let leaving = Leaving {
        peers: record.peers,
        options,
        id,
    };
    let probe = members::Probe::new(leaving.options.clone(), Duration::from_secs(3));
    let m = match leaving
        .ask_each(|mut c| {
            let probe = probe.clone();
            async move { members::membership(&mut c, &probe).await }
        })
        .await
    {
        Ok(m) => m,
        Err(e) if force => {
            warn!(error = %crate::errors::chain(&e), "cannot reach the other etcd members; resetting without leaving the cluster (--force)");
            return Ok(None);
        }
        Err(e) => return Err(LeaveError::Unreachable(e)),
    };
    if m.get(id).is_none() {
        info!(id = %members::hex(id), "this master's etcd member was removed already");
        return Ok(None);
    }
    if let Err(e) = members::check_removal(&m, &m.healthy_ids(), id) {
        if !force {
            return Err(LeaveError::Quorum(e));
        }
        warn!(check = %e, "leaving the etcd cluster against the quorum check (--force)");
    }
    Ok(Some(leaving))
}

impl Leaving {
    /// Removes the member through the other members (this master is stopped by now).
    pub async fn remove(self) -> Result<(), LeaveError> {
        let id = self.id;
        // Asked again while the cluster cannot answer (an election: this member may have led
        // it): a removal whose answer was lost is found done by the next attempt.
        Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5))
            .with_attempts(6)
            .retry(
                "leave the etcd cluster",
                || self.ask_each(|mut c| async move { members::remove(&mut c, id).await }),
                |e: &MembersError| !e.is_transient(),
            )
            .await
            .map_err(|source| LeaveError::Remove { id, source })?;
        info!(id = %members::hex(id), "this master's etcd member left the cluster");
        Ok(())
    }

    /// `f` on each other member in turn, until one answers; the last failure otherwise.
    async fn ask_each<T, F, Fut>(&self, f: F) -> Result<T, MembersError>
    where
        F: Fn(etcd_client::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, MembersError>>,
    {
        let mut last = None;
        for url in &self.peers {
            let options = self
                .options
                .clone()
                .with_connect_timeout(Duration::from_secs(3))
                .with_timeout(Duration::from_secs(5));
            let answer = match crate::etcd::connect_with(url, options).await {
                Ok(c) => f(c).await,
                Err(e) => Err(e.into()),
            };
            match answer {
                Ok(t) => return Ok(t),
                Err(e) => {
                    debug!(member = %url, error = %crate::errors::chain(&e), "this etcd member did not answer; asking the next");
                    last = Some(e);
                }
            }
        }
        // `peers` is never empty here (prepare_leave returns None first).
        Err(last.unwrap_or(MembersError::NoPeers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, learner: bool) -> members::Member {
        members::Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![format!("https://10.0.0.{id}:2380")],
            client_urls: vec![format!("https://10.0.0.{id}:2379")],
            is_learner: learner,
        }
    }

    #[test]
    fn one_member_keeps_the_fast_election_and_a_learner_is_seen_as_one() {
        let alone = observe(1, &[member(1, false)]).unwrap();
        assert!(!alone.record.multi_member);
        assert!(alone.record.peers.is_empty());
        assert!(!alone.is_learner);

        let joining = observe(2, &[member(1, false), member(2, true)]).unwrap();
        assert!(joining.is_learner);
        assert!(joining.record.multi_member);
        assert_eq!(joining.record.peers, vec!["https://10.0.0.1:2379"]);
        assert_eq!(joining.record.member_id.as_deref(), Some("2"));

        // The first master sees the learner too: the count crossed one.
        let first = observe(1, &[member(1, false), member(2, true)]).unwrap();
        assert!(first.record.multi_member);
        assert!(!first.is_learner);

        assert_eq!(observe(3, &[member(1, false)]), None);
    }
}
