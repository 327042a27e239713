//! One backoff type for every loop in kubesup that waits and tries again.
//!
//! Owns: [`Backoff`] (first delay, growth, cap, jitter, and an optional bound on attempts),
//! its pure schedule ([`Backoff::delay`]), and [`Backoff::retry`], which runs an operation
//! until it succeeds, the bound is reached, or the caller's predicate says an error is final.
//!
//! Why one type: each loop used to carry its own constants and its own sleep, so two loops that
//! should behave alike (master and worker renewal) drifted apart, and none could be tested
//! without waiting in real time. The schedule is a pure function of the attempt number and a
//! jitter sample, so the supervisor's pure state machine uses it too, and every waiting loop is
//! tested on tokio's paused clock.
//!
//! Must not: log at error level (the caller knows whether giving up needs a person), or sleep
//! with anything but `tokio::time::sleep` (the paused clock must see every wait).

use std::future::Future;
use std::time::Duration;

use tracing::{debug, warn};

/// How long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// Each further wait is the previous one times this (1 for a fixed period).
    pub factor: u32,
    /// No wait is longer than this (jitter included).
    pub max: Duration,
    /// Up to this fraction of each wait is taken off at random (0.0 to 1.0), so that nodes
    /// started together do not retry in lockstep. Taken off, not added: the schedule is then
    /// the longest a caller ever waits, and `max` a true cap.
    pub jitter: f64,
    /// Give up after this many attempts in all; `None` retries for as long as the task runs.
    pub attempts: Option<u32>,
    /// Failures before this attempt number are expected (a peer still starting) and logged at
    /// debug; from it on, at warn. 1 logs every failure at warn.
    pub warn_from: u32,
}

impl Backoff {
    /// The same wait every time, for as long as the task runs.
    pub const fn fixed(period: Duration) -> Self {
        Self {
            first: period,
            factor: 1,
            max: period,
            jitter: 0.0,
            attempts: None,
            warn_from: 1,
        }
    }

    /// Doubling from `first` up to `max`.
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        Self {
            first,
            factor: 2,
            max,
            jitter: 0.0,
            attempts: None,
            warn_from: 1,
        }
    }

    pub const fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// At most `n` attempts in all (the first one included).
    pub const fn with_attempts(mut self, n: u32) -> Self {
        self.attempts = Some(n);
        self
    }

    /// Log failures at debug until attempt `n`, at warn from it on.
    pub const fn warn_from(mut self, n: u32) -> Self {
        self.warn_from = n;
        self
    }

    /// The wait after failed attempt number `failed` (1 for the first failure), given a jitter
    /// sample in `[0, 1)`. Pure, so callers that must be deterministic pass their own sample.
    pub fn delay(&self, failed: u32, sample: f64) -> Duration {
        let growth = self
            .factor
            .max(1)
            .checked_pow(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let base = self.first.saturating_mul(growth).min(self.max);
        base.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0))
    }

    /// Whether a retry may follow failed attempt number `failed` (the bound on attempts).
    pub fn allows(&self, failed: u32) -> bool {
        self.attempts.is_none_or(|n| failed < n)
    }

    /// The wait after failed attempt `failed`, with a random jitter sample, bound or not.
    pub fn wait(&self, failed: u32) -> Duration {
        let sample = if self.jitter > 0.0 {
            rand::random::<f64>()
        } else {
            0.0
        };
        self.delay(failed, sample)
    }

    /// The wait after failed attempt `failed`, with a random jitter sample; `None` once the
    /// bound on attempts is reached.
    pub fn next(&self, failed: u32) -> Option<Duration> {
        self.allows(failed).then(|| self.wait(failed))
    }

    /// Runs `op` until it succeeds, an error is final (`is_final`), or the attempts run out;
    /// returns the last error then. Each failure that will be retried is logged at warn, with
    /// `what` and the attempt number, since kubesup heals it by itself.
    pub async fn retry<T, E, Fut>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Fut,
        is_final: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        let mut failed = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    failed += 1;
                    let wait = match self.next(failed) {
                        Some(wait) if !is_final(&e) => wait,
                        _ => return Err(e),
                    };
                    let error = crate::errors::chain(&e);
                    if failed >= self.warn_from {
                        warn!(what, attempt = failed, retry_in = ?wait, error, "failed; retrying");
                    } else {
                        debug!(what, attempt = failed, retry_in = ?wait, error, "not yet; retrying");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tokio::time::Instant;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failed(&'static str);

    #[test]
    fn the_schedule_doubles_up_to_its_cap_and_jitter_stays_under_it() {
        let b = Backoff::exponential(Duration::from_millis(250), Duration::from_secs(2));
        let delays: Vec<_> = (1..=6).map(|n| b.delay(n, 0.0)).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 2000, 2000].map(Duration::from_millis)
        );
        // Jitter only shortens a wait: the schedule is the longest one.
        let j = b.with_jitter(0.5);
        assert_eq!(j.delay(1, 0.999_999).as_millis(), 125);
        assert_eq!(j.delay(1, 0.0).as_millis(), 250);
        assert_eq!(j.delay(4, 0.5), Duration::from_millis(1500));
        // A huge attempt number saturates instead of overflowing.
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(2));
        let f = Backoff::fixed(Duration::from_secs(5)).with_attempts(3);
        assert_eq!(f.next(1), Some(Duration::from_secs(5)));
        assert_eq!(f.next(2), Some(Duration::from_secs(5)));
        assert_eq!(f.next(3), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_waits_the_schedule_and_stops_on_success() {
        let calls = Cell::new(0);
        let start = Instant::now();
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(4));
        let out: Result<u32, Failed> = b
            .retry(
                "test",
                || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move { if n < 4 { Err(Failed("not yet")) } else { Ok(n) } }
                },
                |_| false,
            )
            .await;
        assert_eq!(out.unwrap(), 4);
        // Three failures: 1 s + 2 s + 4 s of paused-clock time, and nothing more.
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_after_its_attempts_or_on_a_final_error() {
        let calls = Cell::new(0);
        let start = Instant::now();
        let b = Backoff::fixed(Duration::from_secs(5)).with_attempts(3);
        let out: Result<(), Failed> = b
            .retry(
                "test",
                || {
                    calls.set(calls.get() + 1);
                    async { Err(Failed("down")) }
                },
                |_| false,
            )
            .await;
        assert_eq!(out.unwrap_err().0, "down");
        assert_eq!(calls.get(), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        calls.set(0);
        let out: Result<(), Failed> = Backoff::fixed(Duration::from_secs(5))
            .retry(
                "test",
                || {
                    calls.set(calls.get() + 1);
                    async { Err(Failed("refused")) }
                },
                |e| e.0 == "refused",
            )
            .await;
        assert!(out.is_err());
        assert_eq!(calls.get(), 1, "a final error is not retried");
    }
}
