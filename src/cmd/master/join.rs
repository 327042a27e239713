//! `kubesup master --join`: a master joining the control plane of an existing cluster.
//!
//! 1. Decide from this data dir what kind of start this is ([`decide`]): etcd's own data on
//!    disk says "member", and nothing else does; a `cluster.json` without etcd data is a join
//!    that has not finished, which only the same `--join` may continue.
//! 2. Once: ask the join API (any master) for the cluster's keys and settings with a master
//!    token, over TLS verified against the token's CA pin; install the keys (0600), then
//!    record the cluster in `cluster.json`. A resumed join needs no token any more: it has the
//!    etcd CA, and makes its own etcd client certificate from it.
//! 3. The caller lays the cluster's settings over this master's config and makes the PKI.
//! 4. Add this master's etcd member as a learner ([`add_member`]), or find the one an earlier
//!    run added, or wait while another master's learner is in the cluster. The learner's
//!    promotion happens once its etcd runs ([`super::membership`]), and gates the API server.
//!
//! Every step is idempotent, and decided again from what etcd and the data dir say, so a join
//! killed anywhere completes when the same command runs again, with no duplicate member and
//! never a second cluster.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::MasterError;
use crate::config::{Config, RawConfig};
use crate::etcd::members::{self, JoinStep, LearnerPolicy, MembersError, Membership};
use crate::join::ClusterSettings;
use crate::join::client::{self, ClientError};
use crate::join::token::Token;
use crate::join::wire::{MasterJoinRequest, MasterJoinResponse};
use crate::paths::Paths;
use crate::pki::PkiError;
use crate::retry::Backoff;

/// `cluster.json`: what a joined master knows of the cluster it joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinedCluster {
    pub join_url: String,
    pub settings: ClusterSettings,
    /// The etcd members' client URLs when this master joined: where it adds itself.
    pub etcd_client_urls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot get the cluster's keys from {url}")]
    Api {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "this data dir holds a join to {join_url} that has not finished; run the same \
         `kubesup master --join {join_url}` again to finish it, or `kubesup reset` to start over"
    )]
    Unfinished { join_url: String },
    #[error(
        "--join needs a control-plane token: pass --token-file F (from `kubesup token create \
         --role master` on a master)"
    )]
    NoToken,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot install the cluster's keys")]
    Material(#[source] PkiError),
    #[error("{} is unreadable ({reason}); move it aside, or `kubesup reset` and join again", path.display())]
    Record { path: PathBuf, reason: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: crate::fsutil::FsError,
    },
    #[error("cannot reach the cluster's etcd at {urls}")]
    Etcd {
        urls: String,
        #[source]
        source: crate::etcd::EtcdError,
    },
    #[error(transparent)]
    Members(#[from] MembersError),
    #[error(
        "etcd has a member that clashes with this master: {0}; remove it with `kubesup etcd \
         remove` on another master if its machine is gone, or give this master its own name \
         and address"
    )]
    Conflict(members::JoinConflict),
}

impl crate::errors::Exit for JoinError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Config(e) => e.exit_code(),
            Self::Unfinished { .. } | Self::NoToken => crate::errors::EXIT_INVALID,
            _ => crate::errors::EXIT_FAILURE,
        }
    }
}

/// What this start of `kubesup master` is, from the data dir alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// No etcd data, no join: the first master of a new cluster.
    NewCluster,
    /// etcd has data: this master is a member (of its own cluster, or of one it joined);
    /// start it, whatever the flags say.
    Member { joined: Option<JoinedCluster> },
    /// No etcd data, and `--join`: join, or continue a join (`recorded` is set once the keys
    /// arrived).
    Join {
        url: String,
        recorded: Option<JoinedCluster>,
    },
}

impl Start {
    /// The recorded cluster, when this master joined one (or is joining it).
    pub fn joined(&self) -> Option<&JoinedCluster> {
        match self {
            Self::NewCluster => None,
            Self::Member { joined } => joined.as_ref(),
            Self::Join { recorded, .. } => recorded.as_ref(),
        }
    }
}

/// Decides the start from the data dir and the `--join` flag. A recorded join without etcd
/// data is resumed only by `--join` to the same cluster: started without it, it would make a
/// new cluster beside the one it half-joined.
pub fn decide(
    etcd_has_data: bool,
    recorded: Option<JoinedCluster>,
    join: Option<&str>,
) -> Result<Start, JoinError> {
    if etcd_has_data {
        if let Some(url) = join {
            info!(
                join = url,
                "etcd has data: this master is a member already; --join is not needed and is ignored"
            );
        }
        return Ok(Start::Member { joined: recorded });
    }
    match (recorded, join) {
        (None, None) => Ok(Start::NewCluster),
        (Some(r), None) => Err(JoinError::Unfinished {
            join_url: r.join_url,
        }),
        (recorded, Some(url)) => {
            // Another URL of the same cluster is fine (any master serves joins): a resumed join
            // takes its settings and etcd members from the record, not from this URL.
            if let Some(r) = recorded
                .as_ref()
                .filter(|r| r.join_url.trim_end_matches('/') != url.trim_end_matches('/'))
            {
                warn!(recorded = %r.join_url, given = url, "continuing the join recorded through another master");
            }
            Ok(Start::Join {
                url: url.to_string(),
                recorded,
            })
        }
    }
}

