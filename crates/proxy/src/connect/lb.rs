//! Endpoint selection per cluster: weighted round robin, least request (power of two choices
//! over in-flight counters) and random, plus the basics of outlier detection.
//!
//! Outlier detection (documented subset of Envoy's): every endpoint counts consecutive
//! local-origin failures (connect refused/timed out, TLS handshake failed). When the count
//! reaches `consecutive_local_origin_failures` (or `consecutive_5xx` when that is 0, since
//! without `splitExternalLocalOriginErrors` Envoy folds local-origin failures into the 5xx
//! count), the endpoint is ejected for `base_ejection_time × number of ejections so far`
//! (capped at 300s, Envoy's `max_ejection_time`), as long as no more than
//! `max_ejection_percent` of the cluster's endpoints are ejected (at least one may always be).
//! A success resets the count. Ejected endpoints are skipped; if every endpoint is ejected the
//! cluster has no healthy upstream (Istio's `minHealthPercent` 0 disables Envoy's panic mode).
//! HTTP callers may report 5xx responses with [`Balancer::report`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use egress_snapshot::snapshot::{LbPolicy, OutlierDetection};
use rand::Rng;

/// Envoy's default `max_ejection_time`.
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// One candidate endpoint with its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Address.
    pub addr: SocketAddr,
    /// Relative weight (0 is treated as 1).
    pub weight: u32,
}

/// State of one endpoint.
#[derive(Debug, Default)]
struct EndpointState {
    in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// State of one cluster.
#[derive(Debug, Default)]
struct ClusterState {
    next: AtomicU64,
    endpoints: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
}

impl ClusterState {
    fn endpoint(&self, addr: SocketAddr) -> Arc<EndpointState> {
        match self.endpoints.lock() {
            Ok(mut map) => Arc::clone(map.entry(addr).or_default()),
            Err(_) => Arc::default(),
        }
    }
}

/// What happened on an endpoint, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connected (or a non-5xx response).
    Success,
    /// Connect failure, connect timeout or TLS handshake failure.
    LocalOriginFailure,
    /// A 5xx response from the endpoint.
    ServerError,
}

/// Balancer state of every cluster of a proxy instance, keyed by cluster name.
#[derive(Debug, Default)]
pub struct Balancer {
    clusters: Mutex<HashMap<String, Arc<ClusterState>>>,
}

/// An endpoint picked for one connection; it counts as in flight while this lives.
#[derive(Debug)]
pub struct Picked {
    /// The endpoint.
    pub addr: SocketAddr,
    state: Arc<EndpointState>,
}

