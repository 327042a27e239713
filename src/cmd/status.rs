//! `kubesup status`: asks the running kubesup on this data dir, over its control socket.
//!
//! On a master it also asks the local etcd member for its role and the member count, here in
//! the CLI process and not in the daemon: the daemon keeps no etcd client resident for a
//! question asked now and then, and the answer is read at request time, never cached.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::cmd::{Globals, SetupError};
use crate::config::{Config, ConfigError};
use crate::errors::EXIT_CHECK;
use crate::etcd::members::{self, Membership, Role};
use crate::model::Component;
use crate::supervise::control::{self, ControlError, StatusReport};

/// The bound on the etcd question, connection included: status is polled (by scripts, by the
/// tests' readiness waits), so a hung etcd may slow it by this much and no more.
const ETCD_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot render the status as JSON")]
    Json(#[from] serde_json::Error),
}

crate::errors::exit_via!(StatusError: Config, Setup);

/// The local etcd member, as `kubesup status` shows it on a master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdStatus {
    /// leader, voter or learner; absent if etcd did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
    /// Why etcd did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EtcdStatus {
    fn failed(error: String) -> Self {
        Self {
            role: None,
            members: None,
            error: Some(error),
        }
    }

    /// The line under the table's header.
    pub fn line(&self) -> String {
        match (self.role, self.members, &self.error) {
            (Some(role), Some(n), _) => format!("etcd {role}  members {n}"),
            (_, _, Some(e)) => format!("etcd unknown: {e}"),
            _ => "etcd unknown".to_string(),
        }
    }
}

/// The daemon's report with the etcd fields added, so that every field the report has keeps
/// its name and place in the JSON.
#[derive(Debug, Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a StatusReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<EtcdStatus>,
}

/// Exits 0 when every component is ready, 3 otherwise. etcd's answer does not change the exit
/// code: readiness is the components', and etcd is one of them.
pub fn run(a: StatusArgs, g: &Globals) -> Result<ExitCode, StatusError> {
    let cfg = g.node_config(&a.node)?;
    g.init_tracing(None)?;
    let rt = crate::cmd::runtime()?;
    let report = rt.block_on(control::fetch_status(&cfg.paths.control_socket()))?;
    // Only a master runs etcd; a worker's status never tries. Nor does a master's while its
    // etcd is not ready: status is polled during bring-up, and each poll would otherwise wait
    // out the timeout on an etcd that cannot answer yet.
    let etcd = (report.role == "master").then(|| {
        let ready = report
            .components
            .iter()
            .any(|c| c.name == Component::Etcd.name() && c.ready);
        if ready {
            rt.block_on(local_etcd(&cfg))
        } else {
            EtcdStatus::failed("the local etcd is not ready".into())
        }
    });
    if a.json {
        let out = Output {
            report: &report,
            etcd,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", with_etcd_line(&report.table(), etcd.as_ref()));
    }
    Ok(if report.all_ready() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK)
    })
}

/// The table with the etcd line after its header line (kubesup's own pid, RSS and CPU).
fn with_etcd_line(table: &str, etcd: Option<&EtcdStatus>) -> String {
    let Some(etcd) = etcd else {
        return table.to_string();
    };
    match table.split_once('\n') {
        Some((head, rest)) => format!("{head}\n{}\n{rest}", etcd.line()),
        None => format!("{table}\n{}\n", etcd.line()),
    }
}

/// The local member's role and the member count, from two requests to the local member, all
/// within [`ETCD_TIMEOUT`]. A failure is part of the answer, not an error of `status`.
async fn local_etcd(cfg: &Config) -> EtcdStatus {
    let tls = crate::cmd::healthcheck_tls(&cfg.paths.pki());
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    let ask = async {
        let opts = crate::etcd::tls_options(&tls)
            .map_err(|e| crate::errors::chain(&e))?
            .with_connect_timeout(ETCD_TIMEOUT)
            .with_timeout(ETCD_TIMEOUT);
        let mut client = crate::etcd::connect_with(&endpoint, opts)
            .await
            .map_err(|e| crate::errors::chain(&e))?;
        // The local member's ID and the leader it knows, from one `status` call.
        let status = client
            .status()
            .await
            .map_err(|e| format!("etcd status at {endpoint}: {}", crate::errors::chain(&e)))?;
        let id = status
            .header()
            .map(|h| h.member_id())
            .ok_or_else(|| format!("etcd at {endpoint} answered status without a header"))?;
        let list = members::list(&mut client)
            .await
            .map_err(|e| crate::errors::chain(&e))?;
        let mut m = Membership::from_members(list);
        m.leader = (status.leader() != 0).then_some(status.leader());
        Ok::<_, String>(local_role(&m, id))
    };
    match tokio::time::timeout(ETCD_TIMEOUT, ask).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => EtcdStatus::failed(e),
        Err(_) => EtcdStatus::failed(format!(
            "no answer from {endpoint} within {}",
            humantime::format_duration(ETCD_TIMEOUT)
        )),
    }
}

