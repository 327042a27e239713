//! The one certificate-renewal loop, for masters and workers alike.
//!
//! Owns: when to wake up (the next renewal window, through [`crate::pki::renewal_sleep`]), what
//! to do after a failed renewal ([`RETRY`]: back off, never give up while kubesup runs), and
//! asking the supervisor to restart exactly the components that read what was renewed.
//!
//! What differs between a master and a worker is behind [`Renewal`]: a master signs its own
//! leaves with its CA ([`crate::pki::Pki::renew_due`]); a worker asks its master over the join
//! API. Which components read which leaf is the planner's map ([`crate::plan::leaf_readers`]),
//! never this loop's and never the PKI's.
//!
//! Why one loop: the master's and the worker's used to be near copies with different retry
//! policies (an hour fixed, against doubling from 20 s), and neither could be tested without
//! waiting in real time. This one reads the time through a clock the caller passes, so the test
//! below drives a year of renewals on tokio's paused clock.
//!
//! Must not: restart anything when nothing was renewed, or renew before the window (a wake-up
//! before it, after a clock jump, only sleeps again).

use std::future::Future;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use crate::model::Component;
use crate::pki::{MIN_RENEWAL_INTERVAL, renewal_sleep};
use crate::retry::Backoff;

/// After a failed renewal: from [`MIN_RENEWAL_INTERVAL`] doubling up to ten minutes, with
/// jitter, for as long as kubesup runs. The certificate is still valid for a third of its
/// lifetime when its window opens, so there is time; a master that is down for a while is
/// asked again every ten minutes at most, and nodes that failed together spread out.
pub const RETRY: Backoff =
    Backoff::exponential(MIN_RENEWAL_INTERVAL, Duration::from_secs(600)).with_jitter(0.25);

/// One side of renewal: a master's own PKI, or a worker's join client.
pub trait Renewal {
    type Error: std::error::Error + 'static;

    /// When the next renewal is due; `Ok(None)` when nothing can be scheduled.
    fn next_due(&self, now: SystemTime) -> Result<Option<SystemTime>, Self::Error>;

    /// Renews what is due at `now`; returns the components that must restart to read it.
    fn renew(
        &mut self,
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<Component>, Self::Error>> + Send;
}

/// Renews for as long as the task runs, calling `restart` once per component whose
/// certificates changed. Returns only when nothing can be scheduled any more.
pub async fn run<R: Renewal>(
    what: &'static str,
    mut side: R,
    clock: impl Fn() -> SystemTime,
    restart: impl Fn(Component),
) {
    let mut failures = 0u32;
    loop {
        let due = match side.next_due(clock()) {
            Ok(Some(t)) => t,
            Ok(None) => {
                error!(what, "no certificate to schedule; no background renewal");
                return;
            }
            Err(e) => {
                error!(what, error = %crate::errors::chain(&e), "cannot read the certificates; no background renewal");
                return;
            }
        };
        // After a failure the backoff was the wait: try again at once, if still due.
        if failures == 0 || clock() < due {
            info!(what, at = %humantime::format_rfc3339_seconds(due), "next certificate renewal");
            tokio::time::sleep(renewal_sleep(due, clock())).await;
        }
        if clock() < due {
            continue;
        }
        match side.renew(clock()).await {
            Ok(mut readers) => {
                failures = 0;
                readers.sort();
                readers.dedup();
                info!(what, restart = ?readers.iter().map(|c| c.name()).collect::<Vec<_>>(), "renewed certificates");
                for c in readers {
                    restart(c);
                }
            }
            Err(e) => {
                failures += 1;
                // RETRY has no bound on attempts, so there always is a next wait.
                let wait = RETRY.next(failures).unwrap_or(RETRY.max);
                warn!(what, attempt = failures, retry_in = ?wait, error = %crate::errors::chain(&e), "certificate renewal failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("master unreachable")]
    struct Down;

    /// A certificate renewed every 30 days, whose renewal fails `fail` times first.
    struct Fake {
        due: SystemTime,
        fail: u32,
        log: Arc<Mutex<Vec<(SystemTime, bool)>>>,
    }

    impl Renewal for Fake {
        type Error = Down;
        fn next_due(&self, _now: SystemTime) -> Result<Option<SystemTime>, Down> {
            Ok(Some(self.due))
        }
        async fn renew(&mut self, now: SystemTime) -> Result<Vec<Component>, Down> {
            assert!(now >= self.due, "renewed before its window");
            let ok = self.fail == 0;
            self.log.lock().map(|mut l| l.push((now, ok))).ok();
            if !ok {
                self.fail -= 1;
                return Err(Down);
            }
            self.due = now + Duration::from_secs(30 * 86_400);
            Ok(vec![
                Component::Kubelet,
                Component::KubeProxy,
                Component::Kubelet,
            ])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn renews_in_each_window_retries_with_backoff_and_restarts_each_reader_once() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let start = Instant::now();
        // Wall-clock time that moves with tokio's paused clock.
        let clock = move || epoch + (Instant::now() - start);
        let log = Arc::new(Mutex::new(Vec::new()));
        let restarts = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            due: epoch + Duration::from_secs(3 * 86_400),
            fail: 3,
            log: log.clone(),
        };
        let r = restarts.clone();
        let task = tokio::spawn(run("test", fake, clock, move |c| {
            r.lock().map(|mut v| v.push(c)).unwrap_or(())
        }));
        // Long enough for the first window (day 3) and two more 30 days apart.
        tokio::time::sleep(Duration::from_secs(70 * 86_400)).await;
        task.abort();

        let log = log.lock().unwrap().clone();
        let at = |i: usize| log[i].0.duration_since(epoch).unwrap();
        // The first window opens on day 3 (woken by day-long sleeps, never early).
        assert_eq!(at(0), Duration::from_secs(3 * 86_400));
        // Three failures: retried after 20 s (less up to a quarter of jitter), 40 s, 80 s.
        let gaps: Vec<_> = (1..4).map(|i| at(i) - at(i - 1)).collect();
        for (gap, nominal) in gaps.iter().zip([20u64, 40, 80]) {
            let n = Duration::from_secs(nominal);
            assert!(*gap <= n && *gap >= n.mul_f64(0.75), "{gaps:?}");
        }
        assert_eq!(
            log.iter().map(|l| l.1).collect::<Vec<_>>(),
            [false, false, false, true, true, true],
            "after the retries, one renewal per 30-day window"
        );
        assert_eq!(at(4) - at(3), Duration::from_secs(30 * 86_400));
        // Each success restarts each reader once, in a stable order.
        assert_eq!(
            *restarts.lock().unwrap(),
            [Component::Kubelet, Component::KubeProxy].repeat(3)
        );
    }
}
