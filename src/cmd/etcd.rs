//! `kubesup etcd members|remove`, against the etcd of the master on this data dir, with the
//! master's etcd healthcheck client certificate. Each member's health is asked on its own
//! client URLs ([`members::membership`]), so the table shows what each member says of itself,
//! not what the local member believes of it.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::Client;
use serde::Serialize;
use tracing::warn;

use crate::cli::{EtcdCommand, NodeArgs};
use crate::cmd::{Globals, SetupError};
use crate::config::{Config, ConfigError};
use crate::errors::{EXIT_FAILURE, EXIT_INVALID, Exit};
use crate::etcd::members::{
    self, Health, Member, MembersError, Membership, Probe, QuorumError, hex,
};
use crate::etcd::{self, EtcdError};
use crate::retry::Backoff;

/// The bound on each member's health probe: a member slower than this to answer `status` is
/// not one to count on for quorum, and a table of five dead members still prints within it
/// (they are probed at once).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EtcdCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot reach the master's etcd: is `kubesup master` running on {data_dir}?")]
    Connect {
        data_dir: PathBuf,
        #[source]
        source: EtcdError,
    },
    #[error("cannot read the etcd member list from {endpoint}")]
    List {
        endpoint: String,
        #[source]
        source: MembersError,
    },
    #[error("cannot ask the etcd member at {endpoint} for its own ID")]
    LocalId {
        endpoint: String,
        #[source]
        source: MembersError,
    },
    #[error("no etcd member is named {name}; the members are: {}", names.join(", "))]
    UnknownMember { name: String, names: Vec<String> },
    #[error(
        "{name} ({}) is this machine's own etcd member: to take this machine out of the \
         cluster, run `kubesup reset` on it",
        hex(*id)
    )]
    LocalMember { name: String, id: u64 },
    // The quorum arithmetic is the whole message: the cause is shown, not chained.
    #[error("{0} (--force removes it anyway)")]
    Quorum(QuorumError),
    #[error("cannot remove etcd member {name} ({})", hex(*id))]
    Remove {
        name: String,
        id: u64,
        #[source]
        source: MembersError,
    },
    #[error("cannot render the etcd members as JSON")]
    Json(#[from] serde_json::Error),
}

impl Exit for EtcdCmdError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Config(e) => e.exit_code(),
            Self::Setup(e) => e.exit_code(),
            // Bad input, found before anything was changed.
            Self::UnknownMember { .. } | Self::LocalMember { .. } => EXIT_INVALID,
            _ => EXIT_FAILURE,
        }
    }

    fn render(&self) -> String {
        match self {
            Self::Config(e) => e.render(),
            Self::Setup(e) => e.render(),
            other => format!("error: {}", crate::errors::chain(other)),
        }
    }
}

pub fn run(cmd: EtcdCommand, g: &Globals) -> Result<(), EtcdCmdError> {
    g.init_tracing(None)?;
    crate::cmd::runtime()?.block_on(etcd_cmd(cmd, g))
}

async fn etcd_cmd(cmd: EtcdCommand, g: &Globals) -> Result<(), EtcdCmdError> {
    match cmd {
        EtcdCommand::Members { node, json } => {
            let mut local = Local::connect(g, &node).await?;
            let m = local.membership().await?;
            let rows = rows(&m);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", table(&rows));
            }
        }
        EtcdCommand::Remove { node, name, force } => {
            let mut local = Local::connect(g, &node).await?;
            let local_id = members::local_id(&mut local.client)
                .await
                .map_err(|source| EtcdCmdError::LocalId {
                    endpoint: local.endpoint.clone(),
                    source,
                })?;
            let m = local.membership().await?;
            let target = find(&m, &name)?.clone();
            if target.id == local_id {
                return Err(EtcdCmdError::LocalMember {
                    name: target.label(),
                    id: target.id,
                });
            }
            if let Err(e) = members::check_removal(&m, &m.healthy_ids(), target.id) {
                if !force {
                    return Err(EtcdCmdError::Quorum(e));
                }
                warn!(
                    member = %target.label(),
                    id = %hex(target.id),
                    check = %e,
                    "removing the etcd member against the quorum check (--force)"
                );
            }
            // Asked again while the cluster cannot answer (a leader election right after the
            // member's machine died, etcd's own request timeout): a removal whose answer was
            // lost is found done (`Ok(false)`) by the next attempt.
            let id = target.id;
            let removed = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5))
                .with_attempts(6)
                .retry(
                    "remove the etcd member",
                    || {
                        let mut c = local.client.clone();
                        async move { members::remove(&mut c, id).await }
                    },
                    |e: &MembersError| !e.is_transient(),
                )
                .await
                .map_err(|source| EtcdCmdError::Remove {
                    name: target.label(),
                    id: target.id,
                    source,
                })?;
            if removed {
                println!("removed etcd member {}", describe(&target));
            } else {
                println!("etcd member {} was removed already", describe(&target));
            }
        }
    }
    Ok(())
}

