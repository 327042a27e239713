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

/// The fields of /proc/PID/stat that the sweep needs.
struct Stat {
    /// Field 3: R, S, D, Z...
    state: char,
    /// Field 5.
    pgrp: i32,
    /// Field 20: threads not yet released. A zombie leader whose threads have all exited
    /// counts as one.
    num_threads: u64,
    /// Field 22: start time in clock ticks since boot.
    start_time: u64,
}

impl Stat {
    /// `None` if the process is gone (or was never there). The command name (field 2) may
    /// hold spaces and parentheses, so fields are counted after its last ')'.
    fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        // fields[0] is field 3.
        let field = |n: usize| fields.get(n - 3).copied();
        Some(Self {
            state: field(3)?.chars().next()?,
            pgrp: field(5)?.parse().ok()?,
            num_threads: field(20)?.parse().ok()?,
            start_time: field(22)?.parse().ok()?,
        })
    }

    fn live(&self) -> bool {
        self.state != 'Z'
    }
}

/// Start time of a process, from /proc/PID/stat.
pub fn start_time(pid: i32) -> Option<u64> {
    Stat::read(pid).map(|s| s.start_time)
}

/// Whether `pid` is a running process (not gone, not a zombie waiting for its new parent).
fn live(pid: i32) -> bool {
    Stat::read(pid).is_some_and(|s| s.live())
}

/// Whether the process a record names still holds anything: same PID and start time (so it is
/// that process, whatever its state), and not yet a zombie whose every thread has exited.
///
/// `ChildRecord::of` no longer matches a process once its main thread has exited (its exe
/// link is gone), but a multi-threaded component (every Go binary) may still be tearing down
/// its other threads then, and with them its open files: its listening sockets are only
/// closed when the last thread is through. A successor that checks its ports at that moment
/// finds them taken.
fn still_exiting_or_alive(rec: &ChildRecord) -> bool {
    Stat::read(rec.pid)
        .is_some_and(|s| s.start_time == rec.start_time && (s.live() || s.num_threads > 1))
}

/// Whether any live process is in process group `pgid`.
fn group_has_members(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Stat::read)
        .any(|s| s.live() && s.pgrp == pgid)
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
            warn!(error = %crate::errors::chain(&e), "cannot record child pids");
        }
    }
}

/// Kills the recorded children that survived a previous kubesup (matching pid, start time and
/// executable), waits up to `timeout` for them, and for those that died with it but are still
/// exiting, to be through, and returns how many were killed.
pub fn sweep(path: &Path, timeout: Duration) -> usize {
    let Ok(text) = std::fs::read(path) else {
        return 0;
    };
    let records: BTreeMap<String, ChildRecord> = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => {
            warn!(path = %path.display(), error = %crate::errors::chain(&e), "ignoring unreadable pid record");
            return 0;
        }
    };
    let mut killed = Vec::new();
    let mut dying = Vec::new();
    for (name, rec) in records {
        if ChildRecord::of(rec.pid).as_ref() == Some(&rec) {
            warn!(component = %name, pid = rec.pid, "killing a survivor of a previous kubesup");
            let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
            killed.push(rec.clone());
            dying.push(rec);
        } else if still_exiting_or_alive(&rec) {
            // Killed with kubesup (parent-death signal) and still going down: nothing to
            // signal, but its ports and files are not free until it is through.
            info!(component = %name, pid = rec.pid, "waiting for a component of a previous kubesup to finish exiting");
            dying.push(rec);
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
    while Instant::now() < deadline && dying.iter().any(still_exiting_or_alive) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(rec) = dying.iter().find(|r| still_exiting_or_alive(r)) {
        warn!(
            pid = rec.pid,
            ?timeout,
            "a component of a previous kubesup is still exiting"
        );
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
    fn an_exited_process_is_through_once_it_is_a_zombie() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let rec = ChildRecord::of(pid).unwrap();
        assert!(still_exiting_or_alive(&rec));
        let mut other = rec.clone();
        other.start_time += 1;
        assert!(
            !still_exiting_or_alive(&other),
            "a recycled pid is not ours"
        );
        child.kill().unwrap();
        // Not reaped yet: a single-threaded zombie has closed everything it had.
        let deadline = Instant::now() + Duration::from_secs(5);
        while live(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(Stat::read(pid).is_some_and(|s| s.state == 'Z'));
        assert!(!still_exiting_or_alive(&rec));
        assert!(ChildRecord::of(pid).is_none(), "a zombie has no exe link");
        child.wait().unwrap();
        assert!(!still_exiting_or_alive(&rec));
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
