//! etcd cluster membership, for a control plane of more than one master: who the members are,
//! whether a joining master must add itself, resume, or wait, and whether a member may be
//! removed without losing quorum.
//!
//! Owns: the typed [`Member`] and the [`Membership`] snapshot (the member list, the leader,
//! and each member's health and db size from the maintenance `status` call on its own client
//! URLs); the pure decisions [`quorum`], [`check_removal`], [`next_join_step`] and
//! [`initial_cluster`]; the requests [`list`], [`membership`], [`add_learner`], [`promote`] and
//! [`remove`]; and the learner policy: [`promote_when_caught_up`] for the one party that
//! promotes, [`reap_stuck_learner`] for everyone who waits, both measured by
//! [`LearnerProgress`].
//!
//! Invariants, each against a failure that k3s, kubeadm or etcd users have reported:
//! - A joiner is matched on its peer URL *and* its name, and an unstarted member (etcd's
//!   `MemberAdd` carries no name; the name appears once the member's etcd starts) whose peer URL
//!   is the joiner's *is* the joiner. So a join killed between `member add` and the start of its
//!   etcd resumes that member instead of adding a duplicate.
//! - One learner at a time: while another learner exists a joiner waits ([`JoinStep`]), and
//!   etcd 3.4+ refuses a second learner itself, which [`add_learner`] reports as
//!   [`MembersError::LearnerExists`] (the same wait, reached by a race).
//! - A learner is promoted by one party only, the joiner that added it (it alone knows when
//!   its etcd started); the others wait, and remove it only once it has made no progress
//!   toward promotion for a bounded time ([`LearnerPolicy::max_stall`]), with a warn line
//!   naming it. A learner that is never promoted cannot block every later join.
//! - A removal leaves a quorum of healthy voters, or is refused ([`check_removal`]).
//! - A member's health counts only if the URL answers as that member of this cluster: a removed
//!   member that came back as a cluster of its own, on the same URL, is not "healthy".
//!
//! Must not: retry an etcd refusal other than "not in sync yet" (a conflict or a quorum error
//! needs a person, or a re-list, not a loop); wait without a bound; remove a member that is no
//! longer a learner by the time the reaper acts.
//!
//! The member list etcd 3.4 gives is the answering member's own view (3.4 has no linearizable
//! member list). A stale view cannot make a duplicate: etcd checks peer URLs and the learner
//! count when it applies `MemberAdd`, and those refusals come back typed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, MemberAddOptions};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::retry::Backoff;

/// A member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: u64,
    /// Empty until the member's etcd has started and published its name.
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member's etcd has started.
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    fn from_etcd(m: &etcd_client::Member) -> Self {
        Self {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        }
    }

    /// Whether the member's etcd has ever started (etcd knows its name only from then on).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    pub fn has_peer_url(&self, url: &str) -> bool {
        let url = normalize_url(url);
        self.peer_urls.iter().any(|u| normalize_url(u) == url)
    }

    /// The name, or a placeholder for a member that has not started.
    pub fn label(&self) -> String {
        if self.is_started() {
            self.name.clone()
        } else {
            format!("(unstarted {})", hex(self.id))
        }
    }
}

/// etcd prints member IDs in hex (`etcdctl member list`); so do kubesup's messages and logs.
pub fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// Peer URLs compare without a trailing slash and case-insensitively: etcd keeps what it was
/// given, and `http://10.0.0.2:2380/` is the same peer as `http://10.0.0.2:2380`.
fn normalize_url(url: &str) -> String {
    url.trim_end_matches('/').to_ascii_lowercase()
}

/// What the maintenance `status` call on a member's own client URLs said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// No client URLs yet: added, but its etcd never started.
    Unstarted,
    /// Answered, as this member of this cluster.
    Up {
        db_size: i64,
        raft_applied_index: u64,
        raft_term: u64,
        /// The leader this member knows (0: none).
        leader: u64,
    },
    /// Did not answer within the probe's timeout, failed, or answered as someone else.
    Down { error: String },
}

/// The etcd role of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Voter,
    Learner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Leader => "leader",
            Self::Voter => "voter",
            Self::Learner => "learner",
        })
    }
}

/// The cluster's members at one moment, with what is known of each one's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// 0 when unknown (a snapshot built from a bare member list).
    pub cluster_id: u64,
    pub members: Vec<Member>,
    pub leader: Option<u64>,
    /// Per member ID; a member missing here was not probed.
    pub health: BTreeMap<u64, Health>,
}

impl Membership {
    /// A snapshot with members only: no health, no leader.
    pub fn from_members(members: Vec<Member>) -> Self {
        Self {
            members,
            ..Self::default()
        }
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.is_started() && m.name == name)
    }

    pub fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.is_learner)
    }

    pub fn learners(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_learner)
    }

    /// The members that answered `status` as themselves.
    pub fn healthy_ids(&self) -> BTreeSet<u64> {
        self.health
            .iter()
            .filter(|(_, h)| matches!(h, Health::Up { .. }))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn role(&self, id: u64) -> Option<Role> {
        let m = self.get(id)?;
        Some(if m.is_learner {
            Role::Learner
        } else if self.leader == Some(id) {
            Role::Leader
        } else {
            Role::Voter
        })
    }

    /// The raft applied index `status` reported for `id`, if it answered.
    pub fn applied_index(&self, id: u64) -> Option<u64> {
        match self.health.get(&id) {
            Some(Health::Up {
                raft_applied_index, ..
            }) => Some(*raft_applied_index),
            _ => None,
        }
    }

    /// The leader's applied index; without an answer from the leader, the highest of the
    /// voters that answered (the leader's can only be higher, so a learner judged against it is
    /// never judged caught up too early by much).
    pub fn leader_applied_index(&self) -> Option<u64> {
        self.leader
            .and_then(|l| self.applied_index(l))
            .or_else(|| self.voters().filter_map(|v| self.applied_index(v.id)).max())
    }
}

