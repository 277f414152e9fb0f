//! Certificate renewal policy, without threads: the caller (the proxy's runtime or the local
//! cluster) asks [`Rotator::next_rotation`] when to wake up and calls
//! [`Rotator::rotate_if_needed`] then.

use std::time::{Duration, SystemTime};

use crate::Result;
use crate::ca::{MeshCa, WorkloadCert};
use crate::handle::IdentityHandle;
use crate::spiffe::SpiffeId;

/// When to renew: after `grace_ratio` of a certificate's lifetime has elapsed. Istio's default
/// (`SECRET_GRACE_PERIOD_RATIO=0.5`) is half the lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rotator {
    grace_ratio: f64,
}

impl Default for Rotator {
    fn default() -> Self {
        Rotator { grace_ratio: 0.5 }
    }
}

impl Rotator {
    /// A rotator renewing after `grace_ratio` (clamped to `0.0..=1.0`) of the lifetime.
    pub fn new(grace_ratio: f64) -> Self {
        let grace_ratio = if grace_ratio.is_nan() {
            0.5
        } else {
            grace_ratio.clamp(0.0, 1.0)
        };
        Rotator { grace_ratio }
    }

    /// The fraction of the lifetime after which a certificate is renewed.
    pub fn grace_ratio(&self) -> f64 {
        self.grace_ratio
    }

    /// The instant from which `cert` needs renewal: `not_before + lifetime * grace_ratio`.
    pub fn next_rotation(&self, cert: &WorkloadCert) -> SystemTime {
        cert.not_before + cert.lifetime().mul_f64(self.grace_ratio)
    }

    /// Whether `cert` is due for renewal at `now` (also true once expired or if `now` is before
    /// its validity).
    pub fn needs_rotation(&self, cert: &WorkloadCert, now: SystemTime) -> bool {
        now < cert.not_before || now >= self.next_rotation(cert)
    }

    /// Issues a new certificate for `id` with `ttl` from `ca` and installs it in `handle` if
    /// the current one needs renewal at `now`. Returns whether it rotated.
    pub fn rotate_if_needed(
        &self,
        handle: &IdentityHandle,
        ca: &MeshCa,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<bool> {
        if !self.needs_rotation(&handle.current(), now) {
            return Ok(false);
        }
        handle.rotate(ca.issue(id, ttl)?)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn cert(not_before: u64, not_after: u64) -> WorkloadCert {
        WorkloadCert {
            cert_chain_pem: String::new(),
            key_pem: String::new(),
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(not_before),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(not_after),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rotates_at_half_lifetime() {
        let r = Rotator::default();
        let c = cert(1000, 2000);
        assert_eq!(r.next_rotation(&c), at(1500));
        assert!(!r.needs_rotation(&c, at(1000)));
        assert!(!r.needs_rotation(&c, at(1499)));
        assert!(r.needs_rotation(&c, at(1500)));
        assert!(r.needs_rotation(&c, at(2500)));
        assert!(r.needs_rotation(&c, at(10)));
    }

    #[test]
    fn ratio_is_clamped() {
        assert_eq!(Rotator::new(7.0).grace_ratio(), 1.0);
        assert_eq!(Rotator::new(-1.0).grace_ratio(), 0.0);
        assert_eq!(Rotator::new(f64::NAN).grace_ratio(), 0.5);
        assert_eq!(Rotator::new(0.8).next_rotation(&cert(0, 100)), at(80));
    }

    #[test]
    fn rotate_if_needed_swaps_only_when_due() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let id = SpiffeId::new("cluster.local", "istio-system", "gw").unwrap();
        let first = ca.issue(&id, Duration::from_secs(3600)).unwrap();
        let handle = IdentityHandle::new(first.clone(), ca.root_pem()).unwrap();
        let r = Rotator::default();
        let ttl = Duration::from_secs(3600);
        assert!(
            !r.rotate_if_needed(&handle, &ca, &id, ttl, SystemTime::now())
                .unwrap()
        );
        assert_eq!(*handle.current(), first);
        let later = first.not_after - Duration::from_secs(1);
        assert!(r.rotate_if_needed(&handle, &ca, &id, ttl, later).unwrap());
        assert_ne!(*handle.current(), first);
        assert_eq!(handle.spiffe_id(), Some(id.to_string()));
    }
}
