//! `kubesup master --cluster-reset`: a master that survived the loss of its cluster's quorum
//! goes on as a one-member cluster from its own etcd data (etcd's `--force-new-cluster`),
//! **once**.
//!
//! Why once, and recorded: `--force-new-cluster` rewrites the membership to this member alone
//! every time etcd starts with it. Left in a unit file, or run a second time by habit, it would
//! throw out the masters that rejoined since, and their data with them. So the first start
//! with the flag writes `etcd-reset.json` before etcd starts, and any later start finds it and
//! ignores the flag (with a warning naming the file to remove for a new, deliberate reset).
//! The record is written before etcd starts rather than after it answers: a reset done twice
//! (kubesup killed between the two) is the harm to avoid, and etcd applies the flag at once.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::BackupError;
use crate::paths::Paths;

/// `etcd-reset.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRecord {
    /// RFC 3339, UTC.
    pub at: String,
}

/// Whether this start of etcd applies `--force-new-cluster`: only when asked, only on a data
/// dir holding a member, and only if no earlier start did.
pub fn take(paths: &Paths, requested: bool) -> Result<bool, BackupError> {
    if !requested {
        return Ok(false);
    }
    if !paths.etcd_has_data() {
        return Err(BackupError::NothingToReset {
            data_dir: paths.data_dir().to_path_buf(),
        });
    }
    let record = paths.etcd_reset_record();
    if let Ok(text) = std::fs::read(&record) {
        let at = serde_json::from_slice::<ResetRecord>(&text)
            .map(|r| r.at)
            .unwrap_or_else(|_| "an earlier start".into());
        warn!(
            at = %at,
            record = %record.display(),
            "etcd was already reset from this data dir: --cluster-reset is ignored (drop it from the unit; to reset again, remove the record first)"
        );
        return Ok(false);
    }
    let r = ResetRecord {
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let text = serde_json::to_vec_pretty(&r).map_err(|e| BackupError::Write {
        path: record.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::fsutil::write_atomic(&record, &text, 0o600).map_err(BackupError::Fs)?;
    info!(
        record = %record.display(),
        "cluster reset: etcd starts once as a one-member cluster from this master's data (--force-new-cluster); the other masters must `kubesup reset` and join again"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_happens_once_and_only_on_a_member() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path());
        assert!(!take(&paths, false).unwrap());
        let e = take(&paths, true).unwrap_err();
        assert!(matches!(e, BackupError::NothingToReset { .. }), "{e}");
        assert!(!paths.etcd_reset_record().exists());

        std::fs::create_dir_all(paths.etcd_data_dir().join("member")).unwrap();
        assert!(!take(&paths, false).unwrap(), "not asked: no reset");
        assert!(!paths.etcd_reset_record().exists());
        assert!(take(&paths, true).unwrap(), "the first time");
        assert!(paths.etcd_reset_record().exists());
        // The flag left in a unit file: the next starts do not reset again.
        assert!(!take(&paths, true).unwrap());
        assert!(!take(&paths, true).unwrap());
    }
}