pub fn read_joined(paths: &Paths) -> Result<Option<JoinedCluster>, JoinError> {
    read_json(&paths.joined_cluster())
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, JoinError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JoinError::Record {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JoinError::Record {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), JoinError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| JoinError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::fsutil::write_atomic(path, &text, 0o600).map_err(|source| JoinError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Step 2a, before anything is written: asks the join API for the cluster's keys and settings
/// with a master token, and checks the settings against this master's own layers. A refused
/// token or a conflicting flag leaves the data dir as it was.
pub async fn ask(
    url: &str,
    token: Option<Token>,
    raw: &RawConfig,
    node_name: &str,
    advertise: IpAddr,
) -> Result<MasterJoinResponse, JoinError> {
    let token = token.ok_or(JoinError::NoToken)?;
    let request = MasterJoinRequest {
        node_name: node_name.to_string(),
        advertise,
    };
    let answer = client::join_master(url, &token, &request)
        .await
        .map_err(|source| JoinError::Api {
            url: url.to_string(),
            source,
        })?;
    answer.settings.apply(&mut raw.clone())?;
    Ok(answer)
}

/// Step 2b, under the data-dir lock: the keys first, then the record, so a record on disk
/// means the keys are there too.
pub fn install(
    paths: &Paths,
    url: &str,
    answer: MasterJoinResponse,
) -> Result<JoinedCluster, JoinError> {
    let fresh = answer
        .material
        .install(&paths.pki())
        .map_err(JoinError::Material)?;
    info!(fresh, "installed the cluster's CAs and service-account key");
    let joined = JoinedCluster {
        join_url: url.to_string(),
        settings: answer.settings,
        etcd_client_urls: answer.etcd_client_urls,
    };
    write_json(&paths.joined_cluster(), &joined)?;
    Ok(joined)
}

/// Lays a joined master's cluster settings over its own layers, then validates.
pub fn config_with(
    mut raw: RawConfig,
    joined: Option<&JoinedCluster>,
) -> Result<Config, crate::config::ConfigError> {
    if let Some(j) = joined {
        j.settings.apply(&mut raw)?;
    }
    raw.validate()
}

/// Step 4: makes this master a member of the cluster's etcd, as a learner, or finds the member
/// an earlier run made; waits while another master's learner is in the cluster. Returns the
/// `--initial-cluster` its etcd must start with.
pub async fn add_member(
    cfg: &Config,
    joined: &JoinedCluster,
    peer_url: &str,
) -> Result<String, JoinError> {
    let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
    let options = crate::etcd::tls_options(&tls).map_err(|source| JoinError::Etcd {
        urls: joined.etcd_client_urls.join(","),
        source,
    })?;
    let probe = members::Probe::new(options.clone(), Duration::from_secs(3));
    let policy = LearnerPolicy::new(probe.clone());
    let name = cfg.node_name.as_str();
    // An etcd that does not answer for a moment is expected here: the first master restarts
    // its etcd with multi-member election timing as soon as a learner appears (the other
    // joiner's, or this one's), and a leader election may be under way. Asked again, boundedly.
    // A short cap: etcd refuses a member add as "unhealthy cluster" until every voter has been
    // connected for 5 s (its strict reconfiguration check), so the second joiner asks again
    // right after a promotion, and a wait that overshoots that moment is pure join time.
    let not_now = Backoff::exponential(Duration::from_millis(250), Duration::from_secs(1));
    let mut unanswered = 0;
    // Bounded: each wait for another learner ends when it is promoted or removed as stuck
    // (LearnerPolicy::max_stall); a steady stream of other joiners is the one way to spin,
    // and 30 rounds of them is more than any cluster has masters.
    let mut round = 0;
    let mut connected = None;
    while round < 30 {
        let client = match &mut connected {
            Some(c) => c,
            None => {
                match crate::etcd::connect_many(&joined.etcd_client_urls, options.clone()).await {
                    Ok(c) => connected.insert(c),
                    Err(source) if unanswered < MAX_UNANSWERED => {
                        unanswered += 1;
                        info!(error = %crate::errors::chain(&source), "the cluster's etcd does not answer now; asking again");
                        tokio::time::sleep(not_now.wait(unanswered)).await;
                        continue;
                    }
                    Err(source) => {
                        return Err(JoinError::Etcd {
                            urls: joined.etcd_client_urls.join(","),
                            source,
                        });
                    }
                }
            }
        };
        let m: Membership = match members::membership(client, &probe).await {
            Ok(m) => m,
            Err(e) if e.is_transient() && unanswered < MAX_UNANSWERED => {
                unanswered += 1;
                info!(error = %crate::errors::chain(&e), "the cluster's etcd does not answer now; asking again");
                tokio::time::sleep(not_now.wait(unanswered)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        round += 1;
        match members::next_join_step(&m, name, peer_url) {
            JoinStep::Conflict(c) => return Err(JoinError::Conflict(c)),
            JoinStep::AlreadyVoter(id) | JoinStep::AlreadyLearner(id) => {
                info!(member = name, id = %members::hex(id), "this master is an etcd member already; resuming");
                return Ok(members::initial_cluster(&m.members, name, peer_url)?);
            }
            JoinStep::WaitForOtherLearner { name: other, id } => {
                info!(
                    waiting_for = %other,
                    id = %members::hex(id),
                    "waiting: another master is joining, and etcd allows one learner at a time; this join goes on when it is promoted"
                );
                match members::reap_stuck_learner(client, &policy).await {
                    Ok(Some(reaped)) => {
                        info!(removed = %reaped.label(), "the stuck learner is gone; joining")
                    }
                    Ok(None) => {}
                    // Decided again from a fresh member list, like any other round.
                    Err(e) if e.is_transient() && unanswered < MAX_UNANSWERED => {
                        unanswered += 1;
                        info!(error = %crate::errors::chain(&e), "the cluster's etcd does not answer now; asking again");
                        tokio::time::sleep(not_now.wait(unanswered)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            JoinStep::AddLearner => match members::add_learner(client, name, peer_url).await {
                Ok((_, after)) => return Ok(members::initial_cluster(&after, name, peer_url)?),
                // Raced another joiner past the check: decide again.
                Err(MembersError::LearnerExists { .. } | MembersError::PeerUrlExists { .. }) => {
                    tokio::time::sleep(policy.poll).await;
                }
                Err(e) if e.is_transient() && unanswered < MAX_UNANSWERED => {
                    // The add may have landed before the answer was lost: the next round's
                    // member list says, by name and peer URL, and resumes it.
                    unanswered += 1;
                    info!(error = %crate::errors::chain(&e), "the cluster's etcd does not answer now; asking again");
                    tokio::time::sleep(not_now.wait(unanswered)).await;
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
    Err(JoinError::Members(MembersError::NotAMember {
        name: name.to_string(),
        peer_url: peer_url.to_string(),
    }))
}

/// How many times in one join the cluster's etcd may fail to answer (with the backoff's 1 s
/// cap, about two minutes of an etcd that restarts or elects) before the join gives up and
/// says so; run again, it resumes.
const MAX_UNANSWERED: u32 = 120;

impl From<JoinError> for MasterError {
    fn from(e: JoinError) -> Self {
        MasterError::Join(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> JoinedCluster {
        JoinedCluster {
            join_url: "https://10.0.0.1:9443".into(),
            settings: ClusterSettings::sample(),
            etcd_client_urls: vec!["https://10.0.0.1:2379".into()],
        }
    }

    #[test]
    fn etcd_data_alone_makes_a_member_whatever_the_flags() {
        for join in [None, Some("https://10.0.0.9:9443")] {
            assert_eq!(
                decide(true, None, join).unwrap(),
                Start::Member { joined: None }
            );
            assert_eq!(
                decide(true, Some(recorded()), join).unwrap(),
                Start::Member {
                    joined: Some(recorded())
                }
            );
        }
    }

    #[test]
    fn a_half_done_join_is_never_started_as_a_new_cluster() {
        assert_eq!(decide(false, None, None).unwrap(), Start::NewCluster);
        let e = decide(false, Some(recorded()), None).unwrap_err();
        assert!(matches!(e, JoinError::Unfinished { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("kubesup master --join https://10.0.0.1:9443")
        );
        assert_eq!(
            decide(false, Some(recorded()), Some("https://10.0.0.1:9443")).unwrap(),
            Start::Join {
                url: "https://10.0.0.1:9443".into(),
                recorded: Some(recorded())
            }
        );
        assert_eq!(
            decide(false, None, Some("https://10.0.0.1:9443")).unwrap(),
            Start::Join {
                url: "https://10.0.0.1:9443".into(),
                recorded: None
            }
        );
    }

    #[test]
    fn the_record_round_trips_and_a_garbled_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path());
        assert_eq!(read_joined(&paths).unwrap(), None);
        write_json(&paths.joined_cluster(), &recorded()).unwrap();
        assert_eq!(read_joined(&paths).unwrap(), Some(recorded()));
        std::fs::write(paths.joined_cluster(), b"{not json").unwrap();
        let e = read_joined(&paths).unwrap_err().to_string();
        assert!(e.contains("cluster.json"), "{e}");
    }
}