/// How a member's health is asked for: the client options (TLS) and a bound on each call.
#[derive(Debug, Clone)]
pub struct Probe {
    pub options: ConnectOptions,
    pub timeout: Duration,
}

impl Probe {
    pub fn new(options: ConnectOptions, timeout: Duration) -> Self {
        Self { options, timeout }
    }
}

impl Default for Probe {
    /// Plain connections, 3 s per member: a member that needs longer to answer `status` is
    /// not one to count on for quorum.
    fn default() -> Self {
        Self::new(ConnectOptions::new(), Duration::from_secs(3))
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decisions

/// The votes a raft group of `n` voters needs to commit.
pub const fn quorum(n: usize) -> usize {
    n / 2 + 1
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("member {} is not in the cluster", hex(*id))]
    NotAMember { id: u64 },
    #[error("{name} ({}) is the cluster's only voter: removing it would end the cluster", hex(*id))]
    LastVoter { name: String, id: u64 },
    #[error(
        "removing {name} ({}) would leave {healthy_left} healthy of {voters_left} voters, and \
         {needed} are a quorum: bring the others back or remove a dead member first",
        hex(*id)
    )]
    NoQuorum {
        name: String,
        id: u64,
        voters_left: usize,
        healthy_left: usize,
        needed: usize,
    },
}

/// Whether removing `remove_id` leaves a quorum of healthy voters in the membership after it:
/// `healthy voters left >= quorum(voters left)`. Learners do not vote, so they count neither
/// way, and removing one never costs quorum (unless quorum is lost already, when etcd could not
/// commit the removal anyway).
pub fn check_removal(
    m: &Membership,
    healthy: &BTreeSet<u64>,
    remove_id: u64,
) -> Result<(), QuorumError> {
    let target = m
        .get(remove_id)
        .ok_or(QuorumError::NotAMember { id: remove_id })?;
    let left: Vec<&Member> = m.voters().filter(|v| v.id != remove_id).collect();
    if left.is_empty() && !target.is_learner {
        return Err(QuorumError::LastVoter {
            name: target.label(),
            id: remove_id,
        });
    }
    let healthy_left = left.iter().filter(|v| healthy.contains(&v.id)).count();
    let needed = quorum(left.len());
    if healthy_left < needed {
        return Err(QuorumError::NoQuorum {
            name: target.label(),
            id: remove_id,
            voters_left: left.len(),
            healthy_left,
            needed,
        });
    }
    Ok(())
}

/// Why a joiner cannot be matched with the membership: both sides named, so that an operator
/// can tell which member to remove.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinConflict {
    #[error(
        "the etcd member name {name} is taken by member {} with peer URLs {}, not this node's \
         {peer_url}; if that member is this node from before, remove it (kubesup etcd remove \
         {name}) and join again",
        hex(*id),
        existing_urls.join(",")
    )]
    Name {
        name: String,
        peer_url: String,
        id: u64,
        existing_urls: Vec<String>,
    },
    #[error(
        "the peer URL {peer_url} is member {existing_name}'s ({}), not {name}'s; remove that \
         member first (kubesup etcd remove {existing_name}) or give this node its own address",
        hex(*id)
    )]
    PeerUrl {
        name: String,
        peer_url: String,
        id: u64,
        existing_name: String,
    },
}

/// What a joining master does next, decided from the membership alone, so that running it again
/// after any interruption gives the step that continues the same join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStep {
    /// The joiner is a voter already: start etcd (`--initial-cluster-state existing`); nothing
    /// to add or promote.
    AlreadyVoter(u64),
    /// The joiner is the learner already (added, maybe never started): start etcd and wait for
    /// the promotion. Never add again.
    AlreadyLearner(u64),
    /// The joiner is not a member and no learner exists: add it as a learner.
    AddLearner,
    /// Another learner exists (etcd allows one at a time): wait and decide again.
    WaitForOtherLearner { name: String, id: u64 },
    /// A member has the joiner's name or peer URL but not both: a person must decide.
    Conflict(JoinConflict),
}

/// The next step of the join of `name` with `peer_url`. A member matches the joiner when it has
/// the joiner's peer URL and either the joiner's name or no name yet: an unstarted member (etcd's
/// `MemberAdd` takes no name) with the joiner's peer URL is the joiner's own earlier add. The
/// peer URL alone decides that, since etcd refuses two members with one peer URL; a name alone
/// never does, since a reinstalled node may come back with another address.
pub fn next_join_step(m: &Membership, name: &str, peer_url: &str) -> JoinStep {
    for member in &m.members {
        let same_url = member.has_peer_url(peer_url);
        let same_name = member.is_started() && member.name == name;
        if same_name && !same_url {
            return JoinStep::Conflict(JoinConflict::Name {
                name: name.to_string(),
                peer_url: peer_url.to_string(),
                id: member.id,
                existing_urls: member.peer_urls.clone(),
            });
        }
        if same_url && member.is_started() && !same_name {
            return JoinStep::Conflict(JoinConflict::PeerUrl {
                name: name.to_string(),
                peer_url: peer_url.to_string(),
                id: member.id,
                existing_name: member.name.clone(),
            });
        }
    }
    if let Some(me) = m.members.iter().find(|x| x.has_peer_url(peer_url)) {
        return if me.is_learner {
            JoinStep::AlreadyLearner(me.id)
        } else {
            JoinStep::AlreadyVoter(me.id)
        };
    }
    if let Some(other) = m.learners().next() {
        return JoinStep::WaitForOtherLearner {
            name: other.label(),
            id: other.id,
        };
    }
    JoinStep::AddLearner
}

