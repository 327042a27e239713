//! Scheduled backups: every `backup.schedule`, on the master whose etcd member is the leader
//! at that tick, and on no other, so one cluster makes one backup per period however many
//! masters it has. After each backup the newest `backup.keep` stay in `backup.dir`.
//!
//! Leadership is asked at every tick rather than remembered: it moves (an election after a
//! restart or a slow disk), and a master that was leader an hour ago must not back up now.
//! A tick whose etcd does not answer makes no backup, and says so; the next tick tries again.
//!
//! The loop ([`run`]) is written against [`Tick`], so its timing and its leader-only rule are
//! tested on tokio's paused clock, with no etcd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{BackupError, Dest, Made};
use crate::config::Config;
use crate::etcd::EtcdTls;

/// What one tick needs from the world.
pub trait Tick {
    /// Whether this master's etcd member leads the cluster now.
    fn is_leader(&mut self) -> impl Future<Output = Result<bool, BackupError>> + Send;
    /// Makes one backup into the backup dir.
    fn backup(&mut self) -> impl Future<Output = Result<Made, BackupError>> + Send;
}

/// Ticks every `period` (the first one period after the start, since a master just started
/// has nothing new to save), backs up when leader, then prunes `dir` to `keep`.
pub async fn run(period: Duration, keep: usize, dir: PathBuf, mut t: impl Tick) {
    let start = tokio::time::Instant::now() + period;
    let mut interval = tokio::time::interval_at(start, period);
    // A tick missed (the machine slept) is one backup late, never a burst of them.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match t.is_leader().await {
            Ok(true) => {}
            Ok(false) => {
                debug!("scheduled backup: this master's etcd member is not the leader; skipping");
                continue;
            }
            Err(e) => {
                warn!(error = %crate::errors::chain(&e), "scheduled backup skipped: cannot ask etcd who leads");
                continue;
            }
        }
        match t.backup().await {
            Ok(made) => {
                info!(path = %made.path.display(), revision = made.revision, size = made.size, "scheduled backup written");
                prune_logged(&dir, keep);
            }
            Err(e) => {
                tracing::error!(error = %crate::errors::chain(&e), "scheduled backup failed; the next one is in one period");
            }
        }
    }
}

fn prune_logged(dir: &Path, keep: usize) {
    match super::prune(dir, keep) {
        Ok(removed) if !removed.is_empty() => {
            info!(removed = removed.len(), keep, "removed old backups");
        }
        Ok(_) => {}
        Err(e) => warn!(error = %crate::errors::chain(&e), "cannot prune old backups"),
    }
}

/// The real [`Tick`]: this master's etcd member.
struct Etcd {
    cfg: Config,
    tls: EtcdTls,
    dir: PathBuf,
}

impl Tick for Etcd {
    async fn is_leader(&mut self) -> Result<bool, BackupError> {
        let endpoint = crate::etcd::local_endpoint(self.cfg.ports.etcd_client);
        let mut c = crate::etcd::connect(&endpoint, &self.tls)
            .await
            .map_err(BackupError::Etcd)?;
        let s = c
            .status()
            .await
            .map_err(|source| BackupError::EtcdRequest {
                what: "status",
                source,
            })?;
        let me = s.header().map(|h| h.member_id());
        Ok(me.is_some_and(|me| me == s.leader()))
    }

    async fn backup(&mut self) -> Result<Made, BackupError> {
        super::create(&self.cfg, &self.tls, Dest::Dir(self.dir.clone()), None).await
    }
}

/// The daemon hook of a master (started once its etcd is ready): scheduled backups with the
/// config's `backup` section. `tls` is the client certificate kubesup's own etcd reads use.
/// Does nothing when the schedule is off.
pub async fn schedule(cfg: Config, tls: EtcdTls) {
    let Some(period) = cfg.backup.schedule else {
        return;
    };
    let keep = cfg.backup.keep;
    let dir = cfg.backup.dir.clone();
    info!(every = %humantime::format_duration(period), keep, dir = %dir.display(), "scheduled backups on, on the etcd leader's master");
    run(period, keep, dir.clone(), Etcd { cfg, tls, dir }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Leader on the ticks `leader_at` says; each backup is a file in `dir`.
    struct Fake {
        dir: PathBuf,
        tick: u32,
        leader_at: fn(u32) -> bool,
        log: Arc<Mutex<Vec<(u32, tokio::time::Instant)>>>,
    }

    impl Tick for Fake {
        async fn is_leader(&mut self) -> Result<bool, BackupError> {
            self.tick += 1;
            Ok((self.leader_at)(self.tick))
        }

        async fn backup(&mut self) -> Result<Made, BackupError> {
            self.log
                .lock()
                .unwrap()
                .push((self.tick, tokio::time::Instant::now()));
            // Names in time order, as the real ones are.
            let at = std::time::UNIX_EPOCH
                + Duration::from_secs(1_800_000_000 + 3600 * u64::from(self.tick));
            let path = self
                .dir
                .join(super::super::file_name(at, i64::from(self.tick)));
            std::fs::write(&path, b"x").unwrap();
            Ok(Made {
                path,
                revision: i64::from(self.tick),
                size: 1,
                elapsed: Duration::ZERO,
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backs_up_every_period_on_the_leader_only_and_keeps_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // Something else in the dir, and a backup being written: never pruned.
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.join(".kubesup-backup-x.tar.partial.1"), b"").unwrap();
        // The temp file of a backup that died an hour ago: removed.
        let dead = dir.join(".kubesup-backup-y.tar.partial.2");
        std::fs::write(&dead, b"half").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let period = Duration::from_secs(6 * 3600);
        let t0 = tokio::time::Instant::now();
        let fake = Fake {
            dir: dir.clone(),
            tick: 0,
            // Leader, then not (an election moved it) on ticks 4 and 5, then again.
            leader_at: |t| !(4..=5).contains(&t),
            log: log.clone(),
        };
        let task = tokio::spawn(run(period, 3, dir.clone(), fake));
        // Eight periods and a bit: ticks at 1..=8 periods.
        tokio::time::sleep(period * 8 + Duration::from_secs(1)).await;
        task.abort();

        let log = log.lock().unwrap().clone();
        let ticks: Vec<u32> = log.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            ticks,
            vec![1, 2, 3, 6, 7, 8],
            "no backup while not the leader"
        );
        for (tick, at) in &log {
            assert_eq!(*at - t0, period * *tick, "tick {tick} on time");
        }
        let left: Vec<i64> = crate::backup::list(&dir)
            .unwrap()
            .iter()
            .map(|l| l.revision)
            .collect();
        assert_eq!(left, vec![6, 7, 8], "the newest `keep` remain");
        assert!(dir.join("notes.txt").exists());
        assert!(dir.join(".kubesup-backup-x.tar.partial.1").exists());
        assert!(!dead.exists());
    }

    #[test]
    fn names_sort_in_time_order_and_parse_back() {
        let a = super::super::file_name(
            std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            99,
        );
        assert_eq!(a, "kubesup-backup-20270115T080000Z-r99.tar");
        assert_eq!(
            super::super::parse_name(&a),
            Some(("20270115T080000Z".into(), 99))
        );
        assert_eq!(super::super::parse_name("kubesup-backup-x.tar"), None);
    }
}