fn local_role(m: &Membership, id: u64) -> EtcdStatus {
    match m.role(id) {
        Some(role) => EtcdStatus {
            role: Some(role),
            members: Some(m.members.len()),
            error: None,
        },
        // Answered, yet not in its own member list: removed, and running on as a stray.
        None => EtcdStatus {
            role: None,
            members: Some(m.members.len()),
            error: Some(format!(
                "the local member {} is not in the member list",
                members::hex(id)
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::members::Member;

    fn report() -> StatusReport {
        StatusReport {
            pid: 42,
            role: "master".into(),
            rss_bytes: None,
            cpu_percent: None,
            strays_reaped: 0,
            components: Vec::new(),
            api_lb: None,
        }
    }

    fn voter(id: u64, learner: bool) -> Member {
        Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: learner,
        }
    }

    #[test]
    fn the_local_role_comes_from_the_list_and_the_leader_it_knows() {
        let mut m =
            Membership::from_members(vec![voter(1, false), voter(2, false), voter(3, true)]);
        m.leader = Some(2);
        assert_eq!(local_role(&m, 2).role, Some(Role::Leader));
        assert_eq!(local_role(&m, 1).role, Some(Role::Voter));
        assert_eq!(local_role(&m, 3).role, Some(Role::Learner));
        assert_eq!(local_role(&m, 3).members, Some(3));
        assert_eq!(local_role(&m, 3).line(), "etcd learner  members 3");
        assert!(local_role(&m, 9).error.is_some());
    }

    #[test]
    fn the_etcd_line_follows_the_header_and_a_worker_has_none() {
        let etcd = EtcdStatus {
            role: Some(Role::Leader),
            members: Some(1),
            error: None,
        };
        let table = "kubesup master pid 42\nCOMPONENT  STATE\n";
        assert_eq!(
            with_etcd_line(table, Some(&etcd)),
            "kubesup master pid 42\netcd leader  members 1\nCOMPONENT  STATE\n"
        );
        assert_eq!(with_etcd_line(table, None), table);
        assert_eq!(
            EtcdStatus::failed("refused".into()).line(),
            "etcd unknown: refused"
        );
    }

    #[test]
    fn the_json_keeps_every_field_of_the_report_and_adds_etcd() {
        let r = report();
        let before = serde_json::to_value(&r).unwrap();
        let out = serde_json::to_value(Output {
            report: &r,
            etcd: Some(EtcdStatus {
                role: Some(Role::Voter),
                members: Some(3),
                error: None,
            }),
        })
        .unwrap();
        for (k, v) in before.as_object().unwrap() {
            assert_eq!(&out[k], v, "{k}");
        }
        assert_eq!(out["etcd"]["role"], "voter");
        assert_eq!(out["etcd"]["members"], 3);
        let worker = serde_json::to_value(Output {
            report: &r,
            etcd: None,
        })
        .unwrap();
        assert_eq!(worker, before);
    }

    #[test]
    fn a_worker_shows_its_load_balancer_and_a_master_does_not() {
        let r = report();
        assert!(serde_json::to_value(&r).unwrap().get("api_lb").is_none());
        assert!(!r.table().contains("api-lb"));
        let addr = |s: &str| s.parse().unwrap();
        let w = StatusReport {
            role: "worker".into(),
            api_lb: Some(crate::supervise::control::ApiLbReport {
                listen: addr("127.0.0.1:6444"),
                backends: vec![addr("10.0.0.1:6443"), addr("10.0.0.2:6443")],
                redirect: true,
            }),
            ..report()
        };
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["api_lb"]["listen"], "127.0.0.1:6444");
        assert_eq!(
            json["api_lb"]["backends"],
            serde_json::json!(["10.0.0.1:6443", "10.0.0.2:6443"])
        );
        // What an older daemon answers (no `api_lb`) still parses.
        let old: StatusReport =
            serde_json::from_value(serde_json::to_value(report()).unwrap()).unwrap();
        assert_eq!(old.api_lb, None);
        assert!(
            w.table().ends_with(
                "api-lb 127.0.0.1:6444 (connect-time)  healthy 10.0.0.1:6443 10.0.0.2:6443\n"
            ),
            "{}",
            w.table()
        );
        assert_eq!(json["api_lb"]["redirect"], true);
        // From a kubesup that did not report it: the proxy.
        let mut old_lb = json["api_lb"].clone();
        old_lb.as_object_mut().unwrap().remove("redirect");
        let old_lb: crate::supervise::control::ApiLbReport =
            serde_json::from_value(old_lb).unwrap();
        assert!(!old_lb.redirect);
    }
}