/// The `--initial-cluster` of a joiner that is a member already (after [`add_learner`], or on a
/// resume): `name=peerURL` for every peer URL of every member, the joiner's under its own name.
///
/// Every member, learners and unstarted ones included: etcd started with
/// `--initial-cluster-state existing` fetches the member list from the peers named here and
/// refuses to start unless it has exactly as many entries ("member count is unequal") and each
/// member's peer URLs match one of them; the IDs come from the cluster, the other names do not
/// matter. An unstarted member other than the joiner (a `member add` outside kubesup) has no
/// name, so it is listed as `unstarted-ID`: etcdctl writes an empty name, and two nameless
/// members would then merge into one entry and fail the count. The joiner must advertise exactly
/// its member's peer URLs (`--initial-advertise-peer-urls`), which etcd checks too.
pub fn initial_cluster(
    members: &[Member],
    joiner_name: &str,
    joiner_peer_url: &str,
) -> Result<String, MembersError> {
    let mut found = false;
    let mut entries = Vec::new();
    for m in members {
        let name = if m.has_peer_url(joiner_peer_url) {
            found = true;
            joiner_name.to_string()
        } else if m.is_started() {
            m.name.clone()
        } else {
            format!("unstarted-{}", hex(m.id))
        };
        entries.extend(m.peer_urls.iter().map(|u| format!("{name}={u}")));
    }
    if !found {
        return Err(MembersError::NotAMember {
            name: joiner_name.to_string(),
            peer_url: joiner_peer_url.to_string(),
        });
    }
    Ok(entries.join(","))
}

/// Progress of one learner toward its promotion, from its raft applied index.
///
/// The clock restarts whenever the learner's applied index rises while it is still behind the
/// leader (below 90 % of the leader's index, etcd's own bar for promotion). Once caught up it no
/// longer restarts, however the index moves: a caught-up learner on a busy cluster applies every
/// write, and without this rule one that nobody promotes would count as progressing forever (the
/// k3s failure this guards against). A learner that does not answer `status`, never started or is
/// down, makes no progress. The applied index, not the time since the add, because a learner
/// that is still receiving a large snapshot must not be removed for being slow.
#[derive(Debug, Clone)]
pub struct LearnerProgress {
    pub id: u64,
    best: Option<u64>,
    since: Instant,
}

impl LearnerProgress {
    pub fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            best: None,
            since: now,
        }
    }

    /// Records one observation; returns how long the learner has gone without progress.
    pub fn observe(
        &mut self,
        now: Instant,
        learner_index: Option<u64>,
        leader_index: Option<u64>,
    ) -> Duration {
        if let Some(i) = learner_index {
            let rose = self.best.is_none_or(|b| i > b);
            if rose && !caught_up(i, leader_index) {
                self.since = now;
            }
            self.best = Some(self.best.map_or(i, |b| b.max(i)));
        }
        now.saturating_duration_since(self.since)
    }
}

/// etcd promotes a learner whose raft match index is at least 90 % of the leader's.
fn caught_up(learner: u64, leader: Option<u64>) -> bool {
    leader.is_some_and(|l| learner >= l - l / 10)
}

/// How long a learner may go without progress, and how often it is looked at.
#[derive(Debug, Clone)]
pub struct LearnerPolicy {
    /// A learner that makes no progress for this long is removed. Longer than a snapshot of a
    /// full database takes to arrive and the promotion to follow.
    pub max_stall: Duration,
    /// The period of the status polls and the promotion attempts.
    pub poll: Duration,
    pub probe: Probe,
}

impl LearnerPolicy {
    /// 5 minutes: etcd's default 2 GiB quota crosses a slow LAN in well under that, and a join
    /// blocked that long is still one an operator sees as "waiting", not "stuck".
    pub const DEFAULT_MAX_STALL: Duration = Duration::from_secs(300);

    pub fn new(probe: Probe) -> Self {
        Self {
            max_stall: Self::DEFAULT_MAX_STALL,
            poll: Duration::from_secs(2),
            probe,
        }
    }

    pub fn with_max_stall(mut self, max_stall: Duration) -> Self {
        self.max_stall = max_stall;
        self
    }

    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error("etcd request {what} failed")]
    Request {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "etcd refused learner {name} ({peer_url}): another learner is in the cluster, and etcd \
         allows one at a time; wait for it to be promoted or removed"
    )]
    LearnerExists {
        name: String,
        peer_url: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "etcd refused learner {name}: a member has the peer URL {peer_url} already; list the \
         members again and resume that one"
    )]
    PeerUrlExists {
        name: String,
        peer_url: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd answered member add for {peer_url} without the new member")]
    NoMemberInReply { peer_url: String },
    #[error("etcd answered status without a response header")]
    NoHeader,
    #[error("learner {} was not in sync with the leader after {attempts} promotion attempts", hex(*id))]
    NotCaughtUp {
        id: u64,
        attempts: u32,
        #[source]
        source: etcd_client::Error,
    },
    #[error("learner {} is no longer a member: someone removed it", hex(*id))]
    LearnerGone { id: u64 },
    #[error(
        "learner {name} ({}) made no progress toward promotion for {} and was removed",
        hex(*id),
        humantime::format_duration(*stalled)
    )]
    StuckLearnerRemoved {
        name: String,
        id: u64,
        stalled: Duration,
    },
    #[error("{name} ({peer_url}) is not an etcd member: add it before starting its etcd")]
    NotAMember { name: String, peer_url: String },
    #[error(transparent)]
    Connect(#[from] super::EtcdError),
    #[error("no other etcd member is known to ask")]
    NoPeers,
}