impl Picked {
    /// An endpoint chosen without the balancer (an ORIGINAL_DST destination): it counts as in
    /// flight only for itself, and outlier detection does not track it.
    pub fn detached(addr: SocketAddr) -> Picked {
        let state = Arc::new(EndpointState::default());
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Picked { addr, state }
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Balancer {
    fn cluster(&self, name: &str) -> Arc<ClusterState> {
        match self.clusters.lock() {
            Ok(mut map) => Arc::clone(map.entry(name.to_owned()).or_default()),
            Err(_) => Arc::default(),
        }
    }

    /// Picks an endpoint of `cluster` among `candidates`; `None` when there are none or all
    /// are ejected.
    pub fn pick(
        &self,
        cluster: &str,
        policy: LbPolicy,
        candidates: &[Candidate],
    ) -> Option<Picked> {
        let state = self.cluster(cluster);
        let now = Instant::now();
        let healthy: Vec<(Candidate, Arc<EndpointState>)> = candidates
            .iter()
            .map(|c| (*c, state.endpoint(c.addr)))
            .filter(|(_, ep)| !is_ejected(ep, now))
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let total: u64 = healthy
            .iter()
            .map(|(c, _)| u64::from(c.weight.max(1)))
            .sum();
        let index = match policy {
            LbPolicy::RoundRobin => {
                let n = state.next.fetch_add(1, Ordering::Relaxed) % total;
                by_weight(&healthy, n)
            }
            LbPolicy::Random => by_weight(&healthy, rand::rng().random_range(0..total)),
            LbPolicy::LeastRequest => {
                let mut rng = rand::rng();
                let a = by_weight(&healthy, rng.random_range(0..total));
                let b = by_weight(&healthy, rng.random_range(0..total));
                let load = |i: usize| healthy[i].1.in_flight.load(Ordering::Acquire);
                if load(b) < load(a) { b } else { a }
            }
        };
        let (candidate, ep) = &healthy[index];
        ep.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Picked {
            addr: candidate.addr,
            state: Arc::clone(ep),
        })
    }

    /// Records the outcome of using `addr` of `cluster`; `total_endpoints` bounds ejection.
    pub fn report(
        &self,
        cluster: &str,
        addr: SocketAddr,
        outcome: Outcome,
        outlier: Option<&OutlierDetection>,
        total_endpoints: usize,
    ) {
        let Some(od) = outlier else { return };
        let state = self.cluster(cluster);
        let ep = state.endpoint(addr);
        let threshold = match outcome {
            Outcome::Success => {
                if let Ok(mut h) = ep.health.lock() {
                    h.consecutive_failures = 0;
                }
                return;
            }
            Outcome::LocalOriginFailure if od.consecutive_local_origin_failures > 0 => {
                od.consecutive_local_origin_failures
            }
            Outcome::LocalOriginFailure | Outcome::ServerError => od.consecutive_5xx,
        };
        if threshold == 0 {
            return;
        }
        let now = Instant::now();
        let ejected_now = self.ejected_count(&state, now);
        let Ok(mut h) = ep.health.lock() else { return };
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        if h.consecutive_failures < threshold || h.ejected_until.is_some_and(|t| t > now) {
            return;
        }
        let total = total_endpoints.max(1);
        let allowed =
            ejected_now == 0 || (ejected_now + 1) * 100 <= total * od.max_ejection_percent as usize;
        if !allowed {
            return;
        }
        h.ejections = h.ejections.saturating_add(1);
        let time = od
            .base_ejection_time
            .saturating_mul(h.ejections)
            .min(MAX_EJECTION.max(od.base_ejection_time));
        h.ejected_until = Some(now + time);
        h.consecutive_failures = 0;
        tracing::info!(cluster, %addr, ejection_secs = time.as_secs_f64(), "outlier detection ejected an endpoint");
    }

    fn ejected_count(&self, state: &ClusterState, now: Instant) -> usize {
        let Ok(map) = state.endpoints.lock() else {
            return 0;
        };
        map.values().filter(|ep| is_ejected(ep, now)).count()
    }

    /// True if `addr` of `cluster` is currently ejected.
    pub fn is_ejected(&self, cluster: &str, addr: SocketAddr) -> bool {
        is_ejected(&self.cluster(cluster).endpoint(addr), Instant::now())
    }
}

fn is_ejected(ep: &EndpointState, now: Instant) -> bool {
    ep.health
        .lock()
        .map(|h| h.ejected_until.is_some_and(|t| t > now))
        .unwrap_or(false)
}

/// The index of the candidate that owns position `n` of the cumulative weights.
fn by_weight(healthy: &[(Candidate, Arc<EndpointState>)], mut n: u64) -> usize {
    for (i, (c, _)) in healthy.iter().enumerate() {
        let w = u64::from(c.weight.max(1));
        if n < w {
            return i;
        }
        n -= w;
    }
    healthy.len() - 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn cands(n: u8) -> Vec<Candidate> {
        (1..=n)
            .map(|i| Candidate {
                addr: SocketAddr::from(([127, 0, 0, i], 443)),
                weight: 1,
            })
            .collect()
    }

    fn od(failures: u32, max_percent: u32) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_local_origin_failures: failures,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: max_percent,
        }
    }

    #[test]
    fn round_robin_cycles_by_weight() {
        let b = Balancer::default();
        let mut c = cands(2);
        c[1].weight = 2;
        let picks: Vec<_> = (0..6)
            .map(|_| b.pick("c", LbPolicy::RoundRobin, &c).unwrap().addr)
            .collect();
        assert_eq!(picks[0], c[0].addr);
        assert_eq!(picks[1], c[1].addr);
        assert_eq!(picks[2], c[1].addr);
        assert_eq!(picks[3], c[0].addr);
        assert!(b.pick("c", LbPolicy::RoundRobin, &[]).is_none());
    }

    #[test]
    fn least_request_prefers_idle_endpoint() {
        let b = Balancer::default();
        let c = cands(2);
        // Hold many connections on the first endpoint.
        let held: Vec<_> = (0..50)
            .filter_map(|_| b.pick("c", LbPolicy::RoundRobin, &c[..1]))
            .collect();
        assert_eq!(held.len(), 50);
        let picks: Vec<_> = (0..20)
            .map(|_| b.pick("c", LbPolicy::LeastRequest, &c).unwrap())
            .collect();
        // With two choices, the busy endpoint only wins when both choices are it.
        assert!(picks.iter().any(|p| p.addr == c[1].addr));
        drop(picks);
        drop(held);
        let p = b.pick("c", LbPolicy::Random, &c).unwrap();
        assert!(c.iter().any(|x| x.addr == p.addr));
    }

    #[test]
    fn consecutive_local_failures_eject() {
        let b = Balancer::default();
        let c = cands(2);
        let od = od(2, 100);
        b.report("c", c[0].addr, Outcome::LocalOriginFailure, Some(&od), 2);
        assert!(!b.is_ejected("c", c[0].addr));
        b.report("c", c[0].addr, Outcome::LocalOriginFailure, Some(&od), 2);
        assert!(b.is_ejected("c", c[0].addr));
        for _ in 0..4 {
            assert_eq!(
                b.pick("c", LbPolicy::RoundRobin, &c).unwrap().addr,
                c[1].addr
            );
        }
        b.report("c", c[1].addr, Outcome::LocalOriginFailure, Some(&od), 2);
        b.report("c", c[1].addr, Outcome::Success, Some(&od), 2);
        b.report("c", c[1].addr, Outcome::LocalOriginFailure, Some(&od), 2);
        assert!(!b.is_ejected("c", c[1].addr), "a success resets the count");
        b.report("c", c[1].addr, Outcome::LocalOriginFailure, Some(&od), 2);
        assert!(b.is_ejected("c", c[1].addr));
        assert!(
            b.pick("c", LbPolicy::RoundRobin, &c).is_none(),
            "all ejected: no healthy upstream"
        );
    }

    #[test]
    fn max_ejection_percent_limits_but_one_is_always_allowed() {
        let b = Balancer::default();
        let c = cands(4);
        let od = od(1, 10);
        b.report("c", c[0].addr, Outcome::LocalOriginFailure, Some(&od), 4);
        b.report("c", c[1].addr, Outcome::LocalOriginFailure, Some(&od), 4);
        assert!(b.is_ejected("c", c[0].addr));
        assert!(!b.is_ejected("c", c[1].addr));
        // Without outlier detection nothing is ejected.
        b.report("d", c[0].addr, Outcome::LocalOriginFailure, None, 4);
        assert!(!b.is_ejected("d", c[0].addr));
    }
}
