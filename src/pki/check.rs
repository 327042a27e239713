//! `certs check`: one row per certificate (CAs first, then leaves), rendered as an aligned
//! table or as JSON. Reading only: nothing here writes or fails on a bad file; a bad file is
//! a row with status `unreadable`.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::Pki;
use super::ca::CaKind;
use super::error::{PkiError, Result};
use super::leaf::Leaf;
use super::store::{self, CertInfo, rfc3339};

/// The CLI exits non-zero when a certificate expires within this many days.
pub const ATTENTION_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertStatus {
    Ok,
    /// In the last third of its lifetime, or within `ATTENTION_DAYS` of expiry.
    RenewSoon,
    Expired,
    Missing,
    /// The file exists but cannot be read or parsed (see `error`).
    Unreadable,
}

impl CertStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RenewSoon => "renew-soon",
            Self::Expired => "expired",
            Self::Missing => "missing",
            Self::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRow {
    /// `ca`, `etcd-ca`, `front-proxy-ca`, or a [`Leaf`] name.
    pub name: String,
    pub is_ca: bool,
    pub path: PathBuf,
    pub subject: Option<String>,
    pub sans: Vec<String>,
    pub issuer: Option<String>,
    /// RFC 3339, UTC.
    pub not_after: Option<String>,
    /// Whole days until expiry, negative once expired.
    pub days_left: Option<i64>,
    pub status: CertStatus,
    pub error: Option<String>,
}

impl Pki {
    /// Inspects every certificate of the PKI as of `now`.
    pub fn check(&self, now: SystemTime) -> Vec<CertRow> {
        let pki = self.pki_paths();
        let cas = CaKind::ALL.map(|k| (k.name(), true, k.paths(&pki).cert));
        let leaves = Leaf::ALL.map(|l| (l.name(), false, l.paths(&pki).cert));
        cas.into_iter()
            .chain(leaves)
            .map(|(name, is_ca, path)| row(name, is_ca, path, now))
            .collect()
    }
}

fn row(name: &str, is_ca: bool, path: PathBuf, now: SystemTime) -> CertRow {
    let mut r = CertRow {
        name: name.into(),
        is_ca,
        path,
        subject: None,
        sans: vec![],
        issuer: None,
        not_after: None,
        days_left: None,
        status: CertStatus::Missing,
        error: None,
    };
    match store::load_cert(&r.path) {
        Ok(None) => {}
        Err(e) => {
            r.status = CertStatus::Unreadable;
            r.error = Some(error_chain(&e));
        }
        Ok(Some(info)) => {
            let days = days_left(&info, now);
            r.status = status(&info, days, now);
            r.subject = Some(info.subject);
            r.sans = info.sans.iter().map(ToString::to_string).collect();
            r.issuer = Some(info.issuer);
            r.not_after = Some(rfc3339(info.not_after));
            r.days_left = Some(days);
        }
    }
    r
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn days_left(info: &CertInfo, now: SystemTime) -> i64 {
    const DAY: u64 = 86400;
    match info.not_after.duration_since(now) {
        Ok(d) => (d.as_secs() / DAY) as i64,
        // Expired: -1 on the first day after, and so on.
        Err(e) => -(e.duration().as_secs().div_ceil(DAY).max(1) as i64),
    }
}

fn status(info: &CertInfo, days: i64, now: SystemTime) -> CertStatus {
    if now >= info.not_after {
        CertStatus::Expired
    } else if now >= info.renew_at() || days < ATTENTION_DAYS {
        CertStatus::RenewSoon
    } else {
        CertStatus::Ok
    }
}

/// Whether `certs check` should exit non-zero: something is expired, missing, unreadable, or
/// expires within 30 days.
pub fn needs_attention(rows: &[CertRow]) -> bool {
    rows.iter().any(|r| {
        matches!(
            r.status,
            CertStatus::Expired | CertStatus::Missing | CertStatus::Unreadable
        ) || r.days_left.is_some_and(|d| d < ATTENTION_DAYS)
    })
}

/// An aligned text table, one line per row, ending in a newline.
pub fn render_table(rows: &[CertRow]) -> String {
    let header = [
        "NAME",
        "SUBJECT",
        "SANS",
        "ISSUER",
        "NOT AFTER",
        "DAYS",
        "STATUS",
    ];
    let dash = || "-".to_string();
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.subject.clone().unwrap_or_else(dash),
                if r.sans.is_empty() {
                    dash()
                } else {
                    r.sans.join(",")
                },
                r.issuer.clone().unwrap_or_else(dash),
                r.not_after.clone().unwrap_or_else(dash),
                r.days_left.map(|d| d.to_string()).unwrap_or_else(dash),
                r.status.name().to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut l = String::new();
        for (i, (s, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(s);
            } else {
                l.push_str(s);
                l.extend(std::iter::repeat_n(' ', w - s.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for c in &cells {
        line(c);
    }
    out
}

/// The rows as a pretty JSON array.
pub fn render_json(rows: &[CertRow]) -> Result<String> {
    serde_json::to_string_pretty(rows).map_err(|source| PkiError::RenderJson { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_with(status: CertStatus, days: Option<i64>) -> CertRow {
        CertRow {
            name: "apiserver".into(),
            is_ca: false,
            path: "/x/apiserver.crt".into(),
            subject: Some("CN=kube-apiserver".into()),
            sans: vec!["kubernetes".into(), "10.96.0.1".into()],
            issuer: Some("CN=kubernetes".into()),
            not_after: Some("2030-01-01T00:00:00Z".into()),
            days_left: days,
            status,
            error: None,
        }
    }

    #[test]
    fn attention_when_expired_missing_or_within_30_days() {
        assert!(!needs_attention(&[row_with(CertStatus::Ok, Some(300))]));
        // renew-soon but far from expiry: the renewal loop handles it, no alarm
        assert!(!needs_attention(&[row_with(
            CertStatus::RenewSoon,
            Some(100)
        )]));
        assert!(needs_attention(&[row_with(
            CertStatus::RenewSoon,
            Some(29)
        )]));
        assert!(needs_attention(&[row_with(CertStatus::Expired, Some(-1))]));
        assert!(needs_attention(&[row_with(CertStatus::Missing, None)]));
        assert!(!needs_attention(&[]));
    }

    #[test]
    fn table_is_aligned() {
        let mut other = row_with(CertStatus::Missing, None);
        other.name = "etcd-healthcheck-client".into();
        other.subject = None;
        other.sans = vec![];
        let t = render_table(&[row_with(CertStatus::Ok, Some(364)), other]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(col(lines[0], "SUBJECT"), col(lines[1], "CN=kube-apiserver"));
        assert_eq!(col(lines[0], "STATUS"), col(lines[1], "ok"));
        assert_eq!(col(lines[0], "STATUS"), col(lines[2], "missing"));
        assert!(lines[1].contains("kubernetes,10.96.0.1"));
    }

    #[test]
    fn json_uses_kebab_case_statuses() {
        let j = render_json(&[row_with(CertStatus::RenewSoon, Some(10))]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v[0]["status"], "renew-soon");
        assert_eq!(v[0]["days_left"], 10);
        assert_eq!(v[0]["sans"][1], "10.96.0.1");
    }
}