impl MembersError {
    /// Whether the cluster could not be asked now (a member restarting, a leader election, a
    /// connection not yet made) rather than answered no: the caller may ask again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Request { source, .. } => transient(source),
            Self::Connect(_) => true,
            _ => false,
        }
    }
}

/// gRPC's status codes for "not now" (grpc/doc/statuscodes.md): UNAVAILABLE, DEADLINE_EXCEEDED,
/// and CANCELLED, which is what the client reports when its own request timeout expires (a
/// membership change proposed while the leader is being replaced can wait out any timeout).
const GRPC_CANCELLED: i32 = 1;
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

const GRPC_UNKNOWN: i32 = 2;

fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            transient_status(i32::from(status.code()), status.message())
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// A gRPC status worth asking again. Besides the "not now" codes: UNKNOWN when the HTTP/2
/// stream broke under the request, which is what the client reports when the member it asked
/// restarts mid-request (the first master restarts its etcd with multi-member timing as the
/// first learner appears): "protocol error: missing grpc-status trailer, stream was terminated
/// without a final status". Every caller decides again from a fresh member list, so a request
/// that did land before its answer was lost is found done, never repeated blindly.
fn transient_status(code: i32, message: &str) -> bool {
    const BROKEN_STREAM: [&str; 4] = [
        "stream was terminated",
        "missing grpc-status",
        "connection reset",
        "broken pipe",
    ];
    match code {
        GRPC_CANCELLED | GRPC_DEADLINE_EXCEEDED | GRPC_UNAVAILABLE => true,
        GRPC_UNKNOWN => {
            let m = message.to_ascii_lowercase();
            BROKEN_STREAM.iter().any(|s| m.contains(s))
        }
        _ => false,
    }
}

/// etcd's refusals that a caller acts on, told apart by their messages (etcd's gRPC errors
/// carry no code finer than FailedPrecondition; the texts are rpctypes' and stable since 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// "can only promote a learner member which is in sync with leader"
    LearnerNotReady,
    /// "can only promote a learner member": it is a voter already.
    NotLearner,
    /// "re-configuration failed due to not enough started members": the learner has caught up
    /// but not yet published its name, for a moment after its start.
    NotEnoughStarted,
    TooManyLearners,
    PeerUrlExists,
    MemberNotFound,
    Other,
}

fn refusal(e: &etcd_client::Error) -> Refusal {
    match e {
        etcd_client::Error::GRpcStatus(status) => refusal_of(status.message()),
        _ => Refusal::Other,
    }
}

fn refusal_of(msg: &str) -> Refusal {
    // The longer text first: "not a learner" is a prefix of "not in sync".
    if msg.contains("which is in sync with leader") {
        Refusal::LearnerNotReady
    } else if msg.contains("can only promote a learner member") {
        Refusal::NotLearner
    } else if msg.contains("not enough started members") {
        Refusal::NotEnoughStarted
    } else if msg.contains("too many learner members") {
        Refusal::TooManyLearners
    } else if msg.contains("Peer URLs already exists") || msg.contains("member ID already exist") {
        // etcd 3.4 derives a new member's ID from its peer URLs and the time in seconds: the
        // same peer URL added twice within a second collides on the ID first.
        Refusal::PeerUrlExists
    } else if msg.contains("member not found") {
        Refusal::MemberNotFound
    } else {
        Refusal::Other
    }
}

/// A promotion refused only because the learner has not caught up yet.
fn not_yet(e: &etcd_client::Error) -> bool {
    matches!(
        refusal(e),
        Refusal::LearnerNotReady | Refusal::NotEnoughStarted
    )
}

