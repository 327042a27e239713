//! Background renewal support: when the next leaf enters its renewal window, and renewing
//! whatever is due. The loop itself (sleep, restart components) belongs to the supervisor.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::error::Result;
use super::leaf::Leaf;
use super::store;
use super::{Pki, PkiSpec};

/// The wake-up time is pushed past the two-thirds point by a random 0..4 % of the leaf's
/// lifetime, so that masters set up together do not all renew (and restart) at once. Always
/// later, never earlier: at wake-up the leaf is then inside its window and really renewed.
pub const RENEW_JITTER: f64 = 0.04;

/// Shortest time between two background renewals, and so between the restarts they cause,
/// whatever the certificates or the clock say.
pub const MIN_RENEWAL_INTERVAL: Duration = Duration::from_secs(20);

/// How long a renewal loop sleeps for a renewal due at `at`: at least
/// [`MIN_RENEWAL_INTERVAL`], and at most a day, since the clock may jump (suspend, NTP) and
/// one timer for a year is fragile. A loop that wakes before `at` only sleeps again.
pub fn renewal_sleep(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(86_400))
        .max(MIN_RENEWAL_INTERVAL)
}

/// `window` pushed later by `jitter` (a fraction, at most [`RENEW_JITTER`]) of `lifetime`, and
/// never before `now`.
fn jittered(window: SystemTime, lifetime: Duration, jitter: f64, now: SystemTime) -> SystemTime {
    (window + lifetime.mul_f64(jitter.clamp(0.0, RENEW_JITTER))).max(now)
}

/// When the certificates at `certs` (a worker's, which its master signs) are next due, by the
/// same rule as a master's leaves: the earliest renewal window, with jitter, so that nodes
/// joined together do not all renew at once. Missing files are left out; `None` if none is
/// there.
pub fn next_renewal_of(certs: &[PathBuf], now: SystemTime) -> Result<Option<SystemTime>> {
    let mut first: Option<(SystemTime, Duration)> = None;
    for path in certs {
        if let Some(info) = store::load_cert(path)?
            && first.is_none_or(|(at, _)| info.renew_at() < at)
        {
            first = Some((info.renew_at(), info.lifetime()));
        }
    }
    Ok(first
        .map(|(at, lifetime)| jittered(at, lifetime, rand::random_range(0.0..RENEW_JITTER), now)))
}

impl Pki {
    /// The time to wake up for the next renewal, and the leaves that will then be due. Missing
    /// leaves are due now. Unreadable leaves are left out (`certs check` reports them, and
    /// renewing would only fail again); `None` if no leaf can be scheduled at all.
    pub fn next_renewal(&self, now: SystemTime) -> Option<(SystemTime, Vec<Leaf>)> {
        self.next_renewal_with_jitter(now, rand::random_range(0.0..RENEW_JITTER))
    }

    pub(crate) fn next_renewal_with_jitter(
        &self,
        now: SystemTime,
        jitter: f64,
    ) -> Option<(SystemTime, Vec<Leaf>)> {
        let pki = self.pki_paths();
        let mut windows = Vec::new();
        for leaf in Leaf::ALL {
            match store::load_cert(&leaf.paths(&pki).cert) {
                Ok(Some(info)) => {
                    windows.push((leaf, info.renew_at(), info.lifetime()));
                }
                Ok(None) => windows.push((leaf, now, Default::default())),
                Err(e) => {
                    tracing::debug!(cert = %leaf, error = %crate::errors::chain(&e), "not scheduled: unreadable")
                }
            }
        }
        let (_, first, lifetime) = windows.iter().min_by_key(|w| w.1)?;
        let when = jittered(*first, *lifetime, jitter, now);
        let due = windows
            .iter()
            .filter(|w| w.1 <= when)
            .map(|w| w.0)
            .collect();
        Some((when, due))
    }

    /// Renews every leaf that is due at `now` (renewal window, expiry, spec drift, missing)
    /// and returns them; map them to restarts with [`Leaf::restarts`]. Same rules and
    /// guarantees as [`Pki::generate_at`], whose [`super::Report`] has the details.
    pub fn renew_due(&self, spec: &PkiSpec, now: SystemTime) -> Result<Vec<Leaf>> {
        Ok(self.generate_at(spec, now)?.leaves())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_sleeps_are_bounded_both_ways() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(renewal_sleep(now + hour, now), hour);
        // Overdue, or a clock that jumped: never spin.
        assert_eq!(renewal_sleep(now - hour, now), MIN_RENEWAL_INTERVAL);
        assert_eq!(renewal_sleep(now, now), MIN_RENEWAL_INTERVAL);
        // A year away: wake daily and look again.
        let year = Duration::from_secs(365 * 86_400);
        assert_eq!(renewal_sleep(now + year, now), Duration::from_secs(86_400));
    }

    fn cert(dir: &std::path::Path, name: &str, from: SystemTime, days: u64) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.not_before = from.into();
        params.not_after = (from + Duration::from_secs(days * 86_400)).into();
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        path
    }

    #[test]
    fn a_node_renews_at_the_first_window_of_its_certificates_with_jitter() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let short = cert(dir.path(), "short", now, 30);
        let long = cert(dir.path(), "long", now, 300);
        let missing = dir.path().join("missing.crt");
        let at = next_renewal_of(&[long, short, missing.clone()], now)
            .unwrap()
            .unwrap();
        // Two thirds of 30 days, plus at most 4 % of them (second-granular validity).
        let window = now + day * 20;
        assert!(
            at + Duration::from_secs(1) >= window,
            "{at:?} before {window:?}"
        );
        assert!(at <= window + (day * 30).mul_f64(RENEW_JITTER) + Duration::from_secs(1));
        assert_eq!(
            next_renewal_of(std::slice::from_ref(&missing), now).unwrap(),
            None
        );
        std::fs::write(&missing, "not a certificate").unwrap();
        assert!(next_renewal_of(&[missing], now).is_err());
    }
}