/// The local member, and how to probe the others.
struct Local {
    client: Client,
    endpoint: String,
    probe: Probe,
}

impl Local {
    async fn connect(g: &Globals, node: &NodeArgs) -> Result<Self, EtcdCmdError> {
        let cfg: Config = g.node_config(node)?;
        let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
        let endpoint = etcd::local_endpoint(cfg.ports.etcd_client);
        let unreachable = |source| EtcdCmdError::Connect {
            data_dir: cfg.paths.data_dir().to_path_buf(),
            source,
        };
        let probe = Probe::new(etcd::tls_options(&tls).map_err(unreachable)?, PROBE_TIMEOUT);
        let client = etcd::connect(&endpoint, &tls).await.map_err(unreachable)?;
        Ok(Self {
            client,
            endpoint,
            probe,
        })
    }

    async fn membership(&mut self) -> Result<Membership, EtcdCmdError> {
        members::membership(&mut self.client, &self.probe)
            .await
            .map_err(|source| EtcdCmdError::List {
                endpoint: self.endpoint.clone(),
                source,
            })
    }
}

/// The member called `name`, or (for one that never started, so has no name) whose hex ID it is.
fn find<'m>(m: &'m Membership, name: &str) -> Result<&'m Member, EtcdCmdError> {
    m.by_name(name)
        .or_else(|| u64::from_str_radix(name, 16).ok().and_then(|id| m.get(id)))
        .ok_or_else(|| EtcdCmdError::UnknownMember {
            name: name.to_string(),
            names: m.members.iter().map(Member::label).collect(),
        })
}

/// `name (id)`, or the member's own label (`(unstarted id)`) for one that has no name yet.
fn describe(m: &Member) -> String {
    if m.is_started() {
        format!("{} ({})", m.label(), hex(m.id))
    } else {
        m.label()
    }
}

/// One member as `kubesup etcd members` shows it (`--json` prints these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// Empty for a member whose etcd never started.
    pub name: String,
    /// In hex, as etcdctl prints it.
    pub id: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    pub leader: bool,
    pub healthy: bool,
    /// From the member's own `status` answer; absent if it did not answer.
    pub db_size: Option<i64>,
    /// Why it is not healthy.
    pub error: Option<String>,
}

pub fn rows(m: &Membership) -> Vec<MemberRow> {
    m.members
        .iter()
        .map(|member| {
            let (healthy, db_size, error) = match m.health.get(&member.id) {
                Some(Health::Up { db_size, .. }) => (true, Some(*db_size), None),
                Some(Health::Down { error }) => (false, None, Some(error.clone())),
                Some(Health::Unstarted) => (false, None, Some("never started".to_string())),
                None => (false, None, Some("not probed".to_string())),
            };
            MemberRow {
                name: member.name.clone(),
                id: hex(member.id),
                peer_urls: member.peer_urls.clone(),
                client_urls: member.client_urls.clone(),
                learner: member.is_learner,
                leader: m.leader == Some(member.id),
                healthy,
                db_size,
                error,
            }
        })
        .collect()
}