fn request(what: &'static str) -> impl FnOnce(etcd_client::Error) -> MembersError {
    move |source| MembersError::Request { what, source }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// The ID of the member `client` talks to (with one endpoint: the local member), from the
/// header of its `status` answer; with [`Membership::role`], the local etcd role.
pub async fn local_id(client: &mut Client) -> Result<u64, MembersError> {
    let status = client.status().await.map_err(request("status"))?;
    status
        .header()
        .map(|h| h.member_id())
        .ok_or(MembersError::NoHeader)
}

/// The answering member's ID, and whether it is a learner (a learner serves status, and
/// nothing of the membership: etcd 3.4 refuses it a member list and a promotion).
pub async fn local_status(client: &mut Client) -> Result<(u64, bool), MembersError> {
    let status = client.status().await.map_err(request("status"))?;
    let id = status
        .header()
        .map(|h| h.member_id())
        .ok_or(MembersError::NoHeader)?;
    Ok((id, status.is_learner()))
}

/// The member list, as the answering member sees it.
pub async fn list(client: &mut Client) -> Result<Vec<Member>, MembersError> {
    Ok(list_with_cluster(client).await?.1)
}

async fn list_with_cluster(client: &mut Client) -> Result<(u64, Vec<Member>), MembersError> {
    let resp = client.member_list().await.map_err(request("member list"))?;
    let cluster_id = resp.header().map_or(0, |h| h.cluster_id());
    Ok((
        cluster_id,
        resp.members().iter().map(Member::from_etcd).collect(),
    ))
}

/// The member list, the leader, and every member's health from its own client URLs, all
/// members probed at once, each bounded by `probe.timeout`.
pub async fn membership(client: &mut Client, probe: &Probe) -> Result<Membership, MembersError> {
    let (cluster_id, members) = list_with_cluster(client).await?;
    let health =
        futures_util::future::join_all(members.iter().map(|m| member_health(m, cluster_id, probe)))
            .await;
    let health: BTreeMap<u64, Health> = members.iter().map(|m| m.id).zip(health).collect();
    // The leader as the member with the newest term knows it: after an election, a member that
    // has not heard of it yet still names the old one.
    let leader = health
        .values()
        .filter_map(|h| match h {
            Health::Up {
                raft_term, leader, ..
            } if *leader != 0 => Some((*raft_term, *leader)),
            _ => None,
        })
        .max()
        .map(|(_, leader)| leader);
    Ok(Membership {
        cluster_id,
        members,
        leader,
        health,
    })
}

/// `status` on the member's own client URLs, bounded by `probe.timeout` in all. It counts as up
/// only if the answer comes from that member ID of cluster `cluster_id` (0: not checked).
pub async fn member_health(member: &Member, cluster_id: u64, probe: &Probe) -> Health {
    if member.client_urls.is_empty() {
        return Health::Unstarted;
    }
    let options = probe
        .options
        .clone()
        .with_connect_timeout(probe.timeout)
        .with_timeout(probe.timeout);
    let ask = async {
        let mut c = Client::connect(member.client_urls.as_slice(), Some(options)).await?;
        c.status().await
    };
    let status = match tokio::time::timeout(probe.timeout, ask).await {
        Err(_) => {
            return Health::Down {
                error: format!(
                    "no answer within {}",
                    humantime::format_duration(probe.timeout)
                ),
            };
        }
        Ok(Err(e)) => {
            return Health::Down {
                error: crate::errors::chain(&e),
            };
        }
        Ok(Ok(s)) => s,
    };
    if let Some(h) = status.header() {
        if h.member_id() != member.id {
            return Health::Down {
                error: format!(
                    "{} answers as member {}",
                    member.client_urls.join(","),
                    hex(h.member_id())
                ),
            };
        }
        if cluster_id != 0 && h.cluster_id() != cluster_id {
            return Health::Down {
                error: format!(
                    "{} answers for another cluster ({})",
                    member.client_urls.join(","),
                    hex(h.cluster_id())
                ),
            };
        }
    }
    Health::Up {
        db_size: status.db_size(),
        raft_applied_index: status.raft_applied_index(),
        raft_term: status.raft_term(),
        leader: status.leader(),
    }
}

/// Adds `peer_url` as a learner; returns the new member (nameless: etcd learns the name when its
/// etcd starts) and the member list after the add, for [`initial_cluster`]. `name` is the
/// joiner's, for the log line and the errors. Decide with [`next_join_step`] first: this never
/// checks whether the joiner is a member already.
pub async fn add_learner(
    client: &mut Client,
    name: &str,
    peer_url: &str,
) -> Result<(Member, Vec<Member>), MembersError> {
    let resp = client
        .member_add(
            [peer_url.to_string()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .map_err(|source| match refusal(&source) {
            Refusal::TooManyLearners => MembersError::LearnerExists {
                name: name.to_string(),
                peer_url: peer_url.to_string(),
                source,
            },
            Refusal::PeerUrlExists => MembersError::PeerUrlExists {
                name: name.to_string(),
                peer_url: peer_url.to_string(),
                source,
            },
            _ => MembersError::Request {
                what: "member add",
                source,
            },
        })?;
    let member =
        resp.member()
            .map(Member::from_etcd)
            .ok_or_else(|| MembersError::NoMemberInReply {
                peer_url: peer_url.to_string(),
            })?;
    let members = resp.member_list().iter().map(Member::from_etcd).collect();
    info!(member = name, id = %hex(member.id), peer_url, "added etcd learner");
    Ok((member, members))
}

/// Promotes learner `id` to a voter, retrying on `backoff` while etcd answers that it is not in
/// sync with the leader yet (expected until it has caught up); any other refusal is final.
/// Promoting a member that is a voter already succeeds: a promotion whose reply was lost is
/// done. Returns the member list after it.
pub async fn promote(
    client: &mut Client,
    id: u64,
    backoff: &Backoff,
) -> Result<Vec<Member>, MembersError> {
    let promoted = backoff
        .retry(
            "promote etcd learner",
            || {
                // A clone per attempt (it shares the connection): the future owns its client.
                let mut c = client.clone();
                async move { c.member_promote(id).await }
            },
            |e| !not_yet(e),
        )
        .await;
    match promoted {
        Ok(resp) => {
            info!(id = %hex(id), "promoted etcd learner to voter");
            Ok(resp.members().iter().map(Member::from_etcd).collect())
        }
        Err(e) => match refusal(&e) {
            Refusal::NotLearner => {
                info!(id = %hex(id), "etcd member is a voter already");
                list(client).await
            }
            Refusal::MemberNotFound => Err(MembersError::LearnerGone { id }),
            Refusal::LearnerNotReady | Refusal::NotEnoughStarted => {
                Err(MembersError::NotCaughtUp {
                    id,
                    attempts: backoff.attempts.unwrap_or(u32::MAX),
                    source: e,
                })
            }
            _ => Err(MembersError::Request {
                what: "member promote",
                source: e,
            }),
        },
    }
}

/// Removes member `id`. `Ok(false)` if it was not a member (removed already: a removal whose
/// reply was lost is done). Check [`check_removal`] first; etcd's own check
/// (`--strict-reconfig-check`) counts started members, not healthy ones.
pub async fn remove(client: &mut Client, id: u64) -> Result<bool, MembersError> {
    match client.member_remove(id).await {
        Ok(_) => {
            info!(id = %hex(id), "removed etcd member");
            Ok(true)
        }
        Err(e) if refusal(&e) == Refusal::MemberNotFound => {
            info!(id = %hex(id), "etcd member was removed already");
            Ok(false)
        }
        Err(source) => Err(MembersError::Request {
            what: "member remove",
            source,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The learner policy

/// For the one party that promotes (the joiner that added learner `id`, once its etcd runs):
/// tries the promotion every `policy.poll` until etcd accepts it. If the learner makes no
/// progress (see [`LearnerProgress`]) for `policy.max_stall`, it is removed, so that it blocks
/// no later join, and the result is [`MembersError::StuckLearnerRemoved`]: the joiner must then
/// stop its etcd and empty its data dir before it joins again, or it would come back as the
/// removed member. Returns the member list after the promotion.
///
/// Any other failure (an election in the middle of a request) ends the call with that error,
/// the same as in [`promote`]: every step of a join is resumable, so the caller decides with
/// [`next_join_step`] again, gets [`JoinStep::AlreadyLearner`], and calls this again. The stall
/// clock then starts over, which only ever delays a removal.
pub async fn promote_when_caught_up(
    client: &mut Client,
    id: u64,
    policy: &LearnerPolicy,
) -> Result<Vec<Member>, MembersError> {
    let mut progress = LearnerProgress::new(id, Instant::now());
    loop {
        let m = membership(client, &policy.probe).await?;
        let Some(me) = m.get(id) else {
            return Err(MembersError::LearnerGone { id });
        };
        if !me.is_learner {
            return Ok(m.members);
        }
        match client.member_promote(id).await {
            Ok(resp) => {
                info!(member = %me.label(), id = %hex(id), "promoted etcd learner to voter");
                return Ok(resp.members().iter().map(Member::from_etcd).collect());
            }
            Err(e) if not_yet(&e) => {}
            Err(e) => match refusal(&e) {
                Refusal::NotLearner => return list(client).await,
                Refusal::MemberNotFound => return Err(MembersError::LearnerGone { id }),
                _ => {
                    return Err(MembersError::Request {
                        what: "member promote",
                        source: e,
                    });
                }
            },
        }
        let stalled = progress.observe(
            Instant::now(),
            m.applied_index(id),
            m.leader_applied_index(),
        );
        if stalled >= policy.max_stall {
            let name = me.label();
            if remove_stuck(client, id, stalled).await? {
                return Err(MembersError::StuckLearnerRemoved { name, id, stalled });
            }
            // Promoted or removed by someone else in the meantime: the next look tells which.
            continue;
        }
        debug!(
            member = %me.label(),
            id = %hex(id),
            applied = ?m.applied_index(id),
            leader_applied = ?m.leader_applied_index(),
            stalled = ?stalled,
            "etcd learner not in sync yet"
        );
        tokio::time::sleep(policy.poll).await;
    }
}

/// For a joiner that must wait for another learner ([`JoinStep::WaitForOtherLearner`]): watches
/// the cluster's learner until it is gone (promoted or removed: `Ok(None)`, decide the next
/// step again) or has made no progress for `policy.max_stall`, and then removes it
/// (`Ok(Some(member))`). The stall is measured from this call's first look, never from an
/// earlier one: a reaper that starts late waits the full bound before it removes anything.
pub async fn reap_stuck_learner(
    client: &mut Client,
    policy: &LearnerPolicy,
) -> Result<Option<Member>, MembersError> {
    let mut watch: Option<LearnerProgress> = None;
    loop {
        let m = membership(client, &policy.probe).await?;
        let Some(learner) = m.learners().next() else {
            return Ok(None);
        };
        let now = Instant::now();
        let progress = match &mut watch {
            Some(p) if p.id == learner.id => p,
            // A new learner (the old one went, another was added): its own clock.
            _ => watch.insert(LearnerProgress::new(learner.id, now)),
        };
        let stalled = progress.observe(now, m.applied_index(learner.id), m.leader_applied_index());
        if stalled >= policy.max_stall {
            return Ok(remove_stuck(client, learner.id, stalled)
                .await?
                .then(|| learner.clone()));
        }
        debug!(
            member = %learner.label(),
            id = %hex(learner.id),
            stalled = ?stalled,
            "waiting for the etcd learner to be promoted"
        );
        tokio::time::sleep(policy.poll).await;
    }
}

/// Removes learner `id` if it still is one, with the warn line that says why. `Ok(false)` if it
/// has meanwhile been promoted or removed. The re-read narrows, but cannot close, the window in
/// which a promotion lands between it and the removal: etcd has no conditional member remove.
async fn remove_stuck(
    client: &mut Client,
    id: u64,
    stalled: Duration,
) -> Result<bool, MembersError> {
    let members = list(client).await?;
    let Some(member) = members.iter().find(|m| m.id == id && m.is_learner) else {
        return Ok(false);
    };
    warn!(
        member = %member.label(),
        id = %hex(id),
        peer_urls = %member.peer_urls.join(","),
        stalled = %humantime::format_duration(stalled),
        "removing etcd learner: no progress toward promotion within the bound, and one stuck \
         learner would block every later join"
    );
    remove(client, id).await
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_stream_broken_under_a_request_is_asked_again_and_a_refusal_is_not() {
        let lost = "protocol error: missing grpc-status trailer, stream was terminated without \
                    a final status (possible truncation by a proxy or load balancer)";
        assert!(transient_status(GRPC_UNKNOWN, lost));
        assert!(transient_status(
            GRPC_UNAVAILABLE,
            "etcdserver: leader changed"
        ));
        assert!(transient_status(GRPC_CANCELLED, ""));
        assert!(!transient_status(
            GRPC_UNKNOWN,
            "etcdserver: some other failure"
        ));
        // FAILED_PRECONDITION: a refusal (peer URL exists, too many learners), acted on.
        assert!(!transient_status(9, "etcdserver: Peer URLs already exists"));
    }

    use super::*;

    fn member(id: u64, name: &str, peer: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: if name.is_empty() {
                vec![]
            } else {
                vec![peer.replace("2380", "2379")]
            },
            is_learner: learner,
        }
    }

    fn voters(n: u64) -> Vec<Member> {
        (1..=n)
            .map(|i| {
                member(
                    i,
                    &format!("m{i}"),
                    &format!("http://10.0.0.{i}:2380"),
                    false,
                )
            })
            .collect()
    }

    fn ids(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(
            (0..=7).map(quorum).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3, 4, 4]
        );
    }

    #[test]
    fn a_removal_must_leave_a_healthy_quorum_of_the_voters_left() {
        let m = Membership::from_members(voters(3));
        // Member 3 is dead: removing a healthy one leaves 1 healthy of 2, no quorum.
        let e = check_removal(&m, &ids(&[1, 2]), 1).unwrap_err();
        assert_eq!(
            e,
            QuorumError::NoQuorum {
                name: "m1".into(),
                id: 1,
                voters_left: 2,
                healthy_left: 1,
                needed: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "removing m1 (1) would leave 1 healthy of 2 voters, and 2 are a quorum: bring the \
             others back or remove a dead member first"
        );
        // Removing the dead one leaves 2 healthy of 2.
        check_removal(&m, &ids(&[1, 2]), 3).unwrap();
        // All healthy: any one may go.
        check_removal(&m, &ids(&[1, 2, 3]), 2).unwrap();
        // Five voters, two dead: removing a healthy one leaves 2 of 4, quorum 3.
        let m5 = Membership::from_members(voters(5));
        assert!(check_removal(&m5, &ids(&[1, 2, 3]), 1).is_err());
        check_removal(&m5, &ids(&[1, 2, 3]), 5).unwrap();
        // The last voter, and one that is not there.
        let m1 = Membership::from_members(voters(1));
        assert!(matches!(
            check_removal(&m1, &ids(&[1]), 1),
            Err(QuorumError::LastVoter { id: 1, .. })
        ));
        assert_eq!(
            check_removal(&m1, &ids(&[1]), 9),
            Err(QuorumError::NotAMember { id: 9 })
        );
    }

    #[test]
    fn learners_count_neither_way_in_a_removal() {
        let mut members = voters(2);
        members.push(member(7, "l", "http://10.0.0.7:2380", true));
        let m = Membership::from_members(members);
        // A healthy learner does not make up for a dead voter.
        assert!(check_removal(&m, &ids(&[1, 7]), 1).is_err());
        // Removing the learner (dead or not) costs no quorum.
        check_removal(&m, &ids(&[1, 2]), 7).unwrap();
        // A lone voter with a learner: removing the learner is fine, the voter is the last.
        let m = Membership::from_members(vec![
            member(1, "m1", "http://10.0.0.1:2380", false),
            member(7, "", "http://10.0.0.7:2380", true),
        ]);
        check_removal(&m, &ids(&[1]), 7).unwrap();
        assert!(matches!(
            check_removal(&m, &ids(&[1]), 1),
            Err(QuorumError::LastVoter { .. })
        ));
    }

    const J: &str = "http://10.0.0.9:2380";

    #[test]
    fn a_join_step_is_decided_from_the_membership_alone() {
        let mut members = voters(2);
        let m = Membership::from_members(members.clone());
        assert_eq!(next_join_step(&m, "j", J), JoinStep::AddLearner);

        // Added, never started: nameless, and matched by its peer URL (a trailing slash is
        // the same URL).
        members.push(member(9, "", J, true));
        let m = Membership::from_members(members.clone());
        assert_eq!(next_join_step(&m, "j", J), JoinStep::AlreadyLearner(9));
        assert_eq!(
            next_join_step(&m, "j", "HTTP://10.0.0.9:2380/"),
            JoinStep::AlreadyLearner(9)
        );
        // Another joiner waits for it.
        assert_eq!(
            next_join_step(&m, "k", "http://10.0.0.10:2380"),
            JoinStep::WaitForOtherLearner {
                name: "(unstarted 9)".into(),
                id: 9
            }
        );

        // Started: named; still the joiner's.
        members[2].name = "j".into();
        let m = Membership::from_members(members.clone());
        assert_eq!(next_join_step(&m, "j", J), JoinStep::AlreadyLearner(9));
        assert_eq!(
            next_join_step(&m, "k", "http://10.0.0.10:2380"),
            JoinStep::WaitForOtherLearner {
                name: "j".into(),
                id: 9
            }
        );

        // Promoted.
        members[2].is_learner = false;
        let m = Membership::from_members(members);
        assert_eq!(next_join_step(&m, "j", J), JoinStep::AlreadyVoter(9));
        assert_eq!(
            next_join_step(&m, "k", "http://10.0.0.10:2380"),
            JoinStep::AddLearner
        );
    }

    #[test]
    fn a_name_or_a_peer_url_alone_is_a_conflict_that_names_both_sides() {
        let m = Membership::from_members(voters(2));
        // m2's name, another address (a reinstalled node with a new IP).
        let step = next_join_step(&m, "m2", J);
        let JoinStep::Conflict(c) = step else {
            panic!("{step:?}")
        };
        assert_eq!(
            c.to_string(),
            "the etcd member name m2 is taken by member 2 with peer URLs http://10.0.0.2:2380, \
             not this node's http://10.0.0.9:2380; if that member is this node from before, \
             remove it (kubesup etcd remove m2) and join again"
        );
        // m2's address under another name.
        let step = next_join_step(&m, "j", "http://10.0.0.2:2380");
        let JoinStep::Conflict(c) = step else {
            panic!("{step:?}")
        };
        assert!(
            matches!(&c, JoinConflict::PeerUrl { existing_name, id: 2, .. } if existing_name == "m2")
        );
        assert!(c.to_string().contains("http://10.0.0.2:2380"), "{c}");
        assert!(
            c.to_string().contains("m2") && c.to_string().contains("j's"),
            "{c}"
        );
        // A conflict wins over a learner to wait for: waiting would not resolve it.
        let mut members = voters(2);
        members.push(member(9, "", "http://10.0.0.8:2380", true));
        let m = Membership::from_members(members);
        assert!(matches!(
            next_join_step(&m, "m1", J),
            JoinStep::Conflict(JoinConflict::Name { .. })
        ));
    }

    #[test]
    fn the_initial_cluster_lists_every_member_and_the_joiner_under_its_name() {
        let mut members = voters(2);
        members.push(member(9, "", J, true));
        assert_eq!(
            initial_cluster(&members, "j", J).unwrap(),
            "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,j=http://10.0.0.9:2380"
        );
        // An unstarted member that is not the joiner gets a name of its own, so that two of
        // them never merge into one entry; every peer URL of a member is listed.
        members.push(member(0xab, "", "http://10.0.0.11:2380", false));
        members[0]
            .peer_urls
            .push("http://192.168.0.1:2380".to_string());
        assert_eq!(
            initial_cluster(&members, "j", J).unwrap(),
            "m1=http://10.0.0.1:2380,m1=http://192.168.0.1:2380,m2=http://10.0.0.2:2380,\
             j=http://10.0.0.9:2380,unstarted-ab=http://10.0.0.11:2380"
        );
        // A joiner that is not a member must not start its etcd.
        assert!(matches!(
            initial_cluster(&voters(2), "j", J),
            Err(MembersError::NotAMember { .. })
        ));
    }

    #[test]
    fn a_learner_progresses_only_while_it_catches_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = LearnerProgress::new(9, t0);
        // Never answers: the clock runs from the start.
        assert_eq!(p.observe(t0 + s(5), None, Some(1000)), s(5));
        // Answers, behind: progress.
        assert_eq!(p.observe(t0 + s(6), Some(10), Some(1000)), s(0));
        assert_eq!(p.observe(t0 + s(8), Some(10), Some(1000)), s(2));
        assert_eq!(p.observe(t0 + s(9), Some(500), Some(1000)), s(0));
        // Down for a while: no progress, and a lower index later is not progress either.
        assert_eq!(p.observe(t0 + s(12), None, Some(1000)), s(3));
        assert_eq!(p.observe(t0 + s(13), Some(400), Some(1000)), s(4));
        // Caught up (within 10 % of the leader): still advancing, but nobody promotes it.
        assert_eq!(p.observe(t0 + s(14), Some(950), Some(1000)), s(5));
        assert_eq!(p.observe(t0 + s(20), Some(2000), Some(2010)), s(11));
        // No leader index known: any rise counts.
        let mut q = LearnerProgress::new(9, t0);
        assert_eq!(q.observe(t0 + s(3), Some(5), None), s(0));
    }

    #[test]
    fn roles_and_leader_index_come_from_the_snapshot() {
        let mut members = voters(2);
        members.push(member(9, "j", J, true));
        let mut m = Membership::from_members(members);
        m.leader = Some(2);
        let up = |i| Health::Up {
            db_size: 20480,
            raft_applied_index: i,
            raft_term: 2,
            leader: 2,
        };
        m.health.insert(1, up(40));
        m.health.insert(
            2,
            Health::Down {
                error: "refused".into(),
            },
        );
        m.health.insert(9, up(12));
        assert_eq!(m.role(1), Some(Role::Voter));
        assert_eq!(m.role(2), Some(Role::Leader));
        assert_eq!(m.role(9), Some(Role::Learner));
        assert_eq!(m.role(5), None);
        assert_eq!(m.healthy_ids(), ids(&[1, 9]));
        // The leader did not answer: the best voter's index stands in; learners never do.
        assert_eq!(m.leader_applied_index(), Some(40));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["health"]["2"]["state"], "down");
        assert_eq!(json["members"][2]["is_learner"], true);
    }

    #[test]
    fn etcd_refusals_are_told_apart_by_their_text() {
        // etcd answers all of these with FailedPrecondition: the code does not tell them apart.
        let r = refusal_of;
        assert_eq!(
            r("etcdserver: can only promote a learner member which is in sync with leader"),
            Refusal::LearnerNotReady
        );
        assert_eq!(
            r("etcdserver: can only promote a learner member"),
            Refusal::NotLearner
        );
        assert_eq!(
            r("etcdserver: too many learner members in cluster"),
            Refusal::TooManyLearners
        );
        assert_eq!(
            r("etcdserver: Peer URLs already exists"),
            Refusal::PeerUrlExists
        );
        assert_eq!(
            r("etcdserver: member ID already exist"),
            Refusal::PeerUrlExists
        );
        assert_eq!(r("etcdserver: member not found"), Refusal::MemberNotFound);
        assert_eq!(
            r("etcdserver: re-configuration failed due to not enough started members"),
            Refusal::NotEnoughStarted
        );
        assert_eq!(r("etcdserver: unhealthy cluster"), Refusal::Other);
        // Not a gRPC status at all (a transport error): never a refusal.
        assert_eq!(
            refusal(&etcd_client::Error::InvalidArgs(
                "can only promote a learner member which is in sync with leader".into()
            )),
            Refusal::Other
        );
    }

    #[test]
    fn every_error_shows_each_cause_once() {
        let e = MembersError::LearnerExists {
            name: "m2".into(),
            peer_url: J.into(),
            source: etcd_client::Error::InvalidArgs("too many learner members".into()),
        };
        let text = crate::errors::chain(&e);
        assert_eq!(
            text.matches("too many learner members").count(),
            1,
            "{text}"
        );
        let e = MembersError::StuckLearnerRemoved {
            name: "m2".into(),
            id: 0x1f,
            stalled: Duration::from_secs(300),
        };
        assert_eq!(
            e.to_string(),
            "learner m2 (1f) made no progress toward promotion for 5m and was removed"
        );
    }
}
