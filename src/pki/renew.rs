//! Background renewal support: when the next leaf enters its renewal window, and renewing
//! whatever is due. The loop itself (sleep, restart components) belongs to the supervisor.

use std::time::SystemTime;

use super::error::Result;
use super::leaf::Leaf;
use super::store;
use super::{Pki, PkiSpec};

/// The wake-up time is pushed past the two-thirds point by a random 0..4 % of the leaf's
/// lifetime, so that masters set up together do not all renew (and restart) at once. Always
/// later, never earlier: at wake-up the leaf is then inside its window and really renewed.
pub const RENEW_JITTER: f64 = 0.04;

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
                Err(e) => tracing::debug!(cert = %leaf, error = %e, "not scheduled: unreadable"),
            }
        }
        let (_, first, lifetime) = windows.iter().min_by_key(|w| w.1)?;
        let when = (*first + lifetime.mul_f64(jitter.clamp(0.0, RENEW_JITTER))).max(now);
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