/// The table `kubesup etcd members` prints, then one line per unhealthy member saying why.
pub fn table(rows: &[MemberRow]) -> String {
    const HEAD: [&str; 8] = [
        "NAME",
        "ID",
        "PEER URLS",
        "CLIENT URLS",
        "ROLE",
        "LEADER",
        "HEALTHY",
        "DB SIZE",
    ];
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let label = |r: &MemberRow| {
        if r.name.is_empty() {
            format!("(unstarted {})", r.id)
        } else {
            r.name.clone()
        }
    };
    let mut cells: Vec<[String; 8]> = vec![HEAD.map(String::from)];
    for r in rows {
        cells.push([
            label(r),
            r.id.clone(),
            or_dash(r.peer_urls.join(",")),
            or_dash(r.client_urls.join(",")),
            if r.learner { "learner" } else { "voter" }.to_string(),
            yes_no(r.leader),
            yes_no(r.healthy),
            r.db_size.map_or_else(|| "-".to_string(), size),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for r in rows {
        if let Some(e) = &r.error {
            out.push_str(&format!("{}: {e}\n", label(r)));
        }
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".to_string() } else { s }
}

/// Bytes in binary units, one decimal: etcd's quota (2 GiB by default) is set in those.
fn size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://10.0.0.{id}:2380")],
            client_urls: if name.is_empty() {
                vec![]
            } else {
                vec![format!("https://10.0.0.{id}:2379")]
            },
            is_learner: learner,
        }
    }

    fn three() -> Membership {
        let mut m = Membership::from_members(vec![
            member(0xa1, "m1", false),
            member(0xa2, "m2", false),
            member(0xa3, "", true),
        ]);
        m.leader = Some(0xa1);
        m.health.insert(
            0xa1,
            Health::Up {
                db_size: 20480,
                raft_applied_index: 9,
                raft_term: 2,
                leader: 0xa1,
            },
        );
        m.health.insert(
            0xa2,
            Health::Down {
                error: "no answer within 3s".into(),
            },
        );
        m.health.insert(0xa3, Health::Unstarted);
        m
    }

    #[test]
    fn the_table_has_a_row_per_member_and_says_why_one_is_unhealthy() {
        assert_eq!(
            table(&rows(&three())),
            "\
NAME            ID  PEER URLS                CLIENT URLS              ROLE     LEADER  HEALTHY  DB SIZE
m1              a1  https://10.0.0.161:2380  https://10.0.0.161:2379  voter    yes     yes      20.0 KiB
m2              a2  https://10.0.0.162:2380  https://10.0.0.162:2379  voter    no      no       -
(unstarted a3)  a3  https://10.0.0.163:2380  -                        learner  no      no       -
m2: no answer within 3s
(unstarted a3): never started
"
        );
    }

    #[test]
    fn json_rows_carry_the_ids_in_hex_and_health_as_booleans() {
        let json = serde_json::to_value(rows(&three())).unwrap();
        assert_eq!(json[0]["id"], "a1");
        assert_eq!(json[0]["leader"], true);
        assert_eq!(json[0]["healthy"], true);
        assert_eq!(json[0]["db_size"], 20480);
        assert_eq!(json[1]["healthy"], false);
        assert_eq!(json[1]["db_size"], serde_json::Value::Null);
        assert_eq!(json[2]["learner"], true);
        assert_eq!(json[2]["name"], "");
    }

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(20480), "20.0 KiB");
        assert_eq!(size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
        assert_eq!(size(2 << 30), "2.0 GiB");
    }

    #[test]
    fn a_member_is_found_by_name_or_the_hex_id_of_an_unstarted_one() {
        let m = three();
        assert_eq!(find(&m, "m2").unwrap().id, 0xa2);
        assert_eq!(find(&m, "a3").unwrap().id, 0xa3);
        let e = find(&m, "m9").unwrap_err();
        assert_eq!(e.exit_code(), EXIT_INVALID);
        assert_eq!(
            e.to_string(),
            "no etcd member is named m9; the members are: m1, m2, (unstarted a3)"
        );
    }

    #[test]
    fn refusals_name_the_arithmetic_and_the_way_out() {
        let e = EtcdCmdError::Quorum(
            members::check_removal(&three(), &[0xa1].into(), 0xa1).unwrap_err(),
        );
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        assert_eq!(
            e.render(),
            "error: removing m1 (a1) would leave 0 healthy of 1 voters, and 1 are a quorum: bring \
             the others back or remove a dead member first (--force removes it anyway)"
        );
        let e = EtcdCmdError::LocalMember {
            name: "m1".into(),
            id: 0xa1,
        };
        assert_eq!(e.exit_code(), EXIT_INVALID);
        assert!(e.to_string().contains("kubesup reset"), "{e}");
    }
}
