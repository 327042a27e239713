//! The record of live children, and the sweep of survivors after a crash of kubesup.
//!
//! The parent-death signal already kills every child when kubesup dies. This is the second
//! line: each child's PID, kernel start time and executable are recorded, and a starting
//! kubesup kills the process group of a recorded PID only when **all three** still match, so a
//! recycled PID belonging to anything else is never touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::fsutil;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
    pub start_time: u64,
    pub exe: PathBuf,
}

impl ChildRecord {
    /// Reads the identity of a live process; `None` if it is gone.
    pub fn of(pid: i32) -> Option<Self> {
        Some(Self {
            pid,
            start_time: start_time(pid)?,
            exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok()?,
        })
    }
}

/// Start time of a process, from /proc/PID/stat. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last ')'.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // After ')' come field 3 (state) onwards; start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether `pid` is a running process (not gone, not a zombie waiting for its new parent).
fn live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| !s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether any live process is in process group `pgid` (field 5 of /proc/PID/stat).
fn group_has_members(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| live(*pid))
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rfind(')').map(|i| s[i + 1..].to_string())?;
                    after.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid)
        })
}

/// The live-children record, written atomically on every change.
pub struct PidFile {
    path: PathBuf,
    children: BTreeMap<String, ChildRecord>,
}

impl PidFile {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            children: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, name: &str, record: Option<ChildRecord>) {
        match record {
            Some(r) => self.children.insert(name.to_string(), r),
            None => self.children.remove(name),
        };
        self.save();
    }

    fn save(&self) {
        let json = serde_json::to_vec_pretty(&self.children).unwrap_or_default();
        if let Err(e) = fsutil::write_atomic(&self.path, &json, 0o600) {
            warn!(error = %e, "cannot record child pids");
        }
    }
}

/// Kills the recorded children that survived a previous kubesup (matching pid, start time and
/// executable), waits up to `timeout` for them to go, and returns how many were killed.
pub fn sweep(path: &Path, timeout: Duration) -> usize {
    let Ok(text) = std::fs::read(path) else {
        return 0;
    };
    let records: BTreeMap<String, ChildRecord> = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "ignoring unreadable pid record");
            return 0;
        }
    };
    let mut killed = Vec::new();
    for (name, rec) in records {
        if ChildRecord::of(rec.pid).as_ref() == Some(&rec) {
            warn!(component = %name, pid = rec.pid, "killing a survivor of a previous kubesup");
            let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
            killed.push(rec);
        } else if !live(rec.pid) && group_has_members(rec.pid) {
            // The component died with kubesup (parent-death signal) but something it forked
            // lives on in its process group. A PGID cannot be reused while the group has a
            // member, so everything in group `pid` descends from our old component.
            warn!(component = %name, pgid = rec.pid, "killing what a previous kubesup's component left in its process group");
            let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
        }
    }
    // They are not our children, so we cannot wait(2) for them: watch /proc instead.
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline
        && killed
            .iter()
            .any(|r| ChildRecord::of(r.pid).as_ref() == Some(r))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(path);
    if !killed.is_empty() {
        info!(
            count = killed.len(),
            "swept survivors of a previous kubesup"
        );
    }
    killed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_identity() {
        let me = ChildRecord::of(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert_eq!(me.exe, std::env::current_exe().unwrap());
    }

    #[test]
    fn sweep_never_touches_a_mismatched_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("children.json");
        let mut me = ChildRecord::of(std::process::id() as i32).unwrap();
        me.start_time += 1; // same pid, another process as far as the record can tell
        let mut f = PidFile::new(&path);
        f.set("x", Some(me));
        assert_eq!(sweep(&path, Duration::from_millis(10)), 0);
        assert!(!path.exists());
    }
}
